"""The learn -> bias -> reweight -> relearn loop, run until the free energy and the CV stop changing.

A CV learned from a run that never left its first basin knows nothing of the transition; biasing
it still pushes the system out, and the biased frames, reweighted to the unbiased ensemble, teach
the next CV about the path. :func:`iterate` repeats that and keeps every round (CV, bias, run,
free energy difference, transition count) so the convergence can be inspected and plotted.
"""

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import clone

from . import fes as fes_mod
from .bias import Grid, WellTemperedMetad
from .exceptions import ConvergenceWarning
from .fes import Basin

__all__ = ["iterate", "Round", "IterationResult", "metad_for", "count_transitions"]

log = logging.getLogger("cvlearn")


@dataclass
class Round:
    """One round of :func:`iterate`.

    ``delta_f`` is F(b) - F(a) (kJ/mol, with block error) from this round's biased run alone, read
    off ``fes`` (its free energy surface on the reweighting variables); ``transitions`` counts committed
    basin changes in it (all walkers); ``cv_change`` is 1 - |Pearson r| between this round's CV and the
    previous one on the same frames (NaN in round 1).

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
    [{'round': 1, 'delta_f': 3.9, 'error': 0.2, 'transitions': 12, 'cv_change': nan}]
    """

    rounds: list = field(default_factory=list)
    converged: bool = False

    @property
    def cv(self):
        """The CV of the last round."""
        return self.rounds[-1].cv

    def summary(self):
        """One dict per round: index, delta_f, its error, transitions, cv_change (for tables and JSON)."""
        return [{"round": r.index, "delta_f": r.delta_f.value, "error": r.delta_f.error,
                 "transitions": r.transitions, "cv_change": r.cv_change} for r in self.rounds]

    def plot(self, exact=None, axes=None, exact_label="exact"):
        """ΔF per round with error bars (and ``exact``, kJ/mol, labelled ``exact_label``) and transitions per
        round; returns the axes."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
        rows = self.summary()
        k = [r["round"] for r in rows]
        axes[0].errorbar(k, [r["delta_f"] for r in rows], yerr=[r["error"] for r in rows], marker="o", capsize=3)
        if exact is not None:
            axes[0].axhline(exact, color="k", ls="--", lw=1, label=exact_label)
            axes[0].legend()
        axes[0].set(xlabel="round", ylabel="ΔF (kJ/mol)", xticks=k)
        axes[1].bar(k, [r["transitions"] for r in rows], alpha=0.3)
        axes[1].set(xlabel="round", ylabel="transitions", xticks=k)
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


def metad_for(cv, s, height=1.5, bias_factor=10.0, pace=100, sigma_fraction=0.5, margin=3.0, bins_per_sigma=5):
    """A 1-D well-tempered metadynamics bias on ``cv`` sized from its values ``s`` on the training frames.

    sigma = ``sigma_fraction`` x std(s); the grid spans the observed range widened by ``margin`` times
    that range on each side (room for the basins the training data never saw), with harmonic walls
    beyond whose stiffness scales with the CV (20 kJ/mol at one sigma past the edge), so that a CV
    with small units does not become a wall too stiff for the timestep.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> s = np.random.default_rng(0).normal(size=1000)                # the CV on its training frames
    >>> metad = cl.loop.metad_for(cl.features.Positions(1, 1), s, height=1.5, bias_factor=10.0)
    >>> round(float(metad.sigma[0]), 3), metad.outside                  # sigma = 0.5 std(s)
    (0.488, 'wall')
    """
    s = np.asarray(s, dtype=np.float64).ravel()
    sigma = sigma_fraction * s.std()
    span = max(np.ptp(s), sigma)
    lo, hi = s.min() - margin * span, s.max() + margin * span
    grid = Grid(lo, hi, int(np.ceil((hi - lo) / (sigma / bins_per_sigma))))
    return WellTemperedMetad(cv, sigma=sigma, height=height, bias_factor=bias_factor, pace=pace, grid=grid,
                             outside="wall", wall_kappa=40.0 / sigma**2)


def _features(featurizer, trajectory):
    return featurizer.transform(trajectory)


def iterate(make_engine, learner, featurizer, initial, variables, basins, make_bias=metad_for, rounds=5,
            steps=20000, stride=50, tol=1.0, cv_tol=0.02, reweight=None, progress=False, callback=None,
            transition_basins=None, train_weights="reweighted"):
    """Learn a CV, bias it, reweight, relearn from all frames so far; stop when ΔF and the CV settle.

    Parameters
    ----------
    make_engine : callable
        ``make_engine(bias, round) -> engine`` (a :class:`cvlearn.Langevin` or
        :class:`cvlearn.engine.OpenMM` with ``bias`` attached; vary the seed with ``round``).
    learner : estimator or callable
        An unfitted cvlearn learner (cloned every round), or ``learner(round) -> estimator`` to change
        learners between rounds (e.g. TICA in round 1, whose linear CV extrapolates out of the first
        basin, then Deep-TICA once transitions are in the data); trained on all frames so far, the biased
        ones with log-weights beta (V(s, t) - c(t)), i.e. reweighted to the unbiased ensemble.
    featurizer : Featurizer
        Positions -> features, for training and inside the CV.
    initial : cvlearn.Trajectory
        The starting data (an unbiased or exploratory run).
    variables : callable
        Positions -> the variables the free energy is reweighted onto (e.g.
        ``system.slow_coordinates`` or a Dihedrals featurizer); ``basins`` = (a, b) in them.
    make_bias : callable
        ``make_bias(cv, s) -> bias`` from the CV and its values on the training frames (default
        :func:`metad_for`).
    rounds, steps, stride : int
        Maximum rounds; steps and frame stride of each biased run.
    tol : float
        Stop when ΔF changed by less than ``tol`` kJ/mol (and by less than 2 combined standard
        errors) from the previous round...
    cv_tol : float
        ...and the CV changed by less than this (1 - |r| between consecutive CVs on the same frames).
    reweight : dict, optional
        Keyword arguments for :func:`cvlearn.fes.reweight` (bins, ranges, skip, method, ...); default
        ``skip=0.1``. Every round's metadynamics starts from a flat bias, so c(t) reweighting (the
        default method) needs its filling transient skipped: see :mod:`cvlearn.fes._reweight`. ``skip``
        may be a callable ``skip(trajectory) -> fraction``, evaluated on each round's run (e.g. with
        :func:`cvlearn.fes._reweight.transient_fraction`).
    progress : bool
        Show each run's progress bar.
    transition_basins : (Basin, Basin), optional
        Basins in ``variables`` in which transitions are counted (default ``basins``). Pass the cores
        when ``basins`` touch (e.g. phi < 0 and phi > 0): a fluctuation across a shared boundary then
        counts as no transition.
    train_weights : {"reweighted", "sampled"}
        Train each round on the biased frames with c(t) log-weights (the unbiased ensemble, default), or
        as sampled (uniform weights: the transitions the bias produced weigh fully, as when a CV is
        trained on an exploratory run).
    callback : callable, optional
        ``callback(round)`` with each :class:`Round` as soon as it is done (e.g. to write its files).

    Returns
    -------
    IterationResult

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
    reweight = {"skip": 0.1, **(reweight or {})}
    basin_a, basin_b = basins
    data = [(initial, np.zeros(initial.positions.shape[:2]))]
    result = IterationResult()
    previous = None
    for k in range(1, rounds + 1):
        X, logw = [], []
        for traj, lw in data:
            X += _features(featurizer, traj)
            logw += [lw[:, w] for w in range(lw.shape[1])]
        est = clone(learner if hasattr(learner, "fit") else learner(k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # each round refines the last; short fits do
            est.fit(X, logweights=logw)
        cv = est.to_module(featurizer=featurizer)
        s_train = np.concatenate(est.transform(X))[:, 0]
        bias = make_bias(cv, s_train)
        engine = make_engine(bias, k)
        traj = engine.run(steps, stride=stride, progress=progress)
        kw = dict(reweight, skip=reweight["skip"](traj)) if callable(reweight["skip"]) else reweight
        fes = fes_mod.reweight(traj, variables, bias=bias, **kw)
        d = fes.delta_f(basin_a, basin_b)
        transitions = count_transitions(fes_mod._reweight._values(traj, variables),
                                        *(transition_basins or (basin_a, basin_b)))
        change = float("nan")
        if previous is not None:
            with torch.no_grad():
                pooled = torch.as_tensor(np.concatenate([t.positions.reshape(-1, *t.positions.shape[2:])
                                                         for t, _ in data]))
                r = np.corrcoef(previous(pooled)[:, 0].double().numpy(), cv(pooled)[:, 0].double().numpy())[0, 1]
            change = 1.0 - abs(float(r))
        result.rounds.append(Round(k, cv, bias, traj, d, transitions, change, fes))
        if callback is not None:
            callback(result.rounds[-1])
        log.info("round %d: dF = %.2f +- %.2f kJ/mol, %d transitions, CV change %.3g", k, d.value, d.error,
                 transitions, change)
        data.append((traj, fes_mod.log_weights(traj, bias) if train_weights == "reweighted"
                     else np.zeros(traj.positions.shape[:2])))
        if k > 1 and _settled(result.rounds[-2].delta_f, d, tol) and change < cv_tol:
            result.converged = True
            break
        previous = cv
    return result


def _settled(before, now, tol):
    diff = abs(now.value - before.value)
    errors = np.hypot(before.error, now.error)
    return diff < tol and (not np.isfinite(errors) or diff < 2 * errors)
