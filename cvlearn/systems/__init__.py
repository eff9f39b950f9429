"""Analytic potentials with exact free energies, and wrappers for your own torch potentials."""

from ._base import FunctionSystem, System, from_function
from ._double_well import DoubleWell
from ._embedded import Embedded, HiddenDoubleWell
from ._muller_brown import MullerBrown

__all__ = ["System", "FunctionSystem", "from_function", "MullerBrown", "DoubleWell", "Embedded",
           "HiddenDoubleWell"]
