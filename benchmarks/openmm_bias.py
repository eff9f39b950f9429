"""Cost of biasing a molecule in OpenMM with a learned CV: cvlearn's force paths against unbiased MD
and against OpenMM's own metadynamics.

What is measured
----------------
Alanine dipeptide (the structure shipped with cvlearn), vacuum, amber99sb-ildn, NoCutoff, HBonds,
300 K, 2 fs, friction 1/ps, OpenMM's Reference platform (the fastest here for 22 atoms; the CPU
platform is timed unbiased for comparison). Steps per second of MD, median of ``--repeats`` runs of
``--steps`` steps after a warm-up, frames every 500 steps:

- unbiased MD (LangevinMiddleIntegrator);
- well-tempered metadynamics (pace 500 steps, bias factor 10, height 1.2 kJ/mol) on a Deep-TICA CV
  of the 45 heavy-atom distances (network 45-32-16-1, tanh, trained on 100 ps of unbiased frames),
  through cvlearn's PythonForce:
  * ``autograd``: the torch module with torch autograd for the force (the naive route);
  * ``lean``: cvlearn's numpy path (value and vector-Jacobian product without autograd);
  * ``lean, bias every k steps``: multiple time stepping (MTSLangevinIntegrator), k = 2 and 4;
- the same metadynamics on the backbone dihedral phi alone, by cvlearn (lean path) and by OpenMM's
  own ``openmm.app.Metadynamics`` (CustomTorsionForce CV, its grid bias in a CustomCVForce), the
  peer for a CV OpenMM can express natively.

Run from the repository root::

    python benchmarks/openmm_bias.py            # ~3 min, appends to RESULTS.md
    python benchmarks/openmm_bias.py --quick    # smoke run, prints only
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch

import cvlearn as cl
from cvlearn.data import alanine_dipeptide_pdb

try:
    from _common import append_section, markdown_table
except ImportError:  # run as a module
    from benchmarks._common import append_section, markdown_table

PACE, HEIGHT, BIAS_FACTOR, T = 500, 1.2, 10.0, 300.0


def deep_tica_cv(top, seed=0, epochs=60):
    """Deep-TICA CV on heavy-atom distances, trained on 100 ps of unbiased MD."""
    eng = cl.engine.OpenMM.from_pdb(alanine_dipeptide_pdb(), minimize=True, seed=seed)
    frames = eng.run(50_000, stride=50).positions[:, 0]
    feat = cl.features.Distances(top, selection="heavy")
    X = feat.transform(frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        dtica = cl.DeepTICA(lagtime=5, layers=(32, 16), n_components=1, seed=seed, max_epochs=epochs).fit(X)
    s = dtica.transform(X)[:, 0]
    return dtica.to_module(featurizer=feat), s


def cvlearn_metad(cv, s, periodic=False):
    if periodic:
        grid = cl.Grid(-np.pi, np.pi, 360, periodic=True)
        sigma = 0.35
    else:
        sigma = 0.5 * s.std()
        pad = 20 * s.std()
        grid = cl.Grid(s.min() - pad, s.max() + pad, int(np.ceil((np.ptp(s) + 2 * pad) / (sigma / 4))))
    return cl.WellTemperedMetad(cv, sigma=sigma, height=HEIGHT, bias_factor=BIAS_FACTOR, pace=PACE, grid=grid,
                                outside="wall")


def time_cvlearn(make_engine, steps, repeats):
    rates = []
    for r in range(repeats):
        eng = make_engine(r)
        eng.run(1000, stride=500)  # warm-up: first force calls, caches
        t0 = time.perf_counter()
        eng.run(steps, stride=500)
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def time_openmm_metad(steps, repeats, platform="Reference"):
    import openmm as mm
    from openmm import app, unit

    pdb = app.PDBFile(alanine_dipeptide_pdb())
    ff = app.ForceField("amber99sbildn.xml")
    rates = []
    for r in range(repeats):
        system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
        phi = mm.CustomTorsionForce("theta")
        phi.addTorsion(4, 6, 8, 14)
        var = app.BiasVariable(phi, -np.pi, np.pi, 0.35, periodic=True, gridWidth=360)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = app.Metadynamics(system, [var], T * unit.kelvin, BIAS_FACTOR, HEIGHT * unit.kilojoule_per_mole,
                                    PACE)
        integ = mm.LangevinMiddleIntegrator(T * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
        integ.setRandomNumberSeed(r + 1)
        sim = app.Simulation(pdb.topology, system, integ, mm.Platform.getPlatformByName(platform))
        sim.context.setPositions(pdb.positions)
        sim.minimizeEnergy()
        meta.step(sim, 1000)
        t0 = time.perf_counter()
        for _ in range(steps // 500):  # same frame stride as cvlearn: state read every 500 steps
            meta.step(sim, 500)
            sim.context.getState(getPositions=True, getEnergy=True)
        rates.append(steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run (fewer steps, no RESULTS.md)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 2000, 1
    torch.set_num_threads(1)
    import mdtraj

    top = mdtraj.load_topology(alanine_dipeptide_pdb())
    t0 = time.perf_counter()
    cv, s = deep_tica_cv(top, epochs=10 if args.quick else 60)
    t_train = time.perf_counter() - t0
    phi_cv = cl.features.Dihedrals(top, "phi")
    pdb = alanine_dipeptide_pdb()

    def openmm(bias=None, **kw):
        return lambda r: cl.engine.OpenMM.from_pdb(pdb, bias=bias() if bias else None, minimize=True, seed=r + 1,
                                                   **kw)

    dtica = lambda: cvlearn_metad(cv, s)  # noqa: E731
    rows = []
    unbiased = time_cvlearn(openmm(), args.steps, args.repeats)
    cases = [
        ("unbiased", "-", unbiased),
        ("unbiased, CPU platform", "-", time_cvlearn(openmm(platform="CPU"), max(args.steps // 20, 1000), 1)),
        ("Deep-TICA metad, autograd", "cvlearn", time_cvlearn(openmm(dtica, lean=False), args.steps, args.repeats)),
        ("Deep-TICA metad, lean", "cvlearn", time_cvlearn(openmm(dtica), args.steps, args.repeats)),
        ("Deep-TICA metad, lean, bias every 2 steps", "cvlearn",
         time_cvlearn(openmm(dtica, bias_interval=2), args.steps, args.repeats)),
        ("Deep-TICA metad, lean, bias every 4 steps", "cvlearn",
         time_cvlearn(openmm(dtica, bias_interval=4), args.steps, args.repeats)),
        ("phi metad, lean", "cvlearn",
         time_cvlearn(openmm(lambda: cvlearn_metad(phi_cv, None, periodic=True)), args.steps, args.repeats)),
        ("phi metad, openmm.app.Metadynamics", "OpenMM", time_openmm_metad(args.steps, args.repeats)),
    ]
    for name, who, rate in cases:
        rows.append([name, who, f"{rate:,.0f}", f"{rate / unbiased:.2f}"])
    table = markdown_table(["run", "bias by", "steps/s", "ratio to unbiased"], rows)
    print(table)
    print(f"Deep-TICA training (100 ps of MD + fit): {t_train:.1f} s; load {os.getloadavg()}")
    if not args.quick:
        append_section("OpenMM biasing cost: alanine dipeptide, Deep-TICA CV (openmm_bias.py)", table, [
            f"- {args.steps} steps per run, median of {args.repeats}; OpenMM {__import__('openmm').__version__}, "
            "Reference platform unless stated",
        ])


if __name__ == "__main__":
    main()
