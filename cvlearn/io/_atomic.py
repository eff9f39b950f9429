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
    """``np.savez(path, **arrays)`` through a temporary file renamed into place; returns ``path``."""
    return _atomic(path, lambda fh: np.savez(fh, **arrays), ".npz")


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed into place."""
    return _atomic(path, lambda fh: fh.write(text.encode()), ".tmp")
