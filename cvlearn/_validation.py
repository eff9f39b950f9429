"""One input helper for every learner: arrays or lists of trajectories -> checked float64 arrays."""

import numbers

import numpy as np

__all__ = ["as_trajectory_list", "is_single_table", "is_stream", "check_lagtime", "check_weights", "check_positive"]


def is_stream(data):
    """True if ``data`` is a :class:`cvlearn.features.FrameSource` (e.g. a FeatureStream: read chunk by chunk)."""
    from .features import FrameSource  # on use: cvlearn.features imports this module

    return isinstance(data, FrameSource)


def _n_frames(x):
    """Frames of a trajectory given as an array or as its frame count."""
    return int(x) if isinstance(x, numbers.Integral) else len(x)


def _to_arrays(data):
    """Split the accepted input kinds into a list of array-likes, one per trajectory."""
    if hasattr(data, "per_walker"):  # cvlearn.Trajectory: walkers are independent trajectories
        return [w.reshape(w.shape[0], -1) for w in data.per_walker()]
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise ValueError("Got an empty list of trajectories; pass at least one (frames x features) array.")
        # Plain nested lists of numbers are one table (scikit-learn's reading), not many trajectories:
        # several trajectories are passed as a list of arrays.
        if all(isinstance(x, numbers.Number) for x in data) or all(
                isinstance(x, (list, tuple)) and all(isinstance(v, numbers.Number) for v in x) for x in data):
            return [data]
        out = []
        for item in data:
            out.extend(_to_arrays(item) if hasattr(item, "per_walker") else [item])
        return out
    return [data]


def is_single_table(data):
    """True if ``data`` is one (frames x features) table rather than several trajectories."""
    parts = _to_arrays(data)
    return len(parts) == 1 and parts[0] is data


def as_trajectory_list(data, *, name="X", min_frames=1, n_features=None, dtype=np.float64, owner="the estimator"):
    """Return ``data`` as a list of 2-D, finite float arrays (frames x features), never a view.

    Parameters
    ----------
    data : array_like, list of array_like, or cvlearn.Trajectory
        One trajectory (frames x features), a list of arrays (one per independent run), or an engine
        trajectory whose walkers are taken as independent runs (positions flattened per frame).
        Nested Python lists of numbers are read as one table, as scikit-learn does.
    name : str
        Name of the argument, used in error messages.
    min_frames : int
        Every trajectory must have at least this many frames.
    n_features : int, optional
        Required number of features (e.g. the number seen at ``fit`` when calling ``transform``).
    owner : str
        Name of the estimator, used in error messages.

    Raises
    ------
    ValueError
        On wrong dimensionality, non-finite values, mismatched feature counts or too few frames.
    TypeError
        When the values are not numeric.
    """
    if is_stream(data):
        raise TypeError(f"{owner} needs its {name} in memory here and does not take a {type(data).__name__}; pass "
                        "arrays (one per trajectory, or one chunk), or pass the source to fit.")
    raws = _to_arrays(data)
    label = lambda i: name if len(raws) == 1 else f"{name}[{i}]"  # noqa: E731
    arrays = []
    for i, raw in enumerate(raws):
        where = label(i)
        if hasattr(raw, "toarray") or hasattr(raw, "todense"):
            raise TypeError(f"{where} is a sparse matrix; sparse input is not supported. Convert it with "
                            f"{name}.toarray() (features of molecular frames are dense anyway).")
        if np.asarray(raw).dtype.kind == "c":
            raise ValueError(f"{where} holds complex numbers: Complex data not supported.")
        try:
            x = np.array(raw, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where} must be a numeric array (frames x features); could not convert it: {exc}"
            ) from None
        if x.ndim == 1:
            raise ValueError(
                f"{where} is 1-D (shape {x.shape}) but must be 2-D (frames x features). Reshape your data: "
                f"{name}.reshape(-1, 1) for a single feature."
            )
        if x.ndim != 2:
            raise ValueError(
                f"{where} must be 2-D (frames x features); got shape {x.shape}. "
                "Flatten per-frame data first, e.g. X.reshape(len(X), -1), or featurize it."
            )
        if x.shape[1] == 0:
            raise ValueError(f"{where} has 0 feature(s) (shape={x.shape}) while a minimum of 1 is required.")
        bad = ~np.isfinite(x)
        if bad.any():
            frames = np.unique(np.nonzero(bad)[0])
            raise ValueError(
                f"{where} contains NaN or infinite values in {len(frames)} frame(s), first at frame "
                f"{frames[0]} (features {np.nonzero(bad[frames[0]])[0].tolist()}). Remove or repair "
                "those frames (e.g. X[np.isfinite(X).all(axis=1)]) before fitting."
            )
        if x.shape[0] < min_frames:
            raise ValueError(f"{where} has {x.shape[0]} frame(s) (n_samples={x.shape[0]}); at least "
                             f"{min_frames} are needed.")
        arrays.append(x)
    for i, x in enumerate(arrays):
        if n_features is not None and x.shape[1] != n_features:
            raise ValueError(f"{label(i)} has {x.shape[1]} features, but {owner} is expecting {n_features} "
                             "features as input (the number it was fitted with).")
        if x.shape[1] != arrays[0].shape[1]:
            raise ValueError(f"{name}[{i}] has {x.shape[1]} features but {name}[0] has {arrays[0].shape[1]}. "
                             "All trajectories must be featurized the same way.")
    return arrays


def check_lagtime(lagtime, arrays, owner):
    """Check that ``lagtime`` is an int >= 1 and that at least one trajectory is longer than it.

    ``arrays`` are the trajectories or their frame counts; None checks the type only (a stream's
    lengths are known once it has been read).
    """
    if isinstance(lagtime, bool) or not isinstance(lagtime, numbers.Integral) or lagtime < 1:
        raise ValueError(
            f"The 'lagtime' parameter of {owner} must be an int >= 1 (in frames); got {lagtime!r}."
        )
    if arrays is None:
        return int(lagtime)
    longest = max(_n_frames(x) for x in arrays)
    if lagtime >= longest:
        raise ValueError(
            f"The 'lagtime' parameter of {owner} must be an int in [1, n_frames). Got {lagtime} for "
            f"trajectories of at most {longest} frames. Use a shorter lag or longer trajectories."
        )
    return int(lagtime)


def check_weights(weights, arrays, name="weights", logweights=None, _signed=False):
    """Return per-trajectory float64 weight arrays matching ``arrays`` (or frame counts; None -> uniform).

    ``logweights`` (e.g. bias / kT of biased frames) are turned into weights exp(logw - max), the
    maximum taken over all trajectories so their relative weights are kept.
    """
    if logweights is not None:
        if weights is not None:
            raise ValueError("Give either weights or logweights, not both.")
        logw = check_weights(logweights, arrays, name="logweights", _signed=True)
        top = max(float(w.max()) for w in logw)
        weights = [np.exp(w - top) for w in logw]
    if weights is None:
        return [np.ones(_n_frames(x)) for x in arrays]
    if len(arrays) == 1 and not isinstance(weights, (list, tuple)):
        weights = [weights]
    if len(weights) != len(arrays):
        raise ValueError(f"Got {len(weights)} weight arrays for {len(arrays)} trajectories; give one per trajectory.")
    out = []
    for i, (w, x) in enumerate(zip(weights, arrays)):
        w = np.array(w, dtype=np.float64, copy=True).reshape(-1)
        if w.shape[0] != _n_frames(x):
            raise ValueError(f"{name}[{i}] has {w.shape[0]} entries for a trajectory of {_n_frames(x)} frames.")
        if not np.isfinite(w).all() or (not _signed and (w < 0).any()):
            raise ValueError(
                f"{name}[{i}] must be finite and non-negative. For log-weights (e.g. bias/kT) pass "
                "np.exp(logw - logw.max())."
            )
        out.append(w)
    if not _signed and sum(w.sum() for w in out) <= 0:
        raise ValueError(f"All {name} are zero; at least one frame needs a positive weight.")
    return out


def check_positive(value, name, owner, *, integer=False, allow_zero=False):
    """Validate a positive (or non-negative) scalar parameter and return it as float or int."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        req = "a non-negative" if allow_zero else "a positive"
        kind_name = "int" if integer else "number"
        raise ValueError(f"The '{name}' parameter of {owner} must be {req} {kind_name}; got {value!r}.")
    return int(value) if integer else float(value)
