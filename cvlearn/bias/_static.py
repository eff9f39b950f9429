"""Static (frozen) biases on a grid: rerun or reweight with a bias from a run, a HILLS file or an array."""

import numpy as np
import torch

from ._gridbias import GridBias

__all__ = ["StaticBias"]


class StaticBias(GridBias):
    """A bias V(s) that does not change during the run (same grid machinery as metadynamics).

    Build it with :meth:`from_metad`, :meth:`from_grid` or :func:`read_hills`. Values in kJ/mol, CVs
    in their own units; ``evaluate`` interpolates the grid (cubic Hermite, C1).

    Examples
    --------
    A harmonic restraint 50 (s - 0.5)^2 kJ/mol on the x coordinate (nm) of one particle, from grid values:

    >>> import numpy as np, cvlearn as cl
    >>> grid = cl.Grid(-1.0, 1.0, 40)
    >>> s = grid.axes[0]
    >>> bias = cl.bias.StaticBias.from_grid(cl.features.Positions(1, 1), grid, 50.0 * (s - 0.5) ** 2)
    >>> np.round(bias.evaluate([[0.5], [0.0], [0.123]]), 6).tolist()         # exact for a quadratic
    [0.0, 12.5, 7.10645]
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10,
    ...                              pace=10, grid=grid, temperature=300.0)
    >>> metad.deposit(np.array([[0.0]]), step=10)
    >>> frozen = cl.bias.StaticBias.from_metad(metad)                         # a copy that no longer grows
    >>> round(float(frozen.evaluate([[0.0]])[0]), 6)
    1.0
    """

    @classmethod
    def from_metad(cls, metad, cv=None, **kwargs):
        """Freeze the current bias of a metadynamics run (exact copy of its grid data)."""
        kwargs.setdefault("outside", metad.outside)
        kwargs.setdefault("wall_kappa", metad.wall_kappa)
        out = cls(cv if cv is not None else metad.cv, metad.grid, label=kwargs.pop("label", "static"), **kwargs)
        out.field.data.copy_(metad.field.data)
        out.names = list(metad.names)
        out.bias_factor, out.temperature = metad.bias_factor, metad.temperature
        return out

    @classmethod
    def from_grid(cls, cv, grid, values, **kwargs):
        """A bias from values (kJ/mol, shape ``grid.shape``) on ``grid``.

        Derivatives at the grid points come from second-order finite differences (periodic-aware),
        so the interpolant is C1 and exact for quadratics.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape != grid.shape:
            raise ValueError(f"values have shape {values.shape}; the grid has {grid.shape}.")
        if not np.isfinite(values).all():
            raise ValueError("Bias values must be finite everywhere on the grid (fill unsampled bins first).")
        out = cls(cv, grid, label=kwargs.pop("label", "static"), **kwargs)
        for k, bits in enumerate(out.field._kinds):
            d = values
            for i, b in enumerate(bits):
                if b:
                    d = _derivative(d, i, grid)
            out.field.data[k] = torch.as_tensor(d)
        return out


def _derivative(values, axis, grid):
    h = grid.spacing[axis]
    if grid.periodic[axis]:
        return (np.roll(values, -1, axis) - np.roll(values, 1, axis)) / (2 * h)
    return np.gradient(values, h, axis=axis, edge_order=2)
