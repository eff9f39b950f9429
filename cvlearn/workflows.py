"""The workflows behind ``cvlearn simulate``, ``learn``, ``bias`` and ``iterate``.

Each is a plain function (usable from Python) that writes its results into an output directory.
``simulate`` and ``bias`` run in chunks, and after every chunk rewrite the trajectory and the
checkpoint atomically, so an interrupted run loses at most one chunk and continues with
``resume=True``; ``iterate`` writes each round's files as soon as the round is done.
"""

import json
import logging
import os

import numpy as np

from .io._atomic import write_text_atomic

__all__ = ["simulate", "learn", "bias", "iterate"]

log = logging.getLogger("cvlearn")

_LEARNERS = ("tica", "pca", "deeptica", "tae", "autoencoder")


def _mdtraj_topology(pdb):
    import mdtraj

    return mdtraj.load_topology(os.fspath(pdb))


def _save_frames(path, new, topology, resume):
    """Append the frames of ``new`` (a cvlearn Trajectory of one walker) to the trajectory file at
    ``path`` (any format mdtraj writes), rewriting it atomically."""
    import mdtraj

    frames = mdtraj.Trajectory(new.positions[:, 0].astype(np.float32), topology, time=new.time)
    if resume and os.path.exists(path) and new.n_frames:
        old = mdtraj.load(path, top=topology)
        old = old[old.time < new.time[0] - 1e-6]  # frames of an interrupted chunk are being redone
        frames = old.join(frames, check_topology=False) if old.n_frames else frames
    elif resume and os.path.exists(path):
        return
    root, ext = os.path.splitext(path)
    tmp = f"{root}.partial{ext}"
    frames.save(tmp, force_overwrite=True)
    os.replace(tmp, path)


def _write_topology(pdb, out):
    """``out/topology.pdb``: the starting structure, the topology to read ``trajectory.xtc`` with."""
    import mdtraj

    path = os.path.join(out, "topology.pdb")
    root, ext = os.path.splitext(path)
    mdtraj.load(os.fspath(pdb)).save(f"{root}.partial{ext}", force_overwrite=True)
    os.replace(f"{root}.partial{ext}", path)


def _run_chunks(engine, out, n_steps, stride, chunks, resume, progress, topology, colvar=None):
    """Run ``engine`` up to a total of ``n_steps`` steps in chunks; after each, append the frames to
    ``trajectory.xtc`` and then write ``checkpoint.npz`` (in that order: a checkpoint never points past
    saved frames)."""
    path = lambda name: os.path.join(out, name)  # noqa: E731
    per_chunk = max(stride, (n_steps // max(chunks, 1)) // stride * stride)
    first = True
    while engine.step < n_steps:
        todo = min(per_chunk, n_steps - engine.step)
        piece = engine.run(todo, stride=stride, progress=progress, restart=resume or not first,
                           colvar=None if colvar is None else path(colvar))
        _save_frames(path("trajectory.xtc"), piece, topology, resume=resume or not first)
        engine.save_checkpoint(path("checkpoint.npz"))
        first = False
        log.info("step %d / %d written to %s", engine.step, n_steps, out)


def _truncate_after(path, time):
    """Drop the rows of a PLUMED file (COLVAR, HILLS) written after ``time`` (ps): those of a chunk
    that was interrupted before its checkpoint, which the resumed run will write again."""
    if not os.path.exists(path):
        return
    with open(path) as fh:
        lines = fh.readlines()
    keep = [ln for ln in lines if ln.startswith("#") or not ln.strip() or float(ln.split()[0]) <= time + 1e-9]
    if len(keep) != len(lines):
        log.info("Dropped %d row(s) after t = %g ps from %s", len(lines) - len(keep), time, path)
        write_text_atomic(path, "".join(keep))


def _openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform, bias=None, bias_interval=1):
    from .engine import OpenMM

    return OpenMM.from_pdb(pdb, forcefield=forcefield, temperature=temperature, timestep=timestep,
                           friction=friction, seed=seed, platform=platform, bias=bias,
                           bias_interval=bias_interval, minimize=True)


def simulate(pdb, out, n_steps, stride=500, forcefield=("amber99sbildn.xml",), temperature=300.0,
             timestep=0.002, friction=1.0, seed=0, platform=None, chunks=10, resume=False, progress=False):
    """Unbiased MD of the molecule in ``pdb`` (vacuum, NoCutoff, HBonds) with OpenMM.

    Writes ``out/trajectory.xtc`` (frames every ``stride`` steps), ``out/topology.pdb`` (to read it
    with), ``out/checkpoint.npz`` and ``out/report.json``. Times in ps, temperature in K, friction in 1/ps.
    """
    os.makedirs(out, exist_ok=True)
    _write_topology(pdb, out)
    engine = _openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform)
    ckpt = os.path.join(out, "checkpoint.npz")
    resume = resume and os.path.exists(ckpt)
    if resume:
        engine.load_checkpoint(ckpt)
    _run_chunks(engine, out, n_steps, stride, chunks, resume, progress, _mdtraj_topology(pdb))
    report = {"pdb": os.fspath(pdb), "forcefield": list(forcefield), "steps": engine.step,
              "simulated_ps": engine.time, "platform": engine.platform_name, "temperature_K": temperature,
              "trajectory": "trajectory.xtc"}
    write_text_atomic(os.path.join(out, "report.json"), json.dumps(report, indent=2))
    return report


def _make_learner(method, lagtime, n_components, seed, epochs):
    from . import learners

    if method == "tica":
        return learners.TICA(lagtime=lagtime, n_components=n_components)
    if method == "pca":
        return learners.PCA(n_components=n_components)
    kw = {"n_components": n_components, "seed": seed, "max_epochs": epochs}
    if method == "deeptica":
        return learners.DeepTICA(lagtime=lagtime, layers=(32, 16), **kw)
    if method == "tae":
        return learners.TimeLaggedAutoEncoder(lagtime=lagtime, layers=(32, 16), **kw)
    if method == "autoencoder":
        return learners.AutoEncoder(layers=(32, 16), **kw)
    raise ValueError(f"method must be one of {_LEARNERS}; got {method!r}.")


def learn(trajectories, top, features, out, method="tica", lagtime=10, n_components=1, stride=1, chunk=None,
          seed=0, epochs=200):
    """Learn a CV from trajectories of a molecule and save it (``cl.save`` format) to ``out``.

    ``features`` is a specification for :func:`cvlearn.features.from_spec` (e.g. "distances:heavy").
    ``lagtime`` is in frames (after ``stride``). With ``chunk`` (frames), TICA and PCA stream the
    files and never hold more than one chunk in memory. Returns a report dict, also written next to
    ``out`` as ``<out>.json``.
    """
    from . import features as feats
    from .io._models import save

    files = [os.fspath(t) for t in (trajectories if isinstance(trajectories, (list, tuple)) else [trajectories])]
    featurizer = feats.from_spec(features, top)
    est = _make_learner(method, lagtime, n_components, seed, epochs)
    if chunk and method in ("tica", "pca"):
        data = feats.stream_features(files, featurizer, top=top, chunk=chunk, stride=stride)
    else:
        data = [featurizer.transform(t) for t in feats.load_trajectories(files, top=top, stride=stride)]
    est.fit(data)
    cv = est.to_module(featurizer=featurizer)
    info = {"method": method, "features": features, "trajectories": files, "stride": stride, **est.get_params()}
    save(cv, out, info=info)
    report = {"cv": os.fspath(out), "method": method, "features": features, "n_features": featurizer.n_features,
              "lagtime_frames": lagtime if method != "pca" else None}
    values = est.transform(data)  # one array per file
    values = np.concatenate(values) if isinstance(values, list) else values
    report["cv_std"] = values.std(axis=0).tolist()  # a guide for metadynamics sigma (about half of it)
    for attr in ("eigenvalues_", "timescales_", "explained_variance_ratio_"):
        if hasattr(est, attr):
            report[attr.rstrip("_")] = np.asarray(getattr(est, attr)).tolist()
    write_text_atomic(os.fspath(out) + ".json", json.dumps(report, indent=2))
    return report


def bias(pdb, cv, out, n_steps, sigma, height=1.2, bias_factor=10.0, pace=500, grid=None, stride=500,
         forcefield=("amber99sbildn.xml",), temperature=300.0, timestep=0.002, friction=1.0, seed=0,
         platform=None, bias_interval=1, chunks=10, resume=False, progress=False):
    """Well-tempered metadynamics of the molecule in ``pdb`` on a saved CV (``cl.save`` file) with OpenMM.

    ``grid`` is (lo, hi, bins) for each CV component (a tuple of three sequences, or of three
    numbers for one CV); default: the CV at the start +- 50 sigma with sigma/5 spacing, walls
    beyond. Writes ``COLVAR``, ``HILLS``, ``trajectory.xtc``, ``checkpoint.npz`` and ``report.json``
    into ``out``; ``resume=True`` continues from them.
    """
    from .bias import Grid, WellTemperedMetad
    from .io._models import load

    os.makedirs(out, exist_ok=True)
    _write_topology(pdb, out)
    path = lambda name: os.path.join(out, name)  # noqa: E731
    module = load(cv)
    sigma = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ValueError(f"sigma must be positive (CV units); got {sigma.tolist()}. About half the CV's standard "
                         "deviation in an unbiased run is a good start (`cvlearn learn` reports it as cv_std).")
    if grid is None:
        import mdtraj
        import torch

        start = module(torch.as_tensor(mdtraj.load(os.fspath(pdb)).xyz[:1], dtype=torch.float64))
        s0 = start.detach().numpy().reshape(-1)
        sigma = np.broadcast_to(sigma, s0.shape)
        grid = (s0 - 50 * sigma, s0 + 50 * sigma, np.full(s0.shape, 500))
    resume = resume and all(os.path.exists(path(f)) for f in ("HILLS", "checkpoint.npz"))
    if resume:
        with np.load(path("checkpoint.npz")) as ck:
            t_ck = float(ck["step"]) * timestep
        for name in ("HILLS", "COLVAR"):
            _truncate_after(path(name), t_ck)
    metad = WellTemperedMetad(module, sigma=sigma, height=height, bias_factor=bias_factor, pace=pace,
                              grid=Grid(*grid), outside="wall", hills=path("HILLS"), restart=resume)
    engine = _openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform, bias=metad,
                            bias_interval=bias_interval)
    if resume:
        engine.load_checkpoint(path("checkpoint.npz"))
    _run_chunks(engine, out, n_steps, stride, chunks, resume, progress, _mdtraj_topology(pdb), colvar="COLVAR")
    metad.close()
    report = {"pdb": os.fspath(pdb), "cv": os.fspath(cv), "steps": engine.step, "simulated_ps": engine.time,
              "hills": metad.n_hills, "sigma": sigma.tolist(), "height_kJ_mol": height, "bias_factor": bias_factor,
              "pace": pace, "bias_interval": bias_interval, "platform": engine.platform_name,
              "files": ["COLVAR", "HILLS", "trajectory.xtc", "topology.pdb", "checkpoint.npz"]}
    write_text_atomic(path("report.json"), json.dumps(report, indent=2))
    return report


def _muller_brown_setup(walkers, seed, initial_steps, temperature):
    """Engine factory, featurizer, initial run, variables, basins and exact Delta F of Muller-Brown."""
    from . import bias as biases
    from . import features as feats
    from . import systems
    from .engine import Langevin

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
    from . import data
    from . import features as feats
    from .engine import WalkerGroup
    from .fes import Basin

    shipped = pdb is None
    pdb = _pdb_or_alanine(pdb)
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
        engines = [_openmm_engine(pdb, forcefield, temperature, timestep, friction, 1000 * (seed + k) + i, platform,
                                  bias=bias) for i in range(walkers)]
        return WalkerGroup(engines, chunk=50 * stride)

    hot = _openmm_engine(pdb, forcefield, explore_temperature, timestep, friction, seed, platform)
    log.info("exploration: %d steps unbiased at %g K", initial_steps, explore_temperature)
    initial = hot.run(initial_steps, stride=stride, progress=progress)
    periodic = variable.startswith("dihedrals")
    cores, reference = None, None
    if shipped and variable == "dihedrals:phi":  # count transitions between the C7eq and C7ax cores
        cores = (Basin(lo=[-2.8], hi=[-0.5]), Basin(lo=[0.3], hi=[2.0]))
        solvent = data.alanine_solvent(forcefield)
        if solvent is not None and temperature == 300.0 and tuple(basins[0].ravel()) == (-np.pi, 0.0):
            reference = data.alanine_reference(solvent)
    return {"make_engine": make_engine, "featurizer": feats.from_spec(features, pdb), "initial": initial,
            "variables": var, "basins": tuple(Basin(lo=b[:, 0], hi=b[:, 1]) for b in basins), "cores": cores,
            "ranges": [(-np.pi, np.pi)] * var.n_features if periodic else None,
            "exact": None if reference is None else reference["delta_f_kj_mol"],
            "exact_error": None if reference is None else reference["sem_kj_mol"],
            "timestep": timestep, "stride": stride}


def _pdb_or_alanine(pdb):
    if pdb is not None:
        return pdb
    from .data import alanine_dipeptide_pdb

    return alanine_dipeptide_pdb()


# The protocol each kind of system runs when an option is left out (None). Molecules: explore hot (700 K:
# alanine dipeptide crosses phi ~3-6 times per ns there, while its peptide bonds stay trans, which they do
# not at 1000 K), learn Deep-TICA (best of 3 networks, 60 epochs: trained to convergence the CV becomes a
# step whose bias force sits in the transition region, and OPES on it did not converge within 1 ns), then OPES
# with 4 walkers; see benchmarks/RESULTS.md "The loop on alanine dipeptide".
_DEFAULTS = {
    "muller-brown": {"method": "tica", "walkers": 8, "steps": 20000, "initial_steps": 4000, "stride": 10,
                     "lagtime": 10, "bias": "metad", "skip": 0.3, "rounds": 5, "n_models": 1,
                     "train_weights": "reweighted", "cv_tol": 0.02, "explore_temperature": None, "epochs": 200},
    "molecule": {"method": "deeptica", "walkers": 4, "steps": 125_000, "initial_steps": 1_000_000, "stride": 100,
                 "lagtime": 5, "bias": "opes", "skip": 0.5, "rounds": 5, "n_models": 3,
                 "train_weights": "sampled", "cv_tol": None, "explore_temperature": 700.0, "epochs": 60},
}


def iterate(out, system=None, pdb=None, forcefield=("amber99sbildn.xml",), features="distances:heavy",
            variable=None, basins=None, method=None, rounds=None, walkers=None, steps=None, initial_steps=None,
            stride=None, lagtime=None, bias=None, barrier=40.0, height=None, bias_factor=10.0, pace=None, skip=None,
            reweighting=None, bins=60, tol=1.0, cv_tol="default", seed=0, epochs=None, n_models=None,
            temperature=None, explore_temperature="default", timestep=0.002, friction=1.0, platform=None,
            train_weights=None, progress=False):
    """Learn a CV, bias it, reweight, relearn (:func:`cvlearn.iterate`) and write every round to ``out``.

    Every option left out (None) takes the protocol's value for the kind of system, so the plain call
    runs what was measured to work (``benchmarks/iterate_reliability.py``).

    ``system="muller-brown"`` runs the built-in engine on Muller-Brown (8 walkers of 5 fs steps, all from
    basin A, TICA, well-tempered metadynamics, c(t) reweighting; Delta F = F(B) - F(A), exact value known).

    Otherwise the molecule in ``pdb`` (default: the shipped alanine dipeptide, from C7eq) runs in OpenMM
    (NoCutoff, HBonds, ``timestep`` ps, ``friction`` 1/ps, each run from the minimized structure):

    1. exploration: ``initial_steps`` (2 ns) unbiased at ``explore_temperature`` (700 K), which needs no
       knowledge of the slow coordinate; its frames teach the first CV and are never reweighted;
    2. each round: Deep-TICA on ``features`` (lag ``lagtime`` frames = 1 ps, ``epochs`` 60: smooth enough
       to bias), the best of ``n_models`` (3) networks by VAMP-2 score on all frames; OPES (``barrier``
       kJ/mol) on it at ``temperature`` with ``walkers`` (4) walkers of ``steps`` (250 ps) each sharing
       the bias; Delta F on ``variable`` (default "dihedrals:phi", ``basins`` phi < 0 and phi > 0) by
       reweighting with exp(beta V), the first ``skip`` (half) of each round dropped while OPES fills;
       then relearn from all frames so far, as sampled;
    3. stop when two consecutive rounds that both sampled both basins agree (``tol``, kJ/mol, and 2
       standard errors); the answer is their inverse-variance weighted mean. A round that did not sample
       both basins reports a lower bound, no Delta F, and doubles the next round's bias.

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
    >>> import tempfile, cvlearn.workflows as wf
    >>> out = tempfile.mkdtemp()
    >>> s = wf.iterate(out, system="muller-brown", rounds=1, walkers=2, steps=500, initial_steps=500)
    >>> s["rounds"][0]["simulated_ps"], round(s["reference_delta_f"], 2)    # ps (all walkers), kJ/mol
    (5.0, 11.41)
    >>> sorted(os.listdir(os.path.join(out, "round_1")))
    ['HILLS', 'cv.pt', 'fes.npz']
    """
    import time

    from .io._models import save
    from .loop import iterate as run_loop
    from .loop import metad_for, opes_for

    t_start = time.perf_counter()
    kind = "muller-brown" if system == "muller-brown" else "molecule" if system is None else None
    if kind is None:
        raise ValueError(f"system must be 'muller-brown' or None (a molecule from pdb=); got {system!r}.")
    d = _DEFAULTS[kind]
    pick = lambda value, key: d[key] if value is None else value  # noqa: E731
    method, walkers, steps = pick(method, "method"), pick(walkers, "walkers"), pick(steps, "steps")
    initial_steps, stride = pick(initial_steps, "initial_steps"), pick(stride, "stride")
    lagtime = pick(lagtime, "lagtime")
    bias, skip, rounds = pick(bias, "bias"), pick(skip, "skip"), pick(rounds, "rounds")
    train_weights, epochs = pick(train_weights, "train_weights"), pick(epochs, "epochs")
    n_models = pick(n_models, "n_models") if method in ("deeptica", "tae", "autoencoder") else 1
    cv_tol = d["cv_tol"] if cv_tol == "default" else cv_tol
    explore_temperature = d["explore_temperature"] if explore_temperature == "default" else explore_temperature
    reweighting = reweighting or ("bias" if bias == "opes" else "ct")
    for name, value in (("rounds", rounds), ("steps", steps), ("initial_steps", initial_steps), ("walkers", walkers),
                        ("stride", stride), ("lagtime", lagtime), ("n_models", n_models)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if bias not in ("opes", "metad"):
        raise ValueError(f"bias must be 'opes' or 'metad'; got {bias!r}.")
    if reweighting not in ("ct", "final", "bias"):
        raise ValueError(f"reweighting must be 'ct', 'final' or 'bias'; got {reweighting!r}.")
    if reweighting == "ct" and bias == "opes":
        raise ValueError("OPES has no c(t): use reweighting='bias' (the default with OPES) or 'final'.")
    if bias == "metad" and kind == "molecule" and walkers != 1:
        raise ValueError(f"Metadynamics on a molecule runs one walker per round (c(t) follows one clock); got "
                         f"walkers={walkers}. Pass walkers=1 (CLI: --walkers 1), or bias='opes'.")
    if steps % stride or initial_steps % stride:
        raise ValueError(f"steps ({steps}) and initial_steps ({initial_steps}) must be multiples of stride ({stride}).")
    os.makedirs(out, exist_ok=True)
    if kind == "muller-brown":
        setup = _muller_brown_setup(walkers, seed, initial_steps, temperature)
        height, pace = height or 1.5, pace or 100
        run_temperature = setup["initial"].temperature
    else:
        run_temperature = 300.0 if temperature is None else temperature
        setup = _molecule_setup(pdb, forcefield, features, variable, basins, seed, initial_steps, stride,
                                run_temperature, timestep, friction, platform, walkers,
                                explore_temperature or run_temperature, progress)
        height, pace = height or 1.2, pace or 500
    learner = _make_learner(method, lagtime, 1, seed, epochs)
    rdir = lambda k: os.path.join(out, f"round_{k}")  # noqa: E731
    bias_file = "KERNELS" if bias == "opes" else "HILLS"

    def make_bias(cv, s, strength=1.0, segments=None):
        if bias == "opes":
            return opes_for(cv, s, barrier=barrier, pace=pace, temperature=run_temperature, segments=segments,
                            strength=strength)
        return metad_for(cv, s, height=height, bias_factor=bias_factor, pace=pace, strength=strength)

    def make_engine(b, k):
        os.makedirs(rdir(k), exist_ok=True)
        b.open_hills(os.path.join(rdir(k), bias_file))
        return setup["make_engine"](b, k)

    def write_round(r):
        save(r.cv, os.path.join(rdir(r.index), "cv.pt"), info={"method": method, "round": r.index})
        r.fes.save(os.path.join(rdir(r.index), "fes.npz"))
        r.bias.close()
        log.info("round %d written to %s", r.index, rdir(r.index))

    result = run_loop(make_engine, learner, setup["featurizer"],
                      setup["initial"], setup["variables"], setup["basins"], make_bias=make_bias,
                      rounds=rounds, steps=steps, stride=stride, tol=tol, cv_tol=cv_tol,
                      reweight={"skip": skip, "method": reweighting, "bins": bins, "ranges": setup["ranges"]},
                      progress=progress, callback=write_round, transition_basins=setup["cores"],
                      train_weights=train_weights, n_models=n_models)
    finite = lambda x: float(x) if x is not None and np.isfinite(x) else None  # noqa: E731  strict JSON
    rows = result.summary()
    ns_round = [steps * setup["timestep"] * r.trajectory.n_walkers / 1000.0 for r in result.rounds]
    for row, ns in zip(rows, ns_round):
        row["simulated_ps"] = float(ns * 1000.0)
        for key in ("delta_f", "error", "cv_change", "bound"):
            row[key] = finite(row[key])
    explore_ns = setup["initial"].n_walkers * initial_steps * setup["timestep"] / 1000.0
    final = result.delta_f
    summary = {"system": system or os.fspath(_pdb_or_alanine(pdb)), "method": method, "bias": bias,
               "reweighting": reweighting, "skip": skip, "train_weights": train_weights, "n_models": n_models,
               "walkers": walkers, "explore_temperature_K": setup["initial"].temperature,
               "reference_delta_f": setup["exact"], "reference_error": setup["exact_error"],
               "converged": result.converged,
               "delta_f": None if final is None else finite(final.value),
               "error": None if final is None else finite(final.error),
               "transitions": int(sum(r.transitions for r in result.rounds)),
               "simulated_ns": float(explore_ns + sum(ns_round)), "exploration_ns": float(explore_ns),
               "wall_s": float(time.perf_counter() - t_start), "rounds": rows,
               "units": {"delta_f": "kJ/mol", "simulated_ps": "ps, all walkers", "simulated_ns": "ns, all runs"}}
    write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2, default=float))
    _summary_figure(result, setup["exact"], "exact" if kind == "muller-brown" else "reference",
                    os.path.join(out, "summary.png"))
    return summary


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
