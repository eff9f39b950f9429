"""Saving and loading trained CVs: a state dict plus JSON metadata, loaded without pickle."""

import io
import json
import os
import warnings

import torch

from .. import hooks
from ._atomic import write_bytes_atomic

__all__ = ["save", "load"]


# Entries of the saved metadata around the CV's own config (which holds "model", "featurizer", "names").
_ENVELOPE = ("format", "cvlearn_version", "class", "units", "info")


def save(cv, path, info=None):
    """Save a trained CV (a :class:`cvlearn.learners.CollectiveVariable`) to ``path`` (.pt).

    The file holds the state dict and JSON metadata (class, featurizer, architecture, names,
    cvlearn version, units, and your ``info`` dict, e.g. the learner's parameters). It is loaded
    by :func:`load` with ``torch.load(weights_only=True)``: no pickle, no code from the file runs.
    Each part is described by its class's :func:`cvlearn.hooks.to_config`.

    Parameters
    ----------
    cv : cvlearn.learners.CollectiveVariable
        From a learner's ``to_module()``; its featurizer must be a cvlearn featurizer (or none, or a
        class registered with :func:`cvlearn.hooks.register_config`).
    path : str or path-like
        Destination, conventionally ``.pt``; written atomically.
    info : dict, optional
        JSON-serialisable extra metadata, returned as ``cv.info`` after :func:`load`.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> cv = cl.PCA(n_components=1).fit(X).to_module(featurizer=cl.features.Positions(1, 2))
    >>> cl.save(cv, "cv.pt", info={"lagtime": 0})
    'cv.pt'
    >>> cl.load("cv.pt").info
    {'lagtime': 0}
    """
    from .._version import __version__

    config = hooks.to_config(cv)
    meta = {"format": "cvlearn-cv", "cvlearn_version": __version__, "class": config.pop("type"), **config,
            "units": {"length": "nm", "energy": "kJ/mol", "time": "ps", "angle": "rad"}, "info": info or {}}
    buffer = io.BytesIO()
    torch.save({"metadata": json.dumps(meta), "state_dict": {k: v.cpu() for k, v in cv.state_dict().items()}},
               buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load(path, map_location="cpu"):
    """Load a CV saved by :func:`save` (safe: ``weights_only=True``); warns if saved by another version.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    map_location : str or torch.device
        Device for the loaded tensors (default "cpu").

    Returns
    -------
    cvlearn.learners.CollectiveVariable
        In eval mode, with the saved featurizer and names; ``.info`` holds the saved ``info`` dict.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a CV saved by :func:`save` (e.g. a TorchScript export).

    Examples
    --------
    >>> import numpy as np, torch, cvlearn as cl
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> cv = cl.PCA(n_components=1).fit(X).to_module(featurizer=cl.features.Positions(1, 2))
    >>> _ = cl.save(cv, "cv.pt")
    >>> back = cl.load("cv.pt")
    >>> x = torch.tensor([[[0.3, -0.2]]], dtype=torch.float64)   # (frames, atoms, dim) in nm
    >>> bool(torch.allclose(back(x), cv(x)))
    True
    """
    from .._version import __version__

    if not os.path.exists(os.fspath(path)):
        raise FileNotFoundError(f"No saved CV at {path}.")
    try:
        blob = torch.load(os.fspath(path), map_location=map_location, weights_only=True)
        meta = json.loads(blob["metadata"])
    except Exception as exc:
        raise ValueError(f"{path} is not a CV saved by cvlearn.save ({type(exc).__name__}: {exc}). Save CVs with "
                         "cl.save(cv, path); a TorchScript export loads with torch.jit.load instead.") from None
    if meta.get("format") != "cvlearn-cv":
        raise ValueError(f"{path} is not a CV saved by cvlearn.save; save CVs with cl.save(cv, path).")
    if meta["cvlearn_version"] != __version__:
        warnings.warn(f"{path} was saved by cvlearn {meta['cvlearn_version']}, this is {__version__}: it loaded, "
                      "but check its values on a few known frames, or save it again with this version.",
                      UserWarning, stacklevel=2)
    cv = hooks.from_config({"type": meta["class"], **{k: v for k, v in meta.items() if k not in _ENVELOPE}})
    # assign=True keeps the saved tensors (and their dtypes) instead of casting into fresh ones.
    cv.load_state_dict(blob["state_dict"], strict=True, assign=True)
    cv.info = meta.get("info", {})
    return cv.eval()
