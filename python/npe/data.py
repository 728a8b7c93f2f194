"""npe datasets (docs/dataset-format.md) from PyTorch, read and checked by npe's C++ reader
(datagen/dataset.h): P.json and P_{train,val,test}.npy, merged shards too."""
import json
from typing import NamedTuple, Optional

import torch

from . import _ops  # noqa: F401  (loads the operators)
from .world import WorldSpec


def read_manifest(prefix):
    """The checked manifest P.json of the dataset at `prefix`, as a dict. Raises ValueError naming
    the file and field when it is missing or invalid."""
    return json.loads(torch.ops.npe.read_manifest(str(prefix)))


class Split(NamedTuple):
    """One split of a dataset.

    trajectories: [S, T, N, 5] float32 (CPU): x / pos_scale, y / pos_scale, vx / vel_scale,
      vy / vel_scale, mass per ball and frame; a slot of mass 0 is an absent ball (mixed counts).
    world: the dataset's npe.WorldSpec (WorldSpec.from_dataset); None for a walls world, whose walls
      differ per scene (npe's engine takes one obstacle layout per world).
    normalisation: pos_scale (px), vel_scale (px/s), frame_dt (s), step_scale (normalised
      positions advance by v * step_scale per frame).
    manifest: the whole manifest (read_manifest).
    walls: a walls world's walls, [S, 32, 4] float32 (CPU), a block per row: x / pos_scale,
      y / pos_scale, half side / pos_scale (0: an empty row), the scene's shape code (1 O, 2 L, 3 U,
      4 I; Chang et al. 2017, section 4); None for a world without walls (manifest world.walls).
    """
    name: str
    trajectories: torch.Tensor
    world: Optional[WorldSpec]
    normalisation: dict
    manifest: dict
    walls: Optional[torch.Tensor] = None


def load_split(prefix, split):
    """Loads split "train", "val" or "test" of the dataset at `prefix`, checked against its
    manifest (shape, finite values, positive masses; a merged sharded dataset's parts in order).
    Returns a Split. Raises ValueError naming the file, what was expected and what was found."""
    if not isinstance(split, str):
        raise TypeError(f"npe.load_split: split: expected \"train\", \"val\" or \"test\", found {type(split).__name__}")
    trajectories = torch.ops.npe.load_split(str(prefix), split)
    manifest = read_manifest(prefix)
    walls_world = bool(manifest["world"].get("walls"))
    world = None if walls_world else WorldSpec.from_dataset(prefix)
    n = manifest["normalisation"]
    norm = {"pos_scale": n["pos_scale"], "vel_scale": n["vel_scale"], "frame_dt": manifest["world"]["frame_dt"],
            "step_scale": manifest["world"]["frame_dt"] * n["vel_scale"] / n["pos_scale"]}
    walls = torch.ops.npe.load_walls(str(prefix), split) if walls_world else None
    return Split(split, trajectories, world, norm, manifest, walls)


class WindowDataset(torch.utils.data.Dataset):
    """The training windows of a split, as npe-train cuts them: window i is frames (t-1, t, t+1)
    of scene i // (T - 2), t = 1 + i % (T - 2), a tensor [3, N, 5]. A model predicts the velocities
    of frame t+1 from the first two frames: ``model(batch)`` approximates ``batch[:, 2, :, 2:4]``
    (absent balls, mass 0, excluded from losses). len = S * (T - 2)."""

    def __init__(self, split):
        t = split.trajectories if isinstance(split, Split) else split
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[3] != 5 or t.shape[1] < 3:
            raise ValueError(f"npe.WindowDataset: expected a Split or trajectories [S, T >= 3, N, 5], found "
                             f"{list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        self.trajectories = t
        self.per_scene = t.shape[1] - 2

    def __len__(self):
        return self.trajectories.shape[0] * self.per_scene

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"npe.WindowDataset: window {i} of {len(self)}")
        i %= len(self)
        s, t = divmod(i, self.per_scene)
        return self.trajectories[s, t:t + 3]
