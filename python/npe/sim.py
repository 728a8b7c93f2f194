"""The differentiable simulator and the engine from PyTorch: npe's penalty-contact ball engine
(semi-implicit Euler, docs/engine.md) with its hand-written adjoint (docs/diffsim.md), as the
operator torch.ops.npe.simulate (C++, CPU and CUDA, float32 and float64)."""
import numbers

import torch

from . import _ops  # noqa: F401  (loads the operators)
from .world import WorldSpec


def _as_tensor(value, name, like, shape):
    """A tensor argument, or a number broadcast to `shape` (dtype and device of `like`)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return torch.full(shape, float(value), dtype=like.dtype, device=like.device)
    raise TypeError(f"npe.simulate: {name}: expected a tensor of shape {list(shape)} or a number, "
                    f"found {type(value).__name__}")


def _check_values(initial_state, mass, radius, restitution, controls):
    # one read-back of four flags (a host synchronisation on CUDA); skipped while compiling
    bad = torch.stack([
        ~torch.isfinite(initial_state).all(),
        ~((mass > 0) & torch.isfinite(mass)).all(),
        ~((radius > 0) & torch.isfinite(radius)).all(),
        ~((restitution > 0) & (restitution <= 1)).all(),
        ~torch.isfinite(controls).all() if controls is not None else torch.zeros((), dtype=torch.bool,
                                                                                  device=mass.device),
    ]).tolist()
    what = ["initial_state: expected finite positions (px) and velocities (px/s)",
            "mass: expected positive finite masses", "radius: expected positive finite radii (px)",
            "restitution: expected values in (0, 1]", "controls: expected finite forces (mass px/s^2)"]
    for flag, message in zip(bad, what):
        if flag:
            raise ValueError("npe.simulate: " + message)


def simulate(spec, initial_state, mass, radius=None, restitution=None, controls=None, frames=1,
             checkpoint_every=0, check_values=True):
    """Rolls out `frames` frames of npe's engine, differentiably.

    Args:
      spec: npe.WorldSpec: the box, frame_dt, substeps, contact stiffness (contact_omega), onset
        ramp, gravity and obstacles. Its radius, masses and restitution are not used: the
        arguments carry them, per scene.
      initial_state: [S, N, 4] x, y (px), vx, vy (px/s); float32 or float64, CPU or CUDA.
        N is at most 32 on the CPU and 16 on CUDA.
      mass: [S, N] (mass units) > 0.
      radius: [S, N] px > 0, or a number, or None for spec.radius.
      restitution: [S] in (0, 1], or a number, or None for spec.restitution.
      controls: None, or [S, frames, N, 2]: a force on each ball during each frame (mass px/s^2).
      frames: frames of spec.frame_dt seconds, spec.substeps substeps each.
      checkpoint_every: substeps between the states stored for the adjoint (0: one per frame);
        smaller saves memory on long rollouts (docs/diffsim.md).
      check_values: check that masses, radii and restitutions are in range and the state finite
        (one read-back, a host synchronisation on CUDA); skipped under torch.compile. The operator
        itself checks shapes, dtypes, devices and the world, and never synchronises; a
        restitution outside (0, 1] that reaches it unchecked gives NaN in every contact of its
        scene and in its gradient.

    Returns:
      The trajectory [S, frames + 1, N, 4] (frame 0 = initial_state), same dtype and device.
      Differentiable with respect to initial_state, mass, radius, restitution and controls
      through the adjoint (Chang et al. 2017 give the world; gpu/src/adjoint.h the derivation).

    Raises:
      TypeError: an argument of the wrong type or dtype (dtypes must all match initial_state's).
      ValueError: a wrong shape or device (naming the argument, expected and found), a value out of
        range, or a world the simulator cannot run (omega h > 1, too many balls).
    """
    if not isinstance(spec, WorldSpec):
        raise TypeError(f"npe.simulate: spec: expected an npe.WorldSpec, found {type(spec).__name__}")
    if not isinstance(initial_state, torch.Tensor):
        raise TypeError(f"npe.simulate: initial_state: expected a tensor [scenes, balls, 4], "
                        f"found {type(initial_state).__name__}")
    for name, v in (("frames", frames), ("checkpoint_every", checkpoint_every)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"npe.simulate: {name}: expected an int, found {type(v).__name__}")
    if initial_state.dim() != 3:
        raise ValueError(f"npe.simulate: initial_state: expected shape [scenes, balls, 4], "
                         f"found {list(initial_state.shape)}")
    S, N = initial_state.shape[0], initial_state.shape[1]
    mass = _as_tensor(mass, "mass", initial_state, (S, N))
    radius = _as_tensor(spec.radius if radius is None else radius, "radius", initial_state, (S, N))
    restitution = _as_tensor(spec.restitution if restitution is None else restitution, "restitution",
                             initial_state, (S,))
    if controls is not None and not isinstance(controls, torch.Tensor):
        raise TypeError(f"npe.simulate: controls: expected a tensor [scenes, frames, balls, 2] or None, "
                        f"found {type(controls).__name__}")
    if check_values and not torch.compiler.is_compiling():
        same = all(t.shape == s for t, s in ((mass, (S, N)), (radius, (S, N)), (restitution, (S,)))) and all(
            t.device == initial_state.device for t in (mass, radius, restitution) + (
                (controls,) if controls is not None else ()))
        if same:  # else the operator names the argument
            _check_values(initial_state, mass, radius, restitution, controls)
    return torch.ops.npe.simulate(initial_state, mass, radius, restitution, controls, spec.simulate_world,
                                  spec.simulate_obstacles, spec.substeps, frames, checkpoint_every)


def advance(spec, initial_state, mass, radius=None, restitution=None, controls=None, frames=1,
            check_values=True):
    """The engine alone: simulate() without gradients, storing nothing for an adjoint (one state
    and no contact record), for fast batched rollouts. Same arguments, shapes and errors; returns
    [S, frames + 1, N, 4], detached. With uniform restitution and no controls these are the bits
    of npe-datagen --engine gpu's simulation (the CPU reference in float32 equals CUDA float32),
    for a restitution the dtype holds exactly (the engine takes it in float64: 0.8 in float32 is
    0.800000012, 0.75 is exact)."""
    with torch.no_grad():
        return simulate(spec, initial_state, mass, radius, restitution, controls, frames,
                        check_values=check_values)
