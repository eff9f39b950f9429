"""Is c(t) reweighting of well-tempered metadynamics biased low on the test double well and the quickstart?

Why this exists
---------------
Two observations: ``tests/test_metad_runs.py``'s ``dw_run`` (1-D double well, 32 walkers sharing one bias,
6000 steps) gave Delta F = 6.93 +- 0.2 kJ/mol by c(t) reweighting over engine seeds 0-7 against the exact
7.83, and ``cvlearn quickstart`` (Muller-Brown, 8 walkers, 25000 steps) gave 9.2-11.5 against 11.41. This
script runs each setting for ``--seeds`` and ``--scales`` (run length times the default) and computes, on
the SAME frames, Delta F = F(b) - F(a) (kJ/mol, weighted frames summed per basin) with the log-weights

- ``ct``: beta (V(s, t) - c(t)), the Tiwary-Parrinello c(t) cvlearn records (``cl.fes.log_weights``);
- ``exact offset``: beta (V(s, t) - c*(t)) with c*(t) = kT log <exp(beta V_t)>_0 from the system's exact
  F along the CV: the normalisation c(t) approximates. If this is right and ``ct`` is not, the c(t)
  formula is at fault; if both are off, the frames are not distributed as exp(-beta (F - V_t)) at time t
  (the walkers lag behind a bias that grows under them), which no offset can repair;
- ``final``: beta V_final(s) (the last bias, static);
- ``bias FES``: F = -gamma / (gamma - 1) V_final summed per basin (double well only: the quickstart's
  basins are discs in (x, y), not intervals of its CV),

each with the first ``skip`` of the frames discarded, and an implementation check per run: the largest
difference between the bias recorded at each frame and the sum of the hills deposited strictly before
it, and between the recorded c(t) and c(t) recomputed from those hills by PLUMED's CALC_RCT formula
(kT log(int exp(gamma/(gamma-1) V/kT) ds / int exp(V/((gamma-1) kT)) ds) over the bias grid).

Result (8 seeds, RESULTS.md): c(t) and the exact offset give the same Delta F (per run within 0.13 kJ/mol),
the recorded bias and c(t) equal the hill sums and CALC_RCT, and the low values shrink with run length
(double well -0.90, -0.21, -0.07 kJ/mol at 1, 4, 16 times the test's run; quickstart -1.25, -0.38,
-0.03): a lag of the walkers behind the bias they fill together, not an error in c(t).

Run from the repository root (one process; 2 busy cores)::

    python benchmarks/ct_reweighting_bias.py --system dw --seeds 0-7 --scales 1,4,16
    python benchmarks/ct_reweighting_bias.py --system mb --seeds 0-7 --scales 1,4
    python benchmarks/ct_reweighting_bias.py --system dw --seeds 0-1 --scales 1 --quick   # smoke run

Prints one row per seed and run length, then the mean +- standard error over seeds, as markdown.
"""

import argparse
import tempfile
import time

import numpy as np
import torch
from _common import markdown_table

import cvlearn as cl
from cvlearn.app import quickstart as qs

ESTIMATORS = ("ct", "exact offset", "final")
CHECKED_FRAMES = 200  # frames (evenly spread) whose recorded bias is checked against the hills before them


def _gaussians(points, centers, heights, sigma):
    """Sum of hills (kJ/mol) at ``points`` (n, d): centers (m, d), heights (m,), sigma (d,)."""
    z = (points[:, None, :] - centers[None, :, :]) / sigma
    return np.exp(-0.5 * (z**2).sum(-1)) @ heights


def bias_history(metad, points):
    """V_k at ``points`` (n, d) after each deposition k of ``metad`` (rows aligned with ``metad.rct``),
    summed from the recorded hills (no grid), kJ/mol: array (depositions + 1, n), row 0 the empty bias."""
    h = metad.hills
    out = [np.zeros(len(points))]
    for step in np.asarray(metad.rct_steps[1:]):
        sel = h["step"] == step
        out.append(out[-1] + _gaussians(points, h["center"][sel], h["height"][sel], metad.sigma))
    return np.array(out)


def frame_index(metad, steps):
    """Index into ``metad.rct`` of the bias in force at each step (the last deposition strictly before)."""
    return np.clip(np.searchsorted(np.asarray(metad.rct_steps), steps, side="left") - 1, 0, None)


def checks(metad, traj, s):
    """(max |recorded bias - hills before the frame| over ``CHECKED_FRAMES`` frames, max |recorded c(t) - CALC_RCT
    from the hills|), kJ/mol.

    ``s`` (frames, walkers, d): the CV at each frame. Walls (outside the grid) are excluded from the first."""
    kT, g = metad.kT, metad.bias_factor
    V_grid = bias_history(metad, metad.grid.points)
    rct = kT * (np.logaddexp.reduce(V_grid * g / ((g - 1) * kT), axis=1)
                - np.logaddexp.reduce(V_grid / ((g - 1) * kT), axis=1))
    d_rct = float(np.abs(rct - np.asarray(metad.rct)).max())
    idx = frame_index(metad, traj.step)
    h = metad.hills
    inside = ~metad.grid.outside(s.reshape(-1, s.shape[-1])).reshape(s.shape[:2])
    d_v = 0.0
    for f in np.unique(np.linspace(0, len(traj.step) - 1, CHECKED_FRAMES).astype(int)):  # the sums cost hills x frames
        before = h["step"] < traj.step[f]
        v = _gaussians(s[f], h["center"][before], h["height"][before], metad.sigma)
        d_v = max(d_v, float(np.abs(v - traj.bias_energy[f])[inside[f]].max(initial=0.0)))
        if idx[f] and metad.rct_steps[idx[f]] >= traj.step[f]:
            raise AssertionError("a frame is paired with a deposition at or after its own step")
    return d_v, d_rct


def exact_offsets(metad, s_axis, F0):
    """c*(k) = kT log <exp(beta V_k)>_0 (kJ/mol) for each deposition k, the unbiased density exp(-beta F0)
    on the uniform 1-D CV axis ``s_axis`` (F0 in kJ/mol, inf where the CV never goes)."""
    kT = metad.kT
    V = bias_history(metad, s_axis[:, None])
    logp0 = -(F0 - F0[np.isfinite(F0)].min()) / kT
    return kT * (np.logaddexp.reduce(logp0 + V / kT, axis=1) - np.logaddexp.reduce(logp0))


def delta_f(logw, in_a, in_b, kT, skip, end=1.0):
    """F(b) - F(a) (kJ/mol) from log-weights (frames, walkers) summed per basin over the frames from the
    fraction ``skip`` to ``end`` of the run."""
    first, last = int(np.floor(skip * len(logw))), int(np.floor(end * len(logw)))
    w = np.exp(logw[first:last] - logw[first:last].max())
    return float(-kT * np.log((w * in_b[first:last]).sum() / (w * in_a[first:last]).sum()))


def double_well(seed, scale, quick):
    """The ``dw_run`` fixture of tests/test_metad_runs.py (engine seed ``seed``), ``scale`` times as long."""
    dw = cl.systems.DoubleWell(1, barrier=25.0, tilt=4.0)
    metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10.0, pace=50,
                                 grid=cl.Grid(-2.0, 2.0, 200), outside="wall")
    walkers, steps = (8, 1000) if quick else (32, 6000)
    traj = cl.Langevin(dw, timestep=0.005, friction=5.0, n_walkers=walkers, seed=seed, bias=metad,
                       compile=False).run(steps * scale, stride=25)
    x = traj.positions[:, :, 0, :1]
    axis = np.linspace(-2.5, 2.5, 5001)
    basins = dw.basins["left"], dw.basins["right"]
    extra = {"bias FES": metad.free_energy().delta_f(*basins).value}
    for skip in (0.2, 0.5):  # the test's own estimator (40-bin histogram on (-1.8, 1.8)) and its block error
        d = cl.fes.reweight(traj, dw.slow_coordinates, bias=metad, bins=40, ranges=[(-1.8, 1.8)],
                            skip=skip).delta_f(*basins)
        extra.update({f"test hist, skip {skip:g}": d.value, f"its block error, skip {skip:g}": d.error})
    return (dw, metad, traj, x, x, basins, exact_offsets(metad, axis, dw.exact_free_energy(axis[:, None])),
            dw.exact_delta_f("left", "right"), extra)


def muller_brown(seed, scale, quick):
    """The quickstart's stages 1-3 (explore, TICA CV, 8 walkers of metadynamics; ``compile`` "auto" as the
    quickstart runs it), ``scale`` times its 25000 steps."""
    mb = cl.systems.MullerBrown()
    steps = 2000 if quick else 25000 * scale
    with tempfile.TemporaryDirectory() as out:
        explore = qs._explore(out, seed, 500 if quick else 4000, False)
        cv, s = qs._learn_cv(out, mb, explore, "tica", seed)
        metad, traj = qs._metadynamics(out, mb, cv, s, seed, steps, 2 if quick else 8, 1, False, False)
    with torch.no_grad():
        s_frames = cv(torch.as_tensor(traj.positions.reshape(-1, 1, 2))).numpy().reshape(*traj.positions.shape[:2], 1)
    along = qs._exact_fes_along(mb, cv, bins=2000)
    xy = traj.positions[:, :, 0, :]
    return (mb, metad, traj, xy, s_frames, (mb.basins["A"], mb.basins["B"]),
            exact_offsets(metad, along.axes[0], along.F), mb.exact_delta_f("A", "B"), {})


def one_run(system, seed, scale, skips, windows, quick):
    """Delta F (kJ/mol) of every estimator and skip on one run, the exact value and the checks."""
    t0 = time.perf_counter()
    sysobj, metad, traj, basin_vals, s, (a, b), c_exact, exact, extra = (
        double_well if system == "dw" else muller_brown)(seed, scale, quick)
    wall = time.perf_counter() - t0
    kT = sysobj.kT()
    k = basin_vals.shape[-1]
    in_a = a.contains(basin_vals.reshape(-1, k)).reshape(basin_vals.shape[:2])
    in_b = b.contains(basin_vals.reshape(-1, k)).reshape(basin_vals.shape[:2])
    logw = {"ct": cl.fes.log_weights(traj, metad, "ct"),
            "exact offset": (traj.bias_energy - c_exact[frame_index(metad, traj.step)][:, None]) / kT,
            "final": cl.fes.log_weights(traj, metad, "final")}
    row = {"exact": exact}
    for skip in skips:
        for name in ESTIMATORS:
            row[f"{name}, skip {skip:g}"] = delta_f(logw[name], in_a, in_b, kT, skip)
    for i in range(windows):  # where in the run the error comes from: each window's frames alone
        row[f"ct, window {i + 1}/{windows}"] = delta_f(logw["ct"], in_a, in_b, kT, i / windows, (i + 1) / windows)
    # c(t) - c*(t) must be constant for c(t) to weight like the exact offset: its range after the first skip.
    late = np.asarray(metad.rct_steps) >= skips[0] * traj.step[-1]
    drift = (np.asarray(metad.rct) - c_exact)[late]
    row[f"range c - c* after {skips[0]:g}"] = float(drift.max() - drift.min())
    row.update(extra)
    d_v, d_rct = checks(metad, traj, s)
    row.update({"max|dV| frame": d_v, "max|d rct|": d_rct, "wall s": wall})
    return row


def _seeds(text):
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=("dw", "mb"), default="dw")
    ap.add_argument("--seeds", default="0-7", help="engine seeds, '0-7' or '0,3,5'")
    ap.add_argument("--scales", default="1,4", help="run lengths, multiples of the default")
    ap.add_argument("--skips", default=None, help="fractions discarded (default: 0.2,0.5 dw; 0.1,0.5 mb)")
    ap.add_argument("--windows", type=int, default=0,
                    help="also Delta F by c(t) from the frames of each of this many equal time windows alone")
    ap.add_argument("--quick", action="store_true", help="tiny runs, to check that the script works")
    args = ap.parse_args()
    torch.set_num_threads(1)
    skips = [float(x) for x in (args.skips or ("0.2,0.5" if args.system == "dw" else "0.1,0.5")).split(",")]
    for scale in (int(x) for x in args.scales.split(",")):
        rows = []
        for seed in _seeds(args.seeds):
            row = one_run(args.system, seed, scale, skips, args.windows, args.quick)
            rows.append(row)
            print(f"scale {scale} seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
        keys = list(rows[0])
        table = np.array([[r[k] for k in keys] for r in rows])
        print(f"\n{args.system}, run length x{scale}, seeds {args.seeds}: Delta F (kJ/mol) per seed\n")
        print(markdown_table(["seed", *keys], [[s, *(f"{v:.3g}" for v in r)] for s, r in
                                               zip(_seeds(args.seeds), table)]))
        n = len(rows)
        mean, se = table.mean(0), table.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(keys), np.nan)
        print(f"\nmean +- s.e. over {n} seeds\n")
        print(markdown_table(keys, [[f"{m:.2f} +- {e:.2f}" for m, e in zip(mean, se)]]), flush=True)


if __name__ == "__main__":
    main()
