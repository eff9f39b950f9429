"""Inductor's CPU vector-instruction probe, remembered across processes.

Before its first C++ compilation in a process, inductor (torch 2.13) finds which vector instruction sets
(AVX2, AVX-512, ...) the C++ compiler can build and the CPU can run: for each set the CPU's flags claim, it
builds a test library (cached on disk) and loads it in a child Python (not cached). On the 2-core machine of
``benchmarks/RESULTS.md`` that is ~2.4 s of every process's first compiled call, even when every compiled
function comes from inductor's disk cache: a third of a warm quickstart's metadynamics stage.

This module keeps the probe's verdict in inductor's cache directory, keyed by what it depends on besides
the CPU (torch's version, the interpreter, the C++ compiler's path, size and time stamp). A process whose
CPU claims exactly the sets of the remembered verdict compiles with inductor's ``cpp.vec_isa_ok`` set,
which accepts the claimed sets without the probe; so does the process that probed and remembered (the
option is part of the key of inductor's disk cache, so every process must compile with it alike). Any
difference (another torch or compiler, another CPU, an unreadable file, a torch without these internals)
leaves inductor probing as before: the memo only skips a probe whose answer it already knows.
"""

import contextlib
import hashlib
import json
import os
import shutil
import sys

from ..io import write_text_atomic

__all__ = ["compile_context"]

MEMO = "cvlearn_vec_isa.json"
_skip_probe = None  # this process's decision, made at its first compiled call


def _probe_inputs():
    """(memo path, key, the sets the CPU claims), or None where this torch lacks the internals used here."""
    try:
        import torch
        from torch._inductor import config
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.cpu_vec_isa import valid_vec_isa_list
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        compiler = get_cpp_compiler()
        resolved = compiler if os.path.isabs(compiler) else shutil.which(compiler)
        if resolved is None:
            return None
        stat = os.stat(resolved)
        key = hashlib.sha256(repr((torch.__version__, sys.executable, compiler, stat.st_size, stat.st_mtime_ns))
                             .encode()).hexdigest()
        with config.patch({"cpp.vec_isa_ok": True}):  # the sets the CPU's flags claim, none built or loaded
            claimed = [str(isa) for isa in valid_vec_isa_list.__wrapped__()]
        return os.path.join(cache_dir(), MEMO), key, claimed
    except Exception:  # noqa: BLE001 - another torch, no compiler: inductor probes as it always did
        return None


def _read(path):
    try:
        with open(path) as fh:
            memo = json.load(fh)
        return memo if isinstance(memo, dict) else {}
    except (OSError, ValueError):
        return {}


def compile_context():
    """A context for every compiled call of the process: inductor's ``cpp.vec_isa_ok`` set when the CPU
    claims exactly the vector instruction sets that inductor's probe accepted (remembered, or probed now
    and remembered), else nothing.

    Every call, not only the first: the option is part of the key of inductor's on-disk cache, so a
    recompilation later in the process (a bias state that grows) must see the same options as an earlier
    process's compilation to find its code."""
    global _skip_probe
    if _skip_probe is None:
        _skip_probe = _decide()
    if not _skip_probe:
        return contextlib.nullcontext()
    from torch._inductor import config

    return config.patch({"cpp.vec_isa_ok": True})


def _decide():
    """True if this process may skip the probe: the remembered verdict matches what the CPU claims, or the
    probe, run now, accepted all of it (and is remembered for the next process)."""
    inputs = _probe_inputs()
    if inputs is None:
        return False
    path, key, claimed = inputs
    if _read(path).get(key) == claimed:
        return True
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list

    verdict = [str(isa) for isa in valid_vec_isa_list()]  # inductor's probe, once (it keeps the answer)
    if verdict != claimed:  # a set the CPU claims failed to build or load: inductor's verdict stands
        return False
    memo = _read(path)
    memo[key] = verdict
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text_atomic(path, json.dumps(memo, indent=1))
    except OSError:  # a read-only cache directory: the next process probes again
        pass
    return True
