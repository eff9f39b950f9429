"""Start walkers where nothing has been sampled: decode structures there, relax them in OpenMM."""

from dataclasses import dataclass

import numpy as np

from .._decoding import check_latent, features_to_trajectory
from .._validation import check_positive

__all__ = ["SeededWalkers", "seed_walkers"]


@dataclass
class SeededWalkers:
    """Relaxed starting structures for walkers, decoded at chosen latent points.

    Attributes
    ----------
    positions : list of ndarray (n_atoms, 3)
        One relaxed structure per target (nm), ready for ``cl.engine.OpenMM(system, positions[i], ...)``.
    targets : ndarray (n, n_components)
        The latent points asked for.
    decoded : mdtraj.Trajectory
        The structures as decoded, before relaxation.
    relaxed : mdtraj.Trajectory
        After energy minimization and the short MD.
    energy_decoded, energy_relaxed : ndarray (n,)
        Potential energies (kJ/mol) before and after relaxation.
    latent_relaxed : ndarray (n, n_components) or None
        Where the relaxed structures lie in latent space (with ``featurizer``): relaxation can move
        a structure away from its target; check before trusting that a seed is where you wanted it.

    Examples
    --------
    Made by :func:`seed_walkers` (see there); each walker starts from one of ``positions``:

    >>> import numpy as np
    >>> seeds = SeededWalkers([np.zeros((22, 3))] * 2, np.zeros((2, 1)), None, None, np.zeros(2), np.zeros(2))
    >>> len(seeds), seeds.positions[0].shape
    (2, (22, 3))
    """

    positions: list
    targets: np.ndarray
    decoded: object
    relaxed: object
    energy_decoded: np.ndarray
    energy_relaxed: np.ndarray
    latent_relaxed: np.ndarray = None

    def __len__(self):
        return len(self.positions)


def seed_walkers(model, targets, topology, system, *, featurizer=None, minimize_iterations=500, relax_steps=500,
                 temperature=300.0, timestep=0.002, friction=1.0, platform="Reference", seed=0):
    """Decode structures at latent points the simulation has not reached and relax them for walkers.

    Each target is decoded by the autoencoder (``model.generate``), minimized with OpenMM's
    ``LocalEnergyMinimizer`` (``minimize_iterations``, 0 to skip) and run for ``relax_steps``
    Langevin steps at ``temperature`` (K), so the walkers start from relaxed, thermalized
    structures. Seeding changes where sampling starts, not the Boltzmann weights, but a run
    remembers its start until the bias has filled the basins: with c(t) reweighting discard that
    transient (``skip=``, e.g. ``cl.fes.transient_fraction``). On alanine dipeptide one of four
    walkers seeded at phi > 0 lowered Delta F by ~2 kJ/mol after 250 ps per walker without a skip,
    and not at all with a 25 % skip or after 1 ns (``benchmarks/RESULTS.md``). Decoders saturate:
    an autoencoder that never saw a basin does not decode structures in it, however far beyond its
    latent cloud the target lies (check ``latent_relaxed`` and the relaxed structures).

    Parameters
    ----------
    model : AutoEncoder or TimeLaggedAutoEncoder
        Fitted on Cartesian coordinates of every atom of ``system`` (``AlignedPositions``).
    targets : array-like (n, n_components)
        Latent points, e.g. beyond the sampled range or along ``cl.latent_path`` to another basin.
    topology : mdtraj Topology, Trajectory or structure file
    system : openmm.System
    featurizer : Featurizer, optional
        The featurizer the model was trained on: reports where the relaxed structures lie in latent space.
    minimize_iterations, relax_steps : int
    temperature, timestep, friction : float
        K, ps, 1/ps of the relaxation run.
    platform : str
        OpenMM platform name.
    seed : int
        Seeds the relaxation's velocities and noise.

    Returns
    -------
    SeededWalkers

    Examples
    --------
    >>> import warnings, mdtraj as md, openmm, openmm.app as app, cvlearn as cl
    >>> pdb = app.PDBFile(cl.data.alanine_dipeptide_pdb())
    >>> system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
    ...                                                           constraints=app.HBonds)
    >>> traj = cl.engine.OpenMM(system, pdb.positions, topology=pdb.topology, seed=0).run(4000, stride=20)
    >>> frames = md.Trajectory(traj.positions[:, 0], md.load(cl.data.alanine_dipeptide_pdb()).topology)
    >>> feat = cl.features.AlignedPositions(frames[0])
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", cl.ConvergenceWarning)
    ...     ae = cl.AutoEncoder(layers=[16], n_components=1, max_epochs=50, seed=0).fit(feat.transform(frames))
    >>> z = ae.transform(feat.transform(frames))
    >>> seeds = cl.seed_walkers(ae, [[z.max() + 0.2]], frames, system, featurizer=feat, relax_steps=100)
    >>> bool(seeds.energy_relaxed[0] < seeds.energy_decoded[0])  # relaxed
    True
    >>> walker = cl.engine.OpenMM(system, seeds.positions[0], topology=pdb.topology, seed=1)  # start there
    """
    from .._optional import require_openmm

    openmm = require_openmm()  # a clear ImportError if OpenMM is missing
    owner = "seed_walkers"
    model._check_fitted()
    z = check_latent(targets, model.n_components, owner)
    check_positive(temperature, "temperature", owner)
    decoded = features_to_trajectory(model.decode(z), topology, None, owner)
    if decoded.n_atoms != system.getNumParticles():
        raise ValueError(f"{owner}: the model decodes {decoded.n_atoms} atoms but the System has "
                         f"{system.getNumParticles()} particles; seed walkers with a model trained on every atom.")
    u = openmm.unit
    integrator = openmm.LangevinMiddleIntegrator(temperature * u.kelvin, friction / u.picosecond,
                                                 timestep * u.picoseconds)
    integrator.setRandomNumberSeed(int(seed) + 1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    energy = lambda: context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(  # noqa: E731
        u.kilojoule_per_mole)
    relaxed, e0, e1 = [], [], []
    for k, x in enumerate(decoded.xyz.astype(np.float64)):
        context.setPositions(x)
        e0.append(energy())
        context.applyConstraints(1e-6)
        if minimize_iterations:
            openmm.LocalEnergyMinimizer.minimize(context, 10.0, int(minimize_iterations))
        context.setVelocitiesToTemperature(temperature * u.kelvin, int(seed) + 1000 + k)
        if relax_steps:
            integrator.step(int(relax_steps))
        state = context.getState(getPositions=True, getEnergy=True)
        relaxed.append(state.getPositions(asNumpy=True).value_in_unit(u.nanometer))
        e1.append(state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))
    relaxed_traj = decoded[:]
    relaxed_traj.xyz = np.array(relaxed, dtype=np.float32)
    latent = None
    if featurizer is not None:
        latent = model.transform(featurizer.transform(relaxed_traj))
    return SeededWalkers([np.asarray(p) for p in relaxed], z, decoded, relaxed_traj, np.array(e0), np.array(e1),
                         latent)
