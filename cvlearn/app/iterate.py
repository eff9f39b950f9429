"""``cvlearn iterate``: learn a CV, bias it, reweight, relearn (:func:`cvlearn.iterate`) round after round
on Muller-Brown or a molecule, every round's files written as soon as it is done."""

import json
import logging
import os
import time

import numpy as np

from ..io import save, write_text_atomic
from ..loop import iterate as run_loop
from ..loop import metad_for, opes_for
from .cv_learners import NEURAL_METHODS, make_learner
from .molecular import openmm_engine, pdb_or_alanine

__all__ = ["run_iterate"]

log = logging.getLogger("cvlearn.app")


def _muller_brown_setup(walkers, seed, initial_steps, temperature):
    """Engine factory, featurizer, initial run, variables, basins and exact Delta F of Muller-Brown."""
    from .. import bias as biases
    from .. import features as feats
    from .. import systems
    from ..engine import Langevin

    mb = systems.MullerBrown() if temperature is None else systems.MullerBrown(temperature=temperature)
    start = mb.basins["A"].center[None]  # every walker starts in basin A
    lo, hi = (np.array(b) for b in zip(*mb.slow_bounds))
    xy = lambda x: x[:, 0, :]  # noqa: E731
    walls = [biases.UpperWall(xy, at=hi, kappa=1000.0), biases.LowerWall(xy, at=lo, kappa=1000.0)]

    def make_engine(bias, k):
        return Langevin(mb, timestep=0.005, friction=5.0, n_walkers=walkers, seed=seed + k, positions=start,
                        bias=[bias, *walls])

    initial = Langevin(mb, timestep=0.005, friction=5.0, n_walkers=walkers, seed=seed, positions=start).run(
        initial_steps, stride=10)
    return {"make_engine": make_engine, "featurizer": feats.Positions.of(mb), "initial": initial,
            "variables": mb.slow_coordinates, "basins": (mb.basins["A"], mb.basins["B"]),
            "ranges": mb.slow_bounds, "exact": mb.exact_delta_f("A", "B"), "exact_error": 0.0,
            "timestep": 0.005, "stride": 10, "cores": None}


def _molecule_setup(pdb, forcefield, features, variable, basins, seed, initial_steps, stride, temperature, timestep,
                    friction, platform, walkers, explore_temperature, progress):
    """The same for a molecule in OpenMM: every run starts from the minimized structure of ``pdb``; the
    first data come from an unbiased run at ``explore_temperature``; rounds run ``walkers`` walkers that
    take turns sharing the bias (:class:`cvlearn.engine.WalkerGroup`)."""
    from .. import data
    from .. import features as feats
    from ..engine import WalkerGroup
    from ..fes import Basin

    shipped = pdb is None
    pdb = pdb_or_alanine(pdb)
    if basins is None:
        if not shipped:
            raise ValueError("iterate on your own molecule needs the two basins of the reweighting variable: "
                             "basin_a and basin_b as (lo, hi) per variable (CLI: --basin-a and --basin-b).")
        basins = ((-np.pi, 0.0), (0.0, np.pi))  # phi < 0 (C7eq, C5) and phi > 0 (C7ax, alpha_L)
    variable = variable or ("dihedrals:phi" if shipped else None)
    if variable is None:
        raise ValueError("iterate on your own molecule needs variable= (CLI: --variable), the feature "
                         "specification of the variable(s) Delta F is measured on, e.g. 'dihedrals:phi'.")
    var = feats.from_spec(variable, pdb)
    basins = [np.asarray(b, dtype=np.float64).reshape(-1, 2) for b in basins]
    for name, b in zip(("basin_a", "basin_b"), basins):
        if len(b) != var.n_features:
            raise ValueError(f"{name} needs (lo, hi) for each of the {var.n_features} variable(s) of "
                             f"{variable!r}; got {len(b)} pair(s).")
    temperature = 300.0 if temperature is None else temperature

    def make_engine(bias, k):
        engines = [openmm_engine(pdb, forcefield, temperature, timestep, friction, 1000 * (seed + k) + i, platform,
                                  bias=bias) for i in range(walkers)]
        return WalkerGroup(engines, chunk=50 * stride)

    hot = openmm_engine(pdb, forcefield, explore_temperature, timestep, friction, seed, platform)
    log.info("exploration: %d steps unbiased at %g K", initial_steps, explore_temperature)
    initial = hot.run(initial_steps, stride=stride, progress=progress)
    periodic = variable.startswith("dihedrals")
    cores, reference = None, None
    if shipped and variable == "dihedrals:phi":  # count transitions between the C7eq and C7ax cores
        cores = (Basin(lo=[-2.8], hi=[-0.5]), Basin(lo=[0.3], hi=[2.0]))
        solvent = data.alanine_solvent(forcefield)
        if solvent is not None and temperature == 300.0 and tuple(basins[0].ravel()) == (-np.pi, 0.0):
            try:
                reference = data.alanine_reference(solvent)
            except ValueError:  # no reference made for this solvent yet: run without one
                reference = None
    return {"make_engine": make_engine, "featurizer": feats.from_spec(features, pdb), "initial": initial,
            "variables": var, "basins": tuple(Basin(lo=b[:, 0], hi=b[:, 1]) for b in basins), "cores": cores,
            "ranges": [(-np.pi, np.pi)] * var.n_features if periodic else None,
            "exact": None if reference is None else reference["delta_f_kj_mol"],
            "exact_error": None if reference is None else reference["sem_kj_mol"],
            "timestep": timestep, "stride": stride}


# The protocol each kind of system runs when an option is left out (None). Molecules: explore hot (700 K:
# alanine dipeptide crosses phi ~3-6 times per ns there, while its peptide bonds stay trans, which they do
# not at 1000 K), learn Deep-TICA (best of 3 networks, 60 epochs: trained to convergence the CV becomes a
# step whose bias force sits in the transition region, and OPES on it did not converge within 1 ns) with two
# components, both biased by OPES with 4 walkers. One component is not enough: in implicit solvent the
# one-component networks of 2 seeds in 6 learned psi (the alpha_R - beta transition) instead of phi, and
# relearning mixed psi in; with two, one component follows phi and the other psi in every network measured
# (benchmarks/RESULTS.md "The loop on alanine dipeptide" and "what the learned CV sees"). The continued bias
# settles only once its frames hold 100 transitions: the 3 seeds in 20 that stopped 1.3-1.6 kJ/mol off had
# 46-61, the 16 within 1 kJ/mol that stopped had 136-426 (and one had 39).
DEFAULTS = {
    "muller-brown": {"method": "tica", "walkers": 8, "steps": 20000, "initial_steps": 4000, "stride": 10,
                     "lagtime": 10, "bias": "metad", "skip": 0.3, "rounds": 5, "n_models": 1,
                     "train_weights": "reweighted", "cv_tol": 0.02, "explore_temperature": None, "epochs": 200,
                     "learn_rounds": None, "n_components": 1, "min_transitions": 0},
    "molecule": {"method": "deeptica", "walkers": 4, "steps": 125_000, "initial_steps": 1_000_000, "stride": 100,
                 "lagtime": 5, "bias": "opes", "skip": 0.5, "rounds": 8, "n_models": 3,
                 "train_weights": "sampled", "cv_tol": None, "explore_temperature": 700.0, "epochs": 60,
                 "learn_rounds": 2, "n_components": 2, "min_transitions": 100},
}


def run_iterate(out, system=None, pdb=None, forcefield=("amber99sbildn.xml",), features="distances:heavy",
            variable=None, basins=None, method=None, rounds=None, walkers=None, steps=None, initial_steps=None,
            stride=None, lagtime=None, bias=None, barrier=40.0, height=None, bias_factor=10.0, pace=None, skip=None,
            reweighting=None, bins=60, tol=1.0, cv_tol="default", seed=0, epochs=None, n_models=None,
            n_components=None, min_transitions=None, temperature=None, explore_temperature="default", timestep=0.002,
            friction=1.0, platform=None, train_weights=None, learn_rounds="default", progress=False):
    """Learn a CV, bias it, reweight, relearn (:func:`cvlearn.iterate`) and write every round to ``out``.

    Every option left out (None) takes the protocol's value for the kind of system, so the plain call
    runs what was measured to work (``benchmarks/iterate_reliability.py``).

    ``system="muller-brown"`` runs the built-in engine on Muller-Brown (8 walkers of 5 fs steps, all from
    basin A, TICA, well-tempered metadynamics, c(t) reweighting; Delta F = F(B) - F(A), exact value known).

    Otherwise the molecule in ``pdb`` (default: the shipped alanine dipeptide, from C7eq) runs in OpenMM
    (NoCutoff, HBonds, ``timestep`` ps, ``friction`` 1/ps, each run from the minimized structure):

    1. exploration: ``initial_steps`` (2 ns) unbiased at ``explore_temperature`` (700 K), which needs no
       knowledge of the slow coordinate; its frames teach the first CV and are never reweighted;
    2. learning rounds (``learn_rounds``, 2): Deep-TICA with ``n_components`` (2) components on ``features``
       (lag ``lagtime`` frames = 1 ps, ``epochs`` 60: smooth enough to bias), the best of ``n_models`` (3)
       networks by VAMP-2 score on all frames so far (as sampled); OPES (``barrier`` kJ/mol) on all its
       components at ``temperature`` with ``walkers`` (4)
       walkers of ``steps`` (250 ps) each, taking turns and sharing the bias; Delta F on ``variable``
       (default "dihedrals:phi", ``basins`` phi < 0 and phi > 0) by reweighting with exp(beta V), the
       first ``skip`` (half) of the round dropped while OPES fills;
    3. production: from the first learning round that sampled both basins on, its CV is kept and its
       bias and walkers continue, round after round, each round reweighting all frames of that bias
       (less the first half round); stop when the estimate moved by less than ``tol`` (1 kJ/mol) and its
       block error is below ``tol / 2``, or after ``rounds`` (8) rounds in all: at most 10 ns. A round that
       did not sample both basins reports a lower bound, no Delta F, and doubles the next round's bias.

    Parameters
    ----------
    out : str
        Output directory: ``round_<k>/cv.pt`` (the CV, ``cl.save`` format), ``round_<k>/fes.npz`` (the
        reweighted free energy on the variables), ``round_<k>/HILLS`` (metadynamics) or ``round_<k>/KERNELS``
        (OPES), ``summary.json`` (per round: Delta F and its error in kJ/mol, transitions, CV change,
        whether both basins were sampled; the final answer, simulated ns and wall time) and ``summary.png``.
    method : {"tica", "deeptica", "pca", "tae", "autoencoder"}
    bias : {"opes", "metad"}
        OPES_METAD (``barrier``, kJ/mol) or well-tempered metadynamics (``height`` kJ/mol, ``bias_factor``).
        Metadynamics runs one walker per round (its c(t) reweighting follows one clock).
    rounds, steps, initial_steps : int
        Maximum rounds; biased steps per round and walker, and steps of the first (exploration) data.
    stride : int, optional
        Steps between frames (10 for Muller-Brown, 100 for molecules).
    lagtime : int
        Lag time in frames for the time-lagged learners.
    pace : int
        Steps between hills or kernels (100 Muller-Brown, 500 molecules).
    skip : float
        Fraction of each round's frames discarded as transient before reweighting.
    reweighting : {"ct", "final", "bias"}
        c(t) (Tiwary-Parrinello), final-bias, or the bias at each frame (OPES, the default with it).
    bins : int
        Histogram bins per variable for the free energy surface.
    tol, cv_tol : float
        Stopping rule of :func:`cvlearn.iterate` (kJ/mol; 1 - |r| between consecutive CVs, None to ignore).
    n_models : int
        Networks trained per round; the best by VAMP-2 score is kept.
    n_components : int
        Components of the learned CV (1 to 3), all biased (a multidimensional OPES or metadynamics grid);
        2 for a molecule, 1 for Muller-Brown.
    min_transitions : int
        Transitions the frames of an estimate must hold before it can settle (100 for a molecule, 0 for
        Muller-Brown; see :func:`cvlearn.iterate`).
    learn_rounds : int or None
        Rounds that relearn the CV before its bias is continued (see :func:`cvlearn.iterate`); None:
        relearn every round (Muller-Brown's default).
    temperature, explore_temperature : float
        K: the temperature of the biased rounds (300) and of the exploration run (700 for molecules;
        None: explore at ``temperature``).
    train_weights : {"reweighted", "sampled"}
        Train on the biased frames with their weights, or as sampled (see :func:`cvlearn.iterate`).

    Returns
    -------
    dict
        The summary written to ``summary.json``.

    Examples
    --------
    >>> import os, tempfile
    >>> from cvlearn.app import run_iterate
    >>> out = tempfile.mkdtemp()
    >>> s = run_iterate(out, system="muller-brown", rounds=1, walkers=2, steps=500, initial_steps=500)
    >>> s["rounds"][0]["simulated_ps"], round(s["reference_delta_f"], 2)    # ps (all walkers), kJ/mol
    (5.0, 11.41)
    >>> sorted(os.listdir(os.path.join(out, "round_1")))
    ['HILLS', 'cv.pt', 'fes.npz']
    """
    t_start = time.perf_counter()
    kind = "muller-brown" if system == "muller-brown" else "molecule" if system is None else None
    if kind is None:
        raise ValueError(f"system must be 'muller-brown' or None (a molecule from pdb=); got {system!r}.")
    p = _protocol(kind, method=method, walkers=walkers, steps=steps, initial_steps=initial_steps, stride=stride,
                  lagtime=lagtime, bias=bias, skip=skip, rounds=rounds, train_weights=train_weights, epochs=epochs,
                  n_models=n_models, n_components=n_components,
                  min_transitions=min_transitions, cv_tol=cv_tol, explore_temperature=explore_temperature,
                  learn_rounds=learn_rounds, reweighting=reweighting)
    os.makedirs(out, exist_ok=True)
    if kind == "muller-brown":
        setup = _muller_brown_setup(p["walkers"], seed, p["initial_steps"], temperature)
        height, pace = height or 1.5, pace or 100
        run_temperature = setup["initial"].temperature
    else:
        run_temperature = 300.0 if temperature is None else temperature
        setup = _molecule_setup(pdb, forcefield, features, variable, basins, seed, p["initial_steps"], p["stride"],
                                run_temperature, timestep, friction, platform, p["walkers"],
                                p["explore_temperature"] or run_temperature, progress)
        height, pace = height or 1.2, pace or 500
    learner = make_learner(p["method"], lagtime=p["lagtime"], n_components=p["n_components"], seed=seed,
                           max_epochs=p["epochs"])
    rdir = lambda k: os.path.join(out, f"round_{k}")  # noqa: E731
    bias_file = "KERNELS" if p["bias"] == "opes" else "HILLS"

    def make_bias(cv, s, strength=1.0, segments=None):
        if p["bias"] == "opes":
            return opes_for(cv, s, barrier=barrier, pace=pace, temperature=run_temperature, segments=segments,
                            strength=strength)
        return metad_for(cv, s, height=height, bias_factor=bias_factor, pace=pace, strength=strength)

    def make_engine(b, k):
        os.makedirs(rdir(k), exist_ok=True)
        b.open_hills(os.path.join(rdir(k), bias_file))
        return setup["make_engine"](b, k)

    def write_round(r):
        os.makedirs(rdir(r.index), exist_ok=True)  # a round that continues a bias made no engine (nor folder)
        save(r.cv, os.path.join(rdir(r.index), "cv.pt"), info={"method": p["method"], "round": r.index})
        r.fes.save(os.path.join(rdir(r.index), "fes.npz"))
        log.info("round %d written to %s", r.index, rdir(r.index))

    result = run_loop(make_engine, learner, setup["featurizer"],
                      setup["initial"], setup["variables"], setup["basins"], make_bias=make_bias,
                      rounds=p["rounds"], steps=p["steps"], stride=p["stride"], tol=tol, cv_tol=p["cv_tol"],
                      reweight={"skip": p["skip"], "method": p["reweighting"], "bins": bins, "ranges": setup["ranges"]},
                      progress=progress, callback=write_round, transition_basins=setup["cores"],
                      train_weights=p["train_weights"], n_models=p["n_models"], learn_rounds=p["learn_rounds"],
                      min_transitions=p["min_transitions"])
    for b in {id(r.bias): r.bias for r in result.rounds}.values():  # a continued bias spans rounds
        b.close()
    summary = _summary(result, p, setup, system or os.fspath(pdb_or_alanine(pdb)), time.perf_counter() - t_start)
    write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2, default=float))
    _summary_figure(result, setup["exact"], "exact" if kind == "muller-brown" else "reference",
                    os.path.join(out, "summary.png"))
    return summary


def _protocol(kind, cv_tol, explore_temperature, learn_rounds, reweighting, **options):
    """The options of a run on ``kind`` of system: those left out (None; "default" for the three that
    take None as a value) from ``DEFAULTS[kind]``, all checked."""
    d = DEFAULTS[kind]
    p = {key: d[key] if value is None else value for key, value in options.items()}
    if p["method"] not in NEURAL_METHODS:
        p["n_models"] = 1  # TICA and PCA are deterministic: one fit is the best
    p["cv_tol"] = d["cv_tol"] if cv_tol == "default" else cv_tol
    p["explore_temperature"] = d["explore_temperature"] if explore_temperature == "default" else explore_temperature
    p["learn_rounds"] = d["learn_rounds"] if learn_rounds == "default" else learn_rounds
    p["reweighting"] = reweighting or ("bias" if p["bias"] == "opes" else "ct")
    for name in ("rounds", "steps", "initial_steps", "walkers", "stride", "lagtime", "n_models", "n_components"):
        if not (isinstance(p[name], (int, np.integer)) and p[name] >= 1):
            raise ValueError(f"{name} must be a positive integer; got {p[name]!r}.")
    if not (isinstance(p["min_transitions"], (int, np.integer)) and p["min_transitions"] >= 0):
        raise ValueError(f"min_transitions must be a non-negative integer; got {p['min_transitions']!r}.")
    if p["n_components"] > 3:
        raise ValueError(f"n_components must be 1 to 3 (a bias grid spans at most 3 CVs); got {p['n_components']}.")
    if p["bias"] not in ("opes", "metad"):
        raise ValueError(f"bias must be 'opes' or 'metad'; got {p['bias']!r}.")
    if p["reweighting"] not in ("ct", "final", "bias"):
        raise ValueError(f"reweighting must be 'ct', 'final' or 'bias'; got {p['reweighting']!r}.")
    if p["reweighting"] == "ct" and p["bias"] == "opes":
        raise ValueError("OPES has no c(t): use reweighting='bias' (the default with OPES) or 'final'.")
    if p["bias"] == "metad" and kind == "molecule" and p["walkers"] != 1:
        raise ValueError(f"Metadynamics on a molecule runs one walker per round (c(t) follows one clock); got "
                         f"walkers={p['walkers']}. Pass walkers=1 (CLI: --walkers 1), or bias='opes'.")
    if p["steps"] % p["stride"] or p["initial_steps"] % p["stride"]:
        raise ValueError(f"steps ({p['steps']}) and initial_steps ({p['initial_steps']}) must be multiples of stride "
                         f"({p['stride']}).")
    return p


def _summary(result, p, setup, system, wall_s):
    """What ``summary.json`` holds: the protocol, each round's row and the answer (strict JSON: no inf, NaN)."""
    finite = lambda x: float(x) if x is not None and np.isfinite(x) else None  # noqa: E731
    rows = result.summary()
    ns_round = [p["steps"] * setup["timestep"] * r.trajectory.n_walkers / 1000.0 for r in result.rounds]
    for row, ns in zip(rows, ns_round):
        row["simulated_ps"] = float(ns * 1000.0)
        for key in ("delta_f", "error", "cv_change", "bound"):
            row[key] = finite(row[key])
    explore_ns = setup["initial"].n_walkers * p["initial_steps"] * setup["timestep"] / 1000.0
    final = result.delta_f
    return {"system": system, "method": p["method"], "bias": p["bias"],
            "reweighting": p["reweighting"], "skip": p["skip"], "train_weights": p["train_weights"],
            "n_models": p["n_models"], "n_components": p["n_components"],
            "min_transitions": p["min_transitions"],
            "walkers": p["walkers"], "explore_temperature_K": setup["initial"].temperature,
            "reference_delta_f": setup["exact"], "reference_error": setup["exact_error"],
            "converged": result.converged,
            "delta_f": None if final is None else finite(final.value),
            "error": None if final is None else finite(final.error),
            "transitions": int(sum(r.transitions for r in result.rounds)),
            "simulated_ns": float(explore_ns + sum(ns_round)), "exploration_ns": float(explore_ns),
            "wall_s": float(wall_s), "rounds": rows,
            "units": {"delta_f": "kJ/mol", "simulated_ps": "ps, all walkers", "simulated_ns": "ns, all runs"}}


def _summary_figure(result, exact, label, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    bars = ax.twinx()
    ax.set_zorder(bars.get_zorder() + 1)  # points and error bars in front of the transition bars
    ax.patch.set_visible(False)
    final = result.delta_f
    if final is not None:
        ax.axhspan(final.value - final.error, final.value + final.error, color="C2", alpha=0.2, lw=0,
                   label=f"answer {final.value:.2f} ± {final.error:.2f}")
    result.plot(exact=exact, axes=[ax, bars], exact_label=label)
    ax.set_title("ΔF per round (bars: transitions)" + ("" if result.converged else "; not converged"))
    fig.savefig(path, dpi=110)
    plt.close(fig)
