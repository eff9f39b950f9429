"""The whole loop on Muller-Brown in about a minute: explore, learn a CV, bias it, get the FES.

Used by ``cvlearn quickstart``; importable as :func:`cvlearn.app.run_quickstart`.
"""

import json
import os
import time
import warnings

import numpy as np
import torch

from .. import fes as fes_mod
from ..bias import Grid, WellTemperedMetad
from ..engine import Langevin, Trajectory
from ..exceptions import ConvergenceWarning
from ..features import Positions
from ..io import save, write_text_atomic
from ..systems import MullerBrown
from .cv_learners import METHODS, make_learner
from .runs import claim_output, resume_from, run_in_chunks

__all__ = ["run_quickstart", "quickstart_learner"]

TIMESTEP = 0.005  # ps
FRICTION = 5.0  # 1/ps
EXPLORE_T = 1000.0  # K: barriers of ~4 kT, so a short unbiased run sees transitions
SKIP = 0.1  # fraction of the metadynamics frames discarded as transient, by the headline and its figure alike
MIN_COUNT = 3  # F(x, y) is drawn only in bins holding at least this many frames (fewer: noise, not a free energy)


def quickstart_learner(method, seed):
    """The quickstart's learner ``method`` (one of :data:`~cvlearn.app.METHODS`): a 1-D CV, lag 10 frames
    (0.25 ps of the exploration), TICA unscaled (unit variance), small networks.

    Examples
    --------
    >>> from cvlearn.app import quickstart_learner
    >>> quickstart_learner("deeptica", seed=0).get_params()["layers"]
    [8]
    """
    # A small network: Deep-TICA trained hard on a two-state system becomes step-like (flat in each
    # basin), which is a fine kinetic CV but a poor one to bias; a smooth CV converges metadynamics.
    if method == "deeptica":
        network = {"layers": [8], "max_epochs": 60, "patience": 20}
    else:
        network = {"layers": [16, 16], "max_epochs": 300, "patience": 40}
    return make_learner(method, lagtime=10, n_components=1, seed=seed, scaling=None, **network)


def _exact_fes_along(system, cv, bins):
    """Exact F(s) along a CV of a 2-D system, by Boltzmann-weighted histogram on a fine (x, y) grid."""
    ref = system.exact_fes(bins=500)
    with torch.no_grad():
        s = cv(torch.as_tensor(ref.points)[:, None, :]).numpy()[:, 0]
    w = np.exp(-(ref.F.ravel() - ref.F.min()) / ref.kT)
    hist, edges = np.histogram(s, bins=bins, weights=w)
    with np.errstate(divide="ignore"):
        F = -ref.kT * np.log(hist)
    return fes_mod.FreeEnergySurface([0.5 * (edges[1:] + edges[:-1])], F, system.temperature, names=cv.names,
                                     metadata={"method": "exact"})


def run_quickstart(out="quickstart_out", seed=0, steps=25000, method="tica", walkers=8, explore_steps=4000,
                   chunks=5, resume=False, progress=False, force=False):
    """Run the loop and write PNG, COLVAR.*, HILLS, .npz files and ``report.json`` into ``out``.

    Stages: (1) explore Muller-Brown unbiased at 1000 K (16 walkers); (2) learn a 1-D CV on (x, y)
    with ``method`` (:func:`quickstart_learner`: TICA by default, PCA as the baseline, or a neural
    learner); (3) well-tempered metadynamics on it at 300 K with ``walkers`` walkers sharing the bias for
    ``steps`` steps of 5 fs, in ``chunks`` pieces with a checkpoint after each (``resume=True``
    continues an interrupted run); (4) FES along the CV from the bias and in
    (x, y) by c(t) reweighting, and the A-B free energy difference with its block error next to
    the exact one: one estimator (c(t) weights summed over the frames in each basin, the first
    ``SKIP`` of them dropped) for the number reported and the convergence panel of the figure.

    The default run is short for that estimator: over seeds 0-7 its Delta F was 1.25 +- 0.34 kJ/mol below
    the exact 11.41 (mean +- s.e.), because the walkers lag the bias they fill together; the exact offset
    instead of c(t) gives the same, and dropping half the frames instead of ``SKIP`` does not help
    (benchmarks/ct_reweighting_bias.py). ``steps=100000`` gave 0.38 +- 0.20 below, ``steps=400000``
    0.03 +- 0.05.

    Parameters
    ----------
    out : str
        Output directory (created); it must be new or empty unless ``resume`` (continue the run
        there, same method, seed, walkers) or ``force`` (keep the earlier run in ``out/bck.<n>/``).
    seed : int
    steps : int
        Metadynamics steps per walker (5 fs each), a multiple of ``chunks``.
    method : str
        One of :data:`~cvlearn.app.METHODS` ("tica", "pca", ...).
    walkers, explore_steps, chunks : int
    resume, force, progress : bool

    Returns
    -------
    dict
        The report (also written to ``report.json``): free energy differences in kJ/mol (None
        when basin B was never visited), times in ps/ns, wall time in s.

    Examples
    --------
    A tiny run (the default, 25000 steps of 8 walkers, takes about a minute):

    >>> from cvlearn.app import run_quickstart
    >>> report = run_quickstart(out="qs", steps=500, walkers=2, explore_steps=500, chunks=1)
    >>> report["cv_method"], report["n_hills"], round(report["delta_f_exact_kJ_mol"], 2)
    ('tica', 10, 11.41)
    >>> "report.json" in report["files"] and "quickstart.png" in report["files"]
    True
    """
    _check_options(method, steps, walkers, explore_steps, chunks)
    resume = claim_output(out, "quickstart", resume=resume, force=force,
                          settings={"method": method, "seed": seed, "walkers": walkers, "explore_steps": explore_steps},
                          resumable=("HILLS", "checkpoint.npz", "metad_trajectory.npz"))
    mb = MullerBrown()
    timings = {}
    t0 = time.perf_counter()
    explore = _explore(out, seed, explore_steps, progress)  # cheap: redone on resume, so the CV is identical
    timings["explore_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cv, s = _learn_cv(out, mb, explore, method, seed)
    timings["learn_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metad, traj = _metadynamics(out, mb, cv, s, seed, steps, walkers, chunks, resume, progress)
    timings["metad_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fes_cv, fes_xy, series, exact = _free_energies(out, mb, metad, traj)
    timings["fes_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts = _frame_counts(traj, mb, fes_xy)
    png = _summary_figure(os.path.join(out, "quickstart.png"), mb, cv, explore, *_masked(fes_xy, counts), fes_cv,
                          series, exact, method)
    timings["plot_s"] = time.perf_counter() - t0
    report = _report(out, mb, method, walkers, steps, metad.n_hills, series, exact, timings, png)
    write_text_atomic(os.path.join(out, "report.json"), json.dumps(report, indent=2))
    return report


def _check_options(method, steps, walkers, explore_steps, chunks):
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}; got {method!r}.")
    for name, value in (("walkers", walkers), ("explore_steps", explore_steps), ("chunks", chunks)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if not isinstance(steps, (int, np.integer)) or steps < chunks or steps % chunks:
        raise ValueError(f"steps ({steps}) must be a positive multiple of chunks ({chunks}).")


def _explore(out, seed, explore_steps, progress):
    """Stage 1: 16 walkers unbiased at ``EXPLORE_T``, saved to ``out/explore.npz``."""
    hot = MullerBrown(temperature=EXPLORE_T)
    explore = Langevin(hot, timestep=TIMESTEP, friction=FRICTION, n_walkers=16, seed=seed).run(
        explore_steps, stride=10, progress=progress)
    explore.save(os.path.join(out, "explore.npz"))
    return explore


def _learn_cv(out, mb, explore, method, seed):
    """Stage 2: the CV learned from the exploration (saved to ``out/cv.pt``) and its values there."""
    est = quickstart_learner(method, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short training is enough for a 2-D example
        est.fit(explore)
    cv = est.to_module(featurizer=Positions.of(mb))
    s = np.concatenate(est.transform(explore))[:, 0]
    save(cv, os.path.join(out, "cv.pt"), info={"method": method, **est.get_params()})
    return cv, s


def _metadynamics(out, mb, cv, s, seed, steps, walkers, chunks, resume, progress):
    """Stage 3: well-tempered metadynamics on ``cv`` (hills of a tenth of its spread ``s``), restartable
    chunk by chunk; returns the bias and all its frames (those of a resumed run's earlier chunks too)."""
    path = lambda name: os.path.join(out, name)  # noqa: E731
    sigma = 0.1 * s.std()
    lo, hi = s.min() - 0.5 * s.std(), s.max() + 0.5 * s.std()
    grid = Grid(lo, hi, int(np.ceil((hi - lo) / (sigma / 5))))
    pieces = [_resume(out, walkers, steps)] if resume else []
    metad = WellTemperedMetad(cv, sigma=sigma, height=1.5, bias_factor=10.0, pace=100, grid=grid, outside="wall",
                              hills=path("HILLS"), restart=resume)
    engine = Langevin(mb, timestep=TIMESTEP, friction=FRICTION, n_walkers=walkers, seed=seed + 1, bias=metad)
    if resume:
        engine.load_checkpoint(path("checkpoint.npz"))
    engine.planned_steps = steps - engine.step  # compile="auto" weighs the whole stage, not one chunk

    def save_frames(piece):
        pieces.append(piece)
        Trajectory.concatenate(pieces).save(path("metad_trajectory.npz"))

    run_in_chunks(engine, steps, steps // chunks, save_frames, path("checkpoint.npz"), stride=50,
                  resume=resume, colvar=path("COLVAR"), progress=progress, desc="metadynamics")
    metad.close()
    return metad, Trajectory.concatenate(pieces)


def _free_energies(out, mb, metad, traj):
    """Stage 4: F along the CV from the bias, F(x, y) by c(t) reweighting (both saved), the series of
    F(B) - F(A) over the run and its exact value (kJ/mol)."""
    fes_cv = metad.free_energy()
    fes_cv.save(os.path.join(out, "fes_cv.npz"))
    fes_xy = fes_mod.reweight(traj, mb.slow_coordinates, bias=metad, bins=60, ranges=mb.slow_bounds, skip=SKIP,
                              names=["x", "y"])
    fes_xy.save(os.path.join(out, "fes_xy.npz"))
    series = fes_mod.delta_f_timeseries(traj, mb.slow_coordinates, mb.basins["A"], mb.basins["B"], bias=metad,
                                        n_points=10, skip=SKIP)
    return fes_cv, fes_xy, series, mb.exact_delta_f("A", "B")


def _report(out, mb, method, walkers, steps, n_hills, series, exact, timings, png):
    d, d_err = (_finite_or_none(series[k][-1]) for k in ("delta_f", "error"))  # all frames: the headline
    return {
        "system": "Muller-Brown (0.3 kJ/mol per original unit), T = 300 K",
        "cv_method": method,
        "walkers": walkers, "steps_per_walker": steps, "timestep_ps": TIMESTEP,
        "simulated_ns_total": walkers * steps * TIMESTEP / 1000.0,
        "n_hills": n_hills,
        # JSON has no NaN: an error bar that could not be estimated (a basin missing from some
        # block of a very short run) is reported as null.
        # c(t)-weighted frames in each basin, the first SKIP of them dropped (the figure's last point).
        "delta_f_A_to_B_kJ_mol": d, "delta_f_error_kJ_mol": d_err, "delta_f_exact_kJ_mol": exact,
        "delta_f_estimator": f"c(t)-weighted frames in basins A and B, first {SKIP:g} of the run skipped",
        "basin_B_visited": d is not None,
        "abs_error_kT": None if d is None else abs(d - exact) / mb.kT(),
        "within_2_sigma": d is not None and d_err is not None and abs(d - exact) <= 2 * d_err,
        "wall_time_s": {k: round(v, 2) for k, v in timings.items()},
        "files": sorted(os.listdir(out)) + (["report.json"] if "report.json" not in os.listdir(out) else []),
        "figure": os.path.basename(png),
    }


def _finite_or_none(x):
    return float(x) if np.isfinite(x) else None


def _resume(out, walkers, steps):
    """The metadynamics frames of the run in ``out`` up to its checkpoint; the HILLS and COLVAR rows an
    interrupted chunk wrote after it are dropped (the resumed run writes them again)."""
    colvars = ["COLVAR"] if walkers == 1 else [f"COLVAR.{i}" for i in range(walkers)]
    files = [os.path.join(out, name) for name in ("HILLS", *colvars)]
    step = resume_from(out, "checkpoint.npz", TIMESTEP, steps, files)
    done = Trajectory.load(os.path.join(out, "metad_trajectory.npz"))
    keep = done.step <= step
    return Trajectory(done.positions[keep], done.time[keep], done.step[keep], done.walker_ids,
                      done.potential_energy[keep], done.bias_energy[keep], done.temperature)


def _frame_counts(traj, mb, surface):
    """Frames per bin of ``surface`` (the (x, y) histogram of the frames it was reweighted from)."""
    first = int(np.floor(SKIP * traj.n_frames))
    pos = traj.positions[first:]
    xy = mb.slow_coordinates(pos.reshape(-1, *pos.shape[2:]))
    edges = [_edges(axis) for axis in surface.axes]
    return np.histogramdd(np.asarray(xy), bins=edges)[0]


def _edges(centers):
    h = centers[1] - centers[0]
    return np.concatenate([centers - h / 2, [centers[-1] + h / 2]])


def _masked(surface, counts):
    """``surface`` with bins of fewer than ``MIN_COUNT`` frames unsampled (inf), drawn blank rather than as
    speckles, and the count used (1, no mask, when no bin has that many: a very short run)."""
    min_count = MIN_COUNT if (counts >= MIN_COUNT).any() else 1
    F = np.where(counts >= min_count, surface.F, np.inf)
    masked = fes_mod.FreeEnergySurface(surface.axes, F, surface.temperature, names=surface.names,
                                       metadata={**surface.metadata, "min_count": min_count})
    return masked, min_count


def _summary_figure(filename, mb, cv, explore, fes_xy, min_count, fes_cv, series, exact, method):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .. import plot

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    plot.cv_on_landscape(mb, cv, ax=axes[0, 0], trajectory=explore, max_points=800)
    label = {"deeptica": "Deep-TICA", "tae": "a time-lagged autoencoder", "autoencoder": "an autoencoder"}.get(
        method, method.upper())
    axes[0, 0].set_title(f"1. CV by {label} (lines); 1000 K exploration (dots)")
    plot.fes(fes_xy, ax=axes[0, 1], units="kT", basins={k: mb.basins[k] for k in ("A", "B")},
             exact=mb.exact_fes(bins=120), cv_units="nm")
    unsampled = f"bins of < {min_count} frames" if min_count > 1 else "no frame"
    axes[0, 1].set_title(f"2. F(x, y) reweighted from metad on the CV (dashed: exact;\nblank: unsampled, "
                         f"{unsampled})")
    plot.fes(fes_cv, ax=axes[1, 0], units="kT", exact=_exact_fes_along(mb, cv, bins=len(fes_cv.axes[0]) // 2))
    axes[1, 0].set_title("3. F along the CV from the bias (dashed: exact)")
    plot.delta_f_convergence(series["time"], series["delta_f"], error=series["error"], exact=exact,
                             temperature=mb.temperature, ax=axes[1, 1], label="ΔF(A→B)")
    axes[1, 1].set_title(f"4. ΔF(A→B) vs time, the last point reported; exact {exact:.2f} kJ/mol\n(grey: ±0.5 kT; "
                         f"c(t)-weighted frames in A and B, first {SKIP:.0%} skipped)")
    fig.savefig(filename, dpi=110)
    plt.close(fig)
    return filename
