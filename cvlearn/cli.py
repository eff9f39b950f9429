"""The ``cvlearn`` command line."""

import argparse
import json
import os
import sys
import time

__all__ = ["main"]


def _demo(args):
    """Engine + PCA/TICA on the hidden double well: which linear CV finds the hidden slow axis?"""
    import numpy as np
    from scipy.stats import spearmanr

    import cvlearn as cl

    os.makedirs(args.out, exist_ok=True)
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
    with open(os.path.join(args.out, "report.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    print(json.dumps(report, indent=2))
    print(f"\nWrote {args.out}/trajectory.npz and {args.out}/report.json")
    return 0


def _quickstart(args):
    """Explore Muller-Brown, learn a CV (TICA or PCA), run well-tempered metadynamics on it with several
    walkers, and compare the free energy difference between the two deepest basins with the exact one."""
    from .quickstart import run_quickstart

    report = run_quickstart(out=args.out, seed=args.seed, steps=args.steps, method=args.method,
                            walkers=args.walkers, resume=args.resume, progress=not args.no_progress)
    d, e, x = (report[k] for k in ("delta_f_A_to_B_kJ_mol", "delta_f_error_kJ_mol", "delta_f_exact_kJ_mol"))
    err = f"{e:.2f}" if e is not None else "n/a (run longer)"
    print(f"F(B) - F(A) = {d:.2f} +- {err} kJ/mol (exact {x:.2f} kJ/mol; |error| = {report['abs_error_kT']:.2f} kT)")
    print(f"Wall times (s): {report['wall_time_s']}")
    print(f"Wrote {args.out}/{report['figure']}, COLVAR.*, HILLS, fes_*.npz and report.json")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="cvlearn", description="Learn collective variables, bias them, "
                                     "and estimate free energy surfaces. Units: nm, ps, kJ/mol, K.")
    parser.add_argument("--version", action="version", version=f"cvlearn {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    qs = sub.add_parser("quickstart", help="The whole loop on Muller-Brown in about a minute (the main job).",
                        description=_quickstart.__doc__)
    qs.add_argument("--out", default="quickstart_out", help="output directory (default: quickstart_out)")
    qs.add_argument("--steps", type=int, default=25000,
                    help="metadynamics steps of 5 fs per walker, a multiple of 5 (default 25000 = 125 ps)")
    qs.add_argument("--walkers", type=int, default=8, help="walkers sharing the bias (default 8)")
    qs.add_argument("--method", choices=("tica", "pca", "deeptica", "tae", "autoencoder"), default="tica",
                    help="CV learner: tica (default), pca (the variance baseline), deeptica, tae (time-lagged "
                    "autoencoder) or autoencoder")
    qs.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    qs.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in --out from its checkpoint, HILLS and COLVAR files")
    qs.add_argument("--no-progress", action="store_true", help="hide progress bars")
    qs.set_defaults(func=_quickstart)
    demo = sub.add_parser("demo", help="Simulate the 10-D hidden double well and compare PCA with TICA.",
                          description=_demo.__doc__)
    demo.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    demo.add_argument("--steps", type=int, default=20000, help="Langevin steps of 0.02 ps (default 20000)")
    demo.add_argument("--walkers", type=int, default=16, help="independent walkers (default 16)")
    demo.add_argument("--dim", type=int, default=10, help="dimension of the hidden system (default 10)")
    demo.add_argument("--barrier", type=float, default=10.0, help="double-well barrier, kJ/mol (default 10)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def _version():
    from . import __version__

    return __version__


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
