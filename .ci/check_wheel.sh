#!/usr/bin/env bash
# Install a built cvlearn wheel into a fresh virtual environment, outside the source tree, and run it:
#   bash .ci/check_wheel.sh dist/cvlearn-X.Y.Z-py3-none-any.whl
# Fails when the wheel lacks a file of cvlearn/ that git tracks (package data included), when its
# version differs from `cvlearn --version` or `cvlearn.__version__`, or when `cvlearn quickstart` fails.
set -euo pipefail
wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

# 1. Every file of the package that git tracks is in the wheel; nothing of tests/ or benchmarks/ is.
"$python" - "$wheel" "$repo" <<'PY'
import subprocess, sys, zipfile
wheel, repo = sys.argv[1:]
names = set(zipfile.ZipFile(wheel).namelist())
tracked = subprocess.run(["git", "-C", repo, "ls-files", "cvlearn"], capture_output=True, text=True,
                         check=True).stdout.split()
missing = [f for f in tracked if f not in names]
stray = sorted(n for n in names if n.split("/")[0] in ("tests", "benchmarks", "tutorials", "docs"))
if missing or stray:
    sys.exit(f"wheel {wheel}: missing {missing}; should not carry {stray}")
print(f"wheel carries all {len(tracked)} tracked files of cvlearn/ and nothing of tests/ or benchmarks/")
PY

# 2. A fresh venv, away from the source tree (so `import cvlearn` can only find the installed wheel).
work=$(mktemp -d /tmp/cvlearn-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip --quiet"
$pip install torch==2.13.0  # first: the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build
$pip install "$wheel"
cd "$work"

# 3. One version: the wheel's file name, the installed metadata, cvlearn.__version__ and `cvlearn --version`.
wheel_version=$(basename "$wheel" | cut -d- -f2)
"$work/venv/bin/python" - "$wheel_version" "$work" <<'PY'
import importlib.metadata, subprocess, sys
import cvlearn as cl
wheel_version, work = sys.argv[1:]
assert cl.__file__.startswith(work), f"cvlearn imported from {cl.__file__}, not the fresh venv in {work}"
cli = subprocess.run([f"{work}/venv/bin/cvlearn", "--version"], capture_output=True, text=True, check=True).stdout
versions = {wheel_version, importlib.metadata.version("cvlearn"), cl.__version__, cli.split()[-1]}
assert len(versions) == 1, f"versions disagree: wheel {wheel_version}, metadata, __version__, CLI: {versions}"
import mdtraj as md
top = md.load_topology(cl.data.alanine_dipeptide_pdb())  # package data, read from the installed wheel
assert top.n_atoms == 22, top
print(f"cvlearn {cl.__version__} from {cl.__file__}: versions agree; package data readable")
PY

# 4. The whole loop at a tiny size (4 walkers x 2500 steps, ~10 s) from the installed command.
"$work/venv/bin/cvlearn" quickstart --steps 2500 --walkers 4 --out "$work/quickstart" --no-progress
test -s "$work/quickstart/report.json" && test -s "$work/quickstart/quickstart.png"
echo "wheel check passed: $(basename "$wheel")"
