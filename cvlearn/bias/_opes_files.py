"""PLUMED's OPES_METAD files: KERNELS (every deposited kernel) and STATE (everything needed to restart).

Both are PLUMED tables (``#! FIELDS`` / ``#! SET``). KERNELS: ``time <cvs> sigma_<cvs> height
logweight``, one row per deposited kernel before compression. STATE: ``time <cvs> sigma_<cvs>
height``, one row per compressed kernel, and the accumulators as SET lines: ``zed``,
``sum_weights``, ``sum_weights2``, ``counter`` and, with adaptive sigma, ``adaptive_counter`` and
``av_cv_<cv>`` / ``av_M2_<cv>`` (``av_cv_<cv>_<walker>`` with several walkers). Both files carry
``action``, ``biasfactor``, ``epsilon``, ``kernel_cutoff``, ``compression_threshold`` and
``min_<cv>`` / ``max_<cv>`` of periodic CVs. Floats are written as their shortest exact decimal,
so a state read back gives bit-identical numbers.
"""

import math

import numpy as np

from ..io import read_plumed_table, write_text_atomic
from ..io._plumed import plumed_table_text
from ._static import _parse_number

__all__ = ["KERNELS_ACTION", "STATE_ACTION", "header", "kernel_fields", "read_state", "write_state"]

KERNELS_ACTION, STATE_ACTION = "OPES_METAD_kernels", "OPES_METAD_state"
SETTINGS = ("biasfactor", "epsilon", "kernel_cutoff", "compression_threshold")


def _text(x):
    """A float as PLUMED (and Python) reads it back exactly: shortest round-trip decimal, or inf."""
    return repr(float(x))


def kernel_fields(names):
    return ["time", *names, *[f"sigma_{n}" for n in names], "height", "logweight"]


def header(action, settings, names, bounds):
    """``#! SET`` constants: action, the four settings (dict by PLUMED name), periods of periodic CVs."""
    out = {"action": action} | {k: _text(settings[k]) for k in SETTINGS}
    for name, b in zip(names, bounds):
        if b is not None:
            angle = b == (-math.pi, math.pi)
            out[f"min_{name}"] = "-pi" if angle else _text(b[0])
            out[f"max_{name}"] = "pi" if angle else _text(b[1])
    return out


def write_state(path, time, settings, names, bounds, acc, centers, sigmas, heights):
    """Write a STATE file atomically. ``acc``: zed, sum_weights, sum_weights2, counter and, for adaptive
    sigma, adaptive_counter, av_cv and av_M2 ((walkers, d) arrays, or None before the first sample)."""
    consts = header(STATE_ACTION, settings, names, bounds)
    periods = {k: consts.pop(k) for k in list(consts) if k.startswith(("min_", "max_"))}  # PLUMED puts them last
    consts |= {k: _text(acc[k]) for k in ("zed", "sum_weights", "sum_weights2")} | {"counter": str(acc["counter"])}
    if "adaptive_counter" in acc:
        consts["adaptive_counter"] = str(acc["adaptive_counter"])
        if acc["av_cv"] is not None:
            many = len(acc["av_cv"]) > 1
            for w in range(len(acc["av_cv"])):
                for i, name in enumerate(names):
                    tag = f"{name}_{w}" if many else name
                    consts[f"av_cv_{tag}"] = _text(acc["av_cv"][w, i])
                    consts[f"av_M2_{tag}"] = _text(acc["av_M2"][w, i])
    rows = np.column_stack([np.full(len(heights), time), centers, sigmas, heights])
    fields = ["time", *names, *[f"sigma_{n}" for n in names], "height"]
    write_text_atomic(path, plumed_table_text(fields, consts | periods, rows))


def read_state(path):
    """The last state in a STATE file (PLUMED's STORE_STATES appends one block per state), as a dict:
    names, bounds (per CV, (lo, hi) or None), settings, acc (as :func:`write_state` takes it, with
    adaptive_counter only for adaptive sigma), centers, sigmas, heights."""
    with open(path, "rb") as fh:
        start = fh.read().rfind(b"\n#! FIELDS") + 1
    fields, consts, rows, _ = read_plumed_table(path, offset=start)
    if consts.get("action") != STATE_ACTION:
        raise ValueError(f"{path} is not an OPES_METAD state file (its action is {consts.get('action')!r}); "
                         "a KERNELS file restarts through kernels= (or OPES.load_kernels).")
    d = (len(fields) - 2) // 2
    names = fields[1:1 + d]
    if fields[1 + d:1 + 2 * d] != [f"sigma_{n}" for n in names] or fields[-1] != "height":
        raise ValueError(f"{path}: unexpected columns {fields} for an OPES state (time, CVs, sigma_<CV>, height).")
    missing = [k for k in (*SETTINGS, "zed", "sum_weights", "sum_weights2", "counter") if k not in consts]
    if missing:
        raise ValueError(f"{path} lacks the state entries {missing}.")
    data = np.array(rows, dtype=np.float64).reshape(-1, len(fields))
    acc = {"zed": float(consts["zed"]), "sum_weights": float(consts["sum_weights"]),
           "sum_weights2": float(consts["sum_weights2"]), "counter": int(float(consts["counter"]))}
    if "adaptive_counter" in consts:
        acc["adaptive_counter"] = int(float(consts["adaptive_counter"]))
        walkers = sorted({int(k.rsplit("_", 1)[1]) for k in consts if k.startswith(f"av_cv_{names[0]}_")})
        tags = [[f"{n}_{w}" for n in names] for w in walkers] or [names]
        have = f"av_cv_{tags[0][0]}" in consts
        for key in ("av_cv", "av_M2"):
            acc[key] = np.array([[float(consts[f"{key}_{t}"]) for t in ts] for ts in tags]) if have else None
    bounds = [(_parse_number(consts[f"min_{n}"]), _parse_number(consts[f"max_{n}"])) if f"min_{n}" in consts
              else None for n in names]
    return {"names": names, "bounds": bounds, "settings": {k: float(consts[k]) for k in SETTINGS}, "acc": acc,
            "centers": data[:, 1:1 + d], "sigmas": data[:, 1 + d:1 + 2 * d], "heights": data[:, -1]}
