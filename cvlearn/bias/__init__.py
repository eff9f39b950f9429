"""Biases: well-tempered metadynamics, static grid biases, walls and restraints."""

from ._grid import Grid
from ._gridbias import GridBias
from ._metad import WellTemperedMetad
from ._opes import OPES
from ._static import StaticBias, read_hills
from ._walls import HarmonicRestraint, LowerWall, UpperWall

__all__ = ["Grid", "GridBias", "WellTemperedMetad", "OPES", "StaticBias", "read_hills", "HarmonicRestraint",
           "LowerWall", "UpperWall"]
