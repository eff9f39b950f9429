"""Shared machinery of the linear learners (PCA, TICA): input checks, moments, transform, to_module."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._validation import as_trajectory_list, check_lagtime, check_weights, is_single_table
from ..exceptions import NotFittedError
from ..features import as_source, join_tail, only_in_chunks
from ._module import CollectiveVariable, LinearCV
from ._moments import Moments

__all__ = ["LinearLearner", "source_weights"]


def source_weights(source, weights, logweights):
    """Per-trajectory weight arrays for a FrameSource (None: unweighted); lengths are checked while reading."""
    given = weights if logweights is None else logweights
    if given is None:
        return None
    n, name = source.n_trajectories, "weights" if logweights is None else "logweights"
    if n == 1 and not isinstance(given, (list, tuple)):
        given = [given]
    if not isinstance(given, (list, tuple)) or (n is not None and len(given) != n):
        raise ValueError(f"With data of {n or 'several'} trajectories ({type(source).__name__}), give {name} as a list "
                         f"of {n or 'the same number of'} 1-D arrays, one per trajectory in order, each with one "
                         f"entry per frame read{source.frames_note}.")
    return check_weights(weights, [np.size(w) for w in given], logweights=logweights)


class LinearLearner(TransformerMixin, BaseEstimator):
    """Base of estimators whose CV is s = (x - mean_) @ eigenvectors_ (features x components).

    Subclasses define ``_pair_lag`` (the lag of the moments they need, or None), ``_not_enough``
    and ``_solve`` (moments -> fitted attributes); ``fit``, ``partial_fit`` and ``transform`` live here.
    """

    _prefix = "cv"

    def _pair_lag(self):
        return None

    def _not_enough(self, mom):
        """Why the moments cannot be solved yet (a message), or None."""
        raise NotImplementedError

    def _solve(self, mom):
        raise NotImplementedError

    def partial_fit(self, X, y=None, weights=None, logweights=None, continues=False):
        """Add frames to the fit, one trajectory or one chunk of a trajectory at a time (scikit-learn's partial_fit).

        Time-lagged pairs never span two calls unless ``continues=True``: then the first (or only)
        trajectory of ``X`` continues the last one of the previous partial_fit call, whose last
        ``lagtime`` frames (and weights) were kept, so chunks of one trajectory give the same fit
        as the whole trajectory, even chunks shorter than the lag. The fitted attributes are
        recomputed after each call from all frames so far, once there are enough (for TICA: one
        time-lagged pair with positive weight; for PCA: two frames). As in scikit-learn, ``fit``
        starts over and ``partial_fit`` after ``fit`` adds to the frames ``fit`` saw (as new
        trajectories: ``fit`` keeps no frames to continue).

        Parameters
        ----------
        X : array (frames x features) or list of arrays
            One trajectory (or chunk), or several independent ones.
        weights, logweights : array or list of arrays, optional
            Per frame of ``X``, as in ``fit``. Log-weights (e.g. bias / kT) may grow from call to
            call: the sums so far are rescaled whenever a larger one comes. Plain weights count
            as exp(log-weight).
        continues : bool
            True if ``X`` continues the trajectory of the previous call (no effect without a lag, as in PCA).

        Returns
        -------
        self
        """
        owner = type(self).__name__
        if only_in_chunks(X):
            raise TypeError(f"{owner}.partial_fit takes frames in memory (an array, or a list of arrays); give "
                            f"{type(X).__name__} to fit, which reads it chunk by chunk.")
        lag = self._pair_lag()
        mom = getattr(self, "_partial", None)
        if continues and getattr(self, "_tail", None) is None:
            raise ValueError(f"continues=True, but this {owner} has no earlier partial_fit call to continue (fit "
                             "keeps no frames of its last trajectory). Pass the first chunk of a trajectory with "
                             "continues=False.")
        arrays = as_trajectory_list(X, n_features=None if mom is None else mom.n_features, owner=owner)
        if mom is None:
            mom = self._keep(Moments(arrays[0].shape[1], lag))
        if weights is not None and logweights is not None:
            raise ValueError("Give either weights or logweights, not both.")
        empty = (np.zeros((0, mom.n_features)), np.zeros(0))
        tail = self._tail if continues else empty
        ref = self._logw_top  # accumulated weights are exp(log-weight - ref)
        if logweights is None:
            weights = [w * np.exp(-ref) for w in check_weights(weights, arrays)]
        else:
            logw = check_weights(logweights, arrays, name="logweights", _signed=True)
            top = max(float(w.max()) for w in logw)
            if mom.w2 == 0 and not tail[1].any():  # nothing weighs yet: any reference will do
                ref = top
            elif top > ref:
                mom.scale(np.exp(ref - top))
                tail = (tail[0], tail[1] * np.exp(ref - top))
                ref = top
            self._logw_top = ref
            weights = [np.exp(w - ref) for w in logw]
        for k, (x, w) in enumerate(zip(arrays, weights)):
            frames, frame_w = tail if k == 0 else empty
            block, x_tail = join_tail(frames, x, lag or 0)
            w_block, w_tail = join_tail(frame_w, w, lag or 0)
            mom.add(block, w_block)
            self._tail = (x_tail, w_tail)
        if self._not_enough(mom) is None:
            self._solve(mom)
        return self

    def _forget_partial(self):
        for name in ("_partial", "_tail", "_logw_top"):
            self.__dict__.pop(name, None)

    def _keep(self, mom, logweights=None):
        """Keep moments for partial_fit: a fresh accumulation, or fit's (with the reference of its log-weights)."""
        self._partial, self._tail, self._logw_top = mom, None, 0.0
        if logweights is not None:  # fit's weights were exp(logw - max logw): check_weights' normalization
            self._logw_top = max(float(np.max(w)) for w in (logweights if isinstance(logweights, (list, tuple))
                                                            else [logweights]))
        return mom

    def _moments(self, X, weights, logweights, lagtime=None, n_features=None):
        """Moments of the frames (with ``lagtime``: of the pairs) of arrays in memory or of a FrameSource.

        Every trajectory needs at least 2 frames and the longest more than ``lagtime``.
        """
        owner = type(self).__name__
        source = as_source(X)
        if source is not None:
            return self._source_moments(source, weights, logweights, lagtime, n_features)
        arrays = as_trajectory_list(X, min_frames=2, n_features=n_features, owner=owner)
        weights = check_weights(weights, arrays, logweights=logweights)
        if lagtime is not None:
            lagtime = check_lagtime(lagtime, arrays, owner)
        mom = Moments(arrays[0].shape[1], lagtime)
        for x, w in zip(arrays, weights):
            mom.add(x, w)
        return mom

    def _source_moments(self, source, weights, logweights, lagtime, n_features):
        """One pass over a FrameSource, trajectory by trajectory, chunk by chunk.

        With a lag, each block carries the last ``lagtime`` frames read before it from the same
        trajectory, so each pair (t, t + lag) lies in exactly one block (the one whose new frames
        hold t + lag) and Moments.add counts it once; no pair spans two trajectories. Moments
        shifts the data by the mean of the first block rather than of a whole trajectory: any
        fixed shift near the data keeps the sums precise. Lengths may be known only after reading,
        so too-short trajectories are reported after the pass.
        """
        owner = type(self).__name__
        source.expect_features(n_features, owner)
        if lagtime is not None:
            lagtime = check_lagtime(lagtime, None, owner)
        weights = source_weights(source, weights, logweights)
        name, note = "weights" if logweights is None else "logweights", source.frames_note
        overlap = lagtime or 0
        mom = None
        lengths = []
        for i, blocks in enumerate(source.blocks(overlap)):
            if weights is not None and i >= len(weights):
                raise ValueError(f"Got {len(weights)} {name} arrays, but the data have more trajectories; give one "
                                 "per trajectory.")
            done = 0  # frames of trajectory i read so far
            for block in blocks:
                start = done - min(overlap, done)  # frame index (in the trajectory) of the block's first row
                done = start + len(block)
                if weights is not None and done > len(weights[i]):
                    raise ValueError(f"{name}[{i}] has {len(weights[i])} entries but {source.name(i)} has more "
                                     f"frames{note}; give one weight per frame read.")
                if mom is None:
                    source.expect_features(n_features, owner)
                    mom = Moments(source.n_features, lagtime)
                mom.add(block, np.ones(len(block)) if weights is None else weights[i][start:done])
            if weights is not None and done != len(weights[i]):
                raise ValueError(f"{name}[{i}] has {len(weights[i])} entries for {source.name(i)}, which has "
                                 f"{done} frames{note}; give one weight per frame read.")
            lengths.append(done)
        if not lengths:
            raise ValueError(f"{owner} got data with no trajectories (an empty iterable); pass at least one "
                             "(frames x features) array or file.")
        if weights is not None and len(weights) != len(lengths):
            raise ValueError(f"Got {len(weights)} {name} arrays for {len(lengths)} trajectories; give one per "
                             "trajectory.")
        for i, n in enumerate(lengths):
            if n < 2:
                raise ValueError(f"{source.name(i)} has {n} frame(s) (n_samples={n}){note}; at least 2 are needed.")
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
            mom = getattr(self, "_partial", None)
            msg = mom is not None and self._not_enough(mom)
            why = f" (partial_fit has not seen enough data yet: {msg})" if msg else ""
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet{why}; call fit(X) first.")

    def transform(self, X):
        """Project frames onto the components.

        Parameters
        ----------
        X : array (frames x features), list of arrays, cvlearn.Trajectory, or data read chunk by chunk
            (a FrameSource such as a FeatureStream or NpyFiles, memory-mapped arrays, an iterable of chunks)

        Returns
        -------
        ndarray (frames x n_components), or a list of them for a list/trajectory input, or for data
        read chunk by chunk one per trajectory (only the projections are kept).
        """
        self._check_fitted()
        source = as_source(X)
        if source is not None:
            def project(x):
                source.expect_features(self.n_features_in_, type(self).__name__)
                return (x - self.mean_) @ self.eigenvectors_

            source.expect_features(self.n_features_in_, type(self).__name__)
            out = source.apply(project)
            return out[0] if isinstance(X, np.ndarray) else out  # one memory-mapped array: one table
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
