"""The lean (numpy, no autograd) CV path equals the torch module: values and gradients."""

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.engine._lean import Unsupported, compile_cv
from cvlearn.learners import CollectiveVariable, LinearCV
from cvlearn.learners._neural import NeuralCV


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
