"""The bias of PLUMED (or cvlearn) HILLS files as a :class:`StaticBias`: :func:`read_hills`."""

import os

import numpy as np

from ._grid import Grid
from ._hills import read_hills_files
from ._named import NamedCV
from ._static import StaticBias
from ._walkers import walker_files

__all__ = ["read_hills"]


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
    out = StaticBias(cv if cv is not None else NamedCV(names), grid, label="metad")
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
