"""Readers and writers of the text formats users exchange with PLUMED."""

from ._atomic import save_npz_atomic, write_text_atomic
from ._plumed import PlumedWriter, backup, read_colvar, read_plumed_table

__all__ = ["PlumedWriter", "backup", "read_colvar", "read_plumed_table", "save_npz_atomic", "write_text_atomic"]
