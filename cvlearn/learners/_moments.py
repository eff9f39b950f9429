"""Streaming (weighted) first and second moments, instantaneous and time-lagged, in float64.

Sums are accumulated around a fixed shift (the mean of the first data seen) so that covariances
of features with large means do not lose precision, and trajectory by trajectory so that data
never need to sit in memory at once and lagged pairs never cross from one trajectory to the next.
"""

import numpy as np

__all__ = ["Moments"]


class Moments:
    """Accumulate moments of frames x_t (and, with a lag, of pairs (x_t, x_{t+lag})).

    Each pair (or frame) is weighted by the weight of its first frame.
    """

    def __init__(self, n_features, lagtime=None):
        self.n_features, self.lagtime = n_features, lagtime
        self.shift = None
        self.w = self.w2 = 0.0
        self.n_pairs = 0
        f = n_features
        self.s0, self.c00 = np.zeros(f), np.zeros((f, f))
        if lagtime is not None:
            self.st, self.c0t, self.ctt = np.zeros(f), np.zeros((f, f)), np.zeros((f, f))

    def add(self, X, weights):
        """Add one trajectory ``X`` (frames x features) with per-frame ``weights``."""
        if self.shift is None:
            self.shift = X.mean(axis=0)
        lag = self.lagtime
        if lag is None:
            x0, w = X - self.shift, weights
        else:
            if len(X) <= lag:
                return  # too short to contribute a pair; the caller checked that some trajectory is long enough
            x0, xt, w = X[:-lag] - self.shift, X[lag:] - self.shift, weights[:-lag]
            wxt = xt * w[:, None]
            self.st += wxt.sum(0)
            self.c0t += (x0 * w[:, None]).T @ xt
            self.ctt += wxt.T @ xt
        wx0 = x0 * w[:, None]
        self.s0 += wx0.sum(0)
        self.c00 += wx0.T @ x0
        self.w += w.sum()
        self.w2 += (w**2).sum()
        self.n_pairs += len(w)

    def mean(self):
        """Weighted mean of the frames (first frames of pairs)."""
        return self.shift + self.s0 / self.w

    def covariance(self, unbiased=True):
        """Instantaneous covariance; ``unbiased`` uses the reliability-weights correction W - sum w^2 / W."""
        m = self.s0 / self.w
        cov = self.c00 / self.w - np.outer(m, m)
        if unbiased:
            cov *= self.w / (self.w - self.w2 / self.w)
        return cov

    def reversible(self):
        """Symmetrized (reversible) estimate: mean, C00, C0t about the mean of x_t and x_{t+lag}.

        mean = (E[x_0] + E[x_t]) / 2, C00 = (E[x0 x0'] + E[xt xt']) / 2 - ..., C0t symmetrized;
        the estimator of Perez-Hernandez et al. (JCP 139, 015102, 2013) and deeptime's TICA.
        """
        W = self.w
        m = 0.5 * (self.s0 + self.st) / W
        m0, mt = self.s0 / W, self.st / W
        cxx = self.c00 / W - np.outer(m0, m) - np.outer(m, m0) + np.outer(m, m)
        cyy = self.ctt / W - np.outer(mt, m) - np.outer(m, mt) + np.outer(m, m)
        cxy = self.c0t / W - np.outer(m0, m) - np.outer(m, mt) + np.outer(m, m)
        c00 = 0.5 * (cxx + cyy)
        c0t = 0.5 * (cxy + cxy.T)
        return self.shift + m, c00, c0t
