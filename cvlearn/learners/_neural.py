"""Nonlinear CV learners on one training core: AutoEncoder, TimeLaggedAutoEncoder, DeepTICA."""

import abc

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from .._validation import as_trajectory_list, check_lagtime, check_positive, check_weights, is_single_table
from ..exceptions import NotFittedError
from ._module import CollectiveVariable, LinearCV
from ._nn import Standardize, mlp
from ._tica import TICA
from ._training import split_blocks, train

__all__ = ["AutoEncoder", "TimeLaggedAutoEncoder", "DeepTICA", "NeuralCV", "tica_eigenvalues"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class NeuralCV(torch.nn.Module):
    """features -> standardize -> MLP -> optional linear head: the CV of a neural learner.

    Its constructor arguments are plain numbers and lists (kept in ``config``), so a saved CV is
    rebuilt from JSON plus a state dict, without pickle.
    """

    __jit_unused_properties__ = ["n_components", "n_features"]
    __jit_ignored_attributes__ = ["config"]

    def __init__(self, n_features, layers, n_components, activation="tanh", head=False):
        super().__init__()
        self.config = {"n_features": int(n_features), "layers": [int(n) for n in layers],
                       "n_components": int(n_components), "activation": activation, "head": bool(head)}
        self.standardize = Standardize(torch.zeros(n_features), torch.ones(n_features))
        self.net = mlp([n_features, *layers, n_components], activation)
        self.head = LinearCV(np.zeros(n_components), np.eye(n_components)) if head else torch.nn.Identity()

    @property
    def n_components(self):
        return self.config["n_components"]

    @property
    def n_features(self):
        return self.config["n_features"]

    def forward(self, features):
        # The network runs in its own dtype (float32 by default) inside a float64 engine or bias;
        # the casts are differentiable, so forces still flow back to the positions.
        z = self.head(self.net(self.standardize(features.to(self.standardize.mean.dtype))))
        return z.to(features.dtype)


def tica_eigenvalues(z0, zt, w, epsilon):
    """Eigenvalues (ascending) of the reversible, weighted TICA problem of outputs z0 -> zt.

    C00 is regularized with ``epsilon`` times the identity and whitened by its Cholesky factor, so
    the problem stays well posed and differentiable while the network trains.
    """
    W = w.sum()
    mean = (w @ z0 + w @ zt) / (2 * W)
    a, b = z0 - mean, zt - mean
    wa, wb = a * w[:, None], b * w[:, None]
    eye = torch.eye(z0.shape[1], dtype=z0.dtype, device=z0.device)
    c00 = (wa.T @ a + wb.T @ b) / (2 * W) + epsilon * eye
    c0t = wa.T @ b
    c0t = (c0t + c0t.T) / (2 * W)
    L = torch.linalg.cholesky(c00)
    m = torch.linalg.solve_triangular(L, c0t, upper=False)
    m = torch.linalg.solve_triangular(L, m.T, upper=False)
    return torch.linalg.eigvalsh(0.5 * (m + m.T))


class _NeuralLearner(TransformerMixin, BaseEstimator, metaclass=abc.ABCMeta):
    """Shared fit/transform/to_module of the neural learners; subclasses define the loss."""

    _lagged = False
    _prefix = "cv"

    # -- subclass hooks ---------------------------------------------------------------------------
    def _extra_modules(self, n_features):
        return []

    @abc.abstractmethod
    def _loss(self, cv, extra, batch):
        """Scalar training loss of a :class:`Batch` of standardized data (``cv.net`` maps it to outputs)."""

    def _finish(self, cv, arrays, weights):
        """After training (e.g. DeepTICA's TICA head)."""

    # -- estimator API ----------------------------------------------------------------------------
    def fit(self, X, y=None, weights=None, logweights=None):
        """Train on frames ``X`` (array, list of arrays, or Trajectory).

        ``weights`` per frame, or ``logweights`` (e.g. the bias in kT of biased frames), optional.

        Time-lagged pairs (for lagged learners) never span two trajectories or two validation blocks.
        """
        owner = type(self).__name__
        arrays = as_trajectory_list(X, min_frames=2, owner=owner)
        weights = check_weights(weights, arrays, logweights=logweights)
        if self._lagged:
            check_lagtime(self.lagtime, arrays, owner)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}.")
        check_positive(self.n_components, "n_components", owner, integer=True)
        check_positive(self.max_epochs, "max_epochs", owner, integer=True)
        check_positive(self.lr, "lr", owner)
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in (0, 1); got {self.valid_fraction}.")
        dtype, device = _DTYPES[self.dtype], torch.device(self.device)
        n_features = arrays[0].shape[1]
        allx = np.concatenate(arrays)
        mean, std = allx.mean(0), allx.std(0)
        const = np.nonzero(std <= 1e-12 * np.maximum(np.abs(mean), 1.0))[0]
        if len(const):
            raise ValueError(f"Feature(s) {const[:20].tolist()} are constant over all frames (zero variance); "
                             "remove them (e.g. X[:, X.std(0) > 0]).")
        # Standardize once: the networks train on standardized data (the saved CV standardizes itself).
        scaled = [(x - mean) / std for x in arrays]
        train_data, valid_data = split_blocks(scaled, weights, self.lagtime if self._lagged else None,
                                              self.valid_fraction, self.n_blocks, self.seed, dtype, device)
        with torch.random.fork_rng(devices=[]):  # seeded initialization without touching the global RNG
            torch.manual_seed(self.seed)
            cv = NeuralCV(n_features, self.layers, self.n_components, self.activation, head=self._head)
            extra = self._extra_modules(n_features)
        cv.standardize.mean.copy_(torch.as_tensor(mean))
        cv.standardize.std.copy_(torch.as_tensor(std))
        cv.to(device, dtype)
        extra = [m.to(device, dtype) for m in extra]
        self.history_, self.best_epoch_ = train(
            [cv.net, *extra], lambda batch: self._loss(cv, extra, batch), train_data, valid_data,
            max_epochs=self.max_epochs, lr=self.lr, batch_size=self.batch_size, patience=self.patience,
            lr_schedule=self.lr_schedule, seed=self.seed, progress=self.progress, owner=owner)
        cv.eval()
        self.module_, self.extra_ = cv, extra
        self.n_features_in_ = n_features
        self._finish(cv, arrays, weights)
        return self

    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X) first.")

    def transform(self, X):
        """CV values of frames: (frames x n_components), or a list for a list/trajectory input."""
        self._check_fitted()
        arrays = as_trajectory_list(X, n_features=self.n_features_in_, owner=type(self).__name__)
        p = next(self.module_.parameters())
        with torch.no_grad():
            out = [self.module_(torch.as_tensor(x, dtype=p.dtype, device=p.device)).double().cpu().numpy()
                   for x in arrays]
        return out[0] if is_single_table(X) else out

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def to_module(self, featurizer=None):
        """The trained CV as a torch module (features -> CV, or positions -> CV with a featurizer)."""
        self._check_fitted()
        names = [f"{self._prefix}{i + 1}" for i in range(self.n_components)]
        return CollectiveVariable(self.module_, featurizer, names)


_COMMON_DOC = """
    layers : list of int
        Hidden layer sizes of the encoder network.
    n_components : int
        Number of CVs.
    activation : {"tanh", "relu", "elu", "silu", "softplus"}
    max_epochs, patience : int
        Training stops when the validation loss has not improved for ``patience`` epochs; the
        best weights are restored.
    lr : float
        Adam learning rate.
    lr_schedule : None, "cosine" or float
        Learning-rate schedule (a float is an exponential decay factor per epoch).
    batch_size : int or None
        None: full batch (fast for data that fit in memory); else shuffled minibatches.
    valid_fraction : float
        Fraction of the trajectory blocks held out for validation.
    n_blocks : int
        Blocks each trajectory is cut into for the train/validation split.
    seed : int
        Seeds initialization, split and minibatches: same seed, same CV (on CPU).
    device : str
        "cpu" or "cuda".
    dtype : {"float32", "float64"}
    progress : bool
        Show a progress bar.

    Attributes
    ----------
    module_ : NeuralCV
        The trained network (standardization included).
    history_ : dict
        {"train": [...], "valid": [...]} loss per epoch (plot with ``cl.plot.loss``).
    best_epoch_ : int
    n_features_in_ : int
"""


class AutoEncoder(_NeuralLearner):
    """Autoencoder CV: the bottleneck of an encoder/decoder that reconstructs the (standardized) input.

    It finds the directions of largest (nonlinear) variance, not the slowest ones: a useful
    baseline, and the basis of generative models.

    Parameters
    ----------""" + _COMMON_DOC

    _prefix = "ae"
    _head = False

    def __init__(self, layers=(64, 32), n_components=1, activation="tanh", max_epochs=500, patience=30, lr=1e-3,
                 lr_schedule=None, batch_size=None, valid_fraction=0.2, n_blocks=10, seed=0, device="cpu",
                 dtype="float32", progress=False):
        self.layers, self.n_components, self.activation = layers, n_components, activation
        self.max_epochs, self.patience, self.lr, self.lr_schedule = max_epochs, patience, lr, lr_schedule
        self.batch_size, self.valid_fraction, self.n_blocks = batch_size, valid_fraction, n_blocks
        self.seed, self.device, self.dtype, self.progress = seed, device, dtype, progress

    def _extra_modules(self, n_features):
        return [mlp([self.n_components, *reversed(list(self.layers)), n_features], self.activation)]

    @staticmethod
    def _target(batch):
        return batch.x

    def _loss(self, cv, extra, batch):
        (decoder,) = extra
        err = ((decoder(cv.net(batch.x)) - self._target(batch)) ** 2).mean(1)
        return (batch.w * err).sum() / batch.w.sum()

    def decode(self, z):
        """Features (unstandardized) decoded from CV values ``z`` (n, n_components)."""
        self._check_fitted()
        p = next(self.module_.parameters())
        with torch.no_grad():
            out = self.extra_[0](torch.as_tensor(np.asarray(z), dtype=p.dtype, device=p.device))
            out = out * self.module_.standardize.std + self.module_.standardize.mean
        return out.double().cpu().numpy()


class TimeLaggedAutoEncoder(AutoEncoder):
    """Time-lagged autoencoder (Wehmeyer & Noe, JCP 148, 241703 (2018)): encodes x(t), decodes x(t + lag).

    The bottleneck must carry what predicts the future, which makes it a kinetic (slow) CV.

    Parameters
    ----------
    lagtime : int
        Lag in frames.""" + _COMMON_DOC

    _prefix = "tae"
    _lagged = True

    def __init__(self, lagtime=10, layers=(64, 32), n_components=1, activation="tanh", max_epochs=500, patience=30,
                 lr=1e-3, lr_schedule=None, batch_size=None, valid_fraction=0.2, n_blocks=10, seed=0, device="cpu",
                 dtype="float32", progress=False):
        super().__init__(layers, n_components, activation, max_epochs, patience, lr, lr_schedule, batch_size,
                         valid_fraction, n_blocks, seed, device, dtype, progress)
        self.lagtime = lagtime

    @staticmethod
    def _target(batch):
        return batch.y


class DeepTICA(_NeuralLearner):
    """Deep-TICA (Bonati, Piccini & Parrinello, PNAS 118, e2113533118 (2021)).

    A network maps features to ``n_components`` outputs, trained to maximize the sum of squared
    (VAMP-2, ``score="vamp2"``) or plain (``score="sum"``) TICA eigenvalues of its outputs at
    ``lagtime``; the instantaneous covariance is regularized by ``epsilon``. After training, TICA on
    the outputs gives a linear head, so the CVs are the network's slowest uncorrelated combinations,
    with ``eigenvalues_`` and implied ``timescales_`` (frames).

    Parameters
    ----------
    lagtime : int
        Lag in frames.
    score : {"vamp2", "sum"}
    epsilon : float
        Regularization added to the outputs' covariance.""" + _COMMON_DOC + """    eigenvalues_, timescales_ : ndarray
        TICA eigenvalues of the trained outputs and implied timescales (frames), slowest first.
    """

    _prefix = "deeptic"
    _lagged = True
    _head = True

    def __init__(self, lagtime=10, layers=(64, 32), n_components=1, activation="tanh", score="vamp2", epsilon=1e-6,
                 max_epochs=500, patience=30, lr=1e-3, lr_schedule=None, batch_size=None, valid_fraction=0.2,
                 n_blocks=10, seed=0, device="cpu", dtype="float32", progress=False):
        self.lagtime, self.layers, self.n_components, self.activation = lagtime, layers, n_components, activation
        self.score, self.epsilon = score, epsilon
        self.max_epochs, self.patience, self.lr, self.lr_schedule = max_epochs, patience, lr, lr_schedule
        self.batch_size, self.valid_fraction, self.n_blocks = batch_size, valid_fraction, n_blocks
        self.seed, self.device, self.dtype, self.progress = seed, device, dtype, progress

    def fit(self, X, y=None, weights=None, logweights=None):
        if self.score not in ("vamp2", "sum"):
            raise ValueError(f"score must be 'vamp2' or 'sum'; got {self.score!r}.")
        return super().fit(X, y, weights, logweights)

    def _loss(self, cv, extra, batch):
        z0, zt = batch.pair_outputs(cv.net)
        evals = tica_eigenvalues(z0, zt, batch.w, self.epsilon)
        return -(evals**2).sum() if self.score == "vamp2" else -evals.sum()

    def _finish(self, cv, arrays, weights):
        p = next(cv.parameters())
        with torch.no_grad():
            z = [cv.net(cv.standardize(torch.as_tensor(x, dtype=p.dtype, device=p.device))).double().cpu().numpy()
                 for x in arrays]
        tica = TICA(lagtime=self.lagtime, n_components=self.n_components, scaling=None, epsilon=0.0).fit(
            z, weights=weights)
        cv.head = LinearCV(tica.mean_, tica.eigenvectors_).to(p.device)
        self.eigenvalues_, self.timescales_ = tica.eigenvalues_, tica.timescales_
