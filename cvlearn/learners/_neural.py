"""Nonlinear CV learners on one training core: AutoEncoder, TimeLaggedAutoEncoder, DeepTICA."""

import abc

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from .. import hooks
from .._decoding import check_latent, features_to_trajectory
from .._validation import as_trajectory_list, check_lagtime, check_positive, check_weights, is_single_table, is_stream
from ..exceptions import NotFittedError
from ..features import as_source
from ._data import PairReader, PairStream, scan
from ._module import CollectiveVariable, LinearCV
from ._nn import Standardize, mlp
from ._tica import TICA
from ._training import Batch, minibatches, plan_blocks, split_blocks, train

__all__ = ["AutoEncoder", "TimeLaggedAutoEncoder", "DeepTICA", "NeuralCV", "tica_eigenvalues"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class NeuralCV(torch.nn.Module):
    """features -> standardize -> MLP -> optional linear head: the CV of a neural learner.

    Its constructor arguments are plain numbers and lists (kept in ``config``), so a saved CV is
    rebuilt from JSON plus a state dict, without pickle.

    Examples
    --------
    >>> import torch
    >>> cv = NeuralCV(n_features=6, layers=[8], n_components=2)
    >>> cv(torch.zeros(3, 6, dtype=torch.float64)).shape, cv.config["layers"]
    (torch.Size([3, 2]), [8])
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


@hooks.lean_steps.register(NeuralCV)
def _neural_cv_lean(m, rows):
    return hooks.lean_steps(m.standardize, rows) + hooks.lean_steps(m.net, rows) + hooks.lean_steps(m.head, rows)


hooks.register_config(NeuralCV, lambda m: m.config, NeuralCV)
hooks.periodicity.register(NeuralCV)(hooks.not_periodic)


def tica_eigenvalues(z0, zt, w, epsilon):
    """Eigenvalues (ascending) of the reversible, weighted TICA problem of outputs z0 -> zt.

    C00 is regularized with ``epsilon`` times the identity and whitened by its Cholesky factor, so
    the problem stays well posed and differentiable while the network trains. Differentiable in
    ``z0`` and ``zt`` (the weights ``w`` are data: no gradient).

    Examples
    --------
    Outputs that move together are slow (eigenvalue 1), noise is fast (eigenvalue near 0):

    >>> import torch
    >>> t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    >>> z = torch.stack([t, torch.randn(2001, generator=torch.Generator().manual_seed(0), dtype=torch.float64)], 1)
    >>> ev = tica_eigenvalues(z[:-1], z[1:], torch.ones(2000, dtype=torch.float64), 1e-6)
    >>> bool(abs(ev[0]) < 0.1), bool(ev[1] > 0.99)
    (True, True)
    """
    return _stacked_tica_eigenvalues(torch.cat([z0, zt]), w, epsilon)


def _stacked_tica_eigenvalues(z, w, epsilon):
    """:func:`tica_eigenvalues` of the outputs stacked as z = [z0; zt] (2 x pairs rows), as
    :meth:`~._training.Batch.stacked_outputs` gives them."""
    return _TICAEigenvalues.apply(z, w, epsilon)


class _TICAEigenvalues(torch.autograd.Function):
    """:func:`tica_eigenvalues` of stacked outputs z = [z0; zt], with its gradient in closed form.

    Why: autograd through the covariances, the Cholesky whitening and ``eigvalsh`` records ~60
    tensor operations of a few microseconds each, about a quarter of a Deep-TICA minibatch step of 512
    pairs; the closed form needs a handful. For the generalized problem C0t v = lambda C00 v with
    eigenvectors normalized as V' C00 V = 1 (the regularized C00), d lambda_i = v_i' (dC0t -
    lambda_i dC00) v_i, so a loss with gradient g_i = dL/d lambda_i has dL/dC0t = V diag(g) V' and
    dL/dC00 = -V diag(g lambda) V' (both symmetric, and unique also for equal eigenvalues when g is
    a symmetric function of them). With the centered outputs a = z0 - mean, b = zt - mean,
    C00 = sum w (a a' + b b') / 2W and C0t = sum w (a b' + b a') / 2W, that gives
    dL/dz0 = w (a G00 + b G0t) / W and dL/dzt = w (b G00 + a G0t) / W (the terms through the mean
    cancel: it is the weighted mean of both ends).

    The outputs are worked on transposed, (components, 2 x pairs): with a few components per row, the
    (pairs, components) layout makes every elementwise product and reduction a slow, strided one.
    """

    @staticmethod
    def forward(ctx, z, w, epsilon):
        n = w.shape[0]
        ww = torch.cat([w, w])  # the weight of each row of z: w_t for both ends of pair t
        W2 = ww.sum()
        zT = torch.stack(z.unbind(1))  # z.T.contiguous(), at a third of its cost for a few columns
        aT = zT - ((zT @ ww) / W2)[:, None]
        waT = aT * ww
        c0t = waT[:, :n] @ aT[:, n:].T
        evals, vecs = _whitened_eigh((waT @ aT.T) / W2, (c0t + c0t.T) / W2, epsilon)
        ctx.save_for_backward(aT, ww, W2, evals, vecs)
        return evals

    @staticmethod
    @torch.autograd.function.once_differentiable  # the closed form is a first derivative only
    def backward(ctx, grad):
        aT, ww, W2, evals, vecs = ctx.saved_tensors
        n = ww.shape[0] // 2
        g0t = (vecs * grad) @ vecs.T
        g00 = -(vecs * (grad * evals)) @ vecs.T
        other_end = torch.cat([aT[:, n:], aT[:, :n]], 1)  # b for the rows of z0, a for the rows of zt
        return ((g00 @ aT + g0t @ other_end) * (ww * (2 / W2))).T, None, None


def _pair_sums(z0, zt, w):
    """Sums over pairs that add up across batches, in float64: W, sum w z0, sum w zt, sum w (z0 z0' + zt zt'),
    sum w z0 zt' (:func:`_sums_eigenvalues` turns them into the eigenvalues of :func:`tica_eigenvalues`)."""
    z0, zt, w = z0.double(), zt.double(), w.double()
    wz0, wzt = z0 * w[:, None], zt * w[:, None]
    return [w.sum(), w @ z0, w @ zt, wz0.T @ z0 + wzt.T @ zt, wz0.T @ zt]


def _sums_eigenvalues(sums, epsilon):
    W, s0, st, c_sym, c_0t = sums
    mean = (s0 + st) / (2 * W)
    mm = torch.outer(mean, mean)
    return _whitened_eigenvalues(c_sym / (2 * W) - mm, (c_0t + c_0t.T) / (2 * W) - mm, epsilon)


def _whitened_eigenvalues(c00, c0t, epsilon):
    """Eigenvalues (ascending) of C00^-1/2 C0t C00^-1/2, with C00 regularized by ``epsilon`` times the identity."""
    return _whitened_eigh(c00, c0t, epsilon, vectors=False)


def _whitened_eigh(c00, c0t, epsilon, vectors=True):
    """Eigenvalues (ascending) of C00^-1/2 C0t C00^-1/2, with C00 regularized by ``epsilon`` times the
    identity, and (``vectors``) the eigenvectors V of C0t v = lambda C00 v, normalized as V' C00 V = 1."""
    L = torch.linalg.cholesky(c00 + epsilon * torch.eye(c00.shape[0], dtype=c00.dtype, device=c00.device))
    m = torch.linalg.solve_triangular(L, c0t, upper=False)
    m = torch.linalg.solve_triangular(L, m.T, upper=False)
    if not vectors:
        return torch.linalg.eigvalsh(0.5 * (m + m.T))
    evals, u = torch.linalg.eigh(0.5 * (m + m.T))
    return evals, torch.linalg.solve_triangular(L.T, u, upper=True)


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

    @abc.abstractmethod
    def _loss_parts(self, cv, extra, batch):
        """Float64 tensors whose sums over the batches of a set give its loss by :meth:`_parts_loss` (the
        validation loss of data read in pieces equals ``_loss`` on the whole set)."""

    @abc.abstractmethod
    def _parts_loss(self, parts):
        """The loss from the summed :meth:`_loss_parts`."""

    def _finish(self, cv, data, weights):
        """After training (e.g. DeepTICA's TICA head); ``data`` are the arrays or the FrameSource trained on."""

    # -- estimator API ----------------------------------------------------------------------------
    def _check_params(self, owner):
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}.")
        check_positive(self.n_components, "n_components", owner, integer=True)
        check_positive(self.max_epochs, "max_epochs", owner, integer=True)
        check_positive(self.lr, "lr", owner)
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in (0, 1); got {self.valid_fraction}.")

    def fit(self, X, y=None, weights=None, logweights=None):
        """Train on frames ``X``: in memory (array, list of arrays, Trajectory) or read from files.

        ``weights`` per frame, or ``logweights`` (e.g. the bias in kT of biased frames), optional;
        one array per trajectory.

        Data larger than memory: a FrameSource (``cvlearn.features.NpyFiles``, a FeatureStream),
        memory-mapped arrays (``np.load(path, mmap_mode="r")``), or a list of trajectories each
        given as a list of chunks. They are read once for the standardization (mean and std from
        streamed moments), then once per epoch: a torch DataLoader yields minibatches
        (``batch_size`` is then required) from a shuffle buffer of about 64 MB, filled with
        pieces of the training blocks from all files in random order (files that can only be read
        front to back are interleaved at random); the validation loss is summed exactly over
        all validation blocks. Block split, initialization and validation loss are those of the
        in-memory path; only the minibatches differ.

        Time-lagged pairs (for lagged learners) never span two trajectories or two validation blocks.
        """
        owner = type(self).__name__
        source = as_source(X)
        lag = self.lagtime if self._lagged else None
        self._check_params(owner)
        dtype, device = _DTYPES[self.dtype], torch.device(self.device)
        if source is None:
            arrays = as_trajectory_list(X, min_frames=2, owner=owner)
            weights = check_weights(weights, arrays, logweights=logweights)
            if self._lagged:
                check_lagtime(self.lagtime, arrays, owner)
            allx = np.concatenate(arrays)
            mean, std = allx.mean(0), allx.std(0)
            del allx
            self._check_spread(mean, std)
            # Standardize once: the networks train on standardized data (the saved CV standardizes itself).
            scaled = [(x - mean) / std for x in arrays]
            train_data, valid_data = split_blocks(scaled, weights, lag, self.valid_fraction, self.n_blocks, self.seed,
                                                  dtype, device)
            del scaled
            epoch_batches = minibatches(train_data, self.batch_size)
            valid_loss = lambda cv, extra: float(self._loss(cv, extra, valid_data))  # noqa: E731
        else:
            epoch_batches, valid_loss, mean, std, weights = self._source_data(source, weights, logweights, owner,
                                                                             dtype, device)
        cv, extra = self._new_modules(len(mean), mean, std, dtype, device)
        self.history_, self.best_epoch_ = train(
            [cv.net, *extra], lambda batch: self._loss(cv, extra, batch), epoch_batches,
            lambda: valid_loss(cv, extra), max_epochs=self.max_epochs, lr=self.lr, patience=self.patience,
            lr_schedule=self.lr_schedule, seed=self.seed, progress=self.progress, owner=owner)
        cv.eval()
        self.module_, self.extra_ = cv, extra
        self.n_features_in_ = len(mean)
        self._finish(cv, arrays if source is None else source, weights)
        return self

    def _source_data(self, source, weights, logweights, owner, dtype, device):
        """Epoch batches (a DataLoader over :class:`PairStream`) and the streamed validation loss."""
        if not source.reiterable:
            raise ValueError(f"{owner} reads its data several times (once for the standardization, then every "
                             "epoch), but this data is a one-shot iterator (e.g. a generator). Pass a list of arrays "
                             "or of lists of chunks, cvlearn.features.NpyFiles, or a FeatureStream, which can be "
                             "read again.")
        if self.batch_size is None:
            raise ValueError(f"{owner} trains on data read chunk by chunk (files, memory maps or lists of chunks) in "
                             "minibatches: set batch_size (pairs per optimizer step, e.g. 4096); full-batch training "
                             "(batch_size=None) needs all frames in memory.")
        check_positive(self.batch_size, "batch_size", owner, integer=True)
        lag = self.lagtime if self._lagged else None
        if lag is not None:
            check_lagtime(lag, None, owner)
        mean, std, lengths = scan(source, owner)
        self._check_spread(mean, std)
        if lag is not None:
            check_lagtime(lag, lengths, owner)
        if weights is not None or logweights is not None:
            weights = check_weights(weights, lengths, logweights=logweights)
        blocks, valid = plan_blocks(lengths, lag, self.valid_fraction, self.n_blocks, self.seed)
        reader = PairReader(source, lengths, blocks, valid, mean, std, lag, weights, dtype)
        stream = PairStream(reader, self.batch_size)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, pin_memory=device.type == "cuda")

        def epoch_batches(gen):
            stream.seed = int(torch.randint(2**62, (1,), generator=gen))
            for frames, w in loader:
                n = len(w)
                i0 = torch.arange(n, device=device)
                yield Batch(frames.to(device, non_blocking=True), i0, i0 + n if lag else None,
                            w.to(device, non_blocking=True))

        def valid_loss(cv, extra):
            return float(self._parts_loss(reader.valid_sum(lambda batch: self._loss_parts(cv, extra, batch), device)))

        return epoch_batches, valid_loss, mean, std, weights

    @staticmethod
    def _check_spread(mean, std):
        const = np.nonzero(std <= 1e-12 * np.maximum(np.abs(mean), 1.0))[0]
        if len(const):
            raise ValueError(f"Feature(s) {const[:20].tolist()} are constant over all frames (zero variance); "
                             "remove them (e.g. X[:, X.std(0) > 0]).")

    def _new_modules(self, n_features, mean, std, dtype, device):
        with torch.random.fork_rng(devices=[]):  # seeded initialization without touching the global RNG
            torch.manual_seed(self.seed)
            cv = NeuralCV(n_features, self.layers, self.n_components, self.activation, head=self._head)
            extra = self._extra_modules(n_features)
        cv.standardize.mean.copy_(torch.as_tensor(mean))
        cv.standardize.std.copy_(torch.as_tensor(std))
        cv.to(device, dtype)
        return cv, [m.to(device, dtype) for m in extra]

    def _outputs(self, data, fn):
        """``fn`` (a torch function of features) on each trajectory of ``data`` (arrays, or a FrameSource read
        chunk by chunk), as float64 numpy arrays: a list, or a source of the outputs."""
        p = next(self.module_.parameters())

        def run(x):
            with torch.no_grad():
                return fn(torch.as_tensor(x, dtype=p.dtype, device=p.device)).double().cpu().numpy()

        return data.map(run) if is_stream(data) else [run(x) for x in data]

    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X) first.")

    def transform(self, X):
        """CV values of frames: (frames x n_components), or a list (one per trajectory) for a list, a
        Trajectory or data read chunk by chunk."""
        self._check_fitted()
        source = as_source(X)
        if source is not None:
            def cv(x):
                source.expect_features(self.n_features_in_, type(self).__name__)
                return self._outputs([x], self.module_)[0]

            source.expect_features(self.n_features_in_, type(self).__name__)
            out = source.apply(cv)
            return out[0] if isinstance(X, np.ndarray) else out
        arrays = as_trajectory_list(X, n_features=self.n_features_in_, owner=type(self).__name__)
        out = self._outputs(arrays, self.module_)
        return out[0] if is_single_table(X) else out

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def to_module(self, featurizer=None):
        """The trained CV as a torch module (features -> CV, or positions -> CV with a featurizer)."""
        self._check_fitted()
        names = [f"{self._prefix}{i + 1}" for i in range(self.n_components)]
        return CollectiveVariable(self.module_, featurizer, names)


_PARAMETERS_DOC = """    layers : list of int
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
        Pairs per optimizer step. None: full batch (fast for data that fit in memory; not allowed
        for data read from files); else shuffled minibatches.
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
        Show a progress bar."""

_ATTRIBUTES_DOC = """    module_ : NeuralCV
        The trained network (standardization included).
    history_ : dict
        {"train": [...], "valid": [...]} loss per epoch (plot with ``cl.plot.loss``).
    best_epoch_ : int
    n_features_in_ : int"""


def _fill_doc(cls):
    """Put the parameters and attributes all neural learners share into ``cls``'s docstring, which
    must stay a plain literal (an expression such as ``\"\"\"...\"\"\" + X`` is no docstring)."""
    cls.__doc__ = cls.__doc__.replace("    <common parameters>", _PARAMETERS_DOC).replace(
        "    <common attributes>", _ATTRIBUTES_DOC)
    return cls


@_fill_doc
class AutoEncoder(_NeuralLearner):
    """Autoencoder CV: the bottleneck of an encoder/decoder that reconstructs the (standardized) input.

    It finds the directions of largest (nonlinear) variance, not the slowest ones: a useful
    baseline, and the basis of generative models: trained on aligned Cartesian coordinates
    (``cl.features.AlignedPositions``), :meth:`generate` decodes structures from any latent point
    and ``cl.latent_path`` interpolates between conformations.

    Parameters
    ----------
    <common parameters>
    energy : torch.nn.Module, optional
        Physics-aware training (Ramaswamy et al., Phys. Rev. X 11, 011052 (2021)): a module mapping
        positions (n, atoms, 3) in nm to energies (n,) in kJ/mol, e.g.
        ``cl.physics.ForceFieldEnergy(system)``; the features must then be the Cartesian
        coordinates of exactly those atoms (``AlignedPositions`` of every atom). Each training step
        adds ``energy_weight`` x the mean energy of ``n_interpolations`` structures decoded at random
        points between pairs of the batch's frames in latent space. The validation loss (early
        stopping) stays the reconstruction error.
    energy_weight : float
        Weight of the energy term, 1/(kJ/mol) (default 1e-3). On alanine dipeptide (AlignedPositions
        of 22 atoms, 2-D latent) 1e-3 and 3e-4 gave equally physical latent paths (bond deviations
        0.0014-0.0022 nm vs 0.03 nm without), 3e-4 with less loss of reconstruction accuracy
        (held-out RMSD 0.080 vs 0.096 nm; 0.062 without); 1e-4 was too weak for one of two seeds.
    energy_cap : float
        Energies above this (kJ/mol, default 1e3) enter as cap (1 + ln(E / cap)).
    n_interpolations : int
        Decoded interpolations per training step (default 64).

    Attributes
    ----------
    <common attributes>

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> rng = np.random.default_rng(0)
    >>> t = rng.uniform(-1, 1, (500, 1))
    >>> X = np.hstack([t, t**2, 0.5 * t]) + 0.01 * rng.normal(size=(500, 3))  # a curve in 3-D
    >>> ae = cl.AutoEncoder(layers=[16], n_components=1, max_epochs=300, patience=300, seed=0).fit(X)
    >>> bool(abs(np.corrcoef(ae.transform(X)[:, 0], t[:, 0])[0, 1]) > 0.95)  # the bottleneck follows the curve
    True
    >>> ae.decode([[0.0]]).shape  # back to feature space
    (1, 3)
    """

    _prefix = "ae"
    _head = False

    def __init__(self, layers=(64, 32), n_components=1, activation="tanh", max_epochs=500, patience=30, lr=1e-3,
                 lr_schedule=None, batch_size=None, valid_fraction=0.2, n_blocks=10, seed=0, device="cpu",
                 dtype="float32", progress=False, energy=None, energy_weight=1e-3, energy_cap=1e3,
                 n_interpolations=64):
        self.layers, self.n_components, self.activation = layers, n_components, activation
        self.max_epochs, self.patience, self.lr, self.lr_schedule = max_epochs, patience, lr, lr_schedule
        self.batch_size, self.valid_fraction, self.n_blocks = batch_size, valid_fraction, n_blocks
        self.seed, self.device, self.dtype, self.progress = seed, device, dtype, progress
        self.energy, self.energy_weight, self.energy_cap = energy, energy_weight, energy_cap
        self.n_interpolations = n_interpolations

    def _check_params(self, owner):
        super()._check_params(owner)
        if self.energy is not None:
            if not callable(self.energy):
                raise TypeError(f"{owner}: energy must be a torch module mapping positions (n, atoms, 3) in nm to "
                                f"energies (n,) in kJ/mol, e.g. cl.physics.ForceFieldEnergy(system); got "
                                f"{type(self.energy).__name__}.")
            check_positive(self.energy_weight, "energy_weight", owner)
            check_positive(self.energy_cap, "energy_cap", owner)
            check_positive(self.n_interpolations, "n_interpolations", owner, integer=True)
            self._energy_gen = torch.Generator(device=self.device).manual_seed(int(self.seed))

    def _extra_modules(self, n_features):
        return [mlp([self.n_components, *reversed(list(self.layers)), n_features], self.activation)]

    @staticmethod
    def _target(batch):
        return batch.x

    def _errors(self, cv, extra, batch):
        (decoder,) = extra
        return ((decoder(cv.net(batch.x)) - self._target(batch)) ** 2).mean(1)

    def _loss(self, cv, extra, batch):
        loss = (batch.w * self._errors(cv, extra, batch)).sum() / batch.w.sum()
        if self.energy is not None:
            loss = loss + self.energy_weight * self._interpolation_energy(cv, extra[0], batch)
        return loss

    def _interpolation_energy(self, cv, decoder, batch):
        """Mean capped energy (kJ/mol) of structures decoded between random pairs of the batch's frames.

        Ramaswamy et al., Phys. Rev. X 11, 011052 (2021): interpolations in latent space should decode
        to low-energy structures. Energies above ``energy_cap`` grow only logarithmically
        (cap (1 + ln(E / cap))), so a few clashing structures early in training do not swamp the loss.
        """
        z = cv.net(batch.x)
        n, m = len(z), self.n_interpolations
        i = torch.randint(n, (m,), generator=self._energy_gen, device=self.device).to(z.device)
        j = torch.randint(n, (m,), generator=self._energy_gen, device=self.device).to(z.device)
        a = torch.rand((m, 1), generator=self._energy_gen, device=self.device).to(z)
        x = decoder(a * z[i] + (1 - a) * z[j]) * cv.standardize.std + cv.standardize.mean
        e = self.energy(x.double().reshape(m, -1, 3))
        cap = float(self.energy_cap)
        e = torch.where(e > cap, cap * (1 + torch.log(e.clamp(min=cap) / cap)), e)
        return e.mean().to(z.dtype)

    def _loss_parts(self, cv, extra, batch):
        return [(batch.w * self._errors(cv, extra, batch)).sum().double(), batch.w.sum().double()]

    def _parts_loss(self, parts):
        return parts[0] / parts[1]

    def decode(self, z):
        """Features (unstandardized: nm for Cartesian features) decoded from latent points ``z``.

        ``z`` is (n, n_components) or one point (n_components,); returns (n, n_features) float64.
        """
        self._check_fitted()
        z = check_latent(z, self.n_components, type(self).__name__)
        p = next(self.module_.parameters())
        with torch.no_grad():
            out = self.extra_[0](torch.as_tensor(z, dtype=p.dtype, device=p.device))
            out = out * self.module_.standardize.std + self.module_.standardize.mean
        return out.double().cpu().numpy()

    def generate(self, z, topology, atoms=None):
        """Structures decoded from latent points ``z``, as an ``mdtraj.Trajectory`` (nm).

        The model must have been trained on Cartesian features, 3 per atom in x, y, z order, e.g.
        ``cl.features.AlignedPositions``. ``topology`` is the system's (mdtraj Topology, Trajectory or
        structure file); ``atoms`` the indices of the atoms the features held, in feature order
        (``featurizer.output_atoms``), when that was not every atom. Save the result in any format
        mdtraj writes (``.save_pdb``, ``.save_dcd``, ...).
        """
        self._check_fitted()
        return features_to_trajectory(self.decode(z), topology, atoms, type(self).__name__)


@_fill_doc
class TimeLaggedAutoEncoder(AutoEncoder):
    """Time-lagged autoencoder (Wehmeyer & Noe, JCP 148, 241703 (2018)): encodes x(t), decodes x(t + lag).

    The bottleneck must carry what predicts the future, which makes it a kinetic (slow) CV.

    Parameters
    ----------
    lagtime : int
        Lag in frames.
    <common parameters>
    energy, energy_weight, energy_cap, n_interpolations
        Physics-aware training, as in :class:`AutoEncoder`.

    Attributes
    ----------
    <common attributes>

    Examples
    --------
    >>> import cvlearn as cl
    >>> system = cl.systems.HiddenDoubleWell(dim=4, barrier=10.0)
    >>> X = cl.Langevin(system, timestep=0.02, friction=1.0, n_walkers=4, seed=0).run(4000, stride=5).positions
    >>> X = [X[:, i, 0] for i in range(4)]  # one (frames, 4) array per walker
    >>> tae = cl.TimeLaggedAutoEncoder(lagtime=5, layers=[16], max_epochs=50, seed=0).fit(X)
    >>> tae.transform(X[0]).shape
    (800, 1)
    """

    _prefix = "tae"
    _lagged = True

    def __init__(self, lagtime=10, layers=(64, 32), n_components=1, activation="tanh", max_epochs=500, patience=30,
                 lr=1e-3, lr_schedule=None, batch_size=None, valid_fraction=0.2, n_blocks=10, seed=0, device="cpu",
                 dtype="float32", progress=False, energy=None, energy_weight=1e-3, energy_cap=1e3, n_interpolations=64):
        super().__init__(layers, n_components, activation, max_epochs, patience, lr, lr_schedule, batch_size,
                         valid_fraction, n_blocks, seed, device, dtype, progress, energy, energy_weight, energy_cap,
                         n_interpolations)
        self.lagtime = lagtime

    @staticmethod
    def _target(batch):
        return batch.y


@_fill_doc
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
        Regularization added to the outputs' covariance.
    <common parameters>

    Attributes
    ----------
    <common attributes>
    eigenvalues_, timescales_ : ndarray
        TICA eigenvalues of the trained outputs and implied timescales (frames), slowest first.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> rng = np.random.default_rng(0)
    >>> state = np.cumsum(rng.random(4000) < 0.01) % 2 * 2.0 - 1  # a slow two-state switch, +-1
    >>> X = np.column_stack([state + 0.5 * rng.normal(size=4000), rng.normal(size=(4000, 2))])
    >>> X = X @ np.linalg.qr(rng.normal(size=(3, 3)))[0]  # hidden by a rotation among fast noise
    >>> model = cl.DeepTICA(lagtime=5, layers=[16], max_epochs=100, seed=0).fit(X)
    >>> s, hidden = model.transform(X)[:, 0], state
    >>> bool(abs(np.corrcoef(s, hidden)[0, 1]) > 0.85)  # as good as the best linear projection (0.89)
    True
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

    def _score_loss(self, evals):
        return -(evals**2).sum() if self.score == "vamp2" else -evals.sum()

    def _loss(self, cv, extra, batch):
        return self._score_loss(_stacked_tica_eigenvalues(batch.stacked_outputs(cv.net), batch.w, self.epsilon))

    def _loss_parts(self, cv, extra, batch):
        z = batch.stacked_outputs(cv.net)
        return _pair_sums(z[:len(batch)], z[len(batch):], batch.w)

    def _parts_loss(self, parts):
        return self._score_loss(_sums_eigenvalues(parts, self.epsilon))

    def _finish(self, cv, data, weights):
        p = next(cv.parameters())
        z = self._outputs(data, lambda x: cv.net(cv.standardize(x)))
        tica = TICA(lagtime=self.lagtime, n_components=self.n_components, scaling=None, epsilon=0.0).fit(
            z, weights=weights)
        cv.head = LinearCV(tica.mean_, tica.eigenvectors_).to(p.device)
        self.eigenvalues_, self.timescales_ = tica.eigenvalues_, tica.timescales_
