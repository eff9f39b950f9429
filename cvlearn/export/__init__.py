"""Exports of trained CVs for other engines: TorchScript, and PLUMED (model + plumed.dat)."""

from ._plumed import plumed_feature_lines, to_plumed, torchscript_format_version
from ._torchscript import to_torchscript

__all__ = ["plumed_feature_lines", "to_plumed", "to_torchscript", "torchscript_format_version"]
