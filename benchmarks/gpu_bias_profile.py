"""Where the time of a biased step goes on a GPU: torch.profiler over the batched engine with metadynamics.

Muller-Brown, well-tempered metadynamics on x (as ``engine_throughput.py --metad``: height 1.5 kJ/mol
x min(1, 100 / walkers), sigma 0.1 nm, bias factor 10, pace 100, 300-bin grid), 1 and 10^6 walkers on
CUDA: 50 warm-up steps, then 100 profiled steps; prints the operations by CPU and by GPU time. Needs a
GPU (prints nothing useful without one).

Run from the repository root::

    python benchmarks/gpu_bias_profile.py
"""

import torch
from torch.profiler import ProfilerActivity, profile

import cvlearn as cl


def make(n):
    mb = cl.systems.MullerBrown()
    cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [0.0]]), cl.features.Positions(1, 2))
    bias = cl.WellTemperedMetad(cv, sigma=0.1, height=1.5 * min(1.0, 100 / n), bias_factor=10.0, pace=100,
                                grid=cl.Grid(-2.0, 1.5, 300), outside="wall")
    return cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=n, seed=0, device="cuda", bias=bias)


def main():
    if not torch.cuda.is_available():
        raise SystemExit("gpu_bias_profile.py profiles the CUDA engine: no GPU here.")
    for n in (1, 1_000_000):
        eng = make(n)
        eng.run(50, stride=50)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            eng.run(100, stride=100)
            torch.cuda.synchronize()
        print(f"===== {n} walkers: 100 metadynamics steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=45))
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10, max_name_column_width=45))


if __name__ == "__main__":
    main()
