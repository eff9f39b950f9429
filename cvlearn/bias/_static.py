"""Static (frozen) biases on a grid: rerun or reweight with a bias from a run, a HILLS file or an array."""

import os

import numpy as np
import torch

from ._grid import Grid
from ._gridbias import GridBias
from ._hills import parse_number as _parse_number  # noqa: F401 (_metad, _opes_files use it from here)
from ._hills import read_hills_files
from ._walkers import walker_files

__all__ = ["StaticBias", "read_hills"]


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


def read_hills(path, cv=None, grid=None, temperature=None, bias_factor=None, names=None):
    """The bias of PLUMED (or cvlearn) HILLS files, as a :class:`StaticBias`.

    ``evaluate(points)`` gives the bias PLUMED's METAD computes on restart from the same files:
    V(s) = sum over hills of height * (gamma - 1) / gamma * K(s - c) for well-tempered runs (PLUMED
    writes heights scaled by gamma / (gamma - 1)), and ``free_energy()`` what ``plumed sum_hills``
    prints on the same grid, -gamma / (gamma - 1) V (up to a constant). The kernel K is the file's
    own: every ``#! FIELDS`` block of a restarted file is read by column name, with its
    ``kerneltype`` (PLUMED's ``stretched-gaussian``, cut where (s - c)^2 / (2 sigma^2) = 6.25, evaluated
    exactly as PLUMED does; plain ``gaussian``) and its ``multivariate`` hills (``ADAPTIVE=GEOM`` or
    ``DIFF``: ``sigma_<a>_<b>`` columns), for 1 to 3 CVs. Grid node values are the exact sums; between
    nodes the bias is interpolated (cubic Hermite).

    Parameters
    ----------
    path : str, list of str, or directory
        A HILLS file; several (their hills are summed); or a multiple-walkers directory, whose
        ``HILLS.<id>`` files are summed as PLUMED's walkers (``WALKERS_DIR``) and cvlearn's
        (``WellTemperedMetad(walkers_dir=...)``) share them.
    cv : torch.nn.Module, optional
        To apply the bias in a new run; not needed for analysis.
    grid : Grid, optional
        Default: the hills' range +- 6 sigma at sigma / 5 spacing; periodic CVs from the files'
        ``#! SET min_<cv>`` / ``max_<cv>`` lines.
    temperature : float, optional
        K, recorded in the returned free energy.
    bias_factor : float, optional
        Default: the files' ``biasf`` column (1 = untempered).
    names : list of str, optional
        CV column names (default: the first file's columns between time and the first sigma_).

    Returns
    -------
    StaticBias
        With ``bias_factor`` and ``temperature`` set; ``evaluate`` in kJ/mol.

    Examples
    --------
    One well-tempered hill (bias factor 10) as PLUMED writes it, height scaled by 10 / 9:

    >>> import cvlearn as cl
    >>> _ = open("HILLS", "w").write("#! FIELDS time phi sigma_phi height biasf\\n"
    ...                              "#! SET min_phi -pi\\n#! SET max_phi pi\\n"
    ...                              "1.0 0.5 0.2 1.1111111111 10\\n")
    >>> bias = cl.bias.read_hills("HILLS", temperature=300.0)
    >>> bias.names, bias.bias_factor, bool(bias.grid.periodic[0])
    (['phi'], 10.0, True)
    >>> round(float(bias.evaluate([[0.5]])[0]), 4)                 # the deposited height, kJ/mol
    1.0
    """
    paths = _hills_paths(path)
    hills = read_hills_files(paths, names)
    names, d = hills.names, len(hills.names)
    if bias_factor is None:
        gammas = hills.biasf[np.isfinite(hills.biasf)]
        biasf = gammas[0] if len(gammas) else 1.0
        bias_factor = None if biasf <= 1.0 else float(biasf)
    if grid is None:
        centers, sig = hills.centers, hills.sigmas.max(0)
        lo, hi, per = [], [], []
        for i in range(d):
            if hills.periods[i] is not None:
                lo.append(hills.periods[i][0])
                hi.append(hills.periods[i][1])
                per.append(True)
            else:
                lo.append(centers[:, i].min() - 6 * sig[i])
                hi.append(centers[:, i].max() + 6 * sig[i])
                per.append(False)
        bins = [max(2, int(np.ceil((h - l) / (s / 5)))) for l, h, s in zip(lo, hi, sig)]
        grid = Grid(lo, hi, bins, periodic=per)
    if grid.ndim != d:
        raise ValueError(f"grid has {grid.ndim} dimensions but the hills of {paths[0]} are on {d} CVs ({names}).")
    for i, period in enumerate(hills.periods):
        if period is not None and (not grid.periodic[i] or not np.allclose(period, (grid.lo[i], grid.hi[i]))):
            raise ValueError(f"{paths[0]} has {names[i]} periodic in {period}, but the grid on {names[i]} is "
                             f"{'periodic in ' if grid.periodic[i] else 'not periodic, '}[{grid.lo[i]}, "
                             f"{grid.hi[i]}]. Use the same period.")
    out = StaticBias(cv if cv is not None else _Named(names), grid, label="metad")
    out.names = list(names)
    out.bias_factor = bias_factor
    out.temperature = None if temperature is None else float(temperature)
    hills.add_to(out.field, scale=out._height_scale())
    return out


def _hills_paths(path):
    """The HILLS files named by ``path``: a file, a list of files, or a walkers directory (its HILLS.<id>)."""
    if isinstance(path, (list, tuple)):
        if not path:
            raise ValueError("Got an empty list of HILLS files; pass at least one path.")
        return [os.fspath(p) for p in path]
    path = os.fspath(path)
    if os.path.isdir(path):
        found = [p for _, p in walker_files(path)]
        if not found:
            raise FileNotFoundError(f"{path} holds no HILLS.<id> files (PLUMED's multiple-walkers naming); pass "
                                    "a HILLS file, a list of them, or the WALKERS_DIR of a run.")
        return found
    if not os.path.exists(path):
        raise FileNotFoundError(f"No HILLS file at {path}.")
    return [path]


class _Named(torch.nn.Module):
    """Placeholder CV carrying only names, for analysing a HILLS file without its CV."""

    def __init__(self, names):
        super().__init__()
        self.names = list(names)

    def forward(self, positions):
        raise TypeError("This bias was read from a HILLS file without its CV; pass cv= to read_hills to "
                        "apply it to positions.")

