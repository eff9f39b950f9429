"""Streamed TICA from trajectory files: time and peak memory against in-memory TICA and deeptime.

What is measured
----------------
Data: alanine dipeptide in vacuum (OpenMM, amber99sb-ildn, HBonds, Langevin 500 K, 2 fs), ``--sim``
frames (default 10,000) saved every 20 fs, tiled to ``--frames`` frames (default 2,000,000) and
written as ``--files`` xtc files (default 4) in a temporary directory. Features: the 66 Cartesian
coordinates (``Positions(22, 3)``), float64, so the features of all frames take
frames x 66 x 8 bytes (1.06 GB at the default size).

Each variant runs in a fresh Python process (so peak memory is its own), after its imports, with
1 torch thread and BLAS/OpenMP capped at ``--threads`` (default 1):

- ``read + featurize only``: one pass over ``stream_features(files, Positions(22, 3), chunk=--chunk)``,
  no statistics: the floor every streamed variant pays.
- ``cvlearn streamed``: ``cl.TICA(lagtime, n_components).fit(stream)``.
- ``deeptime streamed``: deeptime's online estimator, ``TICA(...).partial_fit((x[:-lag], x[lag:]))``
  on the same blocks (``stream.blocks(overlap=lag)``: each lagged pair once), then ``fetch_model()``.
- ``cvlearn in memory``: ``load_trajectories`` + ``Positions.transform`` per file + ``TICA.fit(list)``.
- ``deeptime in memory``: the same arrays, ``deeptime TICA(...).fit(list).fetch_model()``.

Reported: wall time of the whole variant (reading included); peak resident memory during the
variant above the resident memory just before it (the kernel's VmHWM, reset at the start via
/proc/self/clear_refs, so it counts everything: mdtraj's buffers, torch, numpy, allocator slack;
differences of a few tens of MB are allocator noise); and the largest difference of the first
``--dim`` eigenvalues from ``cvlearn in memory``. All use lag ``--lag`` (default 10 frames),
epsilon 1e-6, no scaling. Linux only (/proc).

Run from the repository root::

    python benchmarks/stream_tica.py                      # full size (about 1-2 min), appends to RESULTS.md
    python benchmarks/stream_tica.py --frames 200000 --no-append   # quick look

Needs openmm and deeptime (``pip install -e .[bench]``) and about 3 GB of memory at the default size.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.stream_tica
    from benchmarks._common import append_section, markdown_table

VARIANTS = ["read + featurize only", "cvlearn streamed", "deeptime streamed", "cvlearn in memory",
            "deeptime in memory"]


def simulate(n_frames, seed=1, every=10):
    """Alanine dipeptide positions (n_frames, 22, 3) in nm, one frame every ``every`` 2-fs steps at 500 K."""
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    from cvlearn.data import alanine_dipeptide_pdb

    pdb = app.PDBFile(alanine_dipeptide_pdb())
    system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                               constraints=app.HBonds)
    integrator = mm.LangevinMiddleIntegrator(500 * u.kelvin, 1 / u.picosecond, 0.002 * u.picoseconds)
    integrator.setRandomNumberSeed(seed)
    # Reference: for 22 atoms its per-step overhead is lower than the CPU platform's
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    context.setVelocitiesToTemperature(500 * u.kelvin, seed)
    xyz = np.empty((n_frames, 22, 3), np.float32)
    for i in range(n_frames):
        integrator.step(every)
        xyz[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
    return xyz


def write_files(directory, xyz, n_frames, n_files):
    """Tile ``xyz`` to ``n_frames`` frames split over ``n_files`` xtc files; return their paths."""
    import mdtraj as md

    from cvlearn.data import alanine_dipeptide_pdb

    top = md.load_topology(alanine_dipeptide_pdb())
    lengths = np.full(n_files, n_frames // n_files)
    lengths[: n_frames % n_files] += 1
    paths = []
    for i, n in enumerate(lengths):
        start = (i * 7919) % len(xyz)  # different offsets into the simulation for each file
        idx = (start + np.arange(n)) % len(xyz)
        path = os.path.join(directory, f"ala{i}.xtc")
        md.Trajectory(xyz[idx], top).save_xtc(path)
        paths.append(path)
    return paths


def _status(field):
    """A memory field of /proc/self/status, in bytes (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss():
    """Restart the peak resident memory (VmHWM) at the current one (Linux >= 4.0); return the current one."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status("VmRSS")


def worker(variant, files, lag, dim, chunk, threads):
    """Run one variant in this process; return a dict with time, peak extra RSS and eigenvalues."""
    import torch
    from deeptime.decomposition import TICA as DeeptimeTICA
    from threadpoolctl import threadpool_limits

    import cvlearn as cl
    from cvlearn.data import alanine_dipeptide_pdb
    from cvlearn.features import Positions, load_trajectories, stream_features

    torch.set_num_threads(1)
    threadpool_limits(limits=threads)
    top, feat = alanine_dipeptide_pdb(), Positions(22, 3)

    def deeptime_estimator():
        return DeeptimeTICA(lagtime=lag, dim=dim, epsilon=1e-6, scaling=None)

    # Warm up (mdtraj's lazy import, torch's and BLAS's first calls, deeptime's online estimator) so
    # that the peak below is the variant's data, not one-off library state.
    warm = stream_features(files[0], feat, top=top, chunk=100)
    cl.TICA(lagtime=lag).fit(next(iter(next(iter(warm)))))
    deeptime_estimator().partial_fit((np.zeros((20, 66)) + np.arange(20)[:, None] % 3, np.ones((20, 66))))
    base = reset_peak_rss()
    t0 = time.perf_counter()
    eig = None
    if variant == "read + featurize only":
        n = sum(len(x) for chunks in stream_features(files, feat, top=top, chunk=chunk) for x in chunks)
    elif variant == "cvlearn streamed":
        eig = cl.TICA(lagtime=lag, n_components=dim, scaling=None).fit(
            stream_features(files, feat, top=top, chunk=chunk)).eigenvalues_
    elif variant == "deeptime streamed":
        est = deeptime_estimator()
        for blocks in stream_features(files, feat, top=top, chunk=chunk).blocks(overlap=lag):
            for x in blocks:
                if len(x) > lag:
                    est.partial_fit((x[:-lag], x[lag:]))
        eig = est.fetch_model().singular_values[:dim]
    else:
        data = [feat.transform(t.xyz) for t in load_trajectories(files, top=top)]
        if variant == "cvlearn in memory":
            eig = cl.TICA(lagtime=lag, n_components=dim, scaling=None).fit(data).eigenvalues_
        else:
            eig = deeptime_estimator().fit(data).fetch_model().singular_values[:dim]
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM") - base
    out = {"seconds": seconds, "peak_bytes": peak}
    if eig is not None:
        out["eigenvalues"] = [float(e) for e in eig]
    else:
        out["frames"] = n
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2_000_000, help="total frames (default 2e6)")
    parser.add_argument("--files", type=int, default=4, help="xtc files (default 4)")
    parser.add_argument("--sim", type=int, default=10_000, help="simulated frames, tiled (default 10,000)")
    parser.add_argument("--lag", type=int, default=10, help="lag time in frames (default 10)")
    parser.add_argument("--dim", type=int, default=10, help="components compared (default 10)")
    parser.add_argument("--chunk", type=int, default=10_000, help="frames per chunk (default 10,000)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per worker (default 1)")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.paths, args.lag, args.dim, args.chunk, args.threads)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        xyz = simulate(args.sim)
        t_sim = time.perf_counter() - t0
        t0 = time.perf_counter()
        paths = write_files(tmp, xyz, args.frames, args.files)
        t_write = time.perf_counter() - t0
        disk = sum(os.path.getsize(p) for p in paths)
        print(f"simulated {args.sim} frames in {t_sim:.1f} s; wrote {args.frames:,} frames to {args.files} xtc "
              f"files ({disk / 1e6:.0f} MB) in {t_write:.1f} s")
        results = {}
        for variant in VARIANTS:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--lag", str(args.lag),
                   "--dim", str(args.dim), "--chunk", str(args.chunk), "--threads", str(args.threads), "--paths",
                   *paths]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
            r = results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{variant}: {r['seconds']:.2f} s, peak +{r['peak_bytes'] / 1e6:.0f} MB")

    ref = np.array(results["cvlearn in memory"]["eigenvalues"])
    rows = []
    for variant in VARIANTS:
        r = results[variant]
        diff = (f"{np.abs(np.array(r['eigenvalues']) - ref).max():.1e}" if "eigenvalues" in r else "-")
        rows.append([variant, f"{r['seconds']:.2f}", f"{r['peak_bytes'] / 1e6:.0f}", diff])
    table = markdown_table(["variant", "wall time (s)", "peak extra RSS (MB)",
                            f"max abs diff of first {args.dim} eigenvalues vs cvlearn in memory"], rows)
    features_gb = args.frames * 66 * 8 / 1e9
    body = "\n".join([
        f"Alanine dipeptide (OpenMM, 500 K), {args.sim:,} simulated frames tiled to {args.frames:,} frames in "
        f"{args.files} xtc files ({disk / 1e6:.0f} MB on disk); features Positions(22, 3): 66 float64 per frame, "
        f"{features_gb:.2f} GB for all frames. Lag {args.lag} frames, {args.dim} components, chunk {args.chunk:,} "
        f"frames. Each variant in a fresh process, 1 torch thread, BLAS/OpenMP capped at {args.threads} "
        "thread(s); times include reading and featurizing; peak extra RSS is the peak resident memory (VmHWM, "
        "reset at the start) minus the resident memory just before the variant.", "",
        table, "",
        "Leading eigenvalues (cvlearn streamed): "
        + ", ".join(f"{e:.6f}" for e in results["cvlearn streamed"]["eigenvalues"][:5]),
    ])
    print()
    print(body)
    if not args.no_append:
        import deeptime
        import mdtraj

        append_section("Streamed TICA from xtc files: cvlearn vs in-memory and deeptime (stream_tica.py)", body,
                       extra_lines=[f"- deeptime {deeptime.__version__}, mdtraj {mdtraj.__version__}"])


if __name__ == "__main__":
    main()
