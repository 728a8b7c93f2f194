#!/usr/bin/env python3
"""The PyTorch counterpart of `npe-bench train`: the same two NPE models (npe/src/model.cpp), batch
sizes, optimizers and data path (trajectories resident on the device, batches as index gathers of
windows), timed in PyTorch eager and with torch.compile, so that npe's samples/s can be compared
with PyTorch's on the same GPU in the same run.

    python3 bench/train_pytorch.py --device cuda --out_json bench/train_pytorch.json

Rows: model x variant, variant in eager, compile (torch.compile of the model; the optimizer runs
eagerly with its fused CUDA kernels) and, for the modern model, the same two under bf16 autocast,
as the reference re-implementation trains it. samples/s = steps x batch / seconds after 20
warm-up steps (compilation excluded), with the device synchronised every 10 steps.
"""
import argparse
import json
import math
import os
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N, T, S = 4, 60, 2000  # balls, frames, scenes (as npe-bench train)


class Base(nn.Module):
    def __init__(self, neighborhood=0.2625):
        super().__init__()
        self.neighborhood = neighborhood
        self.register_buffer("state_mean", torch.zeros(5))
        self.register_buffer("state_std", torch.ones(5))
        self.register_buffer("dv_std", torch.ones(2))
        ar = torch.arange(N)
        self.register_buffer("ctx_idx", torch.stack([ar[ar != i] for i in range(N)]))  # [N, N-1]

    def pairs(self, prev, cur):
        B = cur.shape[0]
        std = lambda s: (s - self.state_mean) / self.state_std
        focus = torch.cat([std(prev), std(cur)], -1)  # [B, N, 10]

        def gather(s):
            return s.index_select(1, self.ctx_idx.reshape(-1)).reshape(B, N, N - 1, 5)

        def relative(s):
            c = gather(s)
            rel = (c[..., :2] - s[..., :2].unsqueeze(2)) / self.state_std[:2]
            rest = (c[..., 2:] - self.state_mean[2:]) / self.state_std[2:]
            return torch.cat([rel, rest], -1)

        context = torch.cat([relative(prev), relative(cur)], -1)  # [B, N, N-1, 10]
        d = gather(cur)[..., :2] - cur[..., :2].unsqueeze(2)
        mask = (d.pow(2).sum(-1) <= self.neighborhood ** 2).to(cur.dtype)
        return focus, context, mask


def relu_mlp(i, w, layers):
    mods = []
    for k in range(layers):
        mods += [nn.Linear(i if k == 0 else w, w), nn.ReLU()]
    return nn.Sequential(*mods)


class Classic(Base):
    def __init__(self):
        super().__init__()
        self.focus_in = nn.Linear(10, 25)
        self.context_in = nn.Linear(10, 25)
        self.encoder = relu_mlp(50, 50, 5)
        self.decoder = nn.Sequential(relu_mlp(60, 50, 4), nn.Linear(50, 2))

    def forward(self, prev, cur):
        focus, context, mask = self.pairs(prev, cur)
        f = F.relu(self.focus_in(focus)).unsqueeze(2).expand(-1, -1, N - 1, -1)
        c = F.relu(self.context_in(context))
        e = self.encoder(torch.cat([f, c], -1))
        s = (e * mask.unsqueeze(-1)).sum(2)
        return cur[..., 2:4] + self.decoder(torch.cat([s, focus], -1)) * self.dv_std


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, h), nn.Linear(h, d)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class Modern(Base):
    def __init__(self, d=96, expansion=2, enc=3, dec=3):
        super().__init__()
        self.enc_in, self.dec_in, self.head = nn.Linear(20, d), nn.Linear(d + 10, d), nn.Linear(d, 2)
        self.enc_blocks = nn.ModuleList(Block(d, d * expansion) for _ in range(enc))
        self.dec_blocks = nn.ModuleList(Block(d, d * expansion) for _ in range(dec))
        self.final_norm = nn.LayerNorm(d)

    def forward(self, prev, cur):
        focus, context, mask = self.pairs(prev, cur)
        f = focus.unsqueeze(2).expand(-1, -1, N - 1, -1)
        x = F.gelu(self.enc_in(torch.cat([f, context], -1)))
        for b in self.enc_blocks:
            x = b(x)
        y = F.gelu(self.dec_in(torch.cat([(x * mask.unsqueeze(-1)).sum(2), focus], -1)))
        for b in self.dec_blocks:
            y = b(y)
        v = self.head(self.final_norm(y))
        return v * self.state_std[2:4] + self.state_mean[2:4]


def classic_lr(step, base=3e-4):
    return base if step <= 50000 else base * 0.99 ** ((step - 50000) // 2500)


def modern_lr(step, total, base=1e-3):
    warm = max(1, total // 10)
    if step < warm:
        return base * (0.1 + 0.9 * step / warm)
    p = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def run(kind, variant, device, seconds):
    torch.manual_seed(1)
    traj = torch.rand(S, T, N, 5)
    traj[..., 2:4] = traj[..., 2:4] * 0.02 - 0.01
    traj[..., 4] = 1.0
    net = Classic() if kind == "classic" else Modern()
    with torch.no_grad():
        s = traj.reshape(-1, 5).double()
        std = s.std(0)
        net.state_mean.copy_(s.mean(0).float())
        net.state_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())
        dv = (traj[:, 1:, :, 2:4] - traj[:, :-1, :, 2:4]).reshape(-1, 2).double()
        net.dv_std.copy_(dv.pow(2).mean(0).sqrt().float())
    net.to(device).train()
    traj = traj.to(device)
    flat = traj.reshape(-1, N, 5)
    cuda = device.type == "cuda"
    if kind == "classic":
        batch, clip = 50, 0.0
        opt = torch.optim.RMSprop(net.parameters(), lr=3e-4, foreach=True)
    else:
        batch, clip = 2048, 1.0
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01, fused=cuda)
    model = torch.compile(net) if "compile" in variant else net
    bf16 = "bf16" in variant
    windows = S * (T - 2)
    g = torch.Generator(device="cpu").manual_seed(0)
    total = 1000000

    def step(k):
        ids = torch.randint(0, windows, (batch,), generator=g).to(device, non_blocking=True)
        frame = torch.div(ids, T - 2, rounding_mode="floor") * T + ids % (T - 2) + 1
        prev, cur, nxt = flat[frame - 1], flat[frame], flat[frame + 1]
        for grp in opt.param_groups:
            grp["lr"] = classic_lr(k) if kind == "classic" else modern_lr(k, total)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(model(prev, cur).float(), nxt[..., 2:4])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        return loss.detach()

    k = 0
    for _ in range(20):
        step(k)
        k += 1
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    first = k
    while True:
        for _ in range(10):
            last = step(k)
            k += 1
        if cuda:
            torch.cuda.synchronize()
        if time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    assert math.isfinite(last.item()), "loss is not finite"
    return {"model": kind, "variant": variant, "batch": batch, "steps": k - first, "seconds": dt,
            "samples_per_s": (k - first) * batch / dt}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row")
    ap.add_argument("--variants", default="eager,compile", help="comma-separated: eager, compile")
    ap.add_argument("--out_json", default="bench/train_pytorch.json")
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # npe's libtorch path runs float32 matmuls in float32
    rows = []
    for kind in ("classic", "modern"):
        for v in a.variants.split(","):
            for bf16 in ((False, True) if kind == "modern" else (False,)):
                variant = v + ("+bf16" if bf16 else "")
                try:
                    rows.append(run(kind, variant, device, a.seconds))
                except Exception as e:  # e.g. torch.compile without a working Triton
                    rows.append({"model": kind, "variant": variant, "error": f"{type(e).__name__}: {e}"[:300]})
                r = rows[-1]
                print(f"{r['model']:<8} {r['variant']:<14} " +
                      (f"{r['samples_per_s']:>12.4g} samples/s" if "error" not in r else r["error"]), flush=True)
    out = {"benchmark": "train_pytorch", "torch": torch.__version__, "device":
           torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "rows": rows}
    d = os.path.dirname(os.path.abspath(a.out_json))
    os.makedirs(d, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=d, delete=False, suffix=".tmp") as f:
        json.dump(out, f, indent=2)
    os.replace(f.name, a.out_json)
    print(f"wrote {a.out_json}")


if __name__ == "__main__":
    main()
