"""A lean inference path for CVs: value and gradient of one configuration without torch autograd.

An MD engine that biases one molecule asks for s(x) and the vector-Jacobian product g . ds/dx at
every step. For the small networks and featurizers of a CV, torch's per-operation dispatch and
the autograd engine's fixed cost (~100 us per backward pass on the 2-core machines we measured)
dominate; the same arithmetic in numpy on one frame takes a few microseconds per layer.

:func:`compile_cv` walks a CV module and builds a flat list of steps, one per module, each holding
its parameters as float64 numpy arrays. Each step's value formula mirrors its module's torch
``forward`` (the tests compare the two, value and gradient, for every supported module); a module
without a step makes :func:`compile_cv` raise :class:`Unsupported`, and the engine falls back to
autograd on the torch module itself, so no CV is ever refused.

At this size numpy costs ~1 us per operation whatever it computes, so the compiler minimizes the
number of operations per call (measured in ``benchmarks/openmm_bias.py``):

- adjacent affine maps are fused at compile time (Standardize into the first Linear layer, the
  last Linear layer into a LinearCV head), and a layer's bias rides in its matrix as one extra row
  against a constant 1 that the previous step leaves after its output (one ``np.dot`` per layer);
- intermediates live in buffers allocated once (``out=`` arguments), never re-wrapped;
- pair distances of a few atoms are one product with a constant incidence matrix (and the
  gradient one product with its transpose) instead of gathers and scatters;
- a few dihedrals are computed in plain Python floats (``math``), ~10x faster than array code for
  one to four angles;
- with ``atoms`` the CV reads only the rows of those atoms (what OpenMM hands a PythonForce
  restricted to them), so nothing is gathered or scattered through the full system.
"""

import math

import numpy as np
import torch

from ..features import Concatenate, Dihedrals, Distances, Positions
from ..learners import CollectiveVariable, LinearCV
from ..learners._neural import NeuralCV
from ..learners._nn import Standardize

__all__ = ["LeanCV", "Unsupported", "compile_cv"]

#: Largest incidence matrix (pairs x atoms entries) used for distances; above it gathers and
#: ``np.bincount`` scatters win.
_DENSE_MAX = 1_500
#: Dihedrals computed in scalar Python arithmetic up to this many angles (array code above).
_SCALAR_DIHEDRALS = 4


class Unsupported(TypeError):
    """The module (or one inside it) has no lean step; use autograd instead."""


def _np(t):
    return t.detach().cpu().double().numpy().copy()


# -- the model part: affine maps and activations ---------------------------------------------------
class _Affine:
    """y = x @ matrix + offset (Linear, LinearCV, Standardize), fused with its neighbours at compile time.

    ``diagonal``: ``matrix`` is the diagonal only (Standardize). After :func:`_wire` the offset is the
    last row of an augmented matrix, multiplied by a constant 1 stored after the input.
    """

    def __init__(self, matrix, offset=None, diagonal=False):
        self.matrix, self.diagonal = matrix, diagonal
        n_out = matrix.shape[0] if diagonal else matrix.shape[1]
        self.offset = np.zeros(n_out) if offset is None else offset
        self.n_in, self.n_out = (matrix.shape[0], n_out)

    def dense(self):
        return np.diag(self.matrix) if self.diagonal else self.matrix

    def then(self, other):
        """The affine map ``other(self(x))``, or None where fusing would cost more than it saves."""
        if self.diagonal and other.diagonal:
            return _Affine(self.matrix * other.matrix, self.offset * other.matrix + other.offset, diagonal=True)
        if self.diagonal:
            return _Affine(self.matrix[:, None] * other.matrix, self.offset @ other.matrix + other.offset)
        if other.diagonal:
            return _Affine(self.matrix * other.matrix, self.offset * other.matrix + other.offset)
        if self.n_in * other.n_out > self.matrix.size + other.matrix.size:
            return None
        return _Affine(self.matrix @ other.matrix, self.offset @ other.matrix + other.offset)

    def setup(self, fresh):
        matrix = self.dense()
        self.augmented = np.vstack([matrix, self.offset[None, :]])
        self.back = np.ascontiguousarray(matrix)  # backward: g_in = matrix @ g
        self.x_in = np.ones(self.n_in + 1)  # input, then a constant 1 for the offset row
        self.head = self.x_in[:self.n_in]  # the previous step may write its output straight here
        self.fresh = fresh  # the last step returns a new array (the caller may keep it)
        self.y = None if fresh else np.empty(self.n_out)
        self.g_in = np.empty(self.n_in)

    def forward(self, x):
        if x is not self.head:
            self.head[...] = x
        if self.fresh:
            return np.dot(self.x_in, self.augmented)
        return np.dot(self.x_in, self.augmented, out=self.y)

    def backward(self, g):
        return np.dot(self.back, g, out=self.g_in)

    def ops(self, x):
        """Forward as (function, arguments) calls on fixed buffers, reading ``x``; and the output buffer
        (None for the last step, whose call makes a new array)."""
        copy = [] if x is self.head else [(np.copyto, (self.head, x))]
        if self.fresh:
            return copy + [(np.dot, (self.x_in, self.augmented))], None
        return copy + [(np.dot, (self.x_in, self.augmented, self.y))], self.y

    def backward_ops(self, g):
        return [(np.dot, (self.back, g, self.g_in))], self.g_in


class _Tanh:
    """tanh, derivative 1 - y^2. With ``derivative`` (a view of a buffer LeanCV.vjp fills with 1 - y^2 of
    all tanh layers at once: two numpy calls for the whole network) the backward pass is one product."""

    derivative = None

    def setup(self, n, out):
        self.y = np.empty(n) if out is None else out
        self.t = np.empty(n)

    def forward(self, x):
        return np.tanh(x, out=self.y)

    def backward(self, g):
        t = self.t
        if self.derivative is not None:
            return np.multiply(self.derivative, g, out=t)
        np.multiply(self.y, self.y, out=t)
        np.subtract(1.0, t, out=t)
        return np.multiply(t, g, out=t)

    def ops(self, x):
        return [(np.tanh, (x, self.y))], self.y

    def backward_ops(self, g):
        t = self.t
        if self.derivative is not None:
            return [(np.multiply, (self.derivative, g, t))], t
        return [(np.multiply, (self.y, self.y, t)), (np.subtract, (1.0, t, t)), (np.multiply, (t, g, t))], t


class _Activation:
    """Elementwise activation; ``derivative(x, y)`` from the input and output of the forward pass."""

    def __init__(self, fn, derivative):
        self.fn, self.derivative = fn, derivative

    def setup(self, n, out):
        self.out = out

    def forward(self, x):
        self.x = x
        y = self.fn(x)
        if self.out is not None:
            self.out[...] = y
            y = self.out
        self.y = y
        return y

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
    torch.nn.ReLU: lambda m: (lambda x: np.maximum(x, 0.0), lambda x, y: (x > 0).astype(np.float64)),
    torch.nn.SiLU: lambda m: (lambda x: x * _sigmoid(x),
                              lambda x, y: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    torch.nn.ELU: lambda m: _elu(float(m.alpha)),
    torch.nn.Softplus: lambda m: _softplus(float(m.beta), float(m.threshold)),
}


class _Custom:
    """A step from a module's own ``lean_step()`` (forward(x) -> y, backward(g) -> g_in)."""

    def __init__(self, step):
        self.step = step

    def setup(self, n, out):
        self.out = out

    def forward(self, x):
        y = self.step.forward(x)
        if self.out is not None:
            self.out[...] = y
            return self.out
        return y

    def backward(self, g):
        return self.step.backward(g)


# -- featurizers: positions (rows, dims) -> features (n,) ------------------------------------------
class _Rows:
    """Maps a featurizer's atom indices onto the rows of the positions the lean CV is given."""

    def __init__(self, atoms, n_atoms):
        self.atoms = None if atoms is None else np.asarray(atoms, dtype=np.int64)
        self.n_atoms = n_atoms

    def rows(self, index, owner):
        index = np.asarray(index, dtype=np.int64)
        if self.atoms is None:
            return index
        pos = np.searchsorted(self.atoms, index)
        ok = (pos < len(self.atoms)) & (self.atoms[np.minimum(pos, len(self.atoms) - 1)] == index)
        if not ok.all():
            raise Unsupported(f"{owner} reads atom {int(index[~ok][0])}, which is not among the atoms given")
        return pos


class _Feature:
    """Shared part of the featurizers: the shape check and the output buffer."""

    out = None

    def setup_out(self, out):
        self.out = np.empty(self.n_out) if out is None else out

    def check(self, x):
        if x.shape != self.shape:
            self.shape_error(x)
        return x

    def fix_shape(self, rows, m, owner):
        """Expected positions shape: (len(atoms), 3) with ``atoms``, else the featurizer's atom count."""
        self.owner = owner
        if rows.atoms is not None:
            self.shape = (len(rows.atoms), 3)
            self.expected, self.minimum = len(rows.atoms), 0
        else:
            self.expected, self.minimum = m._expected_atoms, m._min_atoms
            self.shape = (self.expected, 3) if self.expected >= 0 else None
        self.check = self.check if self.shape is not None else self.check_open

    def check_open(self, x):
        if x.ndim != 2 or x.shape[1] != 3 or x.shape[0] < self.minimum:
            self.shape_error(x)
        return x

    def shape_error(self, x):
        raise ValueError(f"{self.owner}: expected ({self.expected if self.expected >= 0 else 'n_atoms'}, 3) "
                         f"positions (nm), got {x.shape}.")


class _Positions(_Feature):
    """Positions featurizer on one frame (particles, dims)."""

    def __init__(self, m, rows):
        self.owner, self.dims = "Positions featurizer", m.n_dims
        index = m.index.numpy().copy()
        if rows.atoms is not None:
            self.shape = (len(rows.atoms), m.n_dims)
            index = rows.rows(index, "Positions")
        else:
            self.shape = (m.n_particles_in, m.n_dims)
        self.index, self.n_out = index, len(index) * m.n_dims
        self.identity = np.array_equal(index, np.arange(self.shape[0]))
        self.unique = len(np.unique(index)) == len(index)

    def check(self, x):
        if x.shape != self.shape:
            raise ValueError(f"Positions featurizer: expected {self.shape} positions, got {x.shape}.")
        return x

    def forward(self, x):
        self.check(x)
        if self.identity:
            return x.reshape(-1)
        return x[self.index].ravel()

    def backward(self, g):
        g = g.reshape(len(self.index), self.dims)
        if self.identity:
            return g.copy()
        out = np.zeros(self.shape)
        if self.unique:
            out[self.index] = g
        else:
            np.add.at(out, self.index, g)
        return out


class _Distances(_Feature):
    """Pair distances. Few pairs of few atoms: r = P x with the constant incidence matrix P (3 pairs,
    3 atoms), the gradient P^T (g / d * r), one ``np.dot`` each way; else gathers and bincount."""

    def __init__(self, m, rows):
        self.fix_shape(rows, m, "Distances")
        pairs = m.pairs.numpy()
        i, j = rows.rows(pairs[:, 0], "Distances"), rows.rows(pairs[:, 1], "Distances")
        p = len(i)
        self.n_out = p
        n = self.shape[0] if self.shape is not None else None
        self.dense = n is not None and p * n <= _DENSE_MAX
        three = np.arange(3)
        self.j3 = (3 * j[:, None] + three).ravel()
        self.i3 = (3 * i[:, None] + three).ravel()
        if self.dense:  # r = P x: P (pairs, atoms) with +1 at the second atom and -1 at the first
            inc = np.zeros((p, n))
            np.add.at(inc, (np.arange(p), j), 1.0)
            np.add.at(inc, (np.arange(p), i), -1.0)
            self.incidence, self.incidence_t = inc, np.ascontiguousarray(inc.T)
        self.r = np.empty((p, 3))
        self.rf, self.rx, self.ry, self.rz = self.r.reshape(-1), self.r[:, 0], self.r[:, 1], self.r[:, 2]
        self.a, self.b = np.empty(3 * p), np.empty(3 * p)
        self.q, self.q3, self.d2 = np.empty(p), np.empty((p, 3)), np.empty(p)
        self.q_col = self.q[:, None]

    def forward(self, x):
        self.check(x)
        if self.dense:
            np.dot(self.incidence, x, out=self.r)
        else:
            self.n = x.shape[0]
            xf = x.reshape(-1)
            np.subtract(np.take(xf, self.j3, out=self.a), np.take(xf, self.i3, out=self.b), out=self.rf)
        # |r| as hypot(hypot(x, y), z): two calls instead of square, sum and root (~2x faster here).
        return np.hypot(np.hypot(self.rx, self.ry, out=self.d2), self.rz, out=self.out)

    def ops(self, x):
        if not self.dense:
            return None
        return [(np.dot, (self.incidence, x, self.r)), (np.hypot, (self.rx, self.ry, self.d2)),
                (np.hypot, (self.d2, self.rz, self.out))], self.out

    def backward_ops(self, g):
        """Calls ending with one that returns the new gradient array."""
        if not self.dense:
            return None
        return [(np.divide, (g, self.out, self.q)), (np.multiply, (self.r, self.q_col, self.q3)),
                (np.dot, (self.incidence_t, self.q3))], None

    def backward(self, g):
        np.divide(g, self.out, out=self.q)
        np.multiply(self.r, self.q_col, out=self.q3)
        if self.dense:
            return np.dot(self.incidence_t, self.q3)
        size = 3 * self.n
        q3 = self.q3.reshape(-1)
        out = np.bincount(self.j3, q3, size) - np.bincount(self.i3, q3, size)
        return out.reshape(self.n, 3)


def _cross(a, b):
    """Row-wise cross product of (k, 3) arrays; np.cross costs ~50x more for a few rows (axis handling)."""
    ax, ay, az = a[:, 0], a[:, 1], a[:, 2]
    bx, by, bz = b[:, 0], b[:, 1], b[:, 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=1)


class _Dihedrals(_Feature):
    """Dihedral angles (atan2 form, as the torch featurizer) with their analytic gradient
    (Blondel & Karplus, J. Comput. Chem. 17, 1132 (1996), eqs. 27, in the bond vectors b1, b2, b3).

    Up to ``_SCALAR_DIHEDRALS`` angles in Python floats, more in array code.
    """

    def __init__(self, m, rows):
        self.fix_shape(rows, m, "Dihedrals")
        self.quads = np.stack([rows.rows(q, "Dihedrals") for q in m.indices.numpy().T], axis=1)
        self.sincos = bool(m.sincos)
        self.n_out = len(self.quads) * (2 if self.sincos else 1)
        self.fresh_output = True  # forward returns a new array, never a buffer
        self.scalar = len(self.quads) <= _SCALAR_DIHEDRALS
        self.quad_list = self.quads.tolist()
        # Array path: a 0/1 matrix maps the gradient rows onto the distinct atoms (~5x faster than add.at).
        index = self.quads.T.ravel()
        self.atoms, inverse = np.unique(index, return_inverse=True)
        self.gather = np.zeros((len(self.atoms), len(index)))
        self.gather[inverse, np.arange(len(index))] = 1.0

    def forward(self, x):
        self.check(x)
        if self.scalar:
            return self._forward_scalar(x)
        self.n = x.shape[0]
        p0, p1, p2, p3 = (x[self.quads[:, k]] for k in range(4))
        b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
        c1, c2 = _cross(b2, b3), _cross(b1, b2)
        nb2 = np.sqrt(np.einsum("ij,ij->i", b2, b2))
        a = np.arctan2(np.einsum("ij,ij->i", b1, c1) * nb2, np.einsum("ij,ij->i", c1, c2))
        self.geometry = b1, b2, b3, c1, c2, nb2
        self.angles = a
        return np.stack([np.sin(a), np.cos(a)], -1).ravel() if self.sincos else a

    def backward(self, g):
        if self.scalar:
            return self._backward_scalar(g)
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
        out = np.zeros((self.n, 3))
        out[self.atoms] = self.gather @ np.concatenate([gk * d0, gk * d1, gk * d2, gk * d3])
        return out

    # The same formulas in Python floats: for one to four angles ~10x faster than the array code above.
    def _forward_scalar(self, x):
        self.n = x.shape[0]
        xl = x.tolist()
        values, self.geometry = [], []
        for i0, i1, i2, i3 in self.quad_list:
            p0, p1, p2, p3 = xl[i0], xl[i1], xl[i2], xl[i3]
            b1 = (p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2])
            b2 = (p2[0] - p1[0], p2[1] - p1[1], p2[2] - p1[2])
            b3 = (p3[0] - p2[0], p3[1] - p2[1], p3[2] - p2[2])
            c1 = (b2[1] * b3[2] - b2[2] * b3[1], b2[2] * b3[0] - b2[0] * b3[2], b2[0] * b3[1] - b2[1] * b3[0])
            c2 = (b1[1] * b2[2] - b1[2] * b2[1], b1[2] * b2[0] - b1[0] * b2[2], b1[0] * b2[1] - b1[1] * b2[0])
            nb2 = math.sqrt(b2[0] * b2[0] + b2[1] * b2[1] + b2[2] * b2[2])
            a = math.atan2((b1[0] * c1[0] + b1[1] * c1[1] + b1[2] * c1[2]) * nb2,
                           c1[0] * c2[0] + c1[1] * c2[1] + c1[2] * c2[2])
            self.geometry.append((b1, b2, b3, c1, c2, nb2, a))
            if self.sincos:
                values += (math.sin(a), math.cos(a))
            else:
                values.append(a)
        return np.array(values)

    def _backward_scalar(self, g):
        g = g.tolist()
        grad = [[0.0, 0.0, 0.0] for _ in range(self.n)]
        for k, ((b1, b2, b3, c1, c2, nb2, a), quad) in enumerate(zip(self.geometry, self.quad_list)):
            gk = g[2 * k] * math.cos(a) - g[2 * k + 1] * math.sin(a) if self.sincos else g[k]
            s0 = -gk * nb2 / (c2[0] * c2[0] + c2[1] * c2[1] + c2[2] * c2[2])
            s3 = gk * nb2 / (c1[0] * c1[0] + c1[1] * c1[1] + c1[2] * c1[2])
            nb22 = nb2 * nb2
            f1 = (b1[0] * b2[0] + b1[1] * b2[1] + b1[2] * b2[2]) / nb22
            f3 = (b3[0] * b2[0] + b3[1] * b2[1] + b3[2] * b2[2]) / nb22
            rows = [grad[i] for i in quad]
            for c in range(3):
                d0, d3 = s0 * c2[c], s3 * c1[c]
                rows[0][c] += d0
                rows[1][c] += f3 * d3 - (1.0 + f1) * d0
                rows[2][c] += f1 * d0 - (1.0 + f3) * d3
                rows[3][c] += d3
        return np.array(grad)


class _Parallel(_Feature):
    """Concatenate: each part reads the same positions into its slice of one output; gradients add up."""

    def __init__(self, parts):
        self.parts = parts
        self.n_out = sum(p.n_out for p in parts)
        self.bounds = np.cumsum([0] + [p.n_out for p in parts]).tolist()

    def setup_out(self, out):
        self.out = np.empty(self.n_out) if out is None else out
        for p, a, b in zip(self.parts, self.bounds[:-1], self.bounds[1:]):
            p.setup_out(self.out[a:b])

    def forward(self, x):
        for p in self.parts:
            y = p.forward(x)
            if y is not p.out:  # a part without its own buffer (e.g. scalar dihedrals)
                p.out[...] = y
        return self.out

    def backward(self, g):
        grads = [p.backward(g[a:b]) for p, a, b in zip(self.parts, self.bounds[:-1], self.bounds[1:])]
        out = grads[0]
        for gr in grads[1:]:
            out = out + gr
        return out


# -- compiling ---------------------------------------------------------------------------------
def _feature(m, rows):
    if m is None or isinstance(m, torch.nn.Identity):
        return None
    if isinstance(m, Positions):
        return _Positions(m, rows)
    if isinstance(m, Distances):
        return _Distances(m, rows)
    if isinstance(m, Dihedrals):
        return _Dihedrals(m, rows)
    if isinstance(m, Concatenate):
        return _Parallel([_feature(p, rows) for p in m.parts])
    raise Unsupported(f"no lean step for {type(m).__name__}")


def _model(m):
    """Flat list of model steps (affines, activations) for ``m``."""
    if m is None or isinstance(m, torch.nn.Identity):
        return []
    if isinstance(m, torch.nn.Sequential):
        return [s for c in m for s in _model(c)]
    if isinstance(m, NeuralCV):
        return _model(m.standardize) + _model(m.net) + _model(m.head)
    if isinstance(m, torch.nn.Linear):
        return [_Affine(_np(m.weight).T, None if m.bias is None else _np(m.bias))]
    if isinstance(m, LinearCV):
        w = _np(m.weights)
        return [_Affine(w, -(_np(m.mean) @ w))]
    if isinstance(m, Standardize):
        scale = 1.0 / _np(m.std)
        return [_Affine(scale, -_np(m.mean) * scale, diagonal=True)]
    if isinstance(m, torch.nn.Tanh):
        return [_Tanh()]
    if type(m) in _ACTIVATIONS:
        return [_Activation(*_ACTIVATIONS[type(m)](m))]
    lean = getattr(m, "lean_step", None)
    if lean is not None:
        return [_Custom(lean())]
    raise Unsupported(f"no lean step for {type(m).__name__}")


def _fuse(steps):
    out = []
    for s in steps:
        if out and isinstance(s, _Affine) and isinstance(out[-1], _Affine):
            merged = out[-1].then(s)
            if merged is not None:
                out[-1] = merged
                continue
        out.append(s)
    return out


def _wire(feature, steps, n_in):
    """Allocate buffers; each step writes its output into the next affine step's input where it can."""
    n = n_in
    for k, s in enumerate(steps):
        if isinstance(s, _Affine):
            if s.n_in != n:
                raise ValueError(f"lean CV: a layer expects {s.n_in} inputs but receives {n}.")
            s.setup(fresh=k == len(steps) - 1)
            n = s.n_out
    # The inputs of the affine steps that follow a tanh share one buffer, so that 1 - y^2 of every
    # tanh layer is two numpy calls per backward pass (LeanCV.vjp), not two per layer.
    after_tanh = [s for k, s in enumerate(steps) if isinstance(s, _Affine) and k and isinstance(steps[k - 1], _Tanh)]
    shared = None
    if len(after_tanh) > 1:
        shared = np.ones(sum(s.n_in + 1 for s in after_tanh)), None
        shared = shared[0], np.empty_like(shared[0])
        offset = 0
        for s in after_tanh:
            s.x_in = shared[0][offset:offset + s.n_in + 1]
            s.head = s.x_in[:s.n_in]
            s.offset_in_shared = offset
            offset += s.n_in + 1
    for k, s in enumerate(steps):
        nxt = steps[k + 1] if k + 1 < len(steps) else None
        if not isinstance(s, _Affine):
            s.setup(n_of(steps, k, n_in), nxt.head if isinstance(nxt, _Affine) else None)
            if shared is not None and isinstance(s, _Tanh) and nxt in after_tanh:
                s.derivative = shared[1][nxt.offset_in_shared:nxt.offset_in_shared + nxt.n_in]
    if feature is not None:
        first = steps[0] if steps else None
        feature.setup_out(first.head if isinstance(first, _Affine) else None)
    return n, shared


def n_of(steps, k, n_in):
    """Width of the input of step k."""
    for s in reversed(steps[:k]):
        if isinstance(s, _Affine):
            return s.n_out
    return n_in


class LeanCV:
    """s(x) and g . ds/dx of one configuration x (particles, dims), in float64 numpy.

    Call :meth:`value` then :meth:`vjp` (which uses the intermediates of the last :meth:`value`).
    Both return new arrays.

    Parameters
    ----------
    module : torch.nn.Module
        A CV (:class:`~cvlearn.learners.CollectiveVariable`, a featurizer, or a model on features).
    atoms : array_like of int, optional
        Sorted indices of the atoms whose positions ``x`` holds (rows in this order), e.g. those a
        PythonForce restricted to the CV's atoms receives; default all atoms of the system.
    """

    def __init__(self, module, atoms=None):
        if atoms is not None:
            atoms = np.asarray(atoms, dtype=np.int64)
            if atoms.ndim != 1 or (np.diff(atoms) <= 0).any():
                raise ValueError("atoms must be sorted, distinct atom indices.")
        rows = _Rows(atoms, None)
        if isinstance(module, CollectiveVariable):
            feat_m, model_m = module.featurizer, module.model
        elif isinstance(module, (Positions, Distances, Dihedrals, Concatenate)):
            feat_m, model_m = module, None
        else:
            feat_m, model_m = None, module
        self.feature = _feature(feat_m, rows)
        self.steps = _fuse(_model(model_m))
        n_in = self.feature.n_out if self.feature is not None else None
        if n_in is None:
            first = next((s for s in self.steps if isinstance(s, _Affine)), None)
            n_in = first.n_in if first is not None else 0
        self.n_out, self._tanh = _wire(self.feature, self.steps, n_in)
        self.chain = ([self.feature] if self.feature is not None else []) + self.steps
        self._forward = tuple(s.forward for s in self.chain)
        self._backward = tuple(s.backward for s in reversed(self.chain))
        # The last step returns a new array only if it is an affine map: copy anything else (a buffer
        # reused by the next call, or a view of the caller's positions).
        last = self.chain[-1] if self.chain else None
        self._copy = not (isinstance(last, _Affine) and last.fresh) and not getattr(last, "fresh_output", False)
        self._program()

    def _program(self):
        """Where every step can: the whole forward and backward pass as two fixed lists of numpy calls
        on preallocated buffers (one loop, no per-step method dispatch; ~1/3 of the Python time saved).

        Sets ``x_in`` (the positions buffer the program reads; a caller that writes positions there
        saves a copy) and ``g_in`` (the buffer the incoming dV/ds is copied to), else leaves them None.
        """
        self.x_in = self.g_in = None
        chain = self.chain
        if (not isinstance(self.feature, _Distances) or not self.feature.dense or len(chain) < 2
                or not all(isinstance(s, (_Affine, _Tanh)) for s in self.steps) or not self.steps[-1].fresh):
            return
        x_in = np.empty(self.feature.shape)
        forward, buf = [], x_in
        for s in chain:
            ops, buf = s.ops(buf)
            forward += ops
        g_in = np.empty(self.n_out)
        backward, buf = [], g_in
        if self._tanh is not None:  # 1 - y^2 of all tanh layers at once
            y, d = self._tanh
            backward += [(np.multiply, (y, y, d)), (np.subtract, (1.0, d, d))]
        for s in reversed(chain):
            ops, buf = s.backward_ops(buf)
            backward += ops
        self._forward_ops, self._forward_last = tuple(forward[:-1]), forward[-1]
        self._backward_ops, self._backward_last = tuple(backward[:-1]), backward[-1]
        self.x_in, self.g_in = x_in, g_in

    def value(self, x):
        """CV values (d,) at positions ``x`` (particles, dims) in nm."""
        if self.x_in is not None:
            if x is not self.x_in:
                self.feature.check(x)
                np.copyto(self.x_in, x)
            for f, args in self._forward_ops:
                f(*args)
            f, args = self._forward_last
            return f(*args)
        for forward in self._forward:
            x = forward(x)
        return np.array(x, dtype=np.float64) if self._copy else x

    def vjp(self, g):
        """sum_k g_k ds_k/dx, shaped like x, for the configuration of the last :meth:`value` call."""
        if self.g_in is not None:
            self.g_in[:] = g
            for f, args in self._backward_ops:
                f(*args)
            f, args = self._backward_last
            return f(*args)
        g = np.asarray(g, dtype=np.float64)
        if self._tanh is not None:  # 1 - y^2 of all tanh layers (the trailing 1s give 0s, unused)
            y, d = self._tanh
            np.multiply(y, y, out=d)
            np.subtract(1.0, d, out=d)
        for backward in self._backward:
            g = backward(g)
        return g


def compile_cv(module, atoms=None):
    """A :class:`LeanCV` for ``module``, or :class:`Unsupported` if some part has no lean step.

    ``atoms``: the sorted atom indices whose positions the CV will be given (default all atoms).
    """
    return LeanCV(module, atoms)
