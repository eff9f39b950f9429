"""Alanine dipeptide in vacuum, end to end: unbiased MD -> learned CVs -> metadynamics -> reweighted FES.

What is measured
----------------
The system is ``cvlearn.data.alanine_dipeptide_pdb()`` (ACE-ALA-NME, 22 atoms) with amber99sb-ildn,
no cutoff, bonds to hydrogen constrained, 300 K, timestep 2 fs, Langevin friction 1/ps, all through
``cl.engine.OpenMM`` on OpenMM's Reference platform (what cvlearn picks for a 22-atom molecule
on a CPU-only machine). The free energy difference of interest is
Delta F = F(phi > 0) - F(phi < 0), basins phi in (0, pi) and (-pi, 0) of the alanine phi dihedral
(phi > 0 holds C7ax/alpha_L around phi ~ +1.2 rad; phi < 0 holds C7eq and C5).

1. Unbiased MD: ``--unbiased-steps`` (default 500,000 = 1 ns), a frame every 0.2 ps, from the
   minimized PDB structure (C7eq). Reported: steps/s (the reference speed of the engine without a
   bias) and the fraction of frames with phi > 0 (0 means the molecule never left phi < 0).
2. CVs, each learned from the 45 heavy-atom distances of those frames (never from phi/psi):
   TICA (lag 1 ps, first component), DeepTICA (lag 1 ps, layers [32, 16], tanh, 1 component, seed 0,
   at most 500 epochs with early stopping) and PCA (first component), each ``.to_module(featurizer=
   distances)``: positions -> CV, whose gradient drives the bias.
   "DeepTICA-2": DeepTICA retrained (same settings) on the unbiased frames plus the frames of the
   first TICA-biased run (seed 0), unweighted: the usual second round of the Deep-TICA protocol
   (learn the slow process from data that contain it). It uses no phi/psi information.
   "phi": the phi dihedral itself (``Dihedrals(top, "phi")``), the reference CV.
3. Well-tempered metadynamics on each 1-D CV: height 1.2 kJ/mol, bias factor 10, pace 500 steps
   (1 ps). sigma = the CV's standard deviation within windows of one pace (1 ps) of the unbiased run,
   averaged over windows: the classic choice of a hill as wide as the CV's fluctuation during one
   deposition (hills resolve the basin but are not narrower than the noise); it is printed as a
   fraction of the CV's overall unbiased std. It is floored at 0.1 x the CV's std over the frames it
   was trained on, which matters only for DeepTICA-2 (see ``sigma_and_grid``). Grid: the CV's range
   over its training frames extended by twice that width on each side (the bias must be able to push
   the CV far beyond what the unbiased run saw), spacing sigma / 4, ``outside="wall"``; phi: periodic
   grid (-pi, pi], same spacing rule.
   ``bias_interval`` (MTS: the bias force every k steps with k times the weight): k = 1 and k = 2
   are timed for every CV on ``--interval-steps`` steps and reported. k = 2 is 1.3-1.8x faster, but
   3 of 16 development runs (100-1000 ps each) with k = 2 on distance-based CVs blew up (energy ->
   1e8..1e64 kJ/mol after 70-140 ps: DeepTICA-2 with sigma 0.026 and 0.036, a 2-D TICA), while the
   same set-ups with k = 1 ran through: these
   CVs weigh bond lengths and angles (heavy-atom pairs 1-2 and 1-3 apart), so their bias force has
   fast components, which r-RESPA with a 4 fs outer step does not integrate stably. So k = 2 is used
   only for phi (a torsion: its bias force varies slowly) and k = 1 for the distance-based CVs
   (``--bias-interval`` overrides). Each CV runs ``--steps`` steps for each seed of ``--seeds``.
4. For each run: Delta F by c(t) reweighting (``cl.fes.delta_f_timeseries``, method "ct", frames
   summed per basin, error = standard error over 5 contiguous blocks), its value against simulated
   time (40 points), transitions per ns between the phi cores A: phi < -0.5 and B: 0.5 < phi < 2.0
   (counted when the trajectory, having last been in one core, enters the other: the gap between
   the cores is a hysteresis so that recrossings of the barrier top are not counted), steps/s and
   its ratio to unbiased. "Time to +-1 kJ/mol": the first time after which the running estimate stays
   within 1 kJ/mol of the reference up to the end of the run ("-" if never).
   CV quality check: each learned CV evaluated on the frames of the phi-biased run, separation
   between the phi cores B and A = |mean_B - mean_A| / std_A (in units of the CV's spread in A), and
   where core B's values lie relative to the unbiased range (a CV that maps C7ax inside the range
   of C7eq/C5 values cannot be pushed there by its bias).
5. Reference: OpenMM's own ``openmm.app.Metadynamics`` on (phi, psi) (CustomTorsionForce CVs in its
   CustomCVForce, periodic, biasWidth 0.35 rad, height 1.2 kJ/mol, bias factor 6, frequency 500,
   gridWidth 90) with ``app.Simulation``, LangevinMiddleIntegrator, Reference platform, for
   ``--ref-steps`` steps. F(phi, psi) = ``getFreeEnergy()`` on its grid (OpenMM's periodic grid
   repeats its first point as its last; that copy is dropped), Delta F from Boltzmann sums over the
   grid points of each phi basin; its convergence is shown by the same number every 10% of the run
   (the spread over the last half is reported). The published anchor is ~9.5-10 kJ/mol (other
   force fields/setups), shown for orientation; the benchmark's reference is the OpenMM number.

Everything runs on one thread (``torch.set_num_threads(1)``); the machine's load average at start
and end is recorded, since other work on a shared machine slows every number here.

Run from the repository root::

    python benchmarks/alanine_dipeptide.py          # full run (~15 min on 2 idle cores), appends to RESULTS.md
    python benchmarks/alanine_dipeptide.py --quick  # smoke run (~1 min), prints only

Writes benchmarks/figures/alanine_dipeptide.png (full run) and the COLVAR/HILLS files of every run
under ``--out``. Needs OpenMM (tested with 8.6.1), mdtraj and matplotlib.
"""

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np
import torch

import cvlearn as cl
import cvlearn.data

try:
    import alanine_reference
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.alanine_dipeptide
    from benchmarks import alanine_reference
    from benchmarks._common import append_section, markdown_table

try:
    import mdtraj as md
    import openmm as mm
except ImportError as exc:  # pragma: no cover
    raise SystemExit("This benchmark needs OpenMM and mdtraj: pip install openmm mdtraj") from exc

T, DT, FRICTION = 300.0, 0.002, 1.0
KT = 0.00831446261815324 * T
STRIDE = 100  # steps between frames: 0.2 ps
LAG = 5  # frames: 1 ps
HEIGHT, GAMMA, PACE = 1.2, 10.0, 500
ANCHOR = "9.5-10"
CORE_A, CORE_B = (-np.pi, -0.5), (0.5, 2.0)  # phi cores for counting transitions (hysteresis between)
BASIN_NEG = cl.fes.Basin(lo=[-np.pi], hi=[0.0], name="phi<0")
BASIN_POS = cl.fes.Basin(lo=[0.0], hi=[np.pi], name="phi>0")
FIGURE = Path(__file__).with_name("figures") / "alanine_dipeptide.png"


# -- the pieces --------------------------------------------------------------------------------------
def topology():
    return md.load_topology(cl.data.alanine_dipeptide_pdb())


def engine(bias=None, seed=0, bias_interval=1):
    return cl.engine.OpenMM.from_pdb(cl.data.alanine_dipeptide_pdb(), bias=bias, seed=seed, minimize=True,
                                     temperature=T, timestep=DT, friction=FRICTION, bias_interval=bias_interval)


def unbiased(n_steps, seed=0):
    eng = engine(seed=seed)
    t0 = time.perf_counter()
    traj = eng.run(n_steps, stride=STRIDE)
    return traj, n_steps / (time.perf_counter() - t0)


def transitions(phi, core_a=CORE_A, core_b=CORE_B):
    """Number of committed transitions A <-> B of a phi time series (hysteresis between the cores)."""
    state, n = None, 0
    for p in phi:
        now = "A" if core_a[0] <= p < core_a[1] else "B" if core_b[0] < p < core_b[1] else None
        if now is not None:
            if state is not None and now != state:
                n += 1
            state = now
    return n


def evaluate(cv, positions):
    """CV values (frames,) of a module on positions (frames, atoms, 3) nm."""
    with torch.no_grad():
        out = cv(torch.as_tensor(np.asarray(positions, dtype=np.float64)))
    return out.double().numpy().reshape(len(positions), -1)[:, 0]


def learn_cvs(X, epochs, extra=None):
    """TICA, DeepTICA and PCA of the distance features X (frames x 45); returns (estimators, seconds)."""
    out, secs = {}, {}
    t0 = time.perf_counter()
    out["TICA"] = cl.TICA(lagtime=LAG, n_components=1).fit(X)
    secs["TICA"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["DeepTICA"] = deeptica(epochs).fit(X)
    secs["DeepTICA"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["PCA"] = cl.PCA(n_components=1).fit(X)
    secs["PCA"] = time.perf_counter() - t0
    return out, secs


def deeptica(epochs):
    return cl.DeepTICA(lagtime=LAG, layers=[32, 16], n_components=1, seed=0, max_epochs=epochs)


def sigma_and_grid(name, s, s_train=None):
    """Hill width and bias grid of a CV from its values ``s`` on the unbiased frames and ``s_train`` on
    all the frames it was trained on (default ``s``).

    sigma = max(the CV's std within 1-ps windows of the unbiased run (its fluctuation during one
    deposition), 0.1 x its std over the training frames). The first term is the classic rule; the
    floor matters only for a CV that puts two states many within-state widths apart (DeepTICA-2:
    ~80), where the classic width would need hundreds of hills to fill a basin and make the bias
    force very stiff. Grid: the training range extended by twice its width on each side.
    """
    w = PACE // STRIDE
    n = len(s) // w * w
    s_train = s if s_train is None else s_train
    sigma = max(float(s[:n].reshape(-1, w).std(axis=1).mean()), 0.1 * float(s_train.std()))
    if name == "phi":
        return sigma, cl.Grid(-np.pi, np.pi, int(np.ceil(2 * np.pi / (sigma / 4))), periodic=True)
    width = s_train.max() - s_train.min()
    lo, hi = s_train.min() - 2 * width, s_train.max() + 2 * width
    return sigma, cl.Grid(lo, hi, int(np.ceil((hi - lo) / (sigma / 4))))


def retrain(data, epochs, seeds=(0, 1, 2)):
    """DeepTICA on ``data`` (list of feature arrays), the best of ``seeds`` by the implied timescale on
    all frames. With one or two transitions in the data, early stopping on randomly held-out blocks is
    a lottery: if no held-out block contains a transition, the best validation epoch is an early one
    and the network has not learned the transition (timescale ~3 ps instead of ~100s of ps)."""
    fits = [cl.DeepTICA(lagtime=LAG, layers=[32, 16], n_components=1, seed=seed, max_epochs=epochs).fit(data)
            for seed in seeds]
    return max(fits, key=lambda e: e.timescales_[0]), [float(e.timescales_[0] * STRIDE * DT) for e in fits]


def make_metad(cv, sigma, grid):
    return cl.WellTemperedMetad(cv, sigma=sigma, height=HEIGHT, bias_factor=GAMMA, pace=PACE, grid=grid,
                                outside="wall", temperature=T)


def time_interval(cv, sigma, grid, n_steps, k):
    """Steps/s of a metadynamics run of n_steps with bias_interval k (from the minimized structure)."""
    eng = engine(make_metad(cv, sigma, grid), seed=100, bias_interval=k)
    t0 = time.perf_counter()
    eng.run(n_steps, stride=STRIDE)
    return n_steps / (time.perf_counter() - t0)


def metad_run(cv, sigma, grid, n_steps, seed, k, out_dir, label):
    """One metadynamics run: (trajectory, bias, steps/s, step at which it blew up or None). A run that
    blows up keeps the frames it recorded (the analysis uses them, and the report says so)."""
    metad = make_metad(cv, sigma, grid)
    eng = engine(metad, seed=seed, bias_interval=k)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    failed = None
    try:
        traj = eng.run(n_steps, stride=STRIDE, colvar=out_dir / f"COLVAR.{label}.{seed}",
                       hills=out_dir / f"HILLS.{label}.{seed}")
    except cl.SimulationError as exc:
        traj, failed = exc.trajectory, exc.step
        print(f"  {label} seed {seed} blew up at step {exc.step}: {str(exc)[:160]}", flush=True)
    wall = time.perf_counter() - t0
    metad.close()
    return traj, metad, (failed or n_steps) / wall, failed


def time_within(series, ref, tol=1.0):
    """First time after which the running estimate stays within ``tol`` of ``ref`` (None if never)."""
    d = series["delta_f"]
    ok = np.isfinite(d) & (np.abs(d - ref) <= tol)
    if not ok[-1]:
        return None
    bad = np.nonzero(~ok)[0]
    return float(series["time"][0 if len(bad) == 0 else bad[-1] + 1])


def reference(n_steps, seed=0, n_points=10):
    """OpenMM Metadynamics on (phi, psi): (F on its grid (phi, psi) without the repeated periodic
    point, axes, Delta F series (time ps, kJ/mol), steps/s). The set-up is alanine_reference.py's."""
    sim, meta, grid_f, axis = alanine_reference.metadynamics("vacuum", seed + 1)
    chunks = np.linspace(0, n_steps, n_points + 1).astype(int)
    series, wall = [], 0.0
    for a, b in zip(chunks[:-1], chunks[1:]):
        t0 = time.perf_counter()
        meta.step(sim, int(b - a))
        wall += time.perf_counter() - t0
        series.append((b * DT, alanine_reference.grid_delta_f(grid_f(), axis)))
    return grid_f(), axis, np.array(series), n_steps / wall


def phi_profile(F2, axis):
    """F(phi) from F(phi, psi) on a grid (kJ/mol, minimum 0)."""
    f = -KT * np.log(np.exp(-(F2 - F2.min()) / KT).sum(axis=1))
    return f - f.min()


# -- main ----------------------------------------------------------------------------------------------
def fmt(x, digits=2, none="-"):
    return none if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run (~1 min); prints only")
    p.add_argument("--unbiased-steps", type=int, default=500_000)
    p.add_argument("--steps", type=int, default=300_000, help="metadynamics steps per run (2 fs each)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--cvs", nargs="+", default=["phi", "TICA", "DeepTICA", "PCA", "DeepTICA-2"])
    p.add_argument("--epochs", type=int, default=500, help="DeepTICA max_epochs")
    p.add_argument("--interval-steps", type=int, default=10_000, help="steps per bias_interval timing")
    p.add_argument("--bias-interval", type=int, choices=[1, 2], default=None,
                   help="force one bias_interval for all CVs (default: 2 for phi, 1 for the distance-based CVs)")
    p.add_argument("--ref-steps", type=int, default=2_000_000, help="OpenMM Metadynamics reference steps")
    p.add_argument("--out", default="/tmp/cvlearn_alanine_dipeptide", help="COLVAR/HILLS directory")
    p.add_argument("--no-append", action="store_true", help="print only")
    p.add_argument("--figure", default=None, help=f"figure path (default {FIGURE.name} in benchmarks/figures; "
                   "--quick writes none unless given)")
    args = p.parse_args(argv)
    if args.quick:
        args.unbiased_steps, args.steps, args.seeds, args.epochs = 50_000, 20_000, [0], 50
        args.interval_steps, args.ref_steps, args.no_append = 2_000, 100_000, True
    if "DeepTICA-2" in args.cvs and "TICA" not in args.cvs:
        raise SystemExit("DeepTICA-2 is trained on the frames of the TICA run: keep TICA in --cvs.")
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    start, load0, t_start = datetime.datetime.now(datetime.timezone.utc), os.getloadavg(), time.perf_counter()
    top = topology()
    dist = cl.features.Distances(top, selection="heavy")
    phi_f = cl.features.Dihedrals(top, "phi")
    phipsi = cl.features.Dihedrals(top, "phi psi")

    # 1. unbiased
    unb, unb_speed = unbiased(args.unbiased_steps)
    pos0 = unb.positions[:, 0]
    phi0 = phipsi.transform(pos0)[:, 0]
    print(f"Unbiased: {args.unbiased_steps * DT / 1000:g} ns at {unb_speed:,.0f} steps/s; fraction phi > 0: "
          f"{(phi0 > 0).mean():.4f}; transitions: {transitions(phi0)}", flush=True)

    # 2. CVs from the 45 heavy-atom distances
    X = dist.transform(pos0)
    learners, train_s = learn_cvs(X, args.epochs)
    cvs = {"phi": phi_f}
    cvs.update({name: est.to_module(featurizer=dist) for name, est in learners.items()})
    dt = learners["DeepTICA"]
    print(f"Features: {X.shape[1]} distances, {X.shape[0]} frames; TICA timescale "
          f"{learners['TICA'].timescales_[0] * STRIDE * DT:.2f} ps, DeepTICA timescale "
          f"{dt.timescales_[0] * STRIDE * DT:.2f} ps ({len(dt.history_['train'])} epochs, "
          f"{train_s['DeepTICA']:.1f} s)", flush=True)
    unb_s = {name: evaluate(cv, pos0) for name, cv in cvs.items()}
    settings = {name: sigma_and_grid(name, unb_s[name]) for name in cvs}
    for name, (sigma, grid) in settings.items():
        print(f"  {name}: unbiased std {unb_s[name].std():.4f}, range [{unb_s[name].min():.3f}, "
              f"{unb_s[name].max():.3f}]; sigma {sigma:.4f} ({sigma / unb_s[name].std():.2f} std); grid "
              f"[{grid.lo[0]:.3f}, {grid.hi[0]:.3f}] with {grid.bins[0]} bins", flush=True)

    # 3a. bias_interval: k = 1 vs k = 2
    interval_rows = []
    for name in [c for c in cvs if c in args.cvs]:
        s1, s2 = (time_interval(cvs[name], *settings[name], args.interval_steps, k) for k in (1, 2))
        interval_rows.append([name, f"{s1:,.0f}", f"{s2:,.0f}", f"{s2 / s1:.2f}"])
        print(f"  bias_interval {name}: k=1 {s1:,.0f} steps/s, k=2 {s2:,.0f} steps/s", flush=True)
    interval = {name: args.bias_interval if args.bias_interval else 2 if name == "phi" else 1 for name in args.cvs}
    print(f"bias_interval: {interval}", flush=True)

    # 5. reference (before the cvlearn runs: it is needed for the time-to-1-kJ/mol column)
    F_ref, ref_axis, ref_series, ref_speed = reference(args.ref_steps)
    df_ref = float(ref_series[-1, 1])
    half = ref_series[len(ref_series) // 2:, 1]
    print(f"Reference (OpenMM Metadynamics on phi, psi, {args.ref_steps * DT / 1000:g} ns at {ref_speed:,.0f} "
          f"steps/s): Delta F = {df_ref:.2f} kJ/mol (last-half spread {half.min():.2f} .. {half.max():.2f})",
          flush=True)

    # 3b/4. metadynamics on each CV
    runs, retrain_note = {}, []
    order = [c for c in ["phi", "TICA", "DeepTICA", "PCA", "DeepTICA-2"] if c in args.cvs]
    for name in order:
        if name == "DeepTICA-2":
            biased = [dist.transform(r["traj"].positions[:, 0]) for r in runs["TICA"]]
            t0 = time.perf_counter()
            est, scales = retrain([X, *biased], args.epochs)
            train_s[name] = time.perf_counter() - t0
            cvs[name] = est.to_module(featurizer=dist)
            unb_s[name] = evaluate(cvs[name], pos0)
            settings[name] = sigma_and_grid(name, unb_s[name], est.transform(np.concatenate([X, *biased]))[:, 0])
            sigma, grid = settings[name]
            print(f"  {name}: retrained in {train_s[name]:.1f} s on {len(X)} unbiased + "
                  f"{sum(len(b) for b in biased)} TICA-biased frames (implied timescales of the network seeds: "
                  f"{', '.join(f'{t:.1f}' for t in scales)} ps; kept the longest); sigma {sigma:.4f}, grid "
                  f"[{grid.lo[0]:.3f}, {grid.hi[0]:.3f}] ({grid.bins[0]} bins)", flush=True)
            retrain_note.append("DeepTICA-2 network seeds 0, 1, 2: implied timescales "
                                f"{', '.join(f'{t:.1f}' for t in scales)} ps on all training frames; the longest "
                                "was kept.")
        runs[name] = []
        for seed in args.seeds:
            traj, metad, speed, failed = metad_run(cvs[name], *settings[name], args.steps, seed, interval[name],
                                                   out_dir, name)
            phi = phipsi.transform(traj.positions[:, 0])[:, 0]
            series = cl.fes.delta_f_timeseries(traj, phi_f, BASIN_NEG, BASIN_POS, bias=metad, method="ct",
                                               n_points=40)
            ns = (failed or args.steps) * DT / 1000
            r = {"traj": traj, "metad": metad, "speed": speed, "phi": phi, "series": series, "failed": failed,
                 "trans_per_ns": transitions(phi) / ns, "df": float(series["delta_f"][-1]),
                 "err": float(series["error"][-1]), "t_within": time_within(series, df_ref),
                 "frac_pos": float((phi > 0).mean())}
            runs[name].append(r)
            print(f"  {name} seed {seed}: {speed:,.0f} steps/s, {r['trans_per_ns']:.1f} transitions/ns, phi>0 "
                  f"fraction {r['frac_pos']:.3f}, Delta F {fmt(r['df'])} +- {fmt(r['err'])} kJ/mol", flush=True)

    # CV quality: learned CVs on the frames of the phi-biased run
    quality_rows = []
    if "phi" in runs:
        qpos = np.concatenate([r["traj"].positions[:, 0] for r in runs["phi"]])
        qphi = np.concatenate([r["phi"] for r in runs["phi"]])
        in_a = (qphi >= CORE_A[0]) & (qphi < CORE_A[1])
        in_b = (qphi > CORE_B[0]) & (qphi < CORE_B[1])
        for name in [c for c in order if c != "phi"]:
            s = evaluate(cvs[name], qpos)
            lo, hi = unb_s[name].min(), unb_s[name].max()
            if in_b.sum() >= 2:
                sep = abs(s[in_b].mean() - s[in_a].mean()) / s[in_a].std()
                outside = float(((s[in_b] < lo) | (s[in_b] > hi)).mean())
                quality_rows.append([name, f"{sep:.2f}", f"{outside:.2f}",
                                     f"[{np.percentile(s[in_b], 5):.3f}, {np.percentile(s[in_b], 95):.3f}]",
                                     f"[{lo:.3f}, {hi:.3f}]"])
            else:
                quality_rows.append([name, "-", "-", "(phi run never reached core B)", f"[{lo:.3f}, {hi:.3f}]"])

    # report
    run_rows, sum_rows = [], []
    for name in order:
        for seed, r in zip(args.seeds, runs[name]):
            sigma, grid = settings[name]
            label = name if r["failed"] is None else f"{name} (blew up at {r['failed'] * DT:g} ps)"
            run_rows.append([label, seed, f"{r['speed']:,.0f}", f"{r['speed'] / unb_speed:.3f}",
                             f"{r['trans_per_ns']:.1f}", f"{r['frac_pos']:.3f}",
                             f"{fmt(r['df'])} ± {fmt(r['err'])}", fmt(abs(r['df'] - df_ref)),
                             fmt(r["t_within"], 0)])
        rs = runs[name]
        dfs = np.array([r["df"] for r in rs])
        errs = np.array([r["err"] for r in rs])
        ok = np.isfinite(dfs)
        mean = dfs[ok].mean() if ok.all() else np.nan
        err = np.sqrt(np.sum(errs**2)) / len(rs) if ok.all() else np.nan  # NaN if any block error is
        spread = dfs.max() - dfs.min() if ok.all() and len(rs) > 1 else np.nan
        tw = [r["t_within"] for r in rs]
        tws = "-" if any(t is None for t in tw) else f"{np.mean(tw):.0f}"
        sum_rows.append([name, len(rs), f"{np.mean([r['trans_per_ns'] for r in rs]):.1f}",
                         f"{fmt(mean)} ± {fmt(err)}", fmt(spread), fmt(abs(mean - df_ref)), tws,
                         f"{np.mean([r['speed'] for r in rs]):,.0f}",
                         f"{np.mean([r['speed'] for r in rs]) / unb_speed:.3f}"])
    ns = args.steps * DT / 1000
    setup = (f"{len(args.seeds)} seed(s) x {ns:g} ns of metadynamics per CV (bias_interval "
             f"{', '.join(f'{c} {interval[c]}' for c in order)}); reference "
             f"ΔF(φ>0 − φ<0) = **{df_ref:.2f} kJ/mol** from OpenMM Metadynamics on (φ, ψ) after "
             f"{args.ref_steps * DT / 1000:g} ns ({ref_speed:,.0f} steps/s; its estimate over the last half of "
             f"the run spans {half.min():.2f} .. {half.max():.2f}); published anchor ~{ANCHOR} kJ/mol "
             f"(other setups). Unbiased: {args.unbiased_steps * DT / 1000:g} ns at {unb_speed:,.0f} steps/s, "
             f"fraction of frames with φ > 0: {(phi0 > 0).mean():.4f}. Transition cores: A φ < −0.5, "
             f"B 0.5 < φ < 2.0 rad. Time to ±1 kJ/mol: ps of simulated time, mean over seeds ('-': some "
             f"seed never settled within 1 kJ/mol of the reference).")
    cv_lines = []
    for name in [c for c in order if c in settings]:
        sigma, grid = settings[name]
        extra = f", trained in {train_s[name]:.1f} s" if name in train_s else ""
        cv_lines.append([name, f"{unb_s[name].std():.4f}", f"{sigma:.4f} ({sigma / unb_s[name].std():.2f})",
                         f"[{grid.lo[0]:.2f}, {grid.hi[0]:.2f}], {grid.bins[0]} bins{extra}"])
    body = "\n".join([
        setup, "",
        markdown_table(["CV", "seeds", "transitions / ns", "ΔF (kJ/mol) ± block error", "seed spread",
                        "|ΔF − ref|", "time to ±1 kJ/mol (ps)", "steps/s", "ratio to unbiased"], sum_rows), "",
        "Per run:", "",
        markdown_table(["CV", "seed", "steps/s", "ratio to unbiased", "transitions / ns", "fraction φ>0",
                        "ΔF (kJ/mol)", "|ΔF − ref|", "time to ±1 kJ/mol (ps)"], run_rows), "",
        "CVs (unbiased std; sigma, and as a fraction of that std; grid):", "",
        markdown_table(["CV", "unbiased std", "sigma (fraction of std)", "grid"], cv_lines), "", *retrain_note,
        "",
        f"bias_interval timing ({args.interval_steps:,} steps each, steps/s):", "",
        markdown_table(["CV", "k = 1", "k = 2", "speed-up"], interval_rows), "",
        "CV quality on the frames of the φ-biased run (separation of cores B and A in units of the CV's "
        "std in A; fraction of core-B frames outside the CV's unbiased range):", "",
        markdown_table(["CV", "separation B−A (std_A)", "B outside unbiased range", "B 5-95% range",
                        "unbiased range"], quality_rows) if quality_rows else "(no φ run)", ""])
    print("\n" + body)
    fig_path = Path(args.figure) if args.figure else None if args.quick else FIGURE
    if fig_path is not None:
        figure(runs, order, F_ref, ref_axis, df_ref, phipsi, phi_f, args.seeds, fig_path)
    if not args.no_append:
        load1 = os.getloadavg()
        end = datetime.datetime.now(datetime.timezone.utc)
        extra = [f"- Date (UTC): {start:%Y-%m-%d %H:%M} to {end:%H:%M} ({(time.perf_counter() - t_start) / 60:.1f} "
                 "min)",
                 f"- OpenMM {mm.__version__}, Reference platform; torch threads 1",
                 f"- Load average (1 / 5 / 15 min) at start: {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}; at "
                 f"end: {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f} (2 cores shared with other work)",
                 f"- Figure: `benchmarks/figures/{FIGURE.name}`"]
        append_section("Alanine dipeptide end to end: learned CVs, metadynamics, reweighted ΔF (vacuum, OpenMM)",
                       body, extra)


def figure(runs, order, F_ref, ref_axis, df_ref, phipsi, phi_f, seeds, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    # (a) FES in phi/psi from the DeepTICA run (seed 0), reweighted
    name = "DeepTICA-2" if "DeepTICA-2" in runs else "DeepTICA" if "DeepTICA" in runs else order[0]
    r = runs[name][0]
    fes2 = cl.fes.reweight(r["traj"], phipsi, bias=r["metad"], method="ct", bins=(40, 40),
                           ranges=[(-np.pi, np.pi), (-np.pi, np.pi)])
    fes2.names = ["φ", "ψ"]
    cl.plot.fes(fes2, ax=axs[0, 0], max_value=40, levels=np.arange(0, 42.5, 2.5), cv_units="rad")
    axs[0, 0].set_title(f"(a) F(φ, ψ), metadynamics on {name}, reweighted")
    # (b) the reference
    ref = cl.fes.FreeEnergySurface([ref_axis, ref_axis], F_ref, T, names=["φ", "ψ"])
    cl.plot.fes(ref, ax=axs[0, 1], max_value=40, levels=np.arange(0, 42.5, 2.5), cv_units="rad")
    axs[0, 1].set_title("(b) reference: OpenMM Metadynamics on (φ, ψ)")
    # (c) F(phi) for every CV
    ax = axs[1, 0]
    ax.plot(ref_axis, phi_profile(F_ref, ref_axis), "k--", lw=1.5, label="reference")
    for i, cname in enumerate(order):
        rr = runs[cname][0]
        f1 = cl.fes.reweight(rr["traj"], phi_f, bias=rr["metad"], method="ct", bins=60, ranges=[(-np.pi, np.pi)])
        ax.plot(f1.axes[0], f1.F, color=f"C{i}", lw=1.2, label=cname)
    ax.set_xlabel("φ (rad)")
    ax.set_ylabel("F(φ) (kJ/mol)")
    ax.set_ylim(0, 50)
    ax.set_title(f"(c) F(φ), reweighted (seed {seeds[0]})")
    ax.legend(frameon=False, fontsize=8)
    # (d) Delta F vs time
    ax = axs[1, 1]
    ax.axhspan(df_ref - 1, df_ref + 1, color="0.85", lw=0, label="reference ± 1 kJ/mol")
    ax.axhline(df_ref, color="k", ls="--", lw=1)
    for i, cname in enumerate(order):
        for j, rr in enumerate(runs[cname]):
            s = rr["series"]
            ax.plot(s["time"] / 1000, s["delta_f"], color=f"C{i}", ls="-" if j == 0 else ":", lw=1.2,
                    label=cname if j == 0 else None)
    ax.set_xlabel("simulated time (ns)")
    ax.set_ylabel("ΔF = F(φ>0) − F(φ<0) (kJ/mol)")
    ax.set_ylim(df_ref - 10, df_ref + 10)
    ax.set_title("(d) ΔF against time (solid: seed 0, dotted: other seeds)")
    ax.legend(frameon=False, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"Figure: {path}")


if __name__ == "__main__":
    main()
