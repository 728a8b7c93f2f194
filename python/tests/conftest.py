"""Fixtures of the Python package's tests: npe's tools (NPE_BIN, the build's bin/) make small
datasets and checkpoints once per session; NPE_TEST_SEED fixes the random draws (a fixed default,
as the C++ suite; scripts/seed_sweep.sh sets fresh ones)."""
import os
import pathlib
import subprocess

import pytest
import torch

ROOT = pathlib.Path(os.environ.get("NPE_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
BIN = pathlib.Path(os.environ.get("NPE_BIN", ROOT / "build" / "bin"))


def run_tool(*args):
    """Runs an npe tool from BIN; fails the test with its output when it exits non-zero."""
    r = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def seed():
    value = os.environ.get("NPE_TEST_SEED", "20261207")
    if value == "fresh":
        value = str(int.from_bytes(os.urandom(4), "little"))
    print(f"[seed] NPE_TEST_SEED={value}")
    return int(value)


@pytest.fixture
def gen(seed, request):
    """A torch.Generator per test, from the session seed and the test's name (stable across runs)."""
    g = torch.Generator()
    g.manual_seed((seed * 1000003 + sum(map(ord, request.node.name))) % (2**63))
    return g


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("npe")


@pytest.fixture(scope="session")
def engine_dataset(data_dir):
    """12 scenes of 20 frames simulated by npe's engine (its CPU reference), masses 1/5/25,
    restitution 0.75 (the dashpot; exact in float32, as the engine's float64 setting) and one capsule obstacle."""
    prefix = data_dir / "engine" / "balls"
    run_tool("npe-datagen", "--engine", "gpu", "--cpu", "--num_scenes", 12, "--timesteps", 20, "--variable_mass",
             "--restitution", 0.75, "--obstacles", "capsule:250,300,550,300,12", "--seed", 11, "--no_progress",
             "--out_prefix", prefix)
    return prefix


@pytest.fixture(scope="session")
def box2d_dataset(data_dir):
    """40 scenes of 20 frames simulated by Box2D."""
    prefix = data_dir / "box2d" / "balls"
    run_tool("npe-datagen", "--num_scenes", 40, "--timesteps", 20, "--seed", 5, "--no_progress", "--out_prefix",
             prefix)
    return prefix


@pytest.fixture(scope="session")
def checkpoints(data_dir, box2d_dataset):
    """Tiny classic and modern checkpoints trained on box2d_dataset (320 windows each)."""
    out = data_dir / "ck"
    for kind in ("classic", "modern"):
        run_tool("npe-train", *(["--modern", "--msg_dim", 16] if kind == "modern" else []), "--device", "cpu",
                 "--batch_size", 16, "--total_samples", 320, "--eval_every", 10, "--no_progress", "--name", kind,
                 "--checkpoint_dir", out, "--dataset_prefix", box2d_dataset)
    return out


def cuda_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to PyTorch")
    return torch.device("cuda")
