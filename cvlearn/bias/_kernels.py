"""Sets of truncated Gaussian kernels, compressed as they grow: the probability estimate of OPES.

One formula (:func:`kernel_sum`) serves numpy and torch, so the batched engines' torch path and
the molecular engines' numpy path cannot drift apart.
"""

import numpy as np
import torch

__all__ = ["Domain", "KernelSet", "kernel_sum"]


class Domain:
    """Which CVs are periodic, and their periods: minimal-image differences and wrapping.

    Parameters
    ----------
    periodic : list of (lo, hi) or None
        One entry per CV: the period's ends for a periodic CV (e.g. (-pi, pi)), None otherwise.
    """

    def __init__(self, periodic):
        self.bounds = [None if p is None else (float(p[0]), float(p[1])) for p in periodic]
        self.periodic = np.array([b is not None for b in self.bounds])
        self.lo = np.array([b[0] if b else 0.0 for b in self.bounds])
        self.period = np.array([b[1] - b[0] if b else 1.0 for b in self.bounds])
        # 1 / period, 0 on open axes: there round() and floor() give 0 and nothing is shifted.
        self.inv_period = np.where(self.periodic, 1.0 / self.period, 0.0)
        self.any_periodic = bool(self.periodic.any())
        self._torch = {}

    def _constants(self, like):
        if isinstance(like, np.ndarray):
            return self.period, self.inv_period, self.lo
        key = (like.dtype, like.device)
        if key not in self._torch:
            self._torch[key] = tuple(torch.as_tensor(a, dtype=like.dtype, device=like.device)
                                     for a in (self.period, self.inv_period, self.lo))
        return self._torch[key]

    def difference(self, d):
        """Displacements ``d`` (..., ndim) mapped to their minimal image on periodic axes (numpy or torch)."""
        if not self.any_periodic:
            return d
        period, inv_period, _ = self._constants(d)
        lib = np if isinstance(d, np.ndarray) else torch
        return d - period * lib.round(d * inv_period)

    def wrap(self, s):
        """Points ``s`` (..., ndim) with periodic coordinates brought into [lo, hi) (numpy or torch)."""
        if not self.any_periodic:
            return s
        period, inv_period, lo = self._constants(s)
        lib = np if isinstance(s, np.ndarray) else torch
        return s - period * lib.floor((s - lo) * inv_period)


def kernel_sum(s, centers, sigmas, heights, domain, cutoff2, val_at_cutoff, gradient=False):
    """Sum of the kernels at points ``s`` (n, d), and with ``gradient`` its gradient (n, d): numpy or torch.

    A kernel is a diagonal Gaussian truncated at ``sqrt(cutoff2)`` sigmas and shifted down by its
    value there, so that it goes to zero continuously (PLUMED's OPES kernels):
    ``h (exp(-|u|^2 / 2) - val_at_cutoff)`` for ``|u|^2 < cutoff2``, 0 beyond, with
    ``u = (s - c) / sigma`` (minimal image on periodic axes). Its gradient is
    ``-h exp(-|u|^2 / 2) u / sigma`` inside. For torch the sum is differentiable by autograd.

    Distances are computed one CV at a time on contiguous (n, K) planes; the exponential and the
    rest only for the (point, kernel) pairs within the cutoff, usually a small fraction.
    """
    lib = np if isinstance(s, np.ndarray) else torch
    u, norm2 = [], 0.0
    for i in range(s.shape[1]):
        diff = s[:, i, None] - centers[:, i]
        if domain.periodic[i]:
            diff = diff - float(domain.period[i]) * lib.round(diff * float(domain.inv_period[i]))
        u.append(diff / sigmas[:, i])
        norm2 = norm2 + u[-1] * u[-1]
    near = lib.nonzero(norm2 < cutoff2) if lib is np else torch.nonzero(norm2 < cutoff2, as_tuple=True)
    point, k = near
    h = heights[k]
    gauss = h * lib.exp(-0.5 * norm2[near])
    total = _sum_by(point, gauss - h * val_at_cutoff, len(s))
    if not gradient:
        return total
    grad = [_sum_by(point, -gauss * ui[near] / sigmas[k, i], len(s)) for i, ui in enumerate(u)]
    return total, lib.stack(grad, 1)


def _sum_by(index, values, n):
    """out[j] = sum of ``values`` where ``index`` == j, for j < n (numpy or torch, autograd-friendly)."""
    if isinstance(values, np.ndarray):
        return np.bincount(index, weights=values, minlength=n)
    return torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, index, values)


class KernelSet:
    """Kernels (center, sigma, height) that are merged into their nearest neighbour when added close to it.

    Merging follows PLUMED's OPES_METAD (Invernizzi & Parrinello, JPCL 11, 2731 (2020)): a new kernel
    closer than ``threshold`` (in units of the existing kernel's sigma, per axis) to an existing one
    is merged into the nearest such kernel, keeping the total height and the first and second
    moments; with ``recursive`` the merged kernel is in turn merged while it has such a neighbour
    (the survivor keeps the lower index). Kernels are stored in insertion order.

    Parameters
    ----------
    domain : Domain
    cutoff : float
        Truncation radius, in sigmas.
    threshold : float
        Compression threshold, in sigmas (0: never merge).
    recursive : bool
    """

    def __init__(self, domain, cutoff, threshold, recursive=True):
        d = len(domain.periodic)
        self.domain = domain
        self.cutoff2 = float(cutoff) ** 2
        self.val_at_cutoff = float(np.exp(-0.5 * self.cutoff2))
        self.threshold2 = float(threshold) ** 2
        self.recursive = bool(recursive)
        self.centers, self.sigmas = np.zeros((0, d)), np.zeros((0, d))
        self.heights = np.zeros(0)
        self.ids = np.zeros(0, dtype=np.int64)  # a new id whenever a kernel changes: tells what an update changed
        self._next_id = 0
        self._torch = self._point_cache = None  # copies for evaluation, dropped when kernels change

    def __len__(self):
        return len(self.heights)

    def set(self, centers, sigmas, heights):
        """Replace all kernels (e.g. from a state file), without merging."""
        self.centers = np.array(centers, dtype=np.float64).reshape(len(heights), -1)
        self.sigmas = np.array(sigmas, dtype=np.float64).reshape(self.centers.shape)
        self.heights = np.array(heights, dtype=np.float64).ravel()
        self.ids = np.arange(self._next_id, self._next_id + len(self.heights))
        self._next_id += len(self.heights)
        self._torch = self._point_cache = None

    def snapshot(self):
        """(ids, centers, sigmas, heights): copies, to compare with after an update."""
        return self.ids.copy(), self.centers.copy(), self.sigmas.copy(), self.heights.copy()

    def _arrays(self, like):
        """(centers, sigmas, heights): numpy, or torch tensors of ``like``'s dtype and device (cached)."""
        if isinstance(like, np.ndarray):
            return self.centers, self.sigmas, self.heights
        if self._torch is None or self._torch[0].dtype != like.dtype or self._torch[0].device != like.device:
            self._torch = tuple(torch.as_tensor(a, dtype=like.dtype, device=like.device)
                                for a in (self.centers, self.sigmas, self.heights))
        return self._torch

    def sum(self, s):
        """Sum of the kernels at points ``s`` (numpy (n, d) or a torch tensor, differentiable)."""
        return kernel_sum(s, *self._arrays(s), self.domain, self.cutoff2, self.val_at_cutoff)

    def sum_and_gradient(self, s):
        """Sum of the kernels at points ``s`` (n, d) and its gradient (n, d), numpy or torch."""
        if isinstance(s, np.ndarray) and len(s) == 1:
            return self._point(s[0])
        return kernel_sum(s, *self._arrays(s), self.domain, self.cutoff2, self.val_at_cutoff, gradient=True)

    def _point(self, s):
        """:meth:`sum_and_gradient` at one point ``s`` (d,): the formula of :func:`kernel_sum` in half the
        numpy calls (each costs microseconds, and a molecular engine asks at every step)."""
        if self._point_cache is None:
            self._point_cache = (self.heights, 1.0 / self.sigmas, self.centers)
        heights, inv_sigmas, centers = self._point_cache
        diff = s - centers
        if self.domain.any_periodic:
            diff -= self.domain.period * np.rint(diff * self.domain.inv_period)  # rint: round() without its wrapper
        u = diff * inv_sigmas
        norm2 = (u * u).sum(1)
        h_in = heights * (norm2 < self.cutoff2)
        gauss = h_in * np.exp(-0.5 * norm2.clip(max=self.cutoff2))  # clip: no slow subnormals; dropped anyway
        return np.array([gauss.sum() - self.val_at_cutoff * h_in.sum()]), -(gauss @ (u * inv_sigmas))[None]

    # -- adding and merging -----------------------------------------------------------------------
    def add(self, height, center, sigma):
        """Add one kernel, merging it (and, if recursive, the result) into close neighbours."""
        center = self.domain.wrap(np.asarray(center, dtype=np.float64))
        sigma = np.asarray(sigma, dtype=np.float64)
        taker = self._mergeable(center, None)
        if taker is None:
            self.centers = np.vstack([self.centers, center])
            self.sigmas = np.vstack([self.sigmas, sigma])
            self.heights = np.append(self.heights, height)
            self.ids = np.append(self.ids, self._next_id)
            self._next_id += 1
        else:
            self._replace(taker, *self._merged(self._row(taker), (height, center, sigma)))
            giver = taker
            taker = self._mergeable(self.centers[giver], giver) if self.recursive else None
            while taker is not None:
                keep, drop = min(taker, giver), max(taker, giver)
                self._replace(keep, *self._merged(self._row(keep), self._row(drop)))
                self._delete(drop)
                giver = keep
                taker = self._mergeable(self.centers[giver], giver)
        self._torch = self._point_cache = None

    def _row(self, k):
        return self.heights[k], self.centers[k], self.sigmas[k]

    def _mergeable(self, center, exclude):
        """Index of the nearest kernel closer than the threshold (first one on ties), or None."""
        if self.threshold2 == 0 or len(self) == 0:
            return None
        u = self.domain.difference(self.centers - center) / self.sigmas
        norm2 = (u * u).sum(1)
        if exclude is not None:
            norm2[exclude] = np.inf
        k = int(np.argmin(norm2))
        return k if norm2[k] < self.threshold2 else None

    def _merged(self, first, second):
        """One kernel with the total height and the first two moments of ``first`` and ``second``."""
        (h1, c1, s1), (h2, c2, s2) = first, second
        c1 = c2 + self.domain.difference(c1 - c2)  # the image of c1 nearest to c2
        h = h1 + h2
        c = (h1 * c1 + h2 * c2) / h
        var = (h1 * (s1 * s1 + c1 * c1) + h2 * (s2 * s2 + c2 * c2)) / h - c * c
        return h, self.domain.wrap(c), np.sqrt(var)

    def _replace(self, k, height, center, sigma):
        self.heights[k], self.centers[k], self.sigmas[k] = height, center, sigma
        self.ids[k] = self._next_id
        self._next_id += 1

    def _delete(self, k):
        self.centers = np.delete(self.centers, k, 0)
        self.sigmas = np.delete(self.sigmas, k, 0)
        self.heights = np.delete(self.heights, k)
        self.ids = np.delete(self.ids, k)

    # -- overlaps, for OPES's normalization Z -------------------------------------------------------
    def _cross(self, points, kernels):
        """Sum over ``points`` (m, d) and the kernels (centers, sigmas, heights) of their values."""
        if not len(points) or not len(kernels[2]):
            return 0.0
        return float(kernel_sum(points, *kernels, self.domain, self.cutoff2, self.val_at_cutoff).sum())

    def overlap(self, before=None, before_total=None):
        """Sum over all pairs (k, l) of kernel l at the center of kernel k.

        With ``before`` (a :meth:`snapshot`) and its overlap, only the pairs that involve kernels
        added or removed since are evaluated (as PLUMED does), unless recomputing is as cheap.
        """
        now = (self.centers, self.sigmas, self.heights)
        if before is None:
            return self._cross(self.centers, now)
        ids, *old = before
        removed = ~np.isin(ids, self.ids)
        added = ~np.isin(self.ids, ids)
        n, n_changed = len(self), int(removed.sum() + added.sum())
        if n * n < 3 * n * n_changed + 2 * n_changed * n_changed + 100:  # PLUMED's rule of thumb
            return self._cross(self.centers, now)
        kept = ~added
        r = tuple(a[removed] for a in old)
        a = tuple(x[added] for x in now)
        k = tuple(x[kept] for x in now)
        lost = self._cross(k[0], r) + self._cross(r[0], k) + self._cross(r[0], r)
        gained = self._cross(k[0], a) + self._cross(a[0], k) + self._cross(a[0], a)
        return before_total - lost + gained
