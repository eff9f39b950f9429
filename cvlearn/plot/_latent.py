"""An autoencoder's latent space coloured by a chosen variable, decoded paths drawn on it, and energy
along a path."""

import numpy as np

from ._style import LINEWIDTH, axis_label, finish, new_axes

__all__ = ["latent_space", "path_energy"]


def latent_space(z, color=None, paths=(), color_label=None, labels=None, ax=None, cmap="twilight"):
    """Scatter of latent points (2-D; 1-D is drawn against frame index) coloured by a variable.

    Parameters
    ----------
    z : array-like (n, 1 or 2)
        Latent points of frames, e.g. ``model.transform(X)``.
    color : array-like (n,), optional
        A variable per frame (e.g. phi in radians); the default cyclic colormap suits angles.
    paths : sequence of LatentPath or arrays (m, 1 or 2)
        Paths drawn over the points (``cl.latent_path``), with their end points marked.
    color_label : str, optional
        Colorbar label, with units.
    labels : sequence of str, optional
        One legend entry per path.
    ax : Axes, optional
    cmap : str

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> from cvlearn import plot
    >>> z = np.random.default_rng(0).normal(size=(200, 2))
    >>> fig = plot.latent_space(z, color=z[:, 0], paths=[np.array([[-1.0, 0], [1, 0]])], color_label="x")
    >>> len(fig.axes)  # the scatter and its colorbar
    2
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] not in (1, 2):
        raise ValueError(f"latent_space draws 1-D or 2-D latent spaces: z must be (n, 1) or (n, 2); got {z.shape}.")
    fig, (ax,) = new_axes(ax)
    xy = np.column_stack([np.arange(len(z)), z[:, 0]]) if z.shape[1] == 1 else z
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=color, s=4, cmap=cmap if color is not None else None, alpha=0.7,
                    linewidths=0)
    if color is not None:
        fig.colorbar(sc, ax=ax, label=color_label or "")
    for k, path in enumerate(paths):
        p = np.asarray(getattr(path, "z", path), dtype=np.float64)
        if z.shape[1] == 1:
            p = np.column_stack([np.linspace(0, len(z) - 1, len(p)), p[:, 0]])
        label = labels[k] if labels is not None else None
        (line,) = ax.plot(p[:, 0], p[:, 1], "-", lw=2 * LINEWIDTH, label=label)
        ax.plot(p[[0, -1], 0], p[[0, -1], 1], "o", color=line.get_color(), ms=7, mec="k")
    ax.set_xlabel("frame" if z.shape[1] == 1 else "z1")
    ax.set_ylabel("z1" if z.shape[1] == 1 else "z2")
    if labels is not None:
        ax.legend(frameon=False)
    finish(ax)
    return fig


def path_energy(energies, labels=None, reference=None, ax=None, energy_label="potential energy"):
    """Energy (kJ/mol) along one or more decoded paths, against the fraction of the path.

    Parameters
    ----------
    energies : array-like (m,) or sequence of them
        Energies of the decoded structures of each path, kJ/mol
        (``cl.generative.structure_quality(path.structures, system=...).energy``).
    labels : sequence of str, optional
    reference : float, optional
        A horizontal line, e.g. the mean energy of MD frames (kJ/mol).
    ax : Axes, optional
    energy_label : str

    Returns
    -------
    Figure

    Examples
    --------
    >>> from cvlearn import plot
    >>> fig = plot.path_energy([[5.0, 40.0, 8.0], [5.0, 12.0, 8.0]], labels=["plain", "physics"], reference=0.0)
    >>> len(fig.axes[0].lines)
    3
    """
    series = [np.asarray(energies, dtype=np.float64)] if np.ndim(energies[0]) == 0 else \
        [np.asarray(e, dtype=np.float64) for e in energies]
    fig, (ax,) = new_axes(ax)
    for k, e in enumerate(series):
        ax.plot(np.linspace(0.0, 1.0, len(e)), e, "o-", lw=LINEWIDTH, ms=3,
                label=labels[k] if labels is not None else None)
    if reference is not None:
        ax.axhline(reference, color="0.5", ls="--", lw=1)
    ax.set_xlabel("fraction of the path")
    ax.set_ylabel(axis_label(energy_label, "kJ/mol"))
    if labels is not None:
        ax.legend(frameon=False)
    finish(ax)
    return fig
