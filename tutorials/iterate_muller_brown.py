"""Learn a CV from one basin, bias it, relearn from the biased frames: the loop on Muller-Brown.

An unbiased 300 K run of Muller-Brown never leaves its deepest basin A, so a CV learned from it
knows nothing about the way to basin B. `cl.iterate` biases that CV anyway (well-tempered
metadynamics), reweights the biased frames to the unbiased ensemble, relearns the CV from all frames
so far, and repeats until the free energy difference F(B) - F(A) and the CV stop changing. Each
round is kept: its CV, bias, run, Delta F with a block error and the number of A <-> B transitions.

Run:  python tutorials/iterate_muller_brown.py [--rounds 5] [--steps 20000] [--out iterate_out]
(about 3 minutes on 2 cores; writes iterate_out/iterate.png and iterate_out/rounds.json)

Results (2026-11-26, `nice -n 10 python tutorials/iterate_muller_brown.py`, 2 cores, load ~2, 185 s; exact
11.41 kJ/mol): round 1 (the CV learned in basin A) 0 transitions; rounds 2-5: 14, 29, 10, 6 transitions
and F(B) - F(A) = 6.40 +- 2.64, 3.97 +- 2.41, 10.84 +- 6.40, 12.29 +- 5.21 kJ/mol, CV change (1 - |r|
with the previous round's CV) 0.0017, 0.028, 0.0073, 3e-5. The loop escapes basin A in round 2 and
ends within its error of the exact value; one round's own run is a noisy estimate (20,000 steps per
walker), which is why each round reports its block error.
"""

import argparse
import json
import os

import numpy as np
import torch

import cvlearn as cl
from cvlearn.loop import iterate


def main(rounds=5, steps=20000, walkers=8, out="iterate_out", seed=0):
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    mb = cl.systems.MullerBrown()  # 300 K; exact F(B) - F(A) = 11.41 kJ/mol
    start = mb.basins["A"].center[None]  # every walker starts in basin A

    # Round 0 data: a plain 300 K run, which stays in basin A.
    initial = cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=walkers, seed=seed, positions=start).run(
        4000, stride=10)

    # Keep walkers inside the region where the model potential is defined (it rises steeply outside).
    lo, hi = (np.array(b) for b in zip(*mb.slow_bounds))
    xy = lambda x: x[:, 0, :]  # noqa: E731
    walls = [cl.bias.UpperWall(xy, at=hi, kappa=1000.0), cl.bias.LowerWall(xy, at=lo, kappa=1000.0)]

    def make_engine(bias, k):
        return cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=walkers, seed=seed + k, positions=start,
                           bias=[bias, *walls])

    result = iterate(make_engine, cl.TICA(lagtime=10, n_components=1, scaling=None), cl.features.Positions.of(mb),
                     initial, mb.slow_coordinates, (mb.basins["A"], mb.basins["B"]), rounds=rounds, steps=steps,
                     reweight={"bins": 60, "ranges": mb.slow_bounds})
    exact = mb.exact_delta_f("A", "B")
    summary = {"exact_delta_f": exact, "converged": result.converged, "rounds": result.summary()}
    with open(os.path.join(out, "rounds.json"), "w") as fh:
        json.dump(summary, fh, indent=2, default=float)
    _figure(os.path.join(out, "iterate.png"), mb, initial, result, exact)
    for r in result.summary():
        print(f"round {r['round']}: dF = {r['delta_f']:.2f} +- {r['error']:.2f} kJ/mol "
              f"(exact {exact:.2f}), {r['transitions']} transitions, CV change {r['cv_change']:.3g}")
    return result


def _figure(path, mb, initial, result, exact):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    cl.plot.cv_on_landscape(mb, result.rounds[0].cv, ax=axes[0], trajectory=initial, max_points=500)
    axes[0].set_title("round 1: CV learned in basin A only")
    cl.plot.cv_on_landscape(mb, result.cv, ax=axes[1], trajectory=result.rounds[-1].trajectory, max_points=800)
    axes[1].set_title(f"round {len(result.rounds)}: CV relearned from biased frames")
    result.plot(exact=exact, axes=[axes[2], axes[2].twinx()])
    axes[2].set_title("ΔF(A→B) per round (bars: transitions)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--walkers", type=int, default=8)
    ap.add_argument("--out", default="iterate_out")
    args = ap.parse_args()
    main(args.rounds, args.steps, args.walkers, args.out)
