"""Engines that integrate dynamics: the built-in batched Langevin integrator."""

from ._langevin import Frame, Langevin
from ._trajectory import Trajectory

__all__ = ["Frame", "Langevin", "Trajectory"]
