"""npe from Python: the differentiable simulator, the engine, datasets and trained Neural Physics
Engine models (Chang, Ullman, Torralba, Tenenbaum, ICLR 2017, arXiv:1612.00341) as PyTorch
operators over npe's C++ library. docs/python.md documents every function.

    import torch, npe
    spec = npe.WorldSpec.from_dataset("data/balls_n4_t60_uniform/balls_n4_t60_uniform")
    x0, mass, radius = npe.sample_scenes(spec, seed=0, num_scenes=8)
    traj = npe.simulate(spec, x0.requires_grad_(), mass, radius, frames=60)   # [8, 61, 4, 4]
"""
from . import _ops, control
from .data import Split, WindowDataset, load_split, read_manifest
from .model import Model, load_model
from .sim import advance, simulate
from .world import Scenes, WorldSpec, sample_scenes

__version__ = _ops.version

__all__ = ["WorldSpec", "Scenes", "sample_scenes", "simulate", "advance", "read_manifest", "load_split", "Split",
           "WindowDataset", "load_model", "Model", "control", "__version__"]
