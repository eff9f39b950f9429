"""cvlearn: learn collective variables from molecular dynamics, bias them, get free energy surfaces.

Units throughout: nm, ps, kJ/mol, K, amu, radians.
"""

from . import bias, data, engine, export, features, fes, generative, hooks, io, learners, loop, physics, systems, units
from ._version import __version__
from .bias import OPES, Grid, WellTemperedMetad
from .engine import Langevin, Trajectory
from .exceptions import (
    ConvergenceWarning,
    CVLearnError,
    GridError,
    NoReferenceError,
    NotFittedError,
    SamplingWarning,
    SimulationError,
)
from .features import load_trajectories, stream_features
from .generative import latent_path, seed_walkers
from .io import load, save
from .learners import PCA, TICA, AutoEncoder, DeepTICA, TimeLaggedAutoEncoder
from .loop import IterationResult, iterate


def __getattr__(name):
    # cvlearn.plot needs matplotlib and cvlearn.walkers launches Dask: imported on first use so that
    # `import cvlearn` stays light.
    if name in ("plot", "walkers"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cvlearn' has no attribute {name!r}")


__all__ = [
    "__version__",
    "bias", "data", "engine", "export", "features", "fes", "hooks", "io", "learners", "loop", "systems", "units",
    "save", "load",
    "Grid", "Langevin", "Trajectory", "PCA", "TICA", "AutoEncoder", "TimeLaggedAutoEncoder", "DeepTICA",
    "WellTemperedMetad", "OPES", "load_trajectories", "stream_features", "iterate", "IterationResult",
    "generative", "physics", "latent_path", "seed_walkers",
    "CVLearnError", "GridError", "NoReferenceError", "NotFittedError", "SimulationError",
    "ConvergenceWarning", "SamplingWarning",
]
