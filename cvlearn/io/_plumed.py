"""PLUMED's text formats (COLVAR, HILLS): ``#! FIELDS`` / ``#! SET`` headers, whitespace columns.

Writers flush every row, so a killed run loses nothing; an existing file is never overwritten:
it is renamed ``bck.N.<name>`` first, as PLUMED does. Readers accept files that were restarted
(several headers), skip comment lines, and leave a last line without its newline unparsed (it may
still be being written by another process).
"""

import os

import numpy as np

__all__ = ["read_colvar", "read_plumed_table", "PlumedWriter", "backup", "plumed_table_text"]


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
    """A PLUMED table as text: the ``#! FIELDS`` line, ``#! SET`` lines, then rows at full precision."""
    head = "#! FIELDS " + " ".join(fields) + "\n" + "".join(f"#! SET {k} {v}\n" for k, v in (constants or {}).items())
    return head + _rows_text(np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)) if len(rows) else head


def read_plumed_table(path, complete_lines_only=True, offset=0):
    """Parse a PLUMED text file.

    Returns ``(fields, constants, rows, end)``: column names from the last ``#! FIELDS`` line,
    ``#! SET`` constants (name -> string), a list of float rows, and the byte offset after the last
    complete line (to resume reading a growing file from there).

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
    ValueError
        Data before any ``#! FIELDS`` line, a row with the wrong column count, a non-numeric value.

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
    with open(os.fspath(path), "rb") as fh:
        fh.seek(offset)
        raw = fh.read()
    text = raw.decode()
    end = len(raw)
    if complete_lines_only and text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        end = len(text[:cut].encode())
        text = text[:cut]
    fields, constants, rows = [], {}, []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#!" and len(parts) >= 2:
            if parts[1] == "FIELDS":
                fields = parts[2:]
            elif parts[1] == "SET" and len(parts) >= 4:
                constants[parts[2]] = parts[3]
            continue
        if parts[0].startswith("#"):
            continue
        if not fields:
            raise ValueError(f"{path}: data before any '#! FIELDS' header (line {lineno}); is this a PLUMED file?")
        if len(parts) != len(fields):
            raise ValueError(f"{path}, line {lineno}: {len(parts)} columns but the FIELDS header names "
                             f"{len(fields)} ({' '.join(fields)}).")
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: non-numeric value in {line.strip()!r}.") from None
    return fields, constants, rows, end


def read_colvar(path):
    """Read a PLUMED COLVAR (or any FIELDS file) as a dict: column name -> float64 array.

    Restarted files (several headers) and comment lines are handled; values keep the file's units
    (PLUMED's defaults: nm, ps, kJ/mol, radians).

    Parameters
    ----------
    path : str or path-like

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
    fields, _, rows, _ = read_plumed_table(path)
    if not fields:
        raise ValueError(f"{path} has no '#! FIELDS' header; not a PLUMED COLVAR file.")
    data = np.array(rows, dtype=np.float64).reshape(-1, len(fields))
    return {name: data[:, i].copy() for i, name in enumerate(fields)}


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
            old = read_plumed_table(self.path)[0]
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
