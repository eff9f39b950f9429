"""Reliability of the default loop on alanine dipeptide: ``cvlearn iterate --system molecule`` for many seeds.

What is measured
----------------
For each seed, the command a user types, with no option but the seed (and ``--forcefield`` for implicit
solvent), run as a separate process::

    cvlearn iterate --system molecule --seed S --out DIR --no-progress

It starts from the shipped alanine dipeptide in C7eq and never sees phi or psi: exploration at 700 K,
Deep-TICA on the 45 heavy-atom distances, OPES with 4 walkers, reweighting onto phi (see
``cvlearn.app.run_iterate``). Per seed: whether it left C7eq (a round sampled both phi basins), rounds,
transitions, total simulated ns (exploration included), wall time, and the final Delta F = F(phi > 0) -
F(phi < 0) +- its error against the converged reference of ``benchmarks/alanine_reference.py``
(``cl.data.alanine_reference``). Success: the loop reports a Delta F within 1.0 kJ/mol of the reference
having simulated at most 10 ns. The figure shows every seed's Delta F and error against the reference band.

A seed whose ``summary.json`` exists is not run again (stop and restart at will). Seeds run one after
another, each on one core (OpenMM Reference platform, torch one thread).

Run from the repository root::

    python benchmarks/iterate_reliability.py                       # vacuum, seeds 0-9, ~5-10 min per seed
    python benchmarks/iterate_reliability.py --solvent obc         # implicit solvent (amber99_obc.xml)
    python benchmarks/iterate_reliability.py --report              # table, figure, RESULTS.md from what exists
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.iterate_reliability
    from benchmarks._common import append_section, markdown_table

import cvlearn.data

HERE = Path(__file__).resolve().parent
FORCEFIELDS = {"vacuum": ["amber99sbildn.xml"], "obc": ["amber99sbildn.xml", "amber99_obc.xml"]}
LABELS = {"vacuum": "vacuum", "obc": "implicit solvent (OBC)"}
TOLERANCE, MAX_NS = 1.0, 10.0  # kJ/mol, ns: the goal


def run_seed(solvent, seed, out, extra):
    """Run the CLI for one seed (unless done); returns its summary dict with the wall time added."""
    path = out / "summary.json"
    if path.exists():
        return json.loads(path.read_text())
    cmd = [sys.executable, "-m", "cvlearn.cli", "iterate", "--system", "molecule", "--seed", str(seed), "--out",
           str(out), "--no-progress", "--forcefield", *FORCEFIELDS[solvent], *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (out / "stdout.txt").write_text(done.stdout + done.stderr)
    if done.returncode:
        print(f"seed {seed} failed (exit {done.returncode}); see {out / 'stdout.txt'}", flush=True)
        return None
    print(done.stdout.strip().splitlines()[-1], flush=True)
    summary = json.loads(path.read_text())
    summary["process_wall_s"] = wall
    path.write_text(json.dumps(summary, indent=2))
    return summary


def row(seed, s, ref):
    left = any(r["sampled"] for r in s["rounds"])
    d, e = s["delta_f"], s["error"]
    off = None if d is None else d - ref
    ok = off is not None and abs(off) <= TOLERANCE and s["simulated_ns"] <= MAX_NS
    fmt = lambda x, f=".2f": "-" if x is None else format(x, f)  # noqa: E731
    return ok, left, [seed, "yes" if left else "no", len(s["rounds"]), s["transitions"], f"{s['simulated_ns']:.2f}",
                      f"{s['wall_s']:.0f}", f"{fmt(d)} ± {fmt(e)}", fmt(off, "+.2f"),
                      "yes" if s["converged"] else "no", "**yes**" if ok else "no"]


def figure(solvent, seeds, summaries, ref, path, variant=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
    ax.axhspan(ref["delta_f_kj_mol"] - TOLERANCE, ref["delta_f_kj_mol"] + TOLERANCE, color="0.88", lw=0,
               label=f"reference ± {TOLERANCE:g} kJ/mol")
    ax.axhline(ref["delta_f_kj_mol"], color="k", lw=1, label=f"reference {ref['delta_f_kj_mol']:.2f} ± "
               f"{ref['sem_kj_mol']:.2f}")
    for seed, s in zip(seeds, summaries):
        if s["delta_f"] is None:
            ax.plot(seed, ref["delta_f_kj_mol"] - 3, "rx", ms=9)
            continue
        ax.errorbar(seed, s["delta_f"], yerr=s["error"] or 0.0, marker="o", capsize=3,
                    color="C0" if s["converged"] else "C1")
    ax.plot([], [], "o", color="C0", label="converged")
    ax.plot([], [], "o", color="C1", label="not converged")
    ax.set(xlabel="seed", ylabel="ΔF = F(φ>0) − F(φ<0) (kJ/mol)", xticks=seeds,
           title=f"cvlearn iterate --system molecule {variant}, {LABELS[solvent]}".replace("  ", " "))
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(solvent, seeds, root, variant=""):
    ref = cvlearn.data.alanine_reference(solvent)
    found = [(s, json.loads((root / f"seed_{s}" / "summary.json").read_text())) for s in seeds
             if (root / f"seed_{s}" / "summary.json").exists()]
    if not found:
        print(f"{solvent}: no finished seed under {root}")
        return
    rows, oks, lefts = [], [], []
    for seed, s in found:
        ok, left, r = row(seed, s, ref["delta_f_kj_mol"])
        rows.append(r)
        oks.append(ok)
        lefts.append(left)
    n = len(found)
    tag = "".join(c if c.isalnum() else "_" for c in variant).strip("_")
    fig = HERE / "figures" / f"iterate_reliability_{solvent}{'_' + tag if tag else ''}.png"
    figure(solvent, [s for s, _ in found], [s for _, s in found], ref, fig, variant)
    finals = np.array([s["delta_f"] for _, s in found if s["delta_f"] is not None])
    header = ["seed", "left C7eq", "rounds", "transitions", "ns simulated", "wall s", "ΔF ± error (kJ/mol)",
              "ΔF − reference", "converged", f"within {TOLERANCE:g} kJ/mol, ≤ {MAX_NS:g} ns"]
    text = markdown_table(header, rows)
    text += (f"\n\n{LABELS[solvent]}: **{sum(lefts)}/{n} seeds left C7eq; {sum(oks)}/{n} reached the goal** "
             f"(ΔF within {TOLERANCE:g} kJ/mol of the reference {ref['delta_f_kj_mol']:.2f} ± "
             f"{ref['sem_kj_mol']:.2f} with at most {MAX_NS:g} ns simulated).")
    if len(finals):
        spread = finals.std(ddof=1) if len(finals) > 1 else 0.0
        wall = np.mean([s["wall_s"] for _, s in found])
        text += (f" Mean of the seeds' final ΔF {finals.mean():.2f}, spread (std) {spread:.2f} kJ/mol; mean wall "
                 f"{wall:.0f} s per seed.")
    text += f" Figure: `benchmarks/figures/{fig.name}`."
    print(text)
    options = f", with {variant}" if variant else ""
    append_section(f"The loop on alanine dipeptide: reliability over seeds ({LABELS[solvent]}{options})", text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--solvent", choices=sorted(FORCEFIELDS), default="vacuum")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--out", default=None, help="where the runs go (default out/iterate_reliability/<solvent>)")
    p.add_argument("--report", action="store_true", help="only gather the finished seeds and write the report")
    p.add_argument("--variant", default="", help="with --report: the options the runs were given beyond the seed, "
                   "for the section title and figure name (e.g. '--n-components 2')")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: options passed to cvlearn iterate")
    args = p.parse_args(argv)
    root = Path(args.out or Path("out") / "iterate_reliability" / args.solvent)
    if not args.report:
        extra = [a for a in args.extra if a != "--"]
        for seed in args.seeds:
            out = root / f"seed_{seed}"
            out.mkdir(parents=True, exist_ok=True)
            run_seed(args.solvent, seed, out, extra)
    report(args.solvent, args.seeds, root, args.variant or " ".join(a for a in args.extra if a != "--"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
