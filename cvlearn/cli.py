"""The ``cvlearn`` command line."""

import argparse
import json
import logging
import math
import os
import sys
import time

import numpy as np

from .exceptions import CVLearnError

__all__ = ["main"]

#: Mistakes reported as one line (``cvlearn <command>: message``, exit status 2) unless --debug.
USER_ERRORS = (ValueError, FileNotFoundError, CVLearnError)


class _Parser(argparse.ArgumentParser):
    """argparse, but a command-line mistake is one line: what is wrong, and where the help is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _number(kind, minimum, strict, words):
    """An argparse ``type``: a finite ``kind`` (int or float) above ``minimum`` (or equal, unless ``strict``)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {words}; got {text!r}")
        return value

    parse.__name__ = words  # argparse names the type by it in some messages
    return parse


POSITIVE_INT = _number(int, 0, True, "a positive integer")
COUNT = _number(int, 0, False, "an integer >= 0")
POSITIVE = _number(float, 0.0, True, "a positive number")
ABOVE_ONE = _number(float, 1.0, True, "a number > 1")
NON_NEGATIVE = _number(float, 0.0, False, "a number >= 0")


def _grid_spec(text):
    """``lo,hi,bins`` of one CV component: lo < hi, bins a positive integer."""
    parts = text.split(",")
    try:
        lo, hi, bins = float(parts[0]), float(parts[1]), POSITIVE_INT(parts[2])
        ok = len(parts) == 3 and math.isfinite(lo) and math.isfinite(hi) and lo < hi
    except (ValueError, IndexError, argparse.ArgumentTypeError):
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"must be lo,hi,bins with lo < hi and a positive number of bins (e.g. "
                                         f"--grid=-3,3,300); got {text!r}")
    return lo, hi, bins


def _check_together(parser, args):
    """What no single option's type can check: options that must agree with each other."""
    steps, stride = getattr(args, "steps", None), getattr(args, "stride", None)
    if steps is not None and stride is not None and stride > steps:
        parser.error(f"--stride {stride} is larger than --steps {steps}, so no frame would be saved: pass a "
                     "--stride of at most --steps")
    if args.command == "quickstart" and args.steps % 5:
        parser.error(f"--steps must be a multiple of 5 (the run is written in 5 chunks); got {args.steps}")


def _write_report(out, report):
    """Write ``out/report.json`` atomically (a crash never leaves half a file) and print it."""
    from .io._atomic import write_text_atomic

    text = json.dumps(report, indent=2)
    write_text_atomic(os.path.join(out, "report.json"), text)
    print(text)


def _demo(args):
    """Engine + PCA/TICA on the hidden double well: which linear CV finds the hidden slow axis?"""
    import numpy as np
    from scipy.stats import spearmanr

    import cvlearn as cl

    from .workflows import claim_output

    claim_output(args.out, "demo", force=args.force)
    system = cl.systems.HiddenDoubleWell(dim=args.dim, barrier=args.barrier, seed=args.seed)
    t0 = time.perf_counter()
    engine = cl.Langevin(system, timestep=0.02, friction=1.0, n_walkers=args.walkers, seed=args.seed)
    traj = engine.run(args.steps, stride=5, progress=True)
    t_sim = time.perf_counter() - t0
    traj.save(os.path.join(args.out, "trajectory.npz"))
    slow = np.concatenate([system.slow_coordinates(p)[:, 0] for p in traj.per_walker()])
    report = {"system": f"HiddenDoubleWell(dim={args.dim}, barrier={args.barrier} kJ/mol)",
              "walkers": args.walkers, "steps": args.steps, "simulated_ps_per_walker": engine.time,
              "wall_time_simulate_s": round(t_sim, 2)}
    for name, est in (("pca", cl.PCA(n_components=1)), ("tica", cl.TICA(lagtime=20, n_components=1))):
        t0 = time.perf_counter()
        cv = np.concatenate(est.fit_transform(traj))[:, 0]
        report[f"{name}_spearman_r_with_true_slow_coordinate"] = round(abs(float(spearmanr(cv, slow)[0])), 4)
        report[f"wall_time_{name}_s"] = round(time.perf_counter() - t0, 3)
        if name == "tica":
            report["tica_timescale_ps"] = float(est.timescales_[0] * 5 * engine.timestep)
    _write_report(args.out, report)
    print(f"\nWrote {args.out}/trajectory.npz and {args.out}/report.json")
    return 0


def _quickstart(args):
    """Explore Muller-Brown, learn a CV (TICA or PCA), run well-tempered metadynamics on it with several
    walkers, and compare the free energy difference between the two deepest basins with the exact one."""
    from .quickstart import run_quickstart

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


def _pdb_default(pdb):
    if pdb:
        return pdb
    from .data import alanine_dipeptide_pdb

    return alanine_dipeptide_pdb()


def _simulate(args):
    """Unbiased MD of a molecule with OpenMM (vacuum, NoCutoff, HBonds); frames to trajectory.xtc."""
    from .workflows import simulate

    report = simulate(_pdb_default(args.pdb), args.out, args.steps, stride=args.stride, forcefield=args.forcefield,
                      temperature=args.temperature, timestep=args.timestep, friction=args.friction, seed=args.seed,
                      platform=args.platform, resume=args.resume, force=args.force, progress=not args.no_progress)
    print(f"Simulated {report['simulated_ps']:g} ps on {report['platform']}; wrote {args.out}/trajectory.xtc, "
          "checkpoint.npz and report.json")
    return 0


def _learn(args):
    """Learn a CV from trajectories (any format mdtraj reads) and save it for `cvlearn bias`."""
    from .workflows import learn

    report = learn(args.traj, args.top, args.features, args.out, method=args.method, lagtime=args.lag,
                   n_components=args.components, stride=args.stride, chunk=args.chunk, seed=args.seed,
                   epochs=args.epochs, force=args.force)
    print(json.dumps(report, indent=2))
    print(f"Wrote {args.out} and {args.out}.json")
    return 0


def _bias(args):
    """Well-tempered metadynamics on a saved CV with OpenMM: COLVAR, HILLS, trajectory, checkpoint."""
    from .workflows import bias

    report = bias(_pdb_default(args.pdb), args.cv, args.out, args.steps, sigma=args.sigma, height=args.height,
                  bias_factor=args.bias_factor, pace=args.pace, grid=args.grid, stride=args.stride,
                  forcefield=args.forcefield, temperature=args.temperature, timestep=args.timestep,
                  friction=args.friction, seed=args.seed, platform=args.platform, bias_interval=args.bias_interval,
                  resume=args.resume, force=args.force, progress=not args.no_progress)
    print(f"{report['simulated_ps']:g} ps, {report['hills']} hills; wrote {args.out}/COLVAR, HILLS, trajectory.xtc, "
          "checkpoint.npz, report.json")
    return 0


def _export(args):
    """Export a saved CV: TorchScript, or a PLUMED model.ptc + plumed.dat (features, PYTORCH_MODEL, bias)."""
    from .export import to_plumed, to_torchscript
    from .io._models import load
    from .workflows import claim_file, claim_output

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
        import tempfile

        self.out = out
        from .io._atomic import _umask

        self.path = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.partial-",
                                     dir=os.path.dirname(os.path.abspath(out)))
        os.chmod(self.path, 0o777 & ~_umask())  # the folder it becomes gets the usual permissions, not 0700

    def __enter__(self):
        return self.path

    def __exit__(self, kind, *exc):
        import shutil

        if kind is None and not os.path.exists(self.out):
            os.replace(self.path, self.out)
        elif kind is None:
            for name in os.listdir(self.path):
                os.replace(os.path.join(self.path, name), os.path.join(self.out, name))
        shutil.rmtree(self.path, ignore_errors=True)


def _md_options(p, steps_help):
    p.add_argument("--pdb", help="structure file (default: the alanine dipeptide shipped with cvlearn)")
    p.add_argument("--forcefield", nargs="+", default=["amber99sbildn.xml"],
                   help="OpenMM force-field XML files (default amber99sbildn.xml)")
    p.add_argument("--steps", type=POSITIVE_INT, required=True, help=steps_help)
    p.add_argument("--stride", type=POSITIVE_INT, default=500, help="save a frame every this many steps (default 500)")
    p.add_argument("--temperature", type=POSITIVE, default=300.0, help="K (default 300)")
    p.add_argument("--timestep", type=POSITIVE, default=0.002, help="ps (default 0.002)")
    p.add_argument("--friction", type=POSITIVE, default=1.0, help="1/ps (default 1)")
    p.add_argument("--platform", help="OpenMM platform (default: chosen by system size)")
    p.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same settings)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_molecular_commands(sub):
    sim = sub.add_parser("simulate", help="Unbiased MD of a molecule with OpenMM.", description=_simulate.__doc__)
    _md_options(sim, "number of MD steps")
    sim.set_defaults(func=_simulate)

    lrn = sub.add_parser("learn", help="Learn a CV from trajectories.", description=_learn.__doc__)
    lrn.add_argument("--traj", nargs="+", required=True, help="trajectory files (xtc, dcd, h5, pdb, ...)")
    lrn.add_argument("--top", required=True, help="topology / structure file (pdb, prmtop, ...)")
    lrn.add_argument("--features", default="distances:heavy",
                     help="features, e.g. distances:heavy (default), dihedrals:phi,psi, sincos:phi,psi, "
                     "contacts:heavy:0.5, positions:backbone; join several with +")
    lrn.add_argument("--method", choices=("tica", "pca", "deeptica", "tae", "autoencoder"), default="tica",
                     help="learner (default tica)")
    lrn.add_argument("--lag", type=POSITIVE_INT, default=10, help="lag time in frames (default 10)")
    lrn.add_argument("--components", type=POSITIVE_INT, default=1, help="number of CV components (default 1)")
    lrn.add_argument("--stride", type=POSITIVE_INT, default=1, help="use every n-th frame (default 1)")
    lrn.add_argument("--chunk", type=POSITIVE_INT, help="stream the files in chunks of this many frames (tica, pca)")
    lrn.add_argument("--epochs", type=POSITIVE_INT, default=200,
                     help="maximum training epochs for networks (default 200)")
    lrn.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    lrn.add_argument("--out", default="cv.pt", help="where to save the CV (default cv.pt; folders are created)")
    lrn.set_defaults(func=_learn)

    bia = sub.add_parser("bias", aliases=["metad"], help="Well-tempered metadynamics on a learned CV.",
                         description=_bias.__doc__)
    bia.add_argument("--engine", choices=("openmm",), default="openmm", help="MD engine (default openmm)")
    bia.add_argument("--cv", required=True, help="a CV saved by `cvlearn learn` or cl.save")
    bia.add_argument("--sigma", type=POSITIVE, nargs="+", required=True, help="Gaussian width per CV component")
    bia.add_argument("--height", type=POSITIVE, default=1.2, help="initial hill height, kJ/mol (default 1.2)")
    bia.add_argument("--bias-factor", type=ABOVE_ONE, default=10.0, help="well-tempered bias factor (default 10)")
    bia.add_argument("--pace", type=POSITIVE_INT, default=500, help="steps between hills (default 500)")
    bia.add_argument("--grid", type=_grid_spec, help="lo,hi,bins of a 1-D CV (default: start +- 50 sigma, sigma/5 "
                     "spacing); write --grid=-3,3,300 when lo is negative")
    bia.add_argument("--bias-interval", type=POSITIVE_INT, default=1,
                     help="apply the bias force every k steps (multiple time stepping; default 1)")
    _md_options(bia, "number of MD steps")
    bia.set_defaults(func=_bias)

    exp = sub.add_parser("export", help="Export a CV as TorchScript or for PLUMED.", description=_export.__doc__)
    exp.add_argument("cv", help="a CV saved by `cvlearn learn` or cl.save")
    exp.add_argument("--plumed", action="store_true", help="write model.ptc and plumed.dat for PLUMED")
    exp.add_argument("--out", required=True, help="output directory (PLUMED) or file (TorchScript)")
    exp.add_argument("--bias", choices=("metad", "opes", "none"), default="metad", help="bias line (default metad)")
    exp.add_argument("--sigma", type=POSITIVE, nargs="+", help="Gaussian width per CV component (metad; opes optional)")
    exp.add_argument("--grid", nargs="+", type=_grid_spec,
                     help="lo,hi,bins per CV component (metad); write --grid=-3,3,300 when lo is negative")
    exp.add_argument("--height", type=POSITIVE, default=1.2, help="kJ/mol (default 1.2)")
    exp.add_argument("--bias-factor", type=ABOVE_ONE, default=10.0, help="well-tempered bias factor (default 10)")
    exp.add_argument("--barrier", type=POSITIVE, help="OPES barrier, kJ/mol")
    exp.add_argument("--pace", type=POSITIVE_INT, default=500, help="steps between hills/kernels (default 500)")
    exp.add_argument("--temperature", type=POSITIVE, default=300.0, help="K (default 300)")
    exp.add_argument("--walkers", type=POSITIVE_INT, help="number of PLUMED multiple walkers")
    exp.add_argument("--walkers-dir", default="../", help="shared directory of the walkers (default ../)")
    exp.set_defaults(func=_export)


def _iterate(args):
    """The learn -> bias -> reweight -> relearn loop (cl.iterate), run until Delta F settles. On a molecule
    (--system molecule; --pdb, default the shipped alanine dipeptide from C7eq, Delta F = F(phi > 0) -
    F(phi < 0)) with no other option it runs the measured protocol: 2 ns of unbiased exploration at 700 K
    (no knowledge of the slow coordinate needed), then 2 rounds of Deep-TICA (best of 3 networks) and OPES
    with 4 walkers of 250 ps at 300 K, then that bias continued round by round until the reweighted Delta F
    settles within 1 kJ/mol (at most 10 ns in all; about 5-15 minutes on 2 cores).
    On Muller-Brown (--system muller-brown, built-in engine, walkers from basin A): TICA and well-tempered
    metadynamics. Writes round_<k>/cv.pt, fes.npz and KERNELS or HILLS, summary.json and summary.png."""
    from .workflows import iterate

    t0 = time.perf_counter()
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
    progress.addFilter(lambda record: record.module in ("loop", "workflows"))  # not each network's training
    logger = logging.getLogger("cvlearn")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(progress)
    try:
        summary = _run_iterate(iterate, args, basins)
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


def _run_iterate(iterate, args, basins):
    return iterate(args.out, system=None if args.system == "molecule" else args.system, pdb=args.pdb,
                   forcefield=args.forcefield, features=args.features, variable=args.variable, basins=basins,
                   method=args.method, rounds=args.rounds, walkers=args.walkers, steps=args.steps,
                   initial_steps=args.initial_steps, stride=args.stride, lagtime=args.lag, bias=args.bias,
                   barrier=args.barrier, height=args.height, bias_factor=args.bias_factor, pace=args.pace,
                   skip=args.skip, reweighting=args.reweighting, bins=args.bins, tol=args.tol, seed=args.seed,
                   epochs=args.epochs, n_models=args.n_models, temperature=args.temperature,
                   explore_temperature="default" if args.explore_temperature is None else args.explore_temperature,
                   timestep=args.timestep, platform=args.platform, train_weights=args.train_weights,
                   learn_rounds="default" if args.learn_rounds is None else args.learn_rounds,
                   progress=not args.no_progress)


def _num(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def _add_iterate_command(sub):
    it = sub.add_parser("iterate", help="Learn, bias, reweight, relearn: rounds until Delta F settles.",
                        description=_iterate.__doc__)
    it.add_argument("--system", choices=("muller-brown", "molecule"), default="muller-brown",
                    help="muller-brown (built-in engine, default) or molecule (OpenMM, see --pdb)")
    it.add_argument("--pdb", help="molecule: structure file (default: the shipped alanine dipeptide)")
    it.add_argument("--forcefield", nargs="+", default=["amber99sbildn.xml"],
                    help="molecule: OpenMM force-field XML files (default amber99sbildn.xml; implicit solvent: "
                    "amber99sbildn.xml amber99_obc.xml)")
    it.add_argument("--features", default="distances:heavy",
                    help="molecule: what the CV is learned from, e.g. distances:heavy (default), sincos:phi,psi")
    it.add_argument("--variable", help="molecule: the variable(s) Delta F is measured on, a feature specification "
                    "(default for the shipped alanine dipeptide: dihedrals:phi)")
    it.add_argument("--basin-a", type=float, nargs="+", metavar="LO HI",
                    help="molecule: basin a as lo hi per variable, in its units (alanine default: -3.1416 0, rad)")
    it.add_argument("--basin-b", type=float, nargs="+", metavar="LO HI",
                    help="molecule: basin b likewise (alanine default: 0 3.1416); Delta F = F(b) - F(a)")
    expert = it.add_argument_group("protocol (experts; each default is the measured protocol of the system)")
    expert.add_argument("--method", choices=("tica", "deeptica", "pca", "tae", "autoencoder"),
                        help="CV learner (default deeptica for a molecule, tica for muller-brown)")
    expert.add_argument("--bias", choices=("opes", "metad"),
                        help="bias: OPES_METAD (default for a molecule) or well-tempered metadynamics (muller-brown)")
    expert.add_argument("--barrier", type=POSITIVE, default=40.0, help="OPES barrier, kJ/mol (default 40)")
    expert.add_argument("--rounds", type=POSITIVE_INT, help="maximum rounds (default 8 molecule, 5 muller-brown)")
    expert.add_argument("--walkers", type=POSITIVE_INT, help="walkers sharing each round's bias (default 4 molecule, 8 "
                        "muller-brown; metadynamics on a molecule runs 1)")
    expert.add_argument("--steps", type=POSITIVE_INT,
                        help="biased steps per round and walker (default 125000 = 250 ps for "
                        "a molecule, 20000 of 5 fs for muller-brown)")
    expert.add_argument("--initial-steps", type=POSITIVE_INT,
                        help="steps of the exploration run the first CV is learned "
                        "from (default 1000000 = 2 ns for a molecule, 4000 for muller-brown)")
    expert.add_argument("--explore-temperature", type=POSITIVE,
                        help="molecule: K of the unbiased exploration run (default 700; 300 = no heating)")
    expert.add_argument("--learn-rounds", type=POSITIVE_INT,
                        help="molecule: rounds that relearn the CV before its bias "
                        "is continued for production (default 2)")
    expert.add_argument("--n-models", type=POSITIVE_INT,
                        help="networks trained per round, the best by VAMP-2 kept (default 3)")
    expert.add_argument("--stride", type=POSITIVE_INT,
                        help="steps between frames (default 10 muller-brown, 100 molecule)")
    expert.add_argument("--lag", type=POSITIVE_INT,
                        help="lag time in frames (default 10 muller-brown, 5 = 1 ps molecule)")
    expert.add_argument("--height", type=POSITIVE, help="metadynamics: initial hill height, kJ/mol (default 1.5 "
                        "muller-brown, 1.2 molecule)")
    expert.add_argument("--bias-factor", type=ABOVE_ONE, default=10.0, help="metadynamics: bias factor (default 10)")
    expert.add_argument("--pace", type=POSITIVE_INT, help="steps between hills/kernels (default 100 muller-brown, 500 "
                        "molecule)")
    expert.add_argument("--skip", type=NON_NEGATIVE,
                        help="fraction of each round's frames discarded as transient before "
                        "reweighting (default 0.5 molecule, 0.3 muller-brown)")
    expert.add_argument("--reweighting", choices=("ct", "final", "bias"),
                        help="c(t) (metadynamics default), final-bias, or the bias at each frame (OPES default)")
    expert.add_argument("--train-weights", choices=("reweighted", "sampled"),
                        help="train on the biased frames with their weights (muller-brown default) or as sampled "
                        "(molecule default)")
    expert.add_argument("--bins", type=POSITIVE_INT, default=60, help="histogram bins per variable (default 60)")
    expert.add_argument("--tol", type=POSITIVE, default=1.0,
                        help="stop when Delta F of two rounds agrees within this, kJ/mol (default 1)")
    expert.add_argument("--epochs", type=POSITIVE_INT,
                        help="maximum training epochs for networks (default 60 molecule: a "
                        "smooth CV to bias; 200 muller-brown)")
    expert.add_argument("--temperature", type=POSITIVE, help="K (default 300)")
    expert.add_argument("--timestep", type=POSITIVE, default=0.002, help="molecule: ps (default 0.002)")
    expert.add_argument("--platform", help="molecule: OpenMM platform (default: chosen by system size)")
    it.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    it.add_argument("--out", default="iterate_out", help="output directory (default iterate_out)")
    it.add_argument("--no-progress", action="store_true", help="hide progress bars")
    it.set_defaults(func=_iterate)


def _walkers(args):
    """Metadynamics walkers that share one bias through PLUMED's HILLS.<id> files, one Dask task each:
    Muller-Brown or the hidden double well biased along a TICA CV (learned from a 1000 K exploration), or
    alanine dipeptide in OpenMM biased on its dihedrals phi and psi.
    Writes each walker's COLVAR.<id>, HILLS.<id> and checkpoint, the merged fes.npz and report.json."""
    from .walkers import AlanineWalkers, DemoWalkers, connect, run
    from .workflows import claim_output

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
    done = []
    for i in range(n_walkers):
        path = os.path.join(out, f"checkpoint.{i}.npz")
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as ck:
                done.append(int(ck["step"]))
        else:
            done.append(0)
    if max(done) > n_steps:
        raise ValueError(f"--steps {n_steps} is fewer than walker {int(np.argmax(done))} has already run "
                         f"({max(done)} steps) in {out}: give --steps of at least {max(done)}.")
    if min(done) == n_steps:
        print(f"Resuming {out}: every walker has run its {n_steps} steps; nothing left to run.")
    else:
        print(f"Resuming {out}: walkers continue from their checkpoints at steps "
              f"{', '.join(str(d) for d in done)}.")


def _add_walkers_command(sub):
    wk = sub.add_parser("walkers", help="Walkers sharing one bias across processes or machines (Dask).",
                        description=_walkers.__doc__)
    wk.add_argument("--n-walkers", type=POSITIVE_INT, required=True, help="number of walkers (one Dask task each)")
    wk.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a "
                    "LocalCluster of worker processes on this machine)")
    wk.add_argument("--timeout", type=POSITIVE, default=10.0, help="seconds to wait for --scheduler (default 10)")
    wk.add_argument("--system", choices=("muller-brown", "hidden-double-well", "alanine"), default="muller-brown",
                    help="system to sample (default muller-brown)")
    wk.add_argument("--steps", type=POSITIVE_INT, default=20000, help="steps per walker (default 20000)")
    wk.add_argument("--read-stride", type=POSITIVE_INT, default=500,
                    help="steps between reads of the other walkers' HILLS files (default 500)")
    wk.add_argument("--stride", type=POSITIVE_INT, default=100, help="steps between COLVAR rows; divides --read-stride "
                    "(default 100)")
    wk.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    wk.add_argument("--out", default="walkers_out", help="the shared walkers directory (default walkers_out)")
    wk.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    wk.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    wk.set_defaults(func=_walkers)


def build_parser():
    parser = _Parser(prog="cvlearn", description="Learn collective variables, bias them, "
                                     "and estimate free energy surfaces. Units: nm, ps, kJ/mol, K.")
    parser.add_argument("--version", action="version", version=f"cvlearn {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also CVLEARN_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    qs = sub.add_parser("quickstart", help="The whole loop on Muller-Brown in about a minute (the main job).",
                        description=_quickstart.__doc__)
    qs.add_argument("--out", default="quickstart_out", help="output directory (default: quickstart_out)")
    qs.add_argument("--steps", type=POSITIVE_INT, default=25000,
                    help="metadynamics steps of 5 fs per walker, a multiple of 5 (default 25000 = 125 ps)")
    qs.add_argument("--walkers", type=POSITIVE_INT, default=8, help="walkers sharing the bias (default 8)")
    qs.add_argument("--method", choices=("tica", "pca", "deeptica", "tae", "autoencoder"), default="tica",
                    help="CV learner: tica (default), pca (the variance baseline), deeptica, tae (time-lagged "
                    "autoencoder) or autoencoder")
    qs.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    qs.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in --out from its checkpoint, HILLS and COLVAR files (same "
                    "--method, --seed and --walkers; --steps may grow)")
    qs.add_argument("--no-progress", action="store_true", help="hide progress bars")
    qs.set_defaults(func=_quickstart)
    demo = sub.add_parser("demo", help="Simulate the 10-D hidden double well and compare PCA with TICA.",
                          description=_demo.__doc__)
    demo.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    demo.add_argument("--steps", type=POSITIVE_INT, default=20000, help="Langevin steps of 0.02 ps (default 20000)")
    demo.add_argument("--walkers", type=POSITIVE_INT, default=16, help="independent walkers (default 16)")
    demo.add_argument("--dim", type=POSITIVE_INT, default=10, help="dimension of the hidden system (default 10)")
    demo.add_argument("--barrier", type=POSITIVE, default=10.0, help="double-well barrier, kJ/mol (default 10)")
    demo.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    _add_molecular_commands(sub)
    _add_iterate_command(sub)
    _add_walkers_command(sub)
    for command in {id(p): p for p in sub.choices.values()}.values():
        _add_common_options(command)
    parser.commands = sub.choices  # by name (aliases included), for the checks that span options
    return parser


def _add_common_options(command):
    """--force for every command with --out, and --debug (also accepted after the command's name)."""
    if any("--out" in a.option_strings for a in command._actions):
        command.add_argument("--force", action="store_true",
                             help="when --out holds an earlier run (or file) and --resume is not given: keep it in "
                             "OUT/bck.<n>/ (a file as bck.<n>.<name>) and start anew; never deletes anything")
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the traceback of an error (also CVLEARN_DEBUG=1)")


def _version():
    from . import __version__

    return __version__


def main(argv=None):
    """Run ``cvlearn`` with ``argv``; a mistake is one line on stderr and exit status 2 (--debug: the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_together(parser.commands[args.command], args)
    debug = args.debug or os.environ.get("CVLEARN_DEBUG", "") not in ("", "0")
    try:
        with _Notices(args.command):
            if args.command == "iterate":  # the iterate workflow takes no force=: its folder is claimed here
                from .workflows import claim_output

                claim_output(args.out, "iterate", force=args.force)
            return args.func(args)
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"cvlearn {args.command}: {exc}", file=sys.stderr)
        return 2


class _Notices:
    """What a run says as it goes (resumed from where, what it kept aside): the cvlearn logger's INFO
    lines of the workflows, on stderr. ``cvlearn iterate`` prints its own progress."""

    def __init__(self, command):
        self.handler = None
        if command != "iterate":
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.setFormatter(logging.Formatter(f"cvlearn {command}: %(message)s"))
            self.handler.addFilter(lambda record: record.module in ("workflows", "quickstart"))
        self.logger = logging.getLogger("cvlearn")

    def __enter__(self):
        if self.handler is not None:
            self.level = self.logger.level
            self.logger.setLevel(logging.INFO)
            self.logger.addHandler(self.handler)

    def __exit__(self, *exc):
        if self.handler is not None:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)


if __name__ == "__main__":
    sys.exit(main())
