"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind.

The file gets the permissions an ordinary ``open(path, "w")`` would give it: those of the file it
replaces, or 0666 less the process's umask for a new one (0644 under the usual umask 022), so a
group on a cluster can read a CV or a report (a bare temporary file would be 0600).
"""

import os
import stat
import tempfile
import threading

import numpy as np

__all__ = ["save_npz_atomic", "write_bytes_atomic", "write_text_atomic"]


_UMASK_LOCK = threading.Lock()


def _umask():
    """The process's umask, without changing it (Linux: /proc; elsewhere set and restored under a lock)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(path):
    """Permission bits a plain ``open(path, "w")`` leaves: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _atomic(path, write, suffix):
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=os.path.dirname(os.path.abspath(path)))
    try:
        os.chmod(tmp, _mode_for(path))
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def save_npz_atomic(path, **arrays):
    """``np.savez(path, **arrays)`` through a temporary file renamed into place.

    Parameters
    ----------
    path : str or path-like
        Destination (``.npz``). Its directory must exist.
    **arrays : array_like
        Arrays to store, by name (units are the caller's; cvlearn stores nm, ps, kJ/mol, K).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import numpy as np
    >>> from cvlearn.io import save_npz_atomic
    >>> save_npz_atomic("fes.npz", F=np.array([0.0, 1.5]), temperature=300.0)
    'fes.npz'
    >>> np.load("fes.npz")["F"].tolist()
    [0.0, 1.5]
    """
    return _atomic(path, lambda fh: np.savez(fh, **arrays), ".npz")


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed into place.

    A reader never sees a half-written file: it sees the old one or the new one.

    Parameters
    ----------
    path : str or path-like
        Destination. Its directory must exist.
    text : str

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> from cvlearn.io import write_text_atomic
    >>> write_text_atomic("report.json", '{"delta_f": 1.2}')
    'report.json'
    >>> open("report.json").read()
    '{"delta_f": 1.2}'
    """
    return _atomic(path, lambda fh: fh.write(text.encode()), ".tmp")


def write_bytes_atomic(path, data):
    """Write ``data`` (bytes, e.g. a torch.save buffer) to ``path`` through a temporary file renamed into place.

    The file gets the user's umask like any other; returns ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> from cvlearn.io import write_bytes_atomic
    >>> os.chdir(tempfile.mkdtemp())
    >>> write_bytes_atomic("model.pt", b"cvlearn")
    'model.pt'
    >>> open("model.pt", "rb").read()
    b'cvlearn'
    """
    return _atomic(path, lambda fh: fh.write(data), ".tmp")
