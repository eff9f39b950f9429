"""Engines that integrate dynamics: the built-in batched Langevin integrator and OpenMM for molecules."""

from .._trajectory import Trajectory
from ._common import Frame
from ._group import WalkerGroup
from ._langevin import Langevin
from ._openmm import OpenMM, default_platform

__all__ = ["Frame", "Langevin", "OpenMM", "Trajectory", "WalkerGroup", "default_platform"]
