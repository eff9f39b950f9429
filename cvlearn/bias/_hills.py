"""PLUMED HILLS files as PLUMED reads them: every block by column name, multivariate hills, its kernels.

A HILLS file may hold several ``#! FIELDS`` blocks (one per restart, CVs in any order), each with
its own ``#! SET multivariate`` and ``#! SET kerneltype``. Hills are summed on a grid exactly as
PLUMED's METAD (with GRID) and ``plumed sum_hills`` sum them, value and mixed derivatives at every
node:

- ``stretched-gaussian`` (PLUMED's default since 2.8): ``h (A exp(-dp2) + B)`` for
  ``dp2 < 6.25`` and 0 beyond, with ``dp2 = (s - c)^T M (s - c) / 2``, ``A = 1 / (1 - exp(-6.25))``
  and ``B = -exp(-6.25) A``, so the kernel reaches zero at the cutoff (PLUMED's ``dp2cutoff``,
  ``dp2cutoffA``, ``dp2cutoffB``).
- multivariate hills (``ADAPTIVE=GEOM`` / ``DIFF``): the ``sigma_<a>_<b>`` columns are the lower
  Cholesky factor L of the covariance, packed by diagonals (``sigma_a_a sigma_b_b sigma_b_a``) in
  the block's CV order; ``M = (L L^T)^-1``. (PLUMED itself cannot read back a restarted
  multivariate file whose second block has the CVs in another order; cvlearn can.)
  A node gets the hill only within PLUMED's window: ``ceil(sqrt(12.5) e_i / dx_i)``
  nodes either side of the node below the center, with ``e_i = sqrt(lambda_max) |V[last, i]|`` from
  the covariance's eigenvalues and eigenvector matrix V (columns: eigenvectors, ascending): PLUMED
  reads the largest eigenvector from V's last row, not its last column, which for 3 CVs is not the
  eigenvector; so the window may cut the ellipse (as it does in PLUMED), and on a periodic CV
  wrapping onto nodes twice when wider than the period, as in PLUMED).
- diagonal ``gaussian`` hills (what cvlearn writes): plain Gaussians truncated at 6 sigma, as
  :class:`cvlearn.WellTemperedMetad` deposits them (relative difference to PLUMED's truncation
  below 0.2 % of a hill's height, at its edge); multivariate ``gaussian`` hills: ``h exp(-dp2)`` in
  PLUMED's window.
"""

import math

import numpy as np

from ..io import PlumedFileError, parse_number, read_plumed
from ._hermite import _along

__all__ = ["DP2CUTOFF", "HillSet", "read_hills_files"]

DP2CUTOFF = 6.25  # PLUMED's dp2cutoff: kernels end where (s - c)^2 / (2 sigma^2) reaches it
STRETCH_A = 1.0 / (1.0 - math.exp(-DP2CUTOFF))
STRETCH_B = -math.exp(-DP2CUTOFF) * STRETCH_A
KERNEL_TYPES = ("gaussian", "stretched-gaussian")
_NOT_CVS = ("time", "height", "biasf", "clock")


class HillSet:
    """Hills of one or more HILLS files, in file units.

    Attributes
    ----------
    names : list of str
    centers : (n, d) array
    covariances : (n, d, d) array
        sigma^2 on the diagonal for diagonal hills.
    heights : (n,) array
        As written in the files (well-tempered: scaled by gamma / (gamma - 1)).
    biasf : (n,) array
        The ``biasf`` column (NaN where absent).
    stretched, multivariate : (n,) bool arrays
    periods : list of (lo, hi) or None, per CV
    """

    def __init__(self, names, centers, covariances, heights, biasf, stretched, multivariate, periods):
        self.names, self.centers, self.covariances, self.heights = names, centers, covariances, heights
        self.biasf, self.stretched, self.multivariate, self.periods = biasf, stretched, multivariate, periods

    def __len__(self):
        return len(self.heights)

    @property
    def sigmas(self):
        """(n, d) marginal widths, sqrt of the covariance's diagonal."""
        return np.sqrt(np.einsum("nii->ni", self.covariances))

    def add_to(self, field, scale=1.0):
        """Add every hill, height divided by ``scale``, to ``field`` (:class:`HermiteField`), as PLUMED would."""
        plain = ~self.stretched & ~self.multivariate
        if plain.any():
            field.add_gaussians(self.centers[plain], self.sigmas[plain], self.heights[plain] / scale)
        rest = np.nonzero(~plain)[0]
        for a in range(0, len(rest), 256):
            k = rest[a:a + 256]
            _add_exact(field, self.centers[k], self.covariances[k], self.heights[k] / scale, self.stretched[k],
                       self.multivariate[k])


def _cv_names(fields):
    return [f for f in fields if not f.startswith("sigma_") and f not in _NOT_CVS]


def read_hills_files(paths, names=None):
    """The hills of HILLS files ``paths`` (every block, columns by name) as a :class:`HillSet`.

    ``names``: the CV columns (default: those of the first file's first block). Raises
    :class:`~cvlearn.io.PlumedFileError` naming the file and block that lack a column, hold an
    unknown kernel type, or a width that is not positive.
    """
    tables = [read_plumed(p) for p in paths]
    for t in tables:
        if not t.blocks or not t.has("height") or not t.has("time"):
            raise PlumedFileError(f"{t.path} is not a HILLS file: its FIELDS are {t.fields} (a HILLS file has time, "
                                  "the CVs, sigma_<CV>, height).", path=t.path)
    if names is None:
        names = _cv_names(tables[0].blocks[0].fields)
    names = list(names)
    d = len(names)
    if not 1 <= d <= 3:
        raise PlumedFileError(f"{tables[0].path} has hills on {d} CVs ({names}); cvlearn reads 1 to 3.",
                              path=tables[0].path)
    parts, periods = [], [None] * d
    for t in tables:
        for b in t.blocks:
            if not len(b.data):
                continue
            multi = b.constants.get("multivariate", "false").lower() == "true"
            kind = b.constants.get("kerneltype", "gaussian").lower()
            if kind not in KERNEL_TYPES:
                raise PlumedFileError(f"{t.path}: {b.describe()} has kerneltype {kind!r}; cvlearn reads "
                                      f"{list(KERNEL_TYPES)}.", path=t.path, line=b.header_line)
            # A restarted run may print the CVs in another order: multivariate widths are packed in the block's.
            order = sorted(names, key=lambda n: b.fields.index(n) if n in b.fields else len(b.fields))
            if multi:
                packed = [(j + i, j) for i in range(d) for j in range(d - i)]
                sig_cols = [f"sigma_{order[r]}_{order[c]}" for r, c in packed]
            else:
                sig_cols = [f"sigma_{n}" for n in names]
            need = ["time", *names, *sig_cols, "height"]
            missing = [c for c in need if c not in b.fields]
            if missing:
                raise PlumedFileError(f"{t.path} lacks the columns {missing} in {b.describe()}; expected the CVs "
                                      f"{names}{' (multivariate hills)' if multi else ''} of {tables[0].path}. Files "
                                      "summed into one bias must come from the same CVs (same names).",
                                      path=t.path, line=b.header_line)
            col = {f: i for i, f in enumerate(b.fields)}
            data = b.data
            centers = data[:, [col[n] for n in names]]
            sig = data[:, [col[c] for c in sig_cols]]
            n = len(data)
            if multi:
                low = np.zeros((n, d, d))
                for (r, c), k in zip(packed, range(len(packed))):
                    low[:, r, c] = sig[:, k]
                cov = low @ np.swapaxes(low, 1, 2)
                perm = [order.index(n) for n in names]
                cov = cov[:, perm][:, :, perm]
                bad = np.linalg.det(cov) <= 0
            else:
                cov = np.zeros((n, d, d))
                for i in range(d):
                    cov[:, i, i] = sig[:, i] ** 2
                bad = ~(sig > 0).all(1)
            bad |= ~np.isfinite(sig).all(1) | ~np.isfinite(centers).all(1)
            if bad.any():
                line = int(b.lines[np.argmax(bad)])
                raise PlumedFileError(f"{t.path}, line {line}: a hill whose widths {sig[np.argmax(bad)].tolist()} "
                                      "are not positive (or whose center is not finite).", path=t.path, line=line)
            biasf = data[:, col["biasf"]] if "biasf" in col else np.full(n, np.nan)
            parts.append((centers, cov, data[:, col["height"]], biasf, np.full(n, kind == "stretched-gaussian"),
                          np.full(n, multi)))
            for i, name in enumerate(names):
                if f"min_{name}" in b.constants and f"max_{name}" in b.constants:
                    try:
                        period = (parse_number(b.constants[f"min_{name}"]), parse_number(b.constants[f"max_{name}"]))
                    except ValueError:
                        raise PlumedFileError(f"{t.path}: {b.describe()} has a period of {name} that is not a "
                                              "number.", path=t.path, line=b.header_line) from None
                    if periods[i] is not None and not np.allclose(periods[i], period):
                        raise PlumedFileError(f"{t.path}: {name} is periodic in {period} here, in {periods[i]} "
                                              "before.", path=t.path, line=b.header_line)
                    periods[i] = period
    if not parts:
        raise PlumedFileError(f"{', '.join(t.path for t in tables)} holds no hills.", path=tables[0].path)
    cat = [np.concatenate(x) for x in zip(*parts)]
    return HillSet(names, *cat, periods)


def _support(cov, spacing):
    """PLUMED's grid window per hill and axis, in nodes: (n, d) ints (see the module docstring)."""
    lam, vec = np.linalg.eigh(cov)  # ascending, as PLUMED's diagMat: the last is the largest
    # PLUMED takes element (i, largest) of its eigenvector matrix, whose rows are the eigenvectors: in
    # numpy's layout (columns) that is vec[largest, i]. The same as vec[i, largest] up to sign for 2 CVs.
    extent = np.abs(np.sqrt(lam[:, -1])[:, None] * vec[:, -1, :])
    return np.ceil(math.sqrt(2.0 * DP2CUTOFF) * extent / spacing).astype(np.int64)


def _add_exact(field, centers, covs, heights, stretched, multivariate):
    """Add general hills (full metric, stretched or plain, PLUMED's window) to ``field``: values and the
    mixed derivatives of every kind at each node."""
    grid = field.grid
    d = grid.ndim
    n = len(heights)
    metric = np.linalg.inv(covs)
    diag = ~multivariate
    # Diagonal stretched hills: the whole ellipse (PLUMED's box of ceil(sqrt(12.5) sigma / dx) nodes holds it).
    support = np.where(diag[:, None], np.ceil(math.sqrt(2.0 * DP2CUTOFF) * np.sqrt(np.einsum("nii->ni", covs))
                                              / grid.spacing).astype(np.int64), _support(covs, grid.spacing))
    shape = grid.shape
    base = np.floor((centers - grid.lo) / grid.spacing).astype(np.int64)  # PLUMED: the node below the center
    axes_idx, axes_dx, axes_ok = [], [], []
    for i in range(d):
        half = int(support[:, i].max())
        # A window wider than a period wraps onto nodes it already covers, which then get the hill twice:
        # PLUMED does so (Grid::getNeighbors), and sum_hills' numbers are matched with it.
        offsets = np.arange(-half, half + 1)
        idx = base[:, i, None] + offsets[None, :]
        ok = np.abs(offsets)[None, :] <= support[:, i, None]
        if grid.periodic[i]:
            idx = idx % shape[i]
        else:
            ok &= (idx >= 0) & (idx < shape[i])
            idx = np.clip(idx, 0, shape[i] - 1)
        dx = grid.lo[i] + grid.spacing[i] * idx - centers[:, i, None]
        if grid.periodic[i]:
            period = grid.period[i]
            dx = dx - period * np.floor(dx / period + 0.5)
        axes_idx.append(idx)
        axes_dx.append(dx)
        axes_ok.append(ok)
    # Broadcast to (n, w0, w1, ...): displacement per axis, flat node index, window mask.
    full = (n, *[a.shape[1] for a in axes_idx])
    disp = [np.broadcast_to(_along(axes_dx[i], i, d), full) for i in range(d)]
    flat = sum(_along(axes_idx[i], i, d) * int(np.prod(shape[i + 1:])) for i in range(d))
    flat = np.broadcast_to(flat, full)
    ok = np.ones(full, dtype=bool)
    for i in range(d):
        ok = ok & _along(axes_ok[i], i, d)
    m = metric.reshape((n, d, d) + (1,) * d)
    grad = [sum(m[:, i, j] * disp[j] for j in range(d)) for i in range(d)]  # (M ds)_i
    dp2 = 0.5 * sum(disp[i] * grad[i] for i in range(d))
    st = stretched.reshape((n,) + (1,) * d)
    inside = ok & np.where(st, dp2 < DP2CUTOFF, True)
    a = np.where(st, STRETCH_A, 1.0)
    b = np.where(st, STRETCH_B, 0.0)
    h = heights.reshape((n,) + (1,) * d)
    e = np.where(inside, h * a * np.exp(-np.minimum(dp2, 700.0)), 0.0)
    sel = flat[inside]
    size = int(np.prod(shape))
    total = np.zeros((len(field._kinds), size))
    for k, bits in enumerate(field._kinds):
        axes = [i for i in range(d) if bits[i]]
        if not axes:
            w = e + np.where(inside, h * b, 0.0)
        else:
            w = e * _gaussian_partial(axes, grad, m)
        total[k] = np.bincount(sel, weights=w[inside], minlength=size)
    if field.data.device.type == "cpu":
        field.data.numpy()[...] += total.reshape(field.data.shape)
    else:  # pragma: no cover - a GPU grid
        import torch

        field.data += torch.as_tensor(total.reshape(field.data.shape), device=field.data.device)


def _gaussian_partial(axes, grad, m):
    """d^|S| exp(-q) / exp(-q) for distinct axes S, q = ds^T M ds / 2: a sum over the ways to split S into
    singletons (-g_i) and pairs (-M_ij)."""
    if len(axes) == 1:
        return -grad[axes[0]]
    if len(axes) == 2:
        i, j = axes
        return grad[i] * grad[j] - m[:, i, j]
    i, j, k = axes
    return (-grad[i] * grad[j] * grad[k] + m[:, i, j] * grad[k] + m[:, i, k] * grad[j] + m[:, j, k] * grad[i])

