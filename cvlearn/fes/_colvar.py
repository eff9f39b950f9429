"""Free energies from PLUMED runs done elsewhere: COLVAR files in, reweighted surfaces and weights out.

A run on a cluster (GROMACS, LAMMPS or OpenMM with PLUMED, e.g. from ``cvlearn export --plumed``)
leaves COLVAR files with the CVs, the bias acting at each row (``metad.bias``) and, for
well-tempered metadynamics with ``CALC_RCT``, its c(t) offset (``metad.rct``). Those are all the
c(t) reweighting needs: log w = (V(s, t) - c(t)) / kT. OPES prints no rct and needs none.
"""

import os

import numpy as np

from .._trajectory import Trajectory
from ..io import PlumedFileError, read_plumed
from ..units import kT as _kT
from ._reweight import reweight

__all__ = ["colvar_logweights", "from_colvar"]


_BIAS_HINT = ("Name the bias and rct columns as PLUMED printed them (e.g. bias='metad.bias', rct='metad.rct', or "
              "for OPES bias='opes.bias', rct=None).")


def _tables(colvar, variables=(), biases=()):
    """[(label, dict of columns)], one per walker, from a path, a dict, or a list of them (e.g. COLVAR.0,
    COLVAR.1). The ``variables`` and ``biases`` (bias and rct names) must be columns of every walker (and of
    every block of a restarted file) and finite: the error names the file (or walker), the column and the
    line. Walkers that stopped at different rows are cut to the shortest."""
    items = list(colvar) if isinstance(colvar, (list, tuple)) else [colvar]
    if not items:
        raise ValueError("Got an empty list of COLVAR files; pass a path, a dict of columns, or a list of them.")
    needed = list(dict.fromkeys([*variables, *biases]))
    out = []
    for i, c in enumerate(items):
        lines = None
        if isinstance(c, dict):
            label = f"the COLVAR columns of walker {i} (a dict)" if len(items) > 1 else "the COLVAR columns (a dict)"
            table, have = {k: np.asarray(v, dtype=np.float64) for k, v in c.items()}, list(c)
        else:
            label = os.fspath(c)
            if not os.path.exists(label):
                raise FileNotFoundError(f"No COLVAR file at {label}.")
            plumed = read_plumed(label)
            have = plumed.fields
            if not plumed.blocks:
                raise PlumedFileError(f"{label} has no '#! FIELDS' header; not a PLUMED COLVAR file.", path=label)
        missing = [n for n in needed if n not in have]
        if missing:
            bias = missing[0] in biases and missing[0] not in variables
            what = f"{missing[0]!r} (asked for as a bias)" if bias else repr(missing[0])
            raise PlumedFileError(f"COLVAR {label} has no column {what}; it has {have}."
                                  + (f" {_BIAS_HINT}" if bias else ""), path=label)
        if not isinstance(c, dict):  # every block must have the needed columns (PlumedFileError names the block)
            table = {n: plumed.column(n, required=n in needed) for n in have}
            lines = plumed.lines
        for name in needed:
            bad = ~np.isfinite(table[name])
            if bad.any():
                row = int(np.argmax(bad))
                where = f"line {lines[row]}" if lines is not None else f"row {row}"
                raise PlumedFileError(f"{label}, {where}: {name} is {table[name][row]}, not a finite number; "
                                      "remove or repair that row.", path=label,
                                      line=None if lines is None else int(lines[row]))
        out.append((label, table))
    n = min(len(next(iter(t.values()))) if t else 0 for _, t in out)
    return [(label, {k: v[:n] for k, v in t.items()}) for label, t in out]


def _bias_names(bias, rct):
    return [*([bias] if isinstance(bias, str) else list(bias or [])), *([] if rct is None else [rct])]


def colvar_logweights(colvar, bias="metad.bias", rct="metad.rct", temperature=300.0):
    """Log-weights (frames, walkers) that undo the bias of a PLUMED run, from its COLVAR file(s).

    ``bias`` is a column name or a list of them (summed, e.g. a bias and its walls); ``rct`` the
    c(t) column (None for OPES or a static bias). Temperature in K. Use them for
    :func:`cvlearn.fes.reweight` (``logweights=``) or to retrain a learner on the cluster's frames
    (``learner.fit(X, logweights=...)``, one column per walker).

    Parameters
    ----------
    colvar : path, dict of arrays, or a list of them (one per walker)
    bias : str or list of str
        Bias column(s), kJ/mol.
    rct : str or None
        c(t) column, kJ/mol.
    temperature : float
        K.

    Returns
    -------
    numpy.ndarray, (frames, walkers)
        ``(V - c(t)) / kT``, dimensionless. Walkers that stopped at different rows are cut to the
        shortest.

    Examples
    --------
    Two walkers given as dicts of columns (as :func:`cvlearn.io.read_colvar` returns them):

    >>> import numpy as np, cvlearn as cl
    >>> w0 = {"time": np.array([0.0, 1.0]), "metad.bias": np.array([0.0, 2.494]), "metad.rct": np.array([0.0, 0.0])}
    >>> w1 = {"time": np.array([0.0, 1.0, 2.0]), "metad.bias": np.array([1.0, 1.0, 1.0]),
    ...       "metad.rct": np.array([0.0, 1.0, 1.0])}
    >>> cl.fes.colvar_logweights([w0, w1], temperature=300.0).round(3).tolist()   # V / kT, kT = 2.494 kJ/mol
    [[0.0, 0.401], [1.0, 0.0]]
    """
    tables = _tables(colvar, biases=_bias_names(bias, rct))
    names = [bias] if isinstance(bias, str) else list(bias or [])
    beta = 1.0 / _kT(temperature)
    out = []
    for _, t in tables:
        v = sum((t[b] for b in names), np.zeros(len(next(iter(t.values())))))
        if rct is not None:
            v = v - t[rct]
        out.append(beta * v)
    return np.stack(out, axis=1)


def from_colvar(colvar, variables, bias="metad.bias", rct="metad.rct", temperature=300.0, bins=50, ranges=None,
                skip=0.0, n_blocks=5):
    """Free energy surface (kJ/mol) of COLVAR columns ``variables`` (1 to 3 names), reweighted from a PLUMED run.

    ``colvar`` is a path, a dict of columns, or a list of them (one per walker). Block-averaged
    errors as in :func:`cvlearn.fes.reweight`, whose ``bins``, ``ranges``, ``skip``, ``n_blocks`` these are.
    ``bias``, ``rct`` and ``temperature`` (K) as in :func:`colvar_logweights`. Returns a
    :class:`FreeEnergySurface` (kJ/mol) on the variables' own units.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from cvlearn.fes import from_colvar
    >>> p = os.path.join(tempfile.mkdtemp(), "COLVAR")
    >>> rows = np.c_[np.arange(400) * 0.1, np.tile([-1.0, 1.0], 200), np.tile([0.0, 2.0], 200), np.zeros(400)]
    >>> text = "\\n".join(" ".join(map(str, r)) for r in rows)
    >>> _ = open(p, "w").write("#! FIELDS time phi metad.bias metad.rct\\n" + text + "\\n")
    >>> fes = from_colvar(p, ["phi"], bins=2, ranges=[(-2.0, 2.0)])
    >>> round(float(fes.F[1] - fes.F[0]), 3)  # equal populations, but phi = +1 carried a 2 kJ/mol bias
    -2.0
    """
    names = [variables] if isinstance(variables, str) else list(variables)
    tables = _tables(colvar, names, _bias_names(bias, rct))
    values = np.stack([np.column_stack([t[v] for v in names]) for _, t in tables], axis=1)
    logw = colvar_logweights([t for _, t in tables], bias, rct, temperature)
    n, w = values.shape[:2]
    time = tables[0][1]["time"] if "time" in tables[0][1] else np.arange(n, dtype=float)
    frames = Trajectory(np.zeros((n, w, 1, 1)), time, temperature=temperature)
    return reweight(frames, values, bins=bins, ranges=ranges, skip=skip, n_blocks=n_blocks, temperature=temperature,
                    names=names, logweights=logw)
