"""TorchScript export of a trained CV (for PLUMED's PYTORCH module, OpenMM, or plain torch.jit.load)."""

import io

import torch

from ..io._atomic import _atomic

__all__ = ["to_torchscript"]


def to_torchscript(cv, path=None, dtype=None):
    """Compile ``cv`` with ``torch.jit.script`` (converted to ``dtype`` if given); write it to ``path``.

    The compiled module computes the same values as the eager one; load it anywhere with
    ``torch.jit.load(path)``, without cvlearn.
    """
    import copy

    module = copy.deepcopy(cv).eval()
    scripted = torch.jit.script(module if dtype is None else module.to(dtype))
    if path is not None:
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        _atomic(path, lambda fh: fh.write(buffer.getvalue()), ".pt")
    return scripted
