"""Loads npe's C++ operators (libnpe_torch_ops.so) into PyTorch and registers their fake kernels.

The library registers torch.ops.npe.* and torch.classes.npe.Model (python/src/ops.cpp,
gpu/src/diffsim_torch.cpp). The fake kernels below give the operators' output shapes and strides
without running them, so that torch.compile (fullgraph=True) traces through npe.simulate; they
must match the C++ kernels, which torch.library.opcheck verifies in python/tests.
"""
import os
import pathlib

import torch

_LIBRARY = "libnpe_torch_ops.so"


def _library_path():
    env = os.environ.get("NPE_TORCH_OPS")
    if env:
        if not pathlib.Path(env).is_file():
            raise ImportError(f"npe: NPE_TORCH_OPS={env!r}: expected the path of {_LIBRARY}, found no such file")
        return env
    here = pathlib.Path(__file__).with_name(_LIBRARY)
    if not here.is_file():
        raise ImportError(
            f"npe: {_LIBRARY} is not beside {pathlib.Path(__file__).parent}: install the package with "
            "scripts/setup.sh (or pip install --no-build-isolation . from the repository), or set "
            "NPE_TORCH_OPS to a built library"
        )
    return str(here)


torch.ops.load_library(_library_path())
version = torch.ops.npe.version()


def _ceil_div(a, b):
    return (a + b - 1) // b


def _trajectory_like(x0, frames):
    # the kernels write [frames + 1][4][N][S] and return it as [S, frames + 1, N, 4]
    S, N = x0.shape[0], x0.shape[1]
    return x0.new_empty((frames + 1, 4, N, S)).permute(3, 0, 2, 1)


@torch.library.register_fake("npe::simulate")
def _simulate_fake(initial_state, mass, radius, restitution, controls, world, obstacles, substeps, frames,
                   checkpoint_every=0):
    return _trajectory_like(initial_state, frames)


@torch.library.register_fake("npe::simulate_forward")
def _simulate_forward_fake(initial_state, mass, radius, restitution, controls, world, obstacles, substeps, frames,
                           checkpoint_every=0):
    S, N = initial_state.shape[0], initial_state.shape[1]
    total = frames * substeps
    k = checkpoint_every if checkpoint_every > 0 else substeps
    checkpoints = initial_state.new_empty((_ceil_div(total, k), 4, N * S))
    words = initial_state.new_empty((_ceil_div(total, 32) * N * S,), dtype=torch.int32)
    return _trajectory_like(initial_state, frames), checkpoints, words


@torch.library.register_fake("npe::simulate_backward")
def _simulate_backward_fake(trajectory_grad, initial_state, mass, radius, restitution, controls, checkpoints,
                            contact_words, world, obstacles, substeps, frames, checkpoint_every):
    S, N = initial_state.shape[0], initial_state.shape[1]
    x = initial_state
    g_controls = (x.new_empty((frames, 2, N, S)).permute(3, 0, 2, 1) if controls is not None
                  else x.new_empty((0,)))
    return (x.new_empty((4, N, S)).permute(2, 1, 0), x.new_empty((N, S)).t(), x.new_empty((N, S)).t(),
            x.new_empty((S,)), g_controls)


# The host-side operators' fakes compute their shapes from the world or the manifest (read at
# trace time): a traced function may draw scenes or load a split.
@torch.library.register_fake("npe::sample_scenes")
def _sample_scenes_fake(world, seed, num_scenes, first_scene=0):
    import json
    n = json.loads(torch.ops.npe.resolve_world(world))["num_balls"]
    return (torch.empty((num_scenes, n, 4), dtype=torch.float64), torch.empty((num_scenes, n), dtype=torch.float64),
            torch.empty((num_scenes, n), dtype=torch.float64))


@torch.library.register_fake("npe::load_split")
def _load_split_fake(prefix, split):
    import json
    m = json.loads(torch.ops.npe.read_manifest(prefix))
    info = next((s for s in m["splits"] if s["name"] == split), None)
    if info is None:
        raise ValueError(f"npe.load_split: split: expected one of the manifest's splits, found {split!r}")
    return torch.empty(tuple(info["shape"]), dtype=torch.float32)
