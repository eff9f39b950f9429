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
        # Constants of the numpy interpolation (the CPU's eager path).
        self._np_consts = {
            "lo": grid.lo, "h": grid.spacing, "periodic": grid.periodic, "n": np.array(grid.shape, dtype=float),
            "last": np.array([n - 1 if p else n - 2 for n, p in zip(grid.shape, grid.periodic)], dtype=float),
            "corner_bits": corner_bits,
            "rows": [2 * kb[:, None] + cb[None, :] for kb, cb in zip(kind_bits, corner_bits)],  # (kinds, corners)
        }

    def __getstate__(self):
        # The numpy view of the grid would come back from pickle or deepcopy as a separate copy while
        # _view_of still matched data: drop both, the view is rebuilt on first use.
        state = self.__dict__.copy()
        state.pop("_view", None)
        state.pop("_view_of", None)
        return state

    # -- deposition -------------------------------------------------------------------------------
    def _window(self, sigma_max, i):
        """Grid-point offsets (a tensor) around a hill's nearest point on axis i: every point within CUTOFF
        sigmas (``sigma_max``, the widest hill), one image per point on a periodic axis."""
        # Python numbers only (no numpy): this runs inside the compiled engine steps too.
        _, h, _, n = self._axis_floats[i]
        half = int(math.ceil(CUTOFF * sigma_max / h)) + 1
        if self._periodic[i] and 2 * half + 1 > n:
            return torch.arange(-(n // 2), n - n // 2)
        return torch.arange(-half, half + 1)

    @property
    def points(self):
        """Grid points (the product of the grid's shape)."""
        return math.prod(self._shape)

    def window_points(self, sigmas):
        """Grid points within CUTOFF of one hill of widths ``sigmas`` (d floats), as deposits visit them."""
        return math.prod(len(self._window(float(sig), i)) for i, sig in enumerate(sigmas))

    def _axis_factors(self, i, centers, sigmas, offsets):
        """Grid indices (n, w) near each center (n,) along axis i, with the Gaussian (sigmas: (n,) or a
        float) and its derivative there; points outside the window or the grid get zero weight."""
        lo, h, _, n = self._axis_floats[i]
        sigmas = sigmas[:, None] if isinstance(sigmas, torch.Tensor) else sigmas
        idx = torch.round((centers - lo) / h).long()[:, None] + offsets.to(centers.device)[None, :]
        dx = lo + h * idx.to(centers.dtype) - centers[:, None]
        if self._periodic[i]:
            period = n * h
            dx = torch.remainder(dx + 0.5 * period, period) - 0.5 * period
            idx = torch.remainder(idx, n)
            ok = torch.ones_like(dx, dtype=torch.bool)
        else:
            ok = (idx >= 0) & (idx < n)
            idx = idx.clamp(0, n - 1)
        u = dx / sigmas
        ok = ok & (u.abs() <= CUTOFF)
        val = torch.where(ok, torch.exp(-0.5 * u * u), torch.zeros_like(u))
        return idx, val, -dx / sigmas**2 * val

    def traced_add_gaussians(self, data, centers, sigmas, heights, offsets=None):
        """``data`` plus hills of ``heights`` (n,) at ``centers`` (n, d) with widths ``sigmas`` ((n, d)
        tensor, or d floats): values and derivatives at every grid point within CUTOFF sigmas, summed by
        one ``index_add`` (torch operations only; the compiled engine steps deposit with it).
        ``offsets`` are the windows per axis (:meth:`_window` of the widest hill), made here if None."""
        n, d = centers.shape
        per_axis = []
        for i in range(d):
            sig = sigmas[:, i] if isinstance(sigmas, torch.Tensor) else float(sigmas[i])
            off = self._window(float(sig.max()) if isinstance(sig, torch.Tensor) else sig, i) if offsets is None \
                else offsets[i]
            per_axis.append(self._axis_factors(i, centers[:, i], sig, off))
        shape = [n] + [len(idx[0]) for idx, _, _ in per_axis]
        flat = 0
        for i, (idx, _, _) in enumerate(per_axis):
            flat = flat + _along(idx, i, d) * math.prod(self._shape[i + 1:])
        flat = flat.expand(shape).reshape(-1)
        weights = []
        for bits in self._kinds:
            w = heights.reshape((-1,) + (1,) * d)
            for i, ((_, val, dval), bit) in enumerate(zip(per_axis, bits)):
                w = w * _along(dval if bit else val, i, d)
            weights.append(w.expand(shape).reshape(-1))
        out = data.reshape(len(self._kinds), -1).index_add(1, flat, torch.stack(weights).to(data.dtype))
        return out.reshape(data.shape)

    def dense_add_gaussians(self, data, centers, sigmas, heights):
        """:meth:`traced_add_gaussians` for hills of widths ``sigmas`` (d floats) computed at every grid point:
        per axis an (n, points) matrix of the Gaussian factors (zero beyond CUTOFF sigmas, as outside a
        window), then one contraction over the hills per value and derivative (matrix products). For many
        hills on a small grid this avoids the scatter of the windows, whose accumulation dominated the
        compiled engine steps (10^4 hills: ~50 ms per deposit instead of a few)."""
        d = len(self._shape)
        factors = []
        for i in range(d):
            lo, h, _, n = self._axis_floats[i]
            dx = (lo + h * torch.arange(n, dtype=centers.dtype, device=centers.device))[None, :] - centers[:, i, None]
            if self._periodic[i]:
                period = n * h
                dx = torch.remainder(dx + 0.5 * period, period) - 0.5 * period
            u = dx / sigmas[i]
            val = torch.where(u.abs() <= CUTOFF, torch.exp(-0.5 * u * u), torch.zeros_like(u))
            factors.append((val, -dx / sigmas[i] ** 2 * val))
        h = heights.to(data.dtype)
        if d == 1:  # a sum the compiler fuses with the exponentials (no (n, points) matrix in memory)
            added = torch.stack([(h[:, None] * factors[0][bits[0]].to(data.dtype)).sum(0) for bits in self._kinds])
        else:
            letters = "abc"[:d]
            formula = "n," + ",".join(f"n{a}" for a in letters) + "->" + letters
            added = torch.stack([torch.einsum(formula, h, *[factors[i][bit].to(data.dtype)
                                                            for i, bit in enumerate(bits)]) for bits in self._kinds])
        return data + added

    def add_gaussians(self, centers, sigmas, heights, chunk_points=4_000_000):
        """Add hills h exp(-sum_i (s_i - c_i)^2 / (2 sigma_i^2)) with centers (n, d), sigmas (n, d) or (d,).

        Values and derivatives of all hills are accumulated at once (:meth:`traced_add_gaussians`), in
        chunks of at most ``chunk_points`` window points.
        """
        centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))
        sigmas = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), centers.shape)
        heights = np.broadcast_to(np.asarray(heights, dtype=np.float64), centers.shape[:1])
        n, d = centers.shape
        if n == 0:
            return
        offsets = [self._window(float(sigmas[:, i].max()), i) for i in range(d)]
        step = max(1, chunk_points // int(np.prod([len(o) for o in offsets])))
        data = self.data.double()
        for a in range(0, n, step):
            b = min(n, a + step)
            data = self.traced_add_gaussians(data, torch.tensor(centers[a:b], device=data.device),
                                             torch.tensor(sigmas[a:b], device=data.device),
                                             torch.tensor(heights[a:b], device=data.device), offsets)
        self.data.copy_(data)  # in place: views of the grid (the numpy one of the one-point path) stay valid

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
        a typical run, numpy's per-operation cost is far below torch's. Elsewhere (a GPU) it is the
        torch interpolation of :meth:`traced_value_and_gradient`, in float64 as on the CPU.
        """
        s = s.detach()
        if s.device.type == "cpu":  # float64 arithmetic on the grid in place, whatever the engine's dtype
            value, grad = self._interpolate(s.double().numpy(), self.data.numpy(), self._np_consts)
            return torch.from_numpy(value).to(s.dtype), torch.from_numpy(grad).to(s.dtype)
        return self.traced_value_and_gradient(s, self.traced_state(s.device))

    def _follow(self, device):
        """Move the grid onto ``device`` (the engine's), once."""
        if self.data.device != device:
            self.data = self.data.to(device)

    def traced_state(self, device):
        """The grid values and derivatives (float64) on ``device``, for :meth:`traced_value_and_gradient`:
        the stored tensor itself, so that deposits between blocks act without a copy."""
        self._follow(torch.device(device))
        return self.data

    def traced_value_and_gradient(self, s, data):
        """:meth:`value_and_gradient` at points ``s`` (n, d) inside the grid, from grid values ``data``, in
        torch operations with the grid's constants as Python numbers: what ``torch.compile`` traces into
        the engine's fused steps (tensor constants would each be an input of every compiled step).
        Computed in float64 whatever ``s``'s dtype, as :meth:`value_and_gradient` does on the CPU."""
        d = len(self._shape)
        flat = data.reshape(len(self._kinds), -1)
        x = s.to(data.dtype)
        index, basis, dbasis = [], [], []  # per axis: (2 corners) indices, (2 kinds, 2 corners) weights
        for i in range(d):
            lo, h, last, n = self._axis_floats[i]
            u = (x[:, i] - lo) / h
            if self._periodic[i]:
                u = torch.remainder(u, n)
            i0 = u.floor().clamp(0, last)
            t = u - i0
            t2, t3 = t * t, t * t * t
            j = i0.long()
            stride = math.prod(self._shape[i + 1:])
            index.append((j * stride, (torch.remainder(j + 1, n) if self._periodic[i] else j + 1) * stride))
            basis.append(((2 * t3 - 3 * t2 + 1, 3 * t2 - 2 * t3), ((t3 - 2 * t2 + t) * h, (t3 - t2) * h)))
            dbasis.append((((6 * t2 - 6 * t) / h, (6 * t - 6 * t2) / h), (3 * t2 - 4 * t + 1, 3 * t2 - 2 * t)))
        value, grad = 0, [0] * d
        for corner in self._corners:
            vals = flat[:, sum(index[i][c] for i, c in enumerate(corner))]  # (kinds, n)
            for k, bits in enumerate(self._kinds):
                w = [basis[i][bits[i]][corner[i]] for i in range(d)]
                value = value + vals[k] * _prod(w)
                for i in range(d):
                    grad[i] = grad[i] + vals[k] * _prod(w[:i] + [dbasis[i][bits[i]][corner[i]]] + w[i + 1:])
        return value.to(s.dtype), torch.stack(grad, -1).to(s.dtype)

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

    def _interpolate(self, s, data, c):
        """Tensor-product cubic Hermite interpolation in numpy, vectorized over points and axes."""
        u = (s - c["lo"]) / c["h"]
        u = np.where(c["periodic"], u % c["n"], u)
        i0 = np.minimum(np.maximum(np.floor(u), 0 * u), c["last"] + 0 * u)
        t = u - i0
        t2, t3 = t * t, t * t * t
        h = c["h"]
        # Rows: Hermite basis h00, h01 (values at corners 0, 1) and h * h10, h * h11 (slopes); (4, n, d).
        b = np.stack([2 * t3 - 3 * t2 + 1, 3 * t2 - 2 * t3, (t3 - 2 * t2 + t) * h, (t3 - t2) * h])
        db = np.stack([(6 * t2 - 6 * t) / h, (6 * t - 6 * t2) / h, 3 * t2 - 4 * t + 1, 3 * t2 - 2 * t])
        ints = i0.astype(np.int64)
        idx, basis, dbasis = [], [], []
        for i in range(self.grid.ndim):
            j = ints[:, i][None, :] + c["corner_bits"][i][:, None]  # (corners, n)
            idx.append(j % self._shape[i] if self._periodic[i] else j)
            basis.append(b[c["rows"][i], :, i])  # (kinds, corners, n)
            dbasis.append(db[c["rows"][i], :, i])
        vals = data[(slice(None),) + tuple(idx)]  # (kinds, corners, n)
        value = (vals * _prod(basis)).sum((0, 1))
        grad = np.stack([(vals * _prod(basis[:i] + [dbasis[i]] + basis[i + 1:])).sum((0, 1))
                         for i in range(self.grid.ndim)], -1)
        return value, grad

    def values(self):
        """Field values at the grid points (numpy, grid shape)."""
        return self.data[0].cpu().numpy().copy()


def _along(a, i, d):
    """View (n, w) per-hill window data of axis i as (n, 1, .., w, .., 1) for broadcasting over d axes."""
    return a.reshape((a.shape[0],) + (1,) * i + (a.shape[1],) + (1,) * (d - 1 - i))


def _prod(factors):
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out
