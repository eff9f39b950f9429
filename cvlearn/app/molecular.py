"""The molecule commands ``cvlearn simulate``, ``learn`` and ``bias``: OpenMM runs and CV learning from files.

Each is a plain function (usable from Python) that writes its results into an output folder or file.
``simulate`` and ``bias`` run in chunks, and after every chunk rewrite the trajectory and the
checkpoint atomically, so an interrupted run loses at most one chunk and continues with
``resume=True`` (see :mod:`cvlearn.app.runs`).
"""

import json
import os

import numpy as np

from ..io import save, write_text_atomic
from .cv_learners import make_learner
from .runs import claim_file, claim_output, file_identity, resume_from, run_in_chunks

__all__ = ["run_simulate", "run_learn", "run_bias", "openmm_engine", "pdb_or_alanine"]


def pdb_or_alanine(pdb):
    """``pdb``, or the shipped alanine dipeptide (C7eq) when it is None."""
    if pdb is not None:
        return pdb
    from ..data import alanine_dipeptide_pdb

    return alanine_dipeptide_pdb()


def _mdtraj_topology(pdb):
    import mdtraj

    return mdtraj.load_topology(os.fspath(pdb))


def _append_frames(path, new, topology):
    """Append the frames of ``new`` (a cvlearn Trajectory of one walker) to the trajectory file at
    ``path`` (any format mdtraj writes; made when missing), rewriting it atomically. Frames the file
    holds from ``new``'s first time on (of a chunk that was interrupted and is being redone) are dropped."""
    import mdtraj

    exists = os.path.exists(path)
    if exists and not new.n_frames:
        return
    frames = mdtraj.Trajectory(new.positions[:, 0].astype(np.float32), topology, time=new.time)
    if exists:
        old = mdtraj.load(path, top=topology)
        old = old[old.time < new.time[0] - 1e-6]
        frames = old.join(frames, check_topology=False) if old.n_frames else frames
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


def _run_in_chunks(engine, out, n_steps, stride, chunks, resume, progress, pdb, colvar=None):
    """Run ``engine`` to ``n_steps`` in about ``chunks`` pieces of whole frames, appending each piece's
    frames to ``out/trajectory.xtc`` before its checkpoint (:func:`~cvlearn.app.runs.run_in_chunks`).
    The claimed ``out`` holds a trajectory only when the run resumes: its frames are continued."""
    topology, path = _mdtraj_topology(pdb), os.path.join(out, "trajectory.xtc")
    per_chunk = max(stride, (n_steps // max(chunks, 1)) // stride * stride)
    run_in_chunks(engine, n_steps, per_chunk, lambda piece: _append_frames(path, piece, topology),
                  os.path.join(out, "checkpoint.npz"), stride=stride, resume=resume, colvar=colvar, progress=progress)


def openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform, bias=None, bias_interval=1):
    """The OpenMM engine of every molecule command: ``pdb`` minimized, vacuum or the implicit solvent of
    ``forcefield`` (K, ps, 1/ps; ``bias`` applied every ``bias_interval`` steps)."""
    from ..engine import OpenMM

    return OpenMM.from_pdb(pdb, forcefield=forcefield, temperature=temperature, timestep=timestep,
                           friction=friction, seed=seed, platform=platform, bias=bias,
                           bias_interval=bias_interval, minimize=True)


def _md_settings(pdb, forcefield, temperature, timestep, friction, seed, stride):
    """What a resumed simulate/bias run must share with the run it continues."""
    return {"pdb": file_identity(pdb), "forcefield": list(forcefield), "temperature": temperature,
            "timestep": timestep, "friction": friction, "seed": seed, "stride": stride}


def run_simulate(pdb, out, n_steps, stride=500, forcefield=("amber99sbildn.xml",), temperature=300.0,
                 timestep=0.002, friction=1.0, seed=0, platform=None, chunks=10, resume=False, progress=False,
                 force=False):
    """Unbiased MD of the molecule in ``pdb`` (vacuum, NoCutoff, HBonds) with OpenMM.

    Writes ``out/trajectory.xtc`` (frames every ``stride`` steps), ``out/topology.pdb`` (to read it
    with), ``out/checkpoint.npz``, ``out/settings.json`` and ``out/report.json``. Times in ps,
    temperature in K, friction in 1/ps. ``out`` must be new or empty unless ``resume`` (continue the
    run there, same settings) or ``force`` (keep the earlier run in ``out/bck.<n>/``); see
    :func:`~cvlearn.app.claim_output`. Returns the report.

    Examples
    --------
    >>> import os
    >>> from cvlearn.app import run_simulate
    >>> from cvlearn.data import alanine_dipeptide_pdb
    >>> report = run_simulate(alanine_dipeptide_pdb(), "md", 200, stride=50)   # 0.4 ps
    >>> report["steps"], sorted(os.listdir("md"))
    (200, ['checkpoint.npz', 'report.json', 'settings.json', 'topology.pdb', 'trajectory.xtc'])
    >>> run_simulate(alanine_dipeptide_pdb(), "md", 400, stride=50, resume=True)["steps"]   # 0.4 ps more
    400
    """
    resume = claim_output(out, "simulate", resume=resume, force=force,
                          settings=_md_settings(pdb, forcefield, temperature, timestep, friction, seed, stride))
    if resume:
        resume_from(out, "checkpoint.npz", timestep, n_steps)
    engine = openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform)
    _write_topology(pdb, out)
    if resume:
        engine.load_checkpoint(os.path.join(out, "checkpoint.npz"))
    _run_in_chunks(engine, out, n_steps, stride, chunks, resume, progress, pdb)
    report = {"pdb": os.fspath(pdb), "forcefield": list(forcefield), "steps": engine.step,
              "simulated_ps": engine.time, "platform": engine.platform_name, "temperature_K": temperature,
              "trajectory": "trajectory.xtc"}
    write_text_atomic(os.path.join(out, "report.json"), json.dumps(report, indent=2))
    return report


def run_learn(trajectories, top, features, out, method="tica", lagtime=10, n_components=1, stride=1, chunk=None,
              seed=0, epochs=200, force=False):
    """Learn a CV from trajectories of a molecule and save it (``cl.save`` format) to ``out``.

    ``features`` is a specification for :func:`cvlearn.features.from_spec` (e.g. "distances:heavy").
    ``lagtime`` is in frames (after ``stride``). With ``chunk`` (frames), TICA and PCA stream the
    files and never hold more than one chunk in memory. Returns a report dict, also written next to
    ``out`` as ``<out>.json``. Both are checked before any work: an existing ``out`` is refused, or
    with ``force`` kept as ``bck.<n>.<name>``; missing folders are created.

    Examples
    --------
    >>> from cvlearn.app import run_learn, run_simulate
    >>> from cvlearn.data import alanine_dipeptide_pdb
    >>> _ = run_simulate(alanine_dipeptide_pdb(), "md_a", 1000, stride=10)
    >>> report = run_learn("md_a/trajectory.xtc", alanine_dipeptide_pdb(), "dihedrals:phi,psi", "cv_a.pt", lagtime=5)
    >>> report["method"], report["n_features"], len(report["cv_std"])
    ('tica', 2, 1)
    """
    from .. import features as feats

    for path in (out, os.fspath(out) + ".json"):
        claim_file(path, force=force)
    files = [os.fspath(t) for t in (trajectories if isinstance(trajectories, (list, tuple)) else [trajectories])]
    featurizer = feats.from_spec(features, top)
    est = make_learner(method, lagtime=lagtime, n_components=n_components, seed=seed, max_epochs=epochs)
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


def run_bias(pdb, cv, out, n_steps, sigma, height=1.2, bias_factor=10.0, pace=500, grid=None, stride=500,
             forcefield=("amber99sbildn.xml",), temperature=300.0, timestep=0.002, friction=1.0, seed=0,
             platform=None, bias_interval=1, chunks=10, resume=False, progress=False, force=False):
    """Well-tempered metadynamics of the molecule in ``pdb`` on a saved CV (``cl.save`` file) with OpenMM.

    ``grid`` is (lo, hi, bins) for each CV component (a tuple of three sequences, or of three
    numbers for one CV); default: the CV at the start +- 50 sigma with sigma/5 spacing, walls
    beyond. Writes ``COLVAR``, ``HILLS``, ``trajectory.xtc``, ``checkpoint.npz`` and ``report.json``
    into ``out``; ``resume=True`` continues from them, refusing other settings (CV, grid, sigma,
    height, bias factor, temperature... recorded in ``out/settings.json``); ``force=True`` keeps an
    earlier run there in ``out/bck.<n>/`` (see :func:`~cvlearn.app.claim_output`). Returns the report.

    Examples
    --------
    >>> from cvlearn.app import run_bias, run_learn, run_simulate
    >>> from cvlearn.data import alanine_dipeptide_pdb
    >>> _ = run_simulate(alanine_dipeptide_pdb(), "md_b", 1000, stride=10)
    >>> _ = run_learn("md_b/trajectory.xtc", alanine_dipeptide_pdb(), "dihedrals:phi,psi", "cv_b.pt", lagtime=5)
    >>> report = run_bias(alanine_dipeptide_pdb(), "cv_b.pt", "metad", 400, sigma=0.1, pace=100, stride=100)
    >>> report["steps"], report["hills"]
    (400, 4)
    """
    from ..bias import Grid, WellTemperedMetad
    from ..io import load

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
                "cv": file_identity(cv, names=list(module.names), method=info.get("method"),
                                    features=info.get("features")),
                "sigma": sigma.tolist(), "height": height, "bias_factor": bias_factor, "pace": pace, "grid": grid,
                "bias_interval": bias_interval}
    resume = claim_output(out, "bias", resume=resume, force=force, settings=settings,
                          resumable=("HILLS", "checkpoint.npz"))
    if resume:
        resume_from(out, "checkpoint.npz", timestep, n_steps, [path("HILLS"), path("COLVAR")])
    metad = WellTemperedMetad(module, sigma=sigma, height=height, bias_factor=bias_factor, pace=pace,
                              grid=Grid(*grid), outside="wall", hills=path("HILLS"), restart=resume)
    engine = openmm_engine(pdb, forcefield, temperature, timestep, friction, seed, platform, bias=metad,
                            bias_interval=bias_interval)
    _write_topology(pdb, out)  # after the engine: a wrong force field leaves nothing but settings.json
    if resume:
        engine.load_checkpoint(path("checkpoint.npz"))
    _run_in_chunks(engine, out, n_steps, stride, chunks, resume, progress, pdb, colvar=path("COLVAR"))
    metad.close()
    report = {"pdb": os.fspath(pdb), "cv": os.fspath(cv), "steps": engine.step, "simulated_ps": engine.time,
              "hills": metad.n_hills, "sigma": sigma.tolist(), "height_kJ_mol": height, "bias_factor": bias_factor,
              "pace": pace, "bias_interval": bias_interval, "platform": engine.platform_name,
              "files": ["COLVAR", "HILLS", "trajectory.xtc", "topology.pdb", "checkpoint.npz"]}
    write_text_atomic(path("report.json"), json.dumps(report, indent=2))
    return report


