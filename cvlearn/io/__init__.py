"""Readers and writers of the text formats users exchange with PLUMED."""

from ..exceptions import PlumedFileError
from ._atomic import save_npz_atomic, write_text_atomic
from ._plumed import (
    PlumedBlock,
    PlumedTable,
    PlumedWriter,
    backup,
    parse_plumed_text,
    plumed_table_text,
    read_colvar,
    read_plumed,
    read_plumed_table,
    truncate_after,
)

__all__ = ["PlumedBlock", "PlumedFileError", "PlumedTable", "PlumedWriter", "backup", "parse_plumed_text",
           "plumed_table_text", "read_colvar", "read_plumed", "read_plumed_table", "save_npz_atomic",
           "truncate_after", "write_text_atomic"]
