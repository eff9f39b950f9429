import numpy as np
import pytest
import torch

import cvlearn as cl


@pytest.fixture(autouse=True)
def _few_threads():
    # Small tensors: extra threads only add overhead and make timings noisy on 2-core CI machines.
    torch.set_num_threads(1)


def boltzmann_samples(system, n, seed=0, bins=401):
    """Draw n exact Boltzmann samples of a 2-D system's (x, y), jittered within grid cells."""
    fes = system.exact_fes(bins=bins)
    p = np.exp(-fes.F / fes.kT).ravel()
    p /= p.sum()
    rng = np.random.default_rng(seed)
    idx = rng.choice(p.size, size=n, p=p)
    pts = fes.points[idx]
    h = np.array([a[1] - a[0] for a in fes.axes])
    return pts + (rng.random(pts.shape) - 0.5) * h


@pytest.fixture(scope="session")
def hidden_run():
    """8 walkers x 4000 frames of the 10-D hidden double well, 4 kT barrier (about 50 crossings)."""
    system = cl.systems.HiddenDoubleWell(dim=10, barrier=10.0)
    eng = cl.Langevin(system, timestep=0.02, friction=1.0, n_walkers=8, seed=1)
    return system, eng.run(20000, stride=5)
