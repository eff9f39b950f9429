"""Cartesian coordinates as features (for analytic systems and pre-aligned frames)."""

import numpy as np
import torch

from .. import hooks
from ._base import Featurizer

__all__ = ["Positions"]


class Positions(Featurizer):
    """Cartesian coordinates (nm) of the selected particles, flattened per frame.

    Parameters
    ----------
    n_particles, n_dims : int
        Shape of one configuration (e.g. 1, 2 for Muller-Brown).
    particles : sequence of int, optional
        Which particles to keep (default all).

    Examples
    --------
    >>> import torch
    >>> from cvlearn.features import Positions
    >>> Positions(2, 3, particles=[1])(torch.arange(6.0).reshape(1, 2, 3)).tolist()
    [[3.0, 4.0, 5.0]]
    """

    def __init__(self, n_particles, n_dims, particles=None):
        super().__init__()
        self.n_particles_in, self.n_dims = int(n_particles), int(n_dims)
        idx = list(range(self.n_particles_in)) if particles is None else [int(i) for i in particles]
        bad = [i for i in idx if not 0 <= i < self.n_particles_in]
        if bad or not idx:
            raise ValueError(f"particles must be a non-empty list of indices in [0, {self.n_particles_in}); "
                             f"got {particles!r}.")
        self.register_buffer("index", torch.tensor(idx, dtype=torch.long))

    @classmethod
    def of(cls, system, particles=None):
        """All (or the selected) coordinates of an analytic ``system``."""
        return cls(system.n_particles, system.n_dims, particles)

    @property
    def n_features(self):
        return len(self.index) * self.n_dims

    @torch.jit.unused
    def config(self):
        """Constructor arguments as plain JSON data (for :func:`cvlearn.save`)."""
        return {"type": "Positions", "n_particles": self.n_particles_in, "n_dims": self.n_dims,
                "particles": self.index.tolist()}

    @torch.jit.unused
    def feature_names(self):
        axes = "xyz" if self.n_dims <= 3 else [f"d{k}" for k in range(self.n_dims)]
        return [f"{a}{int(i)}" for i in self.index for a in axes[: self.n_dims]]

    def forward(self, positions):
        if positions.shape[-2] != self.n_particles_in or positions.shape[-1] != self.n_dims:
            raise ValueError("Positions featurizer: positions must be (..., n_particles, n_dims) as configured.")
        return torch.flatten(positions.index_select(-2, self.index), start_dim=-2)


class _PositionsStep(hooks.FeatureStep):
    """Lean step of :class:`Positions` on one frame (particles, dims): a reshape, or a gather of the rows kept."""

    def __init__(self, m, rows):
        self.owner, self.dims = "Positions featurizer", m.n_dims
        index = m.index.numpy().copy()
        if rows.atoms is not None:
            self.shape = (len(rows.atoms), m.n_dims)
            index = rows.rows(index, "Positions")
        else:
            self.shape = (m.n_particles_in, m.n_dims)
        self.index, self.n_out = index, len(index) * m.n_dims
        self.identity = np.array_equal(index, np.arange(self.shape[0]))
        self.unique = len(np.unique(index)) == len(index)

    def check(self, x):
        if x.shape != self.shape:
            raise ValueError(f"Positions featurizer: expected {self.shape} positions, got {x.shape}.")
        return x

    def forward(self, x):
        self.check(x)
        if self.identity:
            return x.reshape(-1)
        return x[self.index].ravel()

    def backward(self, g):
        g = g.reshape(len(self.index), self.dims)
        if self.identity:
            return g.copy()
        out = np.zeros(self.shape)
        if self.unique:
            out[self.index] = g
        else:
            np.add.at(out, self.index, g)
        return out


@hooks.lean_steps.register(Positions)
def _positions_lean(m, rows):
    return [_PositionsStep(m, rows)]


@hooks.plumed_lines.register(Positions)
def _positions_plumed(m, used):
    if m.n_dims != 3:
        raise ValueError("PLUMED positions are 3-D; this Positions featurizer has "
                         f"{m.n_dims} dimensions (an analytic model system, not a molecule).")
    lines, args = [], []
    for i in m.index.tolist():
        label = hooks.plumed_label(f"p{i}", used)
        lines.append(f"{label}: POSITION ATOM={hooks.plumed_atoms(i)} NOPBC")
        args += [f"{label}.x", f"{label}.y", f"{label}.z"]
    return lines, args


hooks.register_config(Positions, Positions.config, Positions)
hooks.periodicity.register(Positions)(hooks.not_periodic)
