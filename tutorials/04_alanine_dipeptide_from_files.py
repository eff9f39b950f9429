"""Tutorial: learn a collective variable for alanine dipeptide and compute a free energy with it.

Alanine dipeptide (ACE-ALA-NME, 22 atoms, vacuum, amber99sb-ildn, 300 K) has two groups of states:
C7eq and C5 with backbone dihedral phi < 0, where it lives, and C7ax/alpha_L with phi > 0, about
10 kJ/mol higher and behind a barrier that plain MD at 300 K does not cross in nanoseconds. We
compute Delta F = F(phi > 0) - F(phi < 0) *without telling cvlearn about phi*: the CV is learned
from the 45 distances between heavy atoms, and phi is only used at the end to look at the result.

The pipeline:
  1. unbiased MD (OpenMM, through cl.engine.OpenMM) -> frames in C7eq/C5 only;
  2. a first CV from those frames. A CV learned from one basin cannot know where the other basin
     is, and a neural CV (bounded tanh units) stops changing outside its training data, so biasing
     it does not push the molecule out. A linear CV (TICA) extrapolates: a short exploratory
     metadynamics on it reaches phi > 0 (measured in benchmarks/alanine_dipeptide.py);
  3. DeepTICA on the unbiased + exploratory frames: the slowest process in them is now the
     phi < 0 <-> phi > 0 transition, and the network learns it;
  4. well-tempered metadynamics on the DeepTICA CV;
  5. reweighting (c(t)) of the biased frames onto (phi, psi): FES, Delta F with a block error, plot.

Run:  python tutorials/04_alanine_dipeptide_from_files.py [output directory]   (about 1.5 minutes on 2 cores)

Results (2026-11-26, `nice -n 5 python tutorials/04_alanine_dipeptide_from_files.py`, 2 cores, load ~2, 82 s):
fraction of frames at phi > 0: unbiased 1 ns 0.000, TICA exploration 0.370, Deep-TICA metadynamics 0.535;
the first 15 % of the 0.6 ns production run come before the first C7ax visit and are skipped;
Delta F = 7.2 +- 3.5 kJ/mol (without the skip 9.2 +- 4.8). The converged reference for this set-up is
``cl.data.alanine_reference()`` (independent 20 ns runs of OpenMM's own metadynamics on (phi, psi),
``benchmarks/alanine_reference.py``); 0.6 ns of one run is short for a +-1 kJ/mol estimate.

This tutorial shows the pieces by hand. The automatic route is one command, ``cvlearn iterate --system
molecule`` (``tutorials/iterate_alanine_dipeptide.py``): it explores at 700 K instead of running TICA
metadynamics (a linear CV learned in C7eq alone leads out of it only for some seeds), keeps the best of
three Deep-TICA networks, and runs OPES with four walkers until the estimate settles; its reliability over
seeds 0-9 is measured by ``benchmarks/iterate_reliability.py`` (benchmarks/RESULTS.md).
"""

import sys
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

import cvlearn as cl
import cvlearn.data

PDB = cl.data.alanine_dipeptide_pdb()
TOP = md.load_topology(PDB)
DISTANCES = cl.features.Distances(TOP, selection="heavy")  # the 45 heavy-atom distances: the CVs' input
PHI, PHI_PSI = cl.features.Dihedrals(TOP, "phi"), cl.features.Dihedrals(TOP, "phi psi")  # analysis only
NEG, POS = cl.fes.Basin(lo=[-np.pi], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[np.pi])
C7AX = cl.fes.Basin(lo=[0.3], hi=[2.0])  # the core of the phi > 0 basin (a visit there is a real crossing)
STRIDE, LAG = 100, 5  # a frame every 100 steps (0.2 ps); lag time 5 frames = 1 ps


def engine(bias=None, seed=0):
    """amber99sb-ildn in vacuum, 300 K, 2 fs, HBonds. (bias_interval=2 would apply the bias every other step,
    faster, but a bias on CVs that weigh bond lengths can then blow up: see benchmarks/alanine_dipeptide.py.)"""
    return cl.engine.OpenMM.from_pdb(PDB, bias=bias, seed=seed, minimize=True)


def cv_values(cv, traj):
    with torch.no_grad():
        return cv(torch.as_tensor(traj.positions[:, 0])).numpy().reshape(-1)


def metad(cv, seen, steps, out, name, height=1.2, pace=500, seed=1):
    """Well-tempered metadynamics on a 1-D CV. sigma: the CV's fluctuation within 1 ps (5 frames) of the
    unbiased run seen[0], but at least 1/10 of its spread over all runs seen (a CV that puts the two states
    far apart would otherwise need very many narrow hills); grid: that spread extended twice on each side."""
    s0, s = cv_values(cv, seen[0]), np.concatenate([cv_values(cv, t) for t in seen])
    sigma = max(s0[: len(s0) // 5 * 5].reshape(-1, 5).std(1).mean(), 0.1 * s.std())
    lo, hi = s.min() - 2 * np.ptp(s), s.max() + 2 * np.ptp(s)  # room to push the CV far beyond the data
    bias = cl.WellTemperedMetad(cv, sigma=sigma, height=height, bias_factor=10, pace=pace, outside="wall",
                                grid=cl.Grid(lo, hi, int((hi - lo) / (sigma / 4)) + 1))
    traj = engine(bias, seed).run(steps, stride=STRIDE, colvar=out / f"COLVAR.{name}", hills=out / f"HILLS.{name}")
    return traj, bias


def run(out="alanine_tutorial", unbiased_steps=500_000, explore_steps=300_000, steps=300_000, epochs=500):
    """The whole pipeline; sizes in steps of 2 fs. Returns a dict of results (see the end)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    # 1. Unbiased MD: 1 ns from the minimized structure (C7eq). Cheap (no Python force), and TICA needs it:
    #    a TICA fitted to 0.2 ns did not reach phi > 0 in 0.5 ns of exploration, one fitted to 1 ns did.
    unbiased = engine(seed=0).run(unbiased_steps, stride=STRIDE)
    X = DISTANCES.transform(unbiased)[0]  # (frames, 45)
    # 2. TICA on the distances; a short metadynamics on it explores, and crosses to phi > 0.
    tica = cl.TICA(lagtime=LAG, n_components=1).fit(X).to_module(featurizer=DISTANCES)
    explore, _ = metad(tica, [unbiased], explore_steps, out, "explore")
    # 3. DeepTICA on all frames seen so far (a list: no lagged pair spans two runs). With only a
    #    transition or two in the data, which blocks are held out for validation matters, so train
    #    three networks and keep the one with the slowest implied timescale.
    data = [X, DISTANCES.transform(explore)[0]]
    fits = [cl.DeepTICA(lagtime=LAG, layers=[32, 16], n_components=1, seed=s, max_epochs=epochs).fit(data)
            for s in range(3)]
    deeptica = max(fits, key=lambda f: f.timescales_[0])
    cv = deeptica.to_module(featurizer=DISTANCES)  # positions (nm) -> CV, differentiable
    cl.save(cv, out / "deeptica_cv.pt")
    # 4. Production: metadynamics on the DeepTICA CV (its grid spans the explored range too).
    traj, bias = metad(cv, [unbiased, explore], steps, out, "deeptica")
    # 5. Reweight every frame by exp((V(s, t) - c(t)) / kT) onto (phi, psi) and onto the two phi basins.
    # c(t) gives every stretch of the run the same weight, so the frames before the molecule first
    # reached the other basin (all at phi < 0) would pull Delta F up: skip them.
    skip = cl.fes.transient_fraction(traj, PHI, C7AX)
    fes = cl.fes.reweight(traj, PHI_PSI, bias=bias, method="ct", bins=(40, 40), ranges=[(-np.pi, np.pi)] * 2,
                          skip=skip)
    fes.names = ["φ", "ψ"]
    fes.save(out / "fes_phi_psi.npz")
    series = cl.fes.delta_f_timeseries(traj, PHI, NEG, POS, bias=bias, method="ct", n_points=20, skip=skip)
    result = {"unbiased_phi": PHI.transform(unbiased)[0][:, 0], "explore_phi": PHI.transform(explore)[0][:, 0],
              "phi": PHI.transform(traj)[0][:, 0], "fes": fes, "series": series, "cv": cv, "traj": traj,
              "timescale_ps": [float(f.timescales_[0] * STRIDE * 0.002) for f in fits],
              "delta_f": float(series["delta_f"][-1]), "error": float(series["error"][-1]), "skip": skip}
    plot(result, out / "alanine_dipeptide.png")
    return result


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    cl.plot.fes(result["fes"], ax=a, max_value=40, levels=np.arange(0, 42.5, 2.5), cv_units="rad")
    a.set_title("F(φ, ψ), metadynamics on the DeepTICA CV, reweighted")
    s = result["series"]
    cl.plot.delta_f_convergence(s["time"], s["delta_f"], s["error"], ax=b, label="F(φ>0) − F(φ<0)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    r = run(*sys.argv[1:2])
    print(f"Fraction of frames with phi > 0: unbiased {np.mean(r['unbiased_phi'] > 0):.3f}, exploration "
          f"{np.mean(r['explore_phi'] > 0):.3f}, DeepTICA metadynamics {np.mean(r['phi'] > 0):.3f}")
    print(f"First {r['skip']:.0%} of the production frames skipped (before the first C7ax visit).")
    print(f"Delta F = F(phi > 0) - F(phi < 0) = {r['delta_f']:.1f} +- {r['error']:.1f} kJ/mol "
          "(benchmarks/alanine_dipeptide.py: 4 ns of OpenMM's own metadynamics on (phi, psi) give 9.8 kJ/mol)")
