"""Throughput of the batched Langevin (BAOAB) engine: walker-steps per second vs number of walkers.

What is measured
----------------
For each system (Muller-Brown, 2-D; HiddenDoubleWell(dim=10), a 10-D double well), each dtype
(float64, float32), each device (CPU; also CUDA when ``torch.cuda.is_available()``) and each
number of walkers (1, 10, 100, 1000, 10000; ``--quick``: 1, 100, 10000), a fresh engine
``cl.Langevin(system, timestep=0.005, friction=5.0, n_walkers=N, seed=0)`` is warmed up
(``--warmup`` steps, default 20), a calibration run picks the number of steps so that the three
timed runs take about ``--target`` seconds together (default 1.5 s; at least 10 steps each), and
then ``run(n_steps, stride=n_steps)`` is timed three times (a single frame is recorded per run:
this measures integration, not trajectory storage). CUDA runs are synchronized before and after.

Reported: steps per timed run, the median wall time of the three runs, time per step (all
walkers) and walker-steps per second (N x steps / median time). torch's default intra-op thread
count is used and printed.

Run from the repository root::

    python benchmarks/engine_throughput.py             # all sizes, appends to RESULTS.md
    python benchmarks/engine_throughput.py --quick --no-append

On a GPU machine the same command adds the CUDA rows.
"""

import argparse
import time

import torch

import cvlearn as cl

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.engine_throughput
    from benchmarks._common import append_section, markdown_table

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


def measure(system_name, device, dtype, n_walkers, warmup, target, repeats=3):
    """(steps per repeat, median seconds per repeat) for a freshly built, warmed-up engine."""
    engine = cl.Langevin(SYSTEMS[system_name](), timestep=0.005, friction=5.0, n_walkers=n_walkers,
                         seed=0, device=device, dtype=dtype)
    _timed_run(engine, warmup, device)
    calib_steps = 5  # double until the calibration run takes long enough to time reliably
    while (secs := _timed_run(engine, calib_steps, device)) < 0.05 and calib_steps < 100_000:
        calib_steps *= 2
    per_step = secs / calib_steps
    n_steps = int(min(max(target / repeats / per_step, 10), 1_000_000))
    times = sorted(_timed_run(engine, n_steps, device) for _ in range(repeats))
    return n_steps, times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only 1, 100 and 10000 walkers")
    parser.add_argument("--target", type=float, default=1.5, help="seconds for the 3 timed runs together (default 1.5)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up steps (default 20)")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    sizes = [1, 100, 10000] if args.quick else [1, 10, 100, 1000, 10000]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    dtypes = {"float64": torch.float64, "float32": torch.float32}
    print(f"torch {torch.__version__}, intra-op threads: {torch.get_num_threads()}, devices: {devices}")

    header = ["system", "device", "dtype", "walkers", "steps", "median time (s)", "ms / step",
              "walker-steps / s"]
    rows = []
    for system_name in SYSTEMS:
        for device in devices:
            for dtype_name, dtype in dtypes.items():
                for n in sizes:
                    steps, secs = measure(system_name, device, dtype, n, args.warmup, args.target)
                    row = [system_name, device, dtype_name, n, steps, f"{secs:.2f}",
                           f"{1e3 * secs / steps:.3f}", f"{n * steps / secs:.3g}"]
                    rows.append(row)
                    print("  ".join(str(c) for c in row), flush=True)

    table = markdown_table(header, rows)
    print()
    print(table)
    if not args.no_append:
        note = (f"Langevin BAOAB, timestep 0.005 ps, friction 5/ps, {args.warmup} warm-up steps, "
                f"median of 3 timed runs (about {args.target:g} s in all), one recorded frame per "
                f"run; torch intra-op threads {torch.get_num_threads()}.")
        append_section("Engine throughput (walker-steps per second)", note + "\n\n" + table)


if __name__ == "__main__":
    main()
