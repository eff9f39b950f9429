"""Cartesian coordinates as features (for analytic systems and pre-aligned frames)."""

import torch

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
