"""A learned CV drawn as contour lines on the potential energy of a 2-D one-particle system."""

import numpy as np
import torch
from matplotlib.lines import Line2D

from ._style import ENERGY_CMAP, add_colorbar, axis_label, energy_scale, new_axes

__all__ = ["cv_on_landscape"]


def _grid_energy(system, xs, ys):
    X, Y = np.meshgrid(xs, ys)  # (len(ys), len(xs)), ready for contour
    pos = torch.from_numpy(np.stack([X.ravel(), Y.ravel()], axis=-1)).reshape(-1, 1, 2)
    with torch.no_grad():
        V = system.potential(pos).detach().double().cpu().numpy().reshape(X.shape)
    return X, Y, pos, V


def _auto_bounds(system, clip, trajectory_xy):
    """Grid range: slow_bounds where known, else the trajectory's extent or the region V < clip."""
    known = list(getattr(system, "slow_bounds", ()) or ())
    if len(known) == 2:
        return [tuple(map(float, b)) for b in known]
    if trajectory_xy is not None and len(trajectory_xy):
        lo, hi = trajectory_xy.min(0), trajectory_xy.max(0)
        pad = 0.1 * np.maximum(hi - lo, 1e-3)
        return list(zip(lo - pad, hi + pad, strict=True))
    center = system.start_positions()[0].double().numpy()
    bounds = [tuple(map(float, known[d])) if d < len(known) else None for d in range(2)]
    half = 2.0
    for _ in range(6):  # widen the search until the low-energy region fits inside it
        trial = [b or (center[d] - half, center[d] + half) for d, b in enumerate(bounds)]
        xs, ys = (np.linspace(lo, hi, 121) for lo, hi in trial)
        V = _grid_energy(system, xs, ys)[3]
        low = (V - V.min()) <= clip
        found = []
        for d, axis in ((0, xs), (1, ys)):
            inside = axis[low.any(axis=d)]
            pad = 0.1 * (inside[-1] - inside[0]) + (axis[1] - axis[0])
            found.append((inside[0] - pad, inside[-1] + pad))
        edge = [bounds[d] is None and (found[d][0] < trial[d][0] or found[d][1] > trial[d][1])
                for d in range(2)]
        if not any(edge):
            break
        half *= 4.0
    return [b or f for b, f in zip(bounds, found, strict=True)]


def _positions_xy(trajectory):
    if trajectory is None:
        return None
    pos = np.asarray(getattr(trajectory, "positions", trajectory), dtype=np.float64)
    if pos.shape[-1] != 2 or (pos.ndim >= 3 and pos.shape[-2] != 1):
        raise ValueError("trajectory must hold positions of one particle in 2-D, shape (..., 1, 2) "
                         f"or (n, 2); got {pos.shape}.")
    return pos.reshape(-1, 2)


def _module_dtype(module):
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float64, torch.device("cpu")


def cv_on_landscape(system, cv_module, bins=200, ax=None, n_levels=12, trajectory=None,
                    component=0, max_energy=12.0, units="kJ/mol", bounds=None, max_points=2000):
    """Contour lines of a CV on the potential energy of a 2-D, one-particle system.

    The potential V(x, y), shifted to minimum 0, is drawn as filled contours (one band per kT up to
    ``max_energy`` kT at ``system.temperature``, higher energies clipped to the top color), with
    the CV's isolines on top: ``n_levels`` values evenly spread over the CV's range in that
    low-energy region. A good CV has isolines crossing the path between the minima, not along it.

    Parameters
    ----------
    system : cvlearn.systems.System
        One particle in two dimensions, e.g. ``MullerBrown()`` or ``DoubleWell(dim=2)``.
    cv_module : torch.nn.Module
        Maps positions (N, 1, 2) in nm to CV values (N, n_components) or (N,), e.g.
        ``learner.to_module(featurizer=cl.features.Positions(1, 2))``.
    bins : int
        Grid points per dimension.
    ax : Axes, optional
    n_levels : int
        Number of CV isolines.
    trajectory : Trajectory or array_like, optional
        Positions (..., 1, 2) or (n, 2) in nm; up to ``max_points`` frames (evenly strided) are
        scattered on top.
    component : int
        Which CV component to draw.
    max_energy : float
        Top of the energy range, in kT.
    units : {"kJ/mol", "kT"}
        Energy unit of the colorbar.
    bounds : [(xlo, xhi), (ylo, yhi)], optional
        Grid range in nm (default: ``system.slow_bounds`` if 2-D, else the trajectory's extent,
        else the region where V < ``max_energy`` kT).
    max_points : int
        Most trajectory points drawn.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the system is not one particle in two dimensions.

    Examples
    --------
    The CV s = x - y (nm) on the Muller-Brown potential:

    >>> import matplotlib.pyplot as plt, cvlearn as cl
    >>> cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [-1.0]]),
    ...                                     featurizer=cl.features.Positions(1, 2))
    >>> fig = cl.plot.cv_on_landscape(cl.systems.MullerBrown(), cv, bins=40)
    >>> fig.axes[0].get_xlabel(), fig.axes[1].get_ylabel()
    ('x (nm)', 'V − V_min (kJ/mol)')
    >>> plt.close(fig)
    """
    n_p, n_d = getattr(system, "n_particles", None), getattr(system, "n_dims", None)
    if (n_p, n_d) != (1, 2):
        raise ValueError(
            f"cv_on_landscape draws one particle in 2 dimensions (e.g. MullerBrown, "
            f"DoubleWell(dim=2)); {type(system).__name__} has {n_p} particle(s) in {n_d} "
            "dimensions. For other systems plot the CV against the slow coordinates instead.")
    if int(n_levels) < 1 or int(bins) < 2:
        raise ValueError(f"Need n_levels >= 1 and bins >= 2; got {n_levels}, {bins}.")
    scale, unit = energy_scale(units, system.temperature)
    kT = system.kT()
    clip = float(max_energy) * kT
    xy = _positions_xy(trajectory)
    bounds = _auto_bounds(system, clip, xy) if bounds is None else bounds
    xs, ys = (np.linspace(float(lo), float(hi), int(bins)) for lo, hi in bounds)
    X, Y, pos, V = _grid_energy(system, xs, ys)
    V = V - V.min()

    dtype, device = _module_dtype(cv_module)
    with torch.no_grad():
        s = cv_module(pos.to(dtype=dtype, device=device))
    s = s.detach().double().cpu().numpy().reshape(len(pos), -1)
    if not 0 <= component < s.shape[1]:
        raise ValueError(f"component={component} but the CV has {s.shape[1]} component(s).")
    S = s[:, component].reshape(X.shape)

    aspect = (ys[-1] - ys[0]) / (xs[-1] - xs[0])  # equal axes: size the figure to fit
    fig, (ax,) = new_axes(ax, figsize=(6.4, float(np.clip(5.0 * aspect + 0.9, 2.5, 8.0))),
                          layout="compressed")
    levels = np.linspace(0.0, clip, max(2, round(float(max_energy))) + 1) / scale
    filled = ax.contourf(X, Y, np.minimum(V, clip) / scale, levels=levels, cmap=ENERGY_CMAP)
    add_colorbar(filled, ax, axis_label("V − V_min", unit))
    region = S[(V <= clip) & np.isfinite(S)]
    if region.size == 0 or region.max() == region.min():
        raise ValueError("The CV is constant (or not finite) over the low-energy region; "
                         "there are no isolines to draw.")
    cv_levels = np.linspace(region.min(), region.max(), int(n_levels) + 2)[1:-1]
    ax.contour(X, Y, S, levels=cv_levels, colors="k", linewidths=0.8,
               linestyles="solid")
    names = getattr(cv_module, "names", None)
    name = names[component] if names and len(names) > component else f"CV {component + 1}"
    handles = [Line2D([], [], color="k", lw=0.8, label=f"{name} isolines")]
    if xy is not None:
        stride = max(1, int(np.ceil(len(xy) / max(1, int(max_points)))))
        ax.scatter(*xy[::stride].T, s=3, color="C3", lw=0, alpha=0.6, label="trajectory")
        handles.append(Line2D([], [], color="C3", marker="o", ls="", ms=3, label="trajectory"))
    ax.legend(handles=handles, loc="upper right", frameon=True, fontsize="small")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    ax.set_xlabel(axis_label("x", "nm"))
    ax.set_ylabel(axis_label("y", "nm"))
    return fig
