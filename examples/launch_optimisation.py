"""Launch optimisation with npe's differentiable simulator (docs/python.md): choose the velocity
with which a cue ball is struck so that the ball it hits ends, after 30 frames, at a target.
64 starting guesses run as 64 scenes of one batch; gradients flow through the collision.

    .venv/bin/python examples/launch_optimisation.py [--device cuda]"""
import argparse
import math

import torch

import npe

p = argparse.ArgumentParser()
p.add_argument("--device", default="cpu"), p.add_argument("--iterations", type=int, default=150)
a = p.parse_args()
spec = npe.WorldSpec(num_balls=2, radius=30, max_speed=400)
S, frames, target = 64, 30, torch.tensor([620.0, 420.0], device=a.device, dtype=torch.float64)
angle = torch.linspace(-0.6, 0.6, S, dtype=torch.float64)  # guesses: directions around the line to ball 1
speed = torch.linspace(100, 350, S, dtype=torch.float64)[torch.randperm(S, generator=torch.Generator().manual_seed(0))]
v = torch.stack([speed * angle.cos(), speed * angle.sin()], 1).to(a.device).requires_grad_()
balls = torch.tensor([[150.0, 300.0], [330.0, 320.0]], device=a.device, dtype=torch.float64)  # cue, object ball
mass = torch.ones(S, 2, device=a.device, dtype=torch.float64)
optimizer = torch.optim.Adam([v], lr=4.0)
for it in range(a.iterations):
    x0 = torch.cat([balls.expand(S, 2, 2), torch.stack([v, torch.zeros_like(v)], 1)], 2)  # [S, 2, 4]
    traj = npe.simulate(spec, x0, mass, frames=frames)
    miss = (traj[:, -1, 1, :2] - target).norm(dim=1)  # px, per guess
    optimizer.zero_grad(), miss.sum().backward(), optimizer.step()
best = int(miss.argmin())
vx, vy = v[best].tolist()
print(f"strike the cue ball at {math.hypot(vx, vy):.1f} px/s, {math.degrees(math.atan2(vy, vx)):.2f} deg: "
      f"the object ball ends {miss[best]:.2f} px from the target ({(miss < 5).sum()} of {S} guesses within 5 px)")
