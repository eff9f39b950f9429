"""Trajectories of real molecules (any format mdtraj reads): loaded whole, or featurized chunk by chunk.

:func:`load_trajectories` returns ``mdtraj.Trajectory`` objects for data that fit in memory.
:func:`stream_features` returns a :class:`FeatureStream`, which re-reads the files with
``mdtraj.iterload`` on every pass and holds one chunk of one file at a time, so that TICA and
PCA accumulate their covariances over more frames than fit in memory.

mdtraj is imported on first use, so that ``import cvlearn`` stays light.
"""

import contextlib
import numbers
import os

import numpy as np

from ._source import FrameSource, _as_paths, _check_chunk

__all__ = ["load_trajectories", "stream_features", "FeatureStream"]

# Files that carry their own atoms and residues; every other trajectory format (xtc, trr, dcd,
# nc, ...) stores coordinates only and needs top=. Their top= is ignored, as mdtraj does.
_SELF_CONTAINED = (".pdb", ".pdb.gz", ".h5", ".lh5", ".hdf5", ".gro", ".gsd", ".mol2", ".arc", ".hoomdxml",
                   ".pdbx", ".pdbx.gz", ".cif", ".cif.gz", ".mmcif", ".mmcif.gz")
# Coordinate-only formats whose header mdtraj reads without a topology, so the atom count can be
# compared with top= before reading (mdtraj's own error for a mismatch names neither number).
_RAW_READABLE = (".xtc", ".trr", ".dcd", ".nc", ".ncdf", ".netcdf")
# What mdtraj and its format readers raise on unreadable, truncated or mislabelled files.
_READ_ERRORS = (OSError, RuntimeError, ValueError, TypeError, IndexError, KeyError, EOFError)


def _extension(path):
    name = os.path.basename(path).lower()
    stem, ext = os.path.splitext(name)
    if ext == ".gz":
        ext = os.path.splitext(stem)[1] + ext
    return ext


@contextlib.contextmanager
def _reading(path, what="trajectory"):
    """Re-raise mdtraj's errors on a bad file as a ValueError that names the file."""
    try:
        yield
    except _READ_ERRORS as exc:
        msg = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else "no message"
        raise ValueError(
            f"Could not read the {what} file {path!r} ({_extension(path) or 'no extension'}): "
            f"{type(exc).__name__}: {msg}. The file may be truncated or corrupt, or not in the format its "
            "extension says; check it with the tool that wrote it (e.g. gmx check -f for xtc/trr)."
        ) from exc


def _topology(top):
    """``top`` (path, mdtraj Topology or Trajectory, or None) -> mdtraj Topology or None."""
    import mdtraj as md

    if top is None or isinstance(top, md.Topology):
        return top
    if isinstance(top, md.Trajectory):
        return top.topology
    if not isinstance(top, (str, os.PathLike)):
        raise TypeError(f"top must be a path to a structure/topology file (pdb, prmtop, psf, gro, h5), an "
                        f"mdtraj Topology or Trajectory; got {type(top).__name__}.")
    path = os.fspath(top)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Topology file {path!r} does not exist (relative paths start at "
                                f"{os.getcwd()!r}).")
    with _reading(path, "topology"):
        return md.load_topology(path)


def _atom_indices(atoms, topology, where):
    """``atoms`` (mdtraj selection string or indices, or None for all) -> sorted unique int array or None."""
    if atoms is None:
        return None
    n = topology.n_atoms
    if isinstance(atoms, str):
        try:
            idx = topology.select(atoms)
        except (ValueError, TypeError, KeyError) as exc:  # pyparsing's message lists the whole grammar: cut it
            raise ValueError(f"atoms={atoms!r} is not a valid mdtraj selection ({str(exc).splitlines()[0][-120:]}). "
                             "Examples: 'backbone', 'name CA', 'not element H', 'resid 0 to 9'.") from None
        if len(idx) == 0:
            raise ValueError(f"The selection atoms={atoms!r} matches no atoms of {where} ({n} atoms, residues "
                             f"{sorted({r.name for r in topology.residues})[:10]}). Check the atom and residue "
                             "names, e.g. [str(a) for a in md.load_topology(path).atoms].")
        return idx
    idx = np.asarray(atoms)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ValueError(f"atoms must be an mdtraj selection string or a non-empty list of atom indices; "
                         f"got {atoms!r}.")
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise ValueError(f"atoms has indices {bad[:10].tolist()} outside [0, {n}) for {where}, which has {n} atoms.")
    return np.unique(idx)  # file order: mdtraj subsets the topology in that order, whatever order is given


def _plan(path, topology, atoms):
    """Check one file before reading it; return (topology to pass to mdtraj, atom indices, atoms per frame)."""
    import mdtraj as md

    ext = _extension(path)
    if ext in _SELF_CONTAINED:
        with _reading(path):
            own = md.load_topology(path)
        idx = _atom_indices(atoms, own, repr(path))
        return None, idx, own.n_atoms if idx is None else len(idx)
    if topology is None:
        raise ValueError(f"{path!r} is a {ext or 'extensionless'} file, which stores coordinates but no atoms: "
                         "pass top=<pdb or prmtop> (a structure or topology file of the simulated system).")
    if ext in _RAW_READABLE:
        with _reading(path), md.open(path) as fh:
            n_file = fh.read(n_frames=1)[0].shape[1]
        if n_file != topology.n_atoms:
            raise ValueError(f"The topology has {topology.n_atoms} atoms but {path!r} has {n_file} atoms per frame. "
                             "Pass the topology of the system that was simulated (e.g. the solvated structure "
                             "when the trajectory includes the solvent).")
    idx = _atom_indices(atoms, topology, "the topology")
    return topology, idx, topology.n_atoms if idx is None else len(idx)


def _reader_atoms(path, idx, stride):
    """Atom indices to hand to mdtraj, and those to slice afterwards.

    mdtraj's trr reader corrupts the heap when given both stride > 1 and atom_indices (the bug fixed
    for xtc in mdtraj PR #1449, still in trr in mdtraj 1.11): read all atoms of a trr there and slice.
    """
    if idx is not None and stride > 1 and _extension(path) == ".trr":
        return None, idx
    return idx, None


def _check_stride(stride):
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise ValueError(f"stride must be an int >= 1 (keep every stride-th frame); got {stride!r}.")
    return int(stride)


def load_trajectories(files, top=None, stride=1, atoms=None):
    """Load trajectory files whole, one ``mdtraj.Trajectory`` per file.

    Parameters
    ----------
    files : path or list of paths
        Any format mdtraj reads: .xtc, .trr, .dcd, .nc, .h5, .pdb, .gro, ... (.h5 needs PyTables).
    top : path, mdtraj.Topology or mdtraj.Trajectory, optional
        Atoms of the system (a .pdb, .prmtop, .psf, .gro or .h5 file). Required for formats that store
        coordinates only (.xtc, .trr, .dcd, .nc); ignored for files that carry their own (.pdb, .h5, .gro).
    stride : int
        Keep every ``stride``-th frame (frame spacing grows by this factor).
    atoms : str or sequence of int, optional
        Atoms to keep: an mdtraj selection (``"backbone"``, ``"not element H"``) or atom indices;
        kept in the order of the file.

    Returns
    -------
    list of mdtraj.Trajectory
        Positions ``.xyz`` in nm, time ``.time`` in ps, one entry per file even for a single path.

    Raises
    ------
    FileNotFoundError
        A file (or ``top``) does not exist.
    ValueError
        A file cannot be read (named in the message), a coordinate-only format without ``top``, a
        topology whose atom count differs from the file's, a selection that matches no atoms, or
        ``stride < 1``.

    Examples
    --------
    >>> import cvlearn as cl
    >>> (traj,) = cl.load_trajectories(cl.data.alanine_dipeptide_pdb(), atoms="not element H")
    >>> traj.n_frames, traj.n_atoms, traj.xyz.dtype                    # positions in nm
    (1, 10, dtype('float32'))
    >>> cl.features.Dihedrals(traj.topology, "phi psi").transform(traj).round(3).tolist()   # radians
    [[3.142, 3.142]]
    """
    import mdtraj as md

    stride = _check_stride(stride)
    paths = _as_paths(files)
    topology = _topology(top)
    plans = [_plan(p, topology, atoms) for p in paths]  # every file checked before any is read whole
    out = []
    for path, (file_top, idx, _) in zip(paths, plans):
        read_idx, slice_idx = _reader_atoms(path, idx, stride)
        with _reading(path):
            traj = md.load(path, top=file_top, stride=stride, atom_indices=read_idx)
        out.append(traj if slice_idx is None else traj.atom_slice(slice_idx))
    return out


class FeatureStream(FrameSource):
    """Features of trajectory files, computed chunk by chunk on each pass, never all in memory.

    Iterating yields, per file, an iterator over that file's feature chunks (float64 arrays,
    frames x features, at most ``chunk`` frames each). Each pass re-reads the files with
    ``mdtraj.iterload``, so a stream can be iterated any number of times; :meth:`blocks` adds an
    overlap of frames from the same file, which is what time-lagged pairs need. At any time one
    chunk of one file (plus the overlap) is in memory. Exception: mdtraj reads .pdb files whole
    before cutting them into chunks (only their features are then computed chunk by chunk).

    Create one with :func:`stream_features`; every learner accepts it in ``fit``, TICA in
    ``score``, and ``transform`` returns one array per file. It is a
    :class:`~cvlearn.features.FrameSource` read front to back.

    Attributes
    ----------
    files : list of str
    featurizer : Featurizer
    n_features : int
    chunk, stride : int
        Frames per chunk (counted after striding) and the stride.

    Examples
    --------
    Three copies of one frame, read in chunks of two frames; features in nm:

    >>> import mdtraj as md, cvlearn as cl
    >>> md.load(cl.data.alanine_dipeptide_pdb()).join([md.load(cl.data.alanine_dipeptide_pdb())] * 2).save("ala.pdb")
    >>> stream = cl.stream_features("ala.pdb", cl.features.Distances(pairs=[[4, 14]], n_atoms=22), chunk=2)
    >>> stream
    FeatureStream(1 file(s), 1 features, chunk=2, stride=1)
    >>> [[x.shape for x in chunks] for chunks in stream]                 # per file, per chunk
    [[(2, 1), (1, 1)]]
    >>> [[x.shape for x in blocks] for blocks in stream.blocks(overlap=1)]   # + the frame before each chunk
    [[(2, 1), (2, 1)]]
    """

    def __init__(self, files, featurizer, top=None, chunk=10_000, stride=1, atoms=None):
        import mdtraj as md

        self.chunk = _check_chunk(chunk)
        self.stride = _check_stride(stride)
        self.files = _as_paths(files)
        if not (callable(getattr(featurizer, "transform", None)) and hasattr(featurizer, "n_features")):
            raise TypeError(f"featurizer must be a cvlearn Featurizer (positions -> features, e.g. "
                            f"cvlearn.features.Positions(n_atoms, 3)); got {type(featurizer).__name__}.")
        self.featurizer = featurizer
        self.n_features = int(featurizer.n_features)
        topology = _topology(top)
        self._plans = [_plan(p, topology, atoms) for p in self.files]
        n_atoms = [plan[2] for plan in self._plans]
        for path, n in zip(self.files, n_atoms):
            if n != n_atoms[0]:
                raise ValueError(f"{self.files[0]!r} gives {n_atoms[0]} atoms per frame but {path!r} gives {n}; "
                                 "one featurizer needs the same atoms in every file (use atoms= to select them).")
        # Featurize one frame now, so that a featurizer built for another system fails here rather
        # than after a long pass.
        file_top, idx, _ = self._plans[0]
        with _reading(self.files[0]):
            first = md.load_frame(self.files[0], 0, top=file_top, atom_indices=idx).xyz
        try:
            shape = featurizer.transform(first).shape
        except (ValueError, RuntimeError, IndexError, TypeError) as exc:
            raise ValueError(f"The featurizer {type(featurizer).__name__} cannot featurize frames of {n_atoms[0]} "
                             f"atoms from {self.files[0]!r}: {str(exc).rstrip('.')}. Build it for these atoms (e.g. "
                             f"Positions({n_atoms[0]}, 3)) or select the atoms it expects with atoms=.") from exc
        if shape != (1, self.n_features):
            raise ValueError(f"The featurizer {type(featurizer).__name__} says n_features={self.n_features} but gave "
                             f"shape {shape} for one frame.")

    def __repr__(self):
        return (f"FeatureStream({len(self.files)} file(s), {self.n_features} features, chunk={self.chunk}, "
                f"stride={self.stride})")

    @property
    def n_trajectories(self):
        return len(self.files)

    @property
    def frames_note(self):
        return f" (counted after stride {self.stride})"

    def name(self, i):
        return repr(self.files[i])

    def _non_finite(self, name, frame):
        return (f"The featurizer gave NaN or infinite values for frame {frame}{self.frames_note} of {name}. Repair "
                "or drop that frame, or use features defined for every configuration.")

    def _trajectories(self):
        return ((self.name(i), self._featurized(path, plan)) for i, (path, plan) in
                enumerate(zip(self.files, self._plans)))

    def _featurized(self, path, plan):
        import mdtraj as md

        file_top, idx, _ = plan
        read_idx, slice_idx = _reader_atoms(path, idx, self.stride)
        reader = md.iterload(path, top=file_top, chunk=self.chunk, stride=self.stride, atom_indices=read_idx)
        while True:
            with _reading(path):
                traj = next(reader, None)
            if traj is None:
                return
            yield self.featurizer.transform(traj.xyz if slice_idx is None else traj.xyz[:, slice_idx])
            del traj  # before the next chunk is read


def stream_features(files, featurizer, top=None, chunk=10_000, stride=1, atoms=None):
    """Stream the features of trajectory files chunk by chunk, for data larger than memory.

    Every file is checked when the stream is made (exists, readable header, topology given and
    of the right size, featurizer fits the atoms); frames are read only when the stream is
    iterated, e.g. by ``cl.TICA(lagtime=...).fit(stream)``.

    Parameters
    ----------
    files : path or list of paths
        Trajectory files in any format mdtraj reads (see :func:`load_trajectories`). Each file is
        one independent trajectory: time-lagged pairs never span two files.
    featurizer : Featurizer
        Maps positions (frames, atoms, 3) in nm to features; applied as ``featurizer.transform``.
    top : path, mdtraj.Topology or mdtraj.Trajectory, optional
        Required for coordinate-only formats (.xtc, .trr, .dcd, .nc).
    chunk : int
        Frames read and featurized at once (after striding). Memory is about
        ``chunk * (3 * n_atoms * 4 + n_features * 8)`` bytes, plus the overlap a learner asks for.
    stride : int
        Keep every ``stride``-th frame; a learner's lag time then counts strided frames.
    atoms : str or sequence of int, optional
        Atoms passed to the featurizer (mdtraj selection or indices); default all.

    Returns
    -------
    FeatureStream

    Examples
    --------
    >>> from cvlearn.data import alanine_dipeptide_pdb
    >>> from cvlearn.features import Positions, stream_features
    >>> stream = stream_features(alanine_dipeptide_pdb(), Positions(22, 3), chunk=100)
    >>> [[x.shape for x in chunks] for chunks in stream]
    [[(1, 66)]]
    """
    return FeatureStream(files, featurizer, top=top, chunk=chunk, stride=stride, atoms=atoms)
