import numpy as np
import pytest
import torch
from scipy import integrate

import cvlearn as cl
from cvlearn.systems import System

SYSTEMS = [
    cl.systems.MullerBrown(),
    cl.systems.DoubleWell(1, barrier=20.0, tilt=3.0),
    cl.systems.DoubleWell(2),
    cl.systems.HiddenDoubleWell(dim=6, seed=3),
    cl.systems.Embedded(cl.systems.MullerBrown(), dim=5, noise_std=0.5),
]


@pytest.mark.parametrize("system", SYSTEMS, ids=lambda s: type(s).__name__)
def test_forces_match_autograd_and_finite_differences(system):
    x = 0.4 * torch.randn(6, system.n_particles, system.n_dims, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    e, f = system.energy_and_forces(x)
    e_ag, f_ag = System.energy_and_forces(system, x)
    np.testing.assert_allclose(e, e_ag, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(f, f_ag, rtol=1e-10, atol=1e-9)
    h = 1e-6
    for d in range(system.n_dims):
        dx = torch.zeros_like(x)
        dx[:, 0, d] = h
        fd = -(system.potential(x + dx) - system.potential(x - dx)) / (2 * h)
        np.testing.assert_allclose(f[:, 0, d], fd, rtol=1e-6, atol=1e-5)


def test_muller_brown_minima_and_scale():
    mb = cl.systems.MullerBrown()
    e = mb.potential(torch.tensor([[mb.minima[k]] for k in "ABC"], dtype=torch.float64))
    # Original energies -146.70, -108.17, -80.77 times 0.3 kJ/mol.
    np.testing.assert_allclose(e.numpy(), 0.3 * np.array([-146.6995, -108.1667, -80.7678]), atol=1e-3)
    _, f = mb.energy_and_forces(torch.tensor([[mb.minima["A"]]], dtype=torch.float64))
    assert float(f.abs().max()) < 1e-3
    # Documented barrier: A to the saddle at (-0.822, 0.624), -40.665 original units: 12.8 kT at 300 K.
    saddle = mb.potential(torch.tensor([[[-0.82200, 0.62431]]], dtype=torch.float64))
    assert (saddle - e[0]) / mb.kT() == pytest.approx(12.75, abs=0.02)


def test_double_well_exact_delta_f_matches_quadrature():
    dw = cl.systems.DoubleWell(1, barrier=10.0, tilt=2.0)
    beta = 1 / dw.kT()
    z = lambda lo, hi: integrate.quad(lambda x: np.exp(-beta * dw.exact_free_energy(np.array([[x]]))[0]),  # noqa: E731
                                      lo, hi, epsabs=0, epsrel=1e-12)[0]
    ref = -dw.kT() * np.log(z(0, 4) / z(-4, 0))
    assert dw.exact_delta_f("left", "right", bins=4001) == pytest.approx(ref, abs=2e-3)


def test_muller_brown_exact_delta_f_converged_in_grid():
    mb = cl.systems.MullerBrown()
    coarse, fine = mb.exact_delta_f("A", "B", bins=401), mb.exact_delta_f("A", "B", bins=1201)
    assert abs(coarse - fine) < 0.02  # kJ/mol: the default grid is converged far below sampling errors
    assert 10.0 < fine < 13.0


def test_embedding_hides_slow_coordinate():
    s = cl.systems.HiddenDoubleWell(dim=10, noise_std=2.0, seed=0)
    q = s.rotation.numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(10), atol=1e-12)
    # The slow direction is spread over all Cartesian axes (no axis carries more than half of it).
    assert np.abs(s.slow_direction()).max() < 0.71
    # Exact variances: slow coordinate (double well at +-1 nm) vs noise (2 nm std).
    fes = s.exact_fes(bins=2001)
    p = np.exp(-fes.F / fes.kT)
    x = fes.axes[0]
    var_slow = (p * x**2).sum() / p.sum()
    var_noise = s.kT() / s.noise_stiffness.numpy()
    np.testing.assert_allclose(var_noise, 4.0)
    assert var_slow < 1.2 < var_noise.min()
    # start_positions maps back to the requested basin.
    assert s.slow_coordinates(s.start_positions("right")[None].numpy())[0, 0] == pytest.approx(1.0)


def test_from_function_system_and_shape_check():
    s = cl.systems.from_function(lambda x: (x**2).sum((1, 2)), n_particles=2, n_dims=3)
    e, f = s.energy_and_forces(torch.ones(4, 2, 3, dtype=torch.float64))
    np.testing.assert_allclose(e, 6.0)
    np.testing.assert_allclose(f, -2.0)
    bad = cl.systems.from_function(lambda x: x.sum(-1), n_particles=1, n_dims=2)
    with pytest.raises(ValueError, match="one energy per walker"):
        bad.potential(torch.ones(3, 1, 2))


def test_user_system_without_references_says_how_to_add_them():
    s = cl.systems.from_function(lambda x: (x**2).sum((1, 2)), n_particles=1, n_dims=2)
    with pytest.raises(cl.NoReferenceError, match="pass slow= to from_function"):
        s.slow_coordinates(torch.zeros(1, 1, 2))
    with pytest.raises(cl.NoReferenceError, match="slow_bounds"):
        s.exact_fes()
    with pytest.raises(cl.NoReferenceError, match="override exact_free_energy"):
        s.exact_free_energy(np.zeros((1, 2)))


def test_double_well_rejects_bad_dim():
    with pytest.raises(ValueError, match="dim=1 or dim=2"):
        cl.systems.DoubleWell(dim=3)
