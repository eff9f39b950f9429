"""Batched Langevin dynamics (BAOAB) for analytic systems, in torch."""

import logging
import math
import warnings

import numpy as np
import torch
from torch.utils import _pytree as pytree

from .._validation import check_positive
from ..bias import Adaptive, CVBias
from ..exceptions import GridError, SimulationError
from ..units import BOLTZMANN, as_float
from ._common import ColvarFiles, Engine, Frame, bias_list, bind_biases, open_hills, progress_bar
from ._fused import FusedSteps, eager_step_seconds, fusable_biases, own_deposits
from ._noise import NoiseStream, gaussian_noise, noise_keys

__all__ = ["Langevin"]

log = logging.getLogger("cvlearn")

#: ``compile="auto"`` compiles when the eager steps of a run are expected to take this long (s). Compiling
#: took 10 s (inductor's C++ cache warm) to 30 s (cold) on 2 busy cores, and inductor cannot cache the
#: graph of a while_loop on disk, so every new process pays at least the 10 s.
AUTO_COMPILE_SECONDS = 20.0


class Langevin(Engine):
    """Langevin dynamics of many independent walkers at once, with the BAOAB splitting.

    BAOAB (Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34) samples configurations with
    a time-step error far smaller than other splittings; the O step is the exact
    Ornstein-Uhlenbeck update ``v <- c v + sqrt((1 - c^2) kT / m) xi`` with ``c = exp(-friction dt)``.

    Parameters
    ----------
    system : cvlearn.systems.System
        The potential.
    temperature : float, optional
        K (default: the system's).
    timestep : float
        ps.
    friction : float
        Collision rate, 1/ps.
    n_walkers : int
        Number of independent walkers integrated together.
    seed : int or None
        Seed of the engine's random numbers (initial velocities and noise); same seed, same run. The noise
        of each step is a pure function of the seed and the step (:mod:`cvlearn.engine._noise`), so runs
        and restarts continue one stream; None draws a fresh seed.
    bias : object or list of objects, optional
        Each a :class:`cvlearn.bias.Bias` (``energy(positions) -> (walkers,)`` kJ/mol, differentiable
        in the positions), whose force is added; the engine makes the calls of the engine-bias contract
        (:mod:`cvlearn.bias._protocol`) on those that support them: ``bind`` once at start, ``update``
        after every step (e.g. to deposit metadynamics hills), ``colvar`` for the COLVAR columns.
    positions : array_like, optional
        Start configuration, (particles, dims) or (walkers, particles, dims), nm. Default: the
        system's ``start_positions()``.
    device : str or torch.device
        Where to integrate ("cpu", "cuda", ...).
    dtype : torch.dtype
        float64 (default) or float32.
    compile : {"auto", True, False}
        Integrate the steps between two events (recorded frames, Python-side bias updates, the end of a
        run) as one ``torch.compile`` d block (:mod:`cvlearn.engine._fused`): the system's and the biases'
        forces, the noise, the BAOAB update and metadynamics deposits without returning to Python, tens
        of times faster for a few walkers. It needs every bias to be a :class:`cvlearn.bias.Fusable`
        (metadynamics, OPES, static grid biases, walls and restraints are; OPES with adaptive sigma then
        samples the CV every ``pace`` steps, as on OpenMM, instead of every step), and compiling costs
        20-30 s once per configuration, ~4-5 s in a later process that finds it in inductor's disk cache
        (``TORCHINDUCTOR_CACHE_DIR``), nothing in the same process (``compile_seconds``). Engines with
        fewer than 4096 position values run the blocks on one thread, so a busy machine does not stall
        them. False: always the eager steps. True: fused whenever possible. "auto": fused
        for a ``run`` whose eager steps would take at least ``AUTO_COMPILE_SECONDS`` by a fixed cost model,
        so that the choice, like the trajectory, depends only on the arguments (e.g. ``run(20000)`` of 8
        walkers with one bias compiles, ``run(5000)`` does not). The noise is the same either way and fused
        steps equal eager ones up to round-off, which chaotic dynamics amplifies over long runs: a seed
        reproduces a run exactly with the same ``compile`` choice, restarts included. When compilation is
        unavailable the engine warns once and runs the eager steps.

    Attributes
    ----------
    compile_seconds : float
        Seconds this engine spent compiling fused steps (0 when it found them compiled in the process).
    compile_failure : str or None
        Why compiling failed (the engine then runs the eager steps), or None.
    planned_steps : int
        Steps the coming ``run`` calls will take together (0 by default): ``compile="auto"`` decides on the
        larger of this and a call's own ``n_steps``, so a run made of short chunks (checkpointed pieces of
        one simulation) is compiled when the whole is worth it.

    Examples
    --------
    >>> import cvlearn as cl
    >>> eng = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=4, seed=0)
    >>> traj = eng.run(200, stride=50)
    >>> traj.positions.shape
    (4, 4, 1, 2)
    """

    def __init__(self, system, temperature=None, timestep=0.005, friction=1.0, n_walkers=1, seed=0,
                 bias=None, positions=None, device="cpu", dtype=torch.float64, compile="auto"):
        owner = "Langevin"
        if compile not in ("auto", True, False):
            raise ValueError(f"compile must be 'auto', True or False; got {compile!r}.")
        self.compile = compile if compile == "auto" else bool(compile)
        self.system = system
        self.temperature = check_positive(as_float(system.temperature if temperature is None else temperature, "K"),
                                          "temperature", owner)
        self.timestep = check_positive(as_float(timestep, "ps"), "timestep", owner)
        self.friction = check_positive(as_float(friction, "1/ps"), "friction", owner, allow_zero=True)
        self.n_walkers = check_positive(n_walkers, "n_walkers", owner, integer=True)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}.")
        self.device, self.dtype = torch.device(device), dtype
        self.biases = bias_list(bias)
        self.seed = seed
        self.noise_key, velocity_key = noise_keys(seed)
        if self.device.type != "cpu":
            self.system.to(self.device)
            for b in self.biases:  # a bias's CV reads the walkers' positions: same device
                if isinstance(b, CVBias) and isinstance(b.cv, torch.nn.Module):
                    b.cv.to(self.device)
        self._masses = system.masses.to(self.device, dtype)[None, :, None]
        self.kT = BOLTZMANN * self.temperature
        bind_biases(self.biases, self.temperature, self.timestep)
        self.positions = self._initial_positions(positions)
        self.velocities = gaussian_noise(velocity_key, 0, self.positions.shape, dtype, self.device) * torch.sqrt(
            self.kT / self._masses)
        self._noise = NoiseStream(self.noise_key, self.positions.shape, dtype, self.device)
        self.step = 0
        self._forces = None
        self.planned_steps = 0
        self._saved_bias_states = {}  # bias states of a loaded checkpoint, adopted at the next run
        self._fused = None  # FusedSteps, made at the first run that uses them
        self._fused_refused = False  # compile=True but the biases cannot be fused: warned once

    def _set_noise_key(self, key):
        self.noise_key = key
        self._noise = NoiseStream(key, self.positions.shape, self.dtype, self.device)

    @property
    def compile_seconds(self):
        """Seconds this engine spent compiling its fused steps."""
        return 0.0 if self._fused is None else self._fused.compile_seconds

    @property
    def compile_failure(self):
        """Why compiling the fused steps failed (one line; the engine then runs the eager steps), or None."""
        return None if self._fused is None else self._fused.failure

    def _initial_positions(self, positions):
        p = self.system.start_positions() if positions is None else torch.as_tensor(np.asarray(positions))
        p = p.to(self.device, self.dtype)
        shape = (self.system.n_particles, self.system.n_dims)
        if tuple(p.shape) == shape:
            p = p.expand(self.n_walkers, *shape).clone()
        if tuple(p.shape) != (self.n_walkers, *shape):
            raise ValueError(f"positions must have shape {shape} or {(self.n_walkers, *shape)} "
                             f"(walkers, particles, dims); got {tuple(p.shape)}.")
        if not torch.isfinite(p).all():
            raise ValueError("Initial positions contain NaN or infinite values.")
        return p

    @property
    def _frame_shape(self):
        return self.n_walkers, self.system.n_particles, self.system.n_dims

    def kinetic_temperature(self):
        """Instantaneous kinetic temperature (K) over all walkers (no constraints)."""
        ekin2 = (self._masses * self.velocities**2).sum()
        return float(ekin2 / (self.velocities.numel() * BOLTZMANN))

    def _energy_forces(self, x):
        e, f = self.system.energy_and_forces(x)
        if not self.biases:
            return e, torch.zeros_like(e), f
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            eb = sum(b.energy(xg) for b in self.biases)
            (g,) = torch.autograd.grad(eb.sum(), xg)
        return e, eb.detach(), f - g

    def _check(self, x, e, eb, f, frames, step):
        # One reduction on the hot path: a sum is finite only if every term is.
        if bool(torch.isfinite(e.sum() + eb.sum() + f.sum() + x.sum())):
            return
        ok = torch.isfinite(e) & torch.isfinite(eb) & torch.isfinite(f).flatten(1).all(1) & torch.isfinite(
            x).flatten(1).all(1)
        bad = torch.nonzero(~ok).flatten().tolist()
        traj = self._trajectory(frames)
        raise SimulationError(
            f"The simulation blew up at step {step} (t = {step * self.timestep:g} ps): non-finite energy, force or "
            f"position for walker(s) {bad[:10]}{'...' if len(bad) > 10 else ''}. The {traj.n_frames} frame(s) "
            "recorded so far are in error.trajectory. Usual causes: a timestep too large for the stiffest "
            "force (try halving it), a walker leaving the region where the potential is defined, or a bias "
            "too strong for the timestep.",
            step=step, walkers=bad, trajectory=traj)

    def run(self, n_steps, stride=100, progress=False, callback=None, colvar=None, hills=None, checkpoint=None,
            restart=False):
        """Integrate ``n_steps`` steps and return the frames recorded every ``stride`` steps.

        The engine keeps its state, so consecutive ``run`` calls continue one simulation. A frame is
        recorded whenever the global step count is a multiple of ``stride`` (the starting
        configuration is not recorded). ``callback(frame: Frame)`` is called at each recorded frame.

        Parameters
        ----------
        colvar : str, optional
            Write PLUMED COLVAR rows (time, CVs, biases) at each frame: to this path for one walker,
            to ``<path>.<walker>`` for several (PLUMED's multiple-walkers naming). Flushed per row.
        hills : str, optional
            HILLS file of the metadynamics bias (PLUMED format, flushed per deposition).
        checkpoint : str, optional
            Write the engine state (positions, velocities, step, RNG) here, atomically, at the end of
            the run and when it is interrupted or fails, so it can be resumed with
            :meth:`load_checkpoint` and ``restart=True``.
        restart : bool
            Append to existing COLVAR/HILLS files (the bias is rebuilt from HILLS) instead of backing
            them up and starting new ones.

        Raises
        ------
        SimulationError
            If energies, forces or positions become non-finite, or a CV leaves a bias grid; it carries
            the step, the walkers and the frames recorded so far.
        """
        n_steps = check_positive(n_steps, "n_steps", "Langevin.run", integer=True)
        stride = check_positive(stride, "stride", "Langevin.run", integer=True)
        open_hills(self.biases, hills, restart)
        self._adopt_bias_states()
        frames = []
        rows = ColvarFiles(colvar, self.biases, self.n_walkers, restart)
        bar = progress_bar(progress, n_steps, "Langevin")
        try:
            if self._forces is None:
                self._forces = self._guarded_forces(self.positions, frames, self.step)
            updates = [b.update for b in self.biases if isinstance(b, Adaptive)]
            fused = self._fused_steps(n_steps)
            # Blocks end at frames and, fused, where a bias updates in Python (eager steps update every step).
            periods = [stride] if fused is None else [stride, *fused.periods]
            end = self.step + n_steps
            while self.step < end:
                # A block: the steps up to the next frame, Python update or the end of the run.
                n = min(end, *((self.step // p + 1) * p for p in periods)) - self.step
                if fused is not None:
                    n = min(n, fused.max_steps)
                if fused is not None and fused.failure is None and fused.advance(n):
                    for update in fused.updates:
                        update(self.step, self.positions)
                else:
                    for _ in range(n):
                        self._step_once(frames, updates)
                if self.step % stride == 0:
                    frame = Frame(self.step, self.time, self.positions.detach().clone(), self._energies[0],
                                  self._energies[1])
                    frames.append(frame)
                    rows.write(frame)
                    if callback is not None:
                        callback(frame)
                if bar is not None:
                    bar.update(n)
        finally:
            self._end_run(bar, rows, checkpoint)
        return self._trajectory(frames)

    def _fused_steps(self, n_steps):
        """The engine's :class:`FusedSteps` if this run of ``n_steps`` uses them (see ``compile``), else None."""
        if self.compile is False or (self._fused is not None and self._fused.failure is not None):
            return None
        why_not = fusable_biases(self.biases)
        if why_not is not None:
            if self.compile is True and not self._fused_refused:
                self._fused_refused = True
                warnings.warn(f"cvlearn.Langevin: compile=True but {why_not}; running the eager steps.",
                              RuntimeWarning, stacklevel=3)
            return None
        if self.compile == "auto":
            seconds = max(n_steps, self.planned_steps) * eager_step_seconds(self.n_walkers, len(self.biases))
            if seconds < AUTO_COMPILE_SECONDS:
                return None
        if self._fused is None:
            self._fused = FusedSteps(self)
        return self._fused

    def _step_once(self, frames, updates):
        """One BAOAB step; forces of the new positions are evaluated once and kept for the next step.

        New tensors (not in-place updates) for x and v: recorded frames and a failing step must
        never see half-updated state.
        """
        half_dt, c1, noise_scale, inv_m = self._coefficients
        with torch.no_grad():
            v = torch.addcmul(self.velocities, self._forces, inv_m, value=half_dt)
            x = self.positions + half_dt * v
            noise = self._noise(self.step)
            v = torch.addcmul(c1 * v, noise, noise_scale)
            x = x.add_(v, alpha=half_dt)
        f = self._guarded_forces(x, frames, self.step + 1)
        self.step += 1
        with torch.no_grad():
            v = v.addcmul_(f, inv_m, value=half_dt)
        self.positions, self.velocities, self._forces = x, v, f
        for update in updates:
            update(self.step, x)

    @property
    def _coefficients(self):
        """(dt/2, exp(-friction dt), sqrt((1 - c1^2) kT / m), 1/m), cached per engine."""
        if getattr(self, "_coef_cache", None) is None:
            c1 = math.exp(-self.friction * self.timestep)
            self._coef_cache = (0.5 * self.timestep, c1, torch.sqrt((1.0 - c1**2) * self.kT / self._masses),
                                1.0 / self._masses)
        return self._coef_cache

    def _guarded_forces(self, x, frames, step):
        """Energies and forces at ``x`` (the configuration of ``step``), or a SimulationError that
        keeps the recorded frames; the engine's state stays at the last good step."""
        try:
            e, eb, f = self._energy_forces(x)
        except GridError as exc:
            raise SimulationError(f"{exc} (step {step}; the {len(frames)} frame(s) recorded so far are in "
                                  "error.trajectory)", step=step, walkers=exc.walkers,
                                  trajectory=self._trajectory(frames)) from exc
        self._check(x, e, eb, f, frames, step)
        self._energies = (e, eb)
        return f

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to continue this run exactly: positions, velocities, forces, step, noise key."""
        state = {"positions": self.positions.cpu().double().numpy().copy(),
                 "velocities": self.velocities.cpu().double().numpy().copy(),
                 "step": np.array(self.step), "noise_key": np.array(self.noise_key, dtype=np.int64)}
        if self._forces is not None:
            # BAOAB's first half-kick uses the forces of the last step, computed before that step's
            # hills were deposited; recomputing them after a restart would change the trajectory.
            state["forces"] = self._forces.cpu().double().numpy().copy()
        # The grids of metadynamics biases: a compiled deposit and a rebuild from the HILLS file agree only
        # to round-off, so a restart adopts these (after checking the rebuild against them) to go on exactly.
        for i in own_deposits(self.biases):
            leaves = pytree.tree_leaves(self.biases[i].fused_state(torch.float64, self.device))
            state.update({f"bias{i}_state{j}": t.cpu().numpy().copy() for j, t in enumerate(leaves)})
        return state

    def load_state_dict(self, state):
        """Restore a state from :meth:`state_dict` (the same run continues bit for bit)."""
        shape = tuple(self.positions.shape)
        if tuple(state["positions"].shape) != shape:
            raise ValueError(f"Checkpoint positions have shape {tuple(state['positions'].shape)}, "
                             f"this engine has {shape} (walkers, particles, dims).")
        self.positions = torch.as_tensor(state["positions"]).to(self.device, self.dtype)
        self.velocities = torch.as_tensor(state["velocities"]).to(self.device, self.dtype)
        self.step = int(state["step"])
        if "noise_key" in state:
            self._set_noise_key(int(state["noise_key"]))
        else:  # a checkpoint of an earlier cvlearn (torch's generator): the stream of this engine's seed goes on
            warnings.warn("This checkpoint holds the random state of an older cvlearn version (torch's generator), "
                          "whose stream this version no longer draws: the run continues exactly from its positions, "
                          "velocities and forces, with this engine's noise (seed) from now on.", RuntimeWarning,
                          stacklevel=2)
        forces = state.get("forces")
        self._forces = None if forces is None else torch.as_tensor(forces).to(self.device, self.dtype)
        self._saved_bias_states = {i: [np.asarray(state[k]) for k in sorted(
            (k for k in state if k.startswith(f"bias{i}_state")), key=lambda k: int(k.rsplit("state", 1)[1]))]
            for i in own_deposits(self.biases)}

    def _adopt_bias_states(self):
        """After a checkpoint was loaded and the biases rebuilt from their files: adopt the checkpoint's
        bias states, once each is checked against the rebuilt one (the HILLS file must hold the same hills)."""
        saved, self._saved_bias_states = self._saved_bias_states, {}
        for i, arrays in saved.items():
            if not arrays:  # a checkpoint of a run without this bias's state: the rebuilt bias stands
                continue
            bias = self.biases[i]
            leaves, spec = pytree.tree_flatten(bias.fused_state(torch.float64, self.device))
            for now, then in zip(leaves, arrays):
                worst = float(np.max(np.abs(now.cpu().numpy() - then), initial=0.0))
                if worst > 1e-8 * (1.0 + float(np.max(np.abs(then), initial=0.0))):
                    raise ValueError(
                        f"The checkpoint's {type(bias).__name__} bias differs from the one rebuilt from its files by "
                        f"up to {worst:.3g} kJ/mol: restart with the HILLS file the checkpointed run wrote (and "
                        "restart=True), or start a new run without load_checkpoint.")
            state = pytree.tree_unflatten([torch.as_tensor(a).to(t) for a, t in zip(arrays, leaves)], spec)
            bias.fused_commit(state, [], [], self.step)
