"""Paths in an autoencoder's latent space between two conformations or basins, decoded to structures."""

from dataclasses import dataclass

import numpy as np

from .._decoding import check_latent, features_to_trajectory
from .._validation import as_trajectory_list

__all__ = ["LatentPath", "latent_path"]


@dataclass
class LatentPath:
    """A straight path in latent space and what it decodes to.

    Attributes
    ----------
    z : ndarray, shape (n, n_components)
        Latent points, from the start to the end.
    features : ndarray, shape (n, n_features)
        Decoded features (nm for Cartesian features).
    structures : mdtraj.Trajectory or None
        Decoded structures (when a topology was given).

    Examples
    --------
    >>> import numpy as np
    >>> path = LatentPath(z=np.linspace(0, 1, 5)[:, None], features=np.zeros((5, 6)))
    >>> len(path), path.structures is None
    (5, True)
    """

    z: np.ndarray
    features: np.ndarray
    structures: object = None

    def __len__(self):
        return len(self.z)


def _endpoint(model, x, latent, name):
    """Latent point of one conformation, or the mean latent point of a basin's frames."""
    owner = "latent_path"
    if latent:
        z = check_latent(x, model.n_components, owner)
        if len(z) != 1:
            raise ValueError(f"{owner}: {name} must be one latent point of shape ({model.n_components},) when "
                             f"latent=True; got shape {np.shape(x)}.")
        return z[0]
    if hasattr(x, "xyz") and not hasattr(x, "ndim"):
        raise TypeError(f"{owner}: {name} is an mdtraj Trajectory; pass its features instead, e.g. "
                        f"featurizer.transform(traj), with the featurizer the model was trained on.")
    frames = np.asarray(x, dtype=np.float64)
    if frames.ndim == 1:
        frames = frames[None, :]
    (frames,) = as_trajectory_list(frames, n_features=model.n_features_in_, owner=owner)
    return model.transform(frames).mean(0)


def latent_path(model, start, end, n=20, topology=None, atoms=None, latent=False):
    """Interpolate in latent space between two conformations (or basins) and decode the path.

    Parameters
    ----------
    model : AutoEncoder or TimeLaggedAutoEncoder
        A fitted autoencoder (any features; structures need Cartesian ones, see
        :meth:`~cvlearn.AutoEncoder.generate`).
    start, end : array-like
        Features of one conformation (n_features,), or of a basin's frames (m, n_features), whose
        mean latent point is used; with ``latent=True``, latent points (n_components,).
    n : int
        Points on the path, end points included (at least 2).
    topology, atoms
        Also decode to structures (``model.generate``): the system's topology and, if the features
        held only some atoms, their indices.
    latent : bool
        ``start`` and ``end`` are latent points.

    Returns
    -------
    LatentPath

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> rng = np.random.default_rng(0)
    >>> t = rng.uniform(-1, 1, (400, 1))
    >>> X = np.hstack([t, t**2, 0.5 * t]) + 0.01 * rng.normal(size=(400, 3))
    >>> ae = cl.AutoEncoder(layers=[16], n_components=1, max_epochs=200, seed=0).fit(X)
    >>> path = cl.latent_path(ae, X[t[:, 0] < -0.8], X[t[:, 0] > 0.8], n=5)
    >>> path.z.shape, path.features.shape
    ((5, 1), (5, 3))
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"latent_path: n must be an int >= 2 (points on the path, end points included); got {n!r}.")
    if not hasattr(model, "decode"):
        raise TypeError(f"latent_path needs a fitted AutoEncoder or TimeLaggedAutoEncoder (a model with a decoder); "
                        f"got {type(model).__name__}.")
    model._check_fitted()
    a, b = _endpoint(model, start, latent, "start"), _endpoint(model, end, latent, "end")
    s = np.linspace(0.0, 1.0, n)[:, None]
    z = (1 - s) * a + s * b
    features = model.decode(z)
    structures = None
    if topology is not None:
        structures = features_to_trajectory(features, topology, atoms, "latent_path")
    return LatentPath(z, features, structures)
