"""The molecular workflows behind ``cvlearn simulate``, ``cvlearn learn`` and ``cvlearn bias``.

Each is a plain function (usable from Python) that writes its results into an output directory,
runs in chunks, and after every chunk rewrites the trajectory and the checkpoint atomically, so an
interrupted run loses at most one chunk and continues with ``resume=True``.
"""

import json
import logging
import os

import numpy as np

from .io._atomic import write_text_atomic

__all__ = ["simulate", "learn", "bias"]

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
