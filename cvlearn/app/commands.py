"""The command line's face of each workflow: ``<command>_command(args)`` takes the parsed arguments of
``cvlearn <command>`` (:mod:`cvlearn.cli`), runs the workflow and prints what it did; returns the exit status.

``cvlearn.cli`` builds the parser (every option, its type and help) and handles errors; the work is done
here and in the modules of :mod:`cvlearn.app` that these functions call.
"""

import itertools
import json
import logging
import os
import shutil
import sys
import time

import numpy as np

from ..engine import Langevin
from ..export import to_plumed, to_torchscript
from ..io import load, write_text_atomic
from ..learners import PCA, TICA
from ..systems import HiddenDoubleWell
from .iterate import run_iterate
from .molecular import pdb_or_alanine, run_bias, run_learn, run_simulate
from .quickstart import run_quickstart
from .runs import checkpoint_step, claim_file, claim_output
from .walkers_demo import AlanineWalkers, DemoWalkers

__all__ = ["quickstart_command", "demo_command", "simulate_command", "learn_command", "bias_command",
           "export_command", "iterate_command", "walkers_command"]


def _write_report(out, report):
    """Write ``out/report.json`` atomically (a crash never leaves half a file) and print it."""
    text = json.dumps(report, indent=2)
    write_text_atomic(os.path.join(out, "report.json"), text)
    print(text)


def quickstart_command(args):
    """Explore Muller-Brown, learn a CV (TICA or PCA), run well-tempered metadynamics on it with several
    walkers, and compare the free energy difference between the two deepest basins with the exact one."""
    report = run_quickstart(out=args.out, seed=args.seed, steps=args.steps, method=args.method,
                            walkers=args.walkers, resume=args.resume, force=args.force, progress=not args.no_progress)
    d, e, x = (report[k] for k in ("delta_f_A_to_B_kJ_mol", "delta_f_error_kJ_mol", "delta_f_exact_kJ_mol"))
    if d is None:
        print(f"Basin B was never visited in {args.steps} steps per walker, so there is no F(B) - F(A): run longer "
              f"(e.g. --steps 25000, the default) or with more --walkers (exact {x:.2f} kJ/mol)")
    else:
        err = f"{e:.2f}" if e is not None else "n/a (run longer)"
        print(f"F(B) - F(A) = {d:.2f} +- {err} kJ/mol (exact {x:.2f} kJ/mol; |error| = {report['abs_error_kT']:.2f} "
              "kT)")
    print(f"Wall times (s): {report['wall_time_s']}")
    print(f"Wrote {args.out}/{report['figure']}, COLVAR.*, HILLS, fes_*.npz and report.json")
    return 0


def demo_command(args):
    """Engine + PCA/TICA on the hidden double well: which linear CV finds the hidden slow axis?"""
    from scipy.stats import spearmanr

    claim_output(args.out, "demo", force=args.force)
    system = HiddenDoubleWell(dim=args.dim, barrier=args.barrier, seed=args.seed)
    t0 = time.perf_counter()
    engine = Langevin(system, timestep=0.02, friction=1.0, n_walkers=args.walkers, seed=args.seed)
    traj = engine.run(args.steps, stride=5, progress=True)
    t_sim = time.perf_counter() - t0
    traj.save(os.path.join(args.out, "trajectory.npz"))
    slow = np.concatenate([system.slow_coordinates(p)[:, 0] for p in traj.per_walker()])
    report = {"system": f"HiddenDoubleWell(dim={args.dim}, barrier={args.barrier} kJ/mol)",
              "walkers": args.walkers, "steps": args.steps, "simulated_ps_per_walker": engine.time,
              "wall_time_simulate_s": round(t_sim, 2)}
    for name, est in (("pca", PCA(n_components=1)), ("tica", TICA(lagtime=20, n_components=1))):
        t0 = time.perf_counter()
        cv = np.concatenate(est.fit_transform(traj))[:, 0]
        report[f"{name}_spearman_r_with_true_slow_coordinate"] = round(abs(float(spearmanr(cv, slow)[0])), 4)
        report[f"wall_time_{name}_s"] = round(time.perf_counter() - t0, 3)
        if name == "tica":
            report["tica_timescale_ps"] = float(est.timescales_[0] * 5 * engine.timestep)
    _write_report(args.out, report)
    print(f"\nWrote {args.out}/trajectory.npz and {args.out}/report.json")
    return 0


def simulate_command(args):
    """Unbiased MD of a molecule with OpenMM (vacuum, NoCutoff, HBonds); frames to trajectory.xtc."""
    report = run_simulate(pdb_or_alanine(args.pdb), args.out, args.steps, stride=args.stride,
                          forcefield=args.forcefield, temperature=args.temperature, timestep=args.timestep,
                          friction=args.friction, seed=args.seed, platform=args.platform, resume=args.resume,
                          force=args.force, progress=not args.no_progress)
    print(f"Simulated {report['simulated_ps']:g} ps on {report['platform']}; wrote {args.out}/trajectory.xtc, "
          "checkpoint.npz and report.json")
    return 0


def learn_command(args):
    """Learn a CV from trajectories (any format mdtraj reads) and save it for `cvlearn bias`."""
    report = run_learn(args.traj, args.top, args.features, args.out, method=args.method, lagtime=args.lag,
                       n_components=args.components, stride=args.stride, chunk=args.chunk, seed=args.seed,
                       epochs=args.epochs, force=args.force)
    print(json.dumps(report, indent=2))
    print(f"Wrote {args.out} and {args.out}.json")
    return 0


def bias_command(args):
    """Well-tempered metadynamics on a saved CV with OpenMM: COLVAR, HILLS, trajectory, checkpoint."""
    report = run_bias(pdb_or_alanine(args.pdb), args.cv, args.out, args.steps, sigma=args.sigma, height=args.height,
                      bias_factor=args.bias_factor, pace=args.pace, grid=args.grid, stride=args.stride,
                      forcefield=args.forcefield, temperature=args.temperature, timestep=args.timestep,
                      friction=args.friction, seed=args.seed, platform=args.platform,
                      bias_interval=args.bias_interval, resume=args.resume, force=args.force,
                      progress=not args.no_progress)
    print(f"{report['simulated_ps']:g} ps, {report['hills']} hills; wrote {args.out}/COLVAR, HILLS, trajectory.xtc, "
          "checkpoint.npz, report.json")
    return 0


def export_command(args):
    """Export a saved CV: TorchScript, or a PLUMED model.ptc + plumed.dat (features, PYTORCH_MODEL, bias)."""
    cv = load(args.cv)
    if not args.plumed:
        target = os.path.join(args.out, "cv_torchscript.pt") if os.path.isdir(args.out) else args.out
        to_torchscript(cv, claim_file(target, force=args.force))
        print(f"Wrote TorchScript (positions in nm -> CV) to {target}")
        return 0
    grid = [list(v) for v in zip(*args.grid)] if args.grid else None  # [lo per component], [hi ...], [bins ...]
    walkers = (args.walkers, args.walkers_dir) if args.walkers else None
    if os.path.exists(args.out):  # a new folder is made only when every file is written
        claim_output(args.out, "export", force=args.force)
    with _Staged(args.out) as stage:  # all files or none: nothing is left half-written when to_plumed fails
        out = to_plumed(cv, stage, bias=None if args.bias == "none" else args.bias, sigma=args.sigma,
                        height=args.height, bias_factor=args.bias_factor, pace=args.pace, grid=grid,
                        barrier=args.barrier, temperature=args.temperature, walkers=walkers)
    where = lambda key: os.path.join(args.out, os.path.basename(out[key]))  # noqa: E731
    print(f"Wrote {where('model')} and {where('plumed')} ({len(out['features'])} features: PLUMED computes them)")
    return 0


class _Staged:
    """A temporary folder next to ``out`` whose files move into ``out`` only if the block succeeds."""

    def __init__(self, out):
        self.out = out
        head, name = os.path.split(os.path.abspath(out))
        # os.mkdir (not tempfile.mkdtemp, which makes it 0700): the folder it becomes gets the usual permissions.
        for n in itertools.count():
            self.path = os.path.join(head, f".{name}.partial-{os.getpid()}-{n}")
            try:
                os.mkdir(self.path)
                break
            except FileExistsError:
                continue

    def __enter__(self):
        return self.path

    def __exit__(self, kind, *exc):
        if kind is None and not os.path.exists(self.out):
            os.replace(self.path, self.out)
        elif kind is None:
            for name in os.listdir(self.path):
                os.replace(os.path.join(self.path, name), os.path.join(self.out, name))
        shutil.rmtree(self.path, ignore_errors=True)


def iterate_command(args):
    """The learn -> bias -> reweight -> relearn loop (cl.iterate), run until Delta F settles. On a molecule
    (--system molecule; --pdb, default the shipped alanine dipeptide from C7eq, Delta F = F(phi > 0) -
    F(phi < 0)) with no other option it runs the measured protocol: 2 ns of unbiased exploration at 700 K
    (no knowledge of the slow coordinate needed), then 2 rounds of two-component Deep-TICA (best of 3
    networks) and OPES on both components with 4 walkers of 250 ps at 300 K, then that bias continued round
    by round until the reweighted Delta F settles within 1 kJ/mol (at most 10 ns in all; about 5-15 minutes
    on 2 cores). On Muller-Brown (--system muller-brown, built-in engine, walkers from basin A): TICA and
    well-tempered metadynamics. Writes round_<k>/cv.pt, fes.npz and KERNELS or HILLS, summary.json and
    summary.png."""
    t0 = time.perf_counter()
    claim_output(args.out, "iterate", force=args.force)  # run_iterate takes no force=: the folder is claimed here
    if args.system == "muller-brown" and (args.pdb or args.variable or args.basin_a or args.basin_b):
        raise SystemExit("cvlearn iterate: --pdb, --variable and --basin-a/--basin-b describe a molecule: add "
                         "--system molecule.")
    basins = None
    if args.basin_a or args.basin_b:
        if not (args.basin_a and args.basin_b):
            raise SystemExit("cvlearn iterate: give both --basin-a and --basin-b (lo hi per variable).")
        basins = (args.basin_a, args.basin_b)
    progress = logging.StreamHandler(sys.stdout)  # the loop's progress (one line per stage and round)
    progress.setFormatter(logging.Formatter("%(message)s"))
    # The loop's and this workflow's lines, not each network's training:
    progress.addFilter(lambda record: record.module == "loop" or record.name == "cvlearn.app")
    logger = logging.getLogger("cvlearn")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(progress)
    try:
        summary = _run_iterate(args, basins)
    finally:
        logger.removeHandler(progress)
        logger.setLevel(level)
    ref, ref_err = summary["reference_delta_f"], summary["reference_error"]
    reference = "" if ref is None else f" (reference {ref:.2f}" + (f" ± {ref_err:.2f})" if ref_err else ")")
    for r in summary["rounds"]:
        if r["sampled"]:
            text = f"ΔF = {r['delta_f']:.2f} ± {_num(r['error'], '.2f')} kJ/mol{reference}"
        else:
            side = "<" if r["missing"] == "a" else ">"
            text = f"basin {r['missing'] or 'b'} not sampled: ΔF {side} ~{_num(r['bound'], '.1f')} kJ/mol (no estimate)"
        print(f"round {r['round']}: {text}, {r['transitions']} transitions, CV change {_num(r['cv_change'], '.3g')}")
    rounds = len(summary["rounds"])
    if summary["delta_f"] is None:
        head = "No free energy: basin b was never sampled in any round; run more rounds or a longer exploration"
    else:
        head = (f"ΔF = {summary['delta_f']:.2f} ± {_num(summary['error'], '.2f')} kJ/mol{reference}, "
                + ("converged" if summary["converged"] else "NOT converged (rounds disagree or too few sampled both "
                   "basins: raise --rounds)"))
    print(f"{head}; {rounds} round(s), {summary['transitions']} transitions, {summary['simulated_ns']:.2f} ns "
          f"simulated, {time.perf_counter() - t0:.0f} s wall. Wrote {args.out}/round_*/, summary.json, summary.png")
    return 0


def _run_iterate(args, basins):
    return run_iterate(args.out, system=None if args.system == "molecule" else args.system, pdb=args.pdb,
                       forcefield=args.forcefield, features=args.features, variable=args.variable, basins=basins,
                       method=args.method, rounds=args.rounds, walkers=args.walkers, steps=args.steps,
                       initial_steps=args.initial_steps, stride=args.stride, lagtime=args.lag, bias=args.bias,
                       barrier=args.barrier, height=args.height, bias_factor=args.bias_factor, pace=args.pace,
                       skip=args.skip, reweighting=args.reweighting, bins=args.bins, tol=args.tol, seed=args.seed,
                       epochs=args.epochs, n_models=args.n_models,
                       n_components=args.n_components, min_transitions=args.min_transitions,
                       temperature=args.temperature,
                       explore_temperature="default" if args.explore_temperature is None else args.explore_temperature,
                       timestep=args.timestep, platform=args.platform, train_weights=args.train_weights,
                       learn_rounds="default" if args.learn_rounds is None else args.learn_rounds,
                       progress=not args.no_progress)


def _num(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def walkers_command(args):
    """Metadynamics walkers that share one bias through PLUMED's HILLS.<id> files, one Dask task each:
    Muller-Brown or the hidden double well biased along a TICA CV (learned from a 1000 K exploration), or
    alanine dipeptide in OpenMM biased on its dihedrals phi and psi.
    Writes each walker's COLVAR.<id>, HILLS.<id> and checkpoint, the merged fes.npz and report.json."""
    from ..walkers import connect, run  # Dask is imported when the walkers start

    client = connect(args.scheduler, args.timeout) if args.scheduler else None  # fail fast, before any work
    try:
        settings = {"system": args.system, "n_walkers": args.n_walkers, "stride": args.stride,
                    "read_stride": args.read_stride, "seed": args.seed}
        resume = claim_output(args.out, "walkers", resume=args.resume, force=args.force, settings=settings,
                              resumable=("checkpoint.0.npz",))
        if resume:
            _report_walkers_resume(args.out, args.n_walkers, args.steps)
        demo = AlanineWalkers() if args.system == "alanine" else DemoWalkers(args.system, seed=args.seed)
        result = run(demo, args.n_walkers, args.steps, args.out, client=client, stride=args.stride,
                     read_stride=args.read_stride, seed=args.seed, resume=resume, progress=not args.no_progress)
    finally:
        if client is not None:
            client.close()
    report = demo.report(result)
    _write_report(args.out, report)
    print(f"Wrote {args.out}/HILLS.*, COLVAR.*, fes.npz and report.json")
    return 0


def _report_walkers_resume(out, n_walkers, n_steps):
    """Say where each walker continues from; refuse fewer steps than a walker has already run."""
    paths = [os.path.join(out, f"checkpoint.{i}.npz") for i in range(n_walkers)]
    done = [checkpoint_step(path) if os.path.exists(path) else 0 for path in paths]
    if max(done) > n_steps:
        raise ValueError(f"--steps {n_steps} is fewer than walker {int(np.argmax(done))} has already run "
                         f"({max(done)} steps) in {out}: give --steps of at least {max(done)}.")
    if min(done) == n_steps:
        print(f"Resuming {out}: every walker has run its {n_steps} steps; nothing left to run.")
    else:
        print(f"Resuming {out}: walkers continue from their checkpoints at steps "
              f"{', '.join(str(d) for d in done)}.")


