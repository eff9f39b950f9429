"""How the loop leaves C7eq without knowing the slow coordinate: the measurements behind its molecule defaults.

What is measured
----------------
The shipped alanine dipeptide (vacuum, amber99sb-ildn, HBonds, 2 fs, Langevin 1/ps, OpenMM Reference), from
the minimized C7eq structure.

1. Exploration by temperature: ``--ns`` (2) ns of unbiased MD at each of ``--temperatures`` (700, 1000 K)
   for each seed. Per run: committed transitions between the phi cores (C7eq core -2.8 < phi < -0.5,
   C7ax core 0.3 < phi < 2.0 rad), the fraction of frames with phi > 0, and the fraction with either
   peptide bond (CH3-C-N-CA of ACE-ALA, CA-C-N-CH3 of ALA-NME) cis (|omega| < 90 degrees): a process
   that does not happen at 300 K but is slow at high temperature, where a kinetic learner finds it.
2. The CV learned from each exploration: Deep-TICA [32, 16] on the 45 heavy-atom distances, lag 1 ps,
   three networks (seeds 0, 1, 2) at ``--epochs`` (60 and 300) each. Per network: implied timescale and the
   separation of the phi cores along the CV, |mean_C7ax - mean_C7eq| / std_C7eq (0 = the CV does not see
   the phi transition). "Best of 3" is the network with the largest VAMP-2 score on all frames (what
   ``cl.iterate(n_models=3)`` keeps); a single network fails when its separation is < 5.
3. Only with ``--production``: OPES (barrier 40 kJ/mol, pace 1 ps, sigma from the hot run's 1 ps
   fluctuation scaled to 300 K) on the best-of-3 CV, 4 walkers x 250 ps at 300 K taking turns; Delta F =
   F(phi > 0) - F(phi < 0) from the second half, reweighted with exp(beta V), against the reference
   ``cl.data.alanine_reference()``.

Run from the repository root::

    python benchmarks/alanine_exploration.py                 # ~10 min on 2 idle cores; appends to RESULTS.md
    python benchmarks/alanine_exploration.py --production    # + OPES production per CV (~20 min more)
    python benchmarks/alanine_exploration.py --quick         # smoke run, prints only
"""

import argparse
import sys
import time
import warnings

import mdtraj as md
import numpy as np
import torch

import cvlearn as cl
import cvlearn.data

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.alanine_exploration
    from benchmarks._common import append_section, markdown_table

PDB = cl.data.alanine_dipeptide_pdb()
TOP = md.load_topology(PDB)
DIST = cl.features.from_spec("distances:heavy", PDB)
PHI = cl.features.from_spec("dihedrals:phi", PDB)
CORES = (cl.fes.Basin(lo=[-2.8], hi=[-0.5]), cl.fes.Basin(lo=[0.3], hi=[2.0]))
HALVES = (cl.fes.Basin(lo=[-np.pi], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[np.pi]))
STRIDE, LAG = 100, 5  # frames every 0.2 ps, lag 1 ps


def _atom(res, name):
    return next(a.index for a in TOP.atoms if a.residue.name == res and a.name == name)


OMEGA = [[_atom("ACE", "CH3"), _atom("ACE", "C"), _atom("ALA", "N"), _atom("ALA", "CA")],
         [_atom("ALA", "CA"), _atom("ALA", "C"), _atom("NME", "N"), _atom("NME", "C")]]


def explore(temperature, seed, n_steps, forcefield=("amber99sbildn.xml",)):
    eng = cl.engine.OpenMM.from_pdb(PDB, forcefield=forcefield, temperature=temperature, seed=seed, minimize=True)
    traj = eng.run(n_steps, stride=STRIDE)
    phi = np.concatenate(PHI.transform(traj))[:, 0]
    omega = md.compute_dihedrals(md.Trajectory(traj.positions[:, 0], TOP), OMEGA)
    return traj, phi, {"transitions": cl.loop.count_transitions(phi[:, None, None], *CORES),
                       "phi_pos": float(np.mean(phi > 0)), "cis": float(np.mean(np.any(np.abs(omega) < np.pi / 2, 1)))}


def learn(traj, phi, epochs):
    X = DIST.transform(traj)
    a, b = CORES[0].contains(phi[:, None]), CORES[1].contains(phi[:, None])
    nets = []
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cl.DeepTICA(lagtime=LAG, layers=(32, 16), max_epochs=epochs, seed=seed).fit(X)
        s = np.concatenate(est.transform(X))[:, 0]
        sep = abs(s[b].mean() - s[a].mean()) / s[a].std() if b.any() else 0.0
        nets.append({"est": est, "s": s, "sep": float(sep), "ts_ps": float(est.timescales_[0] * STRIDE * 0.002),
                     "vamp2": float(np.sum(est.eigenvalues_ ** 2))})
    return nets, max(nets, key=lambda n: n["vamp2"])


def production(best, temperature, seed, n_steps):
    cv = best["est"].to_module(featurizer=DIST)
    sigma = cl.loop.fluctuation([(best["s"], temperature, STRIDE * 0.002)], window_ps=1.0, temperature=300.0)
    opes = cl.OPES(cv, barrier=40.0, pace=500, sigma=sigma, temperature=300.0)
    group = cl.engine.WalkerGroup([cl.engine.OpenMM.from_pdb(PDB, seed=100 * seed + i + 1, minimize=True, bias=opes)
                                   for i in range(4)], chunk=5000)
    traj = group.run(n_steps, stride=STRIDE)
    values = cl.fes._reweight._values(traj, PHI)
    fes = cl.fes.reweight(traj, PHI, bias=opes, skip=0.5, bins=60, ranges=[(-np.pi, np.pi)])
    return cl.loop.count_transitions(values, *CORES), fes.delta_f(*HALVES)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--temperatures", type=float, nargs="+", default=[700.0, 1000.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--ns", type=float, default=2.0)
    p.add_argument("--epochs", type=int, nargs="+", default=[60, 300])
    p.add_argument("--production", action="store_true")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.temperatures, args.seeds, args.ns, args.epochs = [700.0], [0], 0.1, [5]
    n_steps = int(round(args.ns * 500_000))
    ref = cl.data.alanine_reference()["delta_f_kj_mol"]
    rows, prod_rows, t0 = [], [], time.perf_counter()
    for temp in args.temperatures:
        for seed in args.seeds:
            traj, phi, stats = explore(temp, seed, n_steps)
            for epochs in args.epochs:
                nets, best = learn(traj, phi, epochs)
                rows.append([f"{temp:g}", seed, stats["transitions"], f"{stats['phi_pos']:.3f}", f"{stats['cis']:.3f}",
                             epochs, ", ".join(f"{n['ts_ps']:.1f} / {n['sep']:.1f}" for n in nets),
                             f"{best['ts_ps']:.1f} / {best['sep']:.1f}"])
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
                if args.production:
                    n_tr, d = production(best, temp, seed, 125_000 if not args.quick else 5000)
                    prod_rows.append([f"{temp:g}", seed, epochs, n_tr, f"{d.value:.2f} ± {d.error:.2f}",
                                      f"{d.value - ref:+.2f}"])
                    print(" | ".join(str(c) for c in prod_rows[-1]), flush=True)
    body = markdown_table(["T (K)", "seed", "transitions", "φ>0", "cis frames", "epochs",
                           "each network: timescale ps / separation", "best of 3 (VAMP-2)"], rows)
    if prod_rows:
        body += "\n\nOPES on the best-of-3 CV, 4 walkers x 250 ps at 300 K, second half reweighted:\n\n"
        body += markdown_table(["T (K)", "seed", "epochs", "transitions", "ΔF (kJ/mol)", "ΔF − reference"],
                               prod_rows)
    body += (f"\n\n{args.ns:g} ns unbiased per exploration; separation = |mean C7ax core − mean C7eq core| / std "
             f"C7eq core along the CV (0: the CV misses the phi transition). Reference {ref:.2f} kJ/mol. Wall "
             f"{time.perf_counter() - t0:.0f} s.")
    print(body)
    if not args.quick:
        append_section("Alanine dipeptide: exploration temperature and CV training for the loop", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
