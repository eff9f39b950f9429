"""Shared machinery of the linear learners (PCA, TICA): input checks, transform, to_module."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._validation import as_trajectory_list, check_weights, is_single_table
from ..exceptions import NotFittedError
from ._module import CollectiveVariable, LinearCV

__all__ = ["LinearLearner"]


class LinearLearner(TransformerMixin, BaseEstimator):
    """Base of estimators whose CV is s = (x - mean_) @ eigenvectors_ (features x components)."""

    _prefix = "cv"

    def _prepare(self, X, weights, min_frames=1, n_features=None, logweights=None):
        arrays = as_trajectory_list(X, min_frames=min_frames, n_features=n_features, owner=type(self).__name__)
        return arrays, check_weights(weights, arrays, logweights=logweights)

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
        X : array (frames x features), list of arrays, or cvlearn.Trajectory

        Returns
        -------
        ndarray (frames x n_components), or a list of them for a list/trajectory input.
        """
        self._check_fitted()
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
