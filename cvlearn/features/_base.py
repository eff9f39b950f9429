"""Featurizers: torch modules from positions to features, also applied to stored frames."""

import numpy as np
import torch

from .. import hooks

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
    for angles, dimensionless for contacts). A subclass defines ``forward`` and ``n_features``, and
    registers what other parts of cvlearn ask of it in :mod:`cvlearn.hooks`: a numpy step for the
    OpenMM engine's lean force path (else :func:`~cvlearn.hooks.autograd_only`), PLUMED actions
    for export, a config to be saved with :func:`cvlearn.save`, and its periodicity.

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
        return {"type": "Concatenate", "parts": [hooks.to_config(p) for p in self.parts]}

    def forward(self, positions):
        return torch.cat([p(positions) for p in self.parts], dim=-1)


class _ParallelStep(hooks.FeatureStep):
    """Lean step of :class:`Concatenate`: each part reads the same positions into its slice of one output;
    gradients add up."""

    def __init__(self, parts):
        self.parts = parts
        self.n_out = sum(p.n_out for p in parts)
        self.bounds = np.cumsum([0] + [p.n_out for p in parts]).tolist()

    def setup_out(self, out):
        self.out = np.empty(self.n_out) if out is None else out
        for p, a, b in zip(self.parts, self.bounds[:-1], self.bounds[1:]):
            p.setup_out(self.out[a:b])

    def forward(self, x):
        for p in self.parts:
            y = p.forward(x)
            if y is not p.out:  # a part without its own buffer (e.g. scalar dihedrals)
                p.out[...] = y
        return self.out

    def backward(self, g):
        grads = [p.backward(g[a:b]) for p, a, b in zip(self.parts, self.bounds[:-1], self.bounds[1:])]
        out = grads[0]
        for gr in grads[1:]:
            out = out + gr
        return out


@hooks.lean_steps.register(Concatenate)
def _concatenate_lean(m, rows):
    parts = []
    for p in m.parts:
        steps = hooks.lean_steps(p, rows)
        if len(steps) != 1 or not isinstance(steps[0], hooks.FeatureStep):
            raise hooks.Unsupported(f"a part of Concatenate ({type(p).__name__}) is not one featurizer step")
        parts.append(steps[0])
    return [_ParallelStep(parts)]


@hooks.plumed_lines.register(Concatenate)
def _concatenate_plumed(m, used):
    lines, args = [], []
    for part in m.parts:
        part_lines, part_args = hooks.plumed_lines(part, used)
        lines += part_lines
        args += part_args
    return lines, args


hooks.register_config(Concatenate, Concatenate.config,
                      lambda parts: Concatenate([hooks.from_config(p) for p in parts]))
hooks.periodicity.register(Concatenate)(hooks.not_periodic)
