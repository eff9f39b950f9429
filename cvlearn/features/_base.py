"""Featurizers: torch modules from positions to features, also applied to stored frames."""

import numpy as np
import torch

__all__ = ["Featurizer", "Concatenate"]


def _is_mdtraj(data):
    # Duck-typed so that importing cvlearn does not import mdtraj.
    return hasattr(data, "xyz") and hasattr(data, "topology")


class Featurizer(torch.nn.Module):
    """Base class: ``forward(positions (..., particles, dims)) -> (..., n_features)`` in torch.

    The same object featurizes stored frames (:meth:`transform`, for training) and live positions
    inside a bias (``forward``, differentiable), so the two can never drift apart. Combine
    featurizers with ``|``.

    Positions are in nm; features are in the units of their definition (nm for distances, radians
    for angles, dimensionless for contacts). A subclass defines ``forward`` and ``n_features``
    (and ``config()`` if CVs built on it are to be saved with :func:`cvlearn.save`).

    Examples
    --------
    A custom featurizer, the distance of particle 0 from the origin (nm):

    >>> import numpy as np, torch, cvlearn as cl
    >>> class Radius(cl.features.Featurizer):
    ...     n_features = 1
    ...     def forward(self, positions):                   # (..., particles, dims) nm -> (..., 1) nm
    ...         return positions[..., 0, :].norm(dim=-1, keepdim=True)
    >>> frames = np.array([[[0.3, 0.4]], [[0.0, 1.0]]])     # (frames, particles, dims), nm
    >>> Radius().transform(frames).tolist()                 # stored frames -> float64 numpy
    [[0.5], [1.0]]
    >>> x = torch.tensor([[[0.3, 0.4]]], requires_grad=True)
    >>> Radius()(x).sum().backward()                        # live positions -> differentiable torch
    >>> x.grad.tolist()
    [[[0.6000000238418579, 0.800000011920929]]]
    >>> (Radius() | cl.features.Positions(1, 2)).feature_names()
    ['f0', 'x0', 'y0']
    """

    # Python-side helpers, kept out of the TorchScript graph.
    __jit_unused_properties__ = ["names", "n_features"]

    @torch.jit.unused
    def feature_names(self):
        """Names of the output features, in order."""
        return [f"f{i}" for i in range(self.n_features)]

    @property
    def names(self):
        """Feature names; a featurizer used directly as a CV names its COLVAR columns with them."""
        return self.feature_names()

    def transform(self, data, batch_size=100_000):
        """Features of stored frames as float64 numpy.

        ``data`` is a :class:`cvlearn.Trajectory` (returns a list with one (frames x features)
        array per walker, ready for a learner's ``fit``), an ``mdtraj.Trajectory`` (its ``xyz``,
        nm; returns one array), a list of such trajectories (returns a list of arrays, walkers of a
        cvlearn.Trajectory each counting as one), or an array of positions (frames, particles,
        dims) in nm (returns one array).
        """
        if hasattr(data, "per_walker"):
            return [self.transform(p, batch_size) for p in data.per_walker()]
        if _is_mdtraj(data):
            data = data.xyz
        elif isinstance(data, (list, tuple)) and data and all(hasattr(d, "per_walker") or _is_mdtraj(d)
                                                              for d in data):
            out = []
            for d in data:
                x = self.transform(d, batch_size)
                out.extend(x if isinstance(x, list) else [x])
            return out
        pos = np.asarray(data, dtype=np.float64)
        if pos.ndim != 3:
            raise ValueError(f"Positions must be (frames, particles, dims); got shape {pos.shape}.")
        out = []
        with torch.no_grad():
            for i in range(0, len(pos), batch_size):
                out.append(self(torch.from_numpy(pos[i:i + batch_size])).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_features))

    def __or__(self, other):
        return Concatenate([self, other])


class Concatenate(Featurizer):
    """Several featurizers side by side: features of the first, then of the second, ...

    Usually made with ``|``; nested concatenations are flattened. Each part keeps its own units.

    Parameters
    ----------
    parts : sequence of Featurizer

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> both = cl.features.Positions(2, 3, particles=[0]) | cl.features.Distances(pairs=[[0, 1]])
    >>> both.n_features, both.feature_names()
    (4, ['x0', 'y0', 'z0', 'd_0_1'])
    >>> both(torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.2, 0.8]])).tolist()   # nm
    [0.10000000149011612, 0.20000000298023224, 0.30000001192092896, 0.5]
    """

    def __init__(self, parts):
        super().__init__()
        flat = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, Concatenate) else [p])
        self.parts = torch.nn.ModuleList(flat)

    @property
    def n_features(self):
        return sum(p.n_features for p in self.parts)

    def feature_names(self):
        return [n for p in self.parts for n in p.feature_names()]

    @torch.jit.unused
    def config(self):
        return {"type": "Concatenate", "parts": [p.config() for p in self.parts]}

    def forward(self, positions):
        return torch.cat([p(positions) for p in self.parts], dim=-1)
