"""Principal component analysis: the variance-based baseline CV."""

import numpy as np

from .._validation import check_positive
from ..features import as_source
from ._linear import LinearLearner

__all__ = ["PCA"]


class PCA(LinearLearner):
    """Principal component analysis over one or many trajectories, with optional frame weights.

    The CV is the projection on the directions of largest variance. That is the right CV only when
    the slow process is also the largest motion, which is often not so (see :class:`TICA`).

    Parameters
    ----------
    n_components : int or None
        Number of components kept (None: all).
    whiten : bool
        Scale components to unit variance.

    Attributes
    ----------
    mean_ : ndarray (n_features,)
    components_ : ndarray (n_components, n_features)
        Principal axes (unit vectors, largest entry positive), by decreasing variance.
    explained_variance_ : ndarray (n_components,)
        Variances along them (unbiased, as scikit-learn), in feature units squared.
    explained_variance_ratio_ : ndarray (n_components,)
    eigenvectors_ : ndarray (n_features, n_components)
        The projection used by ``transform`` (components_.T, divided by the std when whitening).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> X = np.random.default_rng(0).normal(size=(1000, 3)) * [3.0, 1.0, 0.1]
    >>> pca = cl.PCA(n_components=1).fit(X)
    >>> np.abs(pca.components_.round(1)).tolist()
    [[1.0, 0.0, 0.0]]
    """

    _prefix = "pc"

    def __init__(self, n_components=None, whiten=False):
        self.n_components = n_components
        self.whiten = whiten

    def _n_kept(self, n_features):
        if self.n_components is None:
            return n_features
        k = check_positive(self.n_components, "n_components", "PCA", integer=True)
        if k > n_features:
            raise ValueError(f"n_components={k} exceeds the {n_features} features.")
        return k

    def _not_enough(self, mom):
        return None if mom.w**2 > mom.w2 * (1 + 1e-12) else "PCA needs at least two frames with positive weight."

    def fit(self, X, y=None, weights=None, logweights=None):
        """Fit on frames ``X``: in memory (array, list of arrays, Trajectory) or read chunk by chunk.

        Data read chunk by chunk (a FrameSource such as FeatureStream or NpyFiles, memory-mapped
        arrays, an iterable of trajectories each an array or a list/iterator of chunks) are read
        once. ``weights`` per frame, or ``logweights`` (e.g. the bias in kT of biased frames),
        optional; with data read chunk by chunk, one array per trajectory (one entry per frame
        read). See also :meth:`partial_fit`.
        """
        source = as_source(X)
        if source is not None and source.n_features is not None:  # checked before a possibly long pass
            self._n_kept(source.n_features)
        self._forget_partial()
        mom = self._moments(X, weights, logweights)
        msg = self._not_enough(mom)
        if msg:
            raise ValueError(msg)
        self._solve(self._keep(mom, logweights))
        return self

    def _solve(self, mom):
        nf = mom.n_features
        k = self._n_kept(nf)
        mean, cov = mom.mean(), mom.covariance(unbiased=True)
        self._check_variance(mean, np.diag(cov))
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals, evecs = np.maximum(evals[order], 0.0), evecs[:, order]
        evecs *= np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(nf)])
        self.n_features_in_ = nf
        self.mean_ = mean
        self.components_ = evecs[:, :k].T.copy()
        self.explained_variance_ = evals[:k].copy()
        self.explained_variance_ratio_ = evals[:k] / evals.sum()
        proj = self.components_.T.copy()
        if self.whiten:
            proj /= np.sqrt(np.maximum(self.explained_variance_, 1e-300))
        self.eigenvectors_ = proj
