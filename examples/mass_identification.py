"""Mass identification with npe's differentiable simulator (docs/python.md). In each scene of a
Box2D dataset ball 0's mass is unknown and the others' are known (Chang et al. 2017, section 4.3);
ln m is fitted by gradient descent to the observed positions, each window of frames rolled out
from the observed state so that Box2D and npe's engine cannot drift apart.

    .venv/bin/python examples/mass_identification.py DATASET_PREFIX [--scenes 64] [--device cuda]
(a dataset with masses to find: build/bin/npe-datagen --variable_mass --out_prefix data/vm/vm)"""
import argparse

import torch

import npe

p = argparse.ArgumentParser()
p.add_argument("prefix"), p.add_argument("--scenes", type=int, default=64), p.add_argument("--device", default="cpu")
p.add_argument("--window", type=int, default=10), p.add_argument("--iterations", type=int, default=100)
a = p.parse_args()
split = npe.load_split(a.prefix, "test")
obs = split.trajectories[:a.scenes].to(a.device, torch.float64)  # [S, T, N, 5], normalised
scale = torch.tensor([split.normalisation["pos_scale"]] * 2 + [split.normalisation["vel_scale"]] * 2, device=a.device)
state, true_mass = obs[..., :4] * scale, obs[:, 0, :, 4]  # px, px/s; [S, N]
S, T, N, W = *obs.shape[:3], a.window
starts = state[:, 0:T - W:W]  # [S, K, N, 4]: each window starts from the observed state
K = starts.shape[1]
target = torch.stack([state[:, k * W:k * W + W + 1, :, :2] for k in range(K)], 1).reshape(S * K, W + 1, N, 2)
log_m = torch.full((S,), 5.0, device=a.device, dtype=torch.float64).log().requires_grad_()  # from 5
optimizer = torch.optim.Adam([log_m], lr=0.1)
for it in range(a.iterations):
    mass = torch.cat([log_m.exp()[:, None], true_mass[:, 1:]], 1).repeat_interleave(K, 0)
    traj = npe.simulate(split.world, starts.reshape(S * K, N, 4), mass, frames=W)
    loss = ((traj[..., :2] - target) ** 2).mean()
    optimizer.zero_grad(), loss.backward()
    if it == 0:
        informed = log_m.grad.abs() > 1e-12  # ball 0 touches another ball: its mass matters
    optimizer.step()
m, truth = log_m.detach().exp()[informed], true_mass[informed, 0]
print(f"{int(informed.sum())} of {S} scenes have ball 0 collide with another ball; in them:")
print(f"  median |m - m_true| / m_true = {((m - truth).abs() / truth).median():.3g} (final loss {loss:.3g} px^2)")
choices = torch.tensor(split.world.mass_choices, dtype=m.dtype, device=m.device)
nearest = choices[(m.log()[:, None] - choices.log()).abs().argmin(1)]
print(f"  nearest of {split.world.mass_choices} correct: {(nearest == truth).float().mean():.1%}")
