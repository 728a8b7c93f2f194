# compute-sanitizer initcheck on bare PyTorch (no npe code): Linear layers on float32 and bf16
# inputs, contiguous (addmm) and non-contiguous 3-D (matmul, then the bias added in place, the path
# of libtorch's LinearImpl::forward that initcheck flagged inside npe's bf16 training step), under
# autocast as npe trains the modern model.
#   compute-sanitizer --tool initcheck python3 tests/sanitizers/initcheck_torch_linear.py
import torch
torch.manual_seed(0)
for dt in (torch.float32, torch.bfloat16):
    w = torch.randn(192, 96, device="cuda", dtype=dt)
    b = torch.randn(192, device="cuda", dtype=dt)
    a = torch.randn(64, 3, 64, 96, device="cuda", dtype=dt)
    y1 = torch.nn.functional.linear(a[:, 0], w, b) + 1            # contiguous after select? no: strided
    y2 = torch.nn.functional.linear(a.transpose(0, 1)[1], w, b) + 1
    lin = torch.nn.Linear(96, 192).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y3 = lin(a.float()[:, 2]) + 1
    torch.cuda.synchronize()
    print(dt, float(y1.float().sum()), float(y2.float().sum()), float(y3.float().sum()))

# The modern NPE's shapes (npe/src/model.cpp): pair inputs [B, N, N-1, 20] -> 96 -> residual
# blocks 96 -> 192 -> 96 with LayerNorm and GELU, under bf16 autocast, forward and backward.
for B in (16, 50, 256, 2048):
    x = torch.randn(B, 4, 3, 20, device="cuda")
    enc = torch.nn.Linear(20, 96).cuda()
    fc1, fc2, norm = torch.nn.Linear(96, 192).cuda(), torch.nn.Linear(192, 96).cuda(), torch.nn.LayerNorm(96).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        h = enc(x)
        h = h + fc2(torch.nn.functional.gelu(fc1(norm(h))))
        loss = h.float().pow(2).mean()
    loss.backward()
    torch.cuda.synchronize()
    print("modern shapes", B, float(loss))
