"""Regular grids over CV space (PLUMED's GRID_MIN / GRID_MAX / GRID_BIN convention)."""

import numpy as np

__all__ = ["Grid"]


class Grid:
    """A regular grid over 1 to 3 CVs.

    Parameters
    ----------
    lo, hi : float or sequence of float
        Grid range per CV, in the CV's unit (radians for angles). For a periodic CV, lo and hi are
        the period's ends (e.g. -pi, pi).
    bins : int or sequence of int
        Number of intervals per CV: a non-periodic CV has bins + 1 points (both ends included), a
        periodic one has bins points (hi is the same point as lo), as in PLUMED.
    periodic : bool or sequence of bool

    Examples
    --------
    >>> import numpy as np
    >>> from cvlearn import Grid
    >>> g = Grid(-np.pi, np.pi, 4, periodic=True)
    >>> g.axes[0].round(3).tolist(), g.spacing.round(3).tolist()
    ([-3.142, -1.571, 0.0, 1.571], [1.571])
    >>> Grid([0, 0], [1, 2], [10, 20]).shape
    (11, 21)
    """

    def __init__(self, lo, hi, bins, periodic=False):
        self.lo = np.atleast_1d(np.asarray(lo, dtype=np.float64))
        self.hi = np.atleast_1d(np.asarray(hi, dtype=np.float64))
        d = len(self.lo)
        self.bins = np.broadcast_to(np.asarray(bins), (d,)).astype(int)
        self.periodic = np.broadcast_to(np.asarray(periodic, dtype=bool), (d,)).copy()
        if not 1 <= d <= 3:
            raise ValueError(f"A Grid spans 1 to 3 CVs; got {d}.")
        if self.hi.shape != (d,) or not np.all(np.isfinite(self.lo)) or not np.all(self.hi > self.lo):
            raise ValueError(f"Grid needs finite lo < hi for each CV; got lo={lo}, hi={hi}.")
        if np.any(self.bins < 2):
            raise ValueError(f"Grid needs at least 2 bins per CV; got {bins}.")
        self.spacing = (self.hi - self.lo) / self.bins

    @property
    def ndim(self):
        return len(self.lo)

    @property
    def shape(self):
        return tuple(int(b) if p else int(b) + 1 for b, p in zip(self.bins, self.periodic))

    @property
    def axes(self):
        """Grid point coordinates along each CV."""
        return [lo + h * np.arange(n) for lo, h, n in zip(self.lo, self.spacing, self.shape)]

    @property
    def points(self):
        """All grid points, (n_points, ndim), C order."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    @property
    def period(self):
        return self.hi - self.lo

    def wrap(self, s):
        """Map periodic coordinates of ``s`` (..., ndim) into [lo, hi); others unchanged (numpy or torch)."""
        if not self.periodic.any():
            return s
        out = s.clone() if hasattr(s, "clone") else np.array(s, dtype=np.float64, copy=True)
        for i in np.nonzero(self.periodic)[0]:
            out[..., i] = (s[..., i] - self.lo[i]) % self.period[i] + self.lo[i]
        return out

    def outside(self, s):
        """Boolean mask (...,): which points of ``s`` lie outside a non-periodic range."""
        s = np.asarray(s, dtype=np.float64)
        bad = np.zeros(s.shape[:-1], dtype=bool)
        for i in np.nonzero(~self.periodic)[0]:
            bad |= (s[..., i] < self.lo[i]) | (s[..., i] > self.hi[i])
        return bad

    def to_dict(self):
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist(), "bins": self.bins.tolist(),
                "periodic": self.periodic.tolist()}

    def __repr__(self):
        return f"Grid(lo={self.lo.tolist()}, hi={self.hi.tolist()}, bins={self.bins.tolist()}, " \
               f"periodic={self.periodic.tolist()})"
