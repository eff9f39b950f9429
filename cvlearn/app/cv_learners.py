"""The CV learners the commands offer, by name, and the one factory that builds them.

Each command passes the settings it was measured with (``quickstart`` a small network on Muller-Brown,
``iterate`` the molecule protocol's); the factory knows which learner takes which setting.
"""

from ..learners import PCA, TICA, AutoEncoder, DeepTICA, TimeLaggedAutoEncoder

__all__ = ["METHODS", "NEURAL_METHODS", "make_learner"]

#: The learners of ``--method`` (every command offers the same ones), by name.
METHODS = ("tica", "pca", "deeptica", "tae", "autoencoder")
#: Those that train a network (``layers``, ``max_epochs``, ``patience`` and ``seed`` apply to them only).
NEURAL_METHODS = ("deeptica", "tae", "autoencoder")


def make_learner(method, *, lagtime=10, n_components=1, seed=0, layers=(32, 16), max_epochs=200, patience=30,
                 scaling="kinetic_map"):
    """A new, unfitted CV learner ``method`` (one of :data:`METHODS`).

    Parameters
    ----------
    method : {"tica", "pca", "deeptica", "tae", "autoencoder"}
        TICA, PCA, Deep-TICA, a time-lagged autoencoder or an autoencoder.
    lagtime : int
        Lag time in frames (TICA, Deep-TICA, time-lagged autoencoder).
    n_components : int
        Dimension of the CV.
    seed : int
        Seed of a network's initial weights and data split.
    layers : sequence of int
        Hidden layer widths of a network (of the encoder, for the autoencoders).
    max_epochs, patience : int
        A network's training: at most ``max_epochs`` epochs, stopped after ``patience`` epochs without
        a better validation loss.
    scaling : {"kinetic_map", None}
        TICA's scaling of its components (None: unit variance).

    Returns
    -------
    estimator
        With the scikit-learn contract (``fit``, ``transform``, ``to_module``).

    Examples
    --------
    >>> from cvlearn.app import make_learner
    >>> make_learner("tica", lagtime=5)
    TICA(lagtime=5, n_components=1)
    >>> make_learner("deeptica", layers=[8], max_epochs=60, seed=1).get_params()["layers"]
    [8]
    >>> make_learner("vae")
    Traceback (most recent call last):
        ...
    ValueError: method must be one of ('tica', 'pca', 'deeptica', 'tae', 'autoencoder'); got 'vae'.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if method == "tica":
        return TICA(lagtime=lagtime, n_components=n_components, scaling=scaling)
    if method == "pca":
        return PCA(n_components=n_components)
    network = {"layers": layers, "n_components": n_components, "max_epochs": max_epochs, "patience": patience,
               "seed": seed}
    if method == "deeptica":
        return DeepTICA(lagtime=lagtime, **network)
    if method == "tae":
        return TimeLaggedAutoEncoder(lagtime=lagtime, **network)
    return AutoEncoder(**network)
