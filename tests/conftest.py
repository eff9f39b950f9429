import functools

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


@functools.cache
def _alanine_openmm_xyz(n_frames, steps_between, seed, minimize):
    import openmm
    from openmm import app, unit

    from cvlearn.data import alanine_dipeptide_pdb

    pdb = app.PDBFile(alanine_dipeptide_pdb())
    system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                              constraints=app.HBonds)
    integrator = openmm.LangevinMiddleIntegrator(500 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    if minimize:
        openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(500 * unit.kelvin, seed)
    xyz = np.empty((n_frames, 22, 3), np.float32)
    for i in range(n_frames):
        integrator.step(steps_between)
        xyz[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return xyz


@pytest.fixture(scope="session")
def alanine_md_frames():
    """``frames(n_frames, steps_between, seed, minimize=False)``: alanine dipeptide in vacuum at 500 K.

    OpenMM (amber99sb-ildn, no cutoff, HBonds, Reference platform, Langevin middle 1/ps, 2 fs), from the
    shipped PDB (optionally energy-minimized), velocities and thermostat seeded with ``seed``; a frame every
    ``steps_between`` steps. Returns a new float32 array (n_frames, 22, 3) in nm; the simulation runs once per
    session for each set of arguments (200 frames of 50 steps take about 1 s on one core). Skips without openmm.
    """
    pytest.importorskip("openmm")

    def frames(n_frames, steps_between, seed, minimize=False):
        return _alanine_openmm_xyz(int(n_frames), int(steps_between), int(seed), bool(minimize)).copy()

    return frames
