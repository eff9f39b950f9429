"""Multiple walkers: throughput on Dask worker processes, the cost of reading k walkers' files, and of the bias.

Three measurements, appended to RESULTS.md:

1. Total walker-steps/s of 4 Muller-Brown walkers (metadynamics on a TICA CV, ``cvlearn walkers``'
   setup) run as 4 Dask tasks on a LocalCluster of 1, 2 and 4 worker processes (one thread each),
   with the same 4 walkers batched in one engine as the reference. Cluster start-up is excluded
   (a warm-up run imports everything first); the launch, file I/O and merging are included.
2. One read of k walkers' HILLS files (k = 1 to 1000 small files made here): when no file grew
   (one ``stat`` each), when each file got one new hill, and the first read (10 hills each);
   file I/O alone and with the hills added to the grid (``WellTemperedMetad.read_walkers``).
3. The bias as hills accumulate (grid): adding a batch of 100 hills and one force evaluation,
   after 1e2 to 1e5 hills. Flat, because hills are summed on the grid.
4. Accuracy (the longer version of tests/test_walkers_dask.py): the same walkers in separate
   processes vs batched in one engine, F(B) - F(A) along the CV and the FES RMSE against the exact ones.

Run from the repository root: ``python benchmarks/walkers_scaling.py`` (about 15 minutes on 2 cores).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import append_section, markdown_table  # noqa: E402

import cvlearn as cl  # noqa: E402
from cvlearn.app import DemoWalkers  # noqa: E402
from cvlearn.bias._walkers import fsync_path  # noqa: E402


def throughput(demo, steps, workers_list, n_walkers=4, read_stride=500):
    import distributed

    rows = []
    engine = demo.engine(n_walkers=n_walkers, seed=1)
    engine.run(200, stride=100)  # warm-up
    t0 = time.perf_counter()
    engine.run(steps, stride=100)
    wall = time.perf_counter() - t0
    rows.append([f"{n_walkers} walkers batched in 1 process (reference)", "-", f"{wall:.1f}",
                 f"{n_walkers * steps / wall:.0f}", "-"])
    for n_workers in workers_list:
        with tempfile.TemporaryDirectory() as tmp, \
                distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            cl.walkers.run(demo, n_walkers, read_stride, os.path.join(tmp, "warm"), client=client,
                           read_stride=read_stride, progress=False)
            result = cl.walkers.run(demo, n_walkers, steps, os.path.join(tmp, "run"), client=client,
                                    read_stride=read_stride, progress=False)
            per_walker = statistics.median(w.wall_time_s for w in result.walkers)
            rows.append([f"{n_walkers} Dask tasks", n_workers, f"{result.wall_time_s:.1f}",
                         f"{result.walker_steps_per_s:.0f}", f"{steps / per_walker:.0f}"])
    return rows


def accuracy(demo, n_walkers, steps, seeds):
    import distributed

    rows = []
    exact_df = demo.exact_fes(bins=400).delta_f(*demo.basins()).value
    with tempfile.TemporaryDirectory() as tmp, \
            distributed.LocalCluster(n_workers=n_walkers, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for seed in seeds:
            procs = cl.walkers.run(demo, n_walkers, steps, os.path.join(tmp, str(seed)), client=client,
                                   read_stride=500, seed=seed, progress=False)
            engine = demo.engine(n_walkers=n_walkers, seed=seed)
            engine.run(steps, stride=100)
            at = np.linspace(0.6, 1.0, 5) * steps * engine.timestep
            for label, hills, fes in ((f"{n_walkers} processes", procs.hills, procs.fes),
                                      ("batched, 1 process", engine.biases[0].hills, engine.biases[0].free_energy())):
                d = demo.delta_f(hills, at)
                rows.append([seed, label, f"{d[-1]:.2f} ± {d.std(ddof=1):.2f}", f"{exact_df:.2f}",
                             f"{abs(d[-1] - exact_df) / demo.system().kT():.2f}", f"{demo.fes_rmse(fes):.2f}"])
    return rows


def make_walker_files(directory, k, hills_each=10):
    head = "#! FIELDS time x0 sigma_x0 height biasf\n#! SET multivariate false\n#! SET kerneltype gaussian\n"
    rng = np.random.default_rng(0)
    for j in range(k):
        rows = np.column_stack([np.arange(1, hills_each + 1) * 0.5, rng.uniform(-1.5, 1.5, hills_each),
                                np.full(hills_each, 0.1), np.full(hills_each, 1.1), np.full(hills_each, 10.0)])
        with open(os.path.join(directory, f"HILLS.{j}"), "w") as fh:
            fh.write(head + "".join(" ".join(f"{v:.17g}" for v in r) + "\n" for r in rows))


def append_one_hill(directory, k):
    for j in range(k):
        with open(os.path.join(directory, f"HILLS.{j}"), "a") as fh:
            fh.write("6 0.25 0.1 1.0 10\n")


def reader(directory, k):
    return cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10.0, pace=100,
                                grid=cl.Grid(-2.0, 2.0, 200), temperature=300.0, walkers_dir=directory, walker_id=k,
                                n_walkers=k + 1)


def read_costs(ks, repeats):
    rows = []
    for k in ks:
        best = {}
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                make_walker_files(tmp, k)
                metad = reader(tmp, k)
                files = metad.walker_files
                t0 = time.perf_counter()
                metad.read_walkers()
                times = {"first read (10 hills/file), with grid": time.perf_counter() - t0}
                t0 = time.perf_counter()
                for tail in files.tails.values():
                    tail.read()
                times["no file grew (stat only)"] = time.perf_counter() - t0
                append_one_hill(tmp, k)
                t0 = time.perf_counter()
                for tail in files.tails.values():
                    tail.read()
                times["1 new hill/file, file I/O"] = time.perf_counter() - t0
                append_one_hill(tmp, k)
                t0 = time.perf_counter()
                metad.read_walkers()
                times["1 new hill/file, with grid"] = time.perf_counter() - t0
                metad.close()
            for key, v in times.items():
                best[key] = min(best.get(key, np.inf), v)
        for key, v in best.items():
            rows.append([k, key, f"{v * 1e3:.3f}", f"{v / k * 1e6:.1f}"])
    return rows


def bias_costs(totals, batch=100, evals=2000):
    rows = []
    grid = cl.Grid(-2.0, 2.0, 400)
    metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10.0, pace=1,
                                 grid=grid, temperature=300.0)
    rng = np.random.default_rng(1)
    s = torch.zeros((1, 1, 1), dtype=torch.float64)
    for total in totals:
        while metad.n_hills < total - batch:
            n = min(10_000, total - batch - metad.n_hills)
            metad._add(rng.uniform(-1.8, 1.8, (n, 1)), np.full(n, 0.5), 1, write=False)
        t0 = time.perf_counter()
        metad._add(rng.uniform(-1.8, 1.8, (batch, 1)), np.full(batch, 0.5), 2, write=False)
        add = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(evals):
            x = s.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(metad.energy(x).sum(), x)
        force = (time.perf_counter() - t0) / evals
        rows.append([f"{metad.n_hills:,}", f"{add * 1e3:.2f}", f"{force * 1e6:.0f}"])
    return rows


def fsync_cost(repeats=50):
    with tempfile.NamedTemporaryFile("a", dir=".", delete=False) as fh:
        path = fh.name
    try:
        times = []
        for _ in range(repeats):
            with open(path, "a") as fh:
                fh.write("0.1 0.2 0.1 1.0 10\n")
            t0 = time.perf_counter()
            fsync_path(path)
            times.append(time.perf_counter() - t0)
    finally:
        os.unlink(path)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="steps per walker for the throughput (default 4000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accuracy-steps", type=int, default=40000, help="steps per walker of the accuracy "
                        "comparison, 0 to skip (default 40000)")
    parser.add_argument("--accuracy-seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    demo = DemoWalkers("muller-brown")
    t_rows = throughput(demo, args.steps, args.workers)
    t_table = markdown_table(["run", "worker processes", "wall s", "walker-steps / s (total)",
                              "steps / s of one walker (median)"], t_rows)
    print(t_table)
    r_table = markdown_table(["k files", "read", "ms per read", "us per file"], read_costs(args.ks, args.repeats))
    print(r_table)
    b_table = markdown_table(["hills in the bias", "add 100 hills (ms)", "energy + force, autograd (us)"],
                             bias_costs([100, 1_000, 10_000, 100_000]))
    print(b_table)
    fsync_ms = fsync_cost() * 1e3
    print(f"fsync of a HILLS file after one appended line: {fsync_ms:.2f} ms (median)")
    a_table = "(skipped)"
    if args.accuracy_steps:
        a_table = markdown_table(["seed", "2 walkers", "F(B) - F(A) along the CV (kJ/mol)", "exact", "abs. error (kT)",
                                  "FES RMSE, < 6 kT (kT)"], accuracy(demo, 2, args.accuracy_steps, args.accuracy_seeds))
        print(a_table)
    body = f"""Multiple walkers sharing one bias through PLUMED's HILLS.<id> files (cvlearn.walkers).

**Throughput.** Muller-Brown, well-tempered metadynamics on a TICA CV (`cvlearn walkers` settings:
`DemoWalkers("muller-brown")`), 4 walkers x {args.steps} steps, read_stride 500, COLVAR every 100
steps, one checkpoint and flush per read_stride. Dask LocalCluster of worker processes, one thread
each; wall time from submitting the tasks to the merged FES (cluster start-up excluded, warm
workers). The machine has 2 cores, so 4 workers oversubscribe it.

{t_table}

**One read of k walkers' files** (`WellTemperedMetad.read_walkers`; each file a few hundred bytes,
on this machine's local disk; best of {args.repeats}).

{r_table}

**The bias as hills accumulate** (1-D grid of 401 points, sigma = 0.1 = 10 grid spacings):
adding a batch of 100 hills (what one read brings) and one energy + force evaluation through
autograd (the batched engine's path) stay flat in the number of hills.

{b_table}

fsync of a HILLS file after appending one line (done once per flush, i.e. per read_stride):
{fsync_ms:.2f} ms (median of 50) on this file system.

**Accuracy: separate processes vs batched.** The same 2 Muller-Brown walkers ({args.accuracy_steps} steps
each, read_stride 500) as 2 Dask tasks and batched in one engine. F(B) - F(A) along the CV from the
bias (error: its spread at 5 times over the last 40 % of the run), and the RMSE of F along the CV
from the bias against the exact one where the exact F is within 6 kT of its minimum.

{a_table}
"""
    if not args.no_append:
        append_section("Multiple walkers: Dask throughput, reading k walkers' files, bias cost (walkers_scaling.py)",
                       body)


if __name__ == "__main__":
    main()
