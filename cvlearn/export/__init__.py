"""Exports of trained CVs for other engines."""

from ._torchscript import to_torchscript

__all__ = ["to_torchscript"]
