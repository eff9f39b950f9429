"""A lean inference path for CVs: value and gradient of one configuration without torch autograd.

An MD engine that biases one molecule asks for s(x) and the vector-Jacobian product g . ds/dx at
every step. For the small networks and featurizers of a CV, torch's per-operation dispatch and
the autograd engine's fixed cost (~100 us per backward pass on the 2-core machines we measured)
dominate; the same arithmetic in numpy on one frame takes a few microseconds per layer.

:func:`compile_cv` walks a CV module and builds a chain of steps, one per module, each holding
its parameters as float64 numpy arrays. Each step's value formula mirrors its module's torch
``forward`` (the tests compare the two, value and gradient, for every supported module); a module
without a step makes :func:`compile_cv` raise :class:`Unsupported`, and the engine falls back to
autograd on the torch module itself, so no CV is ever refused.
"""

import numpy as np
import torch

from ..features import Concatenate, Dihedrals, Distances, Positions
from ..learners import CollectiveVariable, LinearCV
from ..learners._neural import NeuralCV
from ..learners._nn import Standardize

__all__ = ["LeanCV", "Unsupported", "compile_cv"]


class Unsupported(TypeError):
    """The module (or one inside it) has no lean step; use autograd instead."""


def _np(t):
    return t.detach().cpu().double().numpy().copy()


class _Chain:
    def __init__(self, steps):
        self.steps = steps

    def forward(self, x):
        for s in self.steps:
            x = s.forward(x)
        return x

    def backward(self, g):
        for s in reversed(self.steps):
            g = s.backward(g)
        return g


class _Identity:
    def forward(self, x):
        return x

    def backward(self, g):
        return g


class _Affine:
    """y = (x - shift) @ matrix + offset, for Linear, LinearCV and Standardize (diagonal matrix)."""

    def __init__(self, matrix=None, shift=None, offset=None, scale=None):
        self.matrix, self.shift, self.offset, self.scale = matrix, shift, offset, scale

    def forward(self, x):
        if self.shift is not None:
            x = x - self.shift
        if self.scale is not None:
            return x * self.scale
        y = x @ self.matrix
        return y if self.offset is None else y + self.offset

    def backward(self, g):
        return g * self.scale if self.scale is not None else self.matrix @ g


class _Activation:
    """Elementwise activation; ``derivative(x, y)`` from the input and output of the forward pass."""

    def __init__(self, fn, derivative):
        self.fn, self.derivative = fn, derivative

    def forward(self, x):
        self.x = x
        self.y = self.fn(x)
        return self.y

    def backward(self, g):
        return g * self.derivative(self.x, self.y)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(beta, threshold):
    def fn(x):
        bx = beta * x
        return np.where(bx > threshold, x, np.logaddexp(0.0, bx) / beta)

    def derivative(x, y):
        bx = beta * x
        return np.where(bx > threshold, 1.0, _sigmoid(bx))

    return fn, derivative


def _elu(alpha):
    return (lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
            lambda x, y: np.where(x > 0, 1.0, y + alpha))


_ACTIVATIONS = {
    torch.nn.Tanh: lambda m: (np.tanh, lambda x, y: 1.0 - y * y),
    torch.nn.ReLU: lambda m: (lambda x: np.maximum(x, 0.0), lambda x, y: (x > 0).astype(np.float64)),
    torch.nn.SiLU: lambda m: (lambda x: x * _sigmoid(x),
                              lambda x, y: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    torch.nn.ELU: lambda m: _elu(float(m.alpha)),
    torch.nn.Softplus: lambda m: _softplus(float(m.beta), float(m.threshold)),
}


class _Positions:
    """Positions featurizer on one frame (particles, dims)."""

    def __init__(self, m):
        self.index, self.n, self.dims = m.index.numpy().copy(), m.n_particles_in, m.n_dims

    def forward(self, x):
        if x.shape != (self.n, self.dims):
            raise ValueError(f"Positions featurizer: expected ({self.n}, {self.dims}) positions, got {x.shape}.")
        self.shape = x.shape
        return x[self.index].ravel()

    def backward(self, g):
        out = np.zeros(self.shape)
        np.add.at(out, self.index, g.reshape(len(self.index), self.dims))
        return out


class _AtomStep:
    """Shared part of the molecular featurizers: check the frame, gather gradients onto the atoms.

    ``index`` lists the atom of each gradient row a step produces; a 0/1 matrix maps the rows onto
    the distinct atoms (one small matrix product instead of ``np.add.at``, ~5x faster here).
    """

    def __init__(self, m, owner, index):
        self.expected, self.minimum, self.owner = m._expected_atoms, m._min_atoms, owner
        self.atoms, inverse = np.unique(index, return_inverse=True)
        self.gather = np.zeros((len(self.atoms), len(index)))
        self.gather[inverse, np.arange(len(index))] = 1.0

    def check(self, x):
        n = x.shape[0]
        if x.shape[1:] != (3,) or (self.expected >= 0 and n != self.expected) or n < self.minimum:
            raise ValueError(f"{self.owner}: expected ({self.expected if self.expected >= 0 else 'n_atoms'}, 3) "
                             f"positions (nm), got {x.shape}.")
        self.n = n

    def scatter(self, values):
        out = np.zeros((self.n, 3))
        out[self.atoms] = self.gather @ values
        return out


class _Distances(_AtomStep):
    def __init__(self, m):
        self.i, self.j = m.pairs[:, 0].numpy().copy(), m.pairs[:, 1].numpy().copy()
        super().__init__(m, "Distances", np.concatenate([self.j, self.i]))

    def forward(self, x):
        self.check(x)
        r = x[self.j] - x[self.i]
        d = np.sqrt(np.einsum("ij,ij->i", r, r))
        self.unit = r / d[:, None]
        return d

    def backward(self, g):
        u = g[:, None] * self.unit
        return self.scatter(np.concatenate([u, -u]))


def _cross(a, b):
    """Row-wise cross product of (k, 3) arrays; np.cross costs ~50x more for a few rows (axis handling)."""
    ax, ay, az = a[:, 0], a[:, 1], a[:, 2]
    bx, by, bz = b[:, 0], b[:, 1], b[:, 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=1)


class _Dihedrals(_AtomStep):
    """Dihedral angles (atan2 form, as the torch featurizer) with their analytic gradient
    (Blondel & Karplus, J. Comput. Chem. 17, 1132 (1996), eqs. 27, in the bond vectors b1, b2, b3)."""

    def __init__(self, m):
        self.quads, self.sincos = m.indices.numpy().copy(), bool(m.sincos)
        super().__init__(m, "Dihedrals", self.quads.T.ravel())

    def forward(self, x):
        self.check(x)
        p0, p1, p2, p3 = (x[self.quads[:, k]] for k in range(4))
        b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
        c1, c2 = _cross(b2, b3), _cross(b1, b2)
        nb2 = np.sqrt(np.einsum("ij,ij->i", b2, b2))
        a = np.arctan2(np.einsum("ij,ij->i", b1, c1) * nb2, np.einsum("ij,ij->i", c1, c2))
        self.geometry = b1, b2, b3, c1, c2, nb2
        self.angles = a
        return np.stack([np.sin(a), np.cos(a)], -1).ravel() if self.sincos else a

    def backward(self, g):
        if self.sincos:
            gs, gc = g[0::2], g[1::2]
            g = gs * np.cos(self.angles) - gc * np.sin(self.angles)
        b1, b2, b3, c1, c2, nb2 = self.geometry
        d0 = -(nb2 / np.einsum("ij,ij->i", c2, c2))[:, None] * c2
        d3 = (nb2 / np.einsum("ij,ij->i", c1, c1))[:, None] * c1
        f1 = (np.einsum("ij,ij->i", b1, b2) / nb2**2)[:, None]
        f3 = (np.einsum("ij,ij->i", b3, b2) / nb2**2)[:, None]
        d1 = f3 * d3 - (1.0 + f1) * d0
        d2 = f1 * d0 - (1.0 + f3) * d3
        gk = g[:, None]
        return self.scatter(np.concatenate([gk * d0, gk * d1, gk * d2, gk * d3]))


class _Parallel:
    """Concatenate: each part reads the same positions; gradients add up."""

    def __init__(self, parts, sizes):
        self.parts, self.splits = parts, np.cumsum(sizes)[:-1]

    def forward(self, x):
        return np.concatenate([p.forward(x) for p in self.parts])

    def backward(self, g):
        return sum(p.backward(gi) for p, gi in zip(self.parts, np.split(g, self.splits)))


def _build(m):
    if isinstance(m, CollectiveVariable):
        return _Chain([_build(m.featurizer), _build(m.model)])
    if isinstance(m, torch.nn.Identity):
        return _Identity()
    if isinstance(m, torch.nn.Sequential):
        return _Chain([_build(c) for c in m])
    if isinstance(m, NeuralCV):
        return _Chain([_build(m.standardize), _build(m.net), _build(m.head)])
    if isinstance(m, torch.nn.Linear):
        return _Affine(matrix=_np(m.weight).T, offset=None if m.bias is None else _np(m.bias))
    if isinstance(m, LinearCV):
        return _Affine(matrix=_np(m.weights), shift=_np(m.mean))
    if isinstance(m, Standardize):
        return _Affine(shift=_np(m.mean), scale=1.0 / _np(m.std))
    if type(m) in _ACTIVATIONS:
        return _Activation(*_ACTIVATIONS[type(m)](m))
    if isinstance(m, Positions):
        return _Positions(m)
    if isinstance(m, Distances):
        return _Distances(m)
    if isinstance(m, Dihedrals):
        return _Dihedrals(m)
    if isinstance(m, Concatenate):
        return _Parallel([_build(p) for p in m.parts], [p.n_features for p in m.parts])
    lean = getattr(m, "lean_step", None)
    if lean is not None:
        return lean()
    raise Unsupported(f"no lean step for {type(m).__name__}")


class LeanCV:
    """s(x) and g . ds/dx of one configuration x (particles, dims), in float64 numpy.

    Call :meth:`value` then :meth:`vjp` (which uses the intermediates of the last :meth:`value`).
    """

    def __init__(self, module):
        self.chain = _build(module)

    def value(self, x):
        """CV values (d,) at positions ``x`` (particles, dims) in nm."""
        return np.atleast_1d(self.chain.forward(x))

    def vjp(self, g):
        """sum_k g_k ds_k/dx, shaped like x, for the configuration of the last :meth:`value` call."""
        return self.chain.backward(np.asarray(g, dtype=np.float64))


def compile_cv(module):
    """A :class:`LeanCV` for ``module``, or :class:`Unsupported` if some part has no lean step."""
    return LeanCV(module)
