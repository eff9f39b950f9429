"""Quantities against time or epoch: CV traces, hill heights, convergence of ΔF, training losses."""

from collections.abc import Mapping

import numpy as np

from ..units import kT as _kT
from ._style import BAND_ALPHA, LINEWIDTH, axis_label, energy_scale, finish, new_axes, time_scale

__all__ = ["cv_timeseries", "delta_f_convergence", "loss"]


def _cv_array(time, cv):
    cv = np.asarray(cv, dtype=np.float64)
    if cv.ndim == 1:
        cv = cv[:, None, None]
    elif cv.ndim == 2:
        cv = cv[:, :, None]
    elif cv.ndim != 3:
        raise ValueError("cv must be (frames,), (frames, walkers) or (frames, walkers, "
                         f"components); got shape {cv.shape}.")
    if len(time) != cv.shape[0]:
        raise ValueError(f"time has {len(time)} frames but cv has {cv.shape[0]}.")
    return cv


def cv_timeseries(time, cv, hill_time=None, hill_height=None, names=None, ax=None,
                  time_unit="ps"):
    """CV values against time, and optionally the heights of the deposited metadynamics hills.

    Parameters
    ----------
    time : array_like (frames,)
        ps.
    cv : array_like
        (frames,), (frames, walkers) -- one line per walker -- or (frames, walkers, components)
        -- one panel per component.
    hill_time, hill_height : array_like, optional
        Deposition time (ps) and height (kJ/mol) of each hill, (hills,) or (hills, walkers); given
        together, they add a panel below (on a shared time axis).
    names : str or list of str, optional
        Name of each CV component for the y labels (default "CV", "CV 1", ...).
    ax : Axes or sequence of Axes, optional
        One per panel (components, plus one for hills).
    time_unit : {"ps", "ns", "auto"}
        Unit of the time axis ("auto": ns from 1000 ps on).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    Two walkers' CV and the shrinking hills of a well-tempered run:

    >>> import numpy as np, matplotlib.pyplot as plt, cvlearn as cl
    >>> t = np.arange(100) * 0.5                                         # ps
    >>> cv = np.random.default_rng(0).normal(size=(100, 2))              # (frames, walkers)
    >>> fig = cl.plot.cv_timeseries(t, cv, hill_time=t[::10], hill_height=np.linspace(1.2, 0.2, 10), names="phi")
    >>> [ax.get_ylabel() for ax in fig.axes], fig.axes[-1].get_xlabel()
    (['phi', 'hill height (kJ/mol)'], 'time (ps)')
    >>> plt.close(fig)
    """
    t, tu = time_scale(time, time_unit)
    cv = _cv_array(t, cv)
    k = cv.shape[2]
    if names is None:
        names = ["CV"] if k == 1 else [f"CV {i + 1}" for i in range(k)]
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != k:
        raise ValueError(f"Got {len(names)} names for {k} CV components.")
    if (hill_time is None) != (hill_height is None):
        raise ValueError("Give both hill_time (ps) and hill_height (kJ/mol), or neither.")
    hills = hill_time is not None
    n = k + hills
    fig, axs = new_axes(ax, n=n, sharex=True, figsize=(6.4, 2.2 + 1.6 * n))
    walkers = cv.shape[1]
    for c, a in enumerate(axs[:k]):
        for w in range(walkers):
            a.plot(t, cv[:, w, c], lw=0.8, color=f"C{w % 10}",
                   label=f"walker {w}" if walkers > 1 else names[c])
        a.set_ylabel(names[c])
        finish(a)
    if hills:
        ht = time_scale(hill_time, tu)[0]
        hh = np.asarray(hill_height, dtype=np.float64)
        if hh.shape[0] != len(ht):
            raise ValueError(f"hill_time has {len(ht)} entries but hill_height has {hh.shape[0]}.")
        axs[-1].plot(ht, hh, lw=0.8)
        axs[-1].set_ylabel(axis_label("hill height", "kJ/mol"))
        axs[-1].set_ylim(bottom=0)
        finish(axs[-1])
    for a in axs[:-1]:
        a.tick_params(labelbottom=False)
    axs[-1].set_xlabel(axis_label("time", tu))
    if len(t) > 1:
        axs[-1].set_xlim(t[0], t[-1])
    return fig


def delta_f_convergence(time, delta_f, error=None, exact=None, units="kJ/mol", temperature=300.0,
                        ax=None, time_unit="auto", label="ΔF"):
    """A free energy difference against simulated time, with its error and the exact value.

    Parameters
    ----------
    time : array_like (points,)
        Simulated time (ps) at which each estimate was made.
    delta_f : array_like (points,)
        Estimates, kJ/mol.
    error : array_like (points,), optional
        Standard errors, kJ/mol; drawn as a +/- band (NaN leaves a gap).
    exact : float, optional
        Reference value, kJ/mol; drawn as a dashed line with a grey +/- 0.5 kT band.
    units : {"kJ/mol", "kT"}
        Energy unit of the plot.
    temperature : float
        K; sets kT for ``units="kT"`` and the band around ``exact``.
    ax : Axes, optional
    time_unit : {"auto", "ps", "ns"}
        Unit of the time axis ("auto": ns from 1000 ps on).
    label : str
        Name of the quantity on the y axis, e.g. "F(B) − F(A)".

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt, cvlearn as cl
    >>> fig = cl.plot.delta_f_convergence([100, 200, 400, 800], [3.1, 3.6, 3.9, 3.95], error=[0.5, 0.3, 0.2, 0.1],
    ...                                   exact=3.92, label="F(right) − F(left)")
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('simulated time (ps)', 'F(right) − F(left) (kJ/mol)')
    >>> plt.close(fig)
    """
    t, tu = time_scale(time, time_unit)
    d = np.asarray(delta_f, dtype=np.float64).reshape(-1)
    if t.shape != d.shape:
        raise ValueError(f"time has {t.size} points but delta_f has {d.size}.")
    scale, unit = energy_scale(units, temperature)
    fig, (ax,) = new_axes(ax)
    if exact is not None:
        half = 0.5 * _kT(temperature) / scale
        e = float(exact) / scale
        ax.axhspan(e - half, e + half, color="0.85", lw=0, label="exact ± 0.5 kT")
        ax.axhline(e, color="k", ls="--", lw=1.0, label="exact")
    line, = ax.plot(t, d / scale, lw=LINEWIDTH, marker="o" if len(t) <= 30 else None, ms=3,
                    label="estimate")
    if error is not None:
        err = np.asarray(error, dtype=np.float64).reshape(-1) / scale
        if err.shape != d.shape:
            raise ValueError(f"error has {err.size} points but delta_f has {d.size}.")
        ax.fill_between(t, d / scale - err, d / scale + err, color=line.get_color(),
                        alpha=BAND_ALPHA, lw=0, label="± error")
    ax.set_xlabel(axis_label("simulated time", tu))
    ax.set_ylabel(axis_label(label, unit))
    if exact is not None or error is not None:
        ax.legend(frameon=False)
    finish(ax)
    return fig


def loss(history, ax=None):
    """Training curves: one line per entry of ``history`` against the epoch.

    Parameters
    ----------
    history : dict of str -> sequence of float
        E.g. ``{"train": [...], "valid": [...]}``, one value per epoch (NaN/None for missing).
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        The y axis is logarithmic when every finite loss is positive.

    Examples
    --------
    >>> import matplotlib.pyplot as plt, cvlearn as cl
    >>> fig = cl.plot.loss({"train": [1.0, 0.5, 0.3], "valid": [1.1, 0.6, 0.4]})   # e.g. learner.history_
    >>> fig.axes[0].get_yscale(), [line.get_label() for line in fig.axes[0].lines]
    ('log', ['train', 'valid'])
    >>> plt.close(fig)
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError("history must be a non-empty dict like {'train': [...], 'valid': [...]}; "
                         f"got {type(history).__name__}.")
    curves = {}
    for name, values in history.items():
        v = np.array([np.nan if x is None else x for x in values], dtype=np.float64).reshape(-1)
        if v.size:
            curves[str(name)] = v
    if not curves:
        raise ValueError("history has no loss values.")
    fig, (ax,) = new_axes(ax)
    for name, v in curves.items():
        ax.plot(np.arange(1, v.size + 1), v, lw=LINEWIDTH, label=name)
    finite = np.concatenate([v[np.isfinite(v)] for v in curves.values()])
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if len(curves) > 1:
        ax.legend(frameon=False)
    finish(ax)
    return fig
