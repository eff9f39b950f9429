"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind."""

import os
import tempfile

import numpy as np

__all__ = ["save_npz_atomic", "write_text_atomic"]


def _atomic(path, write, suffix):
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=os.path.dirname(os.path.abspath(path)))
    try:
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
