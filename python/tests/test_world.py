"""npe.WorldSpec and npe.sample_scenes (python/npe/world.py over python/src/ops.cpp)."""
import pytest
import torch

import npe


def test_defaults_are_npe_datagens_and_the_engine_settings_are_chosen():
    spec = npe.WorldSpec()
    assert (spec.width, spec.height, spec.radius, spec.num_balls) == (800.0, 600.0, 60.0, 4)
    # choose_contact(2 * 60 px/s, 60 px, 0.1 s): omega 200 /s, 64 substeps, ramp 0.15 px (engine.h)
    assert spec.contact_omega == pytest.approx(200.0)
    assert spec.substeps == 64
    assert spec.contact_ramp == pytest.approx(0.15)
    assert spec.simulate_world == [800.0, 600.0, spec.contact_omega, spec.contact_ramp, 0.0, 0.0, 0.1]
    assert spec.simulate_obstacles == []
    assert spec.normalisation == {"pos_scale": 800.0, "vel_scale": 60.0, "frame_dt": 0.1}


def test_fields_set_obstacles_gravity_and_replace():
    spec = npe.WorldSpec(width=1000, radius=30, obstacles="capsule:100,100,400,100,10;box:700,400,50,20,30",
                         gravity_y=-98.1)
    assert spec.width == 1000.0 and spec.radius == 30.0
    assert spec.simulate_world[5] == -98.1
    assert len(spec.simulate_obstacles) == 14
    assert spec.simulate_obstacles[:7] == [0.0, 100.0, 100.0, 400.0, 100.0, 10.0, 0.0]
    assert spec.simulate_obstacles[7] == 1.0 and spec.simulate_obstacles[13] == pytest.approx(0.5235987755982988)
    smaller = spec.replace(radius=20)
    assert smaller.radius == 20.0 and smaller.width == 1000.0
    assert smaller.contact_omega != spec.contact_omega  # chosen again for the new radius
    with pytest.raises(AttributeError, match="immutable"):
        spec.width = 3


@pytest.mark.parametrize("fields, error, words", [
    ({"widht": 800}, ValueError, ["widht", "not a world field", "width"]),
    ({"radius": -1}, ValueError, ["radius", "-1"]),
    ({"num_balls": 2.5}, ValueError, ["num_balls", "2.5"]),
    ({"substeps": 2}, ValueError, ["substeps"]),
    ({"velocity_law": "spiral"}, ValueError, ["velocity_law", "spiral"]),
    ({"obstacles": "circle:1,2,3"}, ValueError, ["circle"]),
    ({"obstacles": [1, 2]}, TypeError, ["obstacles", "list"]),
    ({"width": torch.tensor(3.0)}, TypeError, ["width", "tensor"]),
    ({"width": float("nan")}, ValueError, ["width", "finite", "nan"]),
])
def test_bad_fields_raise_naming_the_field(fields, error, words):
    with pytest.raises(error) as e:
        npe.WorldSpec(**fields)
    for w in words:
        assert w in str(e.value)
    assert "Exception raised from" not in str(e.value)  # no C++ stack


def test_from_dataset_reads_the_manifests_world(engine_dataset, box2d_dataset):
    spec = npe.WorldSpec.from_dataset(engine_dataset)
    manifest = npe.read_manifest(engine_dataset)
    w = manifest["world"]
    assert spec.variable_mass and spec.restitution == 0.75 and spec.timesteps == 20
    assert (spec.substeps, spec.contact_omega, spec.contact_ramp) == (w["substeps"], w["contact_omega"],
                                                                      w["contact_ramp"])
    assert spec.obstacles.startswith("capsule:250")
    # a Box2D dataset's world gets the engine's own settings, not Box2D's 10 steps per frame
    b = npe.WorldSpec.from_dataset(box2d_dataset)
    assert b.substeps == npe.WorldSpec().substeps and b.contact_omega == npe.WorldSpec().contact_omega


def test_from_dataset_names_the_missing_manifest(tmp_path):
    with pytest.raises(ValueError, match="nowhere.json"):
        npe.WorldSpec.from_dataset(tmp_path / "nowhere")


def test_sample_scenes_are_the_datasets_initial_conditions(engine_dataset):
    spec = npe.WorldSpec.from_dataset(engine_dataset)
    manifest = npe.read_manifest(engine_dataset)
    split = npe.load_split(engine_dataset, "test")
    first = next(s for s in manifest["splits"] if s["name"] == "test")["first_scene"]
    scenes = npe.sample_scenes(spec, manifest["seed"], split.trajectories.shape[0], first_scene=first,
                               dtype=torch.float32)
    frame0 = split.trajectories[:, 0]
    pos = torch.tensor(1 / spec.normalisation["pos_scale"], dtype=torch.float32)
    vel = torch.tensor(1 / spec.normalisation["vel_scale"], dtype=torch.float32)
    # the engine records x * float32(1 / pos_scale) (gpu/src/engine_internal.h record_body)
    assert torch.equal(frame0[..., 0:2], scenes.state[..., 0:2] * pos)
    assert torch.equal(frame0[..., 2:4], scenes.state[..., 2:4] * vel)
    assert torch.equal(frame0[..., 4], scenes.mass)
    assert torch.equal(scenes.radius, torch.full_like(scenes.mass, spec.radius))


def test_sample_scenes_depend_only_on_seed_and_index():
    spec = npe.WorldSpec(variable_mass=True)
    a = npe.sample_scenes(spec, 3, 10)
    b = npe.sample_scenes(spec, 3, 4, first_scene=6)
    assert torch.equal(a.state[6:], b.state) and torch.equal(a.mass[6:], b.mass)
    assert not torch.equal(npe.sample_scenes(spec, 4, 10).state, a.state)
    assert a.state.dtype == torch.float64 and a.state.shape == (10, 4, 4)


def test_sample_scenes_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="ball_counts"):
        npe.sample_scenes(npe.WorldSpec(ball_counts=[3, 4]), 0, 2)
    with pytest.raises(ValueError, match="num_scenes"):
        npe.sample_scenes(npe.WorldSpec(), 0, 0)
    with pytest.raises(ValueError, match="seed"):
        npe.sample_scenes(npe.WorldSpec(), -1, 2)
    with pytest.raises(TypeError, match="seed"):
        npe.sample_scenes(npe.WorldSpec(), 1.5, 2)
    with pytest.raises(TypeError, match="WorldSpec"):
        npe.sample_scenes({"width": 3}, 0, 2)
