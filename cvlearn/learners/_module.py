"""Trained CVs as torch modules: features -> CV values, and positions -> CV values."""

import torch

__all__ = ["LinearCV", "CollectiveVariable"]


class LinearCV(torch.nn.Module):
    """s = (f - mean) @ weights: the CV of a linear learner (PCA, TICA) as a torch module.

    The mean (n_features,) and weights (n_features, n_components) are registered buffers, so
    ``.to()``, ``state_dict`` and TorchScript carry them.
    """

    __jit_unused_properties__ = ["n_features", "n_components", "config"]

    def __init__(self, mean, weights):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64).clone())
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float64).clone())

    @property
    def n_features(self):
        return self.weights.shape[0]

    @property
    def n_components(self):
        return self.weights.shape[1]

    @property
    def config(self):
        return {"n_features": self.n_features, "n_components": self.n_components}

    @classmethod
    def from_config(cls, n_features, n_components):
        """An empty LinearCV of the right shape (to be filled by ``load_state_dict``)."""
        return cls(torch.zeros(n_features), torch.zeros(n_features, n_components))

    def forward(self, features):
        return (features - self.mean.to(features.dtype)) @ self.weights.to(features.dtype)


class CollectiveVariable(torch.nn.Module):
    """A CV ready for biasing: ``featurizer`` (positions -> features) then ``model`` (features -> s).

    ``forward(positions (walkers, particles, dims)) -> (walkers, n_components)``, differentiable,
    so a bias gets its force by autograd. With ``featurizer=None`` the module takes features.

    Attributes
    ----------
    names : list of str
        One name per CV component (used for COLVAR columns).
    """

    __jit_unused_properties__ = ["n_components"]

    def __init__(self, model, featurizer=None, names=None):
        super().__init__()
        self.featurizer = featurizer if featurizer is not None else torch.nn.Identity()
        self.model = model
        k = model.n_components
        self.names = list(names) if names is not None else [f"cv{i}" for i in range(k)]
        if len(self.names) != k:
            raise ValueError(f"Got {len(self.names)} names for {k} CV components.")

    @property
    def n_components(self):
        return self.model.n_components

    def forward(self, x):
        return self.model(self.featurizer(x))
