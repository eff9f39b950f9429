"""Readers and writers: the text formats users exchange with PLUMED, saved CVs (save/load), atomic file writes."""

from ..exceptions import PlumedFileError
from ._atomic import save_npz_atomic, write_bytes_atomic, write_text_atomic
from ._models import load, save
from ._plumed import (
    PlumedBlock,
    PlumedTable,
    PlumedWriter,
    backup,
    parse_number,
    parse_plumed_text,
    plumed_table_text,
    read_colvar,
    read_plumed,
    read_plumed_table,
    truncate_after,
)

__all__ = ["PlumedBlock", "PlumedFileError", "PlumedTable", "PlumedWriter", "backup", "parse_number",
           "parse_plumed_text", "plumed_table_text", "read_colvar", "read_plumed", "read_plumed_table",
           "load", "save", "save_npz_atomic", "truncate_after", "write_bytes_atomic", "write_text_atomic"]
