"""Worlds and their random scenes: the world a dataset is drawn from (npe-datagen's WorldDef) and
the engine's settings that simulate it. Defaults, checks and the engine's choice of contact
stiffness and substeps all come from npe's C++ (datagen/world.h, datagen/engine_world.h)."""
import json
import math
from typing import NamedTuple

import torch

from . import _ops  # noqa: F401  (loads the operators)


class WorldSpec:
    """A 2-D box of balls as npe-datagen draws and npe's engine simulates it. Immutable.

    ``WorldSpec(**fields)`` sets any of these fields; the others keep npe-datagen's defaults
    (the public PyTorch NPE recipe: 800 x 600 px box, 4 balls of radius 60 px, speeds up to
    60 px/s, 60 frames 0.1 s apart, elastic)::

        width, height        box, px (walls at x = 0, width and y = 0, height)
        radius               ball radius, px
        num_balls            balls per scene
        mass                 every ball's mass (mass units); variable_mass=True draws masses
        variable_mass        from mass_choices instead (default [1, 5, 25])
        max_speed            initial speeds ~ U[0, max_speed] px/s; the velocity normaliser
        velocity_law         "polar" (default) or "integer_per_axis" (Chang et al. 2017's data,
                             with max_axis_speed px per frame)
        min_separation       initial centres at least this many radii apart (default 2)
        frame_dt, timesteps  s between frames; frames per scene
        restitution          (0, 1]; 1 = elastic
        obstacles            npe-datagen --obstacles text: "capsule:x0,y0,x1,y1,r;box:cx,cy,hw,hh,deg"
        substeps, contact_omega, contact_ramp
                             the engine's penalty contact (0 / negative ramp: chosen from the
                             speed and radius as npe-datagen --engine gpu does; docs/engine.md)
        gravity_x, gravity_y px/s^2 (the simulator only; datasets have none)

    Attributes: every field above, resolved; ``normalisation`` (pos_scale px, vel_scale px/s,
    frame_dt s: a dataset's x / pos_scale, v / vel_scale); ``simulate_world`` and
    ``simulate_obstacles`` (the arguments of torch.ops.npe.simulate).

    Raises ValueError naming the field for an unknown field, a value of the wrong kind or range
    (num_balls=2.5, radius=-1, width=nan) or a world npe cannot simulate (balls that cannot fit,
    omega h > 1, ...); TypeError for a value that is no JSON number, string or list (a tensor;
    obstacles not given as text).
    """

    def __init__(self, **fields):
        for key, value in fields.items():
            if key == "obstacles" and not isinstance(value, str):
                raise TypeError(f"npe.WorldSpec: obstacles: expected npe-datagen's --obstacles text "
                                f"(\"capsule:x0,y0,x1,y1,r;box:cx,cy,hw,hh,deg\"), found {type(value).__name__}")
            if isinstance(value, torch.Tensor):
                raise TypeError(f"npe.WorldSpec: {key}: expected a number, found a tensor")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"npe.WorldSpec: {key}: expected a finite number, found {value}")
        try:
            text = json.dumps(fields)
        except TypeError as e:
            raise TypeError(f"npe.WorldSpec: expected numbers, booleans, strings and lists as fields: {e}") from None
        resolved = json.loads(torch.ops.npe.resolve_world(text))
        # plain attributes (not __getattr__), so that torch.compile reads them as constants
        self.__dict__.update(resolved)
        self.__dict__["_given"] = dict(fields)
        self.__dict__["_resolved"] = resolved

    @classmethod
    def from_dataset(cls, prefix):
        """The world of the dataset at `prefix` (P of P.json, P_train.npy, ...), as npe's engine
        simulates it: a Box2D dataset's world with the engine's own contact settings, an engine
        dataset's with those it recorded. Raises ValueError naming the file and field when the
        manifest is missing or invalid."""
        return cls(**json.loads(torch.ops.npe.dataset_world(str(prefix))))

    def replace(self, **fields):
        """A copy with some fields changed (the engine's settings are chosen again unless given)."""
        return WorldSpec(**{**self._given, **fields})

    def to_dict(self):
        """Every resolved field, as a dict (JSON-ready)."""
        return dict(self._resolved)

    def __setattr__(self, name, value):
        raise AttributeError("npe.WorldSpec is immutable: use spec.replace(field=value)")

    def __eq__(self, other):
        return isinstance(other, WorldSpec) and self._resolved == other._resolved

    def __repr__(self):
        r = self._resolved
        return (f"WorldSpec(width={r['width']}, height={r['height']}, num_balls={r['num_balls']}, "
                f"radius={r['radius']}, substeps={r['substeps']}, contact_omega={r['contact_omega']:.6g}, ...)")


class Scenes(NamedTuple):
    """Initial conditions of scenes: state [S, N, 4] (x, y px; vx, vy px/s), mass [S, N],
    radius [S, N] px."""
    state: torch.Tensor
    mass: torch.Tensor
    radius: torch.Tensor


def sample_scenes(spec, seed, num_scenes, first_scene=0, device="cpu", dtype=torch.float64):
    """Scenes first_scene .. first_scene + num_scenes - 1 of the dataset with seed `seed`: the same
    initial conditions as npe-datagen (either engine) writes for that seed, drawn by the same C++
    (datagen::sample_scene; centres clear of obstacles as npe-datagen --engine gpu). A world with
    a rejection rule (--preset npe2017) redraws scenes after simulating them with Box2D: these are
    the first draws. Returns Scenes(state [S, N, 4], mass [S, N], radius [S, N]) of `dtype` on
    `device`. Raises ValueError for mixed ball counts, num_scenes < 1 or a negative seed."""
    if not isinstance(spec, WorldSpec):
        raise TypeError(f"npe.sample_scenes: spec: expected an npe.WorldSpec, found {type(spec).__name__}")
    for name, v in (("seed", seed), ("num_scenes", num_scenes), ("first_scene", first_scene)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"npe.sample_scenes: {name}: expected an int, found {type(v).__name__}")
        if not -2**63 <= v < 2**63:
            raise ValueError(f"npe.sample_scenes: {name}: expected a 64-bit integer, found {v}")
    state, mass, radius = torch.ops.npe.sample_scenes(json.dumps(spec._given), seed, num_scenes, first_scene)
    return Scenes(*(t.to(device=device, dtype=dtype) for t in (state, mass, radius)))
