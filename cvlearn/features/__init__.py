"""Featurizers: positions -> features in torch, one implementation for training and biasing."""

from ._aligned import AlignedPositions
from ._base import Concatenate, Featurizer
from ._molecular import Contacts, Dihedrals, Distances
from ._positions import Positions

__all__ = ["AlignedPositions", "Concatenate", "Contacts", "Dihedrals", "Distances", "Featurizer", "Positions"]
