"""Molecular dynamics in OpenMM, biased by any cvlearn bias through a PythonForce."""

import logging
import math
import os
import warnings

import numpy as np
import torch

from .._optional import require_openmm
from .._validation import check_positive
from ..bias import Adaptive, CVBias, Paced, PointEvaluable, SharedHills
from ..exceptions import CVLearnError, GridError, SamplingWarning, SimulationError
from ..units import BOLTZMANN, as_array, as_float
from ._common import ColvarFiles, Engine, Frame, bias_list, bind_biases, open_hills, progress_bar
from ._lean import Unsupported, compile_cv

__all__ = ["OpenMM", "default_platform"]

log = logging.getLogger("cvlearn")

BIAS_GROUP = 31  # OpenMM force group of the cvlearn bias (the last of the 32 groups)
_VERSION = "cvlearn_bias_version"  # global parameter bumped when a bias changes: invalidates cached forces
# Measured (benchmarks/openmm_bias.py): for a 22-atom molecule in vacuum OpenMM's Reference platform
# runs ~60x faster than its CPU platform on 2 cores (the CPU platform's per-step thread overhead
# dominates); the CPU platform wins once the force evaluation itself dominates.
_REFERENCE_MAX_ATOMS = 1500


def default_platform(n_atoms):
    """Name of the OpenMM platform cvlearn picks for a system of ``n_atoms``: a GPU platform if there
    is one, else Reference for small molecules and CPU for larger systems (measured crossover).

    Examples
    --------
    >>> from cvlearn.engine import default_platform
    >>> default_platform(22) in ("Reference", "CPU", "CUDA", "HIP", "OpenCL")   # alanine dipeptide
    True
    """
    mm = require_openmm()
    names = {mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())}
    for gpu in ("CUDA", "HIP", "OpenCL"):
        if gpu in names:
            return gpu
    return "Reference" if n_atoms <= _REFERENCE_MAX_ATOMS or "CPU" not in names else "CPU"


def _atoms_of(module):
    """Sorted atom indices a CV module reads (from its featurizer's ``atoms``), or None for all."""
    feat = getattr(module, "featurizer", module)
    atoms = getattr(feat, "atoms", None)
    if atoms is not None:
        return np.asarray(atoms.tolist() if isinstance(atoms, torch.Tensor) else atoms, dtype=np.int64)
    parts = getattr(feat, "parts", None)
    if parts is not None:
        found = [_atoms_of(p) for p in parts]
        if all(a is not None for a in found):
            return np.unique(np.concatenate(found))
    return None


class _BiasGroup:
    """Biases that share one CV module: the CV is evaluated once for all of them.

    :meth:`compile` picks the force path: the lean numpy CV on the biased atoms' positions (what the
    PythonForce receives), else the lean CV on all positions, else torch autograd.
    """

    def __init__(self, cv, biases, lean):
        # cv: the CV object the biases (CVBias) share, None for a bias that is no CVBias (autograd on all atoms).
        self.cv, self.biases, self.use_lean = cv, biases, lean
        self.lean = None
        self.on_atoms = False  # the lean CV reads the biased atoms' rows directly

    def compile(self, atoms, n_atoms):
        self.lean, self.on_atoms = None, False
        # The float path only where every bias of the group has it (PointEvaluable).
        points = all(isinstance(b, PointEvaluable) for b in self.biases)
        self.points = [b.point_value_and_gradient for b in self.biases] if points else None
        if not self.use_lean:
            return
        try:
            if len(atoms) < n_atoms:
                try:
                    self.lean, self.on_atoms = compile_cv(self.cv, atoms), True
                    return
                except Unsupported:
                    pass
            self.lean = compile_cv(self.cv)
            self.on_atoms = len(atoms) == n_atoms
        except Unsupported as exc:
            log.info("Bias force through torch autograd (%s).", exc)

    def energy_and_gradient(self, sub, full, scale):
        """Bias energy (kJ/mol) of this group and ``scale`` times its gradient on the biased atoms.

        ``sub``: positions (biased atoms, 3) nm; ``full()``: all positions (atoms, 3) with those rows.
        """
        lean = self.lean
        if lean is not None and self.points is not None:  # Python floats from the CV values to dV/ds
            point = lean.value(sub if self.on_atoms else full()).tolist()
            points = self.points
            energy, ds = points[0](point)
            for p in points[1:]:
                v, g = p(point)
                energy += v
                ds = [a + b for a, b in zip(ds, g)]
            grad = lean.vjp([scale * a for a in ds])
            return energy, grad if self.on_atoms else grad[self.rows]
        if lean is not None:
            s = lean.value(sub if self.on_atoms else full())
            biases = self.biases
            v, ds = biases[0].value_and_gradient(s)
            energy, ds = v.item(0), ds[0]
            for b in biases[1:]:
                v, g = b.value_and_gradient(s)
                energy += v.item(0)
                ds = ds + g[0]
            grad = lean.vjp(ds * scale)
            return energy, grad if self.on_atoms else grad[self.rows]
        with torch.enable_grad():
            xt = torch.from_numpy(full())[None].requires_grad_(True)
            e = sum(b.energy(xt) for b in self.biases).sum()
            (g,) = torch.autograd.grad(e, xt)
        return float(e.detach()), scale * g[0].numpy()[self.rows]


class OpenMM(Engine):
    """Molecular dynamics of an OpenMM ``System`` with cvlearn biases, COLVAR/HILLS files and restarts.

    The biases act through one OpenMM ``PythonForce`` restricted to the atoms their CVs read. Its
    energy and forces are computed without torch autograd when every part of the CV has a lean
    numpy path (:mod:`cvlearn.engine._lean`: cvlearn's featurizers and learned CVs), otherwise by
    autograd on the torch modules. With ``bias_interval=k`` the bias force acts in impulses (r-RESPA
    multiple time stepping, Tuckerman, Berne & Martyna, J. Chem. Phys. 97, 1990 (1992)): k times the
    force on every step whose number is a multiple of k, nothing in between, so the CV and its
    gradient are evaluated k times less often. That is accurate while the bias force changes little
    over k steps: keep k * timestep well below the period of the fastest motion the CV follows. CVs of
    dihedrals are safe with k = 2 at 2 fs; CVs that weigh bond lengths (e.g. all heavy-atom
    distances) follow ~20 fs bond vibrations, and with k = 2 three of sixteen alanine dipeptide
    metadynamics runs on such CVs diverged within 150 ps (benchmarks/alanine_dipeptide.py), so use
    k = 1 for them. OpenMM's ``MTSLangevinIntegrator`` would do the same through a
    CustomIntegrator, which on the Reference platform costs 4x more per step than the bias it saves.

    Parameters
    ----------
    system : openmm.System
        The molecular system (a copy is used; yours is not modified).
    positions : array_like or openmm Quantity
        (atoms, 3) starting positions, nm.
    temperature : float
        K.
    timestep : float
        ps (0.002 with constraints on bonds to hydrogen).
    friction : float
        Langevin collision rate, 1/ps.
    bias : object or list of objects, optional
        cvlearn biases (:class:`~cvlearn.WellTemperedMetad`, static biases, walls, ...) whose CVs take
        positions (walkers, atoms, 3) in nm; any :class:`cvlearn.bias.Bias`, called as the engine-bias
        contract says (:mod:`cvlearn.bias._protocol`). Biases that update (:class:`~cvlearn.bias.Adaptive`)
        must have a ``pace`` (:class:`~cvlearn.bias.Paced`): they are updated at its multiples.
    topology : openmm.app.Topology or mdtraj.Topology, optional
        Kept for writing trajectories (:meth:`Trajectory.to_mdtraj`).
    platform : str, optional
        OpenMM platform name; default :func:`default_platform` for the system size.
    seed : int
        Seed of the thermostat noise and initial velocities; same seed, same run (on one platform).
    bias_interval : int
        Apply the bias force every this many steps (multiple time stepping); 1 = every step.
    lean : bool
        Use the lean numpy path for the bias force when possible (False: always autograd).
    minimize : bool
        Minimize the energy (unbiased) before the first step.

    Examples
    --------
    Alanine dipeptide in vacuum (Amber99SB-ILDN), 100 steps of 2 fs with a restraint on phi:

    >>> import mdtraj as md, numpy as np, cvlearn as cl
    >>> pdb = cl.data.alanine_dipeptide_pdb()
    >>> phi = cl.features.Dihedrals(md.load_topology(pdb), "phi")
    >>> restraint = cl.bias.HarmonicRestraint(phi, at=-1.5, kappa=50.0)       # rad, kJ/mol/rad^2
    >>> engine = cl.engine.OpenMM.from_pdb(pdb, temperature=300.0, timestep=0.002, bias=restraint, seed=0,
    ...                                    platform="Reference")
    >>> traj = engine.run(100, stride=50)
    >>> traj.positions.shape, np.round(traj.time, 3).tolist()                # (frames, walkers, atoms, 3) nm; ps
    ((2, 1, 22, 3), [0.1, 0.2])
    """

    def __init__(self, system, positions, temperature=300.0, timestep=0.002, friction=1.0, bias=None,
                 topology=None, platform=None, seed=0, bias_interval=1, lean=True, minimize=False):
        mm = require_openmm()
        owner = "OpenMM"
        self.temperature = check_positive(as_float(temperature, "K"), "temperature", owner)
        self.timestep = check_positive(as_float(timestep, "ps"), "timestep", owner)
        self.friction = check_positive(as_float(friction, "1/ps"), "friction", owner)
        self.bias_interval = check_positive(bias_interval, "bias_interval", owner, integer=True)
        self.kT = BOLTZMANN * self.temperature
        self.topology = topology
        self.seed = seed
        self.system = mm.XmlSerializer.clone(system)
        self.n_atoms = self.system.getNumParticles()
        pos = self._as_positions(positions)
        self.biases = bias_list(bias)
        for b in self.biases:
            if isinstance(b, Adaptive) and not isinstance(b, Paced):
                raise TypeError(f"{type(b).__name__} has update() but no pace: the OpenMM engine updates biases "
                                "every pace steps (cvlearn.bias.Paced); give it a pace attribute.")
        bind_biases(self.biases, self.temperature, self.timestep)
        self._groups = self._group_biases(lean)
        self._bias_atoms = self._biased_atoms()
        for g in self._groups:
            g.rows = self._bias_atoms
            g.compile(self._bias_atoms, self.n_atoms)
        self._x = np.zeros((self.n_atoms, 3))  # full configuration seen by the CVs
        self._sub = np.zeros((len(self._bias_atoms), 3))  # the biased atoms' rows, as the PythonForce gets them
        if len(self._groups) == 1 and self._groups[0].on_atoms:
            x_in = getattr(self._groups[0].lean, "x_in", None)
            if x_in is not None and x_in.shape == self._sub.shape:
                self._sub = x_in  # positions go straight into the lean CV's input buffer
        self._no_force = np.zeros_like(self._sub)
        self._reader = getattr(mm.State, "_getVectorAsNumpy", None)
        # One bias group (the usual case): the callback calls it directly.
        self._evaluate = self._groups[0].energy_and_gradient if len(self._groups) == 1 else self._evaluate_all
        self._positions_kind = getattr(mm.State, "Positions", None)
        self._version = 0
        self._error = None
        self._bias_on = False  # on once set up: minimization and velocity set-up see the molecule alone
        groups = sorted({f.getForceGroup() for f in self.system.getForces()})
        if BIAS_GROUP in groups:
            raise ValueError(f"Force group {BIAS_GROUP} is reserved for the cvlearn bias; move your forces to "
                             "groups 0-30.")
        self._energy_groups = sum(1 << g for g in groups)
        if self.biases:
            force = mm.PythonForce(self._compute, {_VERSION: 0.0})
            force.setParticles([int(i) for i in self._bias_atoms])
            force.setForceGroup(BIAS_GROUP)
            self.system.addForce(force)
        self._dof = 3 * self.n_atoms - self.system.getNumConstraints() - 3 * any(
            isinstance(f, mm.CMMotionRemover) for f in self.system.getForces())
        self.integrator = self._integrator(mm)
        self.platform_name = platform or default_platform(self.n_atoms)
        self.context = mm.Context(self.system, self.integrator, mm.Platform.getPlatformByName(self.platform_name))
        self.context.setPositions(pos)
        if minimize:
            self._minimize(mm)
        self.context.setVelocitiesToTemperature(self.temperature, self._seed_int(1))
        self.step = 0
        self._bias_on = True
        self._biases_changed()

    # -- set-up ----------------------------------------------------------------------------------
    @classmethod
    def from_pdb(cls, pdb, forcefield=("amber99sbildn.xml",), nonbonded="NoCutoff", constraints="HBonds",
                 **kwargs):
        """An engine for the molecule in ``pdb`` with OpenMM force-field XML files (vacuum by default).

        ``nonbonded`` and ``constraints`` are names of ``openmm.app`` constants (e.g. "PME", "None").
        Other keyword arguments go to :class:`OpenMM`.
        """
        mm = require_openmm()
        app = mm.app
        if not os.path.exists(os.fspath(pdb)):
            raise FileNotFoundError(f"No PDB file {os.fspath(pdb)!r}.")
        structure = app.PDBFile(os.fspath(pdb))
        files = [forcefield] if isinstance(forcefield, str) else list(forcefield)
        try:
            ff = app.ForceField(*files)
        except ValueError as exc:
            raise ValueError(f"Could not load force field {files}: {exc}. Give OpenMM force-field XML names "
                             "such as 'amber99sbildn.xml' or 'amber14-all.xml'.") from exc
        consts = {"None": None, None: None}
        system = ff.createSystem(structure.topology, nonbondedMethod=getattr(app, nonbonded),
                                 constraints=consts.get(constraints, getattr(app, str(constraints), None)))
        kwargs.setdefault("topology", structure.topology)
        return cls(system, structure.getPositions(asNumpy=True), **kwargs)

    def _as_positions(self, positions):
        p = as_array(positions, "nm")
        if p.shape != (self.n_atoms, 3):
            raise ValueError(f"positions must be (atoms, 3) = ({self.n_atoms}, 3) nm for this system; got "
                             f"{p.shape}. Check that the structure and the System describe the same atoms.")
        if not np.isfinite(p).all():
            raise ValueError("The starting positions contain NaN or infinite values.")
        return p

    def _group_biases(self, lean):
        groups, by_cv = [], {}
        for b in self.biases:
            if not isinstance(b, CVBias):
                groups.append(_BiasGroup(None, [b], lean=False))
            elif id(b.cv) in by_cv:
                by_cv[id(b.cv)].biases.append(b)
            else:
                by_cv[id(b.cv)] = _BiasGroup(b.cv, [b], lean)
                groups.append(by_cv[id(b.cv)])
        return groups

    def _biased_atoms(self):
        found = [_atoms_of(g.cv) if g.cv is not None else None for g in self._groups]
        if not found or any(a is None for a in found):
            return np.arange(self.n_atoms)
        atoms = np.unique(np.concatenate(found))
        if atoms.size and (atoms.min() < 0 or atoms.max() >= self.n_atoms):
            raise ValueError(f"The CV reads atom {int(atoms.max())}, but the system has {self.n_atoms} atoms.")
        return atoms

    def _integrator(self, mm):
        u = mm.unit
        integ = mm.LangevinMiddleIntegrator(self.temperature * u.kelvin, self.friction / u.picosecond,
                                            self.timestep * u.picoseconds)
        integ.setRandomNumberSeed(self._seed_int(0))
        return integ

    def _seed_int(self, stream):
        if self.seed is None:
            return 0  # OpenMM: 0 means a fresh random seed
        return int(np.random.SeedSequence([int(self.seed), stream]).generate_state(1)[0] % (2**31 - 1)) + 1

    def _minimize(self, mm):
        mm.LocalEnergyMinimizer.minimize(self.context, 1.0, 0)

    # -- the bias force --------------------------------------------------------------------------
    def _read(self, state):
        # Straight into a preallocated buffer: State.getPositions(asNumpy=True) adds ~25 us of unit
        # handling per call, more than the bias itself on a small molecule.
        if self._reader is not None:
            self._reader(state, self._positions_kind, self._sub)
        else:  # pragma: no cover - older OpenMM
            self._sub[:] = state.getPositions(asNumpy=True).value_in_unit(state.getPositions().unit)
        return self._sub

    def _full(self):
        """All positions: the biased atoms' current rows in ``_x`` (the others are not read)."""
        self._x[self._bias_atoms] = self._sub
        return self._x

    def _compute(self, state):
        """PythonForce callback: bias energy (kJ/mol) and forces (kJ/mol/nm) on the biased atoms."""
        k = self.bias_interval
        if not self._bias_on or (k > 1 and state.getStepCount() % k):
            return 0.0, self._no_force
        try:
            if self._reader is not None:  # inline _read: this runs every step
                self._reader(state, self._positions_kind, self._sub)
            else:  # pragma: no cover - older OpenMM
                self._read(state)
            return self._evaluate(self._sub, self._full, -k)
        except Exception as exc:  # OpenMM would flatten it into a generic message: keep it for run()
            self._error = exc
            raise

    def _evaluate_all(self, sub, full, scale):
        energy, grad = 0.0, np.zeros_like(sub)
        for g in self._groups:
            e, gr = g.energy_and_gradient(sub, full, scale)
            energy += e
            grad += gr
        return energy, grad

    def _bias_energy_and_gradient(self, sub, scale=1.0):
        """Bias energy and ``scale`` times its gradient on the biased atoms, at their positions ``sub``."""
        return self._evaluate(sub, self._full, scale)

    def bias_energy(self, positions=None):
        """Total bias (kJ/mol) at ``positions`` (atoms, 3) nm, default the current ones; also sets the
        values the biases report to COLVAR and deposit from."""
        if not self.biases:
            return 0.0
        x = self.positions if positions is None else self._as_positions(positions)
        self._x[...] = x
        self._sub[...] = self._x[self._bias_atoms]
        return self._bias_energy_and_gradient(self._sub)[0]

    def _biases_changed(self):
        # A bias changed (e.g. a hill was deposited): forces cached by the integrator are stale.
        if not self.biases:
            return
        self._version += 1
        self.context.setParameter(_VERSION, float(self._version))

    # -- state -----------------------------------------------------------------------------------
    n_walkers = 1  # one molecule per engine; several walkers: cvlearn.walkers (processes) or WalkerGroup

    @property
    def _frame_shape(self):
        return 1, self.n_atoms, 3

    @property
    def positions(self):
        """Current positions (atoms, 3), nm."""
        return self._state(positions=True).getPositions(asNumpy=True)._value.copy()

    def _state(self, positions=False, energy=False, velocities=False):
        return self.context.getState(getPositions=positions, getEnergy=energy, getVelocities=velocities,
                                     groups=self._energy_groups)

    def potential_energy(self):
        """Potential energy of the molecule without the bias, kJ/mol."""
        return self._state(energy=True).getPotentialEnergy()._value

    # -- running ---------------------------------------------------------------------------------
    def run(self, n_steps, stride=500, progress=False, callback=None, colvar=None, hills=None, checkpoint=None,
            restart=False):
        """Integrate ``n_steps`` steps of ``timestep``; record a frame every ``stride`` steps.

        Same files and semantics as :meth:`cvlearn.Langevin.run`: ``colvar`` (PLUMED COLVAR,
        flushed per row), ``hills`` (the metadynamics HILLS file), ``checkpoint`` (written atomically
        at the end and when the run fails or is interrupted; continue with :meth:`load_checkpoint`
        and ``restart=True``). Biases are updated (hills deposited) at multiples of their ``pace``.
        ``callback(frame: Frame)`` is called at each recorded frame, after its COLVAR row and the
        biases' update; the :class:`~cvlearn.engine.Frame` holds numpy arrays: positions (1, atoms, 3)
        nm, potential and bias energy (1,) kJ/mol.

        Returns
        -------
        Trajectory
            Frames (frames, 1, atoms, 3) with potential and bias energies.

        Raises
        ------
        SimulationError
            If the energy or positions become non-finite, a CV leaves a bias grid or OpenMM fails; it
            carries the step and the frames recorded so far.
        """
        n_steps = check_positive(n_steps, "n_steps", "OpenMM.run", integer=True)
        stride = check_positive(stride, "stride", "OpenMM.run", integer=True)
        k = self.bias_interval
        paces = sorted({int(b.pace) for b in self.biases if isinstance(b, Paced)})
        for name, value in [("n_steps", n_steps), ("stride", stride)] + [("a bias pace", p) for p in paces]:
            if value % k:
                raise ValueError(f"{name} ({value}) must be a multiple of bias_interval ({k}).")
        for b in self.biases:  # updates come only at multiples of pace: so must the reads of other walkers
            if isinstance(b, SharedHills) and b.walker_files is not None and b.read_stride % b.pace:
                raise ValueError(f"read_stride ({b.read_stride}) must be a multiple of the bias pace ({b.pace}) "
                                 "with the OpenMM engine, which updates biases only at multiples of pace.")
        open_hills(self.biases, hills, restart)
        frames, kinetic = [], []  # kinetic: the kinetic temperature (K) of each recorded frame
        rows = ColvarFiles(colvar, self.biases, self.n_walkers, restart)
        bar = progress_bar(progress, n_steps, "OpenMM")
        end = self.step + n_steps
        try:
            while self.step < end:
                target = min(end, _next_multiple(self.step, [stride, *paces]))
                self._advance(target - self.step, frames)
                if bar is not None:
                    bar.update(target - self.step)
                self.step = target
                if self.step % stride == 0 or any(self.step % p == 0 for p in paces):
                    frame = self._event(self.step % stride == 0, paces, frames, rows, kinetic)
                    if frame is not None:
                        frames.append(frame)
                        if callback is not None:
                            callback(frame)
        finally:
            self._end_run(bar, rows, checkpoint)
        self._check_temperature(frames, kinetic)
        return self._trajectory(frames)

    def _check_temperature(self, frames, kinetic):
        """Warn when the thermostat cannot hold the temperature: the bias force then changes faster than
        the integrator resolves (too narrow hills on a fast CV, too large a bias_interval)."""
        # The second half only: a strong bias switched on (or a restraint far from the start) heats the
        # molecule once, and the thermostat removes that within a few 1/friction. One frame's kinetic
        # temperature fluctuates by sqrt(2 / dof) (20 % for alanine dipeptide): judge only means over
        # >= 50 frames spanning >= 2 thermostat times, where +20 % is many standard errors.
        half = len(frames) // 2
        if len(frames) - half < 50 or frames[-1].time - frames[half].time < 2.0 / self.friction:
            return
        t_kin = float(np.mean(kinetic[half:]))
        if t_kin > 1.2 * self.temperature:
            warnings.warn(
                f"The kinetic temperature averaged {t_kin:.0f} K over the second half of this run, not "
                f"{self.temperature:g} K: the "
                "bias force varies too fast for the integrator. Use wider hills (sigma about the CV's "
                "fluctuation in an unbiased run), lower hills, a smaller bias_interval or a smaller timestep.",
                SamplingWarning, stacklevel=3)

    def _advance(self, n, frames):
        self._error = None
        try:
            self.integrator.step(n)
        except Exception as exc:
            err = self._error or exc
            walkers = [0]
            msg = (f"OpenMM failed between steps {self.step} and {self.step + n}: {err}. The "
                   f"{len(frames)} frame(s) recorded so far are in error.trajectory.")
            if isinstance(err, GridError):
                msg += " The CV left the bias grid: widen the grid or use outside='wall'."
            elif not isinstance(err, CVLearnError):
                msg += (" Usual causes: a timestep too large (try 0.001 ps or constraints='HBonds'), a bad "
                        "starting structure (pass minimize=True), or a bias too strong.")
            raise SimulationError(msg, step=self.step, walkers=walkers,
                                  trajectory=self._trajectory(frames)) from err

    def _event(self, record, paces, frames, rows, kinetic):
        """At a recorded frame (``record``) or an update step: check the state, evaluate the bias there,
        write the COLVAR row, update the biases at multiples of their pace; the :class:`Frame` if ``record``."""
        state = self._state(positions=True, energy=True)
        x = state.getPositions(asNumpy=True)._value.copy()
        epot = state.getPotentialEnergy()._value
        t_kin = 2.0 * state.getKineticEnergy()._value / (self._dof * BOLTZMANN)
        # 50 x the bath temperature is no thermal fluctuation: the integration has diverged.
        if not (math.isfinite(epot) and np.isfinite(x).all() and t_kin < 50.0 * self.temperature):
            raise SimulationError(
                f"The simulation blew up at step {self.step} (t = {self.time:g} ps): energy {epot:.4g} kJ/mol, "
                f"kinetic temperature {t_kin:.4g} K. The {len(frames)} frame(s) recorded so far are in "
                "error.trajectory. Try a smaller timestep, minimize=True, or a weaker bias.", step=self.step,
                walkers=[0], trajectory=self._trajectory(frames))
        try:
            ebias = self.bias_energy(x)
        except GridError as exc:
            raise SimulationError(f"{exc} (step {self.step})", step=self.step, walkers=[0],
                                  trajectory=self._trajectory(frames)) from exc
        frame = None
        if record:
            frame = Frame(self.step, self.time, x[None], np.array([epot]), np.array([ebias]))
            kinetic.append(t_kin)
            rows.write(frame)  # before the update: the COLVAR row is the bias that acted on this frame
        if any(self.step % p == 0 for p in paces):
            xt = torch.from_numpy(x)[None]
            for b in self.biases:
                if isinstance(b, Adaptive):
                    b.update(self.step, xt)
            self._biases_changed()
        return frame

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to continue this run: OpenMM's own checkpoint of the context (positions,
        velocities, time, step count and the integrator's random state: an exact continuation on this
        platform), positions and velocities (nm, nm/ps: a statistical continuation on any other
        platform), the step and the platform name. Biases keep their state in their own files."""
        state = self._state(positions=True, velocities=True)
        return {"openmm_checkpoint": np.frombuffer(self.context.createCheckpoint(), np.uint8),
                "positions": state.getPositions(asNumpy=True)._value,
                "velocities": state.getVelocities(asNumpy=True)._value, "step": np.array(self.step),
                "platform": np.array(self.platform_name)}

    def load_state_dict(self, state):
        """Restore a state from :meth:`state_dict`: exactly on the same platform, from positions and
        velocities on another one. Rebuild metadynamics biases from their HILLS (``restart=True``)."""
        if state["positions"].shape != (self.n_atoms, 3):
            raise ValueError(f"The checkpoint holds {state['positions'].shape[0]} atoms; this system has "
                             f"{self.n_atoms}.")
        if str(state["platform"]) == self.platform_name:
            self.context.loadCheckpoint(np.asarray(state["openmm_checkpoint"], dtype=np.uint8).tobytes())
        else:
            log.warning("Checkpoint from platform %s loaded on %s: continuing from positions and velocities "
                        "(statistically, not bit for bit).", state["platform"], self.platform_name)
            self.context.setPositions(state["positions"])
            self.context.setVelocities(state["velocities"])
        self.step = int(state["step"])
        self.context.setStepCount(self.step)  # the bias impulses of bias_interval > 1 follow it
        self._biases_changed()


def _next_multiple(step, periods):
    """Smallest step > ``step`` that is a multiple of one of ``periods``."""
    return min((step // p + 1) * p for p in periods)
