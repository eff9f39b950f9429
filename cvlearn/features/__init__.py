"""Featurizers: positions -> features in torch, one implementation for training and biasing."""

from ._aligned import AlignedPositions
from ._base import Concatenate, Featurizer
from ._loading import FeatureStream, load_trajectories, stream_features
from ._molecular import Contacts, Dihedrals, Distances
from ._positions import Positions
from ._source import FrameSource, NpyFiles
from ._spec import from_spec

__all__ = ["AlignedPositions", "Concatenate", "Contacts", "Dihedrals", "Distances", "FeatureStream", "Featurizer",
           "FrameSource", "NpyFiles", "Positions", "from_spec", "load_trajectories", "stream_features"]
