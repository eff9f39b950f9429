"""Learning from more frames than fit in memory: TICA and Deep-TICA on .npy files, against in-memory fits.

What is measured
----------------
Data: ``--frames`` frames (default 2e7) of ``--features`` float32 features (default 45), written as
``--files`` .npy files (default 20, 1e6 frames and 180 MB each: 3.6 GB) into ``--dir`` (default: a
new temporary directory; deleted at the end unless ``--keep``). Each file is an independent
trajectory: four AR(1) processes x_t = phi x_{t-1} + e_t with correlation times 1000, 200, 50 and
10 frames (phi = exp(-1/tau), started in equilibrium), mixed into all features by one random 4 x 45
matrix, plus unit white noise per feature. Generated 100,000 frames at a time (scipy's ``lfilter``
carries each AR(1) state across pieces) and written behind an .npy header, so generation stays in
low memory too. If the disk lacks room for the files (plus 10%), the frame count is scaled down
and a note printed.

Each variant runs in a fresh Python process (so that its peak resident memory is its own), after
its imports and a warm-up, with 1 torch thread and BLAS capped at 1 thread. Reported: wall time;
the process's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: everything,
the ~0.3 GB of torch and numpy included) and the part of it above the resident memory after the
imports; leading eigenvalues.

TICA (lag ``--lag`` frames, default 10; all components; kinetic-map scaling):

- ``TICA in memory, subset``: the first file (the 1e6-frame subset) loaded whole with ``np.load``
  (time of the fit only; the load is listed apart), ``cl.TICA.fit(x)``.
- ``TICA streamed, subset``: ``cl.TICA.fit(cl.features.NpyFiles([first file]))``.
- ``TICA partial_fit, subset``: ``partial_fit`` on 10,000-frame slices of the memory-mapped first
  file, ``continues=True`` after the first.
- ``TICA streamed, all files``: ``cl.TICA.fit(cl.features.NpyFiles(all files))``.

The three subset fits must give the same eigenvalues to 1e-10; the streamed time per 1e6 frames
must be within 1.5x of the in-memory fit's, and streamed peak memory under 1 GB.

Deep-TICA (``cl.DeepTICA(lagtime, layers=--layers, n_components=2, batch_size=--batch,
max_epochs=--epochs, patience=--epochs, seed=0)``, float32, Adam lr 1e-3):

- ``Deep-TICA streamed, all files``: on ``NpyFiles(all files)``: one standardization pass, then per
  epoch the shuffled training pairs through the DataLoader and the validation loss over all
  validation blocks, then the output TICA over all frames.
- ``Deep-TICA in memory, subset`` and ``Deep-TICA streamed, subset``: the same on the first file,
  loaded whole, and as ``NpyFiles([first file])``.

Per-epoch time: the interval between the ends of consecutive validation passes (training step(s)
plus validation; the first epoch counted from the end of the setup), recorded by wrapping the
validation callable that the learner hands to ``cvlearn.learners._training.train``; the median over
the epochs, divided by the frames in millions. ``setup`` is everything before the first epoch
(standardization pass, block split, tensors), ``finish`` everything after the last (the output
TICA).

Run from the repository root::

    python benchmarks/out_of_core.py            # full size (~10 min on 2 cores, 3.6 GB of disk), appends to RESULTS.md
    python benchmarks/out_of_core.py --quick --no-append    # smoke run: 2e6 frames in 4 files, 1 epoch
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.out_of_core
    from benchmarks._common import append_section, markdown_table

TAUS = (1000.0, 200.0, 50.0, 10.0)  # correlation times of the AR(1) processes, in frames
PIECE = 100_000  # frames generated and written at once
VARIANTS = ["TICA in memory, subset", "TICA streamed, subset", "TICA partial_fit, subset", "TICA streamed, all files",
            "Deep-TICA in memory, subset", "Deep-TICA streamed, subset", "Deep-TICA streamed, all files"]
MEMORY_LIMIT = 1e9  # bytes of peak resident memory allowed to the streamed variants


def write_files(directory, n_frames, n_files, n_features, seed=0):
    """Write the AR(1) data (see the module docstring) as float32 .npy files; return their paths."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    phi = np.exp(-1.0 / np.array(TAUS))
    mix = rng.normal(size=(len(TAUS), n_features))
    lengths = np.full(n_files, n_frames // n_files)
    lengths[: n_frames % n_files] += 1
    paths = []
    for i, n in enumerate(lengths):
        path = os.path.join(directory, f"features{i:03d}.npy")
        state = rng.normal(size=len(TAUS)) / np.sqrt(1 - phi**2)  # equilibrium start
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": np.dtype(np.float32).str, "fortran_order": False,
                                                      "shape": (int(n), n_features)})
            for a in range(0, n, PIECE):
                m = min(PIECE, n - a)
                noise = rng.normal(size=(m, len(TAUS)))
                latent = np.empty((m, len(TAUS)))
                for k, p in enumerate(phi):
                    latent[:, k], _ = lfilter([1.0], [1.0, -p], noise[:, k], zi=[p * state[k]])
                state = latent[-1]
                x = latent @ mix
                x += rng.normal(size=(m, n_features))
                fh.write(x.astype(np.float32).tobytes())
        paths.append(path)
    return paths


def worker(variant, paths, args):
    """Run one variant in this process; return a dict of its measurements."""
    import resource

    import torch
    from threadpoolctl import threadpool_limits

    import cvlearn as cl
    import cvlearn.learners._neural as neural

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    first = paths[0]
    n_first = len(np.load(first, mmap_mode="r"))
    n_all = sum(len(np.load(p, mmap_mode="r")) for p in paths)
    stamps = []  # ends of the validation passes: epoch boundaries

    def timed_train(modules, loss, batches, valid_loss, **kw):
        stamps.append(time.perf_counter())  # end of the setup

        def valid():
            v = valid_loss()
            stamps.append(time.perf_counter())
            return v

        return train(modules, loss, batches, valid, **kw)

    train, neural.train = neural.train, timed_train
    # Warm-up: torch's and BLAS's first calls, the lazy imports of the fit paths.
    warm = np.random.default_rng(0).normal(size=(2000, 5))
    cl.TICA(lagtime=2).fit(warm)
    cl.DeepTICA(lagtime=2, layers=[4], max_epochs=1, batch_size=500).fit(warm)
    stamps.clear()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    deep = dict(lagtime=args.lag, layers=args.layers, n_components=2, batch_size=args.batch, max_epochs=args.epochs,
                patience=args.epochs, seed=0)
    out = {"frames": n_first if "subset" in variant else n_all}
    t0 = time.perf_counter()
    if variant == "TICA in memory, subset":
        x = np.load(first)
        out["load_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        est = cl.TICA(lagtime=args.lag).fit(x)
    elif variant == "TICA streamed, subset":
        est = cl.TICA(lagtime=args.lag).fit(cl.features.NpyFiles(first, chunk=args.chunk))
    elif variant == "TICA partial_fit, subset":
        mm, est = np.load(first, mmap_mode="r"), cl.TICA(lagtime=args.lag)
        for a in range(0, len(mm), args.chunk):
            est.partial_fit(mm[a:a + args.chunk], continues=a > 0)
    elif variant == "TICA streamed, all files":
        est = cl.TICA(lagtime=args.lag).fit(cl.features.NpyFiles(paths, chunk=args.chunk))
    else:
        import warnings

        data = {"Deep-TICA in memory, subset": lambda: np.load(first),
                "Deep-TICA streamed, subset": lambda: cl.features.NpyFiles(first, chunk=args.chunk),
                "Deep-TICA streamed, all files": lambda: cl.features.NpyFiles(paths, chunk=args.chunk)}[variant]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cl.ConvergenceWarning)
            est = cl.DeepTICA(**deep).fit(data)
    end = time.perf_counter()
    out["seconds"] = end - t0
    out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["base_bytes"] = base
    out["eigenvalues"] = [float(e) for e in est.eigenvalues_]
    if stamps:
        epochs = np.diff(stamps)
        out.update(setup=stamps[0] - t0, epochs=epochs.tolist(), finish=end - stamps[-1])
    return out


def free_disk_note(directory, n_frames, n_features):
    """Frames that fit on the disk holding ``directory`` (with 10% to spare), and a note if fewer than asked."""
    need = n_frames * n_features * 4 * 1.1
    free = shutil.disk_usage(directory).free
    if free >= need:
        return n_frames, ""
    fit = int(free / (n_features * 4 * 1.1)) // 1_000_000 * 1_000_000
    return fit, (f"Only {free / 1e9:.1f} GB free in {directory}: scaled down from {n_frames:,} to {fit:,} frames "
                 f"({fit * n_features * 4 / 1e9:.2f} GB).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20_000_000, help="total frames (default 2e7)")
    parser.add_argument("--files", type=int, default=20, help=".npy files (default 20)")
    parser.add_argument("--features", type=int, default=45, help="features per frame (default 45)")
    parser.add_argument("--lag", type=int, default=10, help="lag time in frames (default 10)")
    parser.add_argument("--chunk", type=int, default=10_000, help="frames per chunk read by TICA (default 10,000)")
    parser.add_argument("--epochs", type=int, default=2, help="Deep-TICA epochs (default 2)")
    parser.add_argument("--batch", type=int, default=4096, help="Deep-TICA pairs per minibatch (default 4096)")
    parser.add_argument("--layers", type=int, nargs="+", default=[64, 32], help="hidden layers (default 64 32)")
    parser.add_argument("--dir", help="directory for the .npy files (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the .npy files")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2e6 frames in 4 files, 1 epoch")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.paths, args)))
        return
    if args.quick:
        args.frames, args.files, args.epochs = 2_000_000, 4, 1
    import torch

    torch.set_num_threads(1)  # as in the workers, so that the machine description in RESULTS.md says so

    directory = tempfile.mkdtemp(prefix="cvlearn_out_of_core_", dir=args.dir)
    try:
        frames, note = free_disk_note(directory, args.frames, args.features)
        if note:
            print(note)
        if frames < args.files * 10 * args.lag:
            raise SystemExit(f"Not enough disk space in {directory} for a meaningful run.")
        t0 = time.perf_counter()
        paths = write_files(directory, frames, args.files, args.features)
        disk = sum(os.path.getsize(p) for p in paths)
        t_write = time.perf_counter() - t0
        print(f"wrote {frames:,} x {args.features} float32 frames to {args.files} .npy files ({disk / 1e9:.2f} GB) in "
              f"{t_write:.0f} s")
        results = {}
        for variant in VARIANTS:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--lag", str(args.lag), "--chunk",
                   str(args.chunk), "--epochs", str(args.epochs), "--batch", str(args.batch), "--layers",
                   *map(str, args.layers), "--paths", *paths]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
            r = results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{variant}: {r['seconds']:.1f} s, peak RSS {r['peak_bytes'] / 1e6:.0f} MB", flush=True)
    finally:
        if args.keep:
            print(f"kept the files in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    report(results, args, frames, disk, note, t_write)


def report(results, args, frames, disk, note, t_write):
    """Print the tables and checks; append them to RESULTS.md unless --no-append."""
    mem = results["TICA in memory, subset"]
    ref = np.array(mem["eigenvalues"])
    per_mframe = {v: r["seconds"] / (r["frames"] / 1e6) for v, r in results.items()}
    rows = []
    for v in VARIANTS[:4]:
        r = results[v]
        diff = np.abs(np.array(r["eigenvalues"]) - ref).max() if "subset" in v else None
        rows.append([v, f"{r['frames']:,}", f"{r['seconds']:.2f}", f"{per_mframe[v]:.2f}",
                     f"{per_mframe[v] / per_mframe[VARIANTS[0]]:.2f}", f"{r['peak_bytes'] / 1e6:.0f}",
                     f"{(r['peak_bytes'] - r['base_bytes']) / 1e6:.0f}", "-" if diff is None else f"{diff:.1e}",
                     ", ".join(f"{e:.5f}" for e in r["eigenvalues"][:4])])
    tica_table = markdown_table(["variant", "frames", "wall time (s)", "s per 1e6 frames", "vs in memory",
                                 "peak RSS (MB)", "above imports (MB)", "max abs eigenvalue diff vs in memory",
                                 "leading eigenvalues"], rows)
    rows = []
    for v in VARIANTS[4:]:
        r = results[v]
        epoch = float(np.median(r["epochs"]))
        rows.append([v, f"{r['frames']:,}", f"{r['setup']:.1f}", f"{epoch:.1f}", f"{epoch / (r['frames'] / 1e6):.2f}",
                     f"{r['finish']:.1f}", f"{r['seconds']:.1f}", f"{r['peak_bytes'] / 1e6:.0f}",
                     f"{(r['peak_bytes'] - r['base_bytes']) / 1e6:.0f}",
                     ", ".join(f"{e:.4f}" for e in r["eigenvalues"])])
    deep_table = markdown_table(["variant", "frames", "setup (s)", "s per epoch", "s per epoch per 1e6 frames",
                                 "finish (s)", "total (s)", "peak RSS (MB)", "above imports (MB)", "eigenvalues"],
                                rows)
    streamed = [v for v in VARIANTS if "streamed" in v or "partial" in v]
    worst_diff = max(np.abs(np.array(results[v]["eigenvalues"]) - ref).max() for v in VARIANTS[1:3])
    ratio = per_mframe["TICA streamed, all files"] / per_mframe[VARIANTS[0]]
    peak = max(results[v]["peak_bytes"] for v in streamed)
    checks = [
        f"- TICA eigenvalues on the subset, in memory vs streamed vs partial_fit: max difference {worst_diff:.1e} "
        f"({'PASS' if worst_diff <= 1e-10 else 'FAIL'}: <= 1e-10).",
        f"- Streamed TICA over all files: {ratio:.2f}x the in-memory fit's time per 1e6 frames "
        f"({'PASS' if ratio <= 1.5 else 'FAIL'}: <= 1.5x; the in-memory time excludes its "
        f"{mem['load_seconds']:.1f} s np.load).",
        f"- Peak resident memory of the streamed variants: at most {peak / 1e6:.0f} MB "
        f"({'PASS' if peak < MEMORY_LIMIT else 'FAIL'}: < 1 GB), for {disk / 1e9:.2f} GB of float32 frames on disk.",
    ]
    exact = ", ".join(f"{np.exp(-args.lag / tau):.5f}" for tau in TAUS)
    body = "\n".join(([f"Note: {note}", ""] if note else []) + [
        f"{frames:,} frames x {args.features} float32 features in {args.files} .npy files ({disk / 1e9:.2f} GB; "
        f"written in {t_write:.0f} s): four AR(1) processes (correlation times {', '.join(f'{t:g}' for t in TAUS)} "
        f"frames, exp(-lag/tau) = {exact} at lag {args.lag}) mixed into every feature, plus unit white noise. The "
        f"subset is the first file ({results[VARIANTS[0]]['frames']:,} frames). Each variant in a fresh process, "
        "1 torch thread, BLAS capped at 1 thread; peak RSS is ru_maxrss (imports included), 'above imports' "
        f"subtracts the resident memory after the imports and a warm-up. NpyFiles chunk {args.chunk:,} frames.",
        "", f"TICA (lag {args.lag} frames):", "", tica_table, "",
        f"Deep-TICA: layers {args.layers}, 2 components, lag {args.lag}, batch {args.batch:,} pairs, {args.epochs} "
        "epoch(s), 20% of the blocks for validation (s per epoch: training pairs plus the validation pass; median "
        "over epochs):", "", deep_table, "", "Checks:", *checks,
    ])
    print()
    print(body)
    if not args.no_append:
        append_section("Out-of-core TICA and Deep-TICA from .npy files (out_of_core.py)", body)


if __name__ == "__main__":
    main()
