"""Well-tempered metadynamics on 2-D Muller-Brown: cvlearn against OpenMM's ``Metadynamics`` class.

What is measured
----------------
The system is cvlearn's ``MullerBrown()`` (0.3 x the standard potential, kJ/mol, x and y in nm, one
particle of 1 amu, 300 K). OpenMM gets the same potential as a ``CustomExternalForce`` on one
particle in 3-D, with ``500 z^2`` kJ/mol holding z near 0 (separable, so F(x, y) is unchanged) and
the same harmonic wall as cvlearn's ``outside="wall"`` (1000 kJ/mol/nm^2 beyond the grid edges).
Both biases use CVs (x, y), sigma 0.1 nm, initial height 1.5 kJ/mol, bias factor 8, a grid over
[-1.7, 1.3] x [-0.5, 2.2] nm with the same 121 x 109 points (spacing 0.025 nm), 1 walker,
timestep 0.005 ps, friction 5/ps. cvlearn integrates with BAOAB (``cl.Langevin``, float64), OpenMM
with ``LangevinMiddleIntegrator`` (also a BAOAB-type splitting) on the Reference and CPU platforms.
Both hold the bias on the grid, so neither does work per deposited hill when it computes a force.

Part 1 - cost per step against the number of deposited hills (10 ... 10^5).
    For each count, a fresh bias is pre-filled with that many hills at uniformly random centers
    (same centers for both codes): cvlearn through ``metad.deposit`` in chunks of 1000 centers
    (well-tempered heights from the bias before each chunk), OpenMM with exactly those heights
    through its own ``_addGaussian`` for the first 100 hills (timed: that is OpenMM's cost of one
    deposition during a run) and the rest summed onto its grid with the same formula in numpy
    (``_addGaussian`` re-uploads the whole table per hill; 10^5 calls would take far too long).
    The two grids are compared (max |V_cvlearn - V_openmm| over the grid, a check that both hold
    the same bias). Then ``--time-steps`` steps with no further deposition (pace = 10^9) are timed
    ``--repeats`` times (median reported) from basin A. cvlearn is also timed with 64 walkers
    sharing the bias (walker-steps/s: where a batched torch engine can win), and without any bias
    (the cost of the engine alone, Python/torch overhead included); OpenMM likewise without its
    metadynamics force.

Part 2 - accuracy after the same number of steps.
    From basin A (-0.558, 1.442), ``--steps`` steps (default 200,000 = 1 ns) with pace 100, for
    each seed of ``--seeds``, on cvlearn and on OpenMM (``Metadynamics.step``, Reference and CPU).
    Wall time includes depositions. The free energy on the grid, F = -(gamma/(gamma-1)) V, is
    compared with the exact F = V_MB (one particle, so the potential is the free energy):
    RMSE over the grid points within 8 kT of the exact minimum after removing the mean difference
    there (kT at 300 K), and Delta F(A -> B) = F(B) - F(A) between discs of radius 0.3 nm around the
    minima A and B, F(basin) = -kT ln sum_{grid points in disc} exp(-F/kT), computed by the same
    code (``FreeEnergySurface.delta_f``) for both. The exact Delta F is ``mb.exact_delta_f`` (801^2
    grid); the same sum on the 121 x 109 bias grid with the exact F is shown as the floor a perfect
    bias would reach on that grid.

Run from the repository root::

    python benchmarks/metad_cost.py          # full run (~30 min on 2 cores), appends to RESULTS.md
    python benchmarks/metad_cost.py --quick  # smoke run (~1 min), prints only

Needs OpenMM (``pip install openmm``; tested with 8.6.1).
"""

import argparse
import datetime
import os
import statistics
import time

import numpy as np
import torch

import cvlearn as cl

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.metad_cost
    from benchmarks._common import append_section, markdown_table

try:
    import openmm as mm
    import openmm.app as app
    import openmm.unit as unit
    from openmm.app.metadynamics import BiasVariable, Metadynamics
except ImportError as exc:  # pragma: no cover
    raise SystemExit("This benchmark needs OpenMM: pip install openmm") from exc

LO, HI, BINS = (-1.7, -0.5), (1.3, 2.2), (120, 108)
SIGMA, HEIGHT, GAMMA, T = 0.1, 1.5, 8.0, 300.0
DT, FRICTION = 0.005, 5.0
WALL_KAPPA = 1000.0  # cvlearn's default wall_kappa, kJ/mol/nm^2
KT = 0.00831446261815324 * T
START = (-0.558224, 1.441726)  # basin A
# Muller-Brown constants, one tuple per term: A, a, b, c, x0, y0.
MB_TERMS = [(-200, -1, 0, -10, 1, 0), (-100, -1, 0, -10, 0, 0.5), (-170, -6.5, 11, -6.5, -0.5, 1.5),
            (15, 0.7, 0.6, 0.7, -1, 1)]


# -- cvlearn ---------------------------------------------------------------------------------------
def cvlearn_metad(pace):
    grid = cl.Grid(list(LO), list(HI), list(BINS))
    return cl.WellTemperedMetad(cl.features.Positions(1, 2), sigma=SIGMA, height=HEIGHT,
                                bias_factor=GAMMA, pace=pace, grid=grid, temperature=T,
                                outside="wall", wall_kappa=WALL_KAPPA)


def cvlearn_engine(mb, bias, n_walkers=1, seed=0):
    return cl.Langevin(mb, timestep=DT, friction=FRICTION, n_walkers=n_walkers, seed=seed,
                       bias=bias)


def time_cvlearn(eng, n_steps, repeats):
    """Median seconds per step of ``eng.run(n_steps)`` over ``repeats`` runs, after a warm-up."""
    eng.run(min(200, n_steps), stride=n_steps)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        eng.run(n_steps, stride=n_steps)
        times.append((time.perf_counter() - t0) / n_steps)
    return statistics.median(times)


# -- OpenMM ----------------------------------------------------------------------------------------
def mb_expression():
    """Muller-Brown energy (kJ/mol) as an OpenMM expression, plus the z restraint and the walls."""
    terms = [f"({A})*exp(({a})*(x-({x0}))^2+({b})*(x-({x0}))*(y-({y0}))+({c})*(y-({y0}))^2)"
             for A, a, b, c, x0, y0 in MB_TERMS]
    walls = (f"max(0,x-({HI[0]}))^2+max(0,({LO[0]})-x)^2"
             f"+max(0,y-({HI[1]}))^2+max(0,({LO[1]})-y)^2")
    return f"0.3*({'+'.join(terms)}) + 500*z^2 + {0.5 * WALL_KAPPA}*({walls})"


def openmm_setup(platform, pace, seed=0):
    """(Simulation, Metadynamics) for one MB particle at basin A.

    ``seed`` >= 0; OpenMM gets seed + 1, since 0 means "pick a random seed" there.
    """
    system = mm.System()
    system.addParticle(1.0)
    pot = mm.CustomExternalForce(mb_expression())
    pot.addParticle(0, [])
    system.addForce(pot)
    variables = []
    for i, name in enumerate("xy"):
        f = mm.CustomExternalForce(name)
        f.addParticle(0, [])
        # gridWidth points from minValue to maxValue inclusive: the points of cl.Grid(LO, HI, BINS).
        variables.append(BiasVariable(f, LO[i], HI[i], SIGMA, gridWidth=BINS[i] + 1))
    meta = Metadynamics(system, variables, T * unit.kelvin, GAMMA,
                        HEIGHT * unit.kilojoules_per_mole, pace)
    integrator = mm.LangevinMiddleIntegrator(T * unit.kelvin, FRICTION / unit.picosecond,
                                             DT * unit.picoseconds)
    integrator.setRandomNumberSeed(seed + 1)
    top = app.Topology()
    top.addAtom("P", None, top.addResidue("MB", top.addChain()))
    sim = app.Simulation(top, system, integrator, mm.Platform.getPlatformByName(platform))
    sim.context.setPositions([mm.Vec3(START[0], START[1], 0.0)] * unit.nanometer)
    sim.context.setVelocitiesToTemperature(T * unit.kelvin, seed + 1)
    return sim, meta


def openmm_prefill(meta, sim, centers, heights, n_timed=100):
    """Add hills to OpenMM's bias: the first ``n_timed`` by ``_addGaussian`` (timed), the rest by
    numpy with the same formula.

    Returns (seconds per ``_addGaussian`` call, total seconds).
    """
    t0 = time.perf_counter()
    n_timed = min(n_timed, len(centers))
    for c, h in zip(centers[:n_timed], heights[:n_timed], strict=True):
        meta._addGaussian(list(c), float(h) * unit.kilojoules_per_mole, sim.context)
    per_call = (time.perf_counter() - t0) / max(n_timed, 1)
    rest_c, rest_h = centers[n_timed:], heights[n_timed:]
    if len(rest_c):
        # The Gaussian of Metadynamics._addGaussian (non-periodic), summed over all hills at once.
        g = []
        for i, v in enumerate(meta.variables):
            u = (rest_c[:, i] - v.minValue) / (v.maxValue - v.minValue)
            dist = np.linspace(0.0, 1.0, v.gridWidth)[None, :] - u[:, None]
            g.append(np.exp(-0.5 * dist * dist / v._scaledVariance))  # (hills, points along axis i)
        total = (rest_h[:, None] * g[1]).T @ g[0]  # (ny, nx), OpenMM's axis order
        meta._selfBias += total
        meta._totalBias += total
        meta._table.setFunctionParameters(*meta._widths, meta._totalBias.flatten(), *meta._limits)
        meta._force.updateParametersInContext(sim.context)
    return per_call, time.perf_counter() - t0


def time_openmm(sim, meta, n_steps, repeats):
    meta.step(sim, min(200, n_steps))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        meta.step(sim, n_steps)
        times.append((time.perf_counter() - t0) / n_steps)
    return statistics.median(times)


def time_openmm_plain(platform, n_steps, repeats):
    """Seconds per step of the same particle and potential without any metadynamics force."""
    system = mm.System()
    system.addParticle(1.0)
    pot = mm.CustomExternalForce(mb_expression())
    pot.addParticle(0, [])
    system.addForce(pot)
    integrator = mm.LangevinMiddleIntegrator(T * unit.kelvin, FRICTION / unit.picosecond,
                                             DT * unit.picoseconds)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName(platform))
    context.setPositions([mm.Vec3(START[0], START[1], 0.0)] * unit.nanometer)
    integrator.step(min(200, n_steps))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        integrator.step(n_steps)
        times.append((time.perf_counter() - t0) / n_steps)
    return statistics.median(times)


def openmm_fes(meta):
    """OpenMM's free energy on its grid, as a cvlearn FreeEnergySurface (axes x, y)."""
    axes = [np.linspace(v.minValue, v.maxValue, v.gridWidth) for v in meta.variables]
    F = meta.getFreeEnergy().value_in_unit(unit.kilojoules_per_mole)
    F = np.asarray(F).T  # OpenMM's (ny, nx) -> (nx, ny)
    return cl.fes.FreeEnergySurface(axes, F, T, names=["x", "y"])


# -- accuracy --------------------------------------------------------------------------------------
def fes_errors(fes, mb, exact_df):
    """(RMSE in kT over the points within 8 kT of the exact minimum after removing the mean
    difference there, Delta F(A->B) in kJ/mol, its error in kT)."""
    exact = mb.exact_free_energy(fes.points).reshape(fes.F.shape)
    exact = exact - exact.min()
    region = exact <= 8.0 * KT
    diff = fes.F[region] - exact[region]
    rmse = float(np.sqrt(np.mean((diff - diff.mean()) ** 2))) / KT
    df = fes.delta_f(mb.basins["A"], mb.basins["B"]).value
    return rmse, df, (df - exact_df) / KT


# -- the two parts ---------------------------------------------------------------------------------
def part1(args, mb):
    rng = np.random.default_rng(12345)
    rows, check_rows = [], []
    for n in args.hills:
        centers = rng.uniform(LO, HI, size=(n, 2))
        metad = cvlearn_metad(pace=10**9)
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            metad.deposit(torch.as_tensor(centers[i:i + 1000]), step=0)
        t_dep = time.perf_counter() - t0
        heights = metad.hills["height"]
        # cvlearn, 1 walker and many walkers, sharing the same pre-filled bias
        t1 = time_cvlearn(cvlearn_engine(mb, metad, 1, seed=0), args.time_steps, args.repeats)
        tw = {w: time_cvlearn(cvlearn_engine(mb, metad, w, seed=0), args.time_steps, args.repeats)
              for w in args.walkers}
        row = [f"{n:,}", f"{t_dep:.2f} ({t_dep / n * 1e3:.2f})", f"{t1 * 1e6:.0f}"]
        row += [f"{tw[w] * 1e6:.0f} ({w / tw[w]:,.0f})" for w in args.walkers]
        for platform in args.platforms:
            sim, meta = openmm_setup(platform, pace=10**9)
            per_call, t_fill = openmm_prefill(meta, sim, centers, heights)
            v_omm = meta._totalBias.T
            dv = float(np.abs(metad.field.values() - v_omm).max())
            # Bias energy the OpenMM force applies at the start point vs cvlearn's bias there.
            group = meta._force.getForceGroup()
            e_omm = sim.context.getState(energy=True, groups={group}).getPotentialEnergy()
            e_omm = e_omm.value_in_unit(unit.kilojoules_per_mole)
            e_cl = float(metad.evaluate([START])[0])
            to = time_openmm(sim, meta, args.time_steps_openmm, args.repeats)
            row += [f"{to * 1e6:.1f}", f"{t1 / to:.0f}"]
            check_rows.append([f"{n:,}", platform, f"{per_call * 1e3:.1f}", f"{t_fill:.1f}",
                               f"{dv:.1e}", f"{abs(e_omm - e_cl):.1e}"])
        rows.append(row)
        print(" | ".join(row), flush=True)
    t_plain = time_cvlearn(cvlearn_engine(mb, None, 1, seed=0), args.time_steps, args.repeats)
    header = ["hills", "cvlearn deposit s (ms/hill)", "cvlearn µs/step, 1 walker"]
    header += [f"cvlearn µs/step, {w} walkers (walker-steps/s)" for w in args.walkers]
    for platform in args.platforms:
        header += [f"OpenMM {platform} µs/step", f"ratio cvlearn/OpenMM {platform}"]
    table = markdown_table(header, rows)
    check = markdown_table(["hills", "OpenMM platform", "ms per _addGaussian", "OpenMM pre-fill s",
                            "max abs(V_cvlearn - V_OpenMM) on grid, kJ/mol",
                            "abs bias energy difference at A, kJ/mol"], check_rows)
    plain = [f"OpenMM {q}: {time_openmm_plain(q, args.time_steps_openmm, args.repeats) * 1e6:.1f}"
             for q in args.platforms]
    note = (f"Without any bias, 1 walker, µs/step: cvlearn {t_plain * 1e6:.0f}; "
            + "; ".join(plain) + ".")
    return table, check, note


def part2(args, mb):
    exact_df = mb.exact_delta_f("A", "B")
    grid = cvlearn_metad(1).grid
    exact_on_grid = mb.exact_free_energy(grid.points).reshape(grid.shape)
    grid_fes = cl.fes.FreeEnergySurface(grid.axes, exact_on_grid, T)
    floor = fes_errors(grid_fes, mb, exact_df)
    rows, summary = [], {}
    runners = [("cvlearn", None)] + [("OpenMM", p) for p in args.platforms]
    for seed in args.seeds:
        for code, platform in runners:
            t0 = time.perf_counter()
            if code == "cvlearn":
                metad = cvlearn_metad(pace=args.pace)
                eng = cvlearn_engine(mb, metad, 1, seed=seed)
                eng.positions = torch.tensor([[START]], dtype=torch.float64)
                eng.run(args.steps, stride=args.steps)
                wall = time.perf_counter() - t0
                fes, n_hills = metad.free_energy(), metad.n_hills
            else:
                sim, meta = openmm_setup(platform, pace=args.pace, seed=seed)
                t0 = time.perf_counter()
                meta.step(sim, args.steps)
                wall = time.perf_counter() - t0
                fes, n_hills = openmm_fes(meta), args.steps // args.pace
            rmse, df, df_err = fes_errors(fes, mb, exact_df)
            label = code if platform is None else f"{code} {platform}"
            summary.setdefault(label, []).append((args.steps / wall, rmse, df, df_err))
            row = [label, seed, f"{args.steps:,}", n_hills, f"{wall:.1f}",
                   f"{args.steps / wall:,.0f}", f"{rmse:.3f}", f"{df:.2f}", f"{df_err:+.2f}"]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    header = ["code", "seed", "steps", "hills", "wall s", "steps/s", "FES RMSE (kT)",
              "ΔF A→B (kJ/mol)", "ΔF error (kT)"]
    table = markdown_table(header, rows)
    srows = []
    for label, vals in summary.items():
        v = np.array(vals)
        sd = [f" ± {s:.2f}" for s in v.std(0, ddof=1)] if len(v) > 1 else [""] * 4
        srows.append([label, len(v), f"{v[:, 0].mean():,.0f}", f"{v[:, 1].mean():.3f}{sd[1]}",
                      f"{v[:, 2].mean():.2f}{sd[2]}", f"{np.abs(v[:, 3]).mean():.2f}"])
    srows.append(["exact F on the 121 x 109 bias grid", "", "", f"{floor[0]:.3f}",
                  f"{floor[1]:.2f}", f"{abs(floor[2]):.2f}"])
    stable = markdown_table(["code", "seeds", "mean steps/s", "FES RMSE (kT), mean ± sd",
                             "ΔF A→B (kJ/mol), mean ± sd", "mean abs ΔF error (kT)"], srows)
    note = (f"Exact ΔF A→B = {exact_df:.2f} kJ/mol ({exact_df / KT:.2f} kT), kT = {KT:.4f} kJ/mol; "
            f"{args.steps:,} steps = {args.steps * DT:g} ps, pace {args.pace}.")
    return table, stable, note


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run; prints only")
    p.add_argument("--hills", type=int, nargs="+", default=[10, 100, 1000, 10_000, 100_000])
    p.add_argument("--time-steps", type=int, default=2000, help="cvlearn steps per timing (part 1)")
    p.add_argument("--time-steps-openmm", type=int, default=20_000, help="OpenMM steps per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--walkers", type=int, nargs="+", default=[64], help="batched cvlearn walkers")
    p.add_argument("--platforms", nargs="+", default=["Reference", "CPU"])
    p.add_argument("--steps", type=int, default=200_000, help="metadynamics steps per run (part 2)")
    p.add_argument("--pace", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--skip-part1", action="store_true")
    p.add_argument("--skip-part2", action="store_true")
    p.add_argument("--no-append", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.quick:
        args.hills, args.time_steps, args.time_steps_openmm, args.repeats = [10, 1000], 200, 2000, 1
        args.steps, args.seeds, args.no_append = 5000, [0], True

    mb = cl.systems.MullerBrown()
    available = {mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())}
    args.platforms = [q for q in args.platforms if q in available]
    start = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    sections = []
    if not args.skip_part1:
        print("Part 1: cost per step against deposited hills", flush=True)
        table, check, note = part1(args, mb)
        sections += ["### Cost per step against deposited hills "
                     f"({args.time_steps:,} cvlearn / {args.time_steps_openmm:,} OpenMM steps per "
                     f"timing, median of {args.repeats}, no deposition while timed)",
                     "", table, "", note, "",
                     "Pre-fill and agreement of the two biases:", "", check, ""]
    if not args.skip_part2:
        print("Part 2: accuracy after the same number of steps", flush=True)
        table, stable, note = part2(args, mb)
        sections += ["### FES accuracy after the same number of steps (1 walker, from basin A)",
                     "", note, "", stable, "", "Per run:", "", table, ""]
    body = "\n".join(sections)
    print("\n" + body)
    if not args.no_append:
        load1 = os.getloadavg()
        end = datetime.datetime.now(datetime.timezone.utc)
        threads = (mm.Platform.getPlatformByName("CPU").getPropertyDefaultValue("Threads")
                   if "CPU" in available else "-")
        extra = [f"- Date (UTC): {start:%Y-%m-%d %H:%M} to {end:%H:%M}",
                 f"- OpenMM {mm.__version__}, platforms: {', '.join(args.platforms)} "
                 f"(CPU platform threads: {threads})",
                 f"- 1-minute load average at start / end: {load0[0]:.1f} / {load1[0]:.1f}"]
        append_section("Metadynamics cost and accuracy: cvlearn vs OpenMM Metadynamics "
                       "(2-D Muller-Brown)", body, extra)


if __name__ == "__main__":
    main()
