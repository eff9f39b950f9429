"""Featurizers: positions -> features in torch, one implementation for training and biasing."""

from ._aligned import AlignedPositions
from ._base import Concatenate, Featurizer
from ._loading import FeatureStream, load_trajectories, stream_features
from ._molecular import Contacts, Dihedrals, Distances
from ._positions import Positions
from ._source import FrameSource, NpyFiles, as_source, join_tail, only_in_chunks
from ._spec import from_spec
from ._topology import as_topology

__all__ = ["AlignedPositions", "Concatenate", "Contacts", "Dihedrals", "Distances", "FeatureStream", "Featurizer",
           "FrameSource", "NpyFiles", "Positions", "as_source", "as_topology", "from_spec", "join_tail",
           "load_trajectories", "only_in_chunks", "stream_features"]
