"""Biases: well-tempered metadynamics, OPES, static grid biases, walls and restraints, and the
engine-bias contract (:mod:`cvlearn.bias._protocol`: which calls an engine makes, when)."""

from ._grid import Grid
from ._gridbias import GridBias
from ._metad import WellTemperedMetad
from ._opes import OPES
from ._protocol import (
    Adaptive,
    Bias,
    Bindable,
    ColvarWriter,
    CVBias,
    Fusable,
    FusedDeposit,
    HillsWriter,
    Paced,
    PointEvaluable,
    SharedHills,
)
from ._read_hills import read_hills
from ._static import StaticBias
from ._walkers import walker_files
from ._walls import HarmonicRestraint, LowerWall, UpperWall

__all__ = ["Grid", "GridBias", "WellTemperedMetad", "OPES", "StaticBias", "read_hills", "HarmonicRestraint",
           "LowerWall", "UpperWall", "walker_files", "Bias", "CVBias", "PointEvaluable", "Bindable", "Adaptive",
           "Paced", "ColvarWriter", "HillsWriter", "SharedHills", "Fusable", "FusedDeposit"]
