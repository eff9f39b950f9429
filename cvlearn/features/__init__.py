"""Featurizers: positions -> features in torch, one implementation for training and biasing."""

from ._base import Concatenate, Featurizer
from ._positions import Positions

__all__ = ["Concatenate", "Featurizer", "Positions"]
