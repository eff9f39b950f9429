"""c(t) reweighting of well-tempered metadynamics against the final-bias and bias-FES estimates.

Why this exists
---------------
On alanine dipeptide (phi, psi) metadynamics in OpenMM, reweighting every frame by
exp(beta [V(s, t) - c(t)]) (Tiwary & Parrinello, JPCB 119, 736 (2015)) gave Delta F = F(phi > 0) -
F(phi < 0) = 13.4 kJ/mol at 1 ns (``opes_vs_metad.py``), while the final bias and the bias-derived FES
gave 8.4-10.9 and the reference then was 9.76 kJ/mol (one 4 ns run of OpenMM's own metadynamics; the
converged reference is now ``cl.data.alanine_reference()``, from ``alanine_reference.py``).
This script separates an implementation error from a statistical one.

1. ``--parts check``: c(t) recomputed by brute force from the HILLS file (every Gaussian summed with
   its minimum-image distance on a 400 x 400 periodic grid, heights from the file divided by
   gamma / (gamma - 1)) against the ``metad.rct`` that cvlearn printed in COLVAR, and the bias printed
   for each frame against the hills deposited strictly before it. A bug in the grid integral (a
   periodic axis counted with n + 1 points), the bias factor, the temperature or the frame-bias pairing
   shows up here as a difference far above the 1e-5 kJ/mol of the grid interpolation.
2. ``--parts alanine``: ``--seeds`` runs of ``--steps`` steps (2 fs) of (phi, psi) metadynamics
   (the settings of ``opes_vs_metad.py``: sigma 0.35 rad, height 1.2 kJ/mol, bias factor 10, pace 500,
   144 x 144 periodic grid, OpenMM Reference platform), a frame every 100 steps. For each run and at
   half and all of it: Delta F by c(t) with 0, 10, 20 and 30 % of the frames discarded, and with the
   frames before the first visit of the C7ax core (0.3 < phi < 2 rad; and 100 ps more) discarded, by
   the final bias (30 % discarded) and from the bias itself (F = -gamma / (gamma - 1) V, integrated over
   each phi basin), and the time of that first visit.

Result (2 x 1 ns, see RESULTS.md): cvlearn's c(t) equals the brute-force one to 3e-9 kJ/mol and the
printed bias the hills to 1e-5 (Hermite interpolation): no implementation error. The molecule first
reaches C7ax after ~470 ps, so c(t) over all frames weights the pre-crossing half of the run as much as
the rest and gives 13-14 kJ/mol; without those frames it gives 10.2 and 10.8 (9.96 and 10.6 without 100
ps more), against 9.76 (the reference then).

3. ``--parts torus``: a periodic 2-D model with a known answer (``_torus_potential``), biased with the
   same settings by the built-in engine: Delta F by c(t) and final bias against the exact value, and the
   largest difference between the Tiwary-Parrinello c(t) and the exact offset kT log(Z_0 / Z_t) of each
   bias in the history (which the model's exact F gives).

Run from the repository root::

    python benchmarks/ct_reweighting.py --parts check --append  # ~1 min; --append: to RESULTS.md
    python benchmarks/ct_reweighting.py --parts alanine         # 2 x 1 ns: ~10 min on 2 busy cores
    python benchmarks/ct_reweighting.py --parts torus --append  # ~5 min: the periodic 2-D model
    python benchmarks/ct_reweighting.py --quick                 # smoke run, prints only
"""

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from _common import append_section, markdown_table

import cvlearn as cl
from cvlearn.io import read_plumed_table
from cvlearn.units import BOLTZMANN

REFERENCE = cl.data.alanine_reference()["delta_f_kj_mol"]  # kJ/mol: benchmarks/alanine_reference.py
TEMPERATURE, GAMMA, STRIDE, DT = 300.0, 10.0, 100, 0.002
SKIPS = (0.0, 0.1, 0.2, 0.3)
C7AX = (0.3, 2.0)  # rad: phi of the C7ax / alpha_L core (phi > 0 near +-pi is the edge of C5, not a crossing)


def _make_bias(cv):
    return cl.WellTemperedMetad(cv, sigma=0.35, height=1.2, bias_factor=GAMMA, pace=500,
                                grid=cl.Grid([-np.pi] * 2, [np.pi] * 2, [144, 144], periodic=True))


def _alanine():
    import mdtraj as md

    pdb = cl.data.alanine_dipeptide_pdb()
    return pdb, cl.features.Dihedrals(md.load_topology(pdb), "phi psi")


def run_one(seed, steps, directory):
    """One metadynamics run; writes COLVAR.<seed> and HILLS.<seed> in ``directory``; returns wall seconds."""
    torch.set_num_threads(1)
    pdb, cv = _alanine()
    bias = _make_bias(cv)
    eng = cl.engine.OpenMM.from_pdb(pdb, bias=bias, seed=seed, minimize=True)
    t0 = time.perf_counter()
    eng.run(steps, stride=STRIDE, colvar=os.path.join(directory, f"COLVAR.{seed}"),
            hills=os.path.join(directory, f"HILLS.{seed}"))
    return time.perf_counter() - t0


def _wrap(d):
    return (d + np.pi) % (2 * np.pi) - np.pi


def _hills(path):
    fields, _, rows, _ = read_plumed_table(path)
    h = np.array(rows, dtype=np.float64).reshape(-1, len(fields))
    h[:, 5] /= GAMMA / (GAMMA - 1.0)  # the file's heights are PLUMED's, scaled by gamma / (gamma - 1)
    return h


def brute_force_check(colvar, hills, n=400):
    """Largest |rct - brute-force c(t)| and |bias - brute-force V(s, t)| (kJ/mol) over the frames of a run."""
    beta = 1.0 / (BOLTZMANN * TEMPERATURE)
    col, h = cl.io.read_colvar(colvar), _hills(hills)
    axis = -np.pi + 2 * np.pi * np.arange(n) / n  # a periodic axis of n bins: n distinct points
    P, Q = np.meshgrid(axis, axis, indexing="ij")
    V, c_after = np.zeros_like(P), {}
    for t, p, q, sp, sq, height in h[:, :6]:
        V += height * np.exp(-0.5 * (_wrap(P - p) / sp) ** 2 - 0.5 * (_wrap(Q - q) / sq) ** 2)
        a, b = beta * V * GAMMA / (GAMMA - 1), beta * V / (GAMMA - 1)
        c_after[round(t, 6)] = (np.log(np.exp(a - a.max()).sum()) + a.max()
                                - np.log(np.exp(b - b.max()).sum()) - b.max()) / beta
    t_frames = np.asarray(col["time"])
    names = [k for k in col if k not in ("time",) and not k.startswith("metad.")]
    phi, psi = (np.asarray(col[k]) for k in names[:2])
    d_ct, d_v = [], []
    t_hills = np.round(h[:, 0], 6)
    for t, p, q, v, rct in zip(t_frames, phi, psi, np.asarray(col["metad.bias"]), np.asarray(col["metad.rct"])):
        before = t_hills < round(t, 6)
        if before.any():
            d_ct.append(rct - c_after[t_hills[before][-1]])
        hb = h[before]
        d_v.append(v - (hb[:, 5] * np.exp(-0.5 * (_wrap(p - hb[:, 1]) / hb[:, 3]) ** 2
                                          - 0.5 * (_wrap(q - hb[:, 2]) / hb[:, 4]) ** 2)).sum())
    return float(np.abs(d_ct).max()), float(np.abs(d_v).max()), len(d_ct)


def _bias_at(h, t_end):
    """A WellTemperedMetad holding the hills deposited before ``t_end`` (ps), with its c(t) history."""
    bias = _make_bias(_alanine()[1])
    bias.temperature, bias.timestep = TEMPERATURE, DT
    rows = h[h[:, 0] < t_end - 1e-9].copy()
    rows[:, 5] *= GAMMA / (GAMMA - 1.0)
    fields = ["time", *bias.names, *[f"sigma_{n}" for n in bias.names], "height"]
    bias._load_table("HILLS", fields, {}, rows[:, :6])
    return bias


def estimates(colvar, hills, t_end):
    """Delta F = F(phi > 0) - F(phi < 0) (kJ/mol) from the frames and hills up to ``t_end`` ps."""
    kT = BOLTZMANN * TEMPERATURE
    col, h = cl.io.read_colvar(colvar), _hills(hills)
    names = [k for k in col if k != "time" and not k.startswith("metad.")]
    t = np.asarray(col["time"])
    keep = t <= t_end + 1e-9
    t = t[keep]
    phi, psi = (np.asarray(col[k])[keep] for k in names[:2])
    v = np.asarray(col["metad.bias"])[keep]
    bias = _bias_at(h, t_end + 1e-6)
    ct = bias.c_of_t(np.rint(t / DT).astype(np.int64))
    pos = phi > 0

    def df(logw, first):
        if first >= len(logw) - 1:
            return float("nan")
        w = np.exp(logw[first:] - logw[first:].max())
        return -kT * np.log(w[pos[first:]].sum() / w[~pos[first:]].sum())

    out = {f"c(t), skip {s:.0%}": df((v - ct) / kT, int(s * len(t))) for s in SKIPS}
    core = (phi > C7AX[0]) & (phi < C7AX[1])  # C7ax / alpha_L core: the first real crossing
    first = int(np.argmax(core)) if core.any() else len(t)
    out["c(t), skip to first C7ax"] = df((v - ct) / kT, first) if core.any() else float("nan")
    out["c(t), skip to first C7ax + 100 ps"] = df((v - ct) / kT, first + int(100 / (t[1] - t[0])))
    v_final = bias.evaluate(np.column_stack([phi, psi]))
    out["final bias, skip 30%"] = df(v_final / kT, int(0.3 * len(t)))
    F = bias.free_energy()
    p = np.exp(-(F.F - F.F.min()) / kT).sum(1)  # integrate psi out (uniform periodic grid)
    phi_axis = F.axes[0] if hasattr(F, "axes") else bias.grid.axes[0]
    out["bias FES"] = -kT * np.log(p[phi_axis > 0].sum() / p[phi_axis < 0].sum())
    out["first C7ax (ps)"] = float(t[first]) if core.any() else float("nan")
    return out


def _torus_potential(x):
    """15 (1 - cos 2p) + 5 (1 - cos p) + 4 (1 - cos(q - p)) kJ/mol on the torus (p, q) = positions (rad):
    basins at p = 0 and p = pi, ~35 kJ/mol apart by a barrier, F(|p| > pi/2) - F(|p| < pi/2) ~ 10 kJ/mol."""
    p, q = x[:, 0, 0], x[:, 0, 1]
    return 15 * (1 - torch.cos(2 * p)) + 5 * (1 - torch.cos(p)) + 4 * (1 - torch.cos(q - p))


class _TorusCV(torch.nn.Module):
    names = ["p", "q"]

    def forward(self, x):
        return x[:, 0, :]


def torus(walkers, steps, seed, n=720):
    """Metadynamics with the alanine settings on the periodic 2-D model, built-in engine; returns a dict of
    Delta F (kJ/mol) by c(t) (skips), final bias, and the exact value, and the largest |c(t) - exact offset|."""
    torch.set_num_threads(1)
    system = cl.systems.FunctionSystem(_torus_potential, 1, 2, temperature=TEMPERATURE, start=[[0.0, 0.0]])
    kT = system.kT()
    axis = -np.pi + 2 * np.pi * np.arange(n) / n
    P, Q = np.meshgrid(axis, axis, indexing="ij")
    E = _torus_potential(torch.tensor(np.stack([P.ravel(), Q.ravel()], -1)[:, None])).numpy().reshape(n, n)
    bE = -(E - E.min()) / kT
    far = np.abs(P) > np.pi / 2
    exact = -kT * np.log(np.exp(bE)[far].sum() / np.exp(bE)[~far].sum())
    metad = cl.WellTemperedMetad(_TorusCV(), sigma=0.35, height=1.2, bias_factor=GAMMA, pace=100,
                                 grid=cl.Grid([-np.pi] * 2, [np.pi] * 2, [144, 144], periodic=True))
    traj = cl.Langevin(system, timestep=0.005, friction=5.0, n_walkers=walkers, seed=seed, bias=metad).run(
        steps, stride=20)
    p = _wrap(traj.positions[:, :, 0, 0])
    pos, v, ct = np.abs(p) > np.pi / 2, traj.bias_energy, metad.c_of_t(traj.step)[:, None]

    def df(logw, first):
        w = np.exp(logw[first:] - logw[first:].max())
        return -kT * np.log(w[pos[first:]].sum() / w[~pos[first:]].sum())

    out = {"exact": exact, **{f"c(t), skip {s:.0%}": df((v - ct) / kT, int(s * len(p))) for s in SKIPS + (0.5,)}}
    vf = metad.evaluate(np.stack([p, _wrap(traj.positions[:, :, 0, 1])], -1).reshape(-1, 2)).reshape(p.shape)
    out["final bias, skip 30%"] = df(vf / kT, int(0.3 * len(p)))
    # The exact offset kT log(Z_0 / Z_t) of each bias in the history, against the Tiwary-Parrinello c(t).
    h, V, worst = metad.hills, np.zeros_like(P), 0.0
    lz0 = np.log(np.exp(bE).sum())
    for i, step in enumerate(np.unique(h["step"])):
        for c, height in zip(h["center"][h["step"] == step], h["height"][h["step"] == step]):
            V += height * np.exp(-0.5 * (_wrap(P - c[0]) / 0.35) ** 2 - 0.5 * (_wrap(Q - c[1]) / 0.35) ** 2)
        a = bE - V / kT
        worst = max(worst, abs(metad.rct[i + 1] - kT * (lz0 - np.log(np.exp(a - a.max()).sum()) - a.max())))
    out["max abs(c(t) - exact offset)"] = worst
    crossed = pos.any(1)
    out["first crossing (% of run)"] = 100.0 * np.argmax(crossed) / len(p) if crossed.any() else float("nan")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="check,alanine")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--dir", default=None, help="keep the COLVAR/HILLS files here (default: a temporary folder)")
    ap.add_argument("--analyze-only", action="store_true", help="reuse the files in --dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--append", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = ap.parse_args()
    parts = args.parts.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = 20_000 if args.quick else args.steps
    directory = args.dir or tempfile.mkdtemp(prefix="ct_reweighting_")
    os.makedirs(directory, exist_ok=True)
    lines = []
    if "check" in parts:
        if not (args.analyze_only and os.path.exists(os.path.join(directory, "COLVAR.check"))):
            torch.set_num_threads(1)
            pdb, cv = _alanine()
            eng = cl.engine.OpenMM.from_pdb(pdb, bias=_make_bias(cv), seed=0, minimize=True)
            eng.run(10_000 if args.quick else 50_000, stride=500, colvar=os.path.join(directory, "COLVAR.check"),
                    hills=os.path.join(directory, "HILLS.check"))
        ct_err, v_err, n = brute_force_check(os.path.join(directory, "COLVAR.check"),
                                             os.path.join(directory, "HILLS.check"))
        lines += [f"Brute-force check ({n} frames with hills before them, a hill per ps): max |metad.rct - c(t) "
                  f"from HILLS| = {ct_err:.1e} kJ/mol, max |metad.bias - V(s, t) from HILLS| = {v_err:.1e} kJ/mol.",
                  ""]
        print(lines[-2], flush=True)
    if "alanine" in parts:
        walls = {}
        if not args.analyze_only:
            with ProcessPoolExecutor(max_workers=min(2, len(seeds))) as pool:
                walls = dict(zip(seeds, pool.map(run_one, seeds, [steps] * len(seeds), [directory] * len(seeds))))
        rows = []
        total_ps = steps * DT
        for seed in seeds:
            for t_end in (total_ps / 2, total_ps):
                e = estimates(os.path.join(directory, f"COLVAR.{seed}"), os.path.join(directory, f"HILLS.{seed}"),
                              t_end)
                rows.append([seed, f"{t_end / 1000:.2f}", *[f"{x:.2f}" for x in e.values()]])
                print(seed, t_end, e, flush=True)
        header = ["seed", "ns", *e.keys()]
        lines += [f"Alanine dipeptide (phi, psi) WT-MetaD, OpenMM Reference, {len(seeds)} runs of "
                  f"{total_ps / 1000:g} ns"
                  + (f" (wall {', '.join(f'{w:.0f}' for w in walls.values())} s)" if walls else "")
                  + f". F(phi > 0) - F(phi < 0) in kJ/mol; "
                  f"reference {REFERENCE}.", "", markdown_table(header, rows), ""]
    if "torus" in parts:
        walkers, tsteps = (2, 2000) if args.quick else (8, 25_000)
        e = torus(walkers, tsteps, 0)
        lines += [f"Periodic 2-D model (``_torus_potential``), built-in engine, {walkers} walkers x {tsteps} steps of "
                  "5 fs sharing one bias (sigma 0.35, height 1.2, bias factor 10, a hill every 100 steps), "
                  "kJ/mol:", "", markdown_table(list(e), [[f"{x:.2f}" for x in e.values()]]), ""]
        print(e, flush=True)
    if args.append:
        append_section(f"c(t) reweighting (ct_reweighting.py: {args.parts})", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
