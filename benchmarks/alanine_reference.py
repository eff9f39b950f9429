"""The converged reference for alanine dipeptide: Delta F = F(phi > 0) - F(phi < 0), all psi.

What is measured
----------------
Exactly the system ``cvlearn iterate --system molecule`` and the alanine tutorials run: the shipped
``cvlearn.data.alanine_dipeptide_pdb()`` (ACE-ALA-NME, 22 atoms), amber99sb-ildn, no cutoff, bonds to
hydrogen constrained, 300 K, LangevinMiddleIntegrator with friction 1/ps and a 2 fs step, OpenMM's
Reference platform, starting from the minimized structure (C7eq). ``--solvent vacuum`` (default) or
``--solvent obc`` (implicit solvent: ``amber99sbildn.xml`` + ``amber99_obc.xml``, whose phi/psi
populations differ from vacuum).

Method: OpenMM's own well-tempered ``openmm.app.Metadynamics`` on (phi, psi) (an established,
independent implementation: no cvlearn code runs in the dynamics), periodic, hill width 0.35 rad,
height 1.2 kJ/mol, bias factor 6, a hill every 500 steps (1 ps), grid 90 x 90. Each run has its own
random stream (integrator seed and starting velocities) and runs ``--ns`` ns (default 20). Its free
energy is ``Metadynamics.getFreeEnergy()`` (-(gamma / (gamma - 1)) V on OpenMM's periodic grid; the
repeated last grid point is dropped), and Delta F comes from Boltzmann sums over the grid points of
each phi half (phi in (-pi, 0) and (0, pi); no grid point sits on phi = 0). It is recorded every
``--ns / --points`` ns, so every run's convergence is plotted. That F is the true one smoothed by the
hills' width, so each run also records (phi, psi, V) every ps, and its second half reweighted with the
final bias gives the estimate the reference uses: the mean of the runs' values +- the standard error
over runs (std / sqrt(n), ddof 1); the target is an SEM of at most 0.3 kJ/mol.

Each run writes ``--out/<solvent>/run_<k>.json`` when it finishes (a finished run is not repeated, so
the script can be stopped and started again, and runs can be spread over processes with ``--runs``).
``--report`` gathers whatever runs exist, writes ``cvlearn/data/alanine_reference.json`` (the number
every tutorial, test and doc quotes; shipped with the package so ``cvlearn iterate`` can print it),
the figure ``benchmarks/figures/alanine_reference_<solvent>.png`` and a section of RESULTS.md.

Run from the repository root::

    python benchmarks/alanine_reference.py --solvent vacuum --runs 0 1 2 3 4   # ~4-5 min per 20 ns run
    python benchmarks/alanine_reference.py --solvent obc --runs 0 1 2 3 4      # implicit solvent, slower
    python benchmarks/alanine_reference.py --report                            # both solvents
    python benchmarks/alanine_reference.py --quick                             # smoke run, prints only
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.alanine_reference
    from benchmarks._common import append_section, markdown_table

import cvlearn.data
from cvlearn.io import write_text_atomic

T, DT, FRICTION = 300.0, 0.002, 1.0
KT = 0.00831446261815324 * T  # kJ/mol
WIDTH, HEIGHT, GAMMA, PACE, GRID = 0.35, 1.2, 6.0, 500, 90
FORCEFIELDS = {"vacuum": ("amber99sbildn.xml",), "obc": ("amber99sbildn.xml", "amber99_obc.xml")}
LABELS = {"vacuum": "vacuum", "obc": "implicit solvent (OBC)"}
HERE = Path(__file__).resolve().parent
OUT = HERE / "reference_runs"
FIGURES = HERE / "figures"
PACKAGE_JSON = Path(cvlearn.data.__file__).with_name("alanine_reference.json")


def grid_delta_f(F, axis):
    """F(phi > 0) - F(phi < 0) (kJ/mol) from F(phi, psi) on a grid, by Boltzmann sums over grid points."""
    logp = -(F - F.min()) / KT

    def lse(mask):
        m = logp[mask]
        return m.max() + np.log(np.exp(m - m.max()).sum())

    return float(-KT * (lse(axis > 0) - lse(axis < 0)))


def reweighted_delta_f(frames, F, axis):
    """F(phi > 0) - F(phi < 0) (kJ/mol) from frames (phi, psi, bias) reweighted with the final bias.

    Frames (of a run's second half) weigh exp(beta V_final(s)), V_final = -(1 - 1/gamma) F_final
    interpolated (bilinear, periodic) at each frame: unlike sums over the final F, which is the true F
    smoothed by the hills' width (0.35 rad here), this counts where the molecule actually was.
    """
    n = len(axis)
    step = axis[1] - axis[0]
    u = (frames[:, :2] - axis[0]) / step
    i0, f = np.floor(u).astype(int), u - np.floor(u)
    V = -(1.0 - 1.0 / GAMMA) * F
    val = np.zeros(len(frames))
    for di in (0, 1):
        for dj in (0, 1):
            w = (f[:, 0] if di else 1 - f[:, 0]) * (f[:, 1] if dj else 1 - f[:, 1])
            val += w * V[(i0[:, 0] + di) % n, (i0[:, 1] + dj) % n]
    logw = val / KT
    logw -= logw.max()
    w = np.exp(logw)
    pos = frames[:, 0] > 0
    return float(-KT * np.log(w[pos].sum() / w[~pos].sum()))


def metadynamics(solvent, seed):
    """OpenMM's Metadynamics on (phi, psi) of the shipped alanine dipeptide, minimized, velocities drawn:
    (simulation, metadynamics, F() -> F(phi, psi) on ``axis`` (kJ/mol), axis (rad))."""
    import mdtraj as md
    import openmm as mm
    import openmm.app as app
    import openmm.unit as unit
    from openmm.app.metadynamics import BiasVariable, Metadynamics

    pdb = app.PDBFile(cvlearn.data.alanine_dipeptide_pdb())
    ff = app.ForceField(*FORCEFIELDS[solvent])
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    top = md.Topology.from_openmm(pdb.topology)
    variables = []
    for quad in (md.geometry.dihedral.indices_phi(top)[0], md.geometry.dihedral.indices_psi(top)[0]):
        f = mm.CustomTorsionForce("theta")
        f.addTorsion(*[int(i) for i in quad], [])
        variables.append(BiasVariable(f, -np.pi, np.pi, WIDTH, True, GRID))
    meta = Metadynamics(system, variables, T * unit.kelvin, GAMMA, HEIGHT * unit.kilojoules_per_mole, PACE)
    integrator = mm.LangevinMiddleIntegrator(T * unit.kelvin, FRICTION / unit.picosecond, DT * unit.picoseconds)
    integrator.setRandomNumberSeed(seed)
    sim = app.Simulation(pdb.topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(pdb.positions)
    sim.minimizeEnergy()
    sim.context.setVelocitiesToTemperature(T * unit.kelvin, seed)
    axis = np.linspace(-np.pi, np.pi, GRID)[:-1]  # OpenMM's periodic grid repeats its first point last

    def grid_f():
        F = np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoules_per_mole))
        return F.T[:-1, :-1]  # OpenMM stores (psi, phi); -> (phi, psi)

    return sim, meta, grid_f, axis


def one_run(solvent, run, n_steps, n_points):
    """One OpenMM Metadynamics run on (phi, psi); returns its record (dict, JSON-ready)."""
    import openmm.unit as unit

    sim, meta, grid_f, axis = metadynamics(solvent, 1000 + run)
    cuts = np.linspace(0, n_steps, n_points + 1).astype(int)
    group = meta._force.getForceGroup()
    times, delta_f, wall, frames = [], [], 0.0, []
    for a, b in zip(cuts[:-1], cuts[1:]):
        t0 = time.perf_counter()
        for _ in range((b - a) // PACE):  # a frame (phi, psi, V(s, t)) every pace: for the reweighted estimate
            meta.step(sim, PACE)
            v = sim.context.getState(getEnergy=True, groups={group}).getPotentialEnergy()
            frames.append([*meta.getCollectiveVariables(sim), v.value_in_unit(unit.kilojoules_per_mole)])
        wall += time.perf_counter() - t0
        times.append(b * DT / 1000.0)
        delta_f.append(grid_delta_f(grid_f(), axis))
        print(f"  {solvent} run {run}: {times[-1]:.2f} ns  Delta F {delta_f[-1]:.2f} kJ/mol "
              f"({b / wall:,.0f} steps/s)", flush=True)
    frames = np.array(frames)
    reweighted = reweighted_delta_f(frames[len(frames) // 2:], grid_f(), axis)
    F = grid_f()
    F -= F.min()
    return {"solvent": solvent, "run": run, "seed": 1000 + run, "ns": n_steps * DT / 1000.0,
            "steps_per_s": n_steps / wall, "time_ns": times, "delta_f": delta_f, "final": delta_f[-1],
            "reweighted": reweighted,
            "phi_profile": (-KT * np.log(np.exp(-F / KT).sum(axis=1))).tolist(), "axis": axis.tolist(),
            "settings": {"width_rad": WIDTH, "height_kj_mol": HEIGHT, "bias_factor": GAMMA,
                         "pace_steps": PACE, "grid": GRID, "temperature_K": T, "timestep_ps": DT,
                         "friction_per_ps": FRICTION, "forcefield": list(FORCEFIELDS[solvent])}}


def summarize(values):
    """Mean, standard error (ddof 1) and n of the runs' values."""
    values = np.asarray(values, dtype=np.float64)
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), sem, len(values)


def load_runs(solvent):
    """One record per run index (``run_<k>.json`` or ``<tag>_<k>.json``: the same seed gives the same
    trajectory on the Reference platform), preferring one with the reweighted estimate."""
    runs = {}
    for path in sorted((OUT / solvent).glob("*_*.json")):
        rec = json.loads(path.read_text())
        if rec["run"] not in runs or ("reweighted" in rec and "reweighted" not in runs[rec["run"]]):
            runs[rec["run"]] = rec
    return [runs[k] for k in sorted(runs)]


def figure(solvent, records, mean, sem, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for i, r in enumerate(records):
        axs[0].plot(r["time_ns"], r["delta_f"], lw=1.2, color=f"C{i}", label=f"run {r['run']} (grid sums)")
        if "reweighted" in r:
            axs[0].plot(r["time_ns"][-1], r["reweighted"], "o", color=f"C{i}")
        prof = np.array(r["phi_profile"])
        axs[1].plot(r["axis"], prof - prof.min(), lw=1.0, label=f"run {r['run']}")
    axs[0].plot([], [], "ko", label="final-bias reweighted frames (last half)")
    axs[0].axhspan(mean - sem, mean + sem, color="0.8", lw=0, label=f"reference {mean:.2f} ± {sem:.2f}")
    axs[0].set_ylim(mean - 4, mean + 4)
    axs[0].set_xlabel("simulated time per run (ns)")
    axs[0].set_ylabel("ΔF = F(φ>0) − F(φ<0) (kJ/mol)")
    axs[0].set_title(f"(a) convergence of each run, {LABELS[solvent]}")
    axs[0].legend(fontsize=7)
    axs[1].set_xlabel("φ (rad)")
    axs[1].set_ylabel("F(φ) (kJ/mol)")
    axs[1].set_title("(b) final F(φ) of each run (the bias, smoothed by the hills)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report():
    table, stored, notes = [], {}, []
    if PACKAGE_JSON.exists():
        stored = json.loads(PACKAGE_JSON.read_text())
    for solvent in FORCEFIELDS:
        records = load_runs(solvent)
        rw = [r for r in records if "reweighted" in r]
        if len(rw) < 2 and len(records) < 2:
            print(f"{solvent}: {len(records)} finished run(s); need at least 2 for a standard error")
            continue
        estimator = "reweighted" if len(rw) >= 2 else "final"
        used = rw if len(rw) >= 2 else records
        mean, sem, n = summarize([r[estimator] for r in used])
        grid_mean, grid_sem, grid_n = summarize([r["final"] for r in records])
        figure(solvent, records, mean, sem, FIGURES / f"alanine_reference_{solvent}.png")
        how = ("frames of each run's second half (phi, psi every ps) reweighted with its final bias"
               if estimator == "reweighted" else "Boltzmann sums over the final bias's grid")
        stored[solvent] = {
            "delta_f_kj_mol": round(mean, 3), "sem_kj_mol": round(sem, 3), "runs": n,
            "ns_per_run": used[0]["ns"], "finals_kj_mol": [round(r[estimator], 3) for r in used],
            "method": "OpenMM 8 app.Metadynamics on (phi, psi), well-tempered, bias factor 6, width 0.35 rad, "
                      f"height 1.2 kJ/mol, pace 1 ps, grid 90; Delta F from {how}; mean +- SEM over runs",
            "grid_sums_kj_mol": round(grid_mean, 3),
            "system": f"cvlearn.data.alanine_dipeptide_pdb(), {' + '.join(FORCEFIELDS[solvent])}, NoCutoff, "
                      "HBonds, 300 K, 2 fs, Langevin 1/ps",
            "basins": "phi in (-pi, 0) vs (0, pi), all psi",
        }
        for r in records:
            table.append([LABELS[solvent], r["run"], f"{r['ns']:g}", f"{r['final']:.2f}",
                          f"{r['reweighted']:.2f}" if "reweighted" in r else "-",
                          f"{np.ptp(np.array(r['delta_f'])[len(r['delta_f']) // 2:]):.2f}", f"{r['steps_per_s']:,.0f}"])
        notes.append(f"{LABELS[solvent]}: reference **{mean:.2f} ± {sem:.2f} kJ/mol** ({n} runs, {how}); "
                     f"grid sums over the final bias {grid_mean:.2f} ± {grid_sem:.2f} ({grid_n} runs)"
                     + (f", on the same trajectories {np.mean([r['reweighted'] - r['final'] for r in rw]):.2f} "
                        "kJ/mol below the reweighted estimate" if rw else "") + ".")
        print(notes[-1])
    if not table:
        return
    write_text_atomic(PACKAGE_JSON, json.dumps(stored, indent=1) + "\n")
    body = markdown_table(["system", "run", "ns", "ΔF, grid sums (kJ/mol)", "ΔF, reweighted frames (kJ/mol)",
                           "drift of the grid estimate over the last half", "steps/s"], table)
    body += "\n\n" + "\n\n".join(notes)
    body += ("\n\nΔF = F(φ>0) − F(φ<0), all ψ, from OpenMM's own well-tempered Metadynamics on (φ, ψ), "
             "each run with its own random stream (seed 1000 + run; the Reference platform repeats a run "
             "exactly, so a run recorded again with frames is the same trajectory). Two estimators on each run: "
             "Boltzmann sums over the final bias's grid, and the frames of the second half reweighted with the "
             "final bias. The grid sums see F smoothed by the hills' width (0.35 rad, as wide as the C7ax "
             "basin), which lowers ΔF; the reweighted frames count where the molecule was, so the reference is "
             "the reweighted mean ± standard error over runs. Figures: "
             "`benchmarks/figures/alanine_reference_<system>.png`. Stored for the package in "
             "`cvlearn/data/alanine_reference.json` (`cl.data.alanine_reference()`), which every tutorial, test "
             "and doc quotes.")
    append_section("Alanine dipeptide reference free energy (OpenMM Metadynamics, independent runs)", body)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--solvent", choices=sorted(FORCEFIELDS), default="vacuum")
    p.add_argument("--runs", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="run indices (seeds 1000 + k)")
    p.add_argument("--ns", type=float, default=20.0, help="simulated ns per run")
    p.add_argument("--tag", default="run", help="file prefix of the runs (default run)")
    p.add_argument("--points", type=int, default=40, help="convergence points per run")
    p.add_argument("--report", action="store_true", help="gather finished runs, write json, figure, RESULTS.md")
    p.add_argument("--quick", action="store_true", help="smoke run (20 ps, nothing written)")
    args = p.parse_args(argv)
    if args.report:
        report()
        return 0
    if args.quick:
        rec = one_run(args.solvent, 0, 20_000, 2)
        print(f"quick: Delta F after 40 ps {rec['final']:.2f} (grid), {rec['reweighted']:.2f} (reweighted) kJ/mol "
              f"at {rec['steps_per_s']:,.0f} steps/s")
        return 0
    n_steps = int(round(args.ns * 1000.0 / DT))
    (OUT / args.solvent).mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        path = OUT / args.solvent / f"{args.tag}_{run}.json"
        if path.exists():
            print(f"{path} exists: run {run} is done")
            continue
        rec = one_run(args.solvent, run, n_steps, args.points)
        write_text_atomic(path, json.dumps(rec) + "\n")
        print(f"{args.solvent} run {run}: final Delta F {rec['final']:.2f} kJ/mol -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
