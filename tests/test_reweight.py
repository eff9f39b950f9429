"""c(t) of well-tempered metadynamics against a brute-force integral, and the transient option of reweighting."""

import numpy as np
import pytest
import torch

import cvlearn as cl

KT = cl.units.kT(300.0)


def _wrap(d):
    return (d + np.pi) % (2 * np.pi) - np.pi


def _brute_c_of_t(hills, gamma, kT, n=400):
    """Tiwary-Parrinello c(t) of the summed hills, by direct summation of every periodic Gaussian
    (minimum-image distance) on an n x n grid of the torus [-pi, pi)^2 (n distinct points per axis)."""
    axis = -np.pi + 2 * np.pi * np.arange(n) / n
    P, Q = np.meshgrid(axis, axis, indexing="ij")
    V = sum(h * np.exp(-0.5 * (_wrap(P - c[0]) / s[0]) ** 2 - 0.5 * (_wrap(Q - c[1]) / s[1]) ** 2)
            for c, s, h in zip(hills["center"], hills["sigma"], hills["height"]))
    a, b = V / kT * gamma / (gamma - 1), V / kT / (gamma - 1)
    return kT * (np.log(np.exp(a - a.max()).sum()) + a.max() - np.log(np.exp(b - b.max()).sum()) - b.max())


def test_c_of_t_on_a_periodic_2d_grid_equals_brute_force():
    """Hills piled up across the periodic edges, where a grid that counted the edge point twice (n + 1
    points per periodic axis instead of n) would give c(t) off by ~0.1 kJ/mol. Both sums are of smooth
    periodic functions on uniform grids (spectrally accurate): they agree to ~1e-10 kJ/mol, set 1e-7."""
    metad = cl.WellTemperedMetad(lambda x: x[:, 0, :], sigma=0.35, height=1.2, bias_factor=10, pace=1,
                                 temperature=300.0,
                                 grid=cl.Grid([-np.pi] * 2, [np.pi] * 2, [144, 144], periodic=True))
    rng = np.random.default_rng(0)
    for step in range(1, 61):  # 60 depositions near the corner (pi, pi) = (-pi, -pi)
        metad.deposit(torch.as_tensor(np.pi + rng.normal(0.0, 0.4, (1, 2))), step)
    brute = _brute_c_of_t(metad.hills, 10.0, KT)
    assert brute > 5.0  # a bias of tens of kJ/mol: c(t) far from 0
    assert metad.rct[-1] == pytest.approx(brute, abs=1e-7)
    # c_of_t(step): the c(t) in force at a frame of that step, before that step's hill.
    assert metad.c_of_t([60, 61]).tolist() == [metad.rct[-2], metad.rct[-1]]


def test_c_of_t_uses_the_bias_factor_and_temperature():
    """One hill of height h on a 1-D periodic grid of length L: c(t) = kT log(mean exp(g/(g-1) V/kT) /
    mean exp(V/((g-1) kT))) on the grid, here against the closed form with the same discrete means."""
    metad = cl.WellTemperedMetad(lambda x: x[:, 0, :1], sigma=0.5, height=3.0, bias_factor=5, pace=1,
                                 temperature=350.0, grid=cl.Grid(-np.pi, np.pi, 200, periodic=True))
    metad.deposit(torch.tensor([[0.3]]), 1)
    x = -np.pi + 2 * np.pi * np.arange(200) / 200
    V, kT, g = 3.0 * np.exp(-0.5 * (_wrap(x - 0.3) / 0.5) ** 2), cl.units.kT(350.0), 5.0
    expected = kT * np.log(np.mean(np.exp(g / (g - 1) * V / kT)) / np.mean(np.exp(V / ((g - 1) * kT))))
    assert metad.rct[-1] == pytest.approx(expected, abs=1e-9)


def _two_state_trajectory():
    """400 frames: 100 transient frames in basin a, then alternating a, b (so Delta F = 0 after them)."""
    x = np.where(np.arange(400) < 100, -1.0, np.tile([-1.0, 1.0], 200))
    traj = cl.Trajectory(np.zeros((400, 1, 1, 1)), np.arange(400.0), np.arange(400), temperature=300.0)
    return traj, x[:, None, None]


def test_skip_discards_the_transient_in_the_time_series_and_the_surface():
    traj, x = _two_state_trajectory()
    a, b = cl.fes.Basin(lo=[-2.0], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[2.0])
    all_frames = cl.fes.delta_f_timeseries(traj, x, a, b, n_points=4)
    assert all_frames["delta_f"][-1] == pytest.approx(KT * np.log(250 / 150), abs=1e-10)  # the transient counts
    skipped = cl.fes.delta_f_timeseries(traj, x, a, b, n_points=4, skip=0.25)
    assert skipped["delta_f"][-1] == pytest.approx(0.0, abs=1e-10)  # frames 100-399: half in each basin
    assert skipped["error"][-1] == pytest.approx(0.0, abs=1e-10)  # every block is half and half too
    # At time 199 (200 frames) skip 0.25 keeps frames 50-199: 50 + 50 in a, 50 in b.
    assert skipped["time"][1] == 199.0 and skipped["delta_f"][1] == pytest.approx(KT * np.log(2.0), abs=1e-10)
    fes = cl.fes.reweight(traj, x, bins=2, ranges=[(-2.0, 2.0)], skip=0.25)
    assert fes.delta_f(a, b).value == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("skip", [-0.1, 1.0, "30%"])
def test_bad_skip_is_refused(skip):
    traj, x = _two_state_trajectory()
    a, b = cl.fes.Basin(lo=[-2.0], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[2.0])
    with pytest.raises(ValueError, match=r"skip is the fraction .* \[0, 1\)"):
        cl.fes.delta_f_timeseries(traj, x, a, b, skip=skip)
    with pytest.raises(ValueError, match=r"skip is the fraction"):
        cl.fes.reweight(traj, x, skip=skip)


def test_transient_fraction_finds_the_first_visit_and_removes_its_bias():
    traj, x = _two_state_trajectory()  # frame 101 is the first in b
    a, b = cl.fes.Basin(lo=[-2.0], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[2.0])
    skip = cl.fes._reweight.transient_fraction(traj, x, b)
    assert skip == 101 / 400
    # Frames 101-399: 150 in b, 149 in a.
    d = cl.fes.delta_f_timeseries(traj, x, a, b, n_points=1, skip=skip)["delta_f"][-1]
    assert d == pytest.approx(-KT * np.log(150 / 149), abs=1e-10)
    assert cl.fes._reweight.transient_fraction(traj, x, cl.fes.Basin(lo=[5.0], hi=[6.0])) == 0.0  # never visited
