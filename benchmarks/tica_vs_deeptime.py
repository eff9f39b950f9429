"""cvlearn TICA against deeptime TICA: fit time and agreement of the results on the same data.

What is measured
----------------
Synthetic data: ``--trajs`` trajectories (default 10) totalling ``--frames`` frames (default
1,000,000) of ``--features`` features (default 100), float64, fixed seed. Each trajectory mixes
24 latent signals linearly into the features and adds white noise: three slow AR(1) processes
(phi = 0.999, 0.995, 0.99), one two-state jump process (switching probability 1e-3 per frame)
and 20 fast AR(1) processes; the mixing matrix is shared by all trajectories.

Both estimators are fitted ``--repeats`` times (default 5), alternating, in the same process, on
the same list of arrays, with the same lag (``--lag``, default 10), the same number of components
(``--dim``, default 10), epsilon 1e-6 and no scaling. Fit time is wall-clock time of
``cvlearn.TICA(...).fit(X)`` and of ``deeptime TICA(...).fit(X).fetch_model()``; the table gives
median and minimum over the repeats and the ratio deeptime / cvlearn of the medians (> 1: cvlearn is
faster). The peak of extra memory allocated by each fit (numpy allocations, via tracemalloc, one
extra fit each) is reported too.

Agreement: max abs difference of the eigenvalues (all that survive epsilon and the first
``--dim``), max abs difference of the means, the largest principal angle between the spans of
the first ``--dim`` eigenvectors, the max abs difference of the (unit-variance) eigenvectors after
aligning signs, relative to their largest entry, and the max abs difference of the projections of
the first trajectory, relative to their largest value.

``--threads N`` caps the BLAS and OpenMP thread pools of both libraries (threadpoolctl); by default
they use all cores. On a machine shared with other jobs, multi-threaded BLAS can be slowed down
many times over (threads wait for each other across scheduler time slices), so compare at
``--threads 1`` there, or check the load average recorded with the results.

Run from the repository root::

    python benchmarks/tica_vs_deeptime.py                  # full size, appends to RESULTS.md
    python benchmarks/tica_vs_deeptime.py --threads 1      # single-threaded BLAS/OpenMP
    python benchmarks/tica_vs_deeptime.py --frames 200000 --repeats 3 --no-append   # quick look

Needs deeptime (``pip install -e .[bench]``) and about 4 GB of memory at the default size
(the data take 0.8 GB; both libraries copy them once while fitting).
"""

import argparse
import gc
import statistics
import time
import tracemalloc

import numpy as np
import scipy.linalg
import scipy.signal
from threadpoolctl import threadpool_info, threadpool_limits

import cvlearn as cl

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.tica_vs_deeptime
    from benchmarks._common import append_section, markdown_table


def make_data(n_frames, n_trajs, n_features, seed=0):
    """List of ``n_trajs`` float64 arrays (frames x features) with a few slow processes mixed in."""
    rng = np.random.default_rng(seed)
    slow_phis = [0.999, 0.995, 0.99]
    n_fast = 20
    n_latent = len(slow_phis) + 1 + n_fast
    mixing = rng.normal(size=(n_latent, n_features))
    lengths = np.full(n_trajs, n_frames // n_trajs)
    lengths[: n_frames % n_trajs] += 1
    data = []
    for length in lengths:
        phis = np.r_[slow_phis, rng.uniform(0.0, 0.9, n_fast)]
        latent = np.empty((length, n_latent))
        for j, phi in enumerate(phis):  # unit-variance AR(1): x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t
            latent[:, j + (j >= len(slow_phis))] = scipy.signal.lfilter(
                [np.sqrt(1 - phi**2)], [1.0, -phi], rng.normal(size=length))
        flips = rng.random(length) < 1e-3  # two-state jump process, +-1
        latent[:, len(slow_phis)] = 2.0 * (np.cumsum(flips) % 2) - 1.0
        x = latent @ mixing
        x += 0.5 * rng.normal(size=x.shape)
        data.append(x)
    return data


def fit_cvlearn(data, lag, dim):
    return cl.TICA(lagtime=lag, n_components=dim, epsilon=1e-6, scaling=None).fit(data)


def fit_deeptime(data, lag, dim):
    from deeptime.decomposition import TICA

    return TICA(lagtime=lag, dim=dim, epsilon=1e-6, scaling=None).fit(data).fetch_model()


def timed(fn, *args):
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def peak_memory(fn, *args):
    """Peak bytes allocated (numpy included) while running fn, above what was allocated before."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def agreement(ours, ref, data, dim):
    """Differences between the cvlearn and deeptime results (dict of floats)."""
    ev_ref = np.asarray(ref.singular_values)
    full = cl.TICA(lagtime=ours.lagtime, epsilon=1e-6, scaling=None).fit(data)
    n = min(len(full.eigenvalues_), len(ev_ref))
    u = ours.singular_vectors_[:, :dim]
    v = np.asarray(ref.singular_vectors_left)[:, :dim]
    signs = np.sign(np.sum(u * v, axis=0))
    proj_ours = ours.transform(data[0])
    proj_ref = ref.transform(data[0])[:, :dim]
    return {
        "n_eig": (len(full.eigenvalues_), len(ev_ref)),
        "eig_all": np.abs(full.eigenvalues_[:n] - ev_ref[:n]).max(),
        "eig_k": np.abs(ours.eigenvalues_ - ev_ref[:dim]).max(),
        "mean": np.abs(ours.mean_ - ref.mean_0).max(),
        "angle": np.max(scipy.linalg.subspace_angles(u, v)),
        "vec_rel": np.abs(u - v * signs).max() / np.abs(v).max(),
        "proj_rel": np.abs(proj_ours - proj_ref * signs).max() / np.abs(proj_ref).max(),
        "eigenvalues": ours.eigenvalues_,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="total frames (default 1e6)")
    parser.add_argument("--trajs", type=int, default=10, help="number of trajectories (default 10)")
    parser.add_argument("--features", type=int, default=100, help="features (default 100)")
    parser.add_argument("--lag", type=int, default=10, help="lag time in frames (default 10)")
    parser.add_argument("--dim", type=int, default=10, help="components compared (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="fits per library (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap BLAS/OpenMP threads of both libraries (default: no cap)")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    import deeptime  # noqa: F401  (loads its OpenMP runtime, so the cap below applies to it too)

    if args.threads is not None:
        threadpool_limits(limits=args.threads)
    pools = ", ".join(sorted({f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()}))
    print(f"thread pools: {pools}")

    t0 = time.perf_counter()
    data = make_data(args.frames, args.trajs, args.features)
    size = f"{args.trajs} trajectories, {args.frames:,} frames x {args.features} features, float64 " \
           f"({sum(x.nbytes for x in data) / 1e9:.2f} GB), lag {args.lag}, {args.dim} components"
    print(f"data: {size} (generated in {time.perf_counter() - t0:.1f} s)")

    # One untimed fit each (imports, first-touch page faults), then alternate the timed fits.
    ours, ref = fit_cvlearn(data, args.lag, args.dim), fit_deeptime(data, args.lag, args.dim)
    times = {"cvlearn": [], "deeptime": []}
    for i in range(args.repeats):
        t_ours, ours = timed(fit_cvlearn, data, args.lag, args.dim)
        t_ref, ref = timed(fit_deeptime, data, args.lag, args.dim)
        times["cvlearn"].append(t_ours)
        times["deeptime"].append(t_ref)
        print(f"repeat {i + 1}/{args.repeats}: cvlearn {t_ours:.3f} s, deeptime {t_ref:.3f} s")
    mem = {"cvlearn": peak_memory(fit_cvlearn, data, args.lag, args.dim),
           "deeptime": peak_memory(fit_deeptime, data, args.lag, args.dim)}

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [[name, f"{med[name]:.3f}", f"{min(times[name]):.3f}", f"{mem[name] / 1e9:.2f}"]
            for name in ("cvlearn", "deeptime")]
    timing = markdown_table(["library", "median fit (s)", "min fit (s)", "peak extra memory (GB)"], rows)
    ratio = med["deeptime"] / med["cvlearn"]

    agr = agreement(ours, ref, data, args.dim)
    agr_rows = [
        [f"eigenvalues, all {agr['n_eig'][0]} (deeptime keeps {agr['n_eig'][1]})", f"{agr['eig_all']:.2e}"],
        [f"eigenvalues, first {args.dim}", f"{agr['eig_k']:.2e}"],
        ["mean", f"{agr['mean']:.2e}"],
        [f"largest principal angle, first {args.dim} eigenvectors (rad)", f"{agr['angle']:.2e}"],
        ["eigenvectors after sign alignment, relative", f"{agr['vec_rel']:.2e}"],
        ["projection of trajectory 0, relative", f"{agr['proj_rel']:.2e}"],
    ]
    agree = markdown_table(["max abs difference (cvlearn vs deeptime)", "value"], agr_rows)
    body = "\n".join([
        f"Data: {size}. Thread pools: {pools}"
        + (f" (capped with --threads {args.threads})." if args.threads else " (library defaults)."), "",
        timing, "",
        f"Speed ratio deeptime / cvlearn (medians of {args.repeats} fits): **{ratio:.2f}**"
        + (" (cvlearn faster)" if ratio > 1 else " (cvlearn slower)"), "",
        agree, "",
        "Leading eigenvalues: " + ", ".join(f"{e:.6f}" for e in agr["eigenvalues"][:5]),
    ])
    print()
    print(body)
    if not args.no_append:
        import deeptime

        append_section("TICA fit: cvlearn vs deeptime", body,
                       extra_lines=[f"- deeptime {deeptime.__version__}"])


if __name__ == "__main__":
    main()
