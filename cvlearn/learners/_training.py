"""One training core for every neural learner: block split, Adam, early stopping, history.

Why blocks: consecutive MD frames are correlated, so a random frame split leaks the validation
set into training and early stopping then stops too late. Each trajectory is cut into contiguous
blocks and whole blocks go to validation; time-lagged pairs are formed inside a block only.
"""

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..exceptions import ConvergenceWarning, CVLearnError

__all__ = ["Batch", "minibatches", "plan_blocks", "split_blocks", "train", "TrainingError"]

log = logging.getLogger("cvlearn")


class TrainingError(CVLearnError, RuntimeError):
    """Training failed (e.g. the loss became NaN).

    Examples
    --------
    An absurd learning rate sends the loss to infinity in the first epochs:

    >>> import numpy as np, cvlearn as cl
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> try:
    ...     cl.AutoEncoder(layers=[4], max_epochs=5, lr=1e30, seed=0).fit(X)
    ... except cl.learners.TrainingError as err:
    ...     print(str(err)[:57])
    AutoEncoder: the training loss became inf at epoch 1. ...
    """


@dataclass
class Batch:
    """Training data as tensors: ``frames`` (n, features) and the pairs (x_t = frames[i0],
    x_{t+lag} = frames[it]) with weights ``w``; ``it`` is None without a lag.

    Frames are stored once: within a block x_t and x_{t+lag} are mostly the same frames, so a
    network evaluated on ``frames`` once serves both ends of every pair (:meth:`stacked_outputs`).
    """

    frames: torch.Tensor
    i0: torch.Tensor
    it: torch.Tensor | None
    w: torch.Tensor

    def __len__(self):
        return self.i0.shape[0]

    # Rows are gathered with index_select: on the CPU it is about 3x faster than advanced indexing
    # (``frames[idx]``) for the same rows, and the gathers are a fifth of a minibatch step.
    @property
    def x(self):
        return self.frames.index_select(0, self.i0)

    @property
    def y(self):
        return None if self.it is None else self.frames.index_select(0, self.it)

    def take(self, idx):
        """The pairs ``idx`` (a 1-D index tensor on the frames' device), on the same frames."""
        return Batch(self.frames, self.i0.index_select(0, idx),
                     None if self.it is None else self.it.index_select(0, idx), self.w.index_select(0, idx))

    def slice(self, start, stop):
        """Pairs ``start:stop`` as views (no copy), on the same frames."""
        return Batch(self.frames, self.i0[start:stop], None if self.it is None else self.it[start:stop],
                     self.w[start:stop])

    def stacked_outputs(self, fn):
        """fn(x_t) stacked on fn(x_{t+lag}) (2 x pairs rows) from one call of ``fn``: on all frames when
        the pairs cover most of them (each frame once), else on the rows of both ends gathered into one
        tensor (one pass of 2 x pairs rows costs less than two passes of half as many). Lagged batches only."""
        both = torch.cat([self.i0, self.it])
        if 2 * len(self) >= self.frames.shape[0]:
            return fn(self.frames).index_select(0, both)
        return fn(self.frames.index_select(0, both))


def plan_blocks(lengths, lagtime, valid_fraction, n_blocks, seed):
    """Cut each trajectory (``lengths`` in frames) into ``n_blocks`` contiguous blocks and choose a
    ``valid_fraction`` of all blocks (at least one, with ``seed``) for validation.

    Returns the blocks as (trajectory, first frame, end frame) and the set of validation block indices.
    """
    lag = lagtime or 0
    blocks = []
    for i, n in enumerate(lengths):
        edges = np.linspace(0, n, n_blocks + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            if b - a <= lag:
                raise ValueError(
                    f"A validation block of {b - a} frames is not longer than the lag ({lag} frames): a "
                    f"trajectory of {n} frames cut into n_blocks={n_blocks} blocks leaves no time-lagged "
                    "pairs. Use fewer blocks, a shorter lag, or longer trajectories.")
            blocks.append((i, int(a), int(b)))
    if len(blocks) < 2:
        raise ValueError("Need at least two blocks to hold out validation data; increase n_blocks.")
    rng = np.random.default_rng(seed)
    n_valid = min(len(blocks) - 1, max(1, int(round(valid_fraction * len(blocks)))))
    return blocks, set(rng.choice(len(blocks), size=n_valid, replace=False).tolist())


def split_blocks(arrays, weights, lagtime, valid_fraction, n_blocks, seed, dtype, device):
    """The block split of :func:`plan_blocks` on trajectories in memory.

    Returns (train, valid) :class:`Batch` objects; with a ``lagtime`` (frames) each holds the pairs
    (x_t, x_{t+lag}) of its blocks, weighted by w_t.
    """
    lag = lagtime or 0
    blocks, valid_idx = plan_blocks([len(x) for x in arrays], lagtime, valid_fraction, n_blocks, seed)

    def gather(indices):
        frames, i0, it, ws, start = [], [], [], [], 0
        for i in indices:
            traj, a, b = blocks[i]
            x, w = arrays[traj][a:b], weights[traj][a:b]
            n_pairs = len(x) - lag
            frames.append(x)
            i0.append(start + np.arange(n_pairs))
            it.append(start + lag + np.arange(n_pairs))
            ws.append(w[:n_pairs])
            start += len(x)
        index = lambda parts: torch.as_tensor(np.concatenate(parts), device=device)  # noqa: E731
        return Batch(torch.as_tensor(np.concatenate(frames), dtype=dtype, device=device), index(i0),
                     index(it) if lag else None, torch.as_tensor(np.concatenate(ws), dtype=dtype, device=device))

    train_idx = [i for i in range(len(blocks)) if i not in valid_idx]
    return gather(train_idx), gather(sorted(valid_idx))


def minibatches(data, batch_size):
    """One epoch of in-memory training: ``epoch(gen)`` gives the whole :class:`Batch` ``data`` when
    ``batch_size`` is None or not smaller, else shuffled minibatches drawn with the generator ``gen``.

    The minibatches are consecutive ``batch_size`` pieces of one random permutation of the pairs per
    epoch (``torch.randperm(len(data), generator=gen)``); a last piece of one pair is dropped (no
    covariance from one pair).
    """
    n = len(data)
    if batch_size is None or batch_size >= n:
        return lambda gen: [data]

    def epoch(gen):
        # Permute the pair indices and weights once per epoch; each minibatch is then a view of them.
        shuffled = data.take(torch.randperm(n, generator=gen).to(data.frames.device))
        return [shuffled.slice(a, a + batch_size) for a in range(0, n, batch_size) if min(n - a, batch_size) > 1]

    return epoch


def train(modules, loss_fn, epoch_batches, valid_loss, *, max_epochs, lr, patience, lr_schedule, seed, progress,
          owner, weight_decay=0.0):
    """Adam on ``loss_fn(batch)`` with early stopping on the validation loss; best weights restored.

    ``modules`` is the list of torch modules whose parameters are trained (e.g. encoder and decoder).
    ``epoch_batches(gen)`` gives the :class:`Batch` objects of one epoch, shuffled with the torch
    generator ``gen`` (seeded by ``seed``): :func:`minibatches` for data in memory, a DataLoader
    for data read from files (:mod:`._data`). ``valid_loss()`` is the validation loss (a float),
    called in eval mode without gradients.
    Returns the history {"train": [...], "valid": [...]} and the best epoch (0-based).
    """
    params = [p for m in modules for p in m.parameters()]
    # The fused Adam updates all parameters in one kernel instead of ~10 per parameter tensor: about
    # 0.3 ms less per minibatch step on the CPU for a 3-layer network (torch has it for CPU and CUDA).
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if lr_schedule is None:
        sched = None
    elif lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)
    elif isinstance(lr_schedule, (int, float)) and 0 < lr_schedule <= 1:
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=float(lr_schedule))
    else:
        raise ValueError(f"lr_schedule must be None, 'cosine' or a decay factor in (0, 1]; got {lr_schedule!r}.")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    history = {"train": [], "valid": []}
    best, best_epoch, best_state, wait = math.inf, 0, None, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, desc=f"{owner} training", unit="epoch", mininterval=0.5)
    try:
        for epoch in range(max_epochs):
            for m in modules:
                m.train()
            total, count = 0.0, 0
            for batch in epoch_batches(gen):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(
                        f"{owner}: the training loss became {value} at epoch {epoch}. Lower the "
                        f"learning rate (lr={lr}), check the features for huge values, or increase epsilon "
                        "(regularization).")
                loss.backward()
                opt.step()
                total += value * len(batch)
                count += len(batch)
            if sched is not None:
                sched.step()
            for m in modules:
                m.eval()
            with torch.no_grad():
                v = float(valid_loss())
            history["train"].append(total / count)
            history["valid"].append(v)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train=f"{total / count:.4g}", valid=f"{v:.4g}")
            improved = math.isfinite(v) and (not math.isfinite(best) or v < best - 1e-9 * abs(best))
            if improved:
                best, best_epoch, wait = v, epoch, 0
                best_state = [copy.deepcopy(m.state_dict()) for m in modules]
            else:
                wait += 1
                if wait >= patience:
                    break
        else:
            import warnings

            warnings.warn(f"{owner} reached max_epochs={max_epochs} with the validation loss still improving; "
                          "increase max_epochs.", ConvergenceWarning, stacklevel=3)
    finally:
        if bar is not None:
            bar.close()
    if best_state is None:
        raise TrainingError(f"{owner}: the validation loss was never finite; check the data.")
    for m, s in zip(modules, best_state):
        m.load_state_dict(s)
    log.info("%s: best validation loss %.6g at epoch %d of %d", owner, best, best_epoch, len(history["valid"]))
    return history, best_epoch
