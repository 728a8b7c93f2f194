"""npe.read_manifest, npe.load_split and npe.WindowDataset (python/npe/data.py over the C++
dataset reader, datagen/dataset.h)."""
import json
import shutil

import numpy as np
import pytest
import torch

import npe
from conftest import run_tool


def test_load_split_is_the_npy_file_with_the_manifests_world(box2d_dataset):
    for name in ("train", "val", "test"):
        split = npe.load_split(box2d_dataset, name)
        expected = np.load(f"{box2d_dataset}_{name}.npy")
        assert split.name == name and split.trajectories.dtype == torch.float32
        assert torch.equal(split.trajectories, torch.from_numpy(expected))
    assert split.normalisation == {"pos_scale": 800.0, "vel_scale": 60.0, "frame_dt": 0.1,
                                   "step_scale": pytest.approx(0.1 * 60 / 800)}
    assert split.world == npe.WorldSpec.from_dataset(box2d_dataset)
    assert split.manifest["engine"] == "box2d" and split.manifest["seed"] == 5


def test_walls_worlds_load_their_walls(data_dir, box2d_dataset):
    prefix = data_dir / "walls" / "w"
    run_tool("npe-datagen", "--preset", "walls", "--walls", "U,I", "--num_scenes", 20, "--timesteps", 10, "--seed", 3,
             "--no_progress", "--out_prefix", prefix)
    for name in ("train", "val", "test"):
        split = npe.load_split(prefix, name)
        expected = np.load(f"{prefix}_{name}_walls.npy")
        assert torch.equal(split.walls, torch.from_numpy(expected))
        S = split.trajectories.shape[0]
        assert split.walls.shape == (S, 32, 4)
        blocks = (split.walls[..., 2] > 0).sum(1)
        assert set(blocks.tolist()) <= {30, 31}  # I: the ring and 2 free blocks; U: the ring and a bar
        assert set(split.walls[:, 0, 3].tolist()) <= {3.0, 4.0}
    assert split.manifest["world"]["walls"] == ["U", "I"] and split.world is None
    assert split.normalisation["step_scale"] == pytest.approx(0.1 * 600 / 800)
    with pytest.raises(ValueError, match="walls world"):
        npe.WorldSpec.from_dataset(prefix)
    assert npe.load_split(box2d_dataset, "val").walls is None
    with pytest.raises(ValueError, match="w_val_walls.npy"):
        (data_dir / "walls" / "w_val_walls.npy").write_bytes(b"bad")
        npe.load_split(prefix, "val")


def test_merged_shards_load_as_the_single_runs_arrays(box2d_dataset, data_dir):
    prefix = data_dir / "sharded" / "balls"
    for k in range(3):
        run_tool("npe-datagen", "--num_scenes", 40, "--timesteps", 20, "--seed", 5, "--no_progress", "--shard",
                 f"{k}/3", "--out_prefix", prefix)
    run_tool("npe-datagen", "--merge_shards", 3, "--out_prefix", prefix)
    assert "parts" in json.dumps(npe.read_manifest(prefix))
    for name in ("train", "val", "test"):
        assert torch.equal(npe.load_split(prefix, name).trajectories,
                           npe.load_split(box2d_dataset, name).trajectories)


def test_window_dataset_cuts_npe_trains_windows(box2d_dataset):
    split = npe.load_split(box2d_dataset, "val")
    S, T = split.trajectories.shape[:2]
    windows = npe.WindowDataset(split)
    assert len(windows) == S * (T - 2) == split.manifest["splits"][1]["windows"]
    i = 3 * (T - 2) + 5  # scene 3, frames 5..7
    assert torch.equal(windows[i], split.trajectories[3, 5:8])
    assert torch.equal(windows[-1], split.trajectories[-1, -3:])
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=7)))
    assert batch.shape == (7, 3, 4, 5)
    with pytest.raises(IndexError):
        windows[len(windows)]
    with pytest.raises(ValueError, match="trajectories"):
        npe.WindowDataset(torch.zeros(2, 2, 4, 5))


def test_bad_datasets_raise_naming_the_file(box2d_dataset, tmp_path):
    with pytest.raises(ValueError, match="missing.json"):
        npe.load_split(tmp_path / "missing", "train")
    with pytest.raises(ValueError, match="split"):
        npe.load_split(box2d_dataset, "training")
    prefix = tmp_path / "cut" / "balls"
    prefix.parent.mkdir()
    for suffix in (".json", "_train.npy", "_val.npy", "_test.npy"):
        shutil.copy(f"{box2d_dataset}{suffix}", f"{prefix}{suffix}")
    data = open(f"{prefix}_val.npy", "rb").read()
    open(f"{prefix}_val.npy", "wb").write(data[: len(data) // 2])  # a truncated file
    with pytest.raises(ValueError) as e:
        npe.load_split(prefix, "val")
    assert "balls_val.npy" in str(e.value) and "Exception raised from" not in str(e.value)
    assert npe.load_split(prefix, "train").trajectories.shape[0] == 28  # the others still load


def test_opcheck_the_host_operators(box2d_dataset):
    # tensor-returning operators: every check; string-returning ones: schema and registration
    # (AOT dispatch compares tensors only)
    torch.library.opcheck(torch.ops.npe.load_split.default, (str(box2d_dataset), "val"))
    torch.library.opcheck(torch.ops.npe.sample_scenes.default, ('{"num_balls": 3}', 1, 5, 2))
    for op, args in ((torch.ops.npe.version.default, ()), (torch.ops.npe.resolve_world.default, ("{}",)),
                     (torch.ops.npe.dataset_world.default, (str(box2d_dataset),)),
                     (torch.ops.npe.read_manifest.default, (str(box2d_dataset),))):
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
