"""Trained Neural Physics Engine models (npe-train checkpoints) run by npe's C++ models
(npe/model/model.h) from PyTorch."""
import json
import os

import torch

from . import _ops  # noqa: F401  (loads the operators)


class Model(torch.nn.Module):
    """A trained NPE (classic, modern, the paper's NP / LSTM baselines, or the graph network
    simulator gns) in eval mode, weights frozen; gradients reach its inputs. Made by load_model.
    Walls models (trained on a walls world) are not served here yet: their inputs carry the scene's
    wall blocks (npe/model/model.h object_states), which these methods do not take.

    model(window): window [B, 2 or more, N, 5] float32 on the model's device, frames t-1 and t
      first (normalised as in the dataset: npe.WindowDataset items batch to this), ->
      [B, N, 2] the predicted velocities of frame t+1, normalised (Chang et al. 2017, section 2).
    model.rollout(frames, steps): frames [S, 2 or more, N, 5] -> [S, steps + 2, N, 5], npe-eval's
      autoregressive rollout from the first two frames (positions advance by v * step_scale).
    Attributes: kind ("classic", "modern", "np", "lstm", "gns"), meta (the checkpoint's record: model
    configuration, training, the dataset's normalisation ("dataset"), training world), device.
    Raises ValueError naming the argument for frames of the wrong shape or device, TypeError for
    a dtype other than float32.
    """

    def __init__(self, handle, device):
        super().__init__()
        self._model = handle
        self.kind = handle.kind()
        self.meta = json.loads(handle.meta())
        self.device = torch.device(device)
        super().train(False)

    def forward(self, window):
        if not isinstance(window, torch.Tensor):
            raise TypeError(f"npe.Model: window: expected a tensor [batch, 2 or more, balls, 5], "
                            f"found {type(window).__name__}")
        return self._model.forward(window)

    def rollout(self, frames, steps):
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"npe.Model.rollout: frames: expected a tensor [scenes, 2 or more, balls, 5], "
                            f"found {type(frames).__name__}")
        if not isinstance(steps, int) or isinstance(steps, bool):
            raise TypeError(f"npe.Model.rollout: steps: expected an int, found {type(steps).__name__}")
        return self._model.rollout(frames, steps)

    def train(self, mode=True):
        if mode:
            raise ValueError("npe.Model: a loaded checkpoint runs in eval mode only (train with npe-train)")
        return self

    def extra_repr(self):
        return f"kind={self.kind}, device={self.device}"


def load_model(path, device="cpu"):
    """Loads an npe-train checkpoint (e.g. "checkpoints/modern.best.pt") onto `device` ("cpu",
    "cuda", "cuda:K"). Raises ValueError naming the file and what is wrong (missing, not an npe
    checkpoint, weights that do not match) or the device."""
    path = os.fspath(path)
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"npe.load_model: device: expected a string or torch.device, found {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"npe.load_model: device: expected \"cpu\", \"cuda\" or \"cuda:K\", found {device!r}") from None
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"
    return Model(torch.classes.npe.Model(path, str(device)), str(device))
