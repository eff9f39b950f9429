"""Featurizers: positions -> features in torch, one implementation for training and biasing."""

from ._aligned import AlignedPositions
from ._base import Concatenate, Featurizer
from ._molecular import Contacts, Dihedrals, Distances
from ._positions import Positions

__all__ = ["AlignedPositions", "Concatenate", "Contacts", "Dihedrals", "Distances", "Featurizer", "Positions"]
from ._loading import FeatureStream, load_trajectories, stream_features  # noqa: F401  (to be listed in __all__)
