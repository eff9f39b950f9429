"""A lean inference path for CVs: value and gradient of one configuration without torch autograd.

An MD engine that biases one molecule asks for s(x) and the vector-Jacobian product g . ds/dx at
every step. For the small networks and featurizers of a CV, torch's per-operation dispatch and
the autograd engine's fixed cost (~100 us per backward pass on the 2-core machines we measured)
dominate; the same arithmetic in numpy on one frame takes a few microseconds per layer.

:func:`compile_cv` asks :func:`cvlearn.hooks.lean_steps` for the steps of a CV module: each
featurizer and model class registers its own next to its definition (one
:class:`~cvlearn.hooks.FeatureStep` for a featurizer, :class:`~cvlearn.hooks.Affine`,
:class:`~cvlearn.hooks.Tanh` and :class:`~cvlearn.hooks.Elementwise` steps for a model), and each
step's formula mirrors its module's torch ``forward`` (the tests compare the two, value and
gradient, for every registered class). A module without steps, or registered as
:func:`~cvlearn.hooks.autograd_only`, makes :func:`compile_cv` raise :class:`Unsupported`, and the
engine falls back to autograd on the torch module itself, so no CV is ever refused.

At this size numpy costs ~1 us per operation whatever it computes, so the compiler minimizes the
number of operations per call (measured in ``benchmarks/openmm_bias.py``):

- adjacent affine maps are fused at compile time (Standardize into the first Linear layer, the
  last Linear layer into a LinearCV head), and a layer's bias rides in its matrix as one extra row
  against a constant 1 that the previous step leaves after its output (one ``np.dot`` per layer);
- intermediates live in buffers allocated once (``out=`` arguments), never re-wrapped;
- where the featurizer step offers fixed calls (``ops``, e.g. pair distances as one product with a
  constant incidence matrix) and the model is affine maps and tanh, the whole pass is two fixed
  lists of numpy calls;
- with ``atoms`` the CV reads only the rows of those atoms (what OpenMM hands a PythonForce
  restricted to them), so nothing is gathered or scattered through the full system.
"""

import numpy as np

from ..hooks import Affine, Elementwise, FeatureStep, Rows, Tanh, Unsupported, lean_steps

__all__ = ["LeanCV", "Unsupported", "compile_cv"]


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


def _model_step(step):
    """The engine's step (buffers, fusion) for one model step of the hooks' vocabulary."""
    if isinstance(step, Affine):
        return _Affine(step.matrix, step.offset, diagonal=step.diagonal)
    if isinstance(step, Tanh):
        return _Tanh()
    if isinstance(step, Elementwise):
        return _Activation(step.fn, step.derivative)
    if isinstance(step, FeatureStep):
        raise Unsupported("a featurizer step inside the model (only the first step may read positions)")
    raise Unsupported(f"unknown lean step {type(step).__name__}")


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
        steps = lean_steps(module, Rows(atoms))
        self.feature = steps[0] if steps and isinstance(steps[0], FeatureStep) else None
        self.steps = _fuse([_model_step(s) for s in steps[self.feature is not None:]])
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
        if (self.feature is None or self.feature.shape is None or len(chain) < 2
                or not all(isinstance(s, (_Affine, _Tanh)) for s in self.steps) or not self.steps[-1].fresh):
            return
        x_in = np.empty(self.feature.shape)
        first = self.feature.ops(x_in)
        if first is None:  # this featurizer step has no fixed-call form
            return
        forward, buf = first
        for s in self.steps:
            ops, buf = s.ops(buf)
            forward += ops
        g_in = np.empty(self.n_out)
        backward, buf = [], g_in
        if self._tanh is not None:  # 1 - y^2 of all tanh layers at once
            y, d = self._tanh
            backward += [(np.multiply, (y, y, d)), (np.subtract, (1.0, d, d))]
        for s in reversed(self.steps):
            ops, buf = s.backward_ops(buf)
            backward += ops
        ops, _ = self.feature.backward_ops(buf)
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
