"""The fused, compiled steps of cl.Langevin (cvlearn.engine._fused) against the eager steps.

Every fast test but one shares one configuration (Muller-Brown, 2 walkers, float64, metadynamics on x
with outside="error"), so the process compiles it once (~8 s on 2 busy cores).
"""

import logging
import warnings

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.bias._hermite import HermiteField
from cvlearn.engine import _fused


def _metad(**kwargs):
    cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [0.0]]), cl.features.Positions(1, 2))
    return cl.WellTemperedMetad(cv, sigma=0.1, height=1.5, bias_factor=10.0, pace=100, grid=cl.Grid(-2.0, 1.5, 300),
                                outside="error", **kwargs)


def _engine(compile, bias=None, seed=0, positions=None, system=None):
    return cl.Langevin(system or cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=2, seed=seed,
                       bias=_metad() if bias is None else bias, positions=positions, compile=compile)


def test_fused_blocks_equal_the_eager_steps(tmp_path):
    eager, fused = _engine(False), _engine(True)
    a = eager.run(600, stride=50, colvar=str(tmp_path / "eager"), hills=str(tmp_path / "HILLS.eager"))
    b = fused.run(600, stride=50, colvar=str(tmp_path / "fused"), hills=str(tmp_path / "HILLS.fused"))
    assert fused._fused is not None and fused.compile_failure is None  # the compiled path ran
    assert fused._fused.depositing == (0,) and fused._fused.periods == []  # hills deposited inside the blocks
    assert eager._fused is None
    np.testing.assert_array_equal(a.step, b.step)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.potential_energy, a.potential_energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.bias_energy, a.bias_energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fused.velocities, eager.velocities, rtol=0, atol=1e-9)
    ma, mb = eager.biases[0], fused.biases[0]
    assert ma.n_hills == mb.n_hills == 12  # 2 walkers x 6 depositions
    np.testing.assert_allclose(mb.field.values(), ma.field.values(), rtol=0, atol=1e-9)
    for walker in (0, 1):  # the COLVAR rows of the blocks' last configurations, rct included
        np.testing.assert_allclose(np.loadtxt(tmp_path / f"fused.{walker}"), np.loadtxt(tmp_path / f"eager.{walker}"),
                                   rtol=0, atol=1e-9)
    for key in ("center", "height", "step"):  # the hills, the HILLS files and c(t)
        np.testing.assert_allclose(mb.hills[key], ma.hills[key], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "HILLS.fused"), np.loadtxt(tmp_path / "HILLS.eager"), rtol=1e-9)
    assert mb.rct_steps == ma.rct_steps == [0, 100, 200, 300, 400, 500, 600]
    np.testing.assert_allclose(mb.rct, ma.rct, rtol=0, atol=1e-9)


def test_fused_seed_reproduces_a_run_across_a_restart(tmp_path):
    whole = _engine(True, seed=3).run(500, stride=50)
    first_bias = _metad(hills=str(tmp_path / "HILLS"))
    first = _engine(True, bias=first_bias, seed=3)
    part1 = first.run(300, stride=50, checkpoint=str(tmp_path / "state.npz"))
    first_bias.close()
    again = _engine(True, bias=_metad(hills=str(tmp_path / "HILLS"), restart=True), seed=42)
    again.load_checkpoint(tmp_path / "state.npz")
    part2 = again.run(200, stride=50, restart=True)
    np.testing.assert_array_equal(cl.Trajectory.concatenate([part1, part2]).positions, whole.positions)
    assert again.compile_seconds == 0.0  # compiled once per process, not per engine


def test_an_interrupt_inside_a_block_loses_nothing(tmp_path, monkeypatch):
    whole = _engine(True, seed=5).run(400, stride=50)
    compiled, calls = _fused._compiled_block, []

    def interrupted_at_the_fourth_block(device_type):
        block = compiled(device_type)

        def call(*args):
            calls.append(None)
            if len(calls) == 4:
                raise KeyboardInterrupt
            return block(*args)
        return call

    monkeypatch.setattr(_fused, "_compiled_block", interrupted_at_the_fourth_block)
    engine = _engine(True, seed=5)
    with pytest.raises(KeyboardInterrupt):
        engine.run(400, stride=50, checkpoint=tmp_path / "state.npz")
    assert engine.step == 150  # three blocks of 50 steps done, the fourth undone
    saved = np.load(tmp_path / "state.npz")
    assert int(saved["step"]) == 150
    assert int(saved["noise_key"]) == engine.noise_key and engine.biases[0].n_hills == 2  # the hills of step 100
    rest = engine.run(250, stride=50)  # the same engine goes on where it stopped: the same trajectory
    np.testing.assert_array_equal(rest.positions, whole.positions[3:])


def test_a_failing_block_is_replayed_by_the_eager_steps():
    """A walker leaving the grid (outside="error") stops both paths at the same step with the same error."""
    start = [[1.4, 2.5]]  # near the grid's upper edge x = 1.5, where the fourth Muller-Brown term pushes out
    errors = []
    for compile in (False, True):
        engine = _engine(compile, positions=start)
        with pytest.raises(cl.SimulationError) as info:
            engine.run(2000, stride=10)
        errors.append(info.value)
        assert engine.step == info.value.step - 1  # the state stays at the last good step
    assert errors[0].step == errors[1].step and errors[0].walkers == errors[1].walkers
    assert str(errors[0]) == str(errors[1])
    assert errors[1].trajectory.n_frames == (errors[1].step - 1) // 10


def test_no_compiler_warns_once_and_runs_the_eager_steps(monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    monkeypatch.setattr(_fused, "_compiled", {})
    engine = _engine(True)
    with pytest.warns(RuntimeWarning, match="compiled fused steps are unavailable .*no C\\+\\+ compiler") as record:
        traj = engine.run(300, stride=50)
        engine.run(300, stride=50)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert engine.compile_failure == "RuntimeError: no C++ compiler found"
    np.testing.assert_array_equal(traj.positions, _engine(False).run(300, stride=50).positions)


def test_an_uncompilable_potential_warns_once_and_runs_the_eager_steps():
    mb = cl.systems.MullerBrown()

    def potential(x):  # a Python branch on tensor values: torch.compile cannot trace it into a loop
        if bool((x.abs() > 10.0).any()):
            raise ValueError("a walker flew away")
        return mb.potential(x)

    system = cl.systems.from_function(potential, n_particles=1, n_dims=2, start=[mb.minima["A"]])
    engine = _engine(True, bias=[], system=system)
    with pytest.warns(RuntimeWarning, match="compiled fused steps are unavailable") as record:
        traj = engine.run(200, stride=50)
        engine.run(100, stride=50)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    np.testing.assert_array_equal(traj.positions, _engine(False, bias=[], system=system).run(200, stride=50).positions)


def test_a_fused_path_failing_even_eagerly_warns_once_and_runs_the_eager_steps():
    class Broken(cl.systems.MullerBrown):  # a traced force path that raises before anything is compiled
        def traced_energy_and_forces(self, x):
            raise RuntimeError("no traced forces here")

    engine = _engine(True, system=Broken())
    with pytest.warns(RuntimeWarning, match="unavailable .RuntimeError: no traced forces here") as record:
        traj = engine.run(200, stride=50)
        engine.run(100, stride=50)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert record[0].filename == __file__  # the warning points at the caller's run()
    np.testing.assert_array_equal(traj.positions, _engine(False).run(200, stride=50).positions)


def test_compile_choice():
    unfused = type("Unfused", (cl.OPES,), {"fused_forces": None})  # a bias without fused force path
    opes = unfused(cl.features.Positions(1, 2), barrier=20.0, pace=50, sigma=0.1)
    with pytest.warns(RuntimeWarning, match="compile=True but Unfused has no fused force path"):
        engine = _engine(True, bias=opes)
        engine.run(100, stride=50)
    assert engine._fused is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = _engine("auto")
        short.run(100, stride=50)  # auto: 100 steps are not worth a compilation
        _engine("auto", bias=opes).run(100, stride=50)  # auto: no warning for a bias without fused path
    assert short._fused is None
    planned = _engine("auto")
    planned.planned_steps = 100_000  # a chunk of a long run: auto weighs the whole
    planned.run(100, stride=50)
    assert planned._fused is not None and planned.compile_failure is None
    with pytest.raises(ValueError, match="compile must be 'auto', True or False"):
        _engine("yes")


def test_compiling_is_announced(caplog, monkeypatch):
    """The pause of a compilation is said before it and timed after it (the command line shows both)."""
    monkeypatch.setattr(_fused, "_seen", set())  # as in a process that has not run this configuration yet
    with caplog.at_level(logging.INFO, logger="cvlearn.engine"):
        _engine(True).run(100, stride=50)
        _engine(True).run(100, stride=50)  # the same configuration again: nothing to say
    said = [r.getMessage() for r in caplog.records if r.name == "cvlearn.engine"]
    assert len(said) == 2 and said[0].startswith("Langevin: compiling the fused steps"), said
    assert said[1].startswith("Langevin: compiled the fused steps in")


def test_small_engines_compile_single_threaded():
    """Below PARALLEL_ELEMENTS position values the blocks compile for one thread (no parallel region to wait
    on a busy machine); above, inductor's default (all of torch's threads)."""
    from torch._inductor import config

    default = config.cpp.threads
    with _fused.FusedSteps(_engine(True))._inductor_options():
        assert config.cpp.threads == 1
    assert config.cpp.threads == default
    many = cl.Langevin(cl.systems.MullerBrown(), n_walkers=_fused.PARALLEL_ELEMENTS // 2, bias=_metad(), compile=True)
    with _fused.FusedSteps(many)._inductor_options():
        assert config.cpp.threads == default


@pytest.mark.slow
@pytest.mark.parametrize("periodic", [False, True])
def test_fused_two_dimensional_grid_walls_and_from_function(periodic):
    """2-D metadynamics (periodic or not) and two walls on a potential from a plain function (forces by
    torch.func)."""
    mb = cl.systems.MullerBrown()
    system = cl.systems.from_function(mb.potential, n_particles=1, n_dims=2, start=[mb.minima["A"]])

    def engine(compile):
        bias = cl.WellTemperedMetad(cl.features.Positions(1, 2), sigma=[0.1, 0.1], height=1.5, bias_factor=10.0,
                                    pace=50, grid=cl.Grid([-2.0, -1.0], [1.5, 2.5], 80, periodic=periodic),
                                    outside="wall")
        walls = [cl.bias.UpperWall(cl.features.Positions(1, 2), at=[0.5, 2.0], kappa=50.0),
                 cl.bias.LowerWall(cl.features.Positions(1, 2), at=[-1.0, 0.0], kappa=[20.0, 30.0])]
        return _engine(compile, bias=[bias, *walls], system=system)

    a, b = engine(False).run(400, stride=50), engine(True).run(400, stride=50)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.bias_energy, a.bias_energy, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_fused_hidden_double_well_and_float32():
    """An embedded 10-D system with analytic forces (float64, to 1e-10), and metadynamics in float32 (the grid
    interpolated in float64 on the CPU, as the eager path does; positions to float32 round-off)."""
    def engine(compile, system, dtype, bias):
        return cl.Langevin(system, timestep=0.02, friction=1.0, n_walkers=3, seed=1, bias=bias, dtype=dtype,
                           compile=compile)

    hidden = cl.systems.HiddenDoubleWell(dim=10)
    a = engine(False, hidden, torch.float64, None).run(300, stride=50)
    b = engine(True, hidden, torch.float64, None).run(300, stride=50)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-10)
    mb = cl.systems.MullerBrown()
    a = cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=2, seed=0, bias=_metad(), dtype=torch.float32,
                    compile=False).run(200, stride=50)
    fused = cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=2, seed=0, bias=_metad(), dtype=torch.float32,
                        compile=True)
    b = fused.run(200, stride=50)
    assert fused.compile_failure is None
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-4)


@pytest.mark.parametrize("grid", [cl.Grid(-1.0, 2.0, 61),
                                  cl.Grid([-1.0, -np.pi], [1.0, np.pi], [30, 40], periodic=[False, True]),
                                  cl.Grid([-1.0, 0.0, -0.5], [1.0, 1.0, 0.5], [12, 9, 10])])
def test_traced_interpolation_and_deposit_equal_the_eager_ones(grid):
    """The torch interpolation the compiled steps trace (Python-number constants) against the numpy one, and
    the deposits of hills in torch (windows, or every grid point) against the eager add_gaussians (windows,
    chunk by chunk)."""
    rng = np.random.default_rng(0)
    field = HermiteField(grid)
    d = grid.ndim
    centers = rng.uniform(grid.lo, grid.hi, (7, d))
    sigmas = 4 * np.max(grid.spacing)
    field.add_gaussians(centers, sigmas, rng.uniform(0.5, 2.0, 7))
    points = torch.as_tensor(rng.uniform(grid.lo, grid.hi, (50, d)))
    value, grad = field.value_and_gradient(points)
    traced_value, traced_grad = field.traced_value_and_gradient(points, field.traced_state("cpu"))
    np.testing.assert_allclose(traced_value, value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traced_grad, grad, rtol=1e-12, atol=1e-11)
    chunked = HermiteField(grid)
    chunked.add_gaussians(centers, sigmas, np.full(7, 1.5), chunk_points=1)  # hill by hill
    once = HermiteField(grid)
    once.data = once.traced_add_gaussians(once.data, torch.as_tensor(centers), (sigmas,) * d, torch.full((7,), 1.5))
    np.testing.assert_allclose(once.data, chunked.data, rtol=1e-12, atol=1e-12)
    dense = once.dense_add_gaussians(torch.zeros_like(once.data), torch.as_tensor(centers), (sigmas,) * d,
                                     torch.full((7,), 1.5))  # every grid point, zero beyond the cutoff
    np.testing.assert_allclose(dense, chunked.data, rtol=1e-12, atol=1e-12)


def test_a_checkpoint_holds_the_bias_grid_and_checks_the_rebuilt_one(tmp_path):
    """A restart adopts the checkpoint's grid (compiled deposits and a rebuild from HILLS agree to round-off)
    after checking it against the bias rebuilt from the HILLS file; a bias without those hills is refused."""
    first = _engine(False, bias=_metad(hills=str(tmp_path / "HILLS")), seed=2)
    first.run(300, stride=100, checkpoint=str(tmp_path / "state.npz"))
    first.biases[0].close()
    grid = first.biases[0].field.data.clone()
    saved = np.load(tmp_path / "state.npz")
    np.testing.assert_array_equal(saved["bias0_state0"], grid.numpy())
    again = _engine(False, bias=_metad(hills=str(tmp_path / "HILLS"), restart=True), seed=2)
    again.biases[0].field.data += 1e-13  # what a rebuild may differ by
    again.load_checkpoint(tmp_path / "state.npz")
    again.run(100, stride=100, restart=True)
    assert again.step == 400 and again.biases[0].n_hills == 8
    fresh = _engine(False, seed=2)  # a new bias, not rebuilt from the checkpointed run's hills
    fresh.load_checkpoint(tmp_path / "state.npz")
    with pytest.raises(ValueError, match="differs from the one rebuilt from its files"):
        fresh.run(100, stride=100)
