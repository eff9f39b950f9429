"""The learn -> bias -> reweight -> relearn loop, run until the free energy and the CV stop changing.

A CV learned from a run that never left its first basin knows nothing of the transition; biasing
it still pushes the system out, and the biased frames, reweighted to the unbiased ensemble, teach
the next CV about the path. :func:`iterate` repeats that and keeps every round (CV, bias, run,
free energy difference, transition count) so the convergence can be inspected and plotted.
"""

import inspect
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import clone

from . import fes as fes_mod
from ._validation import check_positive
from .bias import Grid, WellTemperedMetad
from .engine import Trajectory
from .exceptions import ConvergenceWarning
from .fes import Basin, DeltaF

__all__ = ["iterate", "Round", "IterationResult", "metad_for", "opes_for", "fluctuation", "count_transitions"]

log = logging.getLogger("cvlearn")


@dataclass
class Round:
    """One round of :func:`iterate`.

    ``delta_f`` is F(b) - F(a) (kJ/mol, with block error) from this round's biased run alone, read
    off ``fes`` (its free energy surface on the reweighting variables); ``transitions`` counts committed
    basin changes in it (all walkers); ``cv_change`` is 1 - |Pearson r| between this round's CV and the
    previous one on the same frames (NaN in round 1).

    ``sampled`` is False when the run did not sample both basins (no transition, or fewer than
    ``min_fraction`` of its analysed frames in one of them): ``delta_f`` is then NaN, never a number
    from a basin barely visited; ``missing`` names the basin ("a" or "b") and ``bound`` (kJ/mol)
    says how high F(b) - F(a) at least is (b missing) or how low at most (a missing): the value it
    would take with one more frame of the largest weight in the missing basin.
    ``strength`` is the factor the bias was scaled by (doubled after each round without a transition);
    ``scores`` the model-selection scores of the ensemble the CV was chosen from. ``continued`` counts
    the earlier rounds whose bias this round continued (``learn_rounds``): its ``delta_f`` and ``fes``
    then cover all of them, its ``trajectory`` and ``transitions`` this round alone.

    Examples
    --------
    Rounds are made by :func:`iterate` (see its example); by hand, for a table or a test:

    >>> import cvlearn as cl
    >>> from cvlearn.fes import DeltaF
    >>> r = cl.loop.Round(1, cv=None, bias=None, trajectory=None, delta_f=DeltaF(3.9, 0.2), transitions=12,
    ...                   cv_change=float("nan"))
    >>> r.delta_f.value, r.delta_f.error, r.transitions             # kJ/mol, kJ/mol, count
    (3.9, 0.2, 12)
    """

    index: int
    cv: torch.nn.Module
    bias: object
    trajectory: object
    delta_f: object
    transitions: int
    cv_change: float
    fes: object = None
    sampled: bool = True
    bound: float = None
    strength: float = 1.0
    scores: list = field(default_factory=list)
    continued: int = 0
    missing: str = None


@dataclass
class IterationResult:
    """All rounds of :func:`iterate`, and whether the stopping criteria were met.

    Examples
    --------
    >>> import cvlearn as cl
    >>> from cvlearn.fes import DeltaF
    >>> r = cl.loop.Round(1, cv=None, bias=None, trajectory=None, delta_f=DeltaF(3.9, 0.2), transitions=12,
    ...                   cv_change=float("nan"))
    >>> cl.IterationResult(rounds=[r]).summary()
    [{'round': 1, 'delta_f': 3.9, 'error': 0.2, 'transitions': 12, 'cv_change': nan, 'sampled': True, \
'bound': None, 'strength': 1.0, 'continued': 0, 'missing': None}]
    """

    rounds: list = field(default_factory=list)
    converged: bool = False

    @property
    def cv(self):
        """The CV of the last round."""
        return self.rounds[-1].cv

    @property
    def delta_f(self):
        """The loop's answer, a :class:`cvlearn.fes.DeltaF` (kJ/mol), or None when no round sampled both basins.

        Converged: the inverse-variance weighted mean of the last two rounds (independent runs, fresh
        biases, that agree within the stopping rule), with its standard error; when the last round
        continued a bias, its estimate over all rounds of that bias. Otherwise the last round that
        sampled both basins.
        """
        good = [r for r in self.rounds if r.sampled]
        if not good:
            return None
        if not self.converged or len(good) < 2 or good[-1].continued:
            return good[-1].delta_f
        pair = [r.delta_f for r in good[-2:]]
        err = np.array([d.error for d in pair])
        if not np.all(np.isfinite(err) & (err > 0)):
            return DeltaF(float(np.mean([d.value for d in pair])), float("nan"))
        w = 1.0 / err**2
        return DeltaF(float(np.sum(w * [d.value for d in pair]) / w.sum()), float(1.0 / np.sqrt(w.sum())))

    def summary(self):
        """One dict per round: index, delta_f, its error, transitions, cv_change, sampled, bound, strength,
        continued (for tables and JSON)."""
        return [{"round": r.index, "delta_f": r.delta_f.value, "error": r.delta_f.error,
                 "transitions": r.transitions, "cv_change": r.cv_change, "sampled": r.sampled, "bound": r.bound,
                 "strength": r.strength, "continued": r.continued, "missing": r.missing} for r in self.rounds]

    def plot(self, exact=None, axes=None, exact_label="exact"):
        """ΔF per round with error bars (and ``exact``, kJ/mol, labelled ``exact_label``) and transitions per
        round; returns the axes."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
        rows = self.summary()
        k = [r["round"] for r in rows]
        ok = [r for r in rows if r["sampled"]]
        axes[0].errorbar([r["round"] for r in ok], [r["delta_f"] for r in ok], yerr=[r["error"] for r in ok],
                         marker="o", capsize=3, ls="none", label="round ΔF")
        for side, marker, words in (("b", "^", "b not sampled: ΔF above"), ("a", "v", "a not sampled: ΔF below")):
            bounds = [r for r in rows if r["missing"] == side and r["bound"] is not None and np.isfinite(r["bound"])]
            if bounds:
                axes[0].plot([r["round"] for r in bounds], [r["bound"] for r in bounds], marker=marker, ls="none",
                             color="C3", label=words)
        if exact is not None:
            axes[0].axhline(exact, color="k", ls="--", lw=1, label=exact_label)
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(fontsize=8)
        axes[0].set(xlabel="round", ylabel="ΔF (kJ/mol)", xticks=k)
        axes[1].bar(k, [r["transitions"] for r in rows], alpha=0.3)
        axes[1].set(xlabel="round", ylabel="transitions", xticks=k)
        axes[1].set_ylim(0, max(1, max(r["transitions"] for r in rows)) * 1.1)  # never a -0.04..0.04 axis
        return axes


def count_transitions(values, basin_a, basin_b):
    """Committed transitions between two basins along each walker's path (a visit to the other basin
    after leaving one; time spent in neither does not count). ``values`` (frames, walkers, k).

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> x = np.array([-1.0, -0.2, 0.1, 1.0, 0.3, 1.0, -1.0])[:, None, None]     # (frames, walkers, 1), nm
    >>> left, right = cl.fes.Basin(lo=[-9.0], hi=[-0.5]), cl.fes.Basin(lo=[0.5], hi=[9.0])
    >>> cl.loop.count_transitions(x, left, right)      # left -> right -> left; the return to right is not new
    2
    """
    a, b = (x if isinstance(x, Basin) else Basin(**x) for x in (basin_a, basin_b))
    total = 0
    for w in range(values.shape[1]):
        state = 0
        for in_a, in_b in zip(a.contains(values[:, w]), b.contains(values[:, w])):
            now = 1 if in_a else 2 if in_b else 0
            if now and state and now != state:
                total += 1
            state = now or state
    return total


def metad_for(cv, s, height=1.5, bias_factor=10.0, pace=100, sigma_fraction=0.5, margin=3.0, bins_per_sigma=5,
              strength=1.0):
    """A 1-D well-tempered metadynamics bias on ``cv`` sized from its values ``s`` on the training frames.

    sigma = ``sigma_fraction`` x std(s); the grid spans the observed range widened by ``margin`` times
    that range on each side (room for the basins the training data never saw), with harmonic walls
    beyond whose stiffness scales with the CV (20 kJ/mol at one sigma past the edge), so that a CV
    with small units does not become a wall too stiff for the timestep. ``strength`` multiplies the
    bias factor, i.e. the height the bias may reach (:func:`iterate` doubles it after a round without a
    transition).

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> s = np.random.default_rng(0).normal(size=1000)                # the CV on its training frames
    >>> metad = cl.loop.metad_for(cl.features.Positions(1, 1), s, height=1.5, bias_factor=10.0)
    >>> round(float(metad.sigma[0]), 3), metad.outside                  # sigma = 0.5 std(s)
    (0.488, 'wall')
    """
    s = _columns(s)
    sigma = sigma_fraction * s.std(axis=0)
    span = np.maximum(np.ptp(s, axis=0), sigma)
    lo, hi = s.min(axis=0) - margin * span, s.max(axis=0) + margin * span
    grid = Grid(lo, hi, np.ceil((hi - lo) / (sigma / bins_per_sigma)).astype(int))
    wall_kappa = 40.0 / np.max(sigma) ** 2  # 20 kJ/mol one sigma past the edge of the widest CV: never stiffer
    if s.shape[1] == 1:
        sigma = float(sigma[0])
    return WellTemperedMetad(cv, sigma=sigma, height=height, bias_factor=bias_factor * strength, pace=pace, grid=grid,
                             outside="wall", wall_kappa=wall_kappa)


def fluctuation(segments, window_ps=1.0, temperature=None):
    """The CV's typical fluctuation over ``window_ps``: the mean standard deviation within windows of
    that length, per time-ordered segment, each scaled to ``temperature`` by sqrt(T / T_segment)
    (harmonic fluctuations grow as sqrt(T), so a hot exploration tells the width at the target).

    ``segments`` are (values (frames,), temperature K, frame spacing ps) triples, as :func:`iterate`
    hands them to a bias factory.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> rng = np.random.default_rng(0)
    >>> hot = (rng.normal(scale=0.2, size=5000), 1200.0, 0.2)       # CV values, K, ps between frames
    >>> round(cl.loop.fluctuation([hot], window_ps=2.0, temperature=300.0), 3)   # ~0.2 * sqrt(300 / 1200)
    0.097
    """
    widths = []
    for values, temp, dt in segments:
        values = _columns(values)
        w = max(2, int(round(window_ps / dt)))
        n = len(values) // w
        if n < 1:
            continue
        local = values[:n * w].reshape(n, w, -1).std(axis=1, ddof=1).mean(axis=0)
        scale = 1.0 if temperature is None or temp is None else np.sqrt(temperature / temp)
        widths.append(local * scale)
    if not widths:
        raise ValueError(f"No segment spans a window of {window_ps} ps: record frames more often or run longer.")
    width = np.mean(widths, axis=0)
    return float(width[0]) if len(width) == 1 else width


def _columns(values):
    """CV values as (frames, components) float64: a 1-D array is one component."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1)


def opes_for(cv, s, barrier=40.0, pace=500, temperature=300.0, segments=None, strength=1.0, window_ps=1.0):
    """An OPES_METAD bias on ``cv`` for :func:`iterate`, sized from its values on the training frames.

    The initial kernel width is the CV's fluctuation over ``window_ps`` at ``temperature``
    (:func:`fluctuation` of the time-ordered ``segments`` :func:`iterate` passes; 0.1 std(s) without
    them); OPES then shrinks it as samples accumulate. ``barrier`` (kJ/mol) is multiplied by
    ``strength``. The width is fixed at start (not adaptive), so walkers taking turns
    (:class:`cvlearn.engine.WalkerGroup`) can share the bias.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> s = np.random.default_rng(0).normal(size=2000)
    >>> opes = cl.loop.opes_for(cl.features.Positions(1, 1), s, barrier=30.0, strength=2.0)
    >>> opes.barrier, round(float(opes.sigma0[0]), 3)                  # kJ/mol; 0.1 std(s)
    (60.0, 0.1)
    """
    from .bias import OPES

    s = _columns(s)
    sigma = fluctuation(segments, window_ps, temperature) if segments else 0.1 * s.std(axis=0)
    if not np.all(np.asarray(sigma) > 0):
        raise ValueError("A CV component is constant on its training frames: it cannot be biased.")
    if np.ndim(sigma) and len(sigma) == 1:
        sigma = float(sigma[0])
    return OPES(cv, barrier=barrier * strength, pace=pace, sigma=sigma, temperature=temperature)


def _features(featurizer, trajectory):
    return featurizer.transform(trajectory)


def _accepts(fn, name):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _fit_best(learner, k, X, logw, n_models):
    """Fit ``n_models`` copies of the round's learner (seeds seed, seed + 1, ...) on the same frames and keep
    the one with the largest VAMP-2 score on all of them (sum of squared TICA eigenvalues of its outputs;
    variational: a better approximation of the slow modes scores higher), or the smallest validation loss
    for learners without eigenvalues. Which blocks one network drew for validation then no longer decides
    the CV. Returns (estimator, scores)."""
    best, scores = None, []
    for j in range(n_models):
        est = clone(learner if hasattr(learner, "fit") else learner(k))
        if j and "seed" in est.get_params():
            est.set_params(seed=est.get_params()["seed"] + j)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # each round refines the last; short fits do
            est.fit(X, logweights=logw)
        if hasattr(est, "eigenvalues_"):
            score = float(np.sum(np.asarray(est.eigenvalues_) ** 2))
        elif getattr(est, "history_", None):
            score = -float(np.nanmin([h.get("valid", np.nan) for h in est.history_]))
        else:
            score = 0.0
        scores.append(score)
        if best is None or score > scores[best[1]]:
            best = (est, j)
    return best[0], scores


def _basin_fractions(values, basin_a, basin_b, first):
    """Fractions of the analysed frames (after ``first``) in each basin, as sampled."""
    v = values[first:].reshape(-1, values.shape[-1])
    if not len(v):
        return 0.0, 0.0
    return float(basin_a.contains(v).mean()), float(basin_b.contains(v).mean())


def _bound(values, logw, basin_a, basin_b, first, kT):
    """For a round that did not sample both basins: (bound on F(b) - F(a) in kJ/mol, the missing basin).

    The basin with less weight is the missing one. Missing b: F(b) - F(a) > -kT ln((W_b + w_max) / W_a),
    the value it would take with one more frame of the largest weight seen in b (a difference below it
    would most likely have shown itself). Missing a: F(b) - F(a) < -kT ln(W_b / (W_a + w_max)).
    """
    v, lw = values[first:].reshape(-1, values.shape[-1]), logw[first:].reshape(-1)
    if not len(lw):
        return float("nan"), "b"
    w = np.exp(lw - lw.max())
    wa, wb = w[basin_a.contains(v)].sum(), w[basin_b.contains(v)].sum()
    if wb <= wa:
        return float(-kT * np.log((wb + 1.0) / wa)), "b"
    return float(-kT * np.log(wb / (wa + 1.0))), "a"


def iterate(make_engine, learner, featurizer, initial, variables, basins, make_bias=metad_for, rounds=5,
            steps=20000, stride=50, tol=1.0, cv_tol=0.02, reweight=None, progress=False, callback=None,
            transition_basins=None, train_weights="reweighted", n_models=1, min_fraction=0.01, learn_rounds=None,
            min_transitions=0):
    """Learn a CV, bias it, reweight, relearn from all frames so far; stop when ΔF and the CV settle.

    Parameters
    ----------
    make_engine : callable
        ``make_engine(bias, round) -> engine`` (a :class:`cvlearn.Langevin`, a :class:`cvlearn.engine.OpenMM`
        or a :class:`cvlearn.engine.WalkerGroup` with ``bias`` attached; vary the seed with ``round``).
    learner : estimator or callable
        An unfitted cvlearn learner (cloned every round), or ``learner(round) -> estimator`` to change
        learners between rounds (e.g. TICA in round 1, whose linear CV extrapolates out of the first
        basin, then Deep-TICA once transitions are in the data); trained on all frames so far, the biased
        ones with log-weights beta (V(s, t) - c(t)), i.e. reweighted to the unbiased ensemble.
    featurizer : Featurizer
        Positions -> features, for training and inside the CV.
    initial : cvlearn.Trajectory
        The starting data (an unbiased or exploratory run, e.g. at a higher temperature: its frames
        teach the first CV and are never reweighted into a free energy).
    variables : callable
        Positions -> the variables the free energy is reweighted onto (e.g.
        ``system.slow_coordinates`` or a Dihedrals featurizer); ``basins`` = (a, b) in them.
    make_bias : callable
        ``make_bias(cv, s) -> bias`` from the CV and its values on the training frames (default
        :func:`metad_for`; :func:`opes_for` for OPES). If it takes a ``strength`` keyword, it gets the
        factor the bias must be scaled by (1, doubled after every round without a transition); if it
        takes ``segments``, the time-ordered CV values of each training walker as (values, K, ps
        between frames) triples (see :func:`fluctuation`).
    rounds, steps, stride : int
        Maximum rounds; steps and frame stride of each biased run.
    tol : float
        Stop when ΔF changed by less than ``tol`` kJ/mol (and by less than 2 combined standard
        errors) from the previous round, both rounds having sampled both basins...
    cv_tol : float or None
        ...and the CV changed by less than this (1 - |r| between consecutive CVs on the same frames;
        None: ΔF alone decides).
    reweight : dict, optional
        Keyword arguments for :func:`cvlearn.fes.reweight` (bins, ranges, skip, method, ...); default
        ``skip=0.1``. Every round's metadynamics starts from a flat bias, so c(t) reweighting (the
        default method) needs its filling transient skipped: see :mod:`cvlearn.fes._reweight`. ``skip``
        may be a callable ``skip(trajectory) -> fraction``, evaluated on each round's run (e.g. with
        :func:`cvlearn.fes.transient_fraction`).
    progress : bool
        Show each run's progress bar.
    transition_basins : (Basin, Basin), optional
        Basins in ``variables`` in which transitions are counted (default ``basins``). Pass the cores
        when ``basins`` touch (e.g. phi < 0 and phi > 0): a fluctuation across a shared boundary then
        counts as no transition.
    train_weights : {"reweighted", "sampled"}
        Train each round on the biased frames with their log-weights (the unbiased ensemble, default), or
        as sampled (uniform weights: the transitions the bias produced weigh fully, as when a CV is
        trained on an exploratory run).
    n_models : int
        Networks trained per round from different seeds on the same frames; the one with the best
        VAMP-2 score on all frames is kept (see ``Round.scores``). 1 for linear learners.
    min_fraction : float
        A round whose analysed frames put less than this fraction in either basin, or that made no
        transition, has not sampled both: it reports no ΔF (a lower bound instead), cannot count
        towards convergence, and the next round's bias is twice as strong (back to 1 after a round
        that sampled both).
    learn_rounds : int, optional
        Relearn the CV (with a fresh bias) for this many rounds at most; from the first round after
        them that sampled both basins on, keep that round's CV and continue its bias and walkers, and
        reweight all frames of that bias (less the first round's ``skip``): one long run with a
        quasi-static bias instead of short ones from scratch. Only those rounds can settle: when the
        estimate moved by less than ``tol`` and its error is below ``tol / 2``. None (default):
        relearn every round.
    min_transitions : int
        A round settles only when the frames of its estimate (with ``learn_rounds``: all rounds of the
        continued bias) hold at least this many transitions. Block errors of a few dozen transitions
        understate the error: on alanine dipeptide, 3 seeds in 20 stopped 1.3-1.6 kJ/mol off with 46-61.
    callback : callable, optional
        ``callback(round)`` with each :class:`Round` as soon as it is done (e.g. to write its files).

    Returns
    -------
    IterationResult
        Its ``delta_f`` is the answer (see :attr:`IterationResult.delta_f`).

    Examples
    --------
    Two rounds on a 2-D double well (barrier 10 kJ/mol along x), 4 walkers starting in the left basin:

    >>> import numpy as np, cvlearn as cl
    >>> dw = cl.systems.DoubleWell(dim=2, barrier=10.0)
    >>> start = np.array([[-1.0, 0.0]])
    >>> def engine(bias=None, k=0):
    ...     return cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=k, positions=start, bias=bias)
    >>> result = cl.iterate(lambda bias, k: engine(bias, k), cl.TICA(lagtime=5, n_components=1),
    ...                     cl.features.Positions.of(dw), engine().run(1000, stride=10), dw.slow_coordinates,
    ...                     (dw.basins["left"], dw.basins["right"]), rounds=2, steps=2000, stride=10,
    ...                     reweight={"bins": 40, "ranges": dw.slow_bounds})
    >>> [r["round"] for r in result.summary()], result.rounds[-1].trajectory.positions.shape
    ([1, 2], (200, 4, 1, 2))
    """
    if train_weights not in ("reweighted", "sampled"):
        raise ValueError(f"train_weights must be 'reweighted' or 'sampled'; got {train_weights!r}.")
    n_models = check_positive(n_models, "n_models", "iterate", integer=True)
    reweight = {"skip": 0.1, **(reweight or {})}
    basin_a, basin_b = basins
    counted = transition_basins or (basin_a, basin_b)
    data = [(initial, np.zeros(initial.positions.shape[:2]))]
    result = IterationResult()
    previous, strength = None, 1.0
    frozen = None  # (cv, bias, engine, trajectories) once the CV is kept and its bias continued
    for k in range(1, rounds + 1):
        if frozen is None:
            cv, bias, engine, scores = _learn_round(k, data, featurizer, learner, make_bias, make_engine, n_models,
                                                    strength, steps)
            production = []
        else:
            cv, bias, engine, production = frozen
            scores = []
            log.info("round %d: the CV of round %d kept, its bias continued; %s x %d more steps", k,
                     k - len(production), getattr(engine, "n_walkers", 1), steps)
        traj = engine.run(steps, stride=stride, progress=progress)
        production = production + [traj]
        # A continued bias is reweighted over all its rounds, less the first round's transient.
        whole = traj if len(production) == 1 else Trajectory.concatenate(production)
        skip = reweight["skip"](production[0]) if callable(reweight["skip"]) else reweight["skip"]
        first = int(np.floor(skip * production[0].n_frames))
        fes = fes_mod.reweight(whole, variables, bias=bias, **dict(reweight, skip=first / whole.n_frames))
        values = fes_mod._reweight._values(whole, variables)
        transitions = count_transitions(values[-traj.n_frames:], *counted)  # this round's frames
        fractions = _basin_fractions(values, basin_a, basin_b, first)
        estimate_transitions = count_transitions(values, *counted)  # all frames of this estimate
        sampled = estimate_transitions > 0 and min(fractions) >= min_fraction
        bound, missing = None, None
        d = fes.delta_f(basin_a, basin_b)
        if not sampled:
            lw = fes_mod.log_weights(whole, bias, method=reweight.get("method"))
            bound, missing = _bound(values, lw, basin_a, basin_b, first, fes_mod._reweight._kT(fes.temperature))
            d = DeltaF(float("nan"), float("nan"))
        change = float("nan") if previous is None else 0.0 if frozen is not None else _cv_change(previous, cv, data)
        result.rounds.append(Round(k, cv, bias, traj, d, transitions, change, fes, sampled, bound, strength, scores,
                                   continued=len(production) - 1, missing=missing))
        if callback is not None:
            callback(result.rounds[-1])
        if sampled:
            log.info("round %d: dF = %.2f +- %.2f kJ/mol%s, %d transitions, CV change %.3g", k, d.value, d.error,
                     f" (rounds {k - len(production) + 1}-{k} of one bias)" if len(production) > 1 else "",
                     transitions, change)
            strength = 1.0  # the next CV is learned from transitions: the plain bias suffices again
        else:
            log.warning("round %d: basin %s not sampled (%d transitions, %.1f %% / %.1f %% of frames in a / b): "
                        "dF %s ~%.1f kJ/mol; the next round's bias is %g x stronger", k, missing, transitions,
                        100 * fractions[0], 100 * fractions[1], ">" if missing == "b" else "<", bound, 2 * strength)
            strength *= 2.0
        data.append((traj, fes_mod.log_weights(traj, bias) if train_weights == "reweighted"
                     else np.zeros(traj.positions.shape[:2])))
        good = [r for r in result.rounds if r.sampled]
        settled = sampled and len(good) >= 2 and good[-2].index == k - 1 and _settled(good[-2].delta_f, d, tol)
        settled = settled and estimate_transitions >= min_transitions
        if frozen is not None:  # one bias: consecutive estimates share frames, so also ask for a small error
            settled = settled and d.error <= tol / 2
        elif learn_rounds is not None:  # short fresh runs scatter more than their errors say: wait for the long one
            settled = False
        elif cv_tol is not None:
            settled = settled and change < cv_tol
        if settled:
            result.converged = True
            break
        if frozen is None and learn_rounds is not None and k >= learn_rounds and sampled:
            frozen = (cv, bias, engine, production)
        elif frozen is not None:
            frozen = (cv, bias, engine, production)
        previous = cv
    return result


def _learn_round(k, data, featurizer, learner, make_bias, make_engine, n_models, strength, steps):
    """Round ``k``'s CV from all frames so far, its bias and engine: (cv, bias, engine, model scores)."""
    X, logw, walkers = [], [], []
    for traj, lw in data:
        X += _features(featurizer, traj)
        logw += [lw[:, w] for w in range(lw.shape[1])]
        spacing = float(traj.time[1] - traj.time[0]) if traj.n_frames > 1 else float("nan")
        walkers += [(traj.temperature, spacing)] * traj.n_walkers
    est, scores = _fit_best(learner, k, X, logw, n_models)
    cv = est.to_module(featurizer=featurizer)
    s_walkers = [_columns(v) for v in est.transform(X)]  # (frames, components) per walker
    s_train = np.concatenate(s_walkers)
    extras = {}
    if _accepts(make_bias, "strength"):
        extras["strength"] = strength
    if _accepts(make_bias, "segments"):
        extras["segments"] = [(v, t, dt) for v, (t, dt) in zip(s_walkers, walkers)]
    bias = make_bias(cv, s_train, **extras)
    engine = make_engine(bias, k)
    log.info("round %d: CV learned from %d frames (model scores %s); %s x %d steps%s", k, len(s_train),
             ", ".join(f"{x:.3g}" for x in scores), getattr(engine, "n_walkers", 1), steps,
             f", bias x{strength:g}" if strength != 1 else "")
    return cv, bias, engine, scores


def _cv_change(previous, cv, data):
    """1 - |Pearson r| between two CVs on all frames so far. With several components, each component of
    the new CV is matched to the previous component it correlates with most and the worst match counts
    (components that only swapped order are no change)."""
    with torch.no_grad():
        pooled = torch.as_tensor(np.concatenate([t.positions.reshape(-1, *t.positions.shape[2:]) for t, _ in data]))
        a, b = previous(pooled).double().numpy(), cv(pooled).double().numpy()
    r = np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:]
    return 1.0 - float(np.min(np.max(np.abs(r), axis=0)))


def _settled(before, now, tol):
    diff = abs(now.value - before.value)
    errors = np.hypot(before.error, now.error)
    return diff < tol and (not np.isfinite(errors) or diff < 2 * errors)
