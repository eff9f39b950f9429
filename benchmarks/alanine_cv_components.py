"""What the loop's CV sees on alanine dipeptide: phi or psi, with one learned component or two.

What is measured
----------------
1. For each seed: the loop's exploration (2 ns unbiased at 700 K from the minimized C7eq structure, frames
   every 0.2 ps; vacuum or implicit solvent ``--solvent obc``), then Deep-TICA [32, 16] on the 45 heavy-atom
   distances, lag 1 ps, 60 epochs, three networks (seeds s, s+1, s+2, as ``cl.iterate(n_models=3)``) with one
   and with two components. Per network: VAMP-2 score, implied timescales (ps), and for each component the
   correlation ratio eta^2 of the CV with the phi basin (phi > 0 or not) and with the psi basin (alpha,
   -2.2 < psi < 1.0 rad, or not): the fraction of the CV's variance the basin label explains (1: the CV
   tells the two basins apart and nothing else; 0: it does not see them).
2. With ``--runs DIR ...``: the same eta^2 for every CV the loop saved (``DIR/seed_*/round_*/cv.pt``), on a
   separate 2 ns exploration at 700 K (seed 77) that visits all four basins.

Run from the repository root::

    python benchmarks/alanine_cv_components.py --solvent obc --seeds 0 1 2 3          # ~4 min per seed
    python benchmarks/alanine_cv_components.py --solvent obc --seeds --runs out/iterate_reliability/obc
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

import cvlearn as cl

try:
    from _common import append_section, markdown_table
    from alanine_exploration import DIST, LAG, PDB, PHI, STRIDE, TOP
except ImportError:  # imported as benchmarks.alanine_cv_components
    from benchmarks._common import append_section, markdown_table
    from benchmarks.alanine_exploration import DIST, LAG, PDB, PHI, STRIDE, TOP

FORCEFIELDS = {"vacuum": ("amber99sbildn.xml",), "obc": ("amber99sbildn.xml", "amber99_obc.xml")}


def eta2(s, labels):
    """Correlation ratio: the fraction of var(s) explained by the basin label."""
    mean = s.mean()
    between = sum((labels == k).mean() * (s[labels == k].mean() - mean) ** 2 for k in np.unique(labels))
    return float(between / s.var())


def hot_run(solvent, seed, n_steps=1_000_000):
    """700 K exploration: trajectory and the phi / psi basin labels of its frames."""
    eng = cl.engine.OpenMM.from_pdb(PDB, forcefield=FORCEFIELDS[solvent], temperature=700.0, seed=seed,
                                    minimize=True)
    traj = eng.run(n_steps, stride=STRIDE)
    phi = np.concatenate(PHI.transform(traj))[:, 0]
    _, psi = md.compute_psi(md.Trajectory(traj.positions[:, 0], TOP))
    return traj, (phi > 0).astype(int), ((psi[:, 0] > -2.2) & (psi[:, 0] < 1.0)).astype(int)


def fmt(values):
    return ", ".join(f"{v:.2f}" for v in values)


def learned(solvent, seed):
    traj, phi_b, psi_b = hot_run(solvent, seed)
    X = DIST.transform(traj)
    rows = []
    for nc in (1, 2):
        nets = []
        for j in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = cl.DeepTICA(lagtime=LAG, layers=(32, 16), max_epochs=60, seed=seed + j, n_components=nc).fit(X)
            s = np.concatenate(est.transform(X))
            nets.append((float(np.sum(est.eigenvalues_ ** 2)), [t * STRIDE * 0.002 for t in est.timescales_],
                         [eta2(s[:, c], phi_b) for c in range(nc)], [eta2(s[:, c], psi_b) for c in range(nc)]))
        best = max(range(3), key=lambda j: nets[j][0])
        for j, (score, ts, e_phi, e_psi) in enumerate(nets):
            rows.append([seed, nc, seed + j, f"{score:.3f}", fmt(ts), fmt(e_phi), fmt(e_psi),
                         "**kept**" if j == best else ""])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return rows


def saved(solvent, dirs):
    traj, phi_b, psi_b = hot_run(solvent, 77)
    x = torch.as_tensor(traj.positions[:, 0])
    rows = []
    for d in dirs:
        for path in sorted(Path(d).glob("seed_*/round_*/cv.pt"), key=lambda p: (p.parent.parent.name, p.parent.name)):
            cv = cl.load(path)
            with torch.no_grad():
                s = cv(x).double().numpy()
            rows.append([str(path.parent), fmt([eta2(s[:, c], phi_b) for c in range(s.shape[1])]),
                         fmt([eta2(s[:, c], psi_b) for c in range(s.shape[1])])])
            print(" | ".join(rows[-1]), flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--solvent", choices=sorted(FORCEFIELDS), default="obc")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3])
    p.add_argument("--runs", nargs="*", default=[], help="loop output folders whose saved CVs to evaluate")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0, body = time.perf_counter(), ""
    if args.seeds:
        rows = [r for seed in args.seeds for r in learned(args.solvent, seed)]
        body += markdown_table(["seed", "components", "network seed", "VAMP-2", "timescales (ps)",
                                "η² φ basin per component", "η² ψ basin per component", "best of 3"], rows)
        body += "\n\n"
    if args.runs:
        body += markdown_table(["saved CV", "η² φ basin per component", "η² ψ basin per component"],
                               saved(args.solvent, args.runs)) + "\n\n"
    body += (f"{args.solvent}: explorations of 2 ns at 700 K; η² = the fraction of the CV's variance explained by "
             f"the basin label (φ > 0; α: -2.2 < ψ < 1.0 rad). Wall {time.perf_counter() - t0:.0f} s.")
    print(body)
    append_section(f"Alanine dipeptide: what the learned CV sees, one component or two ({args.solvent})", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
