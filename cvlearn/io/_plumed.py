"""PLUMED's text formats (COLVAR, HILLS): ``#! FIELDS`` / ``#! SET`` headers, whitespace columns.

Writers flush every row, so a killed run loses nothing; an existing file is never overwritten:
it is renamed ``bck.N.<name>`` first, as PLUMED does. Readers accept files that were restarted
(several ``#! FIELDS`` blocks, whose columns may come in another order or differ: they are matched
by name in each block), skip comment and blank lines, leave a last line without its newline unparsed
(it may still be being written by another process), and report anything else as a
:class:`~cvlearn.exceptions.PlumedFileError` naming the file and line.
"""

import math
import os

import numpy as np

from ..exceptions import PlumedFileError
from ._atomic import write_text_atomic

__all__ = ["read_colvar", "read_plumed", "read_plumed_table", "parse_plumed_text", "PlumedBlock", "PlumedTable",
           "PlumedWriter", "backup", "parse_number", "plumed_table_text",
           "truncate_after"]


def parse_number(text):
    """A number as PLUMED writes it in ``#! SET`` lines (e.g. a periodic CV's ``min_phi``): a float, or
    ``pi`` / ``-pi``.

    Examples
    --------
    >>> from cvlearn.io import parse_number
    >>> parse_number("-pi"), parse_number(" 2.5 ")
    (-3.141592653589793, 2.5)
    """
    t = text.strip().lower()
    sign = -1.0 if t.startswith("-") else 1.0
    t = t.lstrip("+-")
    return sign * (math.pi if t == "pi" else float(t))


def backup(path):
    """Rename an existing ``path`` to ``bck.N.<name>`` (first free N), as PLUMED does.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str or None
        The new name, or None if ``path`` did not exist.

    Examples
    --------
    >>> from cvlearn.io import backup
    >>> _ = open("HILLS", "w").write("#! FIELDS time s sigma_s height biasf\\n")
    >>> backup("HILLS")
    'bck.0.HILLS'
    >>> backup("HILLS") is None   # nothing left to back up
    True
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    head, name = os.path.split(path)
    n = 0
    while os.path.exists(os.path.join(head, f"bck.{n}.{name}")):
        n += 1
    new = os.path.join(head, f"bck.{n}.{name}")
    os.replace(path, new)
    return new


def _rows_text(rows):
    return "".join(" ".join(f"{v:.17g}" for v in row) + "\n" for row in rows)


def plumed_table_text(fields, constants=None, rows=()):
    """A PLUMED table as text: the ``#! FIELDS`` line, ``#! SET`` lines, then rows at full precision.

    Parameters
    ----------
    fields : list of str
    constants : dict, optional
        ``#! SET`` name -> value.
    rows : array_like, (n, len(fields))

    Returns
    -------
    str

    Examples
    --------
    >>> from cvlearn.io import plumed_table_text
    >>> print(plumed_table_text(["time", "phi"], {"min_phi": "-pi"}, [[0.0, 0.1]]), end="")
    #! FIELDS time phi
    #! SET min_phi -pi
    0 0.10000000000000001
    """
    head = "#! FIELDS " + " ".join(fields) + "\n" + "".join(f"#! SET {k} {v}\n" for k, v in (constants or {}).items())
    return head + _rows_text(np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)) if len(rows) else head


class PlumedBlock:
    """The rows under one ``#! FIELDS`` header of a PLUMED file (a restarted run appends a new header).

    Attributes
    ----------
    fields : list of str
        Column names of this block's header.
    constants : dict of str to str
        ``#! SET`` values in force in this block (its own, over those of the blocks before it).
    data : numpy.ndarray, (rows, len(fields))
        Values in the file's units.
    lines : numpy.ndarray of int
        1-based line number of each row, for error messages.
    header_line : int or None
        Line of the ``#! FIELDS`` header (None for rows that continue a header read earlier).

    Examples
    --------
    >>> from cvlearn.io import parse_plumed_text
    >>> block = parse_plumed_text("#! FIELDS time x\\n#! SET min_x -pi\\n0 1.5\\n", "COLVAR")[0]
    >>> block.fields, block.constants, block.data.tolist(), block.lines.tolist(), block.header_line
    (['time', 'x'], {'min_x': '-pi'}, [[0.0, 1.5]], [3], 1)
    """

    __slots__ = ("fields", "constants", "data", "lines", "header_line")

    def __init__(self, fields, constants, data, lines, header_line):
        self.fields, self.constants, self.data = fields, constants, data
        self.lines, self.header_line = lines, header_line

    def describe(self):
        """'the block at line 12 (#! FIELDS time psi phi), rows at lines 18-40' (for messages)."""
        where = f"at line {self.header_line} " if self.header_line is not None else ""
        rows = f", rows at lines {self.lines[0]}-{self.lines[-1]}" if len(self.lines) else ", no rows"
        return f"the block {where}('#! FIELDS {' '.join(self.fields)}'{rows})"

    def __repr__(self):
        return f"PlumedBlock({self.fields}, {len(self.data)} rows, header at line {self.header_line})"


def _float_rows(rows, lines, fields, path):
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(fields))
    except (ValueError, OverflowError):
        pass
    for parts, lineno in zip(rows, lines):  # find the culprit for the message
        for name, p in zip(fields, parts):
            try:
                float(p)
            except (ValueError, OverflowError):
                raise PlumedFileError(f"{path}, line {lineno}: column {name!r} holds {p!r}, not a number.",
                                      path=path, line=lineno) from None
    raise PlumedFileError(f"{path}: non-numeric rows between lines {lines[0]} and {lines[-1]}.", path=path)


def parse_plumed_text(text, path, first_line=1, fields=None, constants=None):
    """The ``#! FIELDS`` blocks of PLUMED table text, each with its own columns (list of :class:`PlumedBlock`).

    ``fields`` and ``constants`` are those in force before ``text`` (to continue a file read in parts;
    rows before any header in ``text`` belong to them), ``first_line`` the line number of its first line.
    Comment lines (``#`` but not ``#!``) and blank lines are skipped. Raises :class:`PlumedFileError`
    naming the file and line for rows before any header, a row whose column count differs from its
    header's, a non-numeric value, or a header with no or repeated column names.

    Examples
    --------
    A restart printed the columns in another order; a tail read continues the header in force:

    >>> from cvlearn.io import parse_plumed_text
    >>> blocks = parse_plumed_text("#! FIELDS time a b\\n0 1 2\\n#! FIELDS time b a\\n1 3 4\\n", "HILLS")
    >>> [(b.fields, b.data.tolist()) for b in blocks]
    [(['time', 'a', 'b'], [[0.0, 1.0, 2.0]]), (['time', 'b', 'a'], [[1.0, 3.0, 4.0]])]
    >>> parse_plumed_text("2 5 6\\n", "HILLS", first_line=5, fields=["time", "b", "a"])[0].data.tolist()
    [[2.0, 5.0, 6.0]]
    """
    blocks = []
    cur = None if fields is None else list(fields)
    consts = dict(constants or {})
    header, rows, lines = None, [], []

    def close():
        if cur is not None and (rows or header is not None):
            data = _float_rows(rows, lines, cur, path) if rows else np.zeros((0, len(cur)))
            blocks.append(PlumedBlock(cur, dict(consts), data, np.array(lines, dtype=np.int64), header))

    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    for lineno, line in enumerate(pieces, first_line):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#!":
            if len(parts) >= 2 and parts[1] == "FIELDS":
                close()
                cur, header, rows, lines = parts[2:], lineno, [], []
                if not cur:
                    raise PlumedFileError(f"{path}, line {lineno}: a '#! FIELDS' header that names no column.",
                                          path=path, line=lineno)
                if len(set(cur)) != len(cur):
                    twice = sorted({f for f in cur if cur.count(f) > 1})
                    raise PlumedFileError(f"{path}, line {lineno}: the '#! FIELDS' header names {twice} twice; "
                                          "columns are matched by name, so each must be unique.",
                                          path=path, line=lineno)
            elif len(parts) >= 4 and parts[1] == "SET":
                consts[parts[2]] = parts[3]
            continue
        if parts[0].startswith("#"):
            continue
        if cur is None:
            raise PlumedFileError(f"{path}, line {lineno}: data before any '#! FIELDS' header; is this a PLUMED "
                                  "file?", path=path, line=lineno)
        if len(parts) != len(cur):
            raise PlumedFileError(f"{path}, line {lineno}: {len(parts)} columns but the FIELDS header"
                                  f"{'' if header is None else f' (line {header})'} names {len(cur)} "
                                  f"({' '.join(cur)}).", path=path, line=lineno)
        rows.append(parts)
        lines.append(lineno)
    close()
    return blocks


class PlumedTable:
    """A PLUMED text file read block by block: columns are matched by name in every ``#! FIELDS`` block.

    Attributes
    ----------
    path : str
    blocks : list of PlumedBlock
    end : int
        Byte offset after the last complete line read.

    Examples
    --------
    >>> from cvlearn.io import read_plumed
    >>> _ = open("COLVAR", "w").write("#! FIELDS time phi\\n0 -1.5\\n#! FIELDS time phi bias\\n1 -1.4 0.2\\n")
    >>> table = read_plumed("COLVAR")
    >>> table.fields, table.column("phi").tolist(), table.column("bias", required=False).tolist()
    (['time', 'phi', 'bias'], [-1.5, -1.4], [nan, 0.2])
    >>> table.column("bias")
    Traceback (most recent call last):
        ...
    cvlearn.exceptions.PlumedFileError: COLVAR: the block at line 1 ('#! FIELDS time phi', rows at lines 2-2) ...
    """

    def __init__(self, path, blocks, end):
        self.path, self.blocks, self.end = path, blocks, end

    @property
    def fields(self):
        """Every column name: the last header's, then those only earlier headers have (first seen first)."""
        out = list(self.blocks[-1].fields) if self.blocks else []
        for b in self.blocks:
            out += [f for f in b.fields if f not in out]
        return out

    @property
    def constants(self):
        """``#! SET`` values, later blocks' over earlier ones'."""
        return dict(self.blocks[-1].constants) if self.blocks else {}

    @property
    def lines(self):
        """Line number of every row (int array)."""
        return np.concatenate([b.lines for b in self.blocks]) if self.blocks else np.zeros(0, dtype=np.int64)

    def __len__(self):
        return sum(len(b.data) for b in self.blocks)

    def has(self, name):
        """Whether any block has column ``name``."""
        return any(name in b.fields for b in self.blocks)

    def column(self, name, required=True):
        """Column ``name`` over all rows, matched by name in each block (float64 array).

        A block with rows but without the column: :class:`PlumedFileError` naming that block when
        ``required``, NaN for its rows otherwise.
        """
        if not self.has(name):
            raise PlumedFileError(f"{self.path} has no column {name!r}; its columns are {self.fields}.",
                                  path=self.path)
        parts = []
        for b in self.blocks:
            if name in b.fields:
                parts.append(b.data[:, b.fields.index(name)])
            elif required and len(b.data):
                raise PlumedFileError(f"{self.path}: {b.describe()} has no column {name!r}, which other blocks "
                                      "have: a restarted run printed other columns.", path=self.path,
                                      line=b.header_line)
            else:
                parts.append(np.full(len(b.data), np.nan))
        return np.concatenate(parts) if parts else np.zeros(0)

    def columns(self, names, required=True):
        """Columns ``names`` over all rows, (rows, len(names)) float64 (see :meth:`column`)."""
        return np.column_stack([self.column(n, required) for n in names]) if names else np.zeros((len(self), 0))

    def rows(self):
        """Every row in the columns of :attr:`fields` (NaN where a block lacks a column)."""
        return self.columns(self.fields, required=False)


def read_plumed(path, complete_lines_only=True, offset=0):
    """Read a PLUMED text file (COLVAR, HILLS, KERNELS, STATE ...) as a :class:`PlumedTable`.

    Every ``#! FIELDS`` block keeps its own columns (a restarted run may print them in another order,
    or add or drop some), so :meth:`PlumedTable.column` matches them by name.

    Parameters
    ----------
    path : str or path-like
    complete_lines_only : bool
        Leave a last line without its newline unread (another process may still be writing it).
    offset : int
        Byte offset to start from (line numbers still count from the file's start).

    Returns
    -------
    PlumedTable

    Raises
    ------
    PlumedFileError
        A ValueError naming the file and line: bytes that are not text, data before any header, a
        row whose column count differs from its header's, a non-numeric value.

    Examples
    --------
    >>> from cvlearn.io import read_plumed
    >>> _ = open("COLVAR", "w").write("#! FIELDS time phi psi\\n0 -1.5 2.0\\n#! FIELDS time psi phi\\n1 2.1 -1.4\\n")
    >>> table = read_plumed("COLVAR")
    >>> table.column("phi").tolist(), len(table.blocks)       # matched by name in each block
    ([-1.5, -1.4], 2)
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    first_line = raw.count(b"\n", 0, offset) + 1
    raw = raw[offset:]
    if complete_lines_only and raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + raw.count(b"\n", 0, err.start)
        raise PlumedFileError(f"{path}, line {line}: bytes that are not UTF-8 text ({raw[err.start:err.end]!r}); "
                              "is this a PLUMED text file (COLVAR, HILLS, KERNELS, STATE)?",
                              path=path, line=line) from None
    return PlumedTable(path, parse_plumed_text(text, path, first_line), offset + len(raw))


def read_plumed_table(path, complete_lines_only=True, offset=0):
    """Parse a PLUMED text file.

    Returns ``(fields, constants, rows, end)``: every column name (those of the last ``#! FIELDS``
    line first), ``#! SET`` constants (name -> string), a list of float rows in the order of
    ``fields`` (columns matched by name in each block of a restarted file; NaN where a block lacks
    a column), and the byte offset after the last complete line (to resume reading a growing file
    from there). :func:`read_plumed` keeps the blocks apart.

    Parameters
    ----------
    path : str or path-like
        A PLUMED text file (COLVAR, HILLS, KERNELS ...).
    complete_lines_only : bool
        Leave a last line without its newline unparsed (another process may still be writing it).
    offset : int
        Byte offset to start from; the text from there on must begin with a ``#! FIELDS`` line.

    Returns
    -------
    fields : list of str
    constants : dict of str to str
    rows : list of list of float
        Values in the file's units (PLUMED's defaults: nm, ps, kJ/mol).
    end : int
        Byte offset after the last complete line.

    Raises
    ------
    PlumedFileError
        (a ValueError) Data before any ``#! FIELDS`` line, a row with the wrong column count, a
        non-numeric value, bytes that are not text; the message names the file and line.

    Examples
    --------
    >>> from cvlearn.io import read_plumed_table
    >>> _ = open("COLVAR", "w").write("#! FIELDS time phi\\n#! SET min_phi -pi\\n0 -1.5\\n1 -1.4\\n2 -1.")
    >>> fields, constants, rows, end = read_plumed_table("COLVAR")
    >>> fields, constants, rows     # the unfinished last line is not read
    (['time', 'phi'], {'min_phi': '-pi'}, [[0.0, -1.5], [1.0, -1.4]])
    >>> end == len("#! FIELDS time phi\\n#! SET min_phi -pi\\n0 -1.5\\n1 -1.4\\n")   # bytes read so far
    True
    """
    table = read_plumed(path, complete_lines_only, offset)
    return table.fields, table.constants, table.rows().tolist(), table.end


def read_colvar(path, columns=None):
    """Read a PLUMED COLVAR (or any FIELDS file) as a dict: column name -> float64 array.

    Restarted files (several headers, columns in any order) and comment lines are handled; values
    keep the file's units (PLUMED's defaults: nm, ps, kJ/mol, radians).

    Parameters
    ----------
    path : str or path-like
    columns : list of str, optional
        Only these columns; each must be in every block of the file (else a :class:`PlumedFileError`
        names the file and the block without it). Default: every column, NaN in the rows of a
        block that lacks it.

    Returns
    -------
    dict of str to numpy.ndarray

    Examples
    --------
    >>> import tempfile, os
    >>> from cvlearn.io import read_colvar
    >>> p = os.path.join(tempfile.mkdtemp(), "COLVAR")
    >>> _ = open(p, "w").write("#! FIELDS time phi metad.bias\\n0.0 -1.5 0.0\\n0.1 -1.4 0.3\\n")
    >>> read_colvar(p)["metad.bias"].tolist()
    [0.0, 0.3]
    """
    if not os.path.exists(os.fspath(path)):
        raise FileNotFoundError(f"No COLVAR file at {path}.")
    table = read_plumed(path)
    if not table.blocks:
        raise PlumedFileError(f"{path} has no '#! FIELDS' header; not a PLUMED COLVAR file.", path=os.fspath(path))
    names = table.fields if columns is None else list(columns)
    return {name: table.column(name, required=columns is not None) for name in names}


class PlumedWriter:
    """Append rows to a PLUMED-format text file, flushing each row.

    Parameters
    ----------
    path : str
    fields : list of str
        Column names for the ``#! FIELDS`` header.
    constants : dict, optional
        ``#! SET`` lines (e.g. periodic ranges).
    append : bool
        Continue an existing file (restart) instead of backing it up and starting a new one.

    Values are written as given, at full precision; cvlearn writes nm, ps, kJ/mol and radians.

    Examples
    --------
    >>> from cvlearn.io import PlumedWriter, read_colvar
    >>> with PlumedWriter("COLVAR", ["time", "phi"], constants={"min_phi": "-pi", "max_phi": "pi"}) as w:
    ...     w.write([[0.0, -1.5], [0.1, -1.4]])
    >>> print(open("COLVAR").read(), end="")
    #! FIELDS time phi
    #! SET min_phi -pi
    #! SET max_phi pi
    0 -1.5
    0.10000000000000001 -1.3999999999999999
    >>> with PlumedWriter("COLVAR", ["time", "phi"], append=True) as w:   # restart: continue the file
    ...     w.write([0.2, -1.3])
    >>> read_colvar("COLVAR")["time"].tolist()
    [0.0, 0.1, 0.2]
    """

    def __init__(self, path, fields, constants=None, append=False):
        self.path = os.fspath(path)
        self.fields = list(fields)
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if exists and append:
            blocks = read_plumed(self.path).blocks
            old = blocks[-1].fields if blocks else []
            if old != self.fields:
                raise ValueError(f"Cannot append to {self.path}: its columns are {old}, this run writes "
                                 f"{self.fields}. Use a new file or restart=False.")
            _drop_partial_last_line(self.path)
            self._fh = open(self.path, "a")
        else:
            if exists:
                backup(self.path)
            self._fh = open(self.path, "w")
            self._fh.write(plumed_table_text(self.fields, constants))
            self._fh.flush()

    def write(self, rows):
        """Write rows (n, n_fields) and flush to disk."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        if rows.shape[1] != len(self.fields):
            raise ValueError(f"Row has {rows.shape[1]} values for {len(self.fields)} fields.")
        self._fh.write(_rows_text(rows))
        self._fh.flush()

    def close(self):
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _drop_partial_last_line(path):
    """Truncate a half-written last line (left by a killed writer) so appended rows start clean."""
    with open(path, "r+b") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def truncate_after(path, time, timestep):
    """Drop the rows of a PLUMED file (COLVAR, HILLS) written after ``time`` (ps), and a half-written
    last line: those of a run interrupted after its checkpoint at ``time``, which the resumed run writes
    again. Returns how many rows it dropped (the file is rewritten atomically, and only if any).

    Rows are written at whole steps, so a row after the checkpoint is at least one ``timestep`` (ps)
    later; a row's time may be printed with few digits (PLUMED writes ``%f``, 0.001 ps). Rows up to
    half a timestep past ``time`` are therefore kept: the rounding of the time column (even a coarse
    one) never drops the checkpoint's own row, and never keeps a later one.

    Examples
    --------
    >>> from cvlearn.io import truncate_after
    >>> _ = open("COLVAR", "w").write("#! FIELDS time phi\\n0.000 -1.5\\n0.002 -1.4\\n0.004 -1.3\\n0.00")
    >>> truncate_after("COLVAR", 0.002, 0.002)     # the checkpoint was at step 1 of 2 fs
    2
    >>> print(open("COLVAR").read(), end="")
    #! FIELDS time phi
    0.000 -1.5
    0.002 -1.4
    """
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        lines = fh.read().split("\n")
    # The text after the last newline is empty, or a line a killed writer left half-written: dropped.
    partial, lines = lines[-1], lines[:-1]
    keep = [line for line in lines if line.startswith("#") or not line.strip()
            or float(line.split()[0]) <= time + 0.5 * timestep]
    dropped = len(lines) - len(keep) + bool(partial)
    if dropped:
        write_text_atomic(path, "".join(line + "\n" for line in keep))
    return dropped
