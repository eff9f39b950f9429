"""Alanine dipeptide from C7eq only, by the loop: learn a CV, bias it, reweight, relearn, until Delta F settles.

Alanine dipeptide (ACE-ALA-NME, vacuum, amber99sb-ildn, 300 K, OpenMM) starts in C7eq (phi < 0) and
plain MD at 300 K does not reach C7ax / alpha_L (phi > 0) in nanoseconds. `cl.iterate` starts from an
unbiased run in C7eq and repeats:

  1. learn a CV from the 45 heavy-atom distances of every frame so far (round 1: TICA, a linear CV that
     extrapolates out of the only basin it has seen; later rounds: TICA, or Deep-TICA with ``--method
     deeptica`` once the data hold transitions), the biased frames weighted by exp(beta [V(s, t) - c(t)]);
  2. well-tempered metadynamics on that CV in OpenMM (``cl.loop.metad_for``: sigma half the CV's spread,
     height 1.2 kJ/mol, bias factor 10, a hill every ps), every round from the minimized C7eq structure;
  3. reweight the round's frames onto phi (c(t)), Delta F = F(phi > 0) - F(phi < 0) with a block error,
     discarding the frames recorded before the molecule first reached the C7ax core (0.3 < phi < 2 rad)
     (and at least 10 %): c(t) reweighting is biased by the pre-crossing transient
     (``benchmarks/ct_reweighting.py``);

until Delta F moved by less than 1 kJ/mol and the CV by less than 0.02 (1 - |r|) between rounds.
phi is never shown to the learner; it is used only to measure Delta F, against the reference 9.76 kJ/mol
(OpenMM's own metadynamics on (phi, psi), 4 ns, ``benchmarks/alanine_dipeptide.py``).

Run:  python tutorials/iterate_alanine_dipeptide.py [--fast] [--method tica|deeptica] [--out DIR]
  --fast  a smoke run (~1 min): 2 rounds of 100 ps with big, frequent hills (5 kJ/mol every 0.1 ps); it
          checks the pipeline (the molecule leaves C7eq), not the number.
  full    0.5 ns unbiased, up to 5 rounds of 0.5 ns (~30-60 min on 2 cores).

Full-mode result (see the end of this docstring, filled in from a run of this script):
  RESULTS_PLACEHOLDER
"""

import argparse
import json
import os

import mdtraj as md
import numpy as np
import torch

import cvlearn as cl
import cvlearn.data
from cvlearn.fes._reweight import transient_fraction
from cvlearn.loop import iterate, metad_for

PDB = cl.data.alanine_dipeptide_pdb()
TOP = md.load_topology(PDB)
DISTANCES = cl.features.Distances(TOP, selection="heavy")  # the CV's input: 45 heavy-atom distances (nm)
PHI = cl.features.Dihedrals(TOP, "phi")  # analysis only (rad)
NEG, POS = cl.fes.Basin(lo=[-np.pi], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[np.pi])
C7AX_CORE = cl.fes.Basin(lo=[0.3], hi=[2.0])  # phi > 0 just across the C5 edge at +-pi is no crossing
C7EQ_CORE = cl.fes.Basin(lo=[-2.8], hi=[-0.5])  # transitions are counted between the cores
REFERENCE = 9.76  # kJ/mol, F(phi > 0) - F(phi < 0)
STRIDE, LAG = 100, 5  # a frame every 0.2 ps; lag 1 ps

FULL = {"initial_steps": 250_000, "rounds": 5, "steps": 250_000, "height": 1.2, "pace": 500, "epochs": 300,
        "sigma_fraction": 0.5, "train_weights": "reweighted"}
FAST = {"initial_steps": 20_000, "rounds": 2, "steps": 50_000, "height": 5.0, "pace": 50, "epochs": 20,
        "sigma_fraction": 0.5, "train_weights": "reweighted"}


def _learner(method, epochs):
    def make(k):
        if method == "tica" or k == 1:
            return cl.TICA(lagtime=LAG, n_components=1)
        return cl.DeepTICA(lagtime=LAG, layers=[32, 16], n_components=1, seed=k, max_epochs=epochs)

    return make


def _skip(traj):
    return max(0.1, transient_fraction(traj, PHI, C7AX_CORE))


def main(fast=False, method="tica", out="iterate_alanine_out", seed=0, **settings):
    """Run the loop; returns (IterationResult, summary dict). Sizes in steps of 2 fs; ``settings`` override
    those of FULL / FAST (initial_steps, rounds, steps, height, pace, epochs, sigma_fraction, train_weights)."""
    p = {**(FAST if fast else FULL), **settings}
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    # Round 0 data: unbiased MD from the minimized structure, which stays in C7eq / C5 (phi < 0).
    initial = cl.engine.OpenMM.from_pdb(PDB, seed=seed, minimize=True).run(p["initial_steps"], stride=STRIDE)

    def make_engine(bias, k):
        return cl.engine.OpenMM.from_pdb(PDB, bias=bias, seed=seed + k, minimize=True)

    def make_bias(cv, s):
        return metad_for(cv, s, height=p["height"], bias_factor=10.0, pace=p["pace"],
                         sigma_fraction=p["sigma_fraction"])

    result = iterate(make_engine, _learner(method, p["epochs"]), DISTANCES, initial, PHI, (NEG, POS),
                     make_bias=make_bias, rounds=p["rounds"], steps=p["steps"], stride=STRIDE,
                     reweight={"bins": 60, "ranges": [(-np.pi, np.pi)], "skip": _skip},
                     transition_basins=(C7EQ_CORE, C7AX_CORE), train_weights=p["train_weights"])
    rows = result.summary()
    for r, row in zip(result.rounds, rows):
        phi = PHI.transform(r.trajectory)[0][:, 0]
        row["fraction_phi_positive"] = float(np.mean(phi > 0))
        row["skip"] = r.fes.metadata["skip"]
        final = cl.fes.reweight(r.trajectory, PHI, bias=r.bias, method="final", bins=60,
                                ranges=[(-np.pi, np.pi)], skip=max(0.3, row["skip"]))
        row["delta_f_final_bias"] = final.delta_f(NEG, POS).value
        for key, value in row.items():
            if isinstance(value, float) and not np.isfinite(value):
                row[key] = None  # strict JSON
    summary = {"reference_delta_f": REFERENCE, "method": method, "fast": fast, "converged": result.converged,
               "simulated_ps_per_round": p["steps"] * 0.002, "rounds": rows}
    with open(os.path.join(out, "rounds.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    _figure(os.path.join(out, "iterate_alanine.png"), result)
    return result, summary


def _figure(path, result):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for r in result.rounds:
        f = r.fes
        a.plot(f.axes[0], f.F, label=f"round {r.index}")
    a.set(xlabel="φ (rad)", ylabel="F (kJ/mol)", ylim=(0, 50), title="F(φ) per round, reweighted (c(t))")
    a.legend()
    result.plot(exact=REFERENCE, axes=[b, b.twinx()])
    b.set_title("F(φ>0) − F(φ<0) per round (bars: transitions)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="a smoke run of about a minute")
    ap.add_argument("--method", choices=("tica", "deeptica"), default="tica",
                    help="learner after round 1 (round 1 is always TICA)")
    ap.add_argument("--out", default="iterate_alanine_out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sigma-fraction", type=float, help="hill width as a fraction of the CV's spread (default 0.5)")
    ap.add_argument("--train-weights", choices=("reweighted", "sampled"),
                    help="train on the biased frames reweighted (default) or as sampled")
    args = ap.parse_args()
    extra = {} if args.sigma_fraction is None else {"sigma_fraction": args.sigma_fraction}
    extra.update({} if args.train_weights is None else {"train_weights": args.train_weights})
    _, s = main(args.fast, args.method, args.out, args.seed, **extra)
    for r in s["rounds"]:
        fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
        print(f"round {r['round']}: dF = {fmt(r['delta_f'])} +- {fmt(r['error'])} kJ/mol (final bias "
              f"{fmt(r['delta_f_final_bias'])}; reference {REFERENCE}), {r['transitions']} transitions, "
              f"phi > 0 in {r['fraction_phi_positive']:.1%} of frames, skipped {r['skip']:.0%}")
    print(f"converged: {s['converged']}; wrote {args.out}/rounds.json and iterate_alanine.png")
