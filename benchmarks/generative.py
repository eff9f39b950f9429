"""Generative CVs on alanine dipeptide: physics-aware autoencoder training, and walkers seeded by decoding.

What is measured
----------------
System and MD set-up as in ``benchmarks/alanine_dipeptide.py`` (whose helpers this script imports):
ACE-ALA-NME in vacuum, amber99sb-ildn, no cutoff, bonds to hydrogen constrained, 300 K, 2 fs,
Langevin friction 1/ps, ``cl.engine.OpenMM`` on the Reference platform. phi < 0 holds C7eq/C5,
phi > 0 holds C7ax/alpha_L; the reference Delta F = F(phi > 0) - F(phi < 0) (``cl.data.alanine_reference()``) is
OpenMM's own Metadynamics on (phi, psi) for 4 ns (RESULTS.md, alanine_dipeptide.py section).
Everything runs on one torch thread; the load average at start and end is recorded.

Part ``physics``: physics-aware training, with vs without.
  Data: one well-tempered metadynamics run on phi (cvlearn's WellTemperedMetad on
  ``Dihedrals(top, "phi")``, sigma 0.23 rad, height 1.2 kJ/mol, bias factor 10, pace 1 ps, periodic
  grid) from the minimized PDB structure (C7eq), ``--data-steps`` steps, a frame every
  ``--data-stride`` steps: frames in both basins. Features: ``AlignedPositions`` of all 22 atoms
  (fit on all atoms to the PDB structure). The first 80% of the frames train, the last 20% are held out.
  Models: ``AutoEncoder(layers=[64, 32], n_components=2, batch_size=256, max_epochs=--epochs)``
  without and with ``energy=cl.physics.ForceFieldEnergy(system)`` (energy_weight 1e-3, or each of
  ``--energy-weights``; energy_cap 1e3 kJ/mol, 64 interpolations per step); same data, same network
  seed, for each seed of ``--seeds``.
  Per model:
  - held-out reconstruction RMSD (nm; all atoms, after optimal superposition, median over the held-out frames);
  - the latent path (``cl.latent_path``, ``--path-points`` points, end points included) between the
    mean latent point of the training frames with phi < 0 and that of the frames with phi > 0,
    decoded to structures; over the path structures: median potential energy (kJ/mol, the OpenMM
    System), median bond RMS deviation from the force field's equilibrium lengths (nm) and angle RMS
    deviation (degrees), mean Ramachandran-allowed fraction (``structure_quality``);
  - "minimize-stable": the fraction of path structures that OpenMM's ``LocalEnergyMinimizer``
    (tolerance 10 kJ/mol/nm, at most ``--min-iterations`` iterations, constraints applied) moves by
    less than 1 Angstrom (0.1 nm) RMSD, all 22 atoms, after optimal superposition; and the median of
    that RMSD.
  For comparison, the median energy of the held-out MD frames is given too.
  Figure ``benchmarks/figures/generative_paths.png``: the latent space of the training frames of
  each model (seed 0) coloured by phi, with its path, and the energy along both paths.

Part ``seeding``: walkers started from C7eq vs walkers seeded by decoding.
  Bias: well-tempered metadynamics on phi (the simplest honest CV: it is the slow coordinate, so
  what is compared is only the starting points), height 1.2 kJ/mol, bias factor 10, pace 1 ps,
  sigma from the unbiased run (``sigma_and_grid`` of alanine_dipeptide.py), ``bias_interval`` 2.
  ``--walkers`` walkers share one bias through PLUMED's multiple-walkers files (``walkers_dir``,
  read every pace); this process runs them in turn, 2 ps each, so every walker sees the others'
  hills at most 2 ps late. Each walker runs ``--walker-steps`` steps; every condition spends the same
  simulated time (the relaxation of the seeds, ``relax_steps`` 500 = 1 ps per seed, is extra and is
  not counted).
  Conditions:
  - "C7eq": every walker starts from a different frame of an unbiased C7eq run (``--unbiased-steps``
    from the minimized PDB structure; all its frames have phi < 0).
  - "seeded, C7eq-only AE": the honest "nothing sampled there yet" case. A physics-aware
    autoencoder (as in part 1, with energy) is trained on the unbiased C7eq frames only; targets are
    latent points beyond the sampled cloud: along each principal axis of the training frames' latent
    points, in both directions, 1.5x the farthest frame's projection (one target per walker; 4
    walkers: +-axis 1, +-axis 2). ``cl.seed_walkers`` decodes, minimizes (500 iterations) and relaxes
    them (500 steps). Decoding there is extrapolation: the phi of the decoded and relaxed seeds is reported.
  - "seeded, two-basin AE": an upper bound, not the honest case: the physics-aware model of part 1
    (seed 0), trained on frames from both basins, seeds walkers at fractions 1/N, 2/N, ..., 1 of its
    latent path from the phi < 0 basin to the phi > 0 basin.
  Each condition runs for each seed of ``--walker-seeds`` (thermostat seeds; same targets).
  Reported per condition (mean and range over seeds): time to the first visit of any walker
  to phi > 0 (core B: 0.5 < phi < 2.0 rad) and to the first committed transition A -> B of a walker
  (core A: phi < -0.5; a walker seeded in B must reach A first), in ps of per-walker simulated time
  (multiply by the number of walkers for the total); the number of committed transitions; Delta F by
  c(t) reweighting of the pooled frames of all walkers (each frame weighted by exp((V(s,t) - c(t))/kT)
  of its own walker's copy of the shared bias, basin populations summed over frames) at 40 times,
  using all frames up to each time (skip 0) or without their first 25% (skip 0.25, the transient
  while the first basins fill; c(t) reweighting remembers where the walkers started);
  "time to +-1 kJ/mol" = the first per-walker time after which Delta F stays within 1 kJ/mol of the reference
  to the end (``time_within`` of alanine_dipeptide.py); the final Delta F, mean +- standard deviation
  over seeds. Figure ``benchmarks/figures/generative_seeding.png``: Delta F against time, both skips.

Run from the repository root::

    python benchmarks/generative.py                 # both parts, appends to RESULTS.md (13 min at load ~5 on 2 cores)
    python benchmarks/generative.py --part physics  # part 1 only
    python benchmarks/generative.py --part physics --energy-weights 1e-3 3e-4 1e-4   # part 1, weight scan
    python benchmarks/generative.py --part seeding --walker-steps 500000 --walker-seeds 0 1   # 1 ns per walker
    python benchmarks/generative.py --quick         # smoke run (~1-2 min), prints only

Needs OpenMM (tested with 8.6.1), mdtraj and matplotlib.
"""

import argparse
import datetime
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import cvlearn as cl
import cvlearn.data

try:
    import alanine_dipeptide as ala
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.generative
    from benchmarks import alanine_dipeptide as ala
    from benchmarks._common import append_section, markdown_table

try:
    import mdtraj as md
    import openmm as mm
    import openmm.app as app
    import openmm.unit as unit
except ImportError as exc:  # pragma: no cover
    raise SystemExit("This benchmark needs OpenMM and mdtraj: pip install openmm mdtraj") from exc

REF_DF = cl.data.alanine_reference()["delta_f_kj_mol"]  # kJ/mol: benchmarks/alanine_reference.py
PHI_SIGMA = 0.23  # rad: the hill width of the phi runs in alanine_dipeptide.py (data run of part 1)
CHUNK = 1000  # steps each walker runs in turn (2 ps)
SKIPS = (0.0, 0.25)  # fractions of the frames discarded as transient in the Delta F estimates
FIGURES = Path(__file__).with_name("figures")
T, DT, FRICTION, KT, STRIDE = ala.T, ala.DT, ala.FRICTION, ala.KT, ala.STRIDE
CORE_A, CORE_B = ala.CORE_A, ala.CORE_B
fmt, make_metad, sigma_and_grid, time_within, topology, transitions = (
    ala.fmt, ala.make_metad, ala.sigma_and_grid, ala.time_within, ala.topology, ala.transitions)


# -- set-up ------------------------------------------------------------------------------------------
def make_system():
    pdb = app.PDBFile(cl.data.alanine_dipeptide_pdb())
    system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                              constraints=app.HBonds)
    return system, pdb


def minimized_start(system, pdb):
    """The PDB structure after an unbiased energy minimization (nm)."""
    eng = cl.engine.OpenMM(system, pdb.getPositions(asNumpy=True), topology=pdb.topology, minimize=True,
                           temperature=T, timestep=DT, friction=FRICTION)
    return eng.positions.copy() if hasattr(eng.positions, "copy") else np.array(eng.positions)


def autoencoder(epochs, seed, energy=None, energy_weight=1e-3):
    return cl.AutoEncoder(layers=[64, 32], n_components=2, batch_size=256, max_epochs=epochs, patience=epochs,
                          seed=seed, energy=energy, energy_weight=energy_weight, energy_cap=1e3, n_interpolations=64)


def fit_quiet(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X)
    return model, time.perf_counter() - t0


def minimize_rmsd(system, structures, max_iterations):
    """RMSD (nm, all atoms, superposed) each structure moves under LocalEnergyMinimizer, and the energies after."""
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    out, energies = [], []
    for x in structures.xyz.astype(np.float64):
        context.setPositions(x)
        mm.LocalEnergyMinimizer.minimize(context, 10.0, int(max_iterations))
        state = context.getState(getPositions=True, getEnergy=True)
        out.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    after = md.Trajectory(np.array(out, dtype=np.float32), structures.topology)
    rmsd = np.array([md.rmsd(after[i], structures, frame=i)[0] for i in range(structures.n_frames)])
    return rmsd, np.array(energies)


# -- part 1: physics-aware training ------------------------------------------------------------------
def two_basin_data(system, pdb, n_steps, stride, seed=0):
    """Frames (positions nm) of a phi metadynamics run from C7eq, and their phi."""
    top = topology()
    phi_f = cl.features.Dihedrals(top, "phi")
    metad = make_metad(phi_f, PHI_SIGMA, cl.Grid(-np.pi, np.pi, int(np.ceil(2 * np.pi / (PHI_SIGMA / 4))),
                                                 periodic=True))
    eng = cl.engine.OpenMM(system, pdb.getPositions(asNumpy=True), topology=pdb.topology, bias=metad, seed=seed,
                           minimize=True, temperature=T, timestep=DT, friction=FRICTION, bias_interval=2)
    t0 = time.perf_counter()
    traj = eng.run(n_steps, stride=stride)
    metad.close()
    pos = traj.positions[:, 0]
    return pos, phi_f.transform(pos)[:, 0], time.perf_counter() - t0


def physics_part(args, system, pdb):
    top = topology()
    ref = md.load(cl.data.alanine_dipeptide_pdb())
    feat = cl.features.AlignedPositions(ref)
    pos, phi, secs = two_basin_data(system, pdb, args.data_steps, args.data_stride)
    n_train = int(0.8 * len(pos))
    X = feat.transform(pos)
    Xtr, Xte = X[:n_train], X[n_train:]
    phi_tr = phi[:n_train]
    held = md.Trajectory(pos[n_train:].astype(np.float32), top)
    md_energy = float(np.median(cl.generative.openmm_energies(system, held.xyz)))
    print(f"Data: {len(pos)} frames ({args.data_steps * DT:g} ps of phi metadynamics, {secs:.0f} s), fraction "
          f"phi>0 {np.mean(phi > 0):.3f} (train {np.mean(phi_tr > 0):.3f}, held out {np.mean(phi[n_train:] > 0):.3f})"
          f"; median energy of held-out MD frames {md_energy:.1f} kJ/mol", flush=True)
    energy = cl.physics.ForceFieldEnergy(system)
    rows, models = [], {}
    for seed in args.seeds:
        variants = [("without", None, 1e-3)] + [
            ("with energy" if k == 0 else f"with energy, weight {w:g}", energy, w)
            for k, w in enumerate(args.energy_weights)]
        for label, e, w in variants:
            ae, train_s = fit_quiet(autoencoder(args.epochs, seed, e, w), Xtr)
            recon = ae.generate(ae.transform(Xte), top)
            rec = cl.generative.structure_quality(recon, reference=held)
            path = cl.latent_path(ae, Xtr[phi_tr < 0], Xtr[phi_tr > 0], n=args.path_points, topology=top)
            q = cl.generative.structure_quality(path.structures, system=system)
            moved, e_min = minimize_rmsd(system, path.structures, args.min_iterations)
            path_phi = md.compute_phi(path.structures)[1][:, 0]
            r = {"label": label, "seed": seed, "model": ae, "path": path, "quality": q, "train_s": train_s,
                 "epochs": len(ae.history_["train"]), "recon": float(np.median(rec.rmsd)),
                 "energy": float(np.median(q.energy)), "bond": float(np.median(q.bond_rms)),
                 "angle": float(np.degrees(np.median(q.angle_rms))), "rama": float(np.mean(q.rama_allowed)),
                 "stable": float(np.mean(moved < 0.1)), "stable05": float(np.mean(moved < 0.05)),
                 "moved": float(np.median(moved)), "e_min": float(np.median(e_min)), "path_phi": path_phi}
            models[(label, seed)] = r
            rows.append(r)
            print(f"  {label:12s} seed {seed}: {r['epochs']} epochs in {train_s:.0f} s; held-out RMSD "
                  f"{r['recon']:.4f} nm; path: median E {r['energy']:.1f} kJ/mol, bond RMS {r['bond']:.4f} nm, angle "
                  f"RMS {r['angle']:.2f} deg, Rama {r['rama']:.2f}, minimize-stable {r['stable']:.2f} (median moved "
                  f"{r['moved']:.3f} nm, E after {r['e_min']:.1f}); path phi {np.degrees(path_phi[0]):.0f} -> "
                  f"{np.degrees(path_phi[-1]):.0f} deg", flush=True)
    table = markdown_table(
        ["training", "seed", "epochs (s)", "held-out RMSD (nm)", "path median E (kJ/mol)", "bond RMS (nm)",
         "angle RMS (deg)", "Rama allowed", "within 1 Å after minimization", "within 0.5 Å",
         "median RMSD moved (nm)", "median E minimized (kJ/mol)", "path φ start → end (deg)"],
        [[r["label"], r["seed"], f"{r['epochs']} ({r['train_s']:.0f})", f"{r['recon']:.4f}", f"{r['energy']:.1f}",
          f"{r['bond']:.4f}", f"{r['angle']:.2f}", f"{r['rama']:.2f}", f"{r['stable']:.2f}",
          f"{r['stable05']:.2f}", f"{r['moved']:.3f}", f"{r['e_min']:.1f}",
          f"{np.degrees(r['path_phi'][0]):.0f} → {np.degrees(r['path_phi'][-1]):.0f}"] for r in rows])
    setup = (f"Data: {len(pos)} frames, {args.data_steps * DT:g} ps of well-tempered metadynamics on φ from C7eq "
             f"(a frame every {args.data_stride * DT:g} ps); fraction with φ > 0: {np.mean(phi > 0):.3f}. "
             f"Train: first {n_train} frames; held out: last {len(pos) - n_train}. AlignedPositions of all 22 atoms; "
             f"AutoEncoder [64, 32], 2-D latent, batch 256, max_epochs {args.epochs} (patience = max_epochs, so "
             f"the best validation epoch is kept); 'with energy': ForceFieldEnergy(system), energy_weight "
             f"{args.energy_weights[0]:g} (unless stated), "
             f"energy_cap 1e3 kJ/mol, 64 interpolations per step. Path: {args.path_points} points between the mean "
             f"latent points of the training frames with φ < 0 and φ > 0. Energies from the OpenMM System "
             f"(amber99sb-ildn, vacuum); median energy of the held-out MD frames: **{md_energy:.1f} kJ/mol**. "
             f"Minimization: LocalEnergyMinimizer, tolerance 10 kJ/mol/nm, at most {args.min_iterations} iterations; "
             f"RMSD over all 22 atoms after optimal superposition.")
    return {"rows": rows, "models": models, "table": table, "setup": setup, "feat": feat, "Xtr": Xtr,
            "phi_tr": phi_tr, "md_energy": md_energy}


def save_figure(fig, path):
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"Figure: {path}")


def figure_paths(res, seed, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    for ax, label in zip(axs[:2], ("without", "with energy")):
        r = res["models"][(label, seed)]
        z = r["model"].transform(res["Xtr"])
        sc = ax.scatter(z[:, 0], z[:, 1], c=np.degrees(res["phi_tr"]), cmap="twilight", vmin=-180, vmax=180, s=4)
        ax.plot(r["path"].z[:, 0], r["path"].z[:, 1], "k.-", lw=1.5, ms=6, label="latent path")
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_title(f"({'ab'[label != 'without']}) latent space, {label} (seed {seed})")
        ax.legend(frameon=False, fontsize=8)
    fig.colorbar(sc, ax=axs[1], label="φ (deg)")
    ax = axs[2]
    for i, label in enumerate(("without", "with energy")):
        r = res["models"][(label, seed)]
        ax.plot(np.linspace(0, 1, len(r["quality"].energy)), r["quality"].energy, "o-", color=f"C{i}", ms=4,
                label=label)
    ax.axhline(res["md_energy"], color="k", ls="--", lw=1, label="median of held-out MD frames")
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xlabel("position along the path (φ<0 basin → φ>0 basin)")
    ax.set_ylabel("potential energy (kJ/mol)")
    ax.set_title("(c) energy of the decoded path structures")
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, path)


# -- part 2: seeded walkers ----------------------------------------------------------------------------
def c7eq_frames(system, start, n_steps, seed=0):
    """Unbiased MD from the minimized structure: positions (frames, atoms, 3) nm, a frame every STRIDE steps."""
    eng = cl.engine.OpenMM(system, start, topology=topology(), seed=seed, temperature=T, timestep=DT,
                           friction=FRICTION)
    return eng.run(n_steps, stride=STRIDE).positions[:, 0]


def beyond_targets(z, n, factor=1.5):
    """n latent points beyond the cloud z: +- along its principal axes, factor x the farthest projection."""
    mean = z.mean(0)
    _, vecs = np.linalg.eigh(np.cov((z - mean).T))
    axes = vecs[:, ::-1].T  # largest variance first
    out = []
    for k in range(n):
        a = axes[(k // 2) % len(axes)] * (1 if k % 2 == 0 else -1)
        out.append(mean + factor * ((z - mean) @ a).max() * a)
    return np.array(out)


def seeds_report(name, seeded, phi_f):
    dec = np.degrees(phi_f.transform(seeded.decoded.xyz.astype(np.float64))[:, 0])
    rel = np.degrees(phi_f.transform(seeded.relaxed.xyz.astype(np.float64))[:, 0])
    return [name, ", ".join(f"{p:.0f}" for p in dec), ", ".join(f"{p:.0f}" for p in rel),
            ", ".join(f"{e:.0f}" for e in seeded.energy_decoded), ", ".join(f"{e:.0f}" for e in seeded.energy_relaxed),
            f"{np.mean(rel > 0):.2f}"]


def run_walkers(system, starts, n_steps, sigma, grid, seed, workdir):
    """Walkers sharing one phi metadynamics bias (multiple-walkers files), run in turn CHUNK steps at a time.

    Returns per walker: phi (frames,), log-weights (frames,) = (V - c(t)) / kT of its own bias copy, time (ps).
    """
    phi_f = cl.features.Dihedrals(topology(), "phi")
    n = len(starts)
    biases, engines = [], []
    for w, x in enumerate(starts):
        metad = cl.WellTemperedMetad(phi_f, sigma=sigma, height=1.2, bias_factor=10.0, pace=500, grid=grid,
                                     outside="wall", temperature=T, walkers_dir=workdir, walker_id=w, n_walkers=n)
        biases.append(metad)
        engines.append(cl.engine.OpenMM(system, x, topology=topology(), bias=metad, seed=1000 * seed + w,
                                        temperature=T, timestep=DT, friction=FRICTION, bias_interval=2))
    parts = [[] for _ in range(n)]
    done = 0
    while done < n_steps:
        k = min(CHUNK, n_steps - done)
        for w, eng in enumerate(engines):
            parts[w].append(eng.run(k, stride=STRIDE))
        done += k
    out = []
    for w in range(n):
        pos = np.concatenate([p.positions[:, 0] for p in parts[w]])
        step = np.concatenate([p.step for p in parts[w]])
        vb = np.concatenate([p.bias_energy[:, 0] for p in parts[w]])
        out.append({"phi": phi_f.transform(pos)[:, 0], "logw": (vb - biases[w].c_of_t(step)) / KT,
                    "time": np.concatenate([p.time for p in parts[w]])})
        biases[w].close()
    return out


def pooled_delta_f(walkers, n_points=40, skip=0.0):
    """Delta F(phi>0 - phi<0) (kJ/mol) from all walkers' frames up to each of n_points per-walker times,
    without the first ``skip`` fraction of the frames up to that time (as ``cl.fes.delta_f_timeseries``)."""
    n = min(len(w["phi"]) for w in walkers)
    ends = np.unique(np.linspace(n // n_points, n, n_points).astype(int))
    phi = np.stack([w["phi"][:n] for w in walkers], 1)
    logw = np.stack([w["logw"][:n] for w in walkers], 1)
    out = []
    for e in ends:
        first = int(np.floor(skip * e))
        lw, ph = logw[first:e], phi[first:e]
        wts = np.exp(lw - lw.max())
        pa, pb = wts[ph < 0].sum(), wts[ph > 0].sum()
        out.append(-KT * np.log(pb / pa) if pa > 0 and pb > 0 else np.nan)
    return {"time": walkers[0]["time"][ends - 1], "delta_f": np.array(out)}


def first_times(walkers):
    """(first time any walker is in core B, first committed A -> B transition of any walker, transitions) in ps."""
    visit, cross, n_trans = None, None, 0
    for w in walkers:
        phi, t = w["phi"], w["time"]
        inb = (phi > CORE_B[0]) & (phi < CORE_B[1])
        if inb.any():
            visit = min(visit if visit is not None else np.inf, float(t[np.argmax(inb)]))
        state = None
        for p, tt in zip(phi, t):
            now = "A" if CORE_A[0] <= p < CORE_A[1] else "B" if CORE_B[0] < p < CORE_B[1] else None
            if now == "B" and state == "A":
                cross = min(cross if cross is not None else np.inf, float(tt))
                break
            if now is not None:
                state = now
        n_trans += transitions(phi)
    return visit, cross, n_trans


def seeding_part(args, system, pdb, physics):
    top = topology()
    phi_f = cl.features.Dihedrals(top, "phi")
    start = minimized_start(system, pdb)
    t0 = time.perf_counter()
    c7 = c7eq_frames(system, start, args.unbiased_steps)
    phi_c7 = phi_f.transform(c7)[:, 0]
    sigma, grid = sigma_and_grid("phi", phi_c7)
    print(f"C7eq run: {len(c7)} frames in {time.perf_counter() - t0:.0f} s, fraction phi>0 {np.mean(phi_c7 > 0):.4f};"
          f" phi sigma {sigma:.3f} rad, grid {grid.bins[0]} bins", flush=True)
    n = args.walkers
    # walkers from C7eq: frames spread over the unbiased run
    c7_starts = [c7[i] for i in np.linspace(len(c7) // 4, len(c7) - 1, n).astype(int)]
    # seeds from a physics-aware AE trained on C7eq only
    feat = cl.features.AlignedPositions(md.load(cl.data.alanine_dipeptide_pdb()))
    Xc7 = feat.transform(c7)
    ae_c7, train_s = fit_quiet(autoencoder(args.epochs, 0, cl.physics.ForceFieldEnergy(system)), Xc7)
    zc7 = ae_c7.transform(Xc7)
    targets = beyond_targets(zc7, n)
    reach = {f: np.degrees(phi_f.transform(ae_c7.generate(beyond_targets(zc7, 4, f), top).xyz.astype(np.float64)
                                           )[:, 0]) for f in (1.5, 3.0, 6.0)}
    t0 = time.perf_counter()
    seeded_c7 = cl.seed_walkers(ae_c7, targets, top, system, featurizer=feat, seed=0)
    seed_s = time.perf_counter() - t0
    conditions = {"C7eq": c7_starts, "seeded, C7eq-only AE": seeded_c7.positions}
    seed_rows = [seeds_report("C7eq-only AE", seeded_c7, phi_f)]
    if physics is not None:
        r = physics["models"][("with energy", physics["rows"][0]["seed"])]
        ae2 = r["model"]
        path = cl.latent_path(ae2, physics["Xtr"][physics["phi_tr"] < 0], physics["Xtr"][physics["phi_tr"] > 0],
                              n=n + 1)
        seeded_2 = cl.seed_walkers(ae2, path.z[1:], top, system, featurizer=physics["feat"], seed=0)
        conditions["seeded, two-basin AE"] = seeded_2.positions
        seed_rows.append(seeds_report("two-basin AE (part 1)", seeded_2, phi_f))
    reach_line = ("Extrapolation check, C7eq-only AE: φ (deg) of the structures decoded at ± principal axes 1 and 2, "
                  "at 1.5x / 3x / 6x the farthest training frame: " +
                  "; ".join(f"{f:g}x: {', '.join(f'{v:.0f}' for v in phis)}" for f, phis in reach.items()) + ".")
    print(f"C7eq-only AE trained in {train_s:.0f} s; seeding {n} walkers took {seed_s:.1f} s", flush=True)
    print(reach_line, flush=True)
    for row in seed_rows:
        print(f"  seeds from {row[0]}: phi decoded {row[1]} deg, relaxed {row[2]} deg", flush=True)
    runs = {}
    for name, starts in conditions.items():
        runs[name] = []
        for s in args.walker_seeds:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="cvlearn_gen_walkers_") as d:
                walkers = run_walkers(system, starts, args.walker_steps, sigma, grid, s, d)
            wall = time.perf_counter() - t0
            series = {k: pooled_delta_f(walkers, skip=k) for k in SKIPS}
            visit, cross, n_trans = first_times(walkers)
            r = {"series": series, "visit": visit, "cross": cross, "trans": n_trans, "wall": wall,
                 "df": {k: float(v["delta_f"][-1]) for k, v in series.items()},
                 "t_within": {k: time_within(v, REF_DF) for k, v in series.items()},
                 "frac_pos": float(np.mean(np.concatenate([w["phi"] for w in walkers]) > 0))}
            runs[name].append(r)
            print(f"  {name} seed {s}: {wall:.0f} s; first phi>0 visit {fmt(visit, 0)} ps, first A->B "
                  f"{fmt(cross, 0)} ps, {n_trans} transitions; Delta F " +
                  ", ".join(f"skip {k:g}: {fmt(r['df'][k])} kJ/mol (within 1 kJ/mol from {fmt(r['t_within'][k], 0)} "
                            "ps)" for k in SKIPS), flush=True)
    per_walker_ps = args.walker_steps * DT

    def mean_of(vals, digits=0):
        if any(v is None for v in vals):
            return f"- ({sum(v is None for v in vals)} of {len(vals)} never)"
        v = np.array(vals, dtype=float)
        return f"{v.mean():.{digits}f} ({v.min():.{digits}f}–{v.max():.{digits}f})"

    sample_rows, df_rows, run_rows = [], [], []
    for name, rs in runs.items():
        sample_rows.append([name, len(rs), mean_of([r["visit"] for r in rs]), mean_of([r["cross"] for r in rs]),
                            f"{np.mean([r['trans'] for r in rs]):.1f}", f"{np.mean([r['frac_pos'] for r in rs]):.3f}"])
        for k in SKIPS:
            dfs = np.array([r["df"][k] for r in rs])
            ok = np.isfinite(dfs)
            sd = f" ± {dfs[ok].std(ddof=1):.2f}" if ok.sum() > 1 else ""
            df_rows.append([name, f"{k:g}", mean_of([r["t_within"][k] for r in rs]),
                            f"{dfs[ok].mean():.2f}{sd}" if ok.any() else "-",
                            f"{dfs[ok].mean() - REF_DF:+.2f}" if ok.any() else "-",
                            ", ".join(fmt(d) for d in dfs)])
        for s, r in zip(args.walker_seeds, rs):
            run_rows.append([name, s, fmt(r["visit"], 0), fmt(r["cross"], 0), r["trans"], f"{r['frac_pos']:.3f}",
                             *[f"{fmt(r['df'][k])} ({fmt(r['t_within'][k], 0)})" for k in SKIPS],
                             f"{r['wall']:.0f}"])
    setup = (f"{n} walkers sharing one well-tempered metadynamics bias on φ (multiple-walkers files, read every "
             f"1 ps; walkers run in turn {CHUNK * DT:g} ps at a time), sigma {sigma:.3f} rad (from the unbiased run), "
             f"height 1.2 kJ/mol, bias factor 10, pace 1 ps, bias_interval 2; {per_walker_ps:g} ps per walker "
             f"({n * per_walker_ps:g} ps in all) per run; {len(args.walker_seeds)} thermostat seeds per condition. "
             f"C7eq starts: frames of a {args.unbiased_steps * DT:g} ps unbiased run (fraction φ > 0: "
             f"{np.mean(phi_c7 > 0):.4f}). C7eq-only AE: physics-aware AutoEncoder (as in part 1) on those "
             f"{len(c7)} frames, trained in {train_s:.0f} s; targets 1.5x beyond its latent cloud along ± each "
             f"principal axis; seed_walkers (500 minimization iterations, 500 relaxation steps) took {seed_s:.1f} s. "
             f"Two-basin AE: part 1's physics-aware model (seed 0), targets at fractions 1/{n}..1 of its φ<0 → φ>0 "
             f"latent path (an upper bound: that model has seen φ > 0). Times are per-walker simulated ps (mean "
             f"(min–max) over seeds; '-': some seed never). ΔF: c(t)-reweighted pooled frames, reference "
             f"{REF_DF} kJ/mol; skip: fraction of the frames up to each time discarded from its start (the "
             f"transient while the first basins fill), as cl.fes.delta_f_timeseries's skip.")
    body = "\n".join([
        setup, "",
        "Sampling:", "",
        markdown_table(["starts", "seeds", "first φ>0 visit (ps)", "first A→B transition (ps)",
                        "transitions per run", "fraction of frames φ>0"], sample_rows), "",
        "Free energy (final = after all frames):", "",
        markdown_table(["starts", "skip", "time to ±1 kJ/mol (ps)", "final ΔF (kJ/mol), mean ± sd over seeds",
                        "mean − ref", "final ΔF per seed"], df_rows), "",
        "Seeds (φ of each seed in degrees, decoded → relaxed; potential energies in kJ/mol):", "",
        markdown_table(["model", "φ decoded", "φ relaxed", "E decoded", "E relaxed", "fraction relaxed at φ>0"],
                       seed_rows), "", reach_line, "",
        "Per run:", "",
        markdown_table(["starts", "seed", "first φ>0 visit (ps)", "first A→B (ps)", "transitions", "fraction φ>0",
                        *[f"final ΔF, skip {k:g} (time to ±1 kJ/mol, ps)" for k in SKIPS], "wall s"], run_rows)])
    return {"runs": runs, "body": body}


def figure_seeding(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, len(SKIPS), figsize=(6.5 * len(SKIPS), 4.5), layout="constrained", sharey=True)
    for ax, k in zip(np.atleast_1d(axs), SKIPS):
        ax.axhspan(REF_DF - 1, REF_DF + 1, color="0.85", lw=0, label="reference ± 1 kJ/mol")
        ax.axhline(REF_DF, color="k", ls="--", lw=1)
        for i, (name, rs) in enumerate(res["runs"].items()):
            for j, r in enumerate(rs):
                ax.plot(r["series"][k]["time"], r["series"][k]["delta_f"], color=f"C{i}", lw=1.2, alpha=0.8,
                        label=name if j == 0 else None)
        ax.set_xlabel("simulated time per walker (ps)")
        ax.set_ylabel("ΔF = F(φ>0) − F(φ<0) (kJ/mol)")
        ax.set_ylim(REF_DF - 12, REF_DF + 12)
        ax.set_title(f"pooled c(t)-reweighted ΔF, skip {k:g} (one line per seed)")
        ax.legend(frameon=False, fontsize=8)
    save_figure(fig, path)


# -- main ----------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["physics", "seeding", "all"], default="all")
    p.add_argument("--quick", action="store_true", help="smoke run (~1-2 min); prints only")
    p.add_argument("--data-steps", type=int, default=500_000, help="phi metadynamics steps for the part-1 data")
    p.add_argument("--data-stride", type=int, default=250, help="steps between part-1 frames")
    p.add_argument("--epochs", type=int, default=300, help="AutoEncoder max_epochs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="network seeds (part 1)")
    p.add_argument("--energy-weights", type=float, nargs="+", default=[1e-3],
                   help="energy_weight values of the physics-aware models (part 1; the first also seeds part 2)")
    p.add_argument("--path-points", type=int, default=20)
    p.add_argument("--min-iterations", type=int, default=300, help="LocalEnergyMinimizer maxIterations")
    p.add_argument("--unbiased-steps", type=int, default=100_000, help="unbiased C7eq steps (part 2)")
    p.add_argument("--walkers", type=int, default=4)
    p.add_argument("--walker-steps", type=int, default=125_000, help="steps per walker per run (part 2)")
    p.add_argument("--walker-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--no-append", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.quick:
        args.data_steps, args.data_stride, args.epochs, args.seeds = 150_000, 250, 20, [0]
        args.path_points, args.min_iterations, args.unbiased_steps = 8, 100, 20_000
        args.walkers, args.walker_steps, args.walker_seeds, args.no_append = 2, 25_000, [0], True
    torch.set_num_threads(1)
    start, load0, t_start = datetime.datetime.now(datetime.timezone.utc), os.getloadavg(), time.perf_counter()
    system, pdb = make_system()
    physics = seeding = None
    if args.part in ("physics", "all"):
        physics = physics_part(args, system, pdb)
        print("\n" + physics["setup"] + "\n\n" + physics["table"] + "\n", flush=True)
        if not args.quick:
            figure_paths(physics, args.seeds[0], FIGURES / "generative_paths.png")
    if args.part in ("seeding", "all"):
        if physics is None:  # the two-basin model of part 1 (first seed only)
            quiet = argparse.Namespace(**{**vars(args), "seeds": args.seeds[:1]})
            physics = physics_part(quiet, system, pdb)
        seeding = seeding_part(args, system, pdb, physics)
        print("\n" + seeding["body"] + "\n", flush=True)
        if not args.quick:
            figure_seeding(seeding, FIGURES / "generative_seeding.png")
    if args.no_append:
        return {"physics": physics, "seeding": seeding}
    load1 = os.getloadavg()
    end = datetime.datetime.now(datetime.timezone.utc)
    extra = [f"- Date (UTC): {start:%Y-%m-%d %H:%M} to {end:%H:%M} ({(time.perf_counter() - t_start) / 60:.1f} min)",
             f"- OpenMM {mm.__version__}, Reference platform; torch threads 1",
             f"- Load average (1 / 5 / 15 min) at start: {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}; at end: "
             f"{load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f} (2 cores shared with other work)"]
    parts = []
    if args.part in ("physics", "all"):
        parts += ["### Physics-aware training, with vs without", "", physics["setup"], "", physics["table"], "",
                  "Figure: `benchmarks/figures/generative_paths.png`", ""]
    if seeding is not None:
        parts += ["### Seeded walkers vs walkers from C7eq", "", seeding["body"], "",
                  "Figure: `benchmarks/figures/generative_seeding.png`", ""]
    append_section(f"Generative CVs on alanine dipeptide (generative.py: {args.part})", "\n".join(parts), extra)
    return {"physics": physics, "seeding": seeding}


if __name__ == "__main__":
    main()
