"""Launch walkers that share one bias on Dask: one task per walker, on a LocalCluster or any cluster.

Dask only schedules: the walkers talk through their HILLS files (PLUMED's multiple-walkers
protocol), so no server of cvlearn's own is involved, and a task that Dask reruns after its worker
died resumes from its checkpoint and files (see :func:`cvlearn.walkers.run_walker`).
"""

import logging
import os
import re
import time
import uuid
from dataclasses import dataclass

import numpy as np

from .._validation import check_positive
from ..bias import read_hills, walker_files
from ..exceptions import CVLearnError
from ..io import backup, read_plumed_table
from ._task import Walker, run_walker

__all__ = ["run", "connect", "WalkersResult", "SchedulerUnreachableError"]

log = logging.getLogger("cvlearn")

#: Files of a previous run that a new (not resumed) run keeps as bck.N.<name> before starting.
_RUN_FILES = re.compile(r"(HILLS|COLVAR)\.\d+|checkpoint\.\d+\.npz|fes\.npz")


class SchedulerUnreachableError(CVLearnError, ConnectionError):
    """No Dask scheduler answered at the given address within the timeout.

    Also a ``ConnectionError``; raised by :func:`connect` and :func:`run` with a scheduler address.

    Examples
    --------
    >>> import cvlearn as cl
    >>> try:
    ...     cl.walkers.connect("tcp://127.0.0.1:9", timeout=0.5)     # nothing listens there
    ... except cl.walkers.SchedulerUnreachableError as err:
    ...     print(isinstance(err, (cl.CVLearnError, ConnectionError)), str(err).split(" (")[0])
    True No Dask scheduler answered at 'tcp://127.0.0.1:9' within 0.5 s
    """


@dataclass
class WalkersResult:
    """What :func:`run` returns.

    Attributes
    ----------
    walkers_dir : str
        Holds ``HILLS.<id>``, ``COLVAR.<id>``, ``checkpoint.<id>.npz`` of every walker and ``fes.npz``.
    walkers : list of WalkerReport
        One per walker, by id.
    bias : cvlearn.bias.StaticBias
        The sum of the hills of all walkers' files (what PLUMED sums from the same directory).
    fes : cvlearn.fes.FreeEnergySurface
        Free energy implied by ``bias`` (kJ/mol), also saved as ``walkers_dir/fes.npz``.
    wall_time_s : float

    Examples
    --------
    Two walkers of 400 steps on an in-process Dask cluster (any cluster's client works the same):

    >>> import cvlearn as cl
    >>> from distributed import Client
    >>> from cvlearn.app import DemoWalkers
    >>> demo = DemoWalkers("muller-brown", explore_steps=1000)     # picklable make_engine
    >>> with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
    ...     result = cl.walkers.run(demo, n_walkers=2, n_steps=400, walkers_dir="walkers", client=client,
    ...                             progress=False)
    >>> [(w.walker_id, w.steps, w.n_hills) for w in result.walkers]       # pace 100: a hill every 100 steps
    [(0, 400, 4), (1, 400, 4)]
    >>> result.hills["walker"].tolist()                                   # as read back from HILLS.0, HILLS.1
    [0, 0, 0, 0, 1, 1, 1, 1]
    >>> result.fes.F.shape == result.bias.grid.shape
    True
    """

    walkers_dir: str
    walkers: list
    bias: object
    fes: object
    wall_time_s: float

    @property
    def hills(self):
        """All walkers' hills, read from their files: time (ps), center (n, d), height (kJ/mol, as
        deposited), walker (id); the keys of ``WellTemperedMetad.hills``."""
        parts = []
        for j, path in walker_files(self.walkers_dir):
            fields, _, rows, _ = read_plumed_table(path)
            rows = np.array(rows, dtype=np.float64).reshape(-1, len(fields))
            parts.append(np.column_stack([rows[:, [fields.index(c) for c in ("time", *self.bias.names, "height")]],
                                          np.full(len(rows), j)]))
        a = np.concatenate(parts)
        gamma = self.bias.bias_factor  # PLUMED writes well-tempered heights times gamma / (gamma - 1)
        scale = 1.0 if gamma is None else (gamma - 1.0) / gamma
        return {"time": a[:, 0], "center": a[:, 1:-2], "height": a[:, -2] * scale, "walker": a[:, -1].astype(np.int64)}

    @property
    def walker_steps_per_s(self):
        """Steps of all walkers per second of wall time (launch and merge included)."""
        return sum(w.steps for w in self.walkers) / self.wall_time_s


def connect(address, timeout=10.0):
    """A ``dask.distributed.Client`` of the scheduler at ``address`` (e.g. ``tcp://host:8786``).

    Parameters
    ----------
    address : str
    timeout : float
        Seconds.

    Returns
    -------
    distributed.Client

    Raises
    ------
    SchedulerUnreachableError
        If no scheduler answers within ``timeout`` seconds (never hangs longer).

    Examples
    --------
    >>> import cvlearn as cl
    >>> from distributed import LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
    ...     with cl.walkers.connect(cluster.scheduler_address, timeout=5.0) as client:
    ...         print(client.submit(sum, [1, 2, 3]).result())
    6
    """
    Client = _distributed().Client
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachableError(
            f"No Dask scheduler answered at {address!r} within {timeout:g} s ({exc}). Check the address (e.g. "
            "tcp://host:8786) and that the scheduler is running (`dask scheduler`, or a dask-jobqueue cluster's "
            "scheduler_address), or leave the address out to run on a LocalCluster.") from exc


def run(make_engine, n_walkers, n_steps, walkers_dir, client=None, *, stride=100, read_stride=None, seed=0,
        resume=False, progress=True, threads=1, n_workers=None, timeout=10.0):
    """Run ``n_walkers`` walkers that share one metadynamics bias, one Dask task per walker.

    Each walker appends its hills to ``walkers_dir/HILLS.<id>`` and reads the others' every
    ``read_stride`` steps (PLUMED's multiple-walkers files). If a worker process dies, Dask reruns
    its task and the walker resumes from its checkpoint and files, losing and repeating no hill.

    Parameters
    ----------
    make_engine : callable
        ``make_engine(walker: cvlearn.walkers.Walker) ->`` a :class:`cvlearn.Langevin` (one walker,
        ``n_walkers=1``) or a :class:`cvlearn.engine.OpenMM`, whose :class:`cvlearn.WellTemperedMetad` is
        built with ``**walker.metad_kwargs``. It runs on the workers, so it must be picklable (a
        module-level function or a class instance, e.g. :class:`cvlearn.app.DemoWalkers` or
        :class:`cvlearn.app.AlanineWalkers`).
    n_walkers : int
    n_steps : int
        Steps per walker.
    walkers_dir : str
        Created if missing. On a cluster it must be on a file system every worker shares.
    client : dask.distributed.Client or str, optional
        A client of any cluster (LocalCluster, dask-jobqueue's SLURMCluster, Kubernetes...), or a
        scheduler address; default: a LocalCluster of ``n_workers`` processes, closed at the end.
    stride : int
        Steps between COLVAR rows; must divide ``read_stride``.
    read_stride : int, optional
        Steps between reads of the other walkers' files (default: the bias's ``pace``).
    seed : int
        Seed of the run; walker i gets the i-th seed spawned from it.
    resume : bool
        Continue an interrupted run in ``walkers_dir`` from its checkpoints. Otherwise the files of
        an earlier run there are kept as ``bck.N.<name>`` and the walkers start anew.
    progress : bool
        One tqdm bar over the steps of all walkers, fed by the tasks through Dask events.
    threads : int
        torch threads per walker task.
    n_workers : int, optional
        Worker processes of the default LocalCluster (default: min(n_walkers, usable cores)).
    timeout : float
        Seconds to wait for a scheduler given by address.

    Returns
    -------
    WalkersResult

    Examples
    --------
    >>> import cvlearn as cl
    >>> from distributed import Client
    >>> from cvlearn.app import DemoWalkers
    >>> demo = DemoWalkers("muller-brown", explore_steps=1000)     # picklable make_engine
    >>> with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
    ...     result = cl.walkers.run(demo, n_walkers=2, n_steps=400, walkers_dir="walkers", client=client,
    ...                             progress=False)
    >>> sorted(name for name in os.listdir("walkers") if not name.startswith("."))
    ['COLVAR.0', 'COLVAR.1', 'HILLS.0', 'HILLS.1', 'checkpoint.0.npz', 'checkpoint.1.npz', 'fes.npz']
    >>> result.fes
    FreeEnergySurface(tic1; ... bins; T=300.0 K)
    """
    n_walkers = check_positive(n_walkers, "n_walkers", "walkers.run", integer=True)
    n_steps = check_positive(n_steps, "n_steps", "walkers.run", integer=True)
    stride = check_positive(stride, "stride", "walkers.run", integer=True)
    if read_stride is not None:
        read_stride = check_positive(read_stride, "read_stride", "walkers.run", integer=True)
    t0 = time.perf_counter()
    walkers_dir = os.path.abspath(os.fspath(walkers_dir))
    os.makedirs(walkers_dir, exist_ok=True)
    if not resume:
        for name in sorted(os.listdir(walkers_dir)):
            if _RUN_FILES.fullmatch(name):
                backup(os.path.join(walkers_dir, name))
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_walkers)]
    walkers = [Walker(i, n_walkers, walkers_dir, seeds[i], read_stride) for i in range(n_walkers)]
    owned = []  # what this call opened, closed at the end
    if client is None:
        dd = _distributed()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        cluster = dd.LocalCluster(n_workers=n_workers or min(n_walkers, cores), threads_per_worker=1,
                                  processes=True, dashboard_address=None)
        client = dd.Client(cluster)
        owned += [client, cluster]
    elif isinstance(client, str):
        client = connect(client, timeout)
        owned.append(client)
    topic = f"cvlearn-walkers-{uuid.uuid4().hex}"
    bar = _Progress(n_walkers, n_steps, client, topic) if progress else None
    try:
        futures = [client.submit(run_walker, make_engine, w, n_steps, stride, threads,
                                 _DaskProgress(topic) if progress else None, key=f"{topic}-walker-{w.walker_id}",
                                 pure=False) for w in walkers]
        reports = client.gather(futures)
    finally:
        if bar is not None:
            bar.close()
        for thing in owned:
            thing.close()
    first = reports[0]
    bias = read_hills(walkers_dir, grid=first.grid, temperature=first.temperature)
    fes = bias.free_energy()
    fes.save(os.path.join(walkers_dir, "fes.npz"))
    return WalkersResult(walkers_dir, list(reports), bias, fes, time.perf_counter() - t0)


class _DaskProgress:
    """``progress(walker_id, step)`` for tasks: a Dask event that the client's bar subscribes to."""

    def __init__(self, topic):
        self.topic = topic

    def __call__(self, walker_id, step):
        try:
            worker = _distributed().get_worker()
        except ValueError:  # not inside a Dask worker (e.g. run_walker called directly)
            return
        worker.log_event(self.topic, {"walker": walker_id, "step": int(step)})


class _Progress:
    """One tqdm bar over all walkers' steps; a resumed walker's count may step back to its checkpoint."""

    def __init__(self, n_walkers, n_steps, client, topic):
        from tqdm.auto import tqdm

        self.steps = [0] * n_walkers
        self.bar = tqdm(total=n_walkers * n_steps, desc=f"{n_walkers} walkers", unit="step", mininterval=0.5)
        self.client, self.topic = client, topic
        client.subscribe_topic(topic, self._event)

    def _event(self, event):
        msg = event[1]
        self.steps[msg["walker"]] = msg["step"]
        self.bar.n = sum(self.steps)
        self.bar.refresh()

    def close(self):
        self.client.unsubscribe_topic(self.topic)
        self.bar.close()


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError("cvlearn.walkers needs Dask's distributed scheduler: pip install 'cvlearn[distributed]' "
                          "(or pip install 'dask[distributed]').") from exc
    return distributed
