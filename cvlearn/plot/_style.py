"""Shared plotting helpers: energy and time units, axis labels, figures and panels."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..units import kT as _kT

__all__ = ["energy_scale", "time_scale", "new_axes", "root_figure", "axis_label", "finish",
           "add_colorbar"]

#: Colormap of free energies and potentials (low = dark).
ENERGY_CMAP = "viridis"
#: Diverging colormap of differences (estimate - exact).
DIFF_CMAP = "RdBu_r"
#: Line width of data curves.
LINEWIDTH = 1.5
#: Opacity of error bands.
BAND_ALPHA = 0.3
#: Default height of the plotted free energy range, in kT.
DEFAULT_MAX_KT = 10.0

_ENERGY_UNITS = ("kJ/mol", "kT")


def energy_scale(units, temperature):
    """Divisor converting kJ/mol to ``units`` at ``temperature`` (K), and the unit's label.

    Parameters
    ----------
    units : {"kJ/mol", "kT"}
        Unit of the plotted energies.
    temperature : float
        K; sets kT when ``units="kT"``.

    Returns
    -------
    scale : float
        Energies in kJ/mol divided by ``scale`` are in ``units``.
    label : str
    """
    if units not in _ENERGY_UNITS:
        raise ValueError(f"units must be 'kJ/mol' or 'kT'; got {units!r}.")
    return (_kT(temperature) if units == "kT" else 1.0), units


def time_scale(time, time_unit="auto"):
    """Time (ps) in ``time_unit`` ("ps", "ns" or "auto": ns from 1000 ps on), and the unit."""
    t = np.asarray(time, dtype=np.float64)
    if time_unit == "auto":
        finite = t[np.isfinite(t)]
        time_unit = "ns" if finite.size and np.abs(finite).max() >= 1000.0 else "ps"
    if time_unit == "ps":
        return t, "ps"
    if time_unit == "ns":
        return t / 1000.0, "ns"
    raise ValueError(f"time_unit must be 'ps', 'ns' or 'auto'; got {time_unit!r}.")


def axis_label(name, unit=None):
    """'name (unit)', or just 'name' when the unit is unknown or empty."""
    return f"{name} ({unit})" if unit else str(name)


def cv_labels(names, cv_units, ndim):
    """One axis label per CV from names and optional units (a str for all, or one per CV)."""
    if cv_units is None or isinstance(cv_units, str):
        cv_units = [cv_units] * ndim
    cv_units = list(cv_units)
    if len(cv_units) != ndim:
        raise ValueError(f"Got {len(cv_units)} cv_units for {ndim} CVs.")
    return [axis_label(n, u) for n, u in zip(names, cv_units, strict=True)]


def root_figure(ax):
    """The top-level :class:`~matplotlib.figure.Figure` holding ``ax`` (also inside subfigures)."""
    fig = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure
    return fig


def new_axes(ax=None, n=1, figsize=None, sharex=False, ncols=1, layout="constrained"):
    """A figure and ``n`` axes, or the user's ``ax`` (one Axes, or a sequence of ``n``).

    New figures use constrained layout ("compressed" suits equal-aspect axes); a user's figure
    keeps its own layout.

    Returns
    -------
    fig : Figure
    axes : list of Axes
    """
    if ax is None:
        nrows = n if ncols == 1 else 1
        ncols = 1 if ncols == 1 else n
        fig, axs = plt.subplots(nrows, ncols, figsize=figsize, sharex=sharex, squeeze=False,
                                layout=layout)
        return fig, list(axs.ravel())
    axs = [ax] if isinstance(ax, Axes) else list(ax) if isinstance(ax, Sequence) else None
    if axs is None or len(axs) != n or not all(isinstance(a, Axes) for a in axs):
        what = "a matplotlib Axes" if n == 1 else f"a sequence of {n} matplotlib Axes"
        raise ValueError(f"ax must be {what} for this plot; got {ax!r}.")
    return root_figure(axs[0]), axs


def finish(ax):
    """Common finishing touches: no top/right spines (clean, publication style)."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def add_colorbar(mappable, ax, label):
    """A colorbar for ``mappable`` next to ``ax`` (Axes or list), labelled, with round ticks."""
    cb = root_figure(ax[0] if isinstance(ax, (list, tuple)) else ax).colorbar(
        mappable, ax=ax, label=label)
    lo, hi = mappable.levels[0], mappable.levels[-1]
    ticks = MaxNLocator(nbins=6).tick_values(lo, hi)
    cb.set_ticks(ticks[(ticks >= lo - 1e-9 * (hi - lo)) & (ticks <= hi + 1e-9 * (hi - lo))])
    return cb
