"""Several single-walker engines run as one batched engine, sharing their biases (multiple walkers)."""

import numpy as np

from .._trajectory import Trajectory
from .._validation import check_positive
from ._common import progress_bar

__all__ = ["WalkerGroup"]


class WalkerGroup:
    """Walkers of a one-walker engine (e.g. :class:`cvlearn.engine.OpenMM`) that share one bias.

    The engines take turns: each runs ``chunk`` steps, then the next, so every walker sees the
    kernels or hills all the others deposited up to the last turn (the bias is one Python object
    they all hold). This is PLUMED's multiple walkers with the walkers reading each other's
    deposits every ``chunk`` steps, in one process; a molecule too small to fill a core with one
    walker gains nothing from parallel walkers anyway. ``run`` returns the frames of all walkers
    as one :class:`cvlearn.Trajectory` (frames, walkers, atoms, 3) on a common time axis.

    Use it with biases that deposit by step count and keep no per-step history tied to one engine's
    clock: :class:`cvlearn.OPES` with a fixed initial sigma, static biases. Well-tempered
    metadynamics' c(t) is indexed by step, which several walkers would overwrite; the constructor
    refuses it for more than one walker.

    Parameters
    ----------
    engines : sequence
        One-walker engines with the same temperature and timestep, each with its own random seed,
        all holding the same bias objects.
    chunk : int
        Steps each walker runs per turn (a multiple of every engine's stride you will ask for).

    Examples
    --------
    >>> import cvlearn as cl
    >>> pdb = cl.data.alanine_dipeptide_pdb()
    >>> group = cl.engine.WalkerGroup([cl.engine.OpenMM.from_pdb(pdb, seed=k) for k in range(2)], chunk=50)
    >>> traj = group.run(100, stride=50)          # 2 turns of 50 steps per walker, a frame every 0.1 ps
    >>> traj.positions.shape, traj.time.round(3).tolist()
    ((2, 2, 22, 3), [0.1, 0.2])
    """

    def __init__(self, engines, chunk=5000):
        self.engines = list(engines)
        if not self.engines:
            raise ValueError("WalkerGroup needs at least one engine.")
        self.chunk = check_positive(chunk, "chunk", "WalkerGroup", integer=True)
        first = self.engines[0]
        for e in self.engines[1:]:
            if abs(e.temperature - first.temperature) > 1e-9 or abs(e.timestep - first.timestep) > 1e-12:
                raise ValueError("The walkers of a WalkerGroup must share temperature and timestep; got "
                                 f"{first.temperature} K / {first.timestep} ps and {e.temperature} K / "
                                 f"{e.timestep} ps.")
        for b in self.biases if len(self.engines) > 1 else ():
            if hasattr(b, "c_of_t"):
                raise ValueError(f"{type(b).__name__} records c(t) by step, which walkers taking turns would "
                                 "overwrite; run one walker, or use OPES (its reweighting needs no c(t)).")

    @property
    def biases(self):
        seen = {}
        for e in self.engines:
            for b in e.biases:
                seen.setdefault(id(b), b)
        return list(seen.values())

    @property
    def n_walkers(self):
        return len(self.engines)

    @property
    def temperature(self):
        return self.engines[0].temperature

    @property
    def timestep(self):
        return self.engines[0].timestep

    @property
    def step(self):
        return self.engines[0].step

    def run(self, n_steps, stride=500, progress=False):
        """Run every walker ``n_steps`` steps in turns of ``chunk``; frames every ``stride`` steps."""
        n_steps = check_positive(n_steps, "n_steps", "WalkerGroup.run", integer=True)
        stride = check_positive(stride, "stride", "WalkerGroup.run", integer=True)
        turn = max(stride, self.chunk // stride * stride)
        parts = [[] for _ in self.engines]
        bar = progress_bar(progress, n_steps * len(self.engines), f"{len(self.engines)} walkers")
        done = 0
        try:
            while done < n_steps:
                todo = min(turn, n_steps - done)
                for i, engine in enumerate(self.engines):
                    engine._biases_changed()  # others deposited since its last turn
                    parts[i].append(engine.run(todo, stride=stride))
                    if bar is not None:
                        bar.update(todo)
                done += todo
        finally:
            if bar is not None:
                bar.close()
        walkers = [Trajectory.concatenate(p) for p in parts]
        n = min(w.n_frames for w in walkers)
        cat = lambda name: np.concatenate([getattr(w, name)[:n] for w in walkers], axis=1)  # noqa: E731
        return Trajectory(cat("positions"), walkers[0].time[:n], walkers[0].step[:n],
                          potential_energy=cat("potential_energy"), bias_energy=cat("bias_energy"),
                          temperature=self.temperature)

