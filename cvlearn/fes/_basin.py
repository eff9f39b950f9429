"""Regions of CV space (basins) between which free energy differences are computed."""

import numpy as np

__all__ = ["Basin"]


class Basin:
    """A region of CV space: a ball (``center`` + ``radius``) or a box (``lo`` + ``hi``).

    Coordinates are in the units of the CV (nm for positions, radians for angles).

    Examples
    --------
    >>> import numpy as np
    >>> from cvlearn.fes import Basin
    >>> b = Basin(center=[0.0, 0.0], radius=0.5)
    >>> b.contains(np.array([[0.1, 0.1], [1.0, 0.0]])).tolist()
    [True, False]
    >>> Basin(lo=[-np.inf], hi=[0.0]).contains(np.array([[-1.0], [1.0]])).tolist()
    [True, False]
    """

    def __init__(self, center=None, radius=None, lo=None, hi=None, name=None):
        ball = center is not None and radius is not None
        box = lo is not None and hi is not None
        if ball == box:
            raise ValueError("A Basin needs either center= and radius= (a ball) or lo= and hi= (a box).")
        self.name = name
        if ball:
            self.center = np.atleast_1d(np.asarray(center, dtype=np.float64))
            self.radius = float(radius)
            if not self.radius > 0:
                raise ValueError(f"Basin radius must be positive; got {radius}.")
            self.lo = self.hi = None
        else:
            self.lo = np.atleast_1d(np.asarray(lo, dtype=np.float64))
            self.hi = np.atleast_1d(np.asarray(hi, dtype=np.float64))
            if self.lo.shape != self.hi.shape or not (self.lo < self.hi).all():
                raise ValueError(f"Basin box needs lo < hi in every dimension; got lo={lo}, hi={hi}.")
            self.center = self.radius = None

    @property
    def ndim(self):
        """Number of CV dimensions the basin is defined in."""
        return len(self.center) if self.center is not None else len(self.lo)

    def contains(self, points):
        """Boolean mask: which of ``points`` (n x ndim, or n for 1-D) lie in the basin."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim == 1:
            p = p[:, None] if self.ndim == 1 else p[None, :]
        if p.shape[-1] != self.ndim:
            raise ValueError(f"Basin is {self.ndim}-D but points have {p.shape[-1]} coordinates.")
        if self.center is not None:
            return ((p - self.center) ** 2).sum(axis=-1) <= self.radius**2
        return ((p >= self.lo) & (p <= self.hi)).all(axis=-1)

    def __repr__(self):
        label = f"{self.name!r}, " if self.name else ""
        if self.center is not None:
            return f"Basin({label}center={self.center.tolist()}, radius={self.radius})"
        return f"Basin({label}lo={self.lo.tolist()}, hi={self.hi.tolist()})"
