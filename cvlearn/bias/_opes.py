"""OPES: on-the-fly probability enhanced sampling, PLUMED's OPES_METAD, on any number of CVs."""

import logging
import math
import os

import numpy as np
import torch

from .. import hooks
from .._validation import check_positive
from ..fes import FreeEnergySurface
from ..io import PlumedFileError, PlumedWriter, read_plumed
from ..units import BOLTZMANN, as_float
from . import _opes_files as files
from ._analytic import ValueWithGradient
from ._binding import adopt_engine_settings
from ._grid import Grid
from ._kernels import Domain, KernelSet
from ._named import NamedCV

__all__ = ["OPES"]

log = logging.getLogger("cvlearn")

_NO_TEMPERATURE = "The OPES temperature is unknown: pass temperature= (K) or attach the bias to an engine first."

#: Fewest kernel slots :meth:`OPES.fused_state` hands the compiled engine steps (see :func:`_fused_capacity`).
FUSED_MIN_CAPACITY = 32


def _fused_capacity(n):
    """Kernel slots of the fused steps for ``n`` kernels: the next power of two, at least FUSED_MIN_CAPACITY.

    The slot dimension is marked dynamic (``torch._dynamo.mark_dynamic``), so one compiled graph serves
    every kernel count (measured on torch 2.13: no recompilation from 32 to 8192 slots). The doubling
    bounds the graphs to 1 + log2(n / FUSED_MIN_CAPACITY) where a torch would specialize the shape
    anyway; it costs at most twice the kernel arithmetic, and the minimum keeps the dimension off the
    sizes 0 and 1 that torch.compile always specializes (a run starts with no kernel).
    """
    return max(FUSED_MIN_CAPACITY, 1 << max(n - 1, 0).bit_length())


def _log_bias(total, dtotal, norm, epsilon, scale, log):
    """V = scale log(total / norm + epsilon) (n,) kJ/mol and dV/ds (n, d) from the kernel sum ``total`` (n,)
    and its gradient ``dtotal`` (n, d): the one formula of the eager and the fused paths (numpy or torch;
    ``norm`` = KDE norm x Z, ``scale`` = prefactor x kT in kJ/mol, as numbers or 0-d tensors)."""
    x = total / norm + epsilon
    return scale * log(x), (scale / (norm * x))[:, None] * dtotal


def _dense_kernel_sum(s, centers, sigmas, heights, periodic, period, inv_period, cutoff2, val_at_cutoff):
    """:func:`cvlearn.bias._kernels.kernel_sum` with its gradient, in fixed shapes for ``torch.compile``:
    every (point, kernel) pair is computed and those beyond the cutoff are replaced by exact zeros (the
    eager sum gathers the pairs within it, a data-dependent shape). The same arithmetic per pair, so the
    sums differ only in their order (~1e-16 relative: every term is positive). ``periodic``: a Python bool
    per CV; ``period``, ``inv_period`` (d,) and the numbers as tensors. Padding kernels (height 0) add
    exact zeros wherever they are: the exponential is of at most 0 and at least -cutoff2 / 2, finite."""
    u, norm2 = [], 0.0
    for i in range(s.shape[1]):
        diff = s[:, i, None] - centers[:, i]
        if periodic[i]:
            diff = diff - period[i] * torch.round(diff * inv_period[i])
        u.append(diff / sigmas[:, i])
        norm2 = norm2 + u[-1] * u[-1]
    near = norm2 < cutoff2
    # Clamped: no subnormal exponentials for the far pairs, which are dropped anyway.
    gauss = heights * torch.exp(-0.5 * torch.minimum(norm2, cutoff2))
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    total = torch.where(near, gauss - heights * val_at_cutoff, zero).sum(1)
    grad = [torch.where(near, -gauss * ui / sigmas[:, i], zero).sum(1) for i, ui in enumerate(u)]
    return total, torch.stack(grad, 1)


class OPES:
    r"""OPES_METAD (Invernizzi & Parrinello, J. Phys. Chem. Lett. 11, 2731 (2020)), as in PLUMED.

    Every ``pace`` steps each walker adds a Gaussian kernel at its CV value s_n with weight
    w_n = exp(beta V(s_n)): the kernels estimate the unbiased probability P(s) by reweighting,
    and kernels closer than ``compression_threshold`` sigmas are merged, so their number follows the
    explored volume, not the simulated time. The bias is

    .. math:: V(s) = (1 - 1/\gamma) k_B T \log(P(s) / Z + \epsilon),

    with Z the mean of P over the compressed kernels' centers. It drives the CV distribution to the
    well-tempered target P(s)^(1/gamma) and soon becomes quasi-static, so frames are reweighted
    with exp(beta V(s_t, t)) and no c(t) (``cl.fes.reweight(..., bias=opes)`` does this). All
    walkers of a batched engine share one OPES and all deposit kernels (PLUMED's multiple walkers).
    Cost per step grows with the number of compressed kernels; evaluation is vectorized over them
    (torch for batches of walkers, numpy for one molecule through :meth:`value_and_gradient`, and
    inside :class:`cvlearn.Langevin`'s compiled steps through :meth:`fused_forces`).

    Parameters
    ----------
    cv : torch.nn.Module or callable
        positions (walkers, particles, dims) -> (walkers, d) CV values (or (walkers,) for d = 1),
        differentiable. ``cv.names`` (if present) names the CVs in COLVAR, KERNELS and STATE files.
    barrier : float
        kJ/mol, the highest free energy barrier to overcome. Sets, unless given explicitly,
        ``bias_factor = barrier / kT``, ``epsilon = exp(-barrier / ((1 - 1/gamma) kT))`` (so the bias
        spans at most ``barrier``) and ``kernel_cutoff = sqrt(2 barrier / ((1 - 1/gamma) kT))``
        sigmas (where a kernel has fallen to epsilon). May be None only when those three are given.
    pace : int
        Steps between kernel depositions.
    sigma : "adaptive" or float or sequence of float
        Initial kernel widths in the CV's unit, one per CV (or one for all). "adaptive": measured
        from the CV's fluctuations over ``adaptive_sigma_stride`` steps before the first kernel
        (then from the whole run, divided by sqrt(gamma)); no bias acts until then. Either way the
        widths shrink as the effective sample size N_eff grows, by
        ``(N_eff (d + 2) / 4)^(-1 / (4 + d))`` (Silverman's rule), unless ``fixed_sigma``.
    temperature : float, optional
        K; taken from the engine when omitted.
    bias_factor : float, optional
        gamma > 1 of the well-tempered target; ``np.inf`` for a uniform target (needs fixed sigma).
    epsilon : float, optional
        Regularization > 0 of the probability inside the logarithm.
    kernel_cutoff : float, optional
        Truncation of kernels, in sigmas; each kernel is shifted down by its value there.
    compression_threshold : float
        Merge a new kernel into an existing one closer than this (in that kernel's sigmas);
        0 never merges. Must be below ``kernel_cutoff``.
    adaptive_sigma_stride : int, optional
        Steps over which the adaptive sigma is first measured (default 10 * pace). The engine hands
        the CV to :meth:`update`: every step in :class:`cvlearn.Langevin`'s eager steps, every ``pace``
        steps in its fused compiled steps and in :class:`cvlearn.engine.OpenMM` (each sample then
        counts for the steps since the last one), so with adaptive sigma ``compile`` changes the run.
    sigma_min : float or sequence of float, optional
        Never shrink sigma below this.
    fixed_sigma : bool
        Do not shrink sigma with N_eff.
    recursive_merge : bool
        Keep merging a merged kernel while it has a neighbour within the threshold.
    no_zed : bool
        Z = 1 throughout (PLUMED's NO_ZED).
    periodic : None, bool or sequence
        Per CV: False/None (open), True (period (-pi, pi), radians) or a (lo, hi) period. None
        (default): periodic (-pi, pi) for the angles of a :class:`cvlearn.features.Dihedrals`
        featurizer without ``sincos``, open otherwise.
    kernels : str, optional
        Path of the KERNELS file (PLUMED format), appended as kernels are deposited (one row per
        deposited kernel, before merging, with its log-weight beta V).
    state : str, optional
        Path of the STATE file (PLUMED's format: compressed kernels and every accumulator), rewritten
        atomically every ``state_stride`` steps and by :meth:`close`.
    state_stride : int, optional
        Steps between state files (default ``pace``: after every deposition).
    restart : bool
        Continue a run: from ``state`` (exactly) if given, else from the ``kernels`` file (as PLUMED
        does: approximately, since the file has no accumulators). Files are then appended.
    label : str
        Prefix of the COLVAR columns ``label.bias``, ``label.rct``, ``label.zed``, ``label.neff``,
        ``label.nker``, as PLUMED's action label.

    Notes
    -----
    Departures from PLUMED 2.9's OPES_METAD, each deliberate: the force is the exact gradient of V
    (PLUMED's uses the kernel value shifted by its cutoff value, which differs by ~epsilon and
    makes the force slightly non-conservative); with several walkers each KERNELS row carries its
    own walker's log-weight (PLUMED writes walker 0's for all); a molecular engine samples the CV
    for the adaptive sigma every ``pace`` steps rather than every step. Not implemented: NLIST,
    CALC_WORK, running EXPLORE, and appending past states (STORE_STATES); :meth:`from_plumed_state` reads
    files that have them (the last state), and OPES_METAD_EXPLORE's STATE and KERNELS files are read
    and evaluated with its own bias (:meth:`from_plumed_state`, :meth:`from_plumed_kernels`).

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> opes = cl.OPES(cl.features.Positions(1, 1), barrier=20.0, pace=10, sigma=0.1, temperature=300.0)
    >>> round(opes.bias_factor, 3), round(float(opes.evaluate([[0.0]])[0]), 6)  # no kernel yet: V = -barrier
    (8.018, -20.0)
    """

    reweighting = "bias"  # cl.fes.reweight's default method for this bias: exp(beta V(s_t, t)), no c(t)
    _explore = False  # OPES_METAD_EXPLORE's bias (read from its files only): see from_plumed_state

    def __init__(self, cv, barrier, pace, sigma="adaptive", temperature=None, bias_factor=None, epsilon=None,
                 kernel_cutoff=None, compression_threshold=1.0, adaptive_sigma_stride=None, sigma_min=None,
                 fixed_sigma=False, recursive_merge=True, no_zed=False, periodic=None, kernels=None, state=None,
                 state_stride=None, restart=False, label="opes"):
        owner = "OPES"
        self.cv, self.label = cv, label
        explicit = bias_factor is not None and epsilon is not None and kernel_cutoff is not None
        if barrier is None and not explicit:
            raise ValueError("OPES needs barrier= (kJ/mol, the highest barrier to overcome); it may be omitted "
                             "only when bias_factor, epsilon and kernel_cutoff are all given.")
        self.barrier = None if barrier is None else check_positive(as_float(barrier, "kJ/mol"), "barrier", owner)
        self.pace = check_positive(pace, "pace", owner, integer=True)
        if bias_factor is not None and not (bias_factor > 1 and not math.isnan(bias_factor)):
            raise ValueError(f"bias_factor must be > 1 (np.inf for a uniform target); got {bias_factor}.")
        self._given = {"bias_factor": None if bias_factor is None else float(bias_factor),
                       "epsilon": None if epsilon is None else check_positive(epsilon, "epsilon", owner),
                       "kernel_cutoff": None if kernel_cutoff is None else check_positive(
                           kernel_cutoff, "kernel_cutoff", owner)}
        self.compression_threshold = check_positive(compression_threshold, "compression_threshold", owner,
                                                    allow_zero=True)
        self.temperature = None if temperature is None else check_positive(as_float(temperature, "K"),
                                                                           "temperature", owner)
        self.adaptive = isinstance(sigma, str)
        if self.adaptive and sigma.lower() != "adaptive":
            raise ValueError(f"sigma must be 'adaptive' or positive widths (one per CV); got {sigma!r}.")
        names = getattr(cv, "names", None)
        self.names = list(names) if names is not None else None
        d = self._ndim(sigma)
        if self.names is None:
            self.names = [f"cv{i + 1}" for i in range(d)]
        self.sigma0 = None if self.adaptive else self._per_cv(sigma, "sigma", d)
        self.sigma_min = None if sigma_min is None else self._per_cv(sigma_min, "sigma_min", d)
        if adaptive_sigma_stride is not None and not self.adaptive:
            raise ValueError("adaptive_sigma_stride applies only to sigma='adaptive'.")
        self.adaptive_sigma_stride = (10 * self.pace if adaptive_sigma_stride is None else
                                      check_positive(adaptive_sigma_stride, "adaptive_sigma_stride", owner,
                                                     integer=True))
        if self.adaptive and self.adaptive_sigma_stride < self.pace:
            raise ValueError(f"adaptive_sigma_stride ({self.adaptive_sigma_stride}) must be >= pace ({self.pace}).")
        self.fixed_sigma, self.recursive_merge, self.no_zed = bool(fixed_sigma), bool(recursive_merge), bool(no_zed)
        self.domain = Domain(self._periods(periodic, d))
        self._periodic_axes = tuple(b is not None for b in self.domain.bounds)  # Python bools: fused steps read it
        self.state_stride = self.pace if state_stride is None else check_positive(state_stride, "state_stride",
                                                                                  owner, integer=True)
        self.kernels_path = None if kernels is None else os.fspath(kernels)
        self.state_path = None if state is None else os.fspath(state)
        if restart and self.kernels_path is None and self.state_path is None:
            raise ValueError("restart=True needs the file to restart from: state= (exact) or kernels=.")
        self._restart = bool(restart)
        self.timestep = None
        self._writer = None
        self._last_s = self._last_v = None
        self._last_step = None
        self._block_end = False  # the last evaluation was a fused block's last configuration (see update)
        self._fused_cache = None  # (key, state) of fused_state, rebuilt when the kernels or Z change
        self._runnable = None  # why this bias cannot run, for biases read from a file without pace/sigma
        self._kernels = None
        if self.temperature is not None or explicit:
            self._configure()

    # -- set-up ----------------------------------------------------------------------------------
    def _ndim(self, sigma):
        """Number of CVs: from the CV's names, else from sigma given per CV, else 1."""
        if self.names is not None:
            return len(self.names)
        return len(sigma) if not isinstance(sigma, str) and np.ndim(sigma) == 1 else 1

    def _per_cv(self, value, name, d):
        a = np.asarray(value, dtype=np.float64)
        if a.ndim > 1 or (a.ndim == 1 and len(a) not in (1, d)):
            raise ValueError(f"{name} must be one value or one per CV ({d}: {self.names}); got {value!r}.")
        a = np.broadcast_to(a.ravel() if a.ndim else a, (d,)).copy()
        if not (np.all(np.isfinite(a)) and np.all(a > 0)):
            raise ValueError(f"{name} must be positive for every CV; got {value!r}.")
        return a

    def _periods(self, periodic, d):
        if periodic is None:
            periodic = hooks.periodicity(self.cv)
        entries = [periodic] * d if isinstance(periodic, bool) or periodic is None else list(periodic)
        if len(entries) != d:
            raise ValueError(f"periodic must be one value or one per CV ({d}: {self.names}); got {periodic!r}.")
        out = []
        for p in entries:
            if p is None or p is False:
                out.append(None)
            elif p is True:
                out.append((-math.pi, math.pi))
            elif len(p) == 2 and float(p[1]) > float(p[0]):
                out.append((float(p[0]), float(p[1])))
            else:
                raise ValueError(f"Each periodic entry must be False, True (-pi, pi) or a (lo, hi) period; got {p!r}.")
        return out

    @property
    def ndim(self):
        return len(self.names)

    def _configure(self):
        """Constants that may need kT (bias factor, epsilon, cutoff) and the starting accumulators."""
        g = self._given
        if g["bias_factor"] is None:
            gamma = self.barrier / self.kT
            if not gamma > 1:
                raise ValueError(f"barrier ({self.barrier} kJ/mol) must exceed kT ({self.kT:.4g} kJ/mol at "
                                 f"{self.temperature} K), since the bias factor gamma = barrier / kT must be > 1; "
                                 "raise the barrier or pass bias_factor.")
        else:
            gamma = g["bias_factor"]
        if math.isinf(gamma) and self.adaptive:
            raise ValueError("bias_factor=inf (uniform target) cannot be used with sigma='adaptive'; give sigma.")
        self.bias_factor = gamma
        # 1 for gamma = inf; OPES_METAD_EXPLORE: V = (gamma - 1) kT log(P / Z + epsilon), P the plain KDE.
        self.prefactor = gamma - 1.0 if self._explore else 1.0 - 1.0 / gamma
        self.epsilon = g["epsilon"] if g["epsilon"] is not None else math.exp(
            -self.barrier / (self.prefactor * self.kT))
        if not self.epsilon > 0:
            raise ValueError(f"epsilon = exp(-barrier / ((1 - 1/gamma) kT)) underflows for barrier {self.barrier} "
                             "kJ/mol: is the barrier too high? Pass epsilon= explicitly.")
        self.kernel_cutoff = g["kernel_cutoff"] if g["kernel_cutoff"] is not None else math.sqrt(
            2.0 * self.barrier / (self.prefactor * self.kT))
        if self.compression_threshold >= self.kernel_cutoff:
            raise ValueError(f"compression_threshold ({self.compression_threshold}) must be below kernel_cutoff "
                             f"({self.kernel_cutoff:.4g} sigmas).")
        self._kernels = KernelSet(self.domain, self.kernel_cutoff, self.compression_threshold, self.recursive_merge)
        # PLUMED starts the weights with one sample of weight exp(beta V_0) = epsilon^(1 - 1/gamma): no NaN at start.
        self._sum_w = 1.0 if self.no_zed else self.epsilon ** self.prefactor
        self._sum_w2 = self._sum_w**2
        self._counter = 1
        self.zed = 1.0
        self._adaptive_counter = 0
        self._av_cv = self._av_m2 = None

    @property
    def kT(self):
        """Thermal energy, kJ/mol."""
        if self.temperature is None:
            raise ValueError(_NO_TEMPERATURE)
        return BOLTZMANN * self.temperature

    def _require_configured(self):
        if self._kernels is None:
            raise ValueError(_NO_TEMPERATURE)

    # -- engine protocol -------------------------------------------------------------------------
    def bind(self, temperature, timestep):
        """Called by the engine: adopt its temperature (K) and timestep (ps); restart and open files."""
        if self._runnable is not None:
            raise ValueError(self._runnable)
        adopt_engine_settings(self, temperature, timestep, "OPES")
        if self._kernels is None:
            self._configure()
        if self._restart:
            self._restart = False
            if self.state_path is not None:
                if not os.path.exists(self.state_path):
                    raise FileNotFoundError(f"restart=True, but the state file {self.state_path} does not exist.")
                self._load_state(files.read_state(self.state_path), self.state_path)
                log.info("Restarted OPES from %d kernels in %s", len(self._kernels), self.state_path)
                if self.kernels_path is not None:
                    self._open_kernels(self.kernels_path, append=True)
            elif self.kernels_path is not None:
                self.open_hills(self.kernels_path, restart=True)
        if self.kernels_path is not None and self._writer is None:
            self._open_kernels(self.kernels_path, append=False)

    def open_hills(self, path, restart=False):
        """Write the KERNELS file to ``path``; with ``restart``, first rebuild the bias from it (as PLUMED's
        RESTART without a state file: approximate) and append. Engines call this for ``run(hills=...)``."""
        if self._writer is not None and os.path.abspath(path) == os.path.abspath(self._writer.path):
            return
        self._require_configured()
        if restart and os.path.exists(path):
            n = self.load_kernels(path)
            log.warning("Restarted OPES from %d kernels in %s: approximate (a state file restarts exactly).", n, path)
        self._open_kernels(path, append=restart)

    def _open_kernels(self, path, append):
        if self._writer is not None:
            self._writer.close()
        self.kernels_path = os.fspath(path)
        consts = files.header(files.KERNELS_ACTION, self._settings(), self.names, self.domain.bounds)
        self._writer = PlumedWriter(self.kernels_path, files.kernel_fields(self.names), consts, append=append)

    def cv_values(self, positions):
        """CV values (walkers, d) of ``positions``, periodic components wrapped."""
        return self.domain.wrap(self._unwrapped_cv(positions))

    def _unwrapped_cv(self, positions):
        s = self.cv(positions)
        if s.ndim == 1:
            s = s[:, None]
        if s.shape[1] != self.ndim:
            raise ValueError(f"The CV returns {s.shape[1]} values per walker; this OPES was set up for {self.ndim} "
                             f"({self.names}). Give sigma one value per CV, or a CV with `names`.")
        return s

    def energy(self, positions):
        """Bias energy (walkers,) in kJ/mol, differentiable in ``positions`` (torch)."""
        self._require_configured()
        s = self.cv_values(positions)
        v = ValueWithGradient.apply(s, self._value_and_gradient)
        self._last_s, self._last_v = s.detach(), v.detach()
        self._block_end = False
        return v

    # -- fused engine steps (cvlearn.bias.Fusable) --------------------------------------------------
    def fused_state(self, dtype, device):
        """What :meth:`fused_forces` reads, as tensors of ``dtype`` on ``device``: the kernels padded to
        :func:`_fused_capacity` slots (center 0, sigma 1, height 0: exact zeros), the numbers (KDE norm x Z,
        epsilon, prefactor x kT in kJ/mol, cutoff^2, kernel value at the cutoff) and the periods. Numbers
        that change at a deposition are tensors, not Python floats that the compiled graph would be
        specialized on; rebuilt only when the kernels or Z changed."""
        self._require_configured()
        k = self._kernels
        norm = self._kde_norm * self.zed
        key = (dtype, torch.device(device), k, k._next_id, len(k), norm)
        if self._fused_cache is None or self._fused_cache[0] != key:
            n, slots = len(k), _fused_capacity(len(k))
            centers, sigmas, heights = np.zeros((slots, self.ndim)), np.ones((slots, self.ndim)), np.zeros(slots)
            centers[:n], sigmas[:n], heights[:n] = k.centers, k.sigmas, k.heights
            numbers = np.array([norm, self.epsilon, self.kT * self.prefactor, k.cutoff2, k.val_at_cutoff])
            d = self.domain
            state = tuple(torch.as_tensor(a, dtype=dtype, device=device)
                          for a in (centers, sigmas, heights, numbers, d.period, d.inv_period, d.lo))
            for kernel_array in state[:3]:  # a deposition changes the slot count, not the graph
                torch._dynamo.mark_dynamic(kernel_array, 0)
            self._fused_cache = (key, state)
        return self._fused_cache[1]

    def fused_forces(self, positions, state):
        """Bias (walkers,) kJ/mol, its force (walkers, particles, dims) kJ/mol/nm, the wrapped CV values
        (walkers, d) and all-True flags at torch ``positions``: :meth:`energy` and its autograd force in
        pure torch (the CV's pullback by ``torch.func.vjp``), with ``state`` from :meth:`fused_state`."""
        centers, sigmas, heights, numbers, period, inv_period, lo = state
        norm, epsilon, scale, cutoff2, val_at_cutoff = numbers.unbind()

        def cv_values(x):  # as cv_values(): Domain.wrap with the state's tensors
            s = self._unwrapped_cv(x)
            return s - period * torch.floor((s - lo) * inv_period) if self.domain.any_periodic else s

        s, pullback = torch.func.vjp(cv_values, positions)
        total, dtotal = _dense_kernel_sum(s, centers, sigmas, heights, self._periodic_axes, period, inv_period,
                                          cutoff2, val_at_cutoff)
        v, grad = _log_bias(total, dtotal, norm, epsilon, scale, torch.log)
        (force,) = pullback(-grad)
        return v, force, s, torch.ones_like(v, dtype=torch.bool)

    def fused_record(self, cv_values, bias):
        """Record the last configuration of a fused block, as :meth:`energy` would have."""
        self._last_s, self._last_v = cv_values, bias
        self._block_end = True

    def _value_and_gradient(self, s):
        """V (n,) kJ/mol and dV/ds (n, d) at wrapped CV values ``s`` (n, d), numpy or torch (no autograd).

        The exact gradient of V (PLUMED's force uses the shifted kernel value: off by ~epsilon).
        """
        total, dtotal = self._kernels.sum_and_gradient(s)
        log = np.log if isinstance(total, np.ndarray) else torch.log
        return _log_bias(total, dtotal, self._kde_norm * self.zed, self.epsilon, self.kT * self.prefactor, log)

    def _bias(self, s):
        """V at CV values ``s`` (n, d), numpy or torch (differentiable by autograd)."""
        lib = np if isinstance(s, np.ndarray) else torch
        prob = self._kernels.sum(s) / self._kde_norm
        return self.kT * self.prefactor * lib.log(prob / self.zed + self.epsilon)

    def value_and_gradient(self, s):
        """Bias V (n,) kJ/mol and dV/ds (n, d) at CV values ``s`` (n, d), numpy, without autograd.

        The molecular engines' lean path. Records ``s`` and ``V`` for :meth:`colvar` and deposition.
        """
        self._require_configured()
        s = self.domain.wrap(np.asarray(s, dtype=np.float64).reshape(-1, self.ndim))
        v, grad = self._value_and_gradient(s)
        self._last_s, self._last_v = torch.from_numpy(s), torch.from_numpy(v)
        self._block_end = False
        return v, grad

    def evaluate(self, points):
        """Bias V (kJ/mol) at CV values ``points`` (n, d) or (n,) for d = 1 (numpy in, numpy out)."""
        self._require_configured()
        return self._bias(self.domain.wrap(np.asarray(points, dtype=np.float64).reshape(-1, self.ndim)))

    def probability(self, points):
        """The reweighted estimate of the unbiased P(s) at ``points`` (n, d), normalized as PLUMED's (sum of
        weights = 1; kernel heights carry the sigma rescaling, not 1/(sqrt(2 pi) sigma))."""
        self._require_configured()
        s = self.domain.wrap(np.asarray(points, dtype=np.float64).reshape(-1, self.ndim))
        return self._kernels.sum(s) / self._kde_norm

    @property
    def _kde_norm(self):
        """PLUMED's KDEnorm: the sum of the weights (OPES_METAD), the number of kernels (EXPLORE: unweighted)."""
        return float(self._counter) if self._explore else self._sum_w

    def update(self, step, positions):
        """Measure the CV (adaptive sigma) and, every ``pace`` steps, add one kernel per walker.

        After a fused block of :class:`cvlearn.Langevin` the adaptive sigma samples the CV only at the
        multiples of ``pace`` (each sample standing for the steps since the last), as on a molecular
        engine: blocks also end at recorded frames, and the COLVAR stride must not change the run.
        """
        if self.adaptive and self._block_end and step % self.pace:
            return
        s = (self._last_s if self._last_s is not None else self.cv_values(positions).detach()).cpu().double().numpy()
        if self._last_step is None:  # an engine calls every step, or (molecular engines) every pace steps
            dstep = self.pace if step % self.pace == 0 else 1
        else:
            dstep = step - self._last_step
        self._last_step = step
        if self.adaptive:
            self._measure(dstep, s)
            if self._adaptive_counter < self.adaptive_sigma_stride and self._counter == 1:
                return  # no kernel (no bias) before sigma is measured
        if step % self.pace:
            return
        v = self._last_v.cpu().double().numpy() if self._last_v is not None else self._bias(s)
        self.deposit(s, v, step)
        if self.state_path is not None and step % self.state_stride == 0:
            self.save_state(self.state_path, step)

    def _measure(self, dstep, s):
        """Running CV mean (decaying over adaptive_sigma_stride steps) and summed squared deviation, per walker;
        a sample stands for the ``dstep`` steps since the last one (PLUMED samples every step)."""
        if self._av_cv is None:
            self._av_cv, self._av_m2 = np.zeros_like(s), np.zeros_like(s)
        elif self._av_cv.shape != s.shape:
            raise ValueError(f"This OPES measured sigma for {len(self._av_cv)} walker(s); the engine has {len(s)}.")
        self._adaptive_counter += dstep
        tau = min(self._adaptive_counter, self.adaptive_sigma_stride) / dstep
        diff = self.domain.difference(s - self._av_cv)
        self._av_cv += diff / tau
        self._av_m2 += dstep * diff * self.domain.difference(s - self._av_cv)

    def deposit(self, s, v, step):
        """Add one kernel per walker at CV values ``s`` (walkers, d), where the bias is ``v`` (walkers,) kJ/mol."""
        s = np.asarray(s, dtype=np.float64).reshape(-1, self.ndim)
        n, d = s.shape
        logw = np.asarray(v, dtype=np.float64).reshape(n) / self.kT
        heights = np.exp(logw)
        old_sum_w = self._sum_w
        self._counter += n
        self._sum_w += float(heights.sum())
        self._sum_w2 += float((heights**2).sum())
        if self.adaptive:
            if self._counter == 1 + n:  # the first estimate is from unbiased sampling: rescale it as biased
                self._av_m2 /= 1.0 - self.prefactor
            sigma = np.sqrt(self._av_m2 / self._adaptive_counter * (1.0 - self.prefactor))
        else:
            sigma = np.tile(self.sigma0, (n, 1))
        if not self.fixed_sigma:
            rescale = (self.neff * (d + 2.0) / 4.0) ** (-1.0 / (4.0 + d))
            factor = np.full_like(sigma, rescale) if self.sigma_min is None else np.maximum(
                rescale, self.sigma_min / sigma)
            sigma = sigma * factor
            heights = heights / factor.prod(1)  # P's normalization 1/sigma^d, up to a constant that Z cancels
        before = self._kernels.snapshot()
        for k in range(n):
            self._kernels.add(heights[k], s[k], sigma[k])
        if not self.no_zed:
            total = self._kernels.overlap(before, self.zed * old_sum_w * len(before[0]))
            self.zed = float(total / self._sum_w / len(self._kernels))
        if self._writer is not None:
            time = np.full(n, self._time(step))
            self._writer.write(np.column_stack([time, self.domain.wrap(s), sigma, heights, logw]))

    def _time(self, step):
        return step * self.timestep if self.timestep is not None else float(step)

    # -- what PLUMED prints ------------------------------------------------------------------------
    @property
    def rct(self):
        """kT log(sum of weights / number of samples), kJ/mol: PLUMED's ``rct`` (not for reweighting)."""
        return self.kT * math.log(self._sum_w / self._counter)

    @property
    def neff(self):
        """Effective sample size (1 + sum w)^2 / (1 + sum w^2) of the kernel weights."""
        return (1.0 + self._sum_w) ** 2 / (1.0 + self._sum_w2)

    @property
    def n_kernels(self):
        """Number of compressed kernels."""
        return 0 if self._kernels is None else len(self._kernels)

    @property
    def kernels(self):
        """Compressed kernels as a dict of arrays: center (n, d), sigma (n, d), height (n,)."""
        self._require_configured()
        k = self._kernels
        return {"center": k.centers.copy(), "sigma": k.sigmas.copy(), "height": k.heights.copy()}

    def colvar(self):
        """COLVAR columns of the last evaluated configuration: CVs, bias, rct, zed, neff, nker."""
        out = {name: self._last_s[:, i] for i, name in enumerate(self.names)}
        v = self._last_v
        p = self.label
        out[f"{p}.bias"] = v
        for key, value in (("rct", self.rct), ("zed", self.zed), ("neff", self.neff), ("nker", self.n_kernels)):
            out[f"{p}.{key}"] = torch.full_like(v, float(value))
        return out

    # -- files -----------------------------------------------------------------------------------
    def _settings(self):
        return {"biasfactor": self.bias_factor, "epsilon": self.epsilon, "kernel_cutoff": self.kernel_cutoff,
                "compression_threshold": self.compression_threshold}

    def save_state(self, path, step=None):
        """Write the STATE file (PLUMED's OPES_METAD_state format) to ``path``, atomically."""
        self._require_configured()
        acc = {"zed": self.zed, "sum_weights": self._sum_w, "sum_weights2": self._sum_w2, "counter": self._counter}
        if self.adaptive:
            acc |= {"adaptive_counter": self._adaptive_counter, "av_cv": self._av_cv, "av_M2": self._av_m2}
        step = self._last_step if step is None else step
        k = self._kernels
        files.write_state(path, self._time(step or 0), self._settings(), self.names, self.domain.bounds, acc,
                          k.centers, k.sigmas, k.heights)

    def _load_state(self, state, path):
        """Kernels and accumulators from :func:`files.read_state` (this bias's settings win, as in PLUMED)."""
        if len(state["names"]) != self.ndim:
            raise ValueError(f"{path} holds an OPES state on {len(state['names'])} CV(s), this bias has {self.ndim}.")
        for key, ours in self._settings().items():
            theirs = state["settings"][key]
            if not (ours == theirs or abs(ours - theirs) <= 1e-6 * abs(ours)):
                log.warning("OPES restart: %s was %g in %s, it is %g now.", key, theirs, path, ours)
        acc = state["acc"]
        if self.adaptive and "adaptive_counter" not in acc:
            raise ValueError(f"{path} was written by a fixed-sigma run (no adaptive_counter): pass sigma= values.")
        self._kernels.set(state["centers"], state["sigmas"], state["heights"])
        self.zed, self._sum_w, self._sum_w2 = acc["zed"], acc["sum_weights"], acc["sum_weights2"]
        self._counter = acc["counter"]
        if self.adaptive:
            self._adaptive_counter, self._av_cv, self._av_m2 = acc["adaptive_counter"], acc["av_cv"], acc["av_M2"]

    def load_kernels(self, path):
        """Add the kernels of a KERNELS file as PLUMED's restart does (merging them, weights from the
        ``logweight`` column, Z recomputed); returns the number of rows read. Columns are matched by
        name in every block (a restarted run may print the CVs in another order). Approximate: the
        file does not hold the adaptive-sigma accumulators."""
        self._require_configured()
        table = read_plumed(path)
        action = table.constants.get("action")
        expected = files.EXPLORE_KERNELS_ACTION if self._explore else files.KERNELS_ACTION
        if action is not None and action != expected:
            raise PlumedFileError(f"{path} was written by {action.rsplit('_', 1)[0]}, this bias is "
                                  f"{expected.rsplit('_', 1)[0]}: their kernels weigh differently.", path=path)
        cols = files.kernel_fields(self.names)
        try:
            data = table.columns(cols)
        except PlumedFileError as err:
            raise PlumedFileError(f"{err} This OPES bias is on the CVs {self.names}; an OPES KERNELS file on them has "
                                  f"the columns {cols}.", path=err.path, line=err.line) from None
        d = self.ndim
        for row in data:
            self._kernels.add(row[-2], row[1:1 + d], row[1 + d:1 + 2 * d])
        w = np.exp(data[:, -1])
        self._sum_w += float(w.sum())
        self._sum_w2 += float((w**2).sum())
        self._counter += len(data)
        if not self.no_zed and len(self._kernels):
            self.zed = self._kernels.overlap() / self._kde_norm / len(self._kernels)
        return len(data)

    @classmethod
    def from_plumed_kernels(cls, path, cv=None, temperature=None, pace=None, sigma=None, **kwargs):
        """The OPES bias PLUMED's OPES_METAD (or OPES_METAD_EXPLORE) rebuilds on RESTART from a KERNELS file.

        As :meth:`from_plumed_state`, from every kernel of the file instead of a state (kernels merged
        again, weights from ``logweight``; PLUMED warns this is approximate, and so it is, identically).
        ``temperature`` in K; ``no_zed`` and ``recursive_merge`` as the run's (they are not in the file).
        """
        path = os.fspath(path)
        names, bounds, g, explore = files.kernels_header(path)
        bias = cls._from_file(path, names, bounds, g, explore, cv, temperature, pace, sigma, False, kwargs)
        bias.load_kernels(path)
        return bias

    @classmethod
    def _from_file(cls, path, names, bounds, g, explore, cv, temperature, pace, sigma, adaptive, kwargs):
        kind = _OPESExplore if explore else cls
        bias = kind(cv if cv is not None else NamedCV(names), None, pace or 1,
                    sigma="adaptive" if adaptive else (1.0 if sigma is None else sigma), temperature=temperature,
                    bias_factor=g["biasfactor"], epsilon=g["epsilon"], kernel_cutoff=g["kernel_cutoff"],
                    compression_threshold=g["compression_threshold"], periodic=bounds, **kwargs)
        if explore:
            bias._runnable = (f"{path} holds an OPES_METAD_EXPLORE bias: cvlearn evaluates it (evaluate, "
                              "probability, reweighting) but does not continue EXPLORE runs.")
        elif pace is None or (sigma is None and not adaptive):
            bias._runnable = (f"This OPES bias was read from {path} without pace= (and, for a fixed-sigma run, "
                              "sigma=); pass them when reading the file (OPES.from_plumed_state or "
                              "OPES.from_plumed_kernels) to continue the run.")
        return bias

    @classmethod
    def from_plumed_state(cls, path, cv=None, temperature=None, pace=None, sigma=None, **kwargs):
        """The OPES bias of a STATE file written by PLUMED's OPES_METAD or by cvlearn.

        ``evaluate(points)`` then gives the bias PLUMED computes from the same state (at
        ``temperature``, K, which the file does not hold). Bias factor, epsilon, kernel cutoff,
        compression threshold and periodicity come from the file; CV columns are taken in the order
        of its last state. An OPES_METAD_EXPLORE state gives its own bias, (gamma - 1) kT
        log(P / Z + epsilon) with P the unweighted estimate (evaluated, not continued). To continue
        the run pass ``pace`` and, for a fixed-sigma run, the initial ``sigma`` (the file holds only
        rescaled widths); other keyword arguments go to :class:`OPES`.
        """
        path = os.fspath(path)
        state = files.read_state(path)
        adaptive = "adaptive_counter" in state["acc"]
        bias = cls._from_file(path, state["names"], state["bounds"], state["settings"], state["explore"], cv,
                              temperature, pace, sigma, adaptive, kwargs)
        bias._load_state(state, path)
        return bias

    def close(self):
        """Close the KERNELS file and write the final state file (if any)."""
        if self._writer is not None:
            self._writer.close()
        if self.state_path is not None and self._kernels is not None:
            self.save_state(self.state_path)

    # -- analysis --------------------------------------------------------------------------------
    def free_energy(self, grid=None, bins=100):
        """F(s) = -kT log P(s) from the kernels' estimate of the unbiased probability, kJ/mol (minimum 0).

        ``grid``: a :class:`cvlearn.Grid`; default the kernels' range +- 3 sigma (whole period on periodic
        CVs) with ``bins`` intervals per CV. The reweighted histogram (``cl.fes.reweight``) is the
        estimate PLUMED recommends; this one is for a quick look: as in PLUMED, kernel heights are not
        divided by the (adaptive, per-walker) sigma they were deposited with, so with adaptive sigma
        wells of different widths are weighted slightly wrongly (0.5 kT on the tests' double well).
        """
        self._require_configured()
        if grid is None:
            k = self._kernels
            if not len(k):
                raise ValueError("This OPES has no kernels yet: nothing to estimate F from.")
            per = self.domain.periodic
            lo = np.where(per, self.domain.lo, k.centers.min(0) - 3 * k.sigmas.max(0))
            hi = np.where(per, self.domain.lo + self.domain.period, k.centers.max(0) + 3 * k.sigmas.max(0))
            grid = Grid(lo, hi, bins, periodic=per)
        with np.errstate(divide="ignore"):
            F = -self.kT * np.log(self.probability(grid.points))
        return FreeEnergySurface(grid.axes, F.reshape(grid.shape), self.temperature, names=self.names,
                                 metadata={"method": "opes_kde", "n_kernels": self.n_kernels, "neff": self.neff})


class _OPESExplore(OPES):
    """OPES_METAD_EXPLORE's bias, as read from its STATE or KERNELS file (evaluated, not continued)."""

    _explore = True
