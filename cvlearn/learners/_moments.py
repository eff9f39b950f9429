"""Streaming (weighted) first and second moments, instantaneous and time-lagged, in float64.

Sums are accumulated around a fixed shift (the mean of the first data seen) so that covariances
of features with large means do not lose precision, and trajectory by trajectory so that data
never need to sit in memory at once and lagged pairs never cross from one trajectory to the next.

Each trajectory is processed in blocks of about ``_CHUNK_BYTES`` (4 MiB), so the temporaries
(shifted, weighted copies) take O(block) memory whatever the trajectory length. Smaller blocks
stay in cache and are a little faster on an idle machine, but mean more BLAS calls, and each
multi-threaded BLAS call can stall for a scheduler time slice when the cores are oversubscribed.
Second moments are accumulated as symmetric rank-k updates ``Y' Y`` (Y scaled by the square roots
of the weights), which BLAS computes in about half the time of a general product.
"""

import numpy as np

__all__ = ["Moments"]

_CHUNK_BYTES = 4 << 20  # per block of frames (see the module docstring)


def _block_frames(n_features):
    return max(256, _CHUNK_BYTES // (8 * max(n_features, 1)))


class Moments:
    """Accumulate moments of frames x_t (and, with a lag, of pairs (x_t, x_{t+lag})).

    Each pair (or frame) is weighted by the weight of its first frame.

    Without a lag: ``s0`` = sum w y, ``c00`` = sum w y y' with y = x - shift.
    With a lag, only what the reversible (symmetrized) estimate needs is kept, with y0 = x_t - shift
    and yt = x_{t+lag} - shift: ``s0`` = sum w y0, ``st`` = sum w yt,
    ``c_sym`` = sum w (y0 y0' + yt yt') and ``c_pair`` = sum w (y0 + yt)(y0 + yt)', so that
    ``c_pair - c_sym`` = sum w (y0 yt' + yt y0'). ``c_sym`` is one weighted sum over the frames of
    each trajectory (frame s weighted by w_s as a first frame plus w_{s-lag} as a second frame), so
    the lagged case costs two rank-k updates per frame instead of three general products.
    """

    def __init__(self, n_features, lagtime=None):
        self.n_features, self.lagtime = n_features, lagtime
        self.shift = None
        self.w = self.w2 = 0.0
        self.n_pairs = 0
        f = n_features
        self.s0 = np.zeros(f)
        if lagtime is None:
            self.c00 = np.zeros((f, f))
        else:
            self.st, self.c_sym, self.c_pair = np.zeros(f), np.zeros((f, f)), np.zeros((f, f))

    def add(self, X, weights):
        """Add one trajectory ``X`` (frames x features) with per-frame ``weights`` (non-negative)."""
        if self.shift is None:
            self.shift = X.mean(axis=0)
        lag = self.lagtime
        n_frames, chunk = len(X), _block_frames(X.shape[1])
        if lag is None:
            w = np.asarray(weights, dtype=np.float64)
            sw = np.sqrt(w)
            for a in range(0, n_frames, chunk):
                b = min(a + chunk, n_frames)
                y = X[a:b] - self.shift
                self.s0 += w[a:b] @ y
                y *= sw[a:b, None]
                self.c00 += y.T @ y
        else:
            n = n_frames - lag  # number of pairs
            if n <= 0:
                return  # too short to contribute a pair; the caller checked that some trajectory is long enough
            w = np.asarray(weights[:n], dtype=np.float64)
            u = np.zeros(n_frames)  # weight of each frame in c_sym: as a first frame plus as a second frame
            u[:n] = w
            u[lag:] += w
            su, sw = np.sqrt(u), np.sqrt(w)
            for a in range(0, n_frames, chunk):
                b = min(a + chunk, n_frames)
                block = X[a:min(b + lag, n_frames)] - self.shift  # frames a..b plus the lagged partners
                y = block[:b - a] * su[a:b, None]
                self.c_sym += y.T @ y
                p = min(b, n) - a  # pairs starting in this block
                if p > 0:
                    y0, yt, wp = block[:p], block[lag:lag + p], w[a:a + p]
                    self.s0 += wp @ y0
                    self.st += wp @ yt
                    s = y0 + yt
                    s *= sw[a:a + p, None]
                    self.c_pair += s.T @ s
        self.w += w.sum()
        self.w2 += (w**2).sum()
        self.n_pairs += len(w)

    def scale(self, factor):
        """Multiply every weight seen so far by ``factor`` (> 0): how a new largest log-weight rebases them."""
        for name in ("s0", "st", "c00", "c_sym", "c_pair"):
            if hasattr(self, name):
                getattr(self, name)[...] *= factor
        self.w *= factor
        self.w2 *= factor**2

    def mean(self):
        """Weighted mean of the frames (first frames of pairs)."""
        return self.shift + self.s0 / self.w

    def covariance(self, unbiased=True):
        """Instantaneous covariance; ``unbiased`` uses the reliability-weights correction W - sum w^2 / W."""
        if self.lagtime is not None:
            raise ValueError("covariance() needs moments accumulated without a lag; use reversible().")
        m = self.s0 / self.w
        cov = self.c00 / self.w - np.outer(m, m)
        if unbiased:
            cov *= self.w / (self.w - self.w2 / self.w)
        return cov

    def reversible(self):
        """Symmetrized (reversible) estimate: mean, C00, C0t about the mean of x_t and x_{t+lag}.

        mean = (E[x_0] + E[x_t]) / 2, C00 = (E[x0 x0'] + E[xt xt']) / 2 - mean mean',
        C0t = (E[x0 xt'] + E[xt x0']) / 2 - mean mean'; the estimator of Perez-Hernandez et al.
        (JCP 139, 015102, 2013) and deeptime's TICA.
        """
        W = self.w
        m = 0.5 * (self.s0 + self.st) / W
        mm = np.outer(m, m)
        c00 = (0.5 / W) * self.c_sym - mm
        c0t = (0.5 / W) * (self.c_pair - self.c_sym) - mm
        return self.shift + m, c00, c0t
