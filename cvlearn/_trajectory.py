"""Recorded frames of a (batched) simulation; saved to and loaded from .npz."""

import os

import numpy as np

from .io import save_npz_atomic

__all__ = ["Trajectory"]


class Trajectory:
    """Frames recorded by an engine: positions of every walker, with time and energies.

    Parameters
    ----------
    positions : ndarray
        (n_frames, n_walkers, n_particles, n_dims), nm.
    time : ndarray
        (n_frames,), ps.
    step : ndarray, optional
        (n_frames,) integration step of each frame.
    walker_ids : ndarray, optional
        (n_walkers,) id of each walker (0..n_walkers-1 by default).
    potential_energy, bias_energy : ndarray, optional
        (n_frames, n_walkers), kJ/mol. ``bias_energy`` is the bias acting at each frame (0 when
        unbiased), needed to reweight biased runs.
    temperature : float, optional
        K, of the run.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> traj = cl.Trajectory(np.zeros((5, 2, 1, 2)), time=np.arange(5) * 0.1, temperature=300.0)  # nm, ps, K
    >>> traj
    Trajectory(5 frames x 2 walkers, 1 particles in 2-D, t = 0..0.4 ps)
    >>> len(traj.per_walker()), traj.walker(1).positions.shape
    (2, (5, 1, 1, 2))
    >>> back = cl.Trajectory.load(traj.save("traj.npz"))
    >>> back.n_frames, back.n_walkers, back.temperature
    (5, 2, 300.0)
    """

    def __init__(self, positions, time, step=None, walker_ids=None, potential_energy=None,
                 bias_energy=None, temperature=None):
        self.positions = np.asarray(positions, dtype=np.float64)
        if self.positions.ndim != 4:
            raise ValueError("Trajectory positions must be (n_frames, n_walkers, n_particles, n_dims); "
                             f"got shape {self.positions.shape}.")
        n, w = self.positions.shape[:2]
        self.time = np.asarray(time, dtype=np.float64).reshape(n)
        self.step = np.arange(n) if step is None else np.asarray(step, dtype=np.int64).reshape(n)
        self.walker_ids = np.arange(w) if walker_ids is None else np.asarray(walker_ids, dtype=np.int64).reshape(w)
        def per_frame(a):
            return np.zeros((n, w)) if a is None else np.asarray(a, dtype=np.float64).reshape(n, w)

        self.potential_energy, self.bias_energy = per_frame(potential_energy), per_frame(bias_energy)
        self.temperature = None if temperature is None else float(temperature)

    @property
    def n_frames(self):
        return self.positions.shape[0]

    @property
    def n_walkers(self):
        return self.positions.shape[1]

    def __len__(self):
        return self.n_frames

    def per_walker(self):
        """List of position arrays (n_frames, n_particles, n_dims), one per walker (time order)."""
        return [self.positions[:, i] for i in range(self.n_walkers)]

    def walker(self, i):
        """The trajectory of walker ``i`` alone, as a one-walker Trajectory."""
        sl = slice(i, i + 1)
        return Trajectory(self.positions[:, sl], self.time, self.step, self.walker_ids[sl],
                          self.potential_energy[:, sl], self.bias_energy[:, sl], self.temperature)

    @classmethod
    def concatenate(cls, trajectories):
        """Join consecutive pieces of one run (same walkers) along time."""
        trajectories = [t for t in trajectories if t is not None]
        if not trajectories:
            raise ValueError("Nothing to concatenate.")
        first = trajectories[0]
        for t in trajectories[1:]:
            if t.positions.shape[1:] != first.positions.shape[1:]:
                raise ValueError("Cannot concatenate trajectories with different walkers/particles/dims: "
                                 f"{first.positions.shape[1:]} vs {t.positions.shape[1:]}.")
        cat = lambda name: np.concatenate([getattr(t, name) for t in trajectories])  # noqa: E731
        return cls(cat("positions"), cat("time"), cat("step"), first.walker_ids, cat("potential_energy"),
                   cat("bias_energy"), first.temperature)

    def save(self, path):
        """Write to ``path`` (.npz) atomically."""
        return save_npz_atomic(
            path, positions=self.positions, time=self.time, step=self.step, walker_ids=self.walker_ids,
            potential_energy=self.potential_energy, bias_energy=self.bias_energy,
            temperature=np.array(np.nan if self.temperature is None else self.temperature))

    @classmethod
    def load(cls, path):
        """Read a trajectory written by :meth:`save` (no pickle involved)."""
        try:
            d = np.load(os.fspath(path), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"Could not read trajectory file {path!s}: {exc}. Expected a .npz written "
                             "by cvlearn.Trajectory.save.") from None
        with d:
            missing = {"positions", "time"} - set(d.files)
            if missing:
                raise ValueError(f"{path!s} is not a cvlearn trajectory: missing {sorted(missing)}.")
            t = float(d["temperature"]) if "temperature" in d.files else float("nan")
            get = lambda k: d[k] if k in d.files else None  # noqa: E731
            return cls(d["positions"], d["time"], get("step"), get("walker_ids"), get("potential_energy"),
                       get("bias_energy"), None if np.isnan(t) else t)

    def __repr__(self):
        return (f"Trajectory({self.n_frames} frames x {self.n_walkers} walkers, "
                f"{self.positions.shape[2]} particles in {self.positions.shape[3]}-D, "
                f"t = {self.time[0] if self.n_frames else 0:g}..{self.time[-1] if self.n_frames else 0:g} ps)")
