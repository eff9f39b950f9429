"""PLUMED's multiple-walkers files: each walker appends to ``<dir>/HILLS.<id>`` and rereads the others.

This module holds the file side of the protocol (naming, the lock that keeps walker ids unique, the
incremental reader of growing files); :class:`cvlearn.WellTemperedMetad` adds what it reads to its
grid, so its bias stays a pure function of the hills in the files.
"""

import logging
import os
import re
import socket
import warnings

import numpy as np

from ..io import PlumedFileError, parse_plumed_text

try:  # advisory locks: POSIX only; elsewhere duplicate walker ids go undetected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["HillsTail", "WalkerFiles", "walker_files", "fsync_path"]

log = logging.getLogger("cvlearn")


def walker_files(directory, file="HILLS"):
    """``[(walker_id, path), ...]`` of the ``<file>.<id>`` files in ``directory``, by id (PLUMED's naming).

    Examples
    --------
    >>> import os, cvlearn as cl
    >>> os.makedirs("run")
    >>> for name in ("HILLS.10", "HILLS.2", "COLVAR.2"):
    ...     _ = open(os.path.join("run", name), "w").write("")
    >>> cl.bias.walker_files("run")
    [(2, 'run/HILLS.2'), (10, 'run/HILLS.10')]
    """
    pattern = re.compile(re.escape(file) + r"\.(\d+)$")
    found = [(int(m.group(1)), os.path.join(directory, name))
             for name in os.listdir(directory) if (m := pattern.match(name))]
    return sorted(found)


def fsync_path(path):
    """Push a file's written data to its storage (on NFS: to the server, so other machines see it).

    Any descriptor of the file flushes all its dirty pages (Linux, NFS), so the writer need not expose its own.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HillsTail:
    """Reads the complete lines appended to one growing HILLS file since the previous read.

    A line without its newline (another process is still writing it) is left for the next read,
    never parsed half. Each read costs one ``stat`` when the file has not grown (the common case
    with many walkers), and one open, seek and read of the new bytes when it has.

    Attributes
    ----------
    offset : int
        Bytes consumed so far (always the end of a complete line).
    fields : list of str or None
        Column names of the ``#! FIELDS`` header in force at ``offset``.
    constants : dict
        ``#! SET`` lines read so far (e.g. ``min_<cv>``, ``max_<cv>`` of periodic CVs).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.offset, self.fields, self.constants = 0, None, {}
        self._lines = 0  # complete lines consumed, for error messages

    def read(self):
        """New hills as a list of ``(fields, rows)`` blocks (rows: float64 (n, len(fields)))."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:  # that walker has not started yet
            return []
        if size < self.offset:
            raise ValueError(f"{self.path} shrank from {self.offset} to {size} bytes while walkers read it: a "
                             "walker's HILLS file was replaced or truncated. Walker files must only grow; start "
                             "a new run in an empty walkers_dir, or restart every walker (restart=True).")
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            raw = fh.read(size - self.offset)
        complete = raw[: raw.rfind(b"\n") + 1]
        try:
            text = complete.decode("utf-8")
        except UnicodeDecodeError as err:
            line = self._lines + 1 + complete.count(b"\n", 0, err.start)
            raise PlumedFileError(f"{self.path}, line {line}: bytes that are not UTF-8 text; is this a PLUMED "
                                  "HILLS file?", path=self.path, line=line) from None
        blocks = parse_plumed_text(text, self.path, self._lines + 1, self.fields, self.constants)
        if blocks:  # a restarted writer may repeat its header, in another column order: kept per block
            self.fields, self.constants = blocks[-1].fields, blocks[-1].constants
        self.offset += len(complete)
        self._lines += complete.count(b"\n")
        return [(b.fields, b.data) for b in blocks if len(b.data)]


class WalkerFiles:
    """The files one walker uses among ``n_walkers`` sharing ``directory`` (PLUMED's ``WALKERS_DIR``).

    Walker ``walker_id`` writes ``<directory>/<file>.<walker_id>`` and reads the other ``n_walkers - 1``
    files. While this object is open it holds an advisory lock on ``<directory>/.<file>.<walker_id>.lock``,
    so a second walker with the same id (in any process sharing the file system) is refused; the
    operating system drops the lock when the process dies, so a restarted walker takes it over.

    Raises
    ------
    FileNotFoundError, NotADirectoryError, PermissionError, ValueError
        With the path, what was expected and how to fix it.
    """

    def __init__(self, directory, walker_id, n_walkers, file="HILLS"):
        if isinstance(walker_id, bool) or not isinstance(walker_id, (int, np.integer)):
            raise TypeError(f"walker_id must be an int in [0, n_walkers); got {walker_id!r}.")
        if isinstance(n_walkers, bool) or not isinstance(n_walkers, (int, np.integer)) or n_walkers < 1:
            raise ValueError(f"n_walkers must be a positive int (the number of walkers sharing walkers_dir); "
                             f"got {n_walkers!r}.")
        if not 0 <= walker_id < n_walkers:
            raise ValueError(f"walker_id must be in [0, n_walkers) = [0, {n_walkers}); got {walker_id}. Walkers "
                             "count from 0, as PLUMED's WALKERS_ID.")
        if not file or os.sep in file or (os.altsep and os.altsep in file):
            raise ValueError(f"With walkers_dir, hills= is the file name prefix (PLUMED's FILE, default 'HILLS'), "
                             f"not a path; got {file!r}. The files are walkers_dir/<prefix>.<walker_id>.")
        self.directory = os.fspath(directory)
        if not os.path.exists(self.directory):
            raise FileNotFoundError(f"walkers_dir {self.directory!r} does not exist. Create it first "
                                    "(os.makedirs) on a file system that every walker's machine shares.")
        if not os.path.isdir(self.directory):
            raise NotADirectoryError(f"walkers_dir {self.directory!r} is not a directory; pass the directory "
                                     "that holds (or will hold) the HILLS.<id> files.")
        self.walker_id, self.n_walkers, self.file = int(walker_id), int(n_walkers), file
        self.own_path = self.path(self.walker_id)
        self._lock = self._acquire_lock()
        self.tails = {j: HillsTail(self.path(j)) for j in range(self.n_walkers) if j != self.walker_id}

    def path(self, walker_id):
        return os.path.join(self.directory, f"{self.file}.{walker_id}")

    def _acquire_lock(self):
        path = os.path.join(self.directory, f".{self.file}.{self.walker_id}.lock")
        try:
            fh = open(path, "a+")
        except OSError as exc:
            raise PermissionError(f"walkers_dir {self.directory!r} is not writable ({exc.strerror}): walker "
                                  f"{self.walker_id} must create its files there. Fix the permissions or choose a "
                                  "directory you can write to.") from exc
        if fcntl is None:
            return fh
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            fh.close()
            raise ValueError(f"Walker {self.walker_id} of walkers_dir {self.directory!r} is already running "
                             f"({holder} holds {path}). Each walker needs its own walker_id in "
                             f"[0, {self.n_walkers}).") from None
        except OSError as exc:  # e.g. a file system mounted without lock support
            warnings.warn(f"Cannot lock {path} ({exc.strerror}); two walkers with the same id would go "
                          "undetected on this file system.", RuntimeWarning, stacklevel=4)
            return fh
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        return fh

    def close(self):
        """Release the walker id (closing the lock file drops the lock)."""
        if not self._lock.closed:
            self._lock.close()
