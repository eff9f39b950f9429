"""Trained CVs as torch modules: features -> CV values, and positions -> CV values."""

import torch

from .. import hooks

__all__ = ["LinearCV", "CollectiveVariable"]


class LinearCV(torch.nn.Module):
    """s = (f - mean) @ weights: the CV of a linear learner (PCA, TICA) as a torch module.

    The mean (n_features,) and weights (n_features, n_components) are registered buffers, so
    ``.to()``, ``state_dict`` and TorchScript carry them. Units: those of the features in, those of
    the features times the weights out.

    Parameters
    ----------
    mean : array_like, (n_features,)
    weights : array_like, (n_features, n_components)

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> lin = cl.learners.LinearCV(mean=[1.0, 0.0], weights=[[0.5], [2.0]])
    >>> lin.n_features, lin.n_components
    (2, 1)
    >>> lin(torch.tensor([[3.0, 1.0]], dtype=torch.float64)).tolist()      # (3 - 1) * 0.5 + 1 * 2
    [[3.0]]
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

    Parameters
    ----------
    model : torch.nn.Module
        Features -> CV values, with an ``n_components`` attribute (a :class:`LinearCV`, a network).
    featurizer : cvlearn.features.Featurizer, optional
        Positions (nm) -> features.
    names : list of str, optional
        Default ``cv0, cv1, ...``.

    Examples
    --------
    Usually made by a learner's ``to_module``; by hand, a CV that is x - y of one particle (nm):

    >>> import torch, cvlearn as cl
    >>> cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [-1.0]]),
    ...                                     featurizer=cl.features.Positions(1, 2), names=["x_minus_y"])
    >>> x = torch.tensor([[[0.5, 0.2]], [[0.1, 0.4]]], dtype=torch.float64, requires_grad=True)
    >>> cv(x).detach().round(decimals=6).tolist()        # (walkers, n_components)
    [[0.3], [-0.3]]
    >>> cv(x).sum().backward(); x.grad[0].tolist()         # ds/dx, what a bias force needs
    [[1.0, -1.0]]
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


# -- hooks (cvlearn.hooks): lean numpy steps, saving, periodicity ---------------------------------------------
@hooks.lean_steps.register(LinearCV)
def _linear_cv_lean(m, rows):
    w = hooks.float64(m.weights)
    return [hooks.Affine(w, -(hooks.float64(m.mean) @ w))]


@hooks.lean_steps.register(CollectiveVariable)
def _cv_lean(m, rows):
    return hooks.lean_steps(m.featurizer, rows) + hooks.lean_steps(m.model, rows)


def _cv_config(cv):
    # What cvlearn.save writes beside the state dict; "featurizer" None: the CV takes features.
    featurizer = None if isinstance(cv.featurizer, torch.nn.Identity) else hooks.to_config(cv.featurizer)
    return {"model": hooks.to_config(cv.model), "featurizer": featurizer, "names": list(cv.names)}


def _cv_build(model, featurizer, names):
    return CollectiveVariable(hooks.from_config(model), None if featurizer is None else hooks.from_config(featurizer),
                              names)


hooks.register_config(LinearCV, lambda m: m.config, LinearCV.from_config)
hooks.register_config(CollectiveVariable, _cv_config, _cv_build)
# Learned components are open: a periodic input (an angle) does not make a combination of features periodic.
hooks.periodicity.register(LinearCV)(hooks.not_periodic)
hooks.periodicity.register(CollectiveVariable)(hooks.not_periodic)
