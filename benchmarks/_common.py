"""Helpers shared by the benchmark scripts: describe the machine, append a section to RESULTS.md."""

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
LOAD_AT_START = os.getloadavg() if hasattr(os, "getloadavg") else None  # other work skews timings

_HEADER = """# Benchmark results

Each section below was appended by one run of a script in `benchmarks/`. It records the exact
command (run from the repository root), the date, and the machine (CPU model, cores, library
versions, GPU if any, load average), followed by the measured table. Numbers from different
machines, or from a busy machine (high load average), are not comparable; rerun the baseline on
the same machine before comparing.
"""


def cpu_model():
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def blas_name():
    """numpy's BLAS, e.g. 'scipy-openblas 0.3.31' (empty if numpy cannot say)."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy or a custom build
        return ""


def machine_lines(gpu=True):
    """Markdown bullet lines describing this machine and the library versions."""
    import numpy as np
    import torch

    lines = [
        f"- CPU: {cpu_model()}, {usable_cores()} usable cores (os.cpu_count() = {os.cpu_count()})",
        f"- Python {platform.python_version()}, torch {torch.__version__} "
        f"(intra-op threads: {torch.get_num_threads()}), numpy {np.__version__}"
        + (f" with {blas_name()}" if blas_name() else ""),
        f"- OS: {platform.platform()}",
    ]
    if LOAD_AT_START is not None:
        lines.append(f"- Load average (1 min) at start / end: {LOAD_AT_START[0]:.2f} / {os.getloadavg()[0]:.2f}")
    if gpu:
        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            lines.append(f"- GPU: {names} (CUDA {torch.version.cuda})")
        else:
            lines.append("- GPU: none (torch.cuda.is_available() is False)")
    return lines


def command_line():
    """The command that started this process, as it would be typed from the repository root."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def append_section(title, body, extra_lines=()):
    """Append '## title' with date, command, machine and ``body`` (markdown) to RESULTS.md."""
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [f"## {title}", "", f"- Date: {now}", f"- Command: `{command_line()}`",
             *machine_lines(), *extra_lines, "", body.rstrip(), ""]
    new = not RESULTS.exists()
    with open(RESULTS, "a") as fh:
        if new:
            fh.write(_HEADER)
        fh.write("\n" + "\n".join(parts))
    print(f"Appended to {RESULTS}")


def markdown_table(header, rows):
    """A markdown table from a header (list of str) and rows (lists of str)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
