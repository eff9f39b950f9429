"""The workflows behind ``cvlearn simulate``, ``learn``, ``bias`` and ``iterate``.

Each is a plain function (usable from Python) that writes its results into an output directory.
``simulate`` and ``bias`` run in chunks, and after every chunk rewrite the trajectory and the
checkpoint atomically, so an interrupted run loses at most one chunk and continues with
``resume=True``; ``iterate`` writes each round's files as soon as the round is done.
"""

import hashlib
import json
import logging
import os
import re

import numpy as np

from .exceptions import CVLearnError
from .io._atomic import write_text_atomic

__all__ = ["simulate", "learn", "bias", "iterate", "claim_output", "claim_file", "RunFolderError"]

log = logging.getLogger("cvlearn")


class RunFolderError(CVLearnError, ValueError):
    """An output that a run must not use as it stands: it holds another run (pass ``resume`` or
    ``force``), ``resume`` asks to continue a run with other settings, or with fewer steps than done."""


#: Where a run records the settings it started with; ``resume`` compares them with the new call's.
SETTINGS = "settings.json"
_BACKUP = re.compile(r"bck\.\d+(\..+)?")  # bck.<n>/ (a whole earlier run) and PLUMED's bck.<n>.<file>


def _previous_run(out):
    """Names in ``out`` left by an earlier run: everything except the backups of earlier ones."""
    if not os.path.isdir(out):
        return []
    return sorted(name for name in os.listdir(out) if not _BACKUP.fullmatch(name))


def _free_backup(head, name=""):
    """The first ``bck.<n>`` (folder) or ``bck.<n>.<name>`` (file) in ``head`` that does not exist."""
    n = 0
    while os.path.exists(os.path.join(head, f"bck.{n}" + (f".{name}" if name else ""))):
        n += 1
    return os.path.join(head, f"bck.{n}" + (f".{name}" if name else ""))


def _back_up_run(out, names):
    """Move ``names`` (the whole earlier run) into ``out/bck.<n>/``, together: a CV stays with its HILLS."""
    dest = _free_backup(out)
    os.makedirs(dest)
    for name in names:
        os.replace(os.path.join(out, name), os.path.join(dest, name))
    return dest


def _listing(names, n=4):
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _read_settings(out):
    try:
        with open(os.path.join(out, SETTINGS)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _as_json(value):
    return json.loads(json.dumps(value))


def _comparable(value):
    """A setting as compared on resume: a described file (CV, structure) by its content, not its path."""
    return {k: v for k, v in value.items() if k != "file"} if isinstance(value, dict) else value


def _describe(value):
    if isinstance(value, dict) and "sha256" in value:
        extra = ", ".join(f"{k} {v}" for k, v in value.items() if k not in ("file", "sha256") and v is not None)
        return f"{value.get('file')} ({extra + ', ' if extra else ''}sha256 {value['sha256']})"
    return json.dumps(value)


def _check_same_settings(out, saved, settings):
    """Refuse to continue the run in ``out`` with settings other than those it started with."""
    settings = _as_json(settings)
    if saved.get("command") != settings.get("command"):
        raise RunFolderError(f"--resume: {out} holds a run of cvlearn {saved.get('command')}, not of cvlearn "
                             f"{settings.get('command')}; choose the --out of a {settings.get('command')} run.")
    changed = [k for k in sorted(set(saved) | set(settings))
               if _comparable(saved.get(k)) != _comparable(settings.get(k))]
    if not changed:
        return
    what = "; ".join(f"--{k.replace('_', '-')}: the run has {_describe(saved.get(k))}, this call "
                     f"{_describe(settings.get(k))}" for k in changed)
    raise RunFolderError(f"--resume would mix two runs in {out}: {what}. Resume with the run's own settings, or start "
                         "a new run: another --out, or --force without --resume (keeps this one in "
                         f"{out}/bck.<n>/).")


def _file_identity(path, **about):
    """A file as a run's settings record it: its path, what it is, and its content's SHA-256 (first 16 hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": os.fspath(path), **about, "sha256": digest.hexdigest()[:16]}


def claim_output(out, command, *, resume=False, force=False, settings=None, resumable=("checkpoint.npz",)):
    """Make the folder ``out`` the home of a run of ``command``, never losing or mixing an earlier one.

    Without ``resume`` the folder must be new or empty; an earlier run there is refused, or with
    ``force`` moved whole into ``out/bck.<n>/`` (its CV, HILLS, report and figures together). With
    ``resume`` the run recorded in ``out/settings.json`` must have the same ``settings`` (CV,
    grid, sigma, temperature...; steps may grow); a folder with nothing to resume starts a new run
    and says so. The settings of a new run are written to ``out/settings.json`` before any work.

    Parameters
    ----------
    out : str
        The output folder (created).
    command : str
        What runs there (``"bias"``, ``"quickstart"``...), recorded and compared with the settings.
    resume, force : bool
    settings : dict, optional
        JSON-serialisable settings that a resumed run must share (files as :func:`_file_identity`).
    resumable : sequence of str
        Files that must all exist in ``out`` to continue the run from them.

    Returns
    -------
    bool
        True when the call continues the run in ``out`` from its files.

    Raises
    ------
    RunFolderError
        ``out`` is a file, holds another run (and neither ``resume`` nor ``force``), or ``resume``
        meets other settings.

    Examples
    --------
    >>> from cvlearn.workflows import claim_output
    >>> claim_output("run", "bias", settings={"temperature": 300.0})
    False
    >>> _ = open("run/HILLS", "w").write("...")
    >>> claim_output("run", "bias", settings={"temperature": 300.0})
    Traceback (most recent call last):
        ...
    cvlearn.workflows.RunFolderError: --out run already holds a run (HILLS, settings.json): pass --resume to ...
    >>> claim_output("run", "bias", force=True, settings={"temperature": 300.0}), sorted(os.listdir("run"))
    (False, ['bck.0', 'settings.json'])
    """
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out} is a file, not a folder: choose a folder name.")
    settings = None if settings is None else {"command": command, **settings}
    previous = _previous_run(out)
    if previous == [SETTINGS]:  # a run that stopped before it wrote anything (e.g. a wrong force field)
        previous = []
    saved = _read_settings(out) if previous else None
    found = bool(previous) and all(os.path.exists(os.path.join(out, f)) for f in resumable)
    if resume and saved is not None and settings is not None:
        _check_same_settings(out, saved, settings)
    if resume and (saved is not None or found):
        if saved is None:
            log.info("%s has no %s (an older cvlearn's run): continuing without checking its settings", out, SETTINGS)
        elif not found:
            log.info("%s holds no checkpoint yet (the run stopped before its first): starting it again", out)
    elif previous and not force:
        raise RunFolderError(_occupied(out, command, previous, resume))
    elif previous:
        log.info("Kept the earlier run of %s in %s", out, _back_up_run(out, previous))
        saved, found = None, False
    elif resume:
        log.info("Nothing to resume in %s: starting a new run", out)
    os.makedirs(out, exist_ok=True)
    if settings is not None and not (resume and saved is not None):
        write_text_atomic(os.path.join(out, SETTINGS), json.dumps(settings, indent=2))
    return bool(resume and found)


def _occupied(out, command, previous, resume):
    keep = f"--force to keep {'them' if resume else 'it'} in {out}/bck.<n>/ and start anew, or choose another --out."
    if resume:
        return f"--out {out} holds files ({_listing(previous)}) but no run of cvlearn {command} to resume: pass {keep}"
    return f"--out {out} already holds a run ({_listing(previous)}): pass --resume to continue it, {keep}"


def claim_file(path, *, force=False, option="--out"):
    """Check that a run may write the file ``path`` before it works: refuse an existing file (keep it as
    ``bck.<n>.<name>`` with ``force``) or a folder; create missing parent folders.

    Examples
    --------
    >>> from cvlearn.workflows import claim_file
    >>> claim_file("models/cv.pt")
    'models/cv.pt'
    >>> _ = open("models/cv.pt", "w").write("a CV")
    >>> claim_file("models/cv.pt", force=True), sorted(os.listdir("models"))
    ('models/cv.pt', ['bck.0.cv.pt'])
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise RunFolderError(f"{option} {path} is a folder: give a file name (e.g. {os.path.join(path, 'cv.pt')}).")
    if os.path.exists(path):
        if not force:
            raise RunFolderError(f"{option} {path} already exists: pass --force to keep it as "
                                 f"bck.<n>.{os.path.basename(path)} and write a new one, or choose another {option}.")
        head, name = os.path.split(path)
        kept = _free_backup(head or ".", name)
        os.replace(path, kept)
        log.info("Kept the earlier %s as %s", path, kept)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def _check_steps(out, done, steps):
    """``resume`` with ``steps`` in all: refuse fewer than the ``done`` steps of the run, say when none are left."""
    if steps < done:
        raise RunFolderError(f"{out} already holds {done} steps, more than --steps {steps}: pass --steps above {done} "
                             "to continue the run (its files are unchanged), or start a new one elsewhere.")
    if steps == done:
        log.info("%s already holds all %d steps: nothing left to run", out, steps)

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
    saved frames). ``progress``: one bar for the whole run."""
    path = lambda name: os.path.join(out, name)  # noqa: E731
    per_chunk = max(stride, (n_steps // max(chunks, 1)) // stride * stride)
    first = True
    with _RunProgress(progress, n_steps, engine.step) as advance:
        while engine.step < n_steps:
            todo = min(per_chunk, n_steps - engine.step)
            piece = engine.run(todo, stride=stride, restart=resume or not first, callback=advance,
                               colvar=None if colvar is None else path(colvar))
            _save_frames(path("trajectory.xtc"), piece, topology, resume=resume or not first)
            engine.save_checkpoint(path("checkpoint.npz"))
            first = False
            log.debug("step %d / %d written to %s", engine.step, n_steps, out)


class _RunProgress:
    """One progress bar over a run of ``total`` steps made of many engine calls: ``advance(frame)``
    (an engine ``callback``) moves it to the frame's step. Nothing is shown when ``show`` is false."""

    def __init__(self, show, total, done=0, desc="MD"):
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="step", mininterval=0.5)

    def __call__(self, frame):  # a cvlearn.engine.Frame, from either engine
        if self.bar is not None:
            self.bar.update(int(frame.step) - self.bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def _truncate_after(path, time):
    """Drop the rows of a PLUMED file (COLVAR, HILLS) written after ``time`` (ps): those of a chunk
    that was interrupted before its checkpoint, which the resumed run will write again. Returns how
    many rows it dropped."""
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        lines = fh.readlines()
    keep = [ln for ln in lines if ln.startswith("#") or not ln.strip() or float(ln.split()[0]) <= time + 1e-9]
    if len(keep) != len(lines):
        write_text_atomic(path, "".join(keep))
    return len(lines) - len(keep)


def _resume_from(out, checkpoint, step, time, steps, files):
    """Continue the run in ``out`` from its ``checkpoint`` at ``step`` (``time`` ps): refuse fewer
    ``steps`` than done, drop the rows of ``files`` (COLVAR, HILLS) written after it, and say so."""
    _check_steps(out, step, steps)
    dropped = {os.path.basename(f): _truncate_after(f, time) for f in files}
    gone = ", ".join(f"{n} {name}" for name, n in dropped.items() if n) or "none"
    log.info("Resuming %s from %s at step %d (%g ps); rows written after it and discarded: %s",
             out, checkpoint, step, time, gone)
    return dropped


def _openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform, bias=None, bias_interval=1):
    from .engine import OpenMM

    return OpenMM.from_pdb(pdb, forcefield=forcefield, temperature=temperature, timestep=timestep,
                           friction=friction, seed=seed, platform=platform, bias=bias,
                           bias_interval=bias_interval, minimize=True)


def _md_settings(pdb, forcefield, temperature, timestep, friction, seed, stride):
    """What a resumed simulate/bias run must share with the run it continues."""
    return {"pdb": _file_identity(pdb), "forcefield": list(forcefield), "temperature": temperature,
            "timestep": timestep, "friction": friction, "seed": seed, "stride": stride}


def _checkpoint_step(path):
    with np.load(path) as ck:
        return int(ck["step"])


def simulate(pdb, out, n_steps, stride=500, forcefield=("amber99sbildn.xml",), temperature=300.0,
             timestep=0.002, friction=1.0, seed=0, platform=None, chunks=10, resume=False, progress=False,
             force=False):
    """Unbiased MD of the molecule in ``pdb`` (vacuum, NoCutoff, HBonds) with OpenMM.

    Writes ``out/trajectory.xtc`` (frames every ``stride`` steps), ``out/topology.pdb`` (to read it
    with), ``out/checkpoint.npz``, ``out/settings.json`` and ``out/report.json``. Times in ps,
    temperature in K, friction in 1/ps. ``out`` must be new or empty unless ``resume`` (continue the
    run there, same settings) or ``force`` (keep the earlier run in ``out/bck.<n>/``); see
    :func:`claim_output`.
    """
    ckpt = os.path.join(out, "checkpoint.npz")
    resume = claim_output(out, "simulate", resume=resume, force=force,
                          settings=_md_settings(pdb, forcefield, temperature, timestep, friction, seed, stride))
    if resume:
        step = _checkpoint_step(ckpt)
        _resume_from(out, "checkpoint.npz", step, step * timestep, n_steps, [])
    engine = _openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform)
    _write_topology(pdb, out)
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
          seed=0, epochs=200, force=False):
    """Learn a CV from trajectories of a molecule and save it (``cl.save`` format) to ``out``.

    ``features`` is a specification for :func:`cvlearn.features.from_spec` (e.g. "distances:heavy").
    ``lagtime`` is in frames (after ``stride``). With ``chunk`` (frames), TICA and PCA stream the
    files and never hold more than one chunk in memory. Returns a report dict, also written next to
    ``out`` as ``<out>.json``. Both are checked before any work: an existing ``out`` is refused, or
    with ``force`` kept as ``bck.<n>.<name>``; missing folders are created.
    """
    from . import features as feats
    from .io._models import save

    for path in (out, os.fspath(out) + ".json"):
        claim_file(path, force=force)
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
         platform=None, bias_interval=1, chunks=10, resume=False, progress=False, force=False):
    """Well-tempered metadynamics of the molecule in ``pdb`` on a saved CV (``cl.save`` file) with OpenMM.

    ``grid`` is (lo, hi, bins) for each CV component (a tuple of three sequences, or of three
    numbers for one CV); default: the CV at the start +- 50 sigma with sigma/5 spacing, walls
    beyond. Writes ``COLVAR``, ``HILLS``, ``trajectory.xtc``, ``checkpoint.npz`` and ``report.json``
    into ``out``; ``resume=True`` continues from them, refusing other settings (CV, grid, sigma,
    height, bias factor, temperature... recorded in ``out/settings.json``); ``force=True`` keeps an
    earlier run there in ``out/bck.<n>/`` (see :func:`claim_output`).
    """
    from .bias import Grid, WellTemperedMetad
    from .io._models import load

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
    lo, hi, bins = (np.atleast_1d(np.asarray(g, dtype=np.float64)) for g in grid)
    grid = (lo.tolist(), hi.tolist(), bins.astype(int).tolist())
    info = getattr(module, "info", {}) or {}
    settings = {**_md_settings(pdb, forcefield, temperature, timestep, friction, seed, stride),
                "cv": _file_identity(cv, names=list(module.names), method=info.get("method"),
                                    features=info.get("features")),
                "sigma": sigma.tolist(), "height": height, "bias_factor": bias_factor, "pace": pace, "grid": grid,
                "bias_interval": bias_interval}
    resume = claim_output(out, "bias", resume=resume, force=force, settings=settings,
                          resumable=("HILLS", "checkpoint.npz"))
    if resume:
        step = _checkpoint_step(path("checkpoint.npz"))
        _resume_from(out, "checkpoint.npz", step, step * timestep, n_steps, [path("HILLS"), path("COLVAR")])
    metad = WellTemperedMetad(module, sigma=sigma, height=height, bias_factor=bias_factor, pace=pace,
                              grid=Grid(*grid), outside="wall", hills=path("HILLS"), restart=resume)
    engine = _openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform, bias=metad,
                            bias_interval=bias_interval)
    _write_topology(pdb, out)  # after the engine: a wrong force field leaves nothing but settings.json
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
                     "train_weights": "reweighted", "cv_tol": 0.02, "explore_temperature": None, "epochs": 200,
                     "learn_rounds": None},
    "molecule": {"method": "deeptica", "walkers": 4, "steps": 125_000, "initial_steps": 1_000_000, "stride": 100,
                 "lagtime": 5, "bias": "opes", "skip": 0.5, "rounds": 8, "n_models": 3,
                 "train_weights": "sampled", "cv_tol": None, "explore_temperature": 700.0, "epochs": 60,
                 "learn_rounds": 2},
}


def iterate(out, system=None, pdb=None, forcefield=("amber99sbildn.xml",), features="distances:heavy",
            variable=None, basins=None, method=None, rounds=None, walkers=None, steps=None, initial_steps=None,
            stride=None, lagtime=None, bias=None, barrier=40.0, height=None, bias_factor=10.0, pace=None, skip=None,
            reweighting=None, bins=60, tol=1.0, cv_tol="default", seed=0, epochs=None, n_models=None,
            temperature=None, explore_temperature="default", timestep=0.002, friction=1.0, platform=None,
            train_weights=None, learn_rounds="default", progress=False):
    """Learn a CV, bias it, reweight, relearn (:func:`cvlearn.iterate`) and write every round to ``out``.

    Every option left out (None) takes the protocol's value for the kind of system, so the plain call
    runs what was measured to work (``benchmarks/iterate_reliability.py``).

    ``system="muller-brown"`` runs the built-in engine on Muller-Brown (8 walkers of 5 fs steps, all from
    basin A, TICA, well-tempered metadynamics, c(t) reweighting; Delta F = F(B) - F(A), exact value known).

    Otherwise the molecule in ``pdb`` (default: the shipped alanine dipeptide, from C7eq) runs in OpenMM
    (NoCutoff, HBonds, ``timestep`` ps, ``friction`` 1/ps, each run from the minimized structure):

    1. exploration: ``initial_steps`` (2 ns) unbiased at ``explore_temperature`` (700 K), which needs no
       knowledge of the slow coordinate; its frames teach the first CV and are never reweighted;
    2. learning rounds (``learn_rounds``, 2): Deep-TICA on ``features`` (lag ``lagtime`` frames = 1 ps,
       ``epochs`` 60: smooth enough to bias), the best of ``n_models`` (3) networks by VAMP-2 score on all
       frames so far (as sampled); OPES (``barrier`` kJ/mol) on it at ``temperature`` with ``walkers`` (4)
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
    learn_rounds = d["learn_rounds"] if learn_rounds == "default" else learn_rounds
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
        os.makedirs(rdir(r.index), exist_ok=True)  # a round that continues a bias made no engine (nor folder)
        save(r.cv, os.path.join(rdir(r.index), "cv.pt"), info={"method": method, "round": r.index})
        r.fes.save(os.path.join(rdir(r.index), "fes.npz"))
        log.info("round %d written to %s", r.index, rdir(r.index))

    result = run_loop(make_engine, learner, setup["featurizer"],
                      setup["initial"], setup["variables"], setup["basins"], make_bias=make_bias,
                      rounds=rounds, steps=steps, stride=stride, tol=tol, cv_tol=cv_tol,
                      reweight={"skip": skip, "method": reweighting, "bins": bins, "ranges": setup["ranges"]},
                      progress=progress, callback=write_round, transition_basins=setup["cores"],
                      train_weights=train_weights, n_models=n_models, learn_rounds=learn_rounds)
    for b in {id(r.bias): r.bias for r in result.rounds}.values():  # a continued bias spans rounds
        b.close()
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
