"""TorchScript export of a trained CV (for PLUMED's PYTORCH module, OpenMM, or plain torch.jit.load)."""

import io

import torch

from ..io import write_bytes_atomic

__all__ = ["to_torchscript"]


def to_torchscript(cv, path=None, dtype=None):
    """Compile ``cv`` with ``torch.jit.script`` (converted to ``dtype`` if given); write it to ``path``.

    The compiled module computes the same values as the eager one; load it anywhere with
    ``torch.jit.load(path)``, without cvlearn.

    Parameters
    ----------
    cv : torch.nn.Module
        A :class:`cvlearn.learners.CollectiveVariable` (positions in nm -> CV) or its ``.model``
        (features -> CV). Not modified (a copy is compiled).
    path : str or path-like, optional
        Where to save it (written atomically).
    dtype : torch.dtype, optional
        E.g. ``torch.float32`` for PLUMED's PYTORCH module.

    Returns
    -------
    torch.jit.ScriptModule

    Examples
    --------
    >>> import numpy as np, torch, cvlearn as cl
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> cv = cl.PCA(n_components=1).fit(X).to_module(featurizer=cl.features.Positions(1, 2))
    >>> _ = cl.export.to_torchscript(cv, "cv_script.pt")
    >>> scripted = torch.jit.load("cv_script.pt")                    # no cvlearn needed from here on
    >>> x = torch.tensor([[[0.2, -0.1]]], dtype=torch.float64)       # (walkers, particles, dims), nm
    >>> bool(torch.allclose(scripted(x), cv(x)))
    True
    """
    import copy

    module = copy.deepcopy(cv).eval()
    scripted = torch.jit.script(module if dtype is None else module.to(dtype))
    if path is not None:
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        write_bytes_atomic(path, buffer.getvalue())
    return scripted
