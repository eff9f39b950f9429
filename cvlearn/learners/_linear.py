"""Shared machinery of the linear learners (PCA, TICA): input checks, moments, transform, to_module."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._validation import as_trajectory_list, check_lagtime, check_weights, is_single_table, is_stream
from ..exceptions import NotFittedError
from ._module import CollectiveVariable, LinearCV
from ._moments import Moments

__all__ = ["LinearLearner"]


def _stream_weights(stream, weights, logweights):
    """Per-file weight arrays for a stream (None: unweighted); their lengths are checked while reading."""
    given = weights if logweights is None else logweights
    if given is None:
        return None
    n, name = len(stream.files), "weights" if logweights is None else "logweights"
    if n == 1 and not isinstance(given, (list, tuple)):
        given = [given]
    if not isinstance(given, (list, tuple)) or len(given) != n:
        raise ValueError(f"With a FeatureStream of {n} file(s), give {name} as a list of {n} 1-D arrays, one per "
                         f"file in stream.files, each with one entry per frame read (after stride={stream.stride}).")
    return check_weights(weights, [np.size(w) for w in given], logweights=logweights)


class LinearLearner(TransformerMixin, BaseEstimator):
    """Base of estimators whose CV is s = (x - mean_) @ eigenvectors_ (features x components)."""

    _prefix = "cv"

    def _check_stream_features(self, stream, n_features):
        if n_features is not None and stream.n_features != n_features:
            raise ValueError(f"The stream has {stream.n_features} features, but {type(self).__name__} is expecting "
                             f"{n_features} features as input (the number it was fitted with).")

    def _moments(self, X, weights, logweights, lagtime=None, n_features=None):
        """Moments of the frames (with ``lagtime``: of the pairs) of arrays or a FeatureStream.

        Every trajectory needs at least 2 frames and the longest more than ``lagtime``.
        """
        owner = type(self).__name__
        if is_stream(X):
            return self._stream_moments(X, weights, logweights, lagtime, n_features)
        arrays = as_trajectory_list(X, min_frames=2, n_features=n_features, owner=owner)
        weights = check_weights(weights, arrays, logweights=logweights)
        if lagtime is not None:
            lagtime = check_lagtime(lagtime, arrays, owner)
        mom = Moments(arrays[0].shape[1], lagtime)
        for x, w in zip(arrays, weights):
            mom.add(x, w)
        return mom

    def _stream_moments(self, stream, weights, logweights, lagtime, n_features):
        """One pass over a FeatureStream, file by file, chunk by chunk.

        With a lag, each block carries the last ``lagtime`` frames read before it from the same
        file, so each pair (t, t + lag) lies in exactly one block (the one whose new frames hold
        t + lag) and Moments.add counts it once; no pair spans two files. Moments shifts the data by
        the mean of the first block rather than of a whole trajectory: any fixed shift near the data
        keeps the sums precise. Lengths are known only after reading, so too-short files are
        reported after the pass.
        """
        owner = type(self).__name__
        self._check_stream_features(stream, n_features)
        if lagtime is not None:
            lagtime = check_lagtime(lagtime, None, owner)
        weights = _stream_weights(stream, weights, logweights)
        name = "weights" if logweights is None else "logweights"
        overlap = lagtime or 0
        mom = Moments(stream.n_features, lagtime)
        lengths = []
        for i, blocks in enumerate(stream.blocks(overlap)):
            done = 0  # frames of file i read so far
            for block in blocks:
                start = done - min(overlap, done)  # frame index (in the file) of the block's first row
                done = start + len(block)
                if weights is not None and done > len(weights[i]):
                    raise ValueError(f"{name}[{i}] has {len(weights[i])} entries but {stream.files[i]!r} has more "
                                     f"frames (after stride={stream.stride}); give one weight per frame read.")
                mom.add(block, np.ones(len(block)) if weights is None else weights[i][start:done])
            if weights is not None and done != len(weights[i]):
                raise ValueError(f"{name}[{i}] has {len(weights[i])} entries for {stream.files[i]!r}, which has "
                                 f"{done} frames (after stride={stream.stride}); give one weight per frame read.")
            lengths.append(done)
        for path, n in zip(stream.files, lengths):
            if n < 2:
                raise ValueError(f"{path!r} has {n} frame(s) (n_samples={n}) after stride={stream.stride}; at least "
                                 "2 are needed.")
        if lagtime is not None:
            check_lagtime(lagtime, lengths, owner)
        return mom

    @staticmethod
    def _check_variance(mean, variance):
        scale = np.maximum(np.abs(mean), np.sqrt(np.max(variance)))
        const = np.nonzero(variance <= (1e-12 * np.maximum(scale, 1e-300)) ** 2)[0]
        if len(const):
            raise ValueError(
                f"Feature(s) {const[:20].tolist()}{'...' if len(const) > 20 else ''} are constant over all "
                "frames (zero variance), so they carry no information and make the covariance singular. "
                "Remove them (e.g. X[:, X.std(0) > 0]) or featurize differently."
            )

    def _check_fitted(self):
        if not hasattr(self, "eigenvectors_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X) first.")

    def transform(self, X):
        """Project frames onto the components.

        Parameters
        ----------
        X : array (frames x features), list of arrays, cvlearn.Trajectory, or FeatureStream

        Returns
        -------
        ndarray (frames x n_components), or a list of them for a list/trajectory input, or for a
        FeatureStream one per file (read chunk by chunk; only the projections are kept).
        """
        self._check_fitted()
        if is_stream(X):
            self._check_stream_features(X, self.n_features_in_)
            empty = np.zeros((0, self.eigenvectors_.shape[1]))
            return [np.concatenate([empty] + [(x - self.mean_) @ self.eigenvectors_ for x in chunks]) for chunks in X]
        arrays = as_trajectory_list(X, n_features=self.n_features_in_, owner=type(self).__name__)
        out = [(x - self.mean_) @ self.eigenvectors_ for x in arrays]
        return out[0] if is_single_table(X) else out

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def to_module(self, featurizer=None):
        """The fitted projection as a torch module (:class:`CollectiveVariable`).

        With a ``featurizer`` (positions -> features), the module maps positions (walkers,
        particles, dims) to CV values and is differentiable, ready for a bias. Without, it maps
        features to CV values.
        """
        self._check_fitted()
        if featurizer is not None and getattr(featurizer, "n_features", self.n_features_in_) != self.n_features_in_:
            raise ValueError(f"The featurizer gives {featurizer.n_features} features but {type(self).__name__} "
                             f"was fitted on {self.n_features_in_}.")
        names = [f"{self._prefix}{i + 1}" for i in range(self.eigenvectors_.shape[1])]
        return CollectiveVariable(LinearCV(self.mean_, self.eigenvectors_), featurizer, names)
