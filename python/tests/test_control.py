"""npe.control: the control environments from Python (docs/control.md)."""
import pytest
import torch

import npe
from conftest import cuda_or_skip


def test_reset_and_step_shapes():
    env = npe.control.VecEnv("herding", 6, seed=3)
    obs = env.reset()
    assert obs.shape == (6, env.obs_dim) and env.obs_dim == 4 + 5 * 3 + 1
    obs, reward, terminated, truncated, info = env.step(torch.zeros(6, 2))
    assert obs.shape == (6, env.obs_dim) and reward.shape == (6,)
    assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert info["final_state"].shape == (6, 4, 4) and info["success"].shape == (6,)
    assert env.frames == 6
    assert env.task["kind"] == "herding"


def test_same_seed_same_layouts():
    a, b = npe.control.VecEnv("billiards", 4, seed=7), npe.control.VecEnv("billiards", 4, seed=7)
    assert torch.equal(a.reset(), b.reset())
    assert torch.equal(a.step(torch.full((4, 2), 0.5))[1], b.step(torch.full((4, 2), 0.5))[1])


def test_rewards_differentiate_into_actions():
    env = npe.control.VecEnv("reach", 8, seed=1, dtype=torch.float64)
    env.reset()
    actions = torch.zeros(3, 8, 2, dtype=torch.float64, requires_grad=True)
    total = sum(env.step(actions[t])[1].sum() for t in range(3))
    total.backward()
    # pushing moves the disc: later rewards depend on the first action
    assert actions.grad[0].abs().sum() > 0
    env.detach()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="task"):
        npe.control.VecEnv("pool", 4)
    with pytest.raises(ValueError, match="num_envs"):
        npe.control.VecEnv("reach", 0)
    with pytest.raises(TypeError, match="num_envs: expected an int"):
        npe.control.VecEnv("reach", 2.5)
    with pytest.raises(ValueError, match="device"):
        npe.control.VecEnv("reach", 2, device="tpu")
    env = npe.control.VecEnv("reach", 2)
    with pytest.raises(ValueError, match=r"action: expected a tensor \[2, 2\]"):
        env.step(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="action: expected a tensor"):
        env.step([0.0, 0.0])


def test_cuda_environments_step_with_gradients():
    device = cuda_or_skip()
    env = npe.control.VecEnv("herding", 64, device=device, seed=2)
    env.reset()
    action = torch.zeros(64, 2, device=device, requires_grad=True)
    obs, reward, *_ = env.step(action)
    assert obs.is_cuda and reward.is_cuda
    reward.sum().backward()
    assert action.grad is not None and torch.isfinite(action.grad).all()
