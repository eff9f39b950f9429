"""Walkers that share one bias across processes and machines.

The walkers follow PLUMED's multiple-walkers file protocol (each appends its hills to
``<dir>/HILLS.<id>`` and rereads the others', see :class:`cvlearn.WellTemperedMetad`'s
``walkers_dir``); :func:`run` launches them as Dask tasks on a LocalCluster or any Dask cluster.
Dask is imported only when a run starts (``pip install 'cvlearn[distributed]'``).
"""

from ._launch import SchedulerUnreachableError, WalkersResult, connect, run
from ._task import Walker, WalkerReport, run_walker, walker_paths

__all__ = ["run", "run_walker", "connect", "Walker", "WalkerReport", "WalkersResult", "SchedulerUnreachableError",
           "walker_paths"]
