"""What both engines share: the :class:`Frame` of callbacks, the bias list and its binding, HILLS files,
COLVAR rows, frames -> :class:`Trajectory`, checkpoint files and the progress bar.

The calls these make on biases, and when, are the contract of :mod:`cvlearn.bias._protocol`.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch

from .._trajectory import Trajectory
from ..bias import Bias, Bindable, ColvarWriter, HillsWriter
from ..io import PlumedWriter, save_npz_atomic

__all__ = ["ColvarFiles", "Engine", "Frame", "bias_list", "bind_biases", "open_hills", "progress_bar"]


@dataclass
class Frame:
    """What an engine hands to callbacks at each recorded frame.

    ``step`` (global step count) and ``time`` (ps); ``positions`` (walkers, particles, dims) nm;
    ``potential_energy`` and ``bias_energy`` (walkers,) kJ/mol. :class:`cvlearn.Langevin` gives torch
    tensors on its device; :class:`cvlearn.engine.OpenMM` numpy arrays, positions (1, atoms, 3).

    Examples
    --------
    A callback receives one Frame per recorded frame:

    >>> import cvlearn as cl
    >>> seen = []
    >>> engine = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=3, seed=0)
    >>> _ = engine.run(100, stride=50, callback=lambda frame: seen.append((frame.step, round(frame.time, 3),
    ...                                                                      tuple(frame.positions.shape))))
    >>> seen                                                  # step, time (ps), (walkers, particles, dims)
    [(50, 0.25, (3, 1, 2)), (100, 0.5, (3, 1, 2))]
    """

    step: int
    time: float
    positions: torch.Tensor | np.ndarray
    potential_energy: torch.Tensor | np.ndarray
    bias_energy: torch.Tensor | np.ndarray


def bias_list(bias):
    """The engine's list of biases from ``bias=``: None, one :class:`~cvlearn.bias.Bias` or a list of them."""
    biases = [] if bias is None else list(bias) if isinstance(bias, (list, tuple)) else [bias]
    for b in biases:
        if not isinstance(b, Bias):
            raise TypeError(f"A bias needs energy(positions) -> (walkers,) kJ/mol (cvlearn.bias.Bias); got "
                            f"{type(b).__name__}.")
    return biases


def bind_biases(biases, temperature, timestep):
    """Hand the engine's temperature (K) and timestep (ps) to every :class:`~cvlearn.bias.Bindable` bias."""
    for b in biases:
        if isinstance(b, Bindable):
            b.bind(temperature, timestep)


def open_hills(biases, hills, restart):
    """Point the biases that write hills at the file ``hills`` (None: leave them as they are)."""
    if hills is None:
        return
    holders = [b for b in biases if isinstance(b, HillsWriter)]
    if not holders:
        raise ValueError("hills= was given but no bias deposits hills (pass bias=WellTemperedMetad(...)).")
    for b in holders:
        b.open_hills(hills, restart=restart)


def _numpy(values):
    """float64 numpy array of a tensor (any device) or array-like."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


class ColvarFiles:
    """PLUMED COLVAR rows (time, then the biases' :meth:`~cvlearn.bias.ColvarWriter.colvar` columns) at
    recorded frames: to ``path`` for one walker, to ``<path>.<walker>`` for several (PLUMED's
    multiple-walkers naming); flushed per row. ``path`` None writes nothing.

    The files open at the first row, since a bias knows its columns once it has been evaluated.
    Without a ColvarWriter bias the columns are time and potential energy (kJ/mol). ``restart``:
    append to existing files instead of backing them up.
    """

    def __init__(self, path, biases, n_walkers, restart):
        self.path, self.n_walkers, self.restart = path, n_walkers, restart
        self.biases = [b for b in biases if isinstance(b, ColvarWriter)]
        self.writers, self.fields = None, None

    def write(self, frame):
        """One row per walker for ``frame`` (a :class:`Frame`), from the biases' last evaluation."""
        if self.path is None:
            return
        values = {}
        for b in self.biases:
            values.update(b.colvar())
        if self.writers is None:
            self.fields = list(values)
            names = ["time", *self.fields] if self.fields else ["time", "energy"]
            paths = [self.path] if self.n_walkers == 1 else [f"{self.path}.{i}" for i in range(self.n_walkers)]
            self.writers = [PlumedWriter(p, names, append=self.restart) for p in paths]
        cols = [values[k] for k in self.fields] if self.fields else [frame.potential_energy]
        table = np.column_stack([np.full(self.n_walkers, frame.time),
                                 *[_numpy(c).reshape(self.n_walkers) for c in cols]])
        for writer, row in zip(self.writers, table):
            writer.write(row)

    def close(self):
        for writer in self.writers or ():
            writer.close()


def progress_bar(show, total, desc):
    """A tqdm bar over ``total`` steps, or None when ``show`` is false (tqdm is imported only then)."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", mininterval=0.5)


def _stack(values):
    """Per-frame tensors or arrays stacked along a new first axis, as float64 numpy."""
    if isinstance(values[0], torch.Tensor):  # one transfer from the device for all frames
        return torch.stack(values).cpu().double().numpy()
    return np.stack(values).astype(np.float64)


class Engine:
    """What an engine does the same way whatever it integrates: time, recorded frames as a
    :class:`Trajectory`, checkpoint files.

    A subclass sets ``step``, ``timestep`` (ps), ``temperature`` (K) and ``n_walkers``, and defines
    ``state_dict()`` (arrays that continue the run exactly), ``load_state_dict(state)`` and
    ``_frame_shape`` ((walkers, particles, dims) of one frame).
    """

    @property
    def time(self):
        """Simulated time, ps."""
        return self.step * self.timestep

    def save_checkpoint(self, path):
        """Write :meth:`state_dict` to ``path`` (.npz) atomically; continue with :meth:`load_checkpoint`
        and ``run(..., restart=True)``. Returns the path."""
        return save_npz_atomic(path, **self.state_dict())

    def load_checkpoint(self, path):
        """Continue from a checkpoint written by :meth:`save_checkpoint` (no pickle involved); returns the engine.

        Metadynamics biases are rebuilt from their HILLS files (``restart=True``), not from the checkpoint.
        """
        with np.load(os.fspath(path), allow_pickle=False) as d:
            self.load_state_dict({k: d[k] for k in d.files})
        return self

    def _biases_changed(self):
        """A bias changed between runs outside this engine's updates (another walker of a
        :class:`WalkerGroup` deposited). Nothing to do here: an engine that caches bias forces drops them."""

    def _end_run(self, bar, rows, checkpoint):
        """Close a run's progress bar and :class:`ColvarFiles`, and write its checkpoint (None: none): at its
        end, and also when it fails or is interrupted."""
        if bar is not None:
            bar.close()
        rows.close()
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)

    def _trajectory(self, frames):
        """The :class:`Trajectory` of recorded :class:`Frame` s (frames, walkers, particles, dims)."""
        if not frames:
            return Trajectory(np.zeros((0, *self._frame_shape)), np.zeros(0), np.zeros(0, dtype=np.int64),
                              temperature=self.temperature)
        return Trajectory(_stack([f.positions for f in frames]), np.array([f.time for f in frames]),
                          np.array([f.step for f in frames]),
                          potential_energy=_stack([f.potential_energy for f in frames]),
                          bias_energy=_stack([f.bias_energy for f in frames]), temperature=self.temperature)
