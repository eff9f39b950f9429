"""Batched Langevin dynamics (BAOAB) for analytic systems, in torch."""

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_positive
from ..exceptions import SimulationError
from ..units import BOLTZMANN, as_float
from ._trajectory import Trajectory

__all__ = ["Langevin", "Frame"]

log = logging.getLogger("cvlearn")


@dataclass
class Frame:
    """What an engine hands to callbacks at each recorded frame (tensors on the engine's device).

    ``positions`` (walkers, particles, dims) nm; ``potential_energy`` and ``bias_energy``
    (walkers,) kJ/mol; ``time`` ps.
    """

    step: int
    time: float
    positions: torch.Tensor
    potential_energy: torch.Tensor
    bias_energy: torch.Tensor


class Langevin:
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
        Seed of the engine's own random generator (velocities and noise); same seed, same run.
    bias : object, optional
        Anything with ``energy(positions) -> (walkers,)`` kJ/mol, differentiable in the positions;
        its force is added. If it has ``update(step, positions)``, that is called after every
        step (e.g. to deposit metadynamics hills).
    positions : array_like, optional
        Start configuration, (particles, dims) or (walkers, particles, dims), nm. Default: the
        system's ``start_positions()``.
    device : str or torch.device
        Where to integrate ("cpu", "cuda", ...).
    dtype : torch.dtype
        float64 (default) or float32.

    Examples
    --------
    >>> import cvlearn as cl
    >>> eng = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=4, seed=0)
    >>> traj = eng.run(200, stride=50)
    >>> traj.positions.shape
    (4, 4, 1, 2)
    """

    def __init__(self, system, temperature=None, timestep=0.005, friction=1.0, n_walkers=1, seed=0,
                 bias=None, positions=None, device="cpu", dtype=torch.float64):
        owner = "Langevin"
        self.system = system
        self.temperature = check_positive(as_float(system.temperature if temperature is None else temperature, "K"),
                                          "temperature", owner)
        self.timestep = check_positive(as_float(timestep, "ps"), "timestep", owner)
        self.friction = check_positive(as_float(friction, "1/ps"), "friction", owner, allow_zero=True)
        self.n_walkers = check_positive(n_walkers, "n_walkers", owner, integer=True)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}.")
        self.device, self.dtype = torch.device(device), dtype
        self.bias = bias
        self.seed = seed
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is not None
                              else torch.seed())
        if self.device.type != "cpu":
            self.system.to(self.device)
        self._masses = system.masses.to(self.device, dtype)[None, :, None]
        self.kT = BOLTZMANN * self.temperature
        self.positions = self._initial_positions(positions)
        self.velocities = torch.randn(self.positions.shape, generator=self._gen, device=self.device,
                                      dtype=dtype) * torch.sqrt(self.kT / self._masses)
        self.step = 0
        self._forces = None

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
    def time(self):
        """Simulated time, ps."""
        return self.step * self.timestep

    def kinetic_temperature(self):
        """Instantaneous kinetic temperature (K) over all walkers (no constraints)."""
        ekin2 = (self._masses * self.velocities**2).sum()
        return float(ekin2 / (self.velocities.numel() * BOLTZMANN))

    def _energy_forces(self, x):
        e, f = self.system.energy_and_forces(x)
        if self.bias is None:
            return e, torch.zeros_like(e), f
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            eb = self.bias.energy(xg)
            (g,) = torch.autograd.grad(eb.sum(), xg)
        return e, eb.detach(), f - g

    def _check(self, x, e, eb, f, frames):
        # One reduction on the hot path: a sum is finite only if every term is.
        if bool(torch.isfinite(e.sum() + eb.sum() + f.sum() + x.sum())):
            return
        ok = torch.isfinite(e) & torch.isfinite(eb) & torch.isfinite(f).flatten(1).all(1) & torch.isfinite(
            x).flatten(1).all(1)
        bad = torch.nonzero(~ok).flatten().tolist()
        traj = self._to_trajectory(frames)
        raise SimulationError(
            f"The simulation blew up at step {self.step} (t = {self.time:g} ps): non-finite energy, force or "
            f"position for walker(s) {bad[:10]}{'...' if len(bad) > 10 else ''}. The {traj.n_frames} frame(s) "
            "recorded so far are in error.trajectory. Usual causes: a timestep too large for the stiffest "
            "force (try halving it), a walker leaving the region where the potential is defined, or a bias "
            "too strong for the timestep.",
            step=self.step, walkers=bad, trajectory=traj)

    def run(self, n_steps, stride=100, progress=False, callback=None):
        """Integrate ``n_steps`` steps and return the frames recorded every ``stride`` steps.

        The engine keeps its state, so consecutive ``run`` calls continue one simulation. A frame is
        recorded whenever the global step count is a multiple of ``stride`` (the starting
        configuration is not recorded). ``callback(frame: Frame)`` is called at each recorded frame.

        Raises
        ------
        SimulationError
            If energies, forces or positions become non-finite; it carries the step, the
            walkers and the frames recorded so far.
        """
        n_steps = check_positive(n_steps, "n_steps", "Langevin.run", integer=True)
        stride = check_positive(stride, "stride", "Langevin.run", integer=True)
        dt = self.timestep
        c1 = math.exp(-self.friction * dt)
        noise_scale = torch.sqrt((1.0 - c1**2) * self.kT / self._masses)
        inv_m = 1.0 / self._masses
        x, v = self.positions, self.velocities
        frames = []
        if self._forces is None:
            e, eb, f = self._energy_forces(x)
            self._check(x, e, eb, f, frames)
            self._forces = f
        f = self._forces
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, desc="Langevin", unit="step", mininterval=0.5)
        update = getattr(self.bias, "update", None)
        try:
            for _ in range(n_steps):
                with torch.no_grad():
                    v = v + (0.5 * dt) * f * inv_m
                    x = x + (0.5 * dt) * v
                    v = c1 * v + noise_scale * torch.randn(v.shape, generator=self._gen, device=v.device, dtype=v.dtype)
                    x = x + (0.5 * dt) * v
                e, eb, f = self._energy_forces(x)
                self.step += 1
                self._check(x, e, eb, f, frames)
                with torch.no_grad():
                    v = v + (0.5 * dt) * f * inv_m
                self.positions, self.velocities, self._forces = x, v, f
                if update is not None:
                    update(self.step, x)
                if self.step % stride == 0:
                    frame = Frame(self.step, self.time, x.detach().clone(), e, eb)
                    frames.append(frame)
                    if callback is not None:
                        callback(frame)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return self._to_trajectory(frames)

    def _to_trajectory(self, frames):
        n, shape = len(frames), (self.n_walkers, self.system.n_particles, self.system.n_dims)
        if n == 0:
            return Trajectory(np.zeros((0, *shape)), np.zeros(0), np.zeros(0, dtype=np.int64),
                              temperature=self.temperature)
        return Trajectory(
            torch.stack([fr.positions for fr in frames]).cpu().double().numpy(),
            np.array([fr.time for fr in frames]),
            np.array([fr.step for fr in frames]),
            potential_energy=torch.stack([fr.potential_energy for fr in frames]).cpu().double().numpy(),
            bias_energy=torch.stack([fr.bias_energy for fr in frames]).cpu().double().numpy(),
            temperature=self.temperature)

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to continue this run exactly: positions, velocities, step, RNG state."""
        return {"positions": self.positions.cpu().double().numpy(),
                "velocities": self.velocities.cpu().double().numpy(),
                "step": np.array(self.step), "rng_state": self._gen.get_state().numpy()}

    def load_state_dict(self, state):
        """Restore a state from :meth:`state_dict` (the same run continues bit for bit)."""
        shape = tuple(self.positions.shape)
        if tuple(state["positions"].shape) != shape:
            raise ValueError(f"Checkpoint positions have shape {tuple(state['positions'].shape)}, "
                             f"this engine has {shape} (walkers, particles, dims).")
        self.positions = torch.as_tensor(state["positions"]).to(self.device, self.dtype)
        self.velocities = torch.as_tensor(state["velocities"]).to(self.device, self.dtype)
        self.step = int(state["step"])
        self._gen.set_state(torch.as_tensor(np.asarray(state["rng_state"], dtype=np.uint8)))
        self._forces = None
