"""Throughput of the batched Langevin (BAOAB) engine: walker-steps per second vs number of walkers.

What is measured
----------------
For each system (Muller-Brown, 2-D; HiddenDoubleWell(dim=10), a 10-D double well), each dtype
(float64, float32), each device (CPU; also CUDA when ``torch.cuda.is_available()``) and each
number of walkers (1, 10, 100, 1000, 10000; ``--quick``: 1, 100, 10000; ``--sizes`` any list), a fresh engine
``cl.Langevin(system, timestep=0.005, friction=5.0, n_walkers=N, seed=0)`` is warmed up
(``--warmup`` steps, default 20), a calibration run picks the number of steps so that the
``--repeats`` timed runs (default 5) take about ``--target`` seconds together (default 2.5 s; at
least 10 steps each), and then ``run(n_steps, stride=n_steps)`` is timed that many times (a single
frame is recorded per run: this measures integration, not trajectory storage). CUDA runs are
synchronized before and after. ``--metad`` adds rows with a well-tempered metadynamics bias on the
Muller-Brown x coordinate (height 1.5 kJ/mol x min(1, 100 / walkers), sigma 0.1 nm, bias factor 10, deposition every 100
steps by every walker, 300-bin grid), so the bias's cost (evaluation every step, deposition of
N hills at once) is measured on each device too; ``--opes`` adds rows with OPES on the same CV (barrier
20 kJ/mol, fixed sigma 0.1 nm, a kernel per walker every 100 steps).

``--compile off|on|both`` times the eager steps, the fused compiled blocks (``cl.Langevin(compile=True)``,
:mod:`cvlearn.engine._fused`), or both (rows ``eager`` and ``fused``). The seconds the first fused run
spent compiling are reported in their own column (0 when the process had compiled that configuration
already; inductor's on-disk cache shortens a later process's compilation).

The anchor: for each walker count, a plain numpy BAOAB loop (Muller-Brown, float64, no bias, the
same timestep and friction; numpy's generator for the noise) is timed best-of-N in the same process,
just before the engine rows; the table gives it (``numpy loop``) and the ratio of each row to it,
so runs on a busy machine stay comparable.

Reported: steps per timed run, the time per step (all walkers) of the best and of the median
timed run, and walker-steps per second of the best run (N x steps / best time; best-of-N as in
``timeit``, since other work on the machine can only slow a run down). torch's default intra-op
thread count is used and printed; ``--threads N`` sets it (``torch.set_num_threads``). On a
machine shared with other jobs, multi-threaded torch can be slowed down many times over (threads
wait for each other across scheduler time slices); compare at ``--threads 1`` there, and check
the load average recorded with the results.

Run from the repository root::

    python benchmarks/engine_throughput.py             # all sizes, appends to RESULTS.md
    python benchmarks/engine_throughput.py --threads 1  # single-threaded torch
    python benchmarks/engine_throughput.py --quick --no-append
    python benchmarks/engine_throughput.py --threads 1 --metad-only --compile both --sizes 1 10000

On a GPU machine the same command adds the CUDA rows.
"""

import argparse
import time

import numpy as np
import torch

import cvlearn as cl

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.engine_throughput
    from benchmarks._common import append_section, markdown_table

def _metad(system, n_walkers):
    # Every walker deposits a hill at each deposition: the height shrinks with the walker count so
    # that the bias grows at the same total rate (1.5 kJ/mol per 100 walkers per 100 steps at most).
    cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [0.0]]), cl.features.Positions(1, 2))
    return cl.WellTemperedMetad(cv, sigma=0.1, height=1.5 * min(1.0, 100 / n_walkers), bias_factor=10.0, pace=100,
                                grid=cl.Grid(-2.0, 1.5, 300), outside="wall")


SYSTEMS = {
    "Muller-Brown": lambda: cl.systems.MullerBrown(),
    "HiddenDoubleWell(dim=10)": lambda: cl.systems.HiddenDoubleWell(dim=10),
}


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed_run(engine, n_steps, device):
    _sync(device)
    t0 = time.perf_counter()
    engine.run(n_steps, stride=n_steps)
    _sync(device)
    return time.perf_counter() - t0


def _opes(system, n_walkers):
    # OPES on the same CV (barrier 20 kJ/mol, fixed sigma 0.1 nm, a kernel per walker every 100 steps).
    cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [0.0]]), cl.features.Positions(1, 2))
    return cl.OPES(cv, barrier=20.0, pace=100, sigma=0.1)


BIASES = {"none": lambda system, n: None, "metad": _metad, "opes": _opes}


def measure(system_name, device, dtype, n_walkers, warmup, target, repeats=5, bias="none", compile=False):
    """(steps per repeat, best and median seconds per repeat, seconds spent compiling, why compiling failed
    or None) for a freshly built, warmed-up engine."""
    system = SYSTEMS[system_name]()
    engine = cl.Langevin(system, timestep=0.005, friction=5.0, n_walkers=n_walkers, seed=0, device=device,
                         dtype=dtype, bias=BIASES[bias](system, n_walkers), compile=compile)
    _timed_run(engine, warmup, device)
    calib_steps = 5  # double until the calibration run takes long enough to time reliably
    while (secs := _timed_run(engine, calib_steps, device)) < 0.05 and calib_steps < 100_000:
        calib_steps *= 2
    per_step = secs / calib_steps
    n_steps = int(min(max(target / repeats / per_step, 10), 1_000_000))
    times = sorted(_timed_run(engine, n_steps, device) for _ in range(repeats))
    return n_steps, times[0], times[len(times) // 2], engine.compile_seconds, engine.compile_failure


# Muller-Brown's constants (cvlearn.systems.MullerBrown, scale 0.3 kJ/mol per original unit).
_MB = [np.array(c) for c in ((-60.0, -30.0, -51.0, 4.5), (-1.0, -1.0, -6.5, 0.7), (0.0, 0.0, 11.0, 0.6),
                             (-10.0, -10.0, -6.5, 0.7), (1.0, 0.0, -0.5, -1.0), (0.0, 0.5, 1.5, 1.0))]


def _numpy_forces(x):
    """Muller-Brown forces (n, 2) kJ/mol/nm at x (n, 2) nm, plain numpy."""
    A, a, b, c, x0, y0 = _MB
    dx, dy = x[:, :1] - x0, x[:, 1:] - y0
    t = A * np.exp(a * dx * dx + b * dx * dy + c * dy * dy)
    return np.stack([-(t * (2 * a * dx + b * dy)).sum(1), -(t * (b * dx + 2 * c * dy)).sum(1)], 1)


def numpy_anchor(n_walkers, target, repeats=5):
    """Walker-steps per second (best of ``repeats``) of a plain numpy BAOAB loop: Muller-Brown, float64,
    no bias, timestep 0.005 ps, friction 5/ps, 300 K, unit mass, numpy's generator for the noise."""
    rng = np.random.default_rng(0)
    dt, c1 = 0.005, np.exp(-5.0 * 0.005)
    noise_scale = np.sqrt((1 - c1**2) * cl.units.BOLTZMANN * 300.0)
    x = np.tile(cl.systems.MullerBrown.minima["A"], (n_walkers, 1))
    v, f = np.zeros_like(x), _numpy_forces(x)

    def steps(n):
        nonlocal x, v, f
        t0 = time.perf_counter()
        for _ in range(n):
            v = v + 0.5 * dt * f
            x = x + 0.5 * dt * v
            v = c1 * v + noise_scale * rng.standard_normal(x.shape)
            x = x + 0.5 * dt * v
            f = _numpy_forces(x)
            v = v + 0.5 * dt * f
        return time.perf_counter() - t0

    n = 5
    while (secs := steps(n)) < 0.05:
        n *= 2
    n = max(10, int(target / repeats * n / secs))
    return n_walkers * n / min(steps(n) for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only 1, 100 and 10000 walkers")
    parser.add_argument("--target", type=float, default=2.5,
                        help="seconds for all timed runs of one case together (default 2.5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up steps (default 20)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="numbers of walkers to time (default 1 10 100 1000 10000)")
    parser.add_argument("--metad", action="store_true",
                        help="also time Muller-Brown with a well-tempered metadynamics bias on x")
    parser.add_argument("--metad-only", action="store_true", help="only the metadynamics rows (implies --metad)")
    parser.add_argument("--opes", action="store_true", help="add rows with OPES on Muller-Brown's x (fixed sigma)")
    parser.add_argument("--dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"],
                        help="dtypes to time (default both)")
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off",
                        help="eager steps (off, the default), fused compiled blocks (on) or both")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    sizes = args.sizes or ([1, 100, 10000] if args.quick else [1, 10, 100, 1000, 10000])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    dtypes = {name: getattr(torch, name) for name in args.dtypes}
    print(f"torch {torch.__version__}, intra-op threads: {torch.get_num_threads()}, devices: {devices}")

    cases = ([] if args.metad_only else [(name, "none") for name in SYSTEMS])
    cases += [("Muller-Brown", "metad")] if args.metad or args.metad_only else []
    cases += [("Muller-Brown", "opes")] if args.opes else []
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    anchors = {n: numpy_anchor(n, args.target, args.repeats) for n in sizes}
    print("numpy loop (Muller-Brown, float64, no bias), walker-steps / s:",
          {n: f"{a:.3g}" for n, a in anchors.items()}, flush=True)
    header = ["system", "bias", "steps", "device", "dtype", "walkers", "steps / run", "ms / step (best)",
              "ms / step (median)", "walker-steps / s (best)", "numpy loop", "ratio", "compile s"]
    rows = []
    for system_name, bias in cases:
        for device in devices:
            for dtype_name, dtype in dtypes.items():
                for n in sizes:
                    for compile in modes:
                        steps, best, median, compile_s, failure = measure(system_name, device, dtype, n, args.warmup,
                                                                          args.target, args.repeats, bias, compile)
                        rate = n * steps / best
                        label = ("eager (compiling failed)" if failure else "fused") if compile else "eager"
                        row = [system_name, bias, label, device,
                               dtype_name, n, steps, f"{1e3 * best / steps:.3f}", f"{1e3 * median / steps:.3f}",
                               f"{rate:.3g}", f"{anchors[n]:.3g}", f"{rate / anchors[n]:.2f}",
                               f"{compile_s:.1f}" if compile else ""]
                        rows.append(row)
                        print("  ".join(str(c) for c in row), flush=True)

    table = markdown_table(header, rows)
    print()
    print(table)
    if not args.no_append:
        note = (f"Langevin BAOAB, timestep 0.005 ps, friction 5/ps, {args.warmup} warm-up steps, "
                f"best and median of {args.repeats} timed runs (about {args.target:g} s in all), one "
                f"recorded frame per run; torch intra-op threads {torch.get_num_threads()}"
                + (f" (set with --threads {args.threads})." if args.threads else " (torch default).")
                + " 'steps': eager, or fused compiled blocks. 'numpy loop': a plain numpy BAOAB loop (Muller-Brown, "
                "float64, no bias) at the same walker count, timed in the same process; 'ratio': the row's "
                "walker-steps / s over it. 'compile s': seconds the fused engine's first run spent compiling.")
        append_section("Engine throughput (walker-steps per second)", note + "\n\n" + table,
                       [f"- Compile: {args.compile}; numpy anchor included"])


if __name__ == "__main__":
    main()
