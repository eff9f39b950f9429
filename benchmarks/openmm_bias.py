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
  * ``lean, bias every k steps``: multiple time stepping, k times the bias force every k-th step
    (``bias_interval=k``), k = 2 and 4;
- the same metadynamics on the backbone dihedral phi alone, by cvlearn (lean path) and by OpenMM's
  own ``openmm.app.Metadynamics`` (CustomTorsionForce CV, its grid bias in a CustomCVForce), the
  peer for a CV OpenMM can express natively.

Then where a biased step's time goes (microseconds): the PythonForce round trip alone (a callback that
reads the positions and returns zero forces, on the CV's 10 atoms), and each part of the callback
timed on its own (best of many calls): the lean CV's value and gradient, the bias at one CV value,
and the whole callback body; against the measured extra time per step of k = 1 over unbiased MD.

Steps per second are given by the wall clock and by the process's CPU time: on a shared machine the
second is far less sensitive to other jobs (it still sees their cache traffic).

Run from the repository root::

    python benchmarks/openmm_bias.py            # ~3 min, appends to RESULTS.md
    python benchmarks/openmm_bias.py --quick    # smoke run, prints only
"""

import argparse
import os
import statistics
import time
import timeit
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


CPU_RATES = {}  # run name -> steps per second of this process's CPU time (median), beside the wall-clock rate


def time_cvlearn(make_engine, steps, repeats, name=None):
    """Median steps/s (wall clock) over ``repeats`` engines; the CPU-time rate goes to CPU_RATES[name]."""
    rates, cpu = [], []
    for r in range(repeats):
        eng = make_engine(r)
        eng.run(1000, stride=500)  # warm-up: first force calls, caches
        t0, c0 = time.perf_counter(), time.process_time()
        eng.run(steps, stride=500)
        rates.append(steps / (time.perf_counter() - t0))
        cpu.append(steps / (time.process_time() - c0))
    if name is not None:
        CPU_RATES[name] = statistics.median(cpu)
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


def time_pythonforce_floor(steps, repeats, atoms):
    """Steps/s of unbiased MD and of MD with a PythonForce on ``atoms`` that reads the positions and
    returns zero forces (the callback's fixed cost), interleaved, best of ``repeats``."""
    import openmm as mm
    from openmm import app, unit

    pdb = app.PDBFile(alanine_dipeptide_pdb())
    ff = app.ForceField("amber99sbildn.xml")
    runs = {}
    for name in ("unbiased", "zero PythonForce"):
        system = ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
        if name != "unbiased":
            buf, result = np.zeros((len(atoms), 3)), (0.0, np.zeros((len(atoms), 3)))

            def compute(state, buf=buf, result=result):
                state._getVectorAsNumpy(mm.State.Positions, buf)
                return result

            force = mm.PythonForce(compute, {})
            force.setParticles([int(a) for a in atoms])
            force.setForceGroup(31)
            system.addForce(force)
        integ = mm.LangevinMiddleIntegrator(T * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
        ctx = mm.Context(system, integ, mm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(pdb.positions)
        mm.LocalEnergyMinimizer.minimize(ctx, 1.0, 0)
        ctx.setVelocitiesToTemperature(T * unit.kelvin, 1)
        integ.step(1000)
        runs[name] = (integ, ctx)
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, (integ, _) in runs.items():
            t0 = time.perf_counter()
            integ.step(steps)
            best[name] = max(best[name], steps / (time.perf_counter() - t0))
    return best


def time_call(fn, number=200, repeats=25):
    """Microseconds per call of ``fn``: best of ``repeats`` batches of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e6


def callback_costs(engine):
    """Microseconds per call of the parts of the bias callback of ``engine`` (one lean bias group)."""
    group = engine._groups[0]
    sub = engine._sub  # the buffer the callback reads positions into (the lean CV's input, where it has one)
    lean, bias = group.lean, group.biases[0]
    s = lean.value(sub)
    g = np.ones_like(s)
    return {"lean CV value + gradient": time_call(lambda: (lean.value(sub), lean.vjp(g))),
            "bias at one CV value": time_call(lambda: bias.value_and_gradient(s)),
            "callback body (CV + bias + forces)": time_call(lambda: engine._bias_energy_and_gradient(sub, -1.0))}


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
    # Per-call costs first (the engines are discarded afterwards).
    dtica_engine, phi_engine = openmm(dtica)(0), openmm(lambda: cvlearn_metad(phi_cv, None, periodic=True))(0)
    for e in (dtica_engine, phi_engine):
        e.run(1000, stride=500)
    costs = {"Deep-TICA": callback_costs(dtica_engine), "phi": callback_costs(phi_engine)}
    floor = time_pythonforce_floor(args.steps, args.repeats, dtica_engine._bias_atoms)
    unbiased = time_cvlearn(openmm(), args.steps, args.repeats, "unbiased")
    phi_metad = lambda: cvlearn_metad(phi_cv, None, periodic=True)  # noqa: E731
    runs = [
        ("unbiased, CPU platform", "-", openmm(platform="CPU"), max(args.steps // 20, 1000), 1),
        ("Deep-TICA metad, autograd", "cvlearn", openmm(dtica, lean=False), args.steps, args.repeats),
        ("Deep-TICA metad, lean", "cvlearn", openmm(dtica), args.steps, args.repeats),
        ("Deep-TICA metad, lean, bias every 2 steps", "cvlearn", openmm(dtica, bias_interval=2), args.steps,
         args.repeats),
        ("Deep-TICA metad, lean, bias every 4 steps", "cvlearn", openmm(dtica, bias_interval=4), args.steps,
         args.repeats),
        ("phi metad, lean", "cvlearn", openmm(phi_metad), args.steps, args.repeats),
    ]
    cases = [("unbiased", "-", unbiased)]
    cases += [(name, who, time_cvlearn(make, steps, repeats, name)) for name, who, make, steps, repeats in runs]
    cases.append(("phi metad, openmm.app.Metadynamics", "OpenMM", time_openmm_metad(args.steps, args.repeats)))
    cpu_unbiased = CPU_RATES["unbiased"]
    for name, who, rate in cases:
        cpu = CPU_RATES.get(name)
        cpu_cols = [f"{cpu:,.0f}", f"{cpu / cpu_unbiased:.2f}"] if cpu is not None else ["-", "-"]
        rows.append([name, who, f"{rate:,.0f}", f"{rate / unbiased:.2f}", *cpu_cols])
    table = markdown_table(["run", "bias by", "steps/s", "ratio to unbiased", "steps/s of CPU time",
                            "ratio (CPU time)"], rows)
    per_step = {name: 1e6 / rate - 1e6 / unbiased for name, _, rate in cases}
    fixed = 1e6 / floor["zero PythonForce"] - 1e6 / floor["unbiased"]
    cost_rows = [["PythonForce round trip (read positions, return zero forces), per step", "-", f"{fixed:.1f}"]]
    for cv_name, parts in costs.items():
        cost_rows += [[f"{cv_name}: {part}", f"{us:.1f}", "-"] for part, us in parts.items()]
    cost_rows += [["Deep-TICA metad, lean: extra time per MD step over unbiased", "-",
                   f"{per_step['Deep-TICA metad, lean']:.1f}"],
                  ["phi metad, lean: extra time per MD step over unbiased", "-", f"{per_step['phi metad, lean']:.1f}"]]
    costs_table = markdown_table(["part", "us per call, on its own", "us per MD step, in the MD loop"], cost_rows)
    print(table)
    print()
    print(costs_table)
    print(f"Deep-TICA training (100 ps of MD + fit): {t_train:.1f} s; load {os.getloadavg()}")
    if not args.quick:
        append_section("OpenMM biasing cost: alanine dipeptide, Deep-TICA CV (openmm_bias.py)",
                       table + "\n\nWhere a biased step's time goes (the parts timed alone run with warm caches; "
                       "in the MD loop each callback follows an OpenMM step and costs more):\n\n" + costs_table, [
            f"- {args.steps} steps per run, median of {args.repeats}; OpenMM {__import__('openmm').__version__}, "
            "Reference platform unless stated; steps/s by the wall clock, and by this process's CPU time (less "
            "sensitive to other jobs on the machine); the PythonForce round trip is the best of "
            f"{args.repeats} interleaved runs ({floor['unbiased']:,.0f} steps/s unbiased there)",
        ])


if __name__ == "__main__":
    main()
