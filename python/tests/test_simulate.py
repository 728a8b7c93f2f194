"""npe.simulate / npe.advance and the operators torch.ops.npe.simulate{,_forward,_backward}
(gpu/src/diffsim_torch.cpp): registration (opcheck), gradients against finite differences
(gradcheck, float64), torch.compile, the engine's own bits, errors, CUDA."""
import pytest
import torch

import npe
from conftest import cuda_or_skip

# A busy world (fast, large, heavy and light balls: many contacts in a few frames), as the C++
# tests' (tests/gpu/diffsim_torch_test.cpp).
BUSY = dict(max_speed=200.0, radius=70.0, variable_mass=True)


def inputs(gen, scenes=4, frames=3, dtype=torch.float64, device="cpu", controls=True, spec=None):
    spec = spec or npe.WorldSpec(**BUSY)
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))  # the scenes vary with NPE_TEST_SEED
    x0, mass, radius = npe.sample_scenes(spec, seed, scenes, dtype=dtype)
    N = x0.shape[1]
    restitution = (0.5 + 0.49 * torch.rand(scenes, generator=gen, dtype=torch.float64)).to(dtype)
    ctrl = (200 * torch.randn(scenes, frames, N, 2, generator=gen, dtype=torch.float64)).to(dtype) if controls else None
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return spec, to(x0), to(mass), to(radius), to(restitution), to(ctrl)


def op_args(spec, x0, mass, radius, e, ctrl, frames, k=0):
    return (x0, mass, radius, e, ctrl, spec.simulate_world, spec.simulate_obstacles, spec.substeps, frames, k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("controls", [False, True])
def test_opcheck_simulate_and_forward(gen, dtype, controls):
    spec, x0, mass, radius, e, ctrl = inputs(gen, scenes=3, frames=2, dtype=dtype, controls=controls,
                                             spec=npe.WorldSpec(**BUSY, obstacles="capsule:300,300,500,300,10"))
    for t in (x0, mass, radius, e) + ((ctrl,) if controls else ()):
        t.requires_grad_(True)
    args = op_args(spec, x0, mass, radius, e, ctrl, 2)
    torch.library.opcheck(torch.ops.npe.simulate.default, args)
    torch.library.opcheck(torch.ops.npe.simulate_forward.default, tuple(a.detach() if isinstance(a, torch.Tensor)
                                                                        else a for a in args))


@pytest.mark.parametrize("k", [0, 5])
def test_opcheck_simulate_backward(gen, k):
    spec, x0, mass, radius, e, ctrl = inputs(gen, scenes=3, frames=2)
    args = op_args(spec, x0, mass, radius, e, ctrl, 2, k)
    traj, ckpt, words = torch.ops.npe.simulate_forward(*args)
    g = torch.randn(traj.shape, generator=gen, dtype=traj.dtype)
    torch.library.opcheck(torch.ops.npe.simulate_backward.default,
                          (g, x0, mass, radius, e, ctrl, ckpt, words) + args[5:])


@pytest.mark.parametrize("k", [0, 7])
def test_gradients_match_finite_differences_in_float64(gen, k):
    check_gradients(gen, k)


# Seeds that failed a sweep (1e-6 steps on the controls, then on a mass; a contact-free rollout,
# radius gradient 0; a graze), replayed as the gen fixture drew them.
@pytest.mark.parametrize("seed, k", [(1103705712, 0), (1277757109, 7), (4140314906, 7), (843280564, 7),
                                     (1756051672, 0)])
def test_gradients_regression_seeds(seed, k):
    g = torch.Generator()
    name = f"test_gradients_match_finite_differences_in_float64[{k}]"
    g.manual_seed((seed * 1000003 + sum(map(ord, name))) % (2**63))
    check_gradients(g, k)


def check_gradients(gen, k):
    spec, x0, mass, radius, e, ctrl = inputs(gen, scenes=2, frames=2)
    w = torch.randn(2, 3, x0.shape[1], 4, generator=gen, dtype=torch.float64)

    def loss(x0, mass, radius, e, ctrl):  # any loss made of torch ops
        traj = npe.simulate(spec, x0, mass, radius, e, ctrl, frames=2, checkpoint_every=k)
        return (traj * w).sum() + traj[..., 0].pow(2).mean() / 100

    args = [t.clone().requires_grad_(True) for t in (x0, mass, radius, e, ctrl)]
    grads = torch.autograd.grad(loss(*args), args)
    # steps sized to each input (positions ~500 px, masses 1..25, radii 70 px, restitution ~0.7,
    # forces ~200): with the loss near 1e4, smaller steps drown in round-off (a 1e-6 step on the
    # controls was off by 1e-4 of their largest derivative, 1e-3 by 1e-8; on a mass, 1e-6 by 5e-5
    # and 1e-5 by 2e-7), larger ones straddle the kinks of the contact law's stiffness (a 1e-4 step
    # on a mass was off by 3e-5 of the largest derivative where 1e-5 was off by 3e-7)
    steps = (1e-5, 1e-5, 1e-5, 1e-6, 1e-3)
    for i, name in enumerate(("initial_state", "mass", "radius", "restitution", "controls")):
        def of_one(t):
            return loss(*args[:i], t, *args[i + 1:])

        # tolerance relative to the input's largest derivative, as the C++ test's (1e-5), plus the
        # round-off of a central difference of a loss near 1e4 (1e-6: a graze, largest radius
        # derivative 1e-4, was off by 2e-7)
        scale = grads[i].abs().max().item()
        assert torch.autograd.gradcheck(of_one, (args[i],), eps=steps[i], atol=1e-5 * scale + 1e-6, rtol=1e-4), name
    # the state, masses (a = u / m) and controls always reach the loss; radii and restitution only
    # through contacts
    assert all(grads[i].abs().max() > 0 for i in (0, 1, 4)), [g.abs().max().item() for g in grads]


def test_gradient_of_a_free_flight_is_analytic():
    # one ball far from walls, no contact: x(T) = x0 + v0 T, so d x(T) / d v0 = T exactly
    spec = npe.WorldSpec(num_balls=1)
    x0 = torch.tensor([[[400.0, 300.0, 10.0, -5.0]]], dtype=torch.float64, requires_grad=True)
    traj = npe.simulate(spec, x0, torch.ones(1, 1, dtype=torch.float64), frames=10)
    traj[0, -1, 0, 0].backward()
    assert x0.grad[0, 0].tolist() == pytest.approx([1.0, 0.0, 1.0, 0.0], abs=1e-12)
    assert traj[0, -1, 0, :2].tolist() == pytest.approx([410.0, 295.0], abs=1e-9)


def test_advance_is_the_engines_dataset_bit_for_bit(engine_dataset):
    # npe-datagen --engine gpu (C++, CPU reference, float32) against the operator from Python
    split = npe.load_split(engine_dataset, "train")
    spec = split.world
    manifest = split.manifest
    S, T = split.trajectories.shape[:2]
    scenes = npe.sample_scenes(spec, manifest["seed"], S, dtype=torch.float32)
    traj = npe.advance(spec, scenes.state, scenes.mass, frames=T - 1)
    assert not traj.requires_grad
    pos = torch.tensor(1 / spec.normalisation["pos_scale"], dtype=torch.float32)
    vel = torch.tensor(1 / spec.normalisation["vel_scale"], dtype=torch.float32)
    assert torch.equal(traj[..., :2] * pos, split.trajectories[..., :2])
    assert torch.equal(traj[..., 2:] * vel, split.trajectories[..., 2:4])


def test_simulate_equals_advance_and_keeps_inputs_intact(gen):
    spec, x0, mass, radius, e, ctrl = inputs(gen, dtype=torch.float32)
    before = [t.clone() for t in (x0, mass, radius, e, ctrl)]
    a = npe.advance(spec, x0, mass, radius, e, ctrl, frames=3)
    b = npe.simulate(spec, x0.requires_grad_(), mass, radius, e, ctrl, frames=3)
    assert torch.equal(a, b.detach()) and b.shape == (4, 4, 4, 4)
    assert torch.equal(b[:, 0], x0.detach())
    for t, u in zip((x0, mass, radius, e, ctrl), before):
        assert torch.equal(t.detach(), u)


def test_torch_compile_fullgraph_equals_eager(gen):
    spec, x0, mass, radius, e, ctrl = inputs(gen, scenes=3, frames=3)
    target = torch.rand(3, x0.shape[1], 2, generator=gen, dtype=torch.float64) * 600

    def step(x0, mass, e, ctrl):
        traj = npe.simulate(spec, x0, mass, radius, e, ctrl, frames=3)
        return traj, ((traj[:, -1, :, :2] - target) ** 2).mean()

    results = []
    for fn in (step, torch.compile(step, fullgraph=True)):
        args = [t.clone().requires_grad_(True) for t in (x0, mass, e, ctrl)]
        traj, loss = fn(*args)
        loss.backward()
        results.append((traj.detach(), loss.detach(), [a.grad for a in args]))
    (t0, l0, g0), (t1, l1, g1) = results
    assert torch.equal(t0, t1)
    torch.testing.assert_close(l1, l0, rtol=1e-12, atol=0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("change, error, words", [
    (lambda a: a.update(mass=a["mass"].t()), ValueError, ["mass", "expected shape [5, 4]", "found [4, 5]"]),
    (lambda a: a.update(mass=a["mass"][:, :3]), ValueError, ["mass", "expected shape [5, 4]", "[5, 3]"]),
    (lambda a: a.update(x0=a["x0"][..., :3]), ValueError, ["initial_state", "[5, 4, 3]"]),
    (lambda a: a.update(radius=a["radius"].float()), TypeError, ["radius", "Double", "Float"]),
    (lambda a: a.update(x0=a["x0"].int()), TypeError, ["initial_state", "float32 or float64"]),
    (lambda a: a.update(ctrl=a["ctrl"][:, :2]), ValueError, ["controls", "[5, 3, 4, 2]"]),
    (lambda a: a.update(e=a["e"] + 1), ValueError, ["restitution", "(0, 1]"]),
    (lambda a: a.update(mass=-a["mass"]), ValueError, ["mass", "positive"]),
    (lambda a: a.update(radius=0.0), ValueError, ["radius", "positive"]),
    (lambda a: a.update(frames=0), ValueError, ["frames", "found 0"]),
    (lambda a: a.update(frames=2.0), TypeError, ["frames", "int"]),
    (lambda a: a.update(mass="heavy"), TypeError, ["mass", "str"]),
    (lambda a: a.update(spec={"width": 800}), TypeError, ["spec", "WorldSpec"]),
    (lambda a: a.update(x0=a["x0"].cpu().numpy()), TypeError, ["initial_state", "ndarray"]),
    (lambda a: a.update(k=2.5), TypeError, ["checkpoint_every", "float"]),
])
def test_bad_arguments_raise_naming_the_argument(gen, change, error, words):
    spec, x0, mass, radius, e, ctrl = inputs(gen, scenes=5)
    a = dict(spec=spec, x0=x0, mass=mass, radius=radius, e=e, ctrl=ctrl, frames=3, k=0)
    change(a)
    with pytest.raises(error) as info:
        npe.simulate(a["spec"], a["x0"], a["mass"], a["radius"], a["e"], a["ctrl"], frames=a["frames"],
                     checkpoint_every=a["k"])
    message = str(info.value)
    for w in words:
        assert w in message, message
    assert "Exception raised from" not in message  # no C++ stack


def test_double_backward_raises_instead_of_returning_zeros(gen):
    spec, x0, mass, radius, e, ctrl = inputs(gen)
    x = x0.clone().requires_grad_(True)
    traj = npe.simulate(spec, x, mass, radius, e, ctrl, frames=3)
    (g,) = torch.autograd.grad((traj ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="simulate_backward"):
        g.sum().backward()


def test_unchecked_restitution_out_of_range_gives_nan(gen):
    # no value checks: the dashpot constant is NaN, in every contact and in the gradient
    spec, x0, mass, radius, e, ctrl = inputs(gen)
    bad = (e + 1).requires_grad_(True)
    traj = npe.simulate(spec, x0, mass, radius, bad, ctrl, frames=3, check_values=False)
    traj.sum().backward()
    assert bad.grad.isnan().all()


def test_the_operator_checks_shapes_without_the_wrapper(gen):
    spec, x0, mass, radius, e, ctrl = inputs(gen)
    with pytest.raises(ValueError, match="restitution: expected shape"):
        torch.ops.npe.simulate(*op_args(spec, x0, mass, radius, e[:2], ctrl, 3))
    with pytest.raises(ValueError, match="checkpoint_every: expected 0"):
        torch.ops.npe.simulate(*op_args(spec, x0, mass, radius, e, ctrl, 3, 3 * spec.substeps + 1))
    with pytest.raises(ValueError, match="world: expected 7 numbers"):
        torch.ops.npe.simulate(x0, mass, radius, e, ctrl, [800.0], [], spec.substeps, 3)
    with pytest.raises(ValueError, match="balls"):  # 33 balls: beyond the CPU simulator's 32
        x = torch.zeros(1, 33, 4, dtype=torch.float64)
        m = torch.ones(1, 33, dtype=torch.float64)
        torch.ops.npe.simulate(x, m, m, torch.ones(1, dtype=torch.float64), None, spec.simulate_world, [],
                               spec.substeps, 1)


def test_cuda_equals_cpu_bit_for_bit_without_synchronising(gen):
    device = cuda_or_skip()
    spec = npe.WorldSpec(**BUSY, obstacles="capsule:300,300,500,300,10;box:600,150,40,20,15")
    for dtype in (torch.float32, torch.float64):
        _, x0, mass, radius, e, ctrl = inputs(gen, scenes=64, frames=3, dtype=dtype, spec=spec)
        cpu = [t.clone().requires_grad_(True) for t in (x0, mass, radius, e, ctrl)]
        gpu = [t.to(device).requires_grad_(True) for t in (x0, mass, radius, e, ctrl)]
        tc = npe.simulate(spec, *cpu, frames=3)
        torch.cuda.synchronize()
        stream = torch.cuda.Stream()  # not the default stream: the kernels must follow the current one
        torch.cuda.set_sync_debug_mode("error")  # a synchronisation through PyTorch raises
        try:
            with torch.cuda.stream(stream):
                torch.cuda._sleep(200_000_000)  # the stream stays busy well past the calls below...
                tg = npe.simulate(spec, *gpu, frames=3, check_values=False)
                (tg ** 2).sum().backward()
                assert not stream.query()  # ...so the host never waited for it (a raw CUDA sync would)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        (tc ** 2).sum().backward()
        assert torch.equal(tc.detach(), tg.detach().cpu())
        for a, b in zip(cpu, gpu):
            assert torch.equal(a.grad, b.grad.cpu())


def test_cuda_device_mismatch_is_named(gen):
    device = cuda_or_skip()
    spec, x0, mass, radius, e, ctrl = inputs(gen)
    with pytest.raises(ValueError, match="mass: expected a tensor on cpu"):
        npe.simulate(spec, x0, mass.to(device), radius, e, ctrl, frames=3)
    with pytest.raises(ValueError, match="controls: expected a tensor on cpu"):
        npe.simulate(spec, x0, mass, radius, e, ctrl.to(device), frames=3)
