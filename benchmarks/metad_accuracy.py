"""Accuracy of well-tempered metadynamics against exact free energies (longer runs than the tests).

Measured, each against numerical integration of the exact Boltzmann distribution:
1. Muller-Brown biased on its true (x, y): RMSE of the bias-derived FES over the region within
   8 kT of the minimum (goal <= 0.5 kT) and F(B) - F(A) (goal: within 0.3 kT).
2. Muller-Brown biased on a 1-D CV learned by TICA (and PCA) from a 1000 K exploration, as in
   `cvlearn quickstart`: F(B) - F(A) by c(t) reweighting onto (x, y) (goal: within 0.5 kT), over
   several seeds.
3. The 10-D hidden double well (10 kT barrier) biased on TICA's and PCA's CV: committed transitions
   per ns and the free energy difference between the wells.

Run from the repository root:  python benchmarks/metad_accuracy.py [--quick] [--no-append]
"""

import argparse
import time

import numpy as np
import torch
from _common import append_section, markdown_table

import cvlearn as cl

DT, FRICTION = 0.005, 5.0


def mb_xy(steps, walkers, seed):
    mb = cl.systems.MullerBrown()
    metad = cl.WellTemperedMetad(cl.features.Positions.of(mb), sigma=0.1, height=1.5, bias_factor=8, pace=100,
                                 grid=cl.Grid([-1.7, -0.5], [1.3, 2.2], [150, 135]), outside="wall")
    t0 = time.perf_counter()
    traj = cl.Langevin(mb, timestep=DT, friction=FRICTION, n_walkers=walkers, seed=seed, bias=metad).run(steps, 100)
    wall = time.perf_counter() - t0
    fes = metad.free_energy()
    exact = mb.exact_free_energy(fes.points).reshape(fes.F.shape)
    kT = mb.kT()
    region = exact - exact.min() < 8 * kT
    diff = fes.F[region] - exact[region]
    rmse = np.sqrt(((diff - diff.mean()) ** 2).mean()) / kT
    ex = mb.exact_delta_f("A", "B")
    d_bias = fes.delta_f(mb.basins["A"], mb.basins["B"]).value
    rw = cl.fes.reweight(traj, mb.slow_coordinates, bias=metad, bins=60, ranges=mb.slow_bounds, skip=0.2)
    d_rw = rw.delta_f(mb.basins["A"], mb.basins["B"])
    return [seed, f"{walkers * steps * DT / 1000:.1f}", f"{rmse:.2f}", f"{d_bias:.2f}",
            f"{d_rw.value:.2f} ± {d_rw.error:.2f}", f"{ex:.2f}", f"{abs(d_bias - ex) / kT:.2f}",
            f"{abs(d_rw.value - ex) / kT:.2f}", f"{wall:.0f}"]


def mb_learned(method, steps, walkers, seed):
    from cvlearn.app import run_quickstart

    t0 = time.perf_counter()
    r = run_quickstart(f"/tmp/cvlearn_bench_{method}_{seed}", seed=seed, steps=steps, walkers=walkers, method=method,
                       force=True)
    wall = time.perf_counter() - t0
    err = r["delta_f_error_kJ_mol"]
    return [method.upper(), seed, f"{r['simulated_ns_total']:.1f}",
            f"{r['delta_f_A_to_B_kJ_mol']:.2f} ± {err:.2f}" if err else f"{r['delta_f_A_to_B_kJ_mol']:.2f}",
            f"{r['delta_f_exact_kJ_mol']:.2f}", f"{r['abs_error_kT']:.2f}", f"{wall:.0f}"]


def hidden(steps, walkers, seed):
    explore_sys = cl.systems.HiddenDoubleWell(dim=10, barrier=10.0)
    target = cl.systems.HiddenDoubleWell(dim=10, barrier=25.0)
    explore = cl.Langevin(explore_sys, timestep=0.02, friction=1.0, n_walkers=8, seed=seed).run(20000, stride=5)
    rows = []
    for name, est in (("TICA", cl.TICA(lagtime=20, n_components=1, scaling=None)), ("PCA", cl.PCA(n_components=1))):
        cv = est.fit(explore).to_module(cl.features.Positions.of(target))
        s = np.concatenate(est.transform(explore))[:, 0]
        metad = cl.WellTemperedMetad(cv, sigma=0.2 * s.std(), height=2.0, bias_factor=15, pace=50,
                                     grid=cl.Grid(s.min() - 3 * s.std(), s.max() + 3 * s.std(), 300), outside="wall")
        run = cl.Langevin(target, timestep=0.02, friction=1.0, n_walkers=walkers, seed=seed + 1, bias=metad).run(
            steps, stride=10)
        x = target.slow_coordinates(run.positions)[..., 0]
        side = np.where(np.abs(x) < 0.5, 0, np.sign(x))
        crossings = sum(int((np.diff(v[v != 0]) != 0).sum()) for v in side.T)
        ns = walkers * steps * 0.02 / 1000
        rw = cl.fes.reweight(run, target.slow_coordinates, bias=metad, bins=40, ranges=[(-2, 2)], skip=0.2)
        d = rw.delta_f(target.basins["left"], target.basins["right"])
        rows.append([name, f"{ns:.1f}", crossings, f"{crossings / ns:.0f}",
                     f"{d.value:.2f} ± {d.error:.2f}" if np.isfinite(d.value) else "not sampled",
                     f"{target.exact_delta_f('left', 'right'):.2f}"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--parts", default="xy,learned,hidden", help="comma-separated: xy, learned, hidden")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply all simulation lengths (default 1)")
    parser.add_argument("--methods", default="tica,pca,deeptica", help="CV learners for the 'learned' part")
    args = parser.parse_args()
    parts = args.parts.split(",")
    torch.set_num_threads(1)
    scale = 0.1 if args.quick else args.scale
    seeds = [0] if args.quick else [0, 1, 2]

    sections = []
    if "xy" in parts:
        rows1 = [mb_xy(int(100_000 * scale), 16, s) for s in seeds[:2]]
        t1 = markdown_table(["seed", "ns total", "RMSE (kT, <8 kT region)", "ΔF bias", "ΔF reweighted",
                             "ΔF exact", "|err| bias (kT)", "|err| rw (kT)", "wall s"], rows1)
        sections += ["Muller-Brown, WT-MetaD on the true (x, y): 16 walkers, sigma 0.1 nm, height 1.5 kJ/mol, "
                     "bias factor 8, pace 100, 300 K (kT = 2.494 kJ/mol). Goals: RMSE <= 0.5 kT, |ΔF error| <= "
                     "0.3 kT.", t1]
    if "learned" in parts:
        rows2 = [mb_learned(m, int(50_000 * scale) // 5 * 5, 8, s) for m in args.methods.split(",") for s in seeds]
        t2 = markdown_table(["CV", "seed", "ns total", "ΔF reweighted (kJ/mol)", "ΔF exact", "|err| (kT)",
                             "wall s"], rows2)
        sections += ["Muller-Brown, WT-MetaD on a learned 1-D CV (`cvlearn quickstart` settings, 8 walkers; "
                     "wall time includes learning). Goal: |ΔF error| <= 0.5 kT.", t2]
    if "hidden" in parts:
        rows3 = hidden(int(25_000 * scale), 8, 0)
        t3 = markdown_table(["CV", "ns total", "transitions", "per ns", "ΔF(left→right) rw", "exact"], rows3)
        sections += ["Hidden double well in 10-D (10 kT barrier): WT-MetaD on TICA's vs PCA's CV, 8 walkers, "
                     "transitions counted between x < -0.5 and x > 0.5 nm.", t3]
    for block in sections:
        print(block)
    body = "\n\n".join(sections)
    if not args.no_append:
        append_section(f"Metadynamics accuracy against exact free energies (metad_accuracy.py: {args.parts})", body)


if __name__ == "__main__":
    main()
