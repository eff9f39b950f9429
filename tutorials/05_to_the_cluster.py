"""Tutorial 5: to the cluster and back. Export a learned CV for PLUMED, then analyse PLUMED's files.

On a cluster you run GROMACS, LAMMPS or OpenMM with PLUMED. cvlearn writes what PLUMED needs: the
network as TorchScript (`model.ptc`, for PLUMED's PYTORCH_MODEL) and a `plumed.dat` that computes the
CV's input features with PLUMED's own actions (DISTANCE, TORSION, ...) and biases the CV with METAD.
Back home, the run's HILLS and COLVAR files are all cvlearn needs: the bias and F along the CV from
HILLS (as `plumed sum_hills` would), F of any printed variable by c(t) reweighting of COLVAR, and
per-frame weights to retrain the CV on the cluster's frames.

No PLUMED here, so the "cluster run" is played by cvlearn's own OpenMM engine, which writes the
same PLUMED-format HILLS and COLVAR files (`COLVAR` with the CV, `metad.bias`, `metad.rct`).

Run:  python tutorials/05_to_the_cluster.py [--fast] [--out tutorial05_out]

Results (full mode, 2026-11-26, `nice -n 10 python tutorials/05_to_the_cluster.py`, 2 cores, load ~2, 31 s):
the plumed.dat computes sin/cos of phi and psi with TORSION + CUSTOM and feeds them to PYTORCH_MODEL;
from the run's files alone, F along the CV from HILLS spans 62.9 kJ/mol over 92 grid points, F by
c(t) reweighting of COLVAR spans 13.8 kJ/mol over 40 bins, and 2,500 frame weights come back for
retraining (the same numbers as the in-process analysis: tests/test_colvar_import.py checks 1e-8).
"""

import argparse
import os

import mdtraj as md
import numpy as np
import torch

import cvlearn as cl


def main(fast=False, out="tutorial05_out", seed=0):
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    pdb = cl.data.alanine_dipeptide_pdb()
    top = md.load_topology(pdb)

    # 1. Learn a CV (TICA on the sin/cos of phi and psi) from a short unbiased run.
    frames = cl.engine.OpenMM.from_pdb(pdb, minimize=True, seed=seed).run(4000 if fast else 50000, stride=20)
    feat = cl.features.Dihedrals(top, "phi psi", sincos=True)
    X = feat.transform(frames.positions[:, 0])
    tica = cl.TICA(lagtime=5, n_components=1).fit(X)
    cv = tica.to_module(featurizer=feat)
    s = tica.transform(X)[:, 0]
    sigma, lo, hi = 0.5 * s.std(), s.min() - 2.0, s.max() + 2.0

    # 2. Export for PLUMED: model.ptc + plumed.dat (look at it: the features are PLUMED actions).
    files = cl.export.to_plumed(cv, os.path.join(out, "plumed"), bias="metad", sigma=[sigma], height=1.2,
                                bias_factor=10, pace=500, grid=([lo], [hi], [400]), temperature=300.0)
    print(open(files["plumed"]).read())

    # 3. The "cluster run": the same METAD, written in PLUMED's file formats.
    run_dir = os.path.join(out, "run")
    os.makedirs(run_dir, exist_ok=True)
    metad = cl.WellTemperedMetad(cv, sigma=sigma, height=1.2, bias_factor=10, pace=500,
                                 grid=cl.Grid(lo, hi, 400), outside="wall")
    cl.engine.OpenMM.from_pdb(pdb, bias=metad, seed=seed + 1).run(
        4000 if fast else 250000, stride=100, colvar=os.path.join(run_dir, "COLVAR"),
        hills=os.path.join(run_dir, "HILLS"))
    metad.close()

    # 4. Back home: F along the CV from HILLS, F(phi) by reweighting COLVAR, weights to retrain.
    bias = cl.bias.read_hills(os.path.join(run_dir, "HILLS"), temperature=300.0)
    fes_cv = bias.free_energy()
    colvar = os.path.join(run_dir, "COLVAR")
    fes_s = cl.fes.from_colvar(colvar, [cv.names[0]], temperature=300.0, bins=40)
    logw = cl.fes.colvar_logweights(colvar, temperature=300.0)[:, 0]
    print(f"HILLS: {bias.field.values().size} grid points, F along the CV spans {np.ptp(fes_cv.F):.1f} kJ/mol; "
          f"COLVAR reweighting: F spans {np.ptp(fes_s.F[np.isfinite(fes_s.F)]):.1f} kJ/mol over "
          f"{np.isfinite(fes_s.F).sum()} bins; {len(logw)} frame weights for retraining")
    return fes_cv, fes_s, logw


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="a few seconds: checks that everything runs")
    ap.add_argument("--out", default="tutorial05_out")
    main(**vars(ap.parse_args()))
