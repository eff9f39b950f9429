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
import os

import numpy as np

from ..io import PlumedFileError, parse_number, plumed_table_text, read_plumed, write_text_atomic

__all__ = ["KERNELS_ACTION", "STATE_ACTION", "EXPLORE_KERNELS_ACTION", "EXPLORE_STATE_ACTION", "header",
           "kernel_fields", "kernels_header", "read_state", "write_state"]

KERNELS_ACTION, STATE_ACTION = "OPES_METAD_kernels", "OPES_METAD_state"
EXPLORE_KERNELS_ACTION, EXPLORE_STATE_ACTION = "OPES_METAD_EXPLORE_kernels", "OPES_METAD_EXPLORE_state"
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


def kernels_header(path):
    """(names, bounds, settings, explore) of a KERNELS file (PLUMED's OPES_METAD or OPES_METAD_EXPLORE, or
    cvlearn's), from its first block: CV names in the file's order, periods, the four settings."""
    table = read_plumed(path)
    if not table.blocks:
        raise PlumedFileError(f"{path} has no '#! FIELDS' header: not an OPES KERNELS file.", path=os.fspath(path))
    block = table.blocks[0]
    consts = block.constants
    action = consts.get("action")
    if action not in (KERNELS_ACTION, EXPLORE_KERNELS_ACTION):
        raise PlumedFileError(f"{path} is not an OPES KERNELS file (its action is {action!r}); a STATE file is read "
                              "by OPES.from_plumed_state.", path=os.fspath(path))
    names = [f for f in block.fields if f not in ("time", "height", "logweight") and not f.startswith("sigma_")]
    missing = [k for k in SETTINGS if k not in consts]
    if missing:
        raise PlumedFileError(f"{path} lacks the header entries {missing} of an OPES KERNELS file.",
                              path=os.fspath(path))
    return names, _bounds(consts, names), _settings(consts), action == EXPLORE_KERNELS_ACTION


def _settings(consts):
    return {k: float(consts[k]) for k in SETTINGS}  # float() reads PLUMED's 'inf' too


def _bounds(consts, names):
    return [(parse_number(consts[f"min_{n}"]), parse_number(consts[f"max_{n}"])) if f"min_{n}" in consts
            else None for n in names]


def read_state(path):
    """The last state in a STATE file (PLUMED's STORE_STATES appends one block per state, CVs in any
    order), as a dict: names (in that block's order), bounds (per CV, (lo, hi) or None), settings,
    acc (as :func:`write_state` takes it, with adaptive_counter only for adaptive sigma), centers,
    sigmas, heights, and explore (an OPES_METAD_EXPLORE state)."""
    table = read_plumed(path)
    if not table.blocks:
        raise PlumedFileError(f"{path} has no '#! FIELDS' header: not an OPES STATE file.", path=os.fspath(path))
    block = table.blocks[-1]
    fields, consts = block.fields, block.constants
    if consts.get("action") not in (STATE_ACTION, EXPLORE_STATE_ACTION):
        raise PlumedFileError(f"{path} is not an OPES_METAD (or OPES_METAD_EXPLORE) state file (its action is "
                              f"{consts.get('action')!r}); a KERNELS file is read by OPES.from_plumed_kernels (or "
                              "kernels= with restart=True).", path=os.fspath(path))
    names = [f for f in fields if f not in ("time", "height") and not f.startswith("sigma_")]
    d = len(names)
    missing = [c for c in ("time", *[f"sigma_{n}" for n in names], "height") if c not in fields]
    missing += [k for k in (*SETTINGS, "zed", "sum_weights", "sum_weights2", "counter") if k not in consts]
    if missing or d == 0:
        raise PlumedFileError(f"{path}: {block.describe()} lacks the state entries {missing or ['a CV']} (an OPES "
                              "state has time, the CVs, sigma_<CV>, height and the accumulators).",
                              path=os.fspath(path), line=block.header_line)
    col = {f: i for i, f in enumerate(fields)}
    data = block.data[:, [col[c] for c in ("time", *names, *[f"sigma_{n}" for n in names], "height")]]
    acc = {"zed": float(consts["zed"]), "sum_weights": float(consts["sum_weights"]),
           "sum_weights2": float(consts["sum_weights2"]), "counter": int(float(consts["counter"]))}
    if "adaptive_counter" in consts:
        acc["adaptive_counter"] = int(float(consts["adaptive_counter"]))
        walkers = sorted({int(k.rsplit("_", 1)[1]) for k in consts if k.startswith(f"av_cv_{names[0]}_")})
        tags = [[f"{n}_{w}" for n in names] for w in walkers] or [names]
        have = f"av_cv_{tags[0][0]}" in consts
        for key in ("av_cv", "av_M2"):
            acc[key] = np.array([[float(consts[f"{key}_{t}"]) for t in ts] for ts in tags]) if have else None
    return {"names": names, "bounds": _bounds(consts, names), "settings": _settings(consts), "acc": acc,
            "centers": data[:, 1:1 + d], "sigmas": data[:, 1 + d:1 + 2 * d], "heights": data[:, -1],
            "explore": consts["action"] == EXPLORE_STATE_ACTION}
