"""Frames read chunk by chunk: one base for every source of data larger than memory.

A :class:`FrameSource` is a collection of independent trajectories, each read as a sequence of
chunks (frames x features). The base class checks every chunk (numeric, 2-D, finite, one feature
count) and adds the overlap that time-lagged pairs need (:meth:`FrameSource.blocks`), so
subclasses only say how to read:

- :class:`~cvlearn.features.FeatureStream`: trajectory files featurized chunk by chunk (mdtraj);
- :class:`NpyFiles`: ``.npy`` files of features, memory-mapped;
- arrays that are already memory-mapped, and iterables of arrays or of lists of chunks, which
  :func:`as_source` wraps when a learner is given them.

Array-backed sources also read any range of frames (``read``), which lets network training draw
pieces of trajectories in random order; the others are read front to back only.
"""

import numbers
import os
from collections.abc import Iterator, Mapping

import numpy as np

_CHUNK = 10_000  # default frames per chunk, as FeatureStream's

__all__ = ["FrameSource", "NpyFiles", "as_source", "join_tail", "only_in_chunks"]


def join_tail(tail, x, overlap):
    """Return (``tail`` followed by ``x``, its last ``overlap`` rows as the next tail).

    Every time-lagged pair (t, t + lag) of a trajectory read in pieces lies in exactly one such
    block when ``overlap = lag``: the block whose new rows hold t + lag. The tail is a copy, so
    the block it came from can be freed.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> block, tail = cl.features.join_tail(np.array([[1.0]]), np.array([[2.0], [3.0]]), overlap=1)
    >>> block.ravel().tolist(), tail.ravel().tolist()
    ([1.0, 2.0, 3.0], [3.0])
    """
    block = np.concatenate([tail, x]) if len(tail) else x
    return block, block[max(len(block) - overlap, 0):].copy() if overlap else block[:0]


def _as_paths(files):
    """One path or a list of paths -> list of str, each an existing regular file (trajectory or .npy files)."""
    items = [files] if isinstance(files, (str, os.PathLike)) else files
    try:
        paths = [os.fspath(f) for f in items]
    except TypeError:
        raise TypeError(f"files must be a path or a list of paths to trajectory files; got {files!r}.") from None
    if not paths:
        raise ValueError("Got an empty list of trajectory files; pass at least one path.")
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"Trajectory file {p!r} does not exist (relative paths start at "
                                    f"{os.getcwd()!r}). Check the name and the directory.")
        if not os.path.isfile(p):
            raise ValueError(f"{p!r} is not a regular file; pass the path of a trajectory file.")
    return paths


def _check_overlap(overlap):
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Integral) or overlap < 0:
        raise ValueError(f"overlap must be an int >= 0 (frames); got {overlap!r}.")
    return int(overlap)


def _check_chunk(chunk):
    if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1 (frames read at once); got {chunk!r}.")
    return int(chunk)


class FrameSource:
    """Independent trajectories of features, read chunk by chunk, never all in memory.

    Iterating yields, per trajectory, an iterator over its chunks (float64 arrays, frames x
    features); :meth:`blocks` adds an overlap of frames from the same trajectory, which is what
    time-lagged pairs need. TICA and PCA ``fit`` (and TICA ``score``) read a source once; the
    neural learners read it once for the standardization, then once per epoch.

    Attributes
    ----------
    n_features : int or None
        None until the first chunk has been read, for sources that cannot tell before.
    lengths : list of int or None
        Frames per trajectory, when known without reading (array-backed sources).
    random_access : bool
        True if :meth:`read` can return any range of frames (array-backed sources).
    reiterable : bool
        False for a source over a one-shot iterator (e.g. a generator), which can be read once.

    Examples
    --------
    :class:`NpyFiles` and :class:`FeatureStream` are FrameSources; learners also accept plain lists
    of chunks or generators and wrap them in one. Reading with an overlap for time-lagged pairs:

    >>> import numpy as np, cvlearn as cl
    >>> np.save("run0.npy", np.arange(10.0).reshape(5, 2))
    >>> source = cl.features.NpyFiles(["run0.npy"], chunk=2)
    >>> isinstance(source, cl.features.FrameSource), source.lengths, source.n_features
    (True, [5], 2)
    >>> [[x[:, 0].tolist() for x in blocks] for blocks in source.blocks(overlap=1)]
    [[[0.0, 2.0], [2.0, 4.0, 6.0], [6.0, 8.0]]]
    >>> source.apply(lambda x: x.sum(axis=1, keepdims=True))[0].ravel().tolist()
    [1.0, 5.0, 9.0, 13.0, 17.0]
    """

    n_features = None
    lengths = None
    random_access = False
    reiterable = True
    frames_note = ""  # how frames are counted, for messages (e.g. " (counted after stride 2)")

    @property
    def n_trajectories(self):
        """Number of trajectories, or None if known only after reading (a one-shot iterator)."""
        return None if self.lengths is None else len(self.lengths)

    def _trajectories(self):
        """Iterator over (name, iterator over raw chunks), one per trajectory."""
        raise NotImplementedError

    def name(self, i):
        """How messages name trajectory ``i`` (a quoted path, or ``X[i]``)."""
        return f"X[{i}]"

    def __iter__(self):
        return self.blocks(overlap=0)

    def blocks(self, overlap=0):
        """Per trajectory, an iterator over blocks: the last ``overlap`` frames before a chunk, then the chunk.

        A time-lagged pair (t, t + lag) lies inside exactly one block when ``overlap = lag``: the
        block whose chunk holds frame t + lag. Blocks never span two trajectories; the first
        block of a trajectory has no overlap.

        Returns
        -------
        iterator over the trajectories, in order, each an iterator of float64 arrays (frames x n_features).

        Raises
        ------
        TypeError, ValueError
            While reading: a chunk that is not numeric, not 2-D, has another feature count than
            the first, or holds NaN or infinite values (the message names the trajectory and frame).
        """
        overlap = _check_overlap(overlap)
        return (self._checked(name, chunks, overlap) for name, chunks in self._trajectories())

    def _checked(self, name, chunks, overlap):
        tail = np.zeros((0, self.n_features or 0))
        done = 0  # frames of this trajectory read so far
        for raw in chunks:
            x = self._as_chunk(raw, name, done)
            del raw
            if not len(x):
                continue  # a block of old frames only would hold no new pair
            done += len(x)
            block, tail = join_tail(tail, x, overlap)
            del x
            yield block
            del block  # before the next chunk is read, so that one chunk at a time is held

    def _as_chunk(self, raw, name, done):
        """One chunk as a checked float64 array; ``done`` frames of its trajectory came before it."""
        x = np.asarray(raw)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} has a chunk of dtype {x.dtype} at frame {done}{self.frames_note}; features must "
                            "be real numbers (frames x features).")
        if x.ndim != 2:
            raise ValueError(f"{name} has a chunk of shape {x.shape} at frame {done}{self.frames_note}; every chunk "
                             "must be 2-D (frames x features): reshape 1-D data with x.reshape(-1, 1).")
        if self.n_features is None:
            if x.shape[1] == 0:
                raise ValueError(f"{name} has 0 features; at least 1 is required.")
            self.n_features = x.shape[1]
        if x.shape[1] != self.n_features:
            raise ValueError(f"{name} has a chunk of {x.shape[1]} features at frame {done}{self.frames_note}, but the "
                             f"data so far have {self.n_features}. Every chunk of every trajectory must be "
                             "featurized the same way.")
        x = x.astype(np.float64, copy=False)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise ValueError(self._non_finite(name, done + int(np.argmax(bad))))
        return x

    def _non_finite(self, name, frame):
        return (f"{name} has NaN or infinite values at frame {frame}{self.frames_note}. Remove or repair that frame "
                "(e.g. x[np.isfinite(x).all(axis=1)]) before fitting.")

    def expect_features(self, n_features, owner):
        """Raise if the source has another feature count than ``n_features`` (known once a chunk is read)."""
        if n_features is not None and self.n_features is not None and self.n_features != n_features:
            raise ValueError(f"The stream has {self.n_features} features, but {owner} is expecting {n_features} "
                             "features as input (the number it was fitted with).")

    def map(self, fn):
        """A source whose chunks are ``fn`` of this one's (e.g. a network's outputs), read as this one is read."""
        return _Mapped(self, fn)

    def apply(self, fn):
        """``fn`` on every chunk, concatenated per trajectory: a list of arrays (e.g. CV values per file)."""
        out = []
        for chunks in self:
            parts = [fn(x) for x in chunks]
            out.append(np.concatenate(parts or [fn(np.zeros((0, self.n_features)))]))
        return out


class _Mapped(FrameSource):
    """``fn`` applied to every chunk of ``source``."""

    def __init__(self, source, fn):
        self._source, self._fn = source, fn
        self.lengths, self.reiterable, self.frames_note = source.lengths, source.reiterable, source.frames_note

    def name(self, i):
        return self._source.name(i)

    def _trajectories(self):
        return ((self.name(i), map(self._fn, chunks)) for i, chunks in enumerate(self._source))


class _Arrays(FrameSource):
    """Trajectories held as array-likes (np.memmap included), sliced chunk by chunk and by range.

    ``_open(i)`` returns trajectory i's array. The pages of a memory map that have been read count
    as the process's resident memory until the map is closed (the kernel can drop them, as they are
    clean, but ``ru_maxrss`` counts them), so :class:`NpyFiles` re-opens the map for every read.
    """

    random_access = True

    def __init__(self, arrays, chunk):
        self.chunk = _check_chunk(chunk)
        self._arrays = list(arrays)
        for i, x in enumerate(self._arrays):
            self._check_array(x, i)
        self.lengths = [len(x) for x in self._arrays]
        self.n_features = self._arrays[0].shape[1]

    def _check_array(self, x, i):
        """Type, shape and feature count of trajectory i, before anything is read."""
        name = self.name(i)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} holds {x.dtype} values; features must be real numbers (frames x features).")
        if x.ndim != 2:
            raise ValueError(f"{name} has shape {x.shape} but must be 2-D (frames x features); reshape 1-D data "
                             "with x.reshape(-1, 1).")
        if x.shape[1] == 0:
            raise ValueError(f"{name} has 0 features; at least 1 is required.")
        first = self._arrays[0] if i else x
        if x.shape[1] != first.shape[1]:
            raise ValueError(f"{name} has {x.shape[1]} features but {self.name(0)} has {first.shape[1]}. All "
                             "trajectories must be featurized the same way.")

    def _open(self, i):
        return self._arrays[i]

    def read(self, i, start, stop):
        """Frames [start, stop) of trajectory ``i`` as a new float64 array (not checked: read them first)."""
        return np.array(self._open(i)[start:stop], dtype=np.float64)

    def _trajectories(self):
        for i, n in enumerate(self.lengths):
            yield self.name(i), (self.read(i, a, min(a + self.chunk, n)) for a in range(0, n, self.chunk))


class NpyFiles(_Arrays):
    """Features stored as ``.npy`` files, one trajectory (frames x features) per file, memory-mapped.

    Files are opened with ``np.load(path, mmap_mode="r")``: nothing is loaded when the source is
    made (only the headers are checked), and each read maps the file only while it copies the
    frames it needs, so resident memory stays one chunk whatever the size of the files. Any
    numeric dtype is read (float32 halves the disk space); frames are converted to float64.

    Parameters
    ----------
    files : path or list of paths
        ``.npy`` files written by ``np.save`` (e.g. in pieces through ``np.lib.format.open_memmap``).
        Each file is one independent trajectory: time-lagged pairs never span two files.
    chunk : int
        Frames read at once by TICA, PCA and the standardization pass (memory about
        ``chunk * n_features * 8`` bytes per chunk).

    Attributes
    ----------
    files : list of str
    lengths : list of int
        Frames per file.
    n_features : int
    dtype : numpy.dtype
        dtype of the first file.

    Examples
    --------
    >>> import numpy as np, os, tempfile, cvlearn as cl
    >>> d = tempfile.mkdtemp()
    >>> rng = np.random.default_rng(0)
    >>> paths = [os.path.join(d, f"run{i}.npy") for i in range(2)]
    >>> for p in paths:
    ...     np.save(p, np.cumsum(rng.normal(size=(500, 3)), axis=0).astype(np.float32))
    >>> data = cl.features.NpyFiles(paths, chunk=128)
    >>> data
    NpyFiles(2 file(s), 3 features, 1000 frames, chunk=128)
    >>> streamed = cl.TICA(lagtime=5).fit(data)
    >>> in_memory = cl.TICA(lagtime=5).fit([np.load(p) for p in paths])
    >>> bool(np.allclose(streamed.eigenvalues_, in_memory.eigenvalues_, rtol=0, atol=1e-10))
    True
    """

    def __init__(self, files, chunk=_CHUNK):
        self.files = _as_paths(files)
        super().__init__([self._load(i) for i in range(len(self.files))], chunk)
        self.dtype = self._arrays[0].dtype
        self._arrays = None  # re-opened on every read (see _Arrays)

    def name(self, i):
        return repr(self.files[i])

    def _load(self, i):
        path = self.files[i]
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":
            raise ValueError(f"{path!r} is not a .npy file (it does not start with the NumPy header); write the "
                             "features with np.save(path, x).")
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            if "object" in str(exc).lower():
                raise TypeError(f"{path!r} holds Python objects, not numbers (dtype object); save the features as "
                                "a numeric array, e.g. np.save(path, np.asarray(x, dtype=np.float32)).") from None
            raise ValueError(f"Could not read {path!r} as a .npy file ({exc}); write it with np.save.") from None
        except (OSError, EOFError) as exc:
            raise ValueError(f"Could not read {path!r} as a .npy file ({type(exc).__name__}: {exc}); the file may "
                             "be truncated. Write it with np.save.") from None

    _open = _load

    def __repr__(self):
        return (f"NpyFiles({len(self.files)} file(s), {self.n_features} features, {sum(self.lengths)} frames, "
                f"chunk={self.chunk})")


class _Chunks(FrameSource):
    """An iterable of trajectories, each an array or an iterable (list, generator) of chunks (arrays)."""

    def __init__(self, data, chunk=_CHUNK):
        self._data, self.chunk = data, chunk
        self.reiterable = not isinstance(data, Iterator) and not (
            isinstance(data, (list, tuple)) and any(isinstance(x, Iterator) for x in data))

    def __repr__(self):
        return f"<iterable of trajectories, {self.n_features or 'unknown'} features>"

    @property
    def n_trajectories(self):
        return len(self._data) if isinstance(self._data, (list, tuple)) else None

    def _trajectories(self):
        n = 0
        for n, item in enumerate(self._data, 1):
            name = self.name(n - 1)
            if isinstance(item, Iterator):
                yield name, _not_empty(item, f"{name} is an iterator that gave no chunks")
            else:
                yield name, item if _is_chunked(item) else self._slices(item)
        if n == 0 and isinstance(self._data, Iterator):
            raise ValueError("X is an iterator that gave no trajectories" + _ONE_SHOT)

    def _slices(self, x):
        """A whole trajectory in chunks, so that a memory-mapped one is never converted at once."""
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        if x.ndim == 0 or len(x) <= self.chunk:
            yield x
            return
        for a in range(0, len(x), self.chunk):
            yield x[a:a + self.chunk]


_ONE_SHOT = (": it is empty, or an earlier call read it (a generator can be read once). Pass a list of arrays or of "
             "lists of chunks, or cvlearn.features.NpyFiles, to read the data more than once.")


def _not_empty(chunks, what):
    empty = True
    for x in chunks:
        empty = False
        yield x
    if empty:
        raise ValueError(what + _ONE_SHOT)


def _is_chunked(x):
    """True for one trajectory given as chunks: an iterator, or a list holding arrays or iterators."""
    return isinstance(x, Iterator) or (
        isinstance(x, (list, tuple)) and any(hasattr(c, "__array__") or isinstance(c, Iterator) for c in x))


def as_source(data):
    """The :class:`FrameSource` that reads ``data``, or None for data in memory.

    In memory (None): an array, a nested list of numbers, a list of arrays (none of them
    memory-mapped), a cvlearn Trajectory. Read chunk by chunk: a FrameSource; an ``np.memmap`` or
    a list holding one (e.g. ``[np.load(p, mmap_mode="r") for p in paths]``); a list in which some
    trajectory is a list or iterator of chunks; any other iterable (e.g. a generator of arrays).

    Memory maps opened by the caller stay open, so the pages read from them count as resident
    memory until the caller closes them; :class:`NpyFiles` maps each file only while reading.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> cl.features.as_source(np.zeros((5, 2))) is None                         # in memory
    True
    >>> source = cl.features.as_source([[np.zeros((3, 2)), np.ones((2, 2))]])   # one trajectory in 2 chunks
    >>> [[len(x) for x in chunks] for chunks in source]
    [[3, 2]]
    """
    if isinstance(data, FrameSource):
        return data
    if isinstance(data, np.memmap):
        return _Arrays([data], chunk=_CHUNK)
    if isinstance(data, (list, tuple)):
        if data and any(isinstance(x, np.memmap) for x in data) and all(isinstance(x, np.ndarray) for x in data):
            return _Arrays(data, chunk=_CHUNK)
        if any(_is_chunked(x) for x in data):
            return _Chunks(data)
        return None
    if (hasattr(data, "__iter__") and not any(hasattr(data, a) for a in ("__array__", "per_walker", "toarray"))
            and not isinstance(data, (str, bytes, Mapping, os.PathLike))):
        return _Chunks(data)
    return None


def only_in_chunks(data):
    """True for data given as chunks (a FrameSource, lists of chunks, iterators), as opposed to arrays
    (memory-mapped ones included), which can also be taken whole.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> cl.features.only_in_chunks([np.zeros((3, 2))]), cl.features.only_in_chunks(iter([np.zeros((3, 2))]))
    (False, True)
    """
    return isinstance(data, FrameSource) or isinstance(as_source(data), _Chunks)
