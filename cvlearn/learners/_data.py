"""Training data read from a FrameSource: a standardization pass, the block split, and shuffled pairs.

The neural learners train on data that do not fit in memory in three steps:

1. :func:`scan` reads the source once: the mean and standard deviation of every feature
   (:class:`Moments`, the statistics the in-memory path computes with numpy) and the frames per
   trajectory.
2. :func:`~._training.plan_blocks` makes the same train/validation block split as in memory.
3. Every epoch, :class:`PairStream` (a torch ``IterableDataset`` read through a ``DataLoader``)
   yields minibatches of time-lagged pairs from the training blocks, shuffled across files:
   pieces of trajectories fill a buffer of about ``_BUFFER_BYTES``, whose pairs are permuted and
   cut into batches (the shuffle buffer of tf.data or WebDataset). Array-backed sources
   (``NpyFiles``, memory-mapped arrays) are read in pieces of ``_PIECE`` pairs in random order, so a
   buffer holds hundreds of places from all files; the others (a FeatureStream reads its files
   front to back) are read chunk by chunk, switching at random between trajectories, in
   proportion to the frames each has left (each epoch reads them twice: for the training pairs,
   then for the validation pairs). Validation pairs are read in order, and their loss is
   accumulated exactly over the whole validation set (:meth:`PairReader.valid_sum`).

At any time one buffer (plus one piece and one batch) is in memory, whatever the size of the data.
"""

import numpy as np
import torch

from ._moments import Moments
from ._training import Batch

__all__ = ["scan", "PairReader", "PairStream"]

_BUFFER_BYTES = 64 << 20  # frames held for shuffling (see the module docstring)
_PIECE = 1024  # pairs per piece read at random from array-backed sources


def scan(source, owner):
    """One pass over ``source``: (mean, standard deviation, frames per trajectory).

    Unweighted, with the population standard deviation, as the in-memory path's ``X.std(0)``.
    """
    mom, lengths = None, []
    for chunks in source:
        n = 0
        for x in chunks:
            if mom is None:
                mom = Moments(x.shape[1])
            mom.add(x, np.ones(len(x)))
            n += len(x)
        lengths.append(n)
    if not lengths:
        raise ValueError(f"{owner} got data with no trajectories (an empty iterable); pass at least one "
                         "(frames x features) array or file.")
    for i, n in enumerate(lengths):
        if n < 2:
            raise ValueError(f"{source.name(i)} has {n} frame(s) (n_samples={n}){source.frames_note}; at least 2 "
                             "are needed.")
    return mom.mean(), np.sqrt(np.maximum(np.diag(mom.covariance(unbiased=False)), 0.0)), lengths


class PairReader:
    """Standardized pieces of a source's training or validation blocks, with their pairs.

    Parameters
    ----------
    source : FrameSource
    lengths : list of int
        Frames per trajectory (from :func:`scan`).
    blocks, valid : list of (trajectory, start, end), set of int
        The block split (:func:`~._training.plan_blocks`).
    mean, std : ndarray (n_features,)
        Standardization applied to every frame read.
    lagtime : int or None
        Pairs are (t, t + lag); None: single frames.
    weights : list of ndarray or None
        Per frame of each trajectory (None: all 1).
    dtype : torch.dtype
    """

    def __init__(self, source, lengths, blocks, valid, mean, std, lagtime, weights, dtype):
        self.source, self.lengths, self.lag = source, lengths, lagtime or 0
        self.mean, self.std, self.weights, self.dtype = mean, std, weights, dtype
        self.np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self.edges = [[] for _ in lengths]  # block boundaries and validation flags per trajectory
        self.is_valid = [[] for _ in lengths]
        self.ranges = {True: [], False: []}  # pair starts [s, e) of each block, by validation flag
        for k, (i, a, b) in enumerate(blocks):
            self.edges[i].append(a)
            self.is_valid[i].append(k in valid)
            self.ranges[k in valid].append((i, a, b - self.lag))
        self.edges = [np.array(e + [n]) for e, n in zip(self.edges, lengths)]
        self.is_valid = [np.array(v) for v in self.is_valid]

    @property
    def n_features(self):
        return len(self.mean)

    def _standardize(self, x):
        return ((x - self.mean) / self.std).astype(self.np_dtype)

    def _pair_weights(self, i, t):
        return np.ones(len(t)) if self.weights is None else self.weights[i][t]

    def pieces(self, valid, rng=None, size=_PIECE):
        """Pieces (frames, local pair starts, pair weights) of the validation (or training) blocks.

        In random order if ``rng`` (a numpy Generator) is given, else in order. Frames are
        standardized, in the working dtype; the pairs of a piece are (frames[j], frames[j + lag]).
        """
        if self.source.random_access:
            return self._random_pieces(valid, rng, size)
        return self._sequential_pieces(valid, rng)

    def _random_pieces(self, valid, rng, size):
        ranges = [(i, s, min(s + size, e)) for i, a, e in self.ranges[valid] for s in range(a, e, size)]
        for k in (range(len(ranges)) if rng is None else rng.permutation(len(ranges))):
            i, s, e = ranges[k]
            yield self._standardize(self.source.read(i, s, e + self.lag)), np.arange(e - s), self._pair_weights(
                i, np.arange(s, e))

    def _sequential_pieces(self, valid, rng):
        lag = self.lag
        active = list(enumerate(self.source.blocks(lag)))
        done = [0] * len(self.lengths)  # frames of each trajectory read so far
        while active:
            k = 0
            if rng is not None and len(active) > 1:
                left = np.array([self.lengths[i] - done[i] for i, _ in active], dtype=float)
                k = rng.choice(len(active), p=left / left.sum()) if left.sum() > 0 else 0
            i, blocks = active[k]
            block = next(blocks, None)
            if block is None:
                active.pop(k)
                continue
            start = done[i] - min(lag, done[i])
            done[i] = start + len(block)
            if done[i] > self.lengths[i]:
                raise ValueError(f"{self.source.name(i)} gave more frames than in the first pass ({self.lengths[i]}); "
                                 "the data changed while training.")
            t = np.arange(start, done[i] - lag)
            where = np.searchsorted(self.edges[i], t, side="right") - 1
            t = t[(self.is_valid[i][where] == valid) & (where == np.searchsorted(self.edges[i], t + lag, "right") - 1)]
            if len(t):
                a, b = t[0] - start, t[-1] + lag + 1 - start  # only the frames the pairs use
                yield self._standardize(block[a:b]), t - t[0], self._pair_weights(i, t)

    def valid_sum(self, parts_fn, device):
        """The sum over all validation pieces of ``parts_fn(batch)`` (lists of tensors that add up)."""
        total = None
        size = self.source.chunk if self.source.random_access else None  # array-backed sources have a chunk
        for frames, i0, w in self.pieces(valid=True, size=size):
            i0 = torch.as_tensor(i0, device=device)
            batch = Batch(torch.as_tensor(frames, device=device), i0, i0 + self.lag if self.lag else None,
                          torch.as_tensor(w, dtype=self.dtype, device=device))
            parts = parts_fn(batch)
            total = parts if total is None else [a + b for a, b in zip(total, parts)]
        return total


class PairStream(torch.utils.data.IterableDataset):
    """Shuffled minibatches of the training pairs of a :class:`PairReader`, for a torch ``DataLoader``.

    Yields (frames, w): frames are x_t stacked on x_{t+lag} (2 B rows) for a lagged reader, x_t
    (B rows) otherwise; w are the B pair weights. Every batch has ``batch_size`` pairs except the
    last of an epoch; pairs left over from one buffer open the next. Set ``seed`` before each
    epoch: the same seed gives the same batches.
    """

    def __init__(self, reader, batch_size):
        super().__init__()
        self.reader, self.batch_size, self.seed = reader, int(batch_size), 0
        itemsize = reader.np_dtype.itemsize
        self.buffer_frames = max(_BUFFER_BYTES // (itemsize * reader.n_features), 4 * self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        parts, n_frames, carry = [], 0, None
        for piece in self.reader.pieces(valid=False, rng=rng):
            parts.append(piece)
            n_frames += len(piece[0])
            if n_frames >= self.buffer_frames:
                carry = yield from self._batches(parts, rng, carry)
                parts, n_frames = [], 0
        if parts:
            carry = yield from self._batches(parts, rng, carry)
        if carry is not None and len(carry[1]) > 1:
            yield self._tensors(*carry)

    def _batches(self, parts, rng, carry):
        """Yield the full batches of the buffered ``parts`` (after ``carry``); return the pairs left over."""
        lag = self.reader.lag
        offsets = np.cumsum([0] + [len(f) for f, _, _ in parts[:-1]])
        frames = np.concatenate([f for f, _, _ in parts])
        i0 = np.concatenate([j + o for (_, j, _), o in zip(parts, offsets)])
        w = np.concatenate([wp for _, _, wp in parts])
        parts.clear()  # the caller's list: the pieces are copied into the buffer, free them
        perm = rng.permutation(len(i0))
        i0, w = i0[perm], w[perm]
        # one take of all rows: several times faster than two fancy indexings and a concatenate
        gather = (lambda j: frames.take(j, axis=0)) if not lag else (
            lambda j: frames.take(np.concatenate([j, j + lag]), axis=0))
        first = 0
        if carry is not None:  # complete the batch left over from the last buffer
            first = min(self.batch_size - len(carry[1]), len(i0))
            carry = (self._join(carry[0], gather(i0[:first])), np.concatenate([carry[1], w[:first]]))
            if len(carry[1]) < self.batch_size:
                return carry
            yield self._tensors(*carry)
        for a in range(first, len(i0), self.batch_size):
            b = a + self.batch_size
            if b > len(i0):
                return gather(i0[a:]), w[a:]
            yield self._tensors(gather(i0[a:b]), w[a:b])
        return None

    def _join(self, x, y):
        """Join two stacks of pairs ([x_t; x_t+lag] halves kept together)."""
        if not self.reader.lag:
            return np.concatenate([x, y])
        hx, hy = len(x) // 2, len(y) // 2
        return np.concatenate([x[:hx], y[:hy], x[hx:], y[hy:]])

    def _tensors(self, frames, w):
        return torch.from_numpy(np.ascontiguousarray(frames)), torch.as_tensor(w, dtype=self.reader.dtype)
