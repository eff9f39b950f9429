"""The lean (numpy, no autograd) CV path equals the torch module: values and gradients."""

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.engine._lean import Unsupported, compile_cv
from cvlearn.learners import CollectiveVariable, LinearCV, NeuralCV


def _random_neural(n_features, layers, n_components, activation, head, seed):
    torch.manual_seed(seed)
    m = NeuralCV(n_features, layers, n_components, activation=activation, head=head).double()
    for p in m.parameters():
        p.data.normal_(0.0, 0.5)
    m.standardize.mean.normal_()
    m.standardize.std.uniform_(0.5, 2.0)
    if head:
        m.head.mean.normal_()
        m.head.weights.normal_()
    return m


def _compare(cv, x, rtol=1e-10):
    """Lean value and vector-Jacobian product vs the torch module and autograd at one frame x."""
    lean = compile_cv(cv)
    s = lean.value(x)
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    st = cv(xt)[0]
    g = np.random.default_rng(1).normal(size=st.shape[0])
    (ref,) = torch.autograd.grad(st, xt, torch.from_numpy(g))
    np.testing.assert_allclose(s, st.detach().numpy(), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(lean.vjp(g), ref[0].numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "silu", "softplus"])
@pytest.mark.parametrize("head", [False, True])
def test_neural_cv_matches_autograd(activation, head):
    feat = cl.features.Positions(6, 3, particles=[0, 2, 5])
    cv = CollectiveVariable(_random_neural(9, [16, 8], 2, activation, head, seed=3), feat)
    x = np.random.default_rng(0).normal(size=(6, 3))
    _compare(cv, x)


def test_linear_cv_and_concatenation_match_autograd():
    feat = cl.features.Positions(5, 3, particles=[0, 1]) | cl.features.Positions(5, 3, particles=[1, 4])
    rng = np.random.default_rng(2)
    cv = CollectiveVariable(LinearCV(rng.normal(size=12), rng.normal(size=(12, 3))), feat)
    _compare(cv, rng.normal(size=(5, 3)))


def test_softplus_threshold_branch():
    # Softplus switches to the identity above threshold / beta: both branches must match torch.
    feat = cl.features.Positions(1, 3)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Softplus(beta=2.0, threshold=1.0),
                              torch.nn.Linear(4, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, 0, 0], [0, -3.0, 0], [0.1, 0.1, 0.1], [0, 0, 5.0]]))

    net.n_components = 1  # CollectiveVariable asks its model for this
    _compare(CollectiveVariable(net, feat), np.array([[1.0, 0.2, -0.3]]))


def test_unknown_module_is_unsupported():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return x**3

    with pytest.raises(Unsupported, match="Odd"):
        compile_cv(torch.nn.Sequential(torch.nn.Linear(2, 2), Odd()))


@pytest.fixture(scope="module")
def alanine_frame():
    md = pytest.importorskip("mdtraj")
    from cvlearn.data import alanine_dipeptide_pdb

    traj = md.load(alanine_dipeptide_pdb())
    rng = np.random.default_rng(5)
    return traj.topology, traj.xyz[0].astype(np.float64) + rng.normal(0, 0.01, (22, 3))


@pytest.mark.parametrize("sincos", [False, True])
def test_molecular_featurizers_match_autograd(alanine_frame, sincos):
    top, x = alanine_frame
    feat = (cl.features.Dihedrals(top, "phi psi", sincos=sincos) | cl.features.Distances(top, selection="heavy")
            | cl.features.Dihedrals(indices=[[0, 1, 4, 6], [8, 10, 11, 12]], n_atoms=22))
    n = feat.n_features
    rng = np.random.default_rng(6)
    cv = CollectiveVariable(LinearCV(rng.normal(size=n), rng.normal(size=(n, 2))), feat)
    _compare(cv, x, rtol=1e-9)


def test_lean_checks_the_atom_count(alanine_frame):
    top, x = alanine_frame
    cv = CollectiveVariable(LinearCV(np.zeros(45), np.ones((45, 1))), cl.features.Distances(top, selection="heavy"))
    with pytest.raises(ValueError, match="Distances"):
        compile_cv(cv).value(x[:20])


# -- compile-time fusion, atom subsets, scalar and array featurizer paths ------------------------------
def test_affine_layers_are_fused_and_stay_exact():
    # Standardize -> Linear and Linear -> LinearCV head collapse into one matrix product each; two
    # consecutive Linear layers fuse only when the product matrix is no larger than the two.
    net = _random_neural(9, [16, 8], 2, "tanh", True, seed=4)
    cv = CollectiveVariable(net, cl.features.Positions(3, 3))
    lean = compile_cv(cv)
    kinds = [type(s).__name__ for s in lean.steps]
    assert kinds == ["_Affine", "_Tanh", "_Affine", "_Tanh", "_Affine"]
    _compare(cv, np.random.default_rng(3).normal(size=(3, 3)))
    torch.manual_seed(0)
    narrow = torch.nn.Sequential(torch.nn.Linear(6, 2), torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4),
                                 torch.nn.Linear(4, 1)).double()
    narrow.n_components = 1
    cv = CollectiveVariable(narrow, cl.features.Positions(2, 3))
    assert [type(s).__name__ for s in compile_cv(cv).steps] == ["_Affine", "_Affine", "_Tanh", "_Affine"]
    _compare(cv, np.random.default_rng(4).normal(size=(2, 3)))


def test_outputs_are_new_arrays():
    # Buffers are reused between calls; what value() and vjp() hand out must not change afterwards.
    cv = CollectiveVariable(_random_neural(6, [5], 1, "tanh", False, seed=1), cl.features.Positions(2, 3))
    lean = compile_cv(cv)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    s1, g1 = lean.value(x1), lean.vjp([1.0])
    s1c, g1c = s1.copy(), g1.copy()
    lean.value(x2), lean.vjp([2.0])
    np.testing.assert_array_equal(s1, s1c)
    np.testing.assert_array_equal(g1, g1c)


def _compare_on_atoms(cv, x, atoms, rtol=1e-10):
    """The lean CV given only the rows of ``atoms`` equals autograd on all positions."""
    full = compile_cv(cv)
    sub = compile_cv(cv, atoms=atoms)
    g = np.random.default_rng(2).normal(size=full.value(x).shape[0])
    np.testing.assert_allclose(sub.value(x[atoms]), full.value(x), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(sub.vjp(g), full.vjp(g)[atoms], rtol=rtol, atol=1e-12)
    _compare(cv, x, rtol=rtol)


def test_cv_on_the_biased_atoms_only(alanine_frame):
    top, x = alanine_frame
    heavy = cl.features.Distances(top, selection="heavy")
    cv = CollectiveVariable(_random_neural(45, [32, 16], 1, "tanh", True, seed=7), heavy)
    _compare_on_atoms(cv, x, heavy.atoms.numpy())
    phi_psi = cl.features.Dihedrals(top, "phi psi", sincos=True)
    feat = phi_psi | heavy
    cv = CollectiveVariable(LinearCV(np.zeros(feat.n_features), np.random.default_rng(1).normal(size=(49, 2))), feat)
    _compare_on_atoms(cv, x, np.union1d(phi_psi.atoms.numpy(), heavy.atoms.numpy()), rtol=1e-9)
    pos = cl.features.Positions(22, 3, particles=[8, 1, 14])
    cv = CollectiveVariable(LinearCV(np.zeros(9), np.ones((9, 1))), pos)
    _compare_on_atoms(cv, x, np.array([1, 8, 14, 20]))
    with pytest.raises(Unsupported, match="reads atom 6, which is not among"):
        compile_cv(heavy, atoms=np.array([1, 4, 5]))


def test_distances_gather_path_and_unknown_atom_count(alanine_frame):
    # Many pairs (all 231 of 22 atoms): gathers and bincount instead of the incidence matrix; built from
    # pairs alone, the atom count is open and any frame holding the atoms read is accepted.
    top, x = alanine_frame
    every = cl.features.Distances(top, selection="all")
    assert not compile_cv(every).feature.dense
    rng = np.random.default_rng(8)
    _compare(CollectiveVariable(LinearCV(np.zeros(231), rng.normal(size=(231, 2))), every), x)
    open_count = cl.features.Distances(pairs=[[0, 5], [3, 9], [5, 9]])
    lean = compile_cv(open_count)
    _compare(CollectiveVariable(LinearCV(np.zeros(3), rng.normal(size=(3, 1))), open_count), x[:12])
    with pytest.raises(ValueError, match="Distances"):
        lean.value(x[:8])


@pytest.mark.parametrize("sincos", [False, True])
def test_dihedrals_scalar_and_array_paths_across_the_seam(alanine_frame, sincos):
    # One to four angles in Python floats, more in array code; both must follow the angle through +-pi,
    # where atan2 switches branch, with the gradient of the torch featurizer.
    top, x = alanine_frame
    quads = [[4, 6, 8, 14], [6, 8, 14, 16], [0, 1, 4, 6], [8, 10, 11, 12], [1, 4, 6, 8]]
    for n in (1, 5):
        feat = cl.features.Dihedrals(indices=quads[:n], n_atoms=22, sincos=sincos)
        lean = compile_cv(feat)
        assert lean.feature.scalar == (n == 1)
        for target in (np.pi - 1e-7, -np.pi + 1e-7, np.pi):
            y = x.copy()
            # rotate atom 14 about the 6-8 bond so that the first angle sits at the target
            a0 = float(torch.atan2(*_yx(y, quads[0])))
            y[14] = _rotate(y[14], y[6], y[8], target - a0)
            got = compile_cv(feat).value(y)
            first = np.arctan2(got[0], got[1]) if sincos else got[0]
            assert abs(abs(first) - np.pi) < 1e-6
            n_out = feat.n_features
            cv = CollectiveVariable(LinearCV(np.zeros(n_out), np.random.default_rng(n).normal(size=(n_out, 1))), feat)
            _compare(cv, y, rtol=1e-9)
            _compare_on_atoms(cv, y, feat.atoms.numpy(), rtol=1e-9)


def _yx(x, quad):
    p = torch.from_numpy(x[quad])
    b1, b2, b3 = p[1] - p[0], p[2] - p[1], p[3] - p[2]
    c1, c2 = torch.linalg.cross(b2, b3), torch.linalg.cross(b1, b2)
    return (b1 * c1).sum() * b2.norm(), (c1 * c2).sum()


def _rotate(p, a, b, angle):
    """Rotate point p about the axis a -> b by ``angle`` (Rodrigues)."""
    k = (b - a) / np.linalg.norm(b - a)
    v = p - b
    return b + v * np.cos(angle) + np.cross(k, v) * np.sin(angle) + k * (k @ v) * (1 - np.cos(angle))


# -- the bias at one point: Python floats vs the batched numpy/torch path ----------------------------
def _bias_reference(bias, s):
    """V and dV/ds of a bias at points s (n, d) through its torch energy (autograd)."""
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    bias.cv = lambda x: x[:, 0, :]
    v = bias.energy(st[:, None, :])
    (g,) = torch.autograd.grad(v.sum(), st)
    return v.detach().numpy(), g.numpy()


@pytest.mark.parametrize("periodic", [False, True])
def test_grid_bias_one_point_path(periodic):
    # Interior points, grid nodes, both ends, beyond the ends (held at the edge, wall force) and, on a
    # periodic axis, points on and across the seam: the float path equals the batched one.
    lo, hi = (-np.pi, np.pi) if periodic else (-1.0, 2.0)
    grid = cl.Grid(lo, hi, 60, periodic=periodic)
    bias = cl.bias.StaticBias.from_grid(lambda x: x[:, 0, :1], grid, np.zeros(grid.shape), outside="wall")
    rng = np.random.default_rng(0)
    bias.field.add_gaussians(rng.uniform(lo, hi, (20, 1)), 0.3, rng.uniform(0.5, 2.0, 20))
    nodes = grid.axes[0][[0, 7, -1]]
    points = np.concatenate([rng.uniform(lo, hi, 20), nodes, [lo, hi, lo - 0.3, hi + 0.2, hi - 1e-12, lo + 1e-12]])
    if periodic:
        points = np.concatenate([points, [3 * np.pi - 0.1, -7.0, np.nextafter(hi, 0)]])
    ref_v, ref_g = bias.value_and_gradient(points[:, None])  # the batched numpy path
    inside = (points > lo) & (points < hi)  # autograd through the edge clamp splits the gradient at a tie
    auto_v, auto_g = _bias_reference(bias, points[inside, None])
    np.testing.assert_allclose(ref_v[inside], auto_v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref_g[inside], auto_g, rtol=1e-10, atol=1e-10)
    for p, rv, rg in zip(points, ref_v, ref_g):
        v, g = bias.point_value_and_gradient([float(p)])
        assert v == pytest.approx(rv, rel=1e-12, abs=1e-12)
        assert g[0] == pytest.approx(rg[0], rel=1e-10, abs=1e-10)
        v2, g2 = bias.value_and_gradient(np.array([p]))
        assert v2.shape == (1,) and g2.shape == (1, 1) and v2[0] == v and g2[0, 0] == g[0]
        np.testing.assert_allclose(bias.colvar()[f"{bias.label}.bias"].numpy(), [v])
        wrapped = bias.grid.wrap(np.array([[p]]))
        np.testing.assert_allclose(bias.colvar()[bias.names[0]].numpy(), wrapped[:, 0])
    edge = cl.bias.StaticBias.from_grid(lambda x: x[:, 0, :1], grid, np.zeros(grid.shape))
    if not periodic:
        with pytest.raises(cl.GridError, match="left the bias grid"):
            edge.point_value_and_gradient([hi + 0.1])


def test_grid_bias_one_point_path_2d():
    grid = cl.Grid([-np.pi, 0.0], [np.pi, 1.0], [36, 20], periodic=[True, False])
    bias = cl.bias.StaticBias.from_grid(lambda x: x[:, 0, :2], grid, np.zeros(grid.shape), outside="wall")
    rng = np.random.default_rng(1)
    bias.field.add_gaussians(np.column_stack([rng.uniform(-3, 3, 15), rng.uniform(0, 1, 15)]), [0.4, 0.1],
                             rng.uniform(0.5, 2, 15))
    pts = np.array([[0.3, 0.5], [np.pi, 1.0], [-np.pi - 0.2, -0.1], [3.0, 1.3], [-1.0, 0.0]])
    ref_v, ref_g = bias.value_and_gradient(pts)
    for p, rv, rg in zip(pts, ref_v, ref_g):
        v, g = bias.point_value_and_gradient(p.tolist())
        assert v == pytest.approx(rv, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(g, rg, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["HarmonicRestraint", "UpperWall", "LowerWall"])
def test_walls_one_point_path(kind):
    bias = getattr(cl.bias, kind)(lambda x: x[:, 0, :2], at=[0.5, -0.2], kappa=[100.0, 30.0])
    for p in ([0.7, -0.5], [0.1, 0.3], [0.5, -0.2]):
        ref_v, ref_g = _bias_reference(bias, np.array([p]))
        v, g = bias.point_value_and_gradient(p)
        assert v == pytest.approx(ref_v[0], rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(g, ref_g[0], rtol=1e-12, atol=1e-14)
        assert float(bias.colvar()[f"{bias.label}.bias"][0]) == v
        v2, g2 = bias.value_and_gradient(np.array([p]))
        assert v2[0] == pytest.approx(v, rel=1e-14) and np.allclose(g2[0], g, rtol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fixed_call_program_matches_the_step_chain(alanine_frame, activation):
    # Distances + tanh network: forward and backward run as two fixed lists of numpy calls on buffers
    # (positions may be written straight into lean.x_in); other activations run step by step.
    top, x = alanine_frame
    heavy = cl.features.Distances(top, selection="heavy")
    atoms = heavy.atoms.numpy()
    cv = CollectiveVariable(_random_neural(45, [32, 16], 1, activation, True, seed=9), heavy)
    lean = compile_cv(cv, atoms=atoms)
    assert (lean.x_in is not None) == (activation == "tanh")
    _compare_on_atoms(cv, x, atoms)
    if lean.x_in is not None:
        chain = compile_cv(cv, atoms=atoms)
        chain.x_in = chain.g_in = None  # force the step-by-step path
        lean.x_in[...] = x[atoms]
        np.testing.assert_allclose(lean.value(lean.x_in), chain.value(x[atoms]), rtol=1e-13)
        np.testing.assert_allclose(lean.vjp([0.7]), chain.vjp([0.7]), rtol=1e-12, atol=1e-15)
        with pytest.raises(ValueError, match="Distances"):
            lean.value(x)


def test_grid_bias_copies_see_their_own_hills():
    # The one-point path reads the grid through a cached numpy view: a copy must not keep reading
    # a stale copy of it (pickle and deepcopy keep the view's identity check but not its memory).
    import copy
    import pickle

    grid = cl.Grid(-1.0, 1.0, 40)
    bias = cl.bias.StaticBias.from_grid(lambda x: x[:, 0, :1], grid, np.zeros(grid.shape))
    bias.point_value_and_gradient([0.1])  # builds the view
    for clone in (copy.deepcopy(bias.field), pickle.loads(pickle.dumps(bias.field))):
        clone.add_gaussians([[0.1]], 0.2, 1.0)
        assert clone.point_1d(0.1)[0] == pytest.approx(1.0, rel=1e-6)
        assert clone.point_value_and_gradient([0.1])[0] == pytest.approx(1.0, rel=1e-6)
    assert bias.point_value_and_gradient([0.1])[0] == 0.0
