"""A scalar field on a grid, stored with its mixed partial derivatives and interpolated C1-smoothly.

Gaussian hills are added exactly: value and derivatives at every grid point within the hill's
cutoff. Between grid points the field is the tensor-product cubic Hermite interpolant, which
matches values and derivatives at the nodes, so the bias and its force are continuous and the
interpolation error is O(h^4) in the bias (O(h^3) in the force). The cost of one evaluation is
4^d gathers, independent of how many hills were deposited.
"""

import itertools
import math

import numpy as np
import torch

from ._analytic import ValueWithGradient

__all__ = ["HermiteField"]

#: Hills are truncated at this many sigmas (relative error exp(-CUTOFF^2 / 2) = 1.5e-8).
CUTOFF = 6.0


class HermiteField:
    """Values and mixed derivatives of a field on ``grid``: ``data[k]`` holds d^S f, S = bits of k."""

    _view_of = None  # the tensor whose numpy view _view is

    def __init__(self, grid, device="cpu"):
        self.grid = grid
        d = grid.ndim
        self.data = torch.zeros((2**d, *grid.shape), dtype=torch.float64, device=device)
        self._kinds = [[(k >> i) & 1 for i in range(d)] for k in range(2**d)]
        corners = list(itertools.product((0, 1), repeat=d))
        self._corners = corners
        self._shape, self._periodic = list(grid.shape), [bool(p) for p in grid.periodic]
        # (lo, h, last cell index, points) per axis as Python numbers, for the scalar one-point path.
        self._axis_floats = [(float(grid.lo[i]), float(grid.spacing[i]), n - 1 if p else n - 2, n)
                             for i, (n, p) in enumerate(zip(grid.shape, grid.periodic))]
        kind_bits = [np.array([b[i] for b in self._kinds]) for i in range(d)]
        corner_bits = [np.array([c[i] for c in corners]) for i in range(d)]
        # Constants of the interpolation, for numpy (CPU) and torch (any device).
        self._np_consts = {
            "lo": grid.lo, "h": grid.spacing, "periodic": grid.periodic, "n": np.array(grid.shape, dtype=float),
            "last": np.array([n - 1 if p else n - 2 for n, p in zip(grid.shape, grid.periodic)], dtype=float),
            "corner_bits": corner_bits,
            "rows": [2 * kb[:, None] + cb[None, :] for kb, cb in zip(kind_bits, corner_bits)],  # (kinds, corners)
        }
        self._consts = {k: torch.as_tensor(v, device=device) for k, v in self._np_consts.items()
                        if not isinstance(v, list)}
        self._consts.update({k: [torch.as_tensor(a, device=device) for a in self._np_consts[k]]
                             for k in ("corner_bits", "rows")})

    def __getstate__(self):
        # The numpy view of the grid would come back from pickle or deepcopy as a separate copy while
        # _view_of still matched data: drop both, the view is rebuilt on first use.
        state = self.__dict__.copy()
        state.pop("_view", None)
        state.pop("_view_of", None)
        return state

    # -- deposition -------------------------------------------------------------------------------
    def _axis_factors(self, i, centers, sigmas):
        """Grid indices (n, w) near each center along axis i, with the Gaussian and its derivative there.

        The window holds every grid point within CUTOFF sigmas (one image per point on a periodic
        axis, by minimum image); points outside the window or the grid get zero weight.
        """
        g = self.grid
        lo, h, n = g.lo[i], g.spacing[i], g.shape[i]
        half = int(np.ceil(CUTOFF * sigmas.max() / h)) + 1
        offsets = np.arange(-half, half + 1)
        if g.periodic[i] and len(offsets) > n:
            offsets = np.arange(-(n // 2), n - n // 2)
        idx = np.rint((centers - lo) / h).astype(np.int64)[:, None] + offsets[None, :]
        dx = lo + h * idx - centers[:, None]
        if g.periodic[i]:
            dx = (dx + 0.5 * g.period[i]) % g.period[i] - 0.5 * g.period[i]
            idx %= n
            ok = np.ones(idx.shape, dtype=bool)
        else:
            ok = (idx >= 0) & (idx < n)
            idx = np.clip(idx, 0, n - 1)
        u = dx / sigmas[:, None]
        ok &= np.abs(u) <= CUTOFF
        val = np.where(ok, np.exp(-0.5 * u * u), 0.0)
        return idx, val, -dx / sigmas[:, None] ** 2 * val

    def add_gaussians(self, centers, sigmas, heights, chunk_points=4_000_000):
        """Add hills h exp(-sum_i (s_i - c_i)^2 / (2 sigma_i^2)) with centers (n, d), sigmas (n, d) or (d,).

        Values and derivatives of all hills are accumulated at once (``np.bincount`` over the
        points of their windows), in chunks of at most ``chunk_points`` window points.
        """
        centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))
        sigmas = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), centers.shape)
        heights = np.broadcast_to(np.asarray(heights, dtype=np.float64), centers.shape[:1])
        n, d = centers.shape
        if n == 0:
            return
        shape = self.grid.shape
        strides = np.array([int(np.prod(shape[i + 1:])) for i in range(d)])
        per_hill = int(np.prod([2 * (np.ceil(CUTOFF * sigmas[:, i].max() / self.grid.spacing[i]) + 2)
                                for i in range(d)]))
        step = max(1, chunk_points // max(per_hill, 1))
        total = np.zeros((len(self._kinds), int(np.prod(shape))))
        for a in range(0, n, step):
            b = min(n, a + step)
            axes = [self._axis_factors(i, centers[a:b, i], sigmas[a:b, i]) for i in range(d)]
            flat = 0
            for i, (idx, _, _) in enumerate(axes):
                flat = flat + _along(idx, i, d) * strides[i]
            flat = np.broadcast_to(flat, (b - a, *[ax[0].shape[1] for ax in axes])).ravel()
            for k, bits in enumerate(self._kinds):
                w = heights[a:b].reshape((-1,) + (1,) * d)
                for i, ((_, val, dval), bit) in enumerate(zip(axes, bits)):
                    w = w * _along(dval if bit else val, i, d)
                total[k] += np.bincount(flat, weights=w.ravel(), minlength=total.shape[1])
        if self.data.device.type == "cpu":  # numpy view: no torch thread pool for a small in-place add
            self.data.numpy()[...] += total.reshape(self.data.shape)
        else:
            self.data += torch.as_tensor(total.reshape(self.data.shape), device=self.data.device)

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, s):
        """Interpolated field at points ``s`` (n, d) inside the grid; differentiable in ``s``.

        The gradient is computed analytically alongside the value (one small autograd node instead
        of a graph of ~100 tiny operations: this is the MD hot path).
        """
        return ValueWithGradient.apply(s, self.value_and_gradient)

    def value_and_gradient(self, s):
        """Field (n,) and its gradient (n, d) at points ``s`` (n, d) inside the grid, without autograd.

        On the CPU the arithmetic runs in numpy on views of the same memory: for the few walkers of
        a typical run, numpy's per-operation cost is far below torch's.
        """
        s = s.detach()
        if s.device.type == "cpu":  # float64 arithmetic on the grid in place, whatever the engine's dtype
            value, grad = self._interpolate(np, s.double().numpy(), self.data.numpy(), self._np_consts)
            return torch.from_numpy(value).to(s.dtype), torch.from_numpy(grad).to(s.dtype)
        self._follow(s.device)
        return self._interpolate(torch, s, self.data.to(s.dtype), self._torch_consts(s.dtype))

    def _follow(self, device):
        """Move the grid and its constants onto ``device`` (the engine's), once."""
        if self.data.device != device:
            self.data = self.data.to(device)
            self._consts = {k: v.to(device) if isinstance(v, torch.Tensor) else [a.to(device) for a in v]
                            for k, v in self._consts.items()}

    def traced_state(self, dtype, device):
        """(grid values, constants) for :meth:`traced_value_and_gradient` with positions of ``dtype`` on
        ``device``: float64 on the CPU whatever ``dtype`` (as :meth:`value_and_gradient` computes there),
        ``dtype`` elsewhere. The CPU float64 grid is the stored tensor itself, so deposits act without a copy."""
        device = torch.device(device)
        self._follow(device)
        dtype = torch.float64 if device.type == "cpu" else dtype
        return self.data.to(dtype), self._torch_consts(dtype)

    def traced_value_and_gradient(self, s, state):
        """:meth:`value_and_gradient` at points ``s`` (n, d) inside the grid in torch operations only, with
        ``state`` from :meth:`traced_state`: what ``torch.compile`` traces into the engine's fused steps."""
        data, consts = state
        value, grad = self._interpolate(torch, s.to(data.dtype), data, consts)
        return value.to(s.dtype), grad.to(s.dtype)

    def point_value_and_gradient(self, s):
        """Field (float) and gradient (list of d floats) at one point ``s`` (d floats) inside the grid.

        The same interpolant as :meth:`value_and_gradient` in plain Python arithmetic: for the one
        configuration per step of a molecular engine it costs a few microseconds, where array code
        pays ~1 us per operation for ~60 operations.
        """
        data = self._numpy_data()
        if len(s) == 1:
            value, derivative = self.point_1d(float(s[0]), data)
            return value, [derivative]
        corners, basis, dbasis = [], [], []
        for i, x in enumerate(s):
            lo, h, last, n = self._axis_floats[i]
            u = (float(x) - lo) / h
            if self._periodic[i]:
                u %= n
            i0 = min(max(math.floor(u), 0), last)
            t = u - i0
            t2, t3 = t * t, t * t * t
            corners.append((i0, (i0 + 1) % n if self._periodic[i] else i0 + 1))
            # [kind][corner]: kind 0 weighs the node value, kind 1 the node derivative.
            basis.append(((2 * t3 - 3 * t2 + 1, 3 * t2 - 2 * t3), ((t3 - 2 * t2 + t) * h, (t3 - t2) * h)))
            dbasis.append((((6 * t2 - 6 * t) / h, (6 * t - 6 * t2) / h), (3 * t2 - 4 * t + 1, 3 * t2 - 2 * t)))
        d = len(corners)
        value, grad = 0.0, [0.0] * d
        for k, bits in enumerate(self._kinds):
            for corner in self._corners:
                v = float(data[(k, *[corners[i][corner[i]] for i in range(d)])])
                if v == 0.0:
                    continue
                w = [basis[i][bits[i]][corner[i]] for i in range(d)]
                value += v * math.prod(w)
                for i in range(d):
                    grad[i] += v * dbasis[i][bits[i]][corner[i]] * math.prod(w[:i] + w[i + 1:])
        return value, grad

    def _numpy_data(self):
        """The grid's values as numpy: a cached view of the (in-place updated) CPU tensor, rebuilt only
        if the tensor is replaced; a copy from a GPU."""
        if self._view_of is self.data:
            return self._view
        if self.data.device.type != "cpu":
            return self.data.cpu().numpy()
        self._view, self._view_of = self.data.numpy(), self.data
        return self._view

    def point_1d(self, x, data=None):
        """Field and derivative (floats) at one point ``x`` (float) of a 1-D grid: the hot path, unrolled."""
        if data is None:
            data = self._numpy_data()
        lo, h, last, n = self._axis_floats[0]
        u = (x - lo) / h
        if self._periodic[0]:
            u %= n
            a = min(max(math.floor(u), 0), last)
            b = (a + 1) % n
        else:
            a = min(max(math.floor(u), 0), last)
            b = a + 1
        t = u - a
        t2 = t * t
        t3 = t2 * t
        f0, f1, g0, g1 = data.item(0, a), data.item(0, b), data.item(1, a), data.item(1, b)
        return ((f0 * (2 * t3 - 3 * t2 + 1) + f1 * (3 * t2 - 2 * t3) + g0 * ((t3 - 2 * t2 + t) * h)
                 + g1 * ((t3 - t2) * h)),
                f0 * ((6 * t2 - 6 * t) / h) + f1 * ((6 * t - 6 * t2) / h) + g0 * (3 * t2 - 4 * t + 1)
                + g1 * (3 * t2 - 2 * t))

    def _torch_consts(self, dtype):
        return {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                for k, v in self._consts.items()}

    def _interpolate(self, xp, s, data, c):
        """Tensor-product cubic Hermite interpolation, written once for numpy and torch (``xp``)."""
        u = (s - c["lo"]) / c["h"]
        u = xp.where(c["periodic"], u % c["n"], u)
        i0 = xp.minimum(xp.maximum(xp.floor(u), 0 * u), c["last"] + 0 * u)
        t = u - i0
        t2, t3 = t * t, t * t * t
        h = c["h"]
        # Rows: Hermite basis h00, h01 (values at corners 0, 1) and h * h10, h * h11 (slopes); (4, n, d).
        b = xp.stack([2 * t3 - 3 * t2 + 1, 3 * t2 - 2 * t3, (t3 - 2 * t2 + t) * h, (t3 - t2) * h])
        db = xp.stack([(6 * t2 - 6 * t) / h, (6 * t - 6 * t2) / h, 3 * t2 - 4 * t + 1, 3 * t2 - 2 * t])
        ints = _as_int(i0)
        idx, basis, dbasis = [], [], []
        for i in range(self.grid.ndim):
            j = ints[:, i][None, :] + c["corner_bits"][i][:, None]  # (corners, n)
            idx.append(j % self._shape[i] if self._periodic[i] else j)
            basis.append(b[c["rows"][i], :, i])  # (kinds, corners, n)
            dbasis.append(db[c["rows"][i], :, i])
        vals = data[(slice(None),) + tuple(idx)]  # (kinds, corners, n)
        value = (vals * _prod(basis)).sum((0, 1))
        grad = xp.stack([(vals * _prod(basis[:i] + [dbasis[i]] + basis[i + 1:])).sum((0, 1))
                         for i in range(self.grid.ndim)], -1)
        return value, grad

    def values(self):
        """Field values at the grid points (numpy, grid shape)."""
        return self.data[0].cpu().numpy().copy()


def _along(a, i, d):
    """View (n, w) per-hill window data of axis i as (n, 1, .., w, .., 1) for broadcasting over d axes."""
    return a.reshape((a.shape[0],) + (1,) * i + (a.shape[1],) + (1,) * (d - 1 - i))


def _as_int(a):
    return a.long() if isinstance(a, torch.Tensor) else a.astype(np.int64)


def _prod(factors):
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out
