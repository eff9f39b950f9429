import numpy as np
import pytest
import torch
from conftest import boltzmann_samples

import cvlearn as cl


def test_double_well_populations_match_exact():
    """Left/right populations of a tilted 1-D double well (3 kT barrier) against exact integration."""
    dw = cl.systems.DoubleWell(1, barrier=7.5, tilt=2.0)
    eng = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=200, seed=3)
    eng.run(2000, stride=2000)  # equilibrate
    traj = eng.run(20000, stride=20)
    right = (traj.positions[:, :, 0, 0] > 0).mean(axis=0)  # per walker: independent estimates
    p_exact = 1 / (1 + np.exp(dw.exact_delta_f("left", "right") / dw.kT()))
    sem = right.std(ddof=1) / np.sqrt(len(right))
    assert abs(right.mean() - p_exact) < 4 * sem, (right.mean(), p_exact, sem)
    assert sem < 0.01  # the test has power: 4 sem < 0.04 in population


def test_muller_brown_marginals_match_exact():
    """Start from exact Boltzmann samples at 1000 K; sampled x and y marginals must stay exact."""
    mb = cl.systems.MullerBrown(temperature=1000.0)
    n = 400
    start = boltzmann_samples(mb, n, seed=1)[:, None, :]
    eng = cl.Langevin(mb, timestep=0.005, friction=10.0, n_walkers=n, seed=2, positions=start)
    traj = eng.run(3000, stride=30)
    fes = mb.exact_fes(bins=601)
    p = np.exp(-fes.F / fes.kT)
    p /= p.sum()
    for axis in (0, 1):
        edges = np.linspace(*mb.slow_bounds[axis], 13)
        exact = np.histogram(fes.points[:, axis], edges, weights=p.ravel())[0]
        per_walker = np.array([np.histogram(traj.positions[:, w, 0, axis], edges)[0] / traj.n_frames
                               for w in range(n)])
        mean, sem = per_walker.mean(0), per_walker.std(0, ddof=1) / np.sqrt(n)
        z = (mean - exact) / np.maximum(sem, 1e-4)
        assert np.abs(z).max() < 4.5, z  # 12 bins: 4.5 sigma keeps the false-alarm rate < 1e-4


def test_kinetic_temperature():
    eng = cl.Langevin(cl.systems.MullerBrown(), timestep=0.002, friction=5.0, n_walkers=1000, seed=0)
    # Every walker starts at the same minimum: kinetic energy flows into the well first (~220 K after 0.1 ps),
    # so the samples begin after 1 ps, five relaxation times 1/friction.
    eng.run(500, stride=500)
    temps = []
    for _ in range(20):
        eng.run(50, stride=50)
        temps.append(eng.kinetic_temperature())
    # 2000 degrees of freedom per sample: sd of one sample is T sqrt(2/2000) = 9.5 K.
    assert abs(np.mean(temps) - 300.0) < 4 * 300 * np.sqrt(2 / 2000) / np.sqrt(20)


def test_same_seed_same_trajectory_and_checkpoint_continuation():
    mb = cl.systems.MullerBrown()
    a = cl.Langevin(mb, n_walkers=3, seed=7).run(300, stride=10)
    b = cl.Langevin(mb, n_walkers=3, seed=7).run(300, stride=10)
    c = cl.Langevin(mb, n_walkers=3, seed=8).run(300, stride=10)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert np.abs(a.positions - c.positions).max() > 1e-3
    # Stop half way, checkpoint, restore into a new engine: identical continuation.
    e1 = cl.Langevin(mb, n_walkers=3, seed=7)
    first = e1.run(150, stride=10)
    e2 = cl.Langevin(mb, n_walkers=3, seed=99)
    e2.load_state_dict(e1.state_dict())
    second = e2.run(150, stride=10)
    joined = cl.Trajectory.concatenate([first, second])
    np.testing.assert_array_equal(joined.positions, a.positions)
    np.testing.assert_array_equal(joined.step, np.arange(10, 301, 10))
    np.testing.assert_allclose(joined.time, joined.step * 0.005)


def test_trajectory_roundtrip(tmp_path):
    traj = cl.Langevin(cl.systems.DoubleWell(2), n_walkers=2, seed=0).run(100, stride=10)
    path = traj.save(tmp_path / "t.npz")
    back = cl.Trajectory.load(path)
    for name in ("positions", "time", "step", "walker_ids", "potential_energy", "bias_energy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    assert back.temperature == 300.0
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="Could not read trajectory"):
        cl.Trajectory.load(tmp_path / "junk.npz")


def test_blow_up_stops_with_step_walker_and_frames():
    def potential(x):  # fine for x < 2, NaN beyond: walker 1 is pushed out by a constant force
        e = -50.0 * x[:, 0, 0]
        return torch.where(x[:, 0, 0] < 2.0, e, torch.full_like(e, float("nan")))

    s = cl.systems.from_function(potential, n_particles=1, n_dims=1)
    start = np.array([[[-1000.0]], [[0.0]]])
    eng = cl.Langevin(s, timestep=0.01, friction=1.0, n_walkers=2, seed=0, positions=start)
    with pytest.raises(cl.SimulationError, match="walker") as info:
        eng.run(10_000, stride=5)
    err = info.value
    assert err.walkers == [1]
    assert 0 < err.step < 10_000
    assert err.trajectory.n_frames == (err.step - 1) // 5  # every frame before the failing step
    assert np.isfinite(err.trajectory.positions).all()
    assert torch.isfinite(eng.positions).all()  # the engine keeps the last good configuration


def test_bias_hook_adds_force_and_update_is_called():
    class Harmonic:
        def __init__(self):
            self.calls = 0

        def energy(self, x):
            return 0.5 * 1000.0 * (x[:, 0, 0] - 0.5) ** 2

        def update(self, step, x):
            self.calls += 1

    bias = Harmonic()
    s = cl.systems.from_function(lambda x: 0.0 * x[:, 0, 0], n_particles=1, n_dims=1)
    eng = cl.Langevin(s, timestep=0.002, friction=10.0, n_walkers=500, seed=0, bias=bias)
    traj = eng.run(1000, stride=10)
    x = traj.positions[20:, :, 0, 0]
    assert bias.calls == 1000
    assert abs(x.mean() - 0.5) < 0.005  # sem ~ sqrt(kT/k / 40000) = 4e-4
    assert x.var() == pytest.approx(eng.kT / 1000.0, rel=0.05)
    np.testing.assert_allclose(traj.bias_energy, 500.0 * (traj.positions[:, :, 0, 0] - 0.5) ** 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"timestep": -1.0}, "timestep"),
    ({"n_walkers": 0}, "n_walkers"),
    ({"temperature": float("nan")}, "temperature"),
    ({"positions": np.zeros((3, 1, 1))}, "positions must have shape"),
    ({"dtype": torch.int32}, "dtype"),
])
def test_bad_engine_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cl.Langevin(cl.systems.MullerBrown(), **kwargs)


def test_float32_runs():
    eng = cl.Langevin(cl.systems.MullerBrown(), n_walkers=4, seed=0, dtype=torch.float32)
    traj = eng.run(100, stride=50)
    assert eng.positions.dtype == torch.float32 and np.isfinite(traj.positions).all()
