"""Time-lagged independent component analysis: the linear combination of features that decorrelates slowest."""

import numpy as np

from .._validation import check_lagtime, check_positive
from ._linear import LinearLearner

__all__ = ["TICA"]

_SCALINGS = (None, "kinetic_map", "commute_map")


def _canonical_signs(v):
    """Flip columns so that each column's largest-magnitude entry is positive."""
    return v * np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])])


def _whitening(c00, epsilon):
    """L with L' C00 L = 1 on the numerical range of C00 (eigenvalues with |s| <= epsilon dropped)."""
    s, v = np.linalg.eigh(c00)
    order = np.argsort(np.abs(s))[::-1]
    s, v = s[order], v[:, order]
    if s.min() < 0:  # C00 is PSD: negative eigenvalues are round-off, drop them and their partners
        epsilon = max(epsilon, -s.min() + 1e-16)
    keep = np.abs(s) > epsilon
    if not keep.any():
        raise ValueError(f"All eigenvalues of the feature covariance are below epsilon={epsilon:g}: the features "
                         "are (nearly) constant. Scale the features or lower epsilon.")
    return _canonical_signs(v[:, keep]) / np.sqrt(s[keep])


def _vamp2(u, c00, c0t, ctt, epsilon):
    """VAMP-2 score of projection ``u`` on covariances (Wu & Noe, J Nonlinear Sci 30, 23 (2020), eq. 33), +1."""
    a = _inv_sqrt(u.T @ c00 @ u, epsilon)
    c = _inv_sqrt(u.T @ ctt @ u, epsilon)
    return 1.0 + float(np.linalg.norm(a @ (u.T @ c0t @ u) @ c, "fro") ** 2)


def _inv_sqrt(m, epsilon):
    s, v = np.linalg.eigh(m)
    keep = s > epsilon
    return (v[:, keep] / np.sqrt(s[keep])) @ v[:, keep].T


class TICA(LinearLearner):
    """Time-lagged independent component analysis (Molgedey & Schuster 1994; Perez-Hernandez et al. 2013).

    Finds the linear combinations of features with the largest autocorrelation at ``lagtime``:
    the slowest linear CVs. Covariances are estimated reversibly (symmetrized, means of x_t and
    x_{t+lag} pooled), as deeptime does, by streaming over trajectories; lagged pairs never span
    two trajectories. Near-singular covariances are regularized by dropping directions whose
    variance is below ``epsilon`` before whitening.

    Parameters
    ----------
    lagtime : int
        Lag in frames (multiply by the frame spacing for ps).
    n_components : int or None
        Number of components kept (None: all that survive the epsilon cut).
    epsilon : float
        Eigenvalue cutoff of the instantaneous covariance (feature units squared).
    scaling : {"kinetic_map", "commute_map", None}
        Kinetic map: components scaled by their eigenvalues, so Euclidean distance in CV space
        approximates kinetic distance (Noe & Clementi 2015). Commute map: scaled by sqrt of half the
        (regularized) timescales (Noe, Banisch & Clementi 2016). None: unit-variance components.

    Attributes
    ----------
    eigenvalues_ : ndarray (n_components,)
        Autocorrelations at the lag, by decreasing magnitude.
    timescales_ : ndarray (n_components,)
        Implied timescales -lagtime / ln|eigenvalue|, in frames.
    eigenvectors_ : ndarray (n_features, n_components)
        The (scaled) projection used by ``transform``; unit-variance columns before scaling.
    mean_ : ndarray (n_features,)
    cov_00_, cov_0t_ : ndarray (n_features, n_features)
        Reversible instantaneous and time-lagged covariances.
    vamp2_score_ : float
        1 + sum of squared eigenvalues of the kept components on the training data.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> rng = np.random.default_rng(0)
    >>> slow = np.zeros(5000)
    >>> for t in range(1, 5000):
    ...     slow[t] = 0.99 * slow[t - 1] + rng.normal()
    >>> X = np.c_[slow, 10 * rng.normal(size=5000)]
    >>> tica = cl.TICA(lagtime=1, n_components=1).fit(X)
    >>> bool(abs(tica.eigenvalues_[0] - 0.99) < 0.01)
    True
    """

    _prefix = "tic"

    def __init__(self, lagtime=1, n_components=None, epsilon=1e-6, scaling="kinetic_map"):
        self.lagtime = lagtime
        self.n_components = n_components
        self.epsilon = epsilon
        self.scaling = scaling

    def _pair_lag(self):
        return check_lagtime(self.lagtime, None, "TICA")

    def _not_enough(self, mom):
        if mom.w <= 0:
            return ("All time-lagged pairs have zero weight (or there are none: no trajectory longer than "
                    f"lagtime={self.lagtime} frames); cannot estimate covariances.")
        return None

    def _new_moments(self, X, weights, n_features=None, logweights=None):
        mom = self._moments(X, weights, logweights, lagtime=self.lagtime, n_features=n_features)
        msg = self._not_enough(mom)
        if msg:
            raise ValueError(msg)
        return mom

    def _check_params(self):
        if self.scaling not in _SCALINGS:
            raise ValueError(f"scaling must be one of {_SCALINGS}; got {self.scaling!r}.")
        eps = check_positive(self.epsilon, "epsilon", "TICA", allow_zero=True)
        if self.n_components is not None:  # checked before a possibly long pass over a stream
            check_positive(self.n_components, "n_components", "TICA", integer=True)
        return eps

    def fit(self, X, y=None, weights=None, logweights=None):
        """Fit on frames ``X``: in memory (array, list of arrays, Trajectory) or read chunk by chunk.

        Data read chunk by chunk: a FrameSource (FeatureStream, NpyFiles), memory-mapped arrays
        (``np.load(path, mmap_mode="r")``), or an iterable of trajectories, each an array or a
        list/iterator of chunks; it is read once, each chunk carrying the last ``lagtime`` frames
        before it from the same trajectory, and gives the in-memory result to round-off.

        ``weights`` per frame, or ``logweights`` (e.g. the bias in kT of biased frames), optional;
        a pair (x_t, x_{t+lag}) is weighted by the weight of x_t. With data read chunk by chunk,
        give one array per trajectory (one entry per frame read) and ``lagtime`` in frames after
        any stride. See also :meth:`partial_fit`.
        """
        self._check_params()
        self._forget_partial()
        self._solve(self._keep(self._new_moments(X, weights, logweights=logweights), logweights))
        return self

    def _solve(self, mom):
        eps = self._check_params()
        mean, c00, c0t = mom.reversible()
        self._check_variance(mean, np.diag(c00))
        L = _whitening(c00, eps)
        lam, r = np.linalg.eigh(L.T @ c0t @ L)
        order = np.argsort(np.abs(lam))[::-1]
        lam, vecs = lam[order], _canonical_signs(L @ r[:, order])
        k = len(lam) if self.n_components is None else int(self.n_components)
        if k > len(lam):
            raise ValueError(f"n_components={k} exceeds the {len(lam)} independent directions left after the "
                             f"epsilon={eps:g} cut of {c00.shape[0]} features; lower n_components.")
        lam, vecs = lam[:k], vecs[:, :k]
        lag = self.lagtime
        with np.errstate(divide="ignore"):
            timescales = -lag / np.log(np.abs(lam))
        self.n_features_in_ = c00.shape[0]
        self.mean_, self.cov_00_, self.cov_0t_ = mean, c00, c0t
        self.eigenvalues_, self.timescales_ = lam, timescales
        self.singular_vectors_ = vecs  # unit-variance, unscaled
        self.vamp2_score_ = 1.0 + float(np.sum(lam**2))
        if self.scaling == "kinetic_map":
            vecs = vecs * lam[None, :]
        elif self.scaling == "commute_map":
            ts = 1.0 - lag / np.log(np.abs(lam))  # deeptime's convention, damped below the lag
            reg = 0.5 * ts * np.maximum(np.tanh(np.pi * ((ts - lag) / lag) + 1), 0)
            vecs = vecs * np.sqrt(reg / 2)[None, :]
        self.eigenvectors_ = vecs

    def score(self, X, y=None, weights=None):
        """VAMP-2 score (1 + sum of squared canonical correlations) of the fitted components on ``X``.

        Use held-out trajectories to compare lag times, features or numbers of components: the
        higher, the better the components capture the slow dynamics. ``X`` may be read chunk by chunk
        (any input ``fit`` takes).
        """
        self._check_fitted()
        _, c00, c0t = self._new_moments(X, weights, n_features=self.n_features_in_).reversible()
        return _vamp2(self.singular_vectors_, c00, c0t, c00, self.epsilon)
