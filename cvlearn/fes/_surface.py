"""The free energy surface result object: grid, F (kJ/mol), error, temperature; saved as .npz."""

import json
import os
from typing import NamedTuple

import numpy as np

from ..io import save_npz_atomic
from ..units import kT as _kT
from ._basin import Basin

__all__ = ["FreeEnergySurface", "DeltaF"]


class DeltaF(NamedTuple):
    """A free energy difference F(b) - F(a) in kJ/mol and its standard error (NaN if unknown).

    A named tuple: ``value, error = fes.delta_f(a, b)`` works too.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> x = np.linspace(-2.0, 2.0, 401)                                          # nm
    >>> fes = cl.fes.FreeEnergySurface([x], 25.0 * (x ** 2 - 1) ** 2 + 2.0 * x, temperature=300.0)
    >>> d = fes.delta_f(cl.fes.Basin(lo=[-9.0], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[9.0]))
    >>> isinstance(d, cl.fes.DeltaF), round(d.value, 2), d.error                 # kJ/mol; no error estimate
    (True, 3.92, nan)
    """

    value: float
    error: float


def _logsumexp(a, axis=None):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else out.item()


class FreeEnergySurface:
    """A free energy surface F(s) on a regular grid of 1 to 3 CV dimensions.

    Parameters
    ----------
    axes : list of 1-D arrays
        Bin centers along each CV (regularly spaced), in the CV's unit.
    F : ndarray
        Free energy in kJ/mol, shape ``tuple(len(a) for a in axes)``; ``inf`` where never sampled.
        Shifted so that its minimum is 0.
    temperature : float
        Temperature (K) the free energy refers to.
    error : ndarray, optional
        Standard error of F in kJ/mol, same shape.
    samples : ndarray, optional
        Independent estimates of F (e.g. one per block), shape ``(n_samples, *F.shape)``; used
        for the error of basin free energy differences.
    names : list of str, optional
        Names of the CVs (for plots and files).
    metadata : dict, optional
        JSON-serializable provenance (method, bias factor, ...).

    Examples
    --------
    A double well (kJ/mol) along x (nm) with two block estimates, saved and read back:

    >>> import numpy as np, cvlearn as cl
    >>> x = np.linspace(-2.0, 2.0, 201)
    >>> F = 25.0 * (x ** 2 - 1) ** 2
    >>> fes = cl.fes.FreeEnergySurface([x], F, temperature=300.0, samples=[F, F + 0.5 * x], names=["x"])
    >>> fes
    FreeEnergySurface(x; 201 bins; T=300.0 K)
    >>> left, right = cl.fes.Basin(lo=[-9.0], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[9.0])
    >>> np.round(fes.delta_f(left, right), 3).tolist()           # F(right) - F(left) and its error, kJ/mol
    [0.0, 0.49]
    >>> round(fes.basin_free_energy(left) - fes.basin_free_energy(right), 6)
    0.0
    >>> back = cl.fes.FreeEnergySurface.load(fes.save("fes.npz"))
    >>> back.names, bool(np.array_equal(back.F, fes.F)), back.temperature
    (['x'], True, 300.0)
    """

    def __init__(self, axes, F, temperature, error=None, samples=None, names=None, metadata=None):
        self.axes = [np.asarray(a, dtype=np.float64) for a in axes]
        shape = tuple(len(a) for a in self.axes)
        self.F = np.asarray(F, dtype=np.float64).reshape(shape)
        finite = np.isfinite(self.F)
        if finite.any():
            self.F = self.F - self.F[finite].min()
        self.temperature = float(temperature)
        self.error = None if error is None else np.asarray(error, dtype=np.float64).reshape(shape)
        self.samples = None if samples is None else np.asarray(samples, dtype=np.float64).reshape((-1,) + shape)
        self.names = list(names) if names is not None else [f"s{i}" for i in range(len(shape))]
        self.metadata = dict(metadata or {})

    @property
    def ndim(self):
        return len(self.axes)

    @property
    def kT(self):
        """Thermal energy at the surface's temperature, kJ/mol."""
        return _kT(self.temperature)

    @property
    def points(self):
        """Grid points as an (n_bins, ndim) array, in C order matching ``F.ravel()``."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    @property
    def bin_volume(self):
        return float(np.prod([a[1] - a[0] if len(a) > 1 else 1.0 for a in self.axes]))

    def _basin_f(self, basin, F):
        mask = basin.contains(self.points).reshape(self.F.shape)
        if not mask.any():
            raise ValueError(f"{basin!r} contains no grid point of this FES (grid spans "
                             f"{[(a[0], a[-1]) for a in self.axes]}).")
        beta = 1.0 / self.kT
        return -self.kT * _logsumexp(np.where(mask, -beta * F, -np.inf), axis=None)

    def basin_free_energy(self, basin):
        """Free energy of a basin, -kT ln sum_{bins in basin} exp(-F/kT), kJ/mol (same offset as F)."""
        return float(self._basin_f(basin, self.F) - self.kT * np.log(self.bin_volume))

    def delta_f(self, a, b):
        """Free energy difference F(b) - F(a) between two basins, kJ/mol, with its standard error.

        The error is the standard error over ``samples`` when present (e.g. block estimates), NaN
        otherwise.
        """
        a, b = (x if isinstance(x, Basin) else Basin(**x) for x in (a, b))
        value = float(self._basin_f(b, self.F) - self._basin_f(a, self.F))
        error = float("nan")
        if self.samples is not None and len(self.samples) > 1:
            d = np.array([self._basin_f(b, s) - self._basin_f(a, s) for s in self.samples])
            d = d[np.isfinite(d)]
            if len(d) > 1:
                error = float(d.std(ddof=1) / np.sqrt(len(d)))
        return DeltaF(value, error)

    def save(self, path):
        """Write the surface to ``path`` (.npz), atomically (a crash never leaves half a file)."""
        path = os.fspath(path)
        arrays = {f"axis{i}": a for i, a in enumerate(self.axes)}
        arrays["F"] = self.F
        arrays["temperature"] = np.array(self.temperature)
        if self.error is not None:
            arrays["error"] = self.error
        if self.samples is not None:
            arrays["samples"] = self.samples
        arrays["names"] = np.array(self.names)
        arrays["metadata"] = np.array(json.dumps(self.metadata))
        return save_npz_atomic(path, **arrays)

    @classmethod
    def load(cls, path):
        """Read a surface written by :meth:`save` (no pickle involved)."""
        with np.load(os.fspath(path), allow_pickle=False) as d:
            n = sum(1 for k in d.files if k.startswith("axis"))
            return cls(
                axes=[d[f"axis{i}"] for i in range(n)],
                F=d["F"],
                temperature=float(d["temperature"]),
                error=d["error"] if "error" in d.files else None,
                samples=d["samples"] if "samples" in d.files else None,
                names=[str(s) for s in d["names"]],
                metadata=json.loads(str(d["metadata"])),
            )

    def __repr__(self):
        shape = "x".join(str(len(a)) for a in self.axes)
        return f"FreeEnergySurface({', '.join(self.names)}; {shape} bins; T={self.temperature} K)"
