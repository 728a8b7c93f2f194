"""npe's differentiable simulator through the PyTorch operator against the C++ API, on the same
scenes (docs/python.md, "Overhead"). Default: 10^5 scenes of npe-datagen's default world with
variable masses (4 balls), 60 frames, float32 and float64.

  C++ API   npe-bench diffsim --scenes S --frames F: diff_forward_cuda / diff_backward_cuda on
            buffers already in the engine layout, run by this script in the same call
  operator  npe.simulate (torch.ops.npe.simulate) on [S, N, 4] tensors: the layout changes, the
            dashpot kernel and autograd included; forward with inputs that require gradients
            (checkpoints and contact words stored, as the C++ forward does), and npe.advance

Both are timed alike: wall clock around calls synchronised before and after, median of --repeats
after two warm-up runs; the backward pass takes a gradient of ones, as npe-bench's. --rounds
rounds alternate the two (a drift of the GPU's clocks touches both); the table gives each side's
best round, the JSON every round.

  .venv/bin/python bench/python_ops.py --device cuda --out bench/python_ops_h100.json
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import torch

import npe

p = argparse.ArgumentParser()
p.add_argument("--device", default="cuda")
p.add_argument("--scenes", type=int, default=100000)
p.add_argument("--frames", type=int, default=60)
p.add_argument("--repeats", type=int, default=7)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--npe_bench", default="build/bin/npe-bench")
p.add_argument("--out", required=True)
a = p.parse_args()
device = torch.device(a.device)
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

def cpp_bench():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([a.npe_bench, "diffsim", "--device", device.type, "--scenes", str(a.scenes), "--frames",
                        str(a.frames), "--repeats", str(a.repeats), "--out_csv", f"{tmp}/d.csv", "--out_json",
                        f"{tmp}/d.json"], check=True, stdout=subprocess.DEVNULL)
        return json.loads(pathlib.Path(f"{tmp}/d.json").read_text())


spec = npe.WorldSpec(variable_mass=True)  # npe-bench's "dataset" world; its scenes with seed 1
scenes = npe.sample_scenes(spec, 1, a.scenes)


def timed(fn):
    times = []
    for rep in range(a.repeats + 2):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        if rep >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def op_times(dtype):
    x0, mass, radius = (t.to(device, dtype) for t in scenes)
    e = torch.ones(a.scenes, device=device, dtype=dtype)
    xg = x0.clone().requires_grad_(True)

    def forward():
        return npe.simulate(spec, xg, mass, radius, e, frames=a.frames, check_values=False)

    def forward_backward():
        traj = forward()
        traj.backward(torch.ones_like(traj))

    def advance():
        npe.advance(spec, x0, mass, radius, e, frames=a.frames, check_values=False)

    return {"forward_s": timed(forward), "forward_backward_s": timed(forward_backward), "advance_s": timed(advance)}


# Rounds alternate the C++ benchmark (its own process) and the operator, so that a drift of the
# GPU's clocks between the two touches both; each side's figure is its best round's median.
precisions = ((torch.float32, "float32"), (torch.float64, "float64"))
rounds = []
cpp = None
for _ in range(a.rounds):
    cpp = cpp_bench()
    rounds.append({"cpp": {p: next(r for r in cpp["rows"] if r["precision"] == p and r["backend"] == device.type)
                           for _, p in precisions},
                   "op": {p: op_times(d) for d, p in precisions}})

rows = []
for _, precision in precisions:
    best = lambda side, key: min(r[side][precision][key] for r in rounds)
    row = {"precision": precision, "scenes": a.scenes, "balls": spec.num_balls, "frames": a.frames,
           "substeps": a.frames * spec.substeps, "cpp_forward_s": best("cpp", "forward_s"),
           "cpp_forward_backward_s": best("cpp", "forward_backward_s"), "op_forward_s": best("op", "forward_s"),
           "op_forward_backward_s": best("op", "forward_backward_s"), "op_advance_s": best("op", "advance_s"),
           "rounds": [{"cpp_forward_s": r["cpp"][precision]["forward_s"],
                       "cpp_forward_backward_s": r["cpp"][precision]["forward_backward_s"],
                       **{"op_" + k: v for k, v in r["op"][precision].items()}} for r in rounds]}
    row["forward_overhead"] = row["op_forward_s"] / row["cpp_forward_s"] - 1
    row["forward_backward_overhead"] = row["op_forward_backward_s"] / row["cpp_forward_backward_s"] - 1
    rows.append(row)

result = {"benchmark": "python_ops", "device": cpp["cuda_device"] if device.type == "cuda" else "cpu",
          "torch": torch.__version__, "npe": npe.__version__, "command": "bench/python_ops.py " + " ".join(
              f"--{k} {v}" for k, v in vars(a).items()), "rows": rows}
pathlib.Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
print(f"\n{'prec':<8} {'C++ fwd ms':>11} {'op fwd ms':>10} {'ovh':>7} {'C++ f+b ms':>11} {'op f+b ms':>10} {'ovh':>7} "
      f"{'advance ms':>11}")
for r in rows:
    print(f"{r['precision']:<8} {r['cpp_forward_s'] * 1e3:>11.2f} {r['op_forward_s'] * 1e3:>10.2f} "
          f"{r['forward_overhead']:>+7.1%} {r['cpp_forward_backward_s'] * 1e3:>11.2f} "
          f"{r['op_forward_backward_s'] * 1e3:>10.2f} {r['forward_backward_overhead']:>+7.1%} "
          f"{r['op_advance_s'] * 1e3:>11.2f}")
print(f"wrote {a.out}")
