"""Free energy surfaces: 1-D curves with error bands, 2-D filled contours, comparisons to exact."""

import numpy as np
from matplotlib.patches import Circle, Rectangle

from ..fes import Basin
from ._style import (
    BAND_ALPHA,
    DEFAULT_MAX_KT,
    DIFF_CMAP,
    ENERGY_CMAP,
    LINEWIDTH,
    add_colorbar,
    axis_label,
    cv_labels,
    energy_scale,
    finish,
    new_axes,
)

__all__ = ["fes", "fes_comparison"]


def _check_surface(surface, what="surface"):
    if not all(hasattr(surface, a) for a in ("axes", "F", "temperature", "names")):
        raise TypeError(f"{what} must be a cvlearn.fes.FreeEnergySurface; "
                        f"got {type(surface).__name__}.")
    if surface.ndim not in (1, 2):
        raise ValueError(
            f"Can only plot 1-D or 2-D free energy surfaces; {what} is {surface.ndim}-D "
            f"({', '.join(surface.names)}). Project it onto one or two CVs first: integrate the "
            "others out, F(s1, s2) = -kT ln sum_s3 exp(-F(s1, s2, s3)/kT).")
    if not np.isfinite(surface.F).any():
        raise ValueError(f"{what} has no finite free energy value (nothing was sampled).")


def _shifted(F, scale):
    """F in plot units, shifted to min 0, with inf/nan as nan."""
    F = np.where(np.isfinite(F), F, np.nan)
    return (F - np.nanmin(F)) / scale


def _levels(levels, max_value, step):
    """Contour boundaries from 0 to max_value (about one per ``step``), or the user's levels."""
    if levels is not None and not np.isscalar(levels):
        lv = np.asarray(levels, dtype=np.float64)
        if lv.ndim != 1 or len(lv) < 2 or not (np.diff(lv) > 0).all():
            raise ValueError(f"levels must be increasing with at least 2 values; got {levels!r}.")
        return lv
    n = int(levels) if levels is not None else int(np.clip(round(max_value / step), 2, 40))
    if n < 1:
        raise ValueError(f"levels must be a positive number of bands; got {levels!r}.")
    return np.linspace(0.0, max_value, n + 1)


def _basin_list(basins):
    if basins is None:
        return []
    if isinstance(basins, Basin):
        return [(basins.name or "", basins)]
    if isinstance(basins, dict):
        return [(b.name or str(k), b) for k, b in basins.items()]
    return [(b.name or "", b) for b in basins]


def _draw_basins(ax, basins, surface):
    lims = [(a[0], a[-1]) for a in surface.axes]
    for name, b in _basin_list(basins):
        if b.ndim != surface.ndim:
            raise ValueError(f"{b!r} is {b.ndim}-D but the surface is {surface.ndim}-D.")
        if b.center is not None:
            lo, hi, center = b.center - b.radius, b.center + b.radius, b.center
        else:
            lo = np.maximum(b.lo, [lo for lo, _ in lims])
            hi = np.minimum(b.hi, [hi for _, hi in lims])
            center = (lo + hi) / 2
        style = dict(edgecolor="w", facecolor="none", lw=1.2)
        if surface.ndim == 1:  # dotted edges inside the grid, the name on top
            for edge in (lo[0], hi[0]):
                if lims[0][0] < edge < lims[0][1]:
                    ax.axvline(edge, color="0.5", ls=":", lw=1.0)
            ax.annotate(name, (center[0], 1.0), xycoords=("data", "axes fraction"),
                        ha="center", va="bottom", fontsize="small")
            continue
        if b.center is not None:
            ax.add_patch(Circle(tuple(center), b.radius, **style))
        else:
            ax.add_patch(Rectangle(tuple(lo), *(hi - lo), **style))
        if name:
            ax.text(*center, name, color="w", ha="center", va="center", fontweight="bold")


def _fes_1d(ax, surface, scale, unit, max_value, exact, xlabel):
    x = surface.axes[0]
    F = _shifted(surface.F, scale)
    line, = ax.plot(x, F, lw=LINEWIDTH, label="estimate")
    top = np.nanmax(F)
    if surface.error is not None:
        err = surface.error / scale
        ax.fill_between(x, F - err, F + err, color=line.get_color(), alpha=BAND_ALPHA, lw=0,
                        label="± error")
        top = max(top, np.nanmax(np.where(np.isfinite(F), F + err, np.nan)))
    if exact is not None:
        ax.plot(exact.axes[0], _shifted(exact.F, scale), "k--", lw=1.0, label="exact")
        ax.legend(frameon=False)
    if max_value is not None:
        top = max_value
    if np.isfinite(top) and top > 0:
        ax.set_ylim(-0.03 * top, 1.05 * top)
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel(xlabel[0])
    ax.set_ylabel(axis_label("F", unit))
    finish(ax)


def _fes_2d(ax, surface, scale, unit, levels, max_value, exact, colorbar, xlabel):
    step = surface.kT / scale
    if max_value is None:
        max_value = float(levels[-1]) if levels is not None and not np.isscalar(levels) \
            else DEFAULT_MAX_KT * step
    lv = _levels(levels, max_value, step)
    F = np.ma.masked_invalid(np.minimum(_shifted(surface.F, scale), lv[-1]))
    cs = ax.contourf(surface.axes[0], surface.axes[1], F.T, levels=lv, cmap=ENERGY_CMAP)
    if exact is not None:
        if exact.ndim != 2:
            raise ValueError(f"exact is {exact.ndim}-D but the surface is 2-D.")
        Fx = np.ma.masked_invalid(_shifted(exact.F, scale))
        ax.contour(exact.axes[0], exact.axes[1], Fx.T, levels=lv[1:-1], colors="w",
                   linestyles="--", linewidths=0.7)
    if colorbar:
        add_colorbar(cs, ax, axis_label("F", unit))
    ax.set_xlabel(xlabel[0])
    ax.set_ylabel(xlabel[1])
    return cs


def fes(surface, ax=None, units="kJ/mol", levels=None, max_value=None, exact=None, basins=None,
        cv_units=None, colorbar=True):
    """Plot a 1-D or 2-D free energy surface.

    1-D: F along the CV, with a shaded band of +/- ``surface.error`` when present and the ``exact``
    surface dashed. 2-D: filled contours, clipped at ``max_value`` (higher values take the top
    color), unsampled bins (inf) left blank, a labelled colorbar, and ``exact`` as dashed white
    contour lines on the same levels.

    Parameters
    ----------
    surface : cvlearn.fes.FreeEnergySurface
        1-D or 2-D; axes are labelled with ``surface.names``.
    ax : matplotlib.axes.Axes, optional
        Draw into it (default: a new figure).
    units : {"kJ/mol", "kT"}
        Energy unit of the plot; kT at ``surface.temperature``.
    levels : int or sequence of float, optional
        2-D only: number of contour bands between 0 and ``max_value``, or their boundaries in
        ``units`` (default: one band per kT).
    max_value : float, optional
        Top of the plotted range, in ``units``. 2-D: default 10 kT (or the last of ``levels``);
        higher F is clipped to it. 1-D: the upper y limit (default: the estimate's maximum).
    exact : cvlearn.fes.FreeEnergySurface, optional
        Reference on its own grid; both surfaces are drawn shifted to minimum 0.
    basins : Basin, list of Basin or dict of name -> Basin, optional
        Drawn as circles/rectangles (2-D) or shaded spans (1-D), labelled with their names;
        e.g. ``system.basins``.
    cv_units : str or list of str, optional
        Units of the CVs for the axis labels (e.g. "nm"); CVs can be unitless, so none by default.
    colorbar : bool
        2-D only: add the colorbar.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For a 3-D surface (project it first) or bad ``units``/``levels``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt, cvlearn as cl
    >>> mb = cl.systems.MullerBrown()
    >>> fig = cl.plot.fes(mb.exact_fes(bins=60), units="kT", basins=mb.basins, cv_units="nm")
    >>> fig.axes[0].get_xlabel(), fig.axes[1].get_ylabel()          # the plot and its colorbar
    ('x (nm)', 'F (kT)')
    >>> fig.savefig("mb_fes.png"); plt.close(fig)
    """
    _check_surface(surface)
    if exact is not None:
        _check_surface(exact, "exact")
    scale, unit = energy_scale(units, surface.temperature)
    fig, (ax,) = new_axes(ax)
    labels = cv_labels(surface.names, cv_units, surface.ndim)
    if surface.ndim == 1:
        if exact is not None and exact.ndim != 1:
            raise ValueError(f"exact is {exact.ndim}-D but the surface is 1-D.")
        _fes_1d(ax, surface, scale, unit, max_value, exact, labels)
    else:
        _fes_2d(ax, surface, scale, unit, levels, max_value, exact, colorbar, labels)
    _draw_basins(ax, basins, surface)
    if surface.ndim == 2:
        ax.set_xlim(surface.axes[0][0], surface.axes[0][-1])
        ax.set_ylim(surface.axes[1][0], surface.axes[1][-1])
    return fig


def _on_grid(surface, other):
    """``other.F`` on ``surface``'s grid (linear interpolation, nan outside/unsampled)."""
    same = all(len(a) == len(b) and np.allclose(a, b)
               for a, b in zip(surface.axes, other.axes, strict=True))
    F = np.where(np.isfinite(other.F), other.F, np.nan)
    if same:
        return F
    from scipy.interpolate import RegularGridInterpolator

    interp = RegularGridInterpolator(other.axes, F, bounds_error=False, fill_value=np.nan)
    return interp(surface.points).reshape(surface.F.shape)


def fes_comparison(estimate, exact, units="kJ/mol", max_value=None, levels=None, cv_units=None):
    """Compare an estimated free energy surface with the exact one.

    1-D: the estimate (with its error band) and the exact curve overlaid. 2-D: three panels, the
    estimate, the exact surface (same levels, one shared colorbar) and their difference
    estimate - exact, with the exact surface interpolated onto the estimate's grid and shifted by
    the mean difference over the plotted range (F_estimate < ``max_value``), where the difference
    is shown.

    Parameters
    ----------
    estimate, exact : cvlearn.fes.FreeEnergySurface
        Same dimension (1 or 2); grids may differ.
    units : {"kJ/mol", "kT"}
        Energy unit; kT at ``estimate.temperature``.
    max_value, levels, cv_units
        As in :func:`fes`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt, cvlearn as cl
    >>> mb = cl.systems.MullerBrown()
    >>> fig = cl.plot.fes_comparison(mb.exact_fes(bins=40), mb.exact_fes(bins=60), units="kT")
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['estimate', 'exact', 'estimate − exact']
    >>> plt.close(fig)
    """
    _check_surface(estimate, "estimate")
    _check_surface(exact, "exact")
    if estimate.ndim != exact.ndim:
        raise ValueError(f"estimate is {estimate.ndim}-D but exact is {exact.ndim}-D.")
    if estimate.ndim == 1:
        return fes(estimate, units=units, max_value=max_value, exact=exact, cv_units=cv_units)
    scale, unit = energy_scale(units, estimate.temperature)
    fig, axs = new_axes(n=3, ncols=3, figsize=(13.0, 3.8))
    labels = cv_labels(estimate.names, cv_units, 2)
    cs = _fes_2d(axs[0], estimate, scale, unit, levels, max_value, None, False, labels)
    _fes_2d(axs[1], exact, scale, unit, cs.levels, None, None, False, labels)
    add_colorbar(cs, axs[:2], axis_label("F", unit))
    top = cs.levels[-1]
    est = _shifted(estimate.F, scale)
    diff = est - _on_grid(estimate, exact) / scale
    shown = np.isfinite(diff) & (est < top)
    if not shown.any():
        raise ValueError("The estimate and exact surfaces do not overlap where F < max_value.")
    diff = np.where(shown, diff - diff[shown].mean(), np.nan)
    # Symmetric range covering 99 % of the shown bins; the rare outliers take the end colors.
    lim = max(float(np.nanpercentile(np.abs(diff), 99)), 1e-12)
    diff = np.ma.masked_invalid(np.clip(diff, -lim, lim))
    dcs = axs[2].contourf(estimate.axes[0], estimate.axes[1], diff.T,
                          levels=np.linspace(-lim, lim, 21), cmap=DIFF_CMAP)
    add_colorbar(dcs, axs[2], axis_label("ΔF", unit))
    for a, title in zip(axs, ("estimate", "exact", "estimate − exact"), strict=True):
        a.set_title(title)
        a.set_xlabel(labels[0])
        a.set_ylabel(labels[1])
    for a in axs[1:]:
        a.set_xlim(axs[0].get_xlim())
        a.set_ylim(axs[0].get_ylim())
    return fig
