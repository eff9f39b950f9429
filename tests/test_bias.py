import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.bias._hermite import HermiteField


def gaussian_sum(points, centers, sigma, heights, period=None):
    d = points[:, None, :] - centers[None]
    if period is not None:
        p = np.where(np.isfinite(period), period, 1.0)
        d = np.where(np.isfinite(period), (d + p / 2) % p - p / 2, d)
    return (heights * np.exp(-0.5 * ((d / sigma) ** 2).sum(-1))).sum(1)


@pytest.mark.parametrize("grid", [
    cl.Grid(-2, 2, 160),
    cl.Grid([-2, -1], [2, 3], [160, 160]),
    cl.Grid(-np.pi, np.pi, 126, periodic=True),
    cl.Grid([-1, -np.pi, -1], [1, np.pi, 1], [40, 126, 40], periodic=[False, True, False]),
], ids=["1d", "2d", "1d-periodic", "3d-mixed"])
def test_grid_bias_matches_exact_gaussian_sum_and_gradient(grid):
    rng = np.random.default_rng(0)
    d = grid.ndim
    centers = rng.uniform(grid.lo, grid.hi, size=(30, d))
    sigma, heights = np.full(d, 0.25), rng.uniform(0.5, 2.0, 30)
    field = HermiteField(grid)
    field.add_gaussians(centers, sigma, heights)
    period = np.where(grid.periodic, grid.period, np.inf)
    s = torch.tensor(rng.uniform(grid.lo, grid.hi, size=(300, d)), requires_grad=True)
    v = field.evaluate(s)
    (g,) = torch.autograd.grad(v.sum(), s)
    sn = s.detach().numpy()
    exact = gaussian_sum(sn, centers, sigma, heights, period)
    eps = 1e-6
    fd = np.stack([(gaussian_sum(sn + eps * e, centers, sigma, heights, period)
                    - gaussian_sum(sn - eps * e, centers, sigma, heights, period)) / (2 * eps) for e in np.eye(d)], -1)
    # Spacing h = sigma / 10 (sigma / 5 in 3-D): cubic Hermite errors ~ (h / sigma)^4 of the height.
    tol = 2e-4 if d < 3 else 3e-3
    assert np.abs(v.detach().numpy() - exact).max() < tol * heights.sum()
    assert np.abs(g.numpy() - fd).max() < 10 * tol * heights.sum() / sigma[0]


def test_force_is_continuous_across_grid_cells():
    grid = cl.Grid(-1, 1, 20)
    field = HermiteField(grid)
    field.add_gaussians([[0.13]], [0.2], [1.0])
    edge = grid.axes[0][7]
    s = torch.tensor([[edge - 1e-12], [edge + 1e-12]], requires_grad=True)
    (g,) = torch.autograd.grad(field.evaluate(s).sum(), s)
    assert abs(g[0, 0] - g[1, 0]) < 1e-9


def test_well_tempered_heights_and_free_energy_scaling():
    cv = cl.features.Positions(1, 1)
    metad = cl.WellTemperedMetad(cv, sigma=0.1, height=2.0, bias_factor=5.0, pace=1, grid=cl.Grid(-1, 1, 100),
                                 temperature=300.0)
    metad.deposit(torch.tensor([[0.0]]), step=1)
    metad.deposit(torch.tensor([[0.0]]), step=2)
    kT = cl.units.kT(300.0)
    h2 = 2.0 * np.exp(-2.0 / (kT * 4.0))
    np.testing.assert_allclose(metad.hills["height"], [2.0, h2], rtol=1e-12)
    np.testing.assert_allclose(metad.evaluate([[0.0]]), 2.0 + h2, rtol=1e-9)
    fes = metad.free_energy()
    v = metad.field.values()
    np.testing.assert_allclose(fes.F, -(5.0 / 4.0) * (v - v.max()), atol=1e-12)


def test_bias_forces_on_positions_match_finite_differences():
    """Force = -dV/ds ds/dx through a TICA CV of a 3-D system, against central differences."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3))
    cv = cl.TICA(lagtime=1, n_components=2, scaling=None).fit(X).to_module(cl.features.Positions(1, 3))
    s = cv(torch.from_numpy(X[:, None, :])).detach().numpy()
    grid = cl.Grid(s.min(0) - 2, s.max(0) + 2, [200, 200])
    metad = cl.WellTemperedMetad(cv, sigma=[0.3, 0.3], height=1.0, bias_factor=10, pace=1, grid=grid,
                                 temperature=300)
    metad.deposit(torch.as_tensor(s[:50]), step=1)
    x = torch.from_numpy(X[100:110, None, :]).clone().requires_grad_(True)
    e = metad.energy(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    h = 1e-6
    for k in range(3):
        dx = torch.zeros_like(x)
        dx[:, 0, k] = h
        with torch.no_grad():
            fd = (metad.energy(x + dx) - metad.energy(x - dx)) / (2 * h)
        np.testing.assert_allclose(g[:, 0, k].numpy(), fd.numpy(), rtol=1e-5, atol=1e-7)


def test_outside_grid_error_keeps_frames_and_wall_pushes_back():
    dw = cl.systems.DoubleWell(1, barrier=2.0)
    cv = cl.features.Positions(1, 1)
    metad = cl.WellTemperedMetad(cv, sigma=0.1, height=1.0, bias_factor=5, pace=10, grid=cl.Grid(-1.2, 0.0, 60))
    eng = cl.Langevin(dw, n_walkers=4, timestep=0.01, seed=0, bias=metad)
    with pytest.raises(cl.SimulationError, match=r"left the bias grid.*outside='wall'") as info:
        eng.run(100_000, stride=10)
    assert info.value.walkers and info.value.trajectory.n_frames >= 0
    assert isinstance(info.value.__cause__, cl.GridError)
    wall = cl.WellTemperedMetad(cv, sigma=0.1, height=1.0, bias_factor=5, pace=10, grid=cl.Grid(-1.2, 0.0, 60),
                                outside="wall", wall_kappa=500.0)
    x = torch.tensor([[[0.2]], [[-1.5]]], dtype=torch.float64, requires_grad=True)
    e = wall.energy(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    np.testing.assert_allclose(e.detach().numpy(), [0.5 * 500 * 0.04, 0.5 * 500 * 0.09])
    assert g[0, 0, 0] > 0 and g[1, 0, 0] < 0  # forces -g point back into the grid


def test_periodic_cv_hills_wrap_around():
    def angle(x):
        return torch.atan2(x[:, 0, 1], x[:, 0, 0])[:, None]

    metad = cl.WellTemperedMetad(angle, sigma=0.3, height=1.0, bias_factor=None, pace=1,
                                 grid=cl.Grid(-np.pi, np.pi, 100, periodic=True), temperature=300)
    metad.deposit(torch.tensor([[np.pi - 0.05]]), step=1)
    near = metad.evaluate([[-np.pi + 0.05]])[0]  # 0.1 rad away across the seam
    assert near == pytest.approx(np.exp(-0.5 * (0.1 / 0.3) ** 2), rel=1e-4)
    assert metad.evaluate([[3 * np.pi - 0.05]])[0] == pytest.approx(1.0, rel=1e-4)  # wrapped input


def test_walls_and_restraint():
    cv = cl.features.Positions(1, 1)
    x = torch.tensor([[[0.5]], [[1.5]]], dtype=torch.float64)
    np.testing.assert_allclose(cl.bias.UpperWall(cv, at=1.0, kappa=10.0).energy(x), [0.0, 1.25])
    np.testing.assert_allclose(cl.bias.LowerWall(cv, at=1.0, kappa=10.0).energy(x), [1.25, 0.0])
    np.testing.assert_allclose(cl.bias.HarmonicRestraint(cv, at=1.0, kappa=10.0).evaluate([[0.5], [1.5]]),
                               [1.25, 1.25])
    with pytest.raises(ValueError, match="kappa must be positive"):
        cl.bias.UpperWall(cv, at=1.0, kappa=-1.0)


def test_static_bias_from_grid_and_from_metad():
    grid = cl.Grid([-1, -1], [1, 1], [80, 80])
    pts = grid.points
    values = (3 * pts[:, 0] ** 2 + pts[:, 0] * pts[:, 1] - pts[:, 1] ** 3).reshape(grid.shape)
    cv = cl.features.Positions(1, 2)
    static = cl.bias.StaticBias.from_grid(cv, grid, values)
    q = np.random.default_rng(0).uniform(-0.9, 0.9, size=(50, 2))
    exact = 3 * q[:, 0] ** 2 + q[:, 0] * q[:, 1] - q[:, 1] ** 3
    assert np.abs(static.evaluate(q) - exact).max() < 1e-4
    metad = cl.WellTemperedMetad(cv, sigma=0.2, height=1.0, bias_factor=6, pace=1, grid=grid, temperature=300)
    metad.deposit(torch.tensor([[0.1, 0.2], [-0.3, 0.0]]), step=1)
    frozen = cl.bias.StaticBias.from_metad(metad)
    np.testing.assert_array_equal(frozen.evaluate(q), metad.evaluate(q))
    np.testing.assert_allclose(frozen.free_energy().F, metad.free_energy().F)


def test_bad_metad_arguments():
    cv = cl.features.Positions(1, 1)
    grid = cl.Grid(-1, 1, 100)
    with pytest.raises(ValueError, match="bias_factor must be > 1"):
        cl.WellTemperedMetad(cv, sigma=0.1, height=1, bias_factor=1.0, pace=10, grid=grid)
    with pytest.raises(ValueError, match="coarser than sigma/2"):
        cl.WellTemperedMetad(cv, sigma=0.01, height=1, bias_factor=5, pace=10, grid=grid)
    with pytest.raises(TypeError, match="cvlearn.Grid"):
        cl.WellTemperedMetad(cv, sigma=0.1, height=1, bias_factor=5, pace=10, grid=(-1, 1, 100))
    with pytest.raises(ValueError, match="outside must be"):
        cl.WellTemperedMetad(cv, sigma=0.1, height=1, bias_factor=5, pace=10, grid=grid, outside="ignore")
    with pytest.raises(ValueError, match="2 components but the grid has 1"):
        cl.WellTemperedMetad(cl.features.Positions(1, 2), sigma=0.1, height=1, bias_factor=5, pace=10, grid=grid)


@pytest.mark.parametrize("periodic", [False, True])
def test_value_and_gradient_matches_autograd_inside_and_beyond_the_wall(periodic):
    # The engines' lean path (numpy, scalar for one point) must equal the torch path with autograd.
    grid = cl.Grid([-1.0, -2.0], [1.0, 2.0], [40, 50], periodic=[periodic, False])
    metad = cl.WellTemperedMetad(lambda x: x[:, 0, :2], sigma=[0.2, 0.3], height=1.0, bias_factor=5, pace=1,
                                 grid=grid, temperature=300.0, outside="wall", wall_kappa=50.0)
    rng = np.random.default_rng(4)
    metad.deposit(torch.as_tensor(rng.uniform([-1, -2], [1, 2], (30, 2))), step=1)
    points = np.array([[0.3, -0.5], [0.99, 1.9], [1.3, 0.2], [-0.2, -2.6], [-1.7, 2.4]])
    s = torch.as_tensor(points).requires_grad_(True)
    energy = metad.energy(s[:, None, :])
    (grad,) = torch.autograd.grad(energy.sum(), s)
    v_all, g_all = metad.value_and_gradient(points)
    one = [metad.value_and_gradient(p[None]) for p in points]
    for v, g in [(v_all, g_all), (np.concatenate([o[0] for o in one]), np.concatenate([o[1] for o in one]))]:
        np.testing.assert_allclose(v, energy.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g, grad.numpy(), rtol=1e-10, atol=1e-12)


# What each bias class of cvlearn.bias supports of the engine-bias contract (cvlearn.bias._protocol).
_CV_BIAS = {"Bias", "CVBias", "PointEvaluable", "ColvarWriter", "Fusable"}
CLAIMS = {
    "GridBias": _CV_BIAS, "StaticBias": _CV_BIAS, "HarmonicRestraint": _CV_BIAS, "LowerWall": _CV_BIAS,
    "UpperWall": _CV_BIAS,
    "WellTemperedMetad": _CV_BIAS | {"Bindable", "Adaptive", "Paced", "HillsWriter", "SharedHills", "FusedDeposit"},
    "OPES": {"Bias", "CVBias", "ColvarWriter", "Bindable", "Adaptive", "Paced", "HillsWriter",  # no float path
             "Fusable"},
}
PROTOCOLS = ["Bias", "CVBias", "PointEvaluable", "Bindable", "Adaptive", "Paced", "ColvarWriter", "HillsWriter",
             "SharedHills", "Fusable", "FusedDeposit"]


def test_every_bias_class_satisfies_exactly_the_protocols_it_claims():
    import inspect

    cv, grid = cl.features.Positions(1, 1), cl.Grid(-1.0, 1.0, 40)
    instances = [cl.bias.GridBias(cv, grid), cl.bias.StaticBias.from_grid(cv, grid, np.zeros(grid.shape)),
                 cl.bias.HarmonicRestraint(cv, at=0.0, kappa=1.0), cl.bias.LowerWall(cv, at=0.0, kappa=1.0),
                 cl.bias.UpperWall(cv, at=0.0, kappa=1.0),
                 cl.WellTemperedMetad(cv, sigma=0.1, height=1.0, bias_factor=10, pace=10, grid=grid),
                 cl.OPES(cv, barrier=20.0, pace=10, sigma=0.1, temperature=300.0)]
    protocols = {name: getattr(cl.bias, name) for name in PROTOCOLS}
    classes = {name for name in cl.bias.__all__ if inspect.isclass(getattr(cl.bias, name))} - set(PROTOCOLS) - {"Grid"}
    assert {type(b).__name__ for b in instances} == classes == set(CLAIMS)  # a new bias class gets its claims here
    for bias in instances:
        held = {name for name, protocol in protocols.items() if isinstance(bias, protocol)}
        assert held == CLAIMS[type(bias).__name__], type(bias).__name__


def test_engines_refuse_what_is_not_a_bias():
    with pytest.raises(TypeError, match=r"A bias needs energy\(positions\).*got int"):
        cl.Langevin(cl.systems.MullerBrown(), bias=[cl.bias.UpperWall(lambda x: x[:, 0, :1], at=1.0, kappa=1.0), 3])
