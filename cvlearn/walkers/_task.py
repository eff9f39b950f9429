"""One walker of a multiple-walkers run, as a restartable task: the unit a launcher schedules.

Fault tolerance rests on one ordering. Every ``read_stride`` steps the walker first writes its
checkpoint (engine state plus the hills it deposited since the last flush) and only then appends
those hills to its ``HILLS.<id>``, where the other walkers can read them. A task killed at any
moment and run again therefore finds its file holding exactly the checkpointed hills, or fewer
(the flush was cut): it completes the file from the checkpoint and resumes from the checkpointed
state, so no hill is lost or written twice, and its bias is again the sum over all files.
"""

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..bias import Grid, SharedHills
from ..io import PlumedWriter, read_plumed_table, save_npz_atomic, truncate_after

__all__ = ["Walker", "WalkerReport", "run_walker", "walker_paths"]


@dataclass(frozen=True)
class Walker:
    """What ``make_engine`` receives: one walker of a run whose walkers share ``walkers_dir``.

    Attributes
    ----------
    walker_id : int
        0 to ``n_walkers - 1``.
    n_walkers : int
    walkers_dir : str
        Absolute path of the directory all walkers share (their HILLS, COLVAR and checkpoints).
    seed : int
        This walker's own seed for the engine (spawned from the run's seed).
    read_stride : int or None
        Steps between reads of the other walkers' hills (None: the bias's ``pace``).
    restart : bool
        True when the walker resumes from its checkpoint and files (its bias is rebuilt from all files).

    Examples
    --------
    >>> import cvlearn as cl
    >>> w = cl.walkers.Walker(walker_id=1, n_walkers=4, walkers_dir="/shared/run1", seed=12345)
    >>> w.metad_kwargs         # for WellTemperedMetad(cv, ..., **w.metad_kwargs) inside make_engine
    {'walkers_dir': '/shared/run1', 'walker_id': 1, 'n_walkers': 4, 'restart': False}
    """

    walker_id: int
    n_walkers: int
    walkers_dir: str
    seed: int
    read_stride: int | None = None
    restart: bool = False

    @property
    def metad_kwargs(self):
        """Keyword arguments that make a :class:`cvlearn.WellTemperedMetad` this walker's bias:
        ``WellTemperedMetad(cv, ..., **walker.metad_kwargs)``."""
        kwargs = {"walkers_dir": self.walkers_dir, "walker_id": self.walker_id, "n_walkers": self.n_walkers,
                  "restart": self.restart}
        if self.read_stride is not None:
            kwargs["read_stride"] = self.read_stride
        return kwargs


@dataclass
class WalkerReport:
    """What one walker's task returns.

    ``bias`` is its final bias on ``grid`` (kJ/mol), the sum of the first ``hills_read[j]`` hills of
    each walker j's file; ``n_hills`` the hills it deposited; ``restarts`` how often its task was
    resumed from its checkpoint (e.g. after its worker process died). ``wall_time_s`` in seconds,
    ``temperature`` in K.

    Examples
    --------
    >>> import os, cvlearn as cl
    >>> from cvlearn.app import DemoWalkers
    >>> demo = DemoWalkers("muller-brown", explore_steps=1000)
    >>> os.makedirs("run")
    >>> report = cl.walkers.run_walker(demo, cl.walkers.Walker(0, 1, os.path.abspath("run"), seed=1), n_steps=300)
    >>> report.walker_id, report.steps, report.n_hills, report.hills_read, report.restarts
    (0, 300, 3, [3], 0)
    >>> report.bias.shape == report.grid.shape                         # kJ/mol on the bias grid
    True
    """

    walker_id: int
    steps: int
    n_hills: int
    hills_read: list
    restarts: int
    wall_time_s: float
    bias: np.ndarray
    grid: Grid
    temperature: float


def walker_paths(walkers_dir, walker_id):
    """``{"hills", "colvar", "checkpoint"}`` paths of one walker (PLUMED's ``<FILE>.<id>`` naming).

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.walkers.walker_paths("/shared/run1", 3)
    {'hills': '/shared/run1/HILLS.3', 'colvar': '/shared/run1/COLVAR.3', 'checkpoint': '/shared/run1/checkpoint.3.npz'}
    """
    return {"hills": os.path.join(walkers_dir, f"HILLS.{walker_id}"),
            "colvar": os.path.join(walkers_dir, f"COLVAR.{walker_id}"),
            "checkpoint": os.path.join(walkers_dir, f"checkpoint.{walker_id}.npz")}


def run_walker(make_engine, walker, n_steps, stride=100, threads=1, progress=None):
    """Run (or resume) one walker to ``n_steps`` steps in this process; returns a :class:`WalkerReport`.

    The Dask launcher (:func:`cvlearn.walkers.run`) runs this as one task per walker; a SLURM job
    array or any other launcher can call it directly, one walker per job.

    Parameters
    ----------
    make_engine : callable
        ``make_engine(walker: Walker) ->`` a :class:`cvlearn.Langevin` with one walker (``n_walkers=1``)
        or a :class:`cvlearn.engine.OpenMM`, with a :class:`cvlearn.WellTemperedMetad` built with
        ``**walker.metad_kwargs``. Picklable (a module-level function or class instance) to run on
        other processes.
    walker : Walker
    n_steps : int
        Total steps of this walker; a resumed walker runs only the remaining ones.
    stride : int
        Steps between COLVAR rows; must divide the bias's ``read_stride``.
    threads : int
        torch intra-op threads (1: walkers share the cores).
    progress : callable, optional
        ``progress(walker_id, step)``, called every ``read_stride`` steps.

    Returns
    -------
    WalkerReport

    Examples
    --------
    One walker of two, run here (as one task of a SLURM array would), then resumed to more steps:

    >>> import os, cvlearn as cl
    >>> from cvlearn.app import DemoWalkers
    >>> demo = DemoWalkers("muller-brown", explore_steps=1000)
    >>> os.makedirs("run")                      # on a cluster: a directory every walker's machine sees
    >>> walker = cl.walkers.Walker(0, 2, os.path.abspath("run"), seed=1)
    >>> cl.walkers.run_walker(demo, walker, n_steps=200).n_hills
    2
    >>> again = cl.walkers.run_walker(demo, walker, n_steps=400)        # continues from its checkpoint
    >>> again.steps, again.n_hills, again.restarts
    (400, 4, 1)
    """
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    paths = walker_paths(walker.walkers_dir, walker.walker_id)
    state = _load_state(paths["checkpoint"])
    restart = state is not None
    if restart:
        _complete_hills(paths["hills"], state, paths["checkpoint"])
    engine = make_engine(dataclasses.replace(walker, restart=restart))
    if restart:  # the COLVAR rows written after the checkpoint: the resumed walker writes them again
        truncate_after(paths["colvar"], float(state["time"]), engine.timestep)
    metad = _walker_bias(engine, walker)
    if metad.read_stride % stride:
        raise ValueError(f"stride ({stride} steps between COLVAR rows) must divide the bias's read_stride "
                         f"({metad.read_stride}): the walker checkpoints at the frames where it flushes its hills.")
    metad.autoflush = False  # hills reach the file only after a checkpoint that holds them
    restarts = 0
    if restart:
        engine.load_checkpoint(paths["checkpoint"])
        restarts = int(state["restarts"]) + 1

    def commit():
        save_npz_atomic(paths["checkpoint"], **engine.state_dict(), **metad.walker_state(), time=engine.time,
                        restarts=restarts)
        metad.flush_hills()
        if progress is not None:
            progress(walker.walker_id, engine.step)

    def at_frame(frame):
        if frame.step % metad.read_stride == 0:
            commit()

    try:
        if not restart:
            commit()  # from now on a rerun of this task resumes instead of starting over
        if engine.step < n_steps:
            engine.run(n_steps - engine.step, stride=stride, colvar=paths["colvar"], restart=restart,
                       callback=at_frame)
        commit()
    finally:
        metad.close()
    return WalkerReport(walker.walker_id, engine.step, metad.walker_hill_counts[walker.walker_id],
                        metad.walker_hill_counts, restarts, time.perf_counter() - t0, metad.field.values(),
                        metad.grid, metad.temperature)


def _walker_bias(engine, walker):
    """The engine's metadynamics bias set up as ``walker`` (a clear error if make_engine got it wrong)."""
    if engine.n_walkers != 1:
        raise ValueError(f"make_engine returned an engine with {engine.n_walkers} walkers; each task runs one "
                         "walker, so build it with n_walkers=1 (the launcher runs n_walkers tasks).")
    shared = [b for b in engine.biases if isinstance(b, SharedHills) and b.walker_files is not None]
    files = shared[0].walker_files if len(shared) == 1 else None
    if (files is None or files.walker_id != walker.walker_id or files.n_walkers != walker.n_walkers
            or os.path.abspath(files.directory) != os.path.abspath(walker.walkers_dir)):
        raise ValueError(f"make_engine must give walker {walker.walker_id} exactly one WellTemperedMetad built with "
                         "**walker.metad_kwargs (walkers_dir, walker_id, n_walkers, restart of that walker); got "
                         f"{len(shared)} multiple-walkers bias(es){' for another walker' if files else ''}.")
    return shared[0]


def _load_state(path):
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _complete_hills(path, state, checkpoint):
    """Append the checkpointed hills that a killed flush did not write (dropping a half-written line)."""
    pending = state["hills_pending"]
    fields, _, rows, _ = read_plumed_table(path)
    n_ckpt = int(state["n_hills_in_file"])
    if not n_ckpt <= len(rows) <= n_ckpt + len(pending):
        raise RuntimeError(f"{path} holds {len(rows)} hills, but {checkpoint} expects {n_ckpt} plus up to "
                           f"{len(pending)} being flushed: the file was changed outside this walker. Restore it or "
                           "start a new run (resume=False).")
    if len(rows) < n_ckpt + len(pending):
        with PlumedWriter(path, fields, append=True) as writer:
            writer.write(pending[len(rows) - n_ckpt:])

