"""npe.load_model: trained checkpoints run by npe's C++ models (python/npe/model.py)."""
import pytest
import torch

import npe
from conftest import cuda_or_skip


@pytest.mark.parametrize("kind", ["classic", "modern"])
def test_forward_and_rollout(checkpoints, box2d_dataset, kind):
    model = npe.load_model(checkpoints / f"{kind}.best.pt")
    assert model.kind == kind and not model.training
    assert model.meta["model"]["kind"] == kind
    split = npe.load_split(box2d_dataset, "test")
    batch = torch.stack([w for w in npe.WindowDataset(split)][:9])
    v = model(batch)
    assert v.shape == (9, 4, 2) and v.dtype == torch.float32 and not v.requires_grad
    # the rollout's first predicted frame is the model's prediction from frames 0 and 1
    frames = split.trajectories[:5]
    out = model.rollout(frames, 6)
    assert out.shape == (5, 8, 4, 5)
    assert torch.equal(out[:, :2], frames[:, :2])
    v1 = model(frames[:, :2])
    assert torch.equal(out[:, 2, :, 2:4], v1)
    step = split.normalisation["step_scale"]
    assert torch.equal(out[:, 2, :, :2], (frames[:, 1, :, :2] + v1 * step).float())
    assert torch.equal(out[:, 2:, :, 4], frames[:, :1, :, 4].expand(5, 6, 4))


def test_gradients_reach_the_inputs_not_the_weights(checkpoints, box2d_dataset):
    model = npe.load_model(checkpoints / "classic.pt")
    window = npe.load_split(box2d_dataset, "val").trajectories[:3, :2].clone().requires_grad_(True)
    model(window).pow(2).sum().backward()
    assert window.grad is not None and window.grad.abs().sum() > 0
    assert list(model.parameters()) == []


def test_bad_models_and_inputs_raise(checkpoints, box2d_dataset, tmp_path):
    with pytest.raises(ValueError, match="nothing.pt"):
        npe.load_model(tmp_path / "nothing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        npe.load_model(junk)
    with pytest.raises(ValueError, match="device"):
        npe.load_model(checkpoints / "classic.pt", device="tpu")
    model = npe.load_model(checkpoints / "classic.pt")
    frames = npe.load_split(box2d_dataset, "val").trajectories[:2]
    with pytest.raises(ValueError, match=r"\[batch, 2 or more, balls, 5\]"):
        model(frames[:, :1])
    with pytest.raises(TypeError, match="float32"):
        model(frames.double())
    with pytest.raises(ValueError, match="steps"):
        model.rollout(frames, 0)
    with pytest.raises(ValueError, match="eval mode"):
        model.train()
    with pytest.raises(TypeError, match="steps: expected an int"):
        model.rollout(frames, 2.0)
    with pytest.raises(TypeError, match="window: expected a tensor"):
        model([1])
    with pytest.raises(ValueError, match="at least one scene"):
        model.rollout(frames[:0], 2)


def test_cuda_model_matches_cpu(checkpoints, box2d_dataset):
    device = cuda_or_skip()
    frames = npe.load_split(box2d_dataset, "val").trajectories[:4]
    cpu = npe.load_model(checkpoints / "modern.pt")
    gpu = npe.load_model(checkpoints / "modern.pt", device="cuda")
    torch.testing.assert_close(gpu(frames.to(device)).cpu(), cpu(frames), rtol=1e-4, atol=1e-5)
    assert gpu.rollout(frames.to(device), 3).device.type == "cuda"
