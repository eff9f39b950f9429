"""cvlearn: learn collective variables from molecular dynamics, bias them, get free energy surfaces.

Units throughout: nm, ps, kJ/mol, K, amu, radians.
"""

from . import engine, features, fes, learners, systems, units
from .engine import Langevin, Trajectory
from .exceptions import (
    ConvergenceWarning,
    CVLearnError,
    NotFittedError,
    SamplingWarning,
    SimulationError,
)
from .learners import PCA, TICA

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "engine", "features", "fes", "learners", "systems", "units",
    "Langevin", "Trajectory", "PCA", "TICA",
    "CVLearnError", "NotFittedError", "SimulationError", "ConvergenceWarning", "SamplingWarning",
]
