"""Packaging: one version everywhere, every data file of cvlearn/ declared package data, no link outside.

The built wheel itself is checked in CI (`make wheel-check`: installed into a fresh venv and run).
"""

import fnmatch
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cvlearn

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_written_once_and_agrees():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cvlearn._version.__version__"}
    assert importlib.metadata.version("cvlearn") == cvlearn.__version__
    out = subprocess.run([sys.executable, "-m", "cvlearn.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cvlearn", cvlearn.__version__]


def test_every_data_file_in_the_package_is_declared_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    undeclared = []
    for path in (ROOT / "cvlearn").rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        package = ".".join(path.parent.relative_to(ROOT).parts)
        if not any(fnmatch.fnmatch(path.name, g) for g in package_data.get(package, [])):
            undeclared.append(str(path.relative_to(ROOT)))
    assert not undeclared, f"not in [tool.setuptools.package-data], so missing from the wheel: {undeclared}"
    # The reference numbers another module will read at run time are JSON files in cvlearn/data.
    assert "*.json" in package_data["cvlearn.data"]


def test_readme_and_docs_link_only_inside_the_repository():
    # Relative links and the docs' include/figure paths must resolve to files of this repository:
    # a wheel, an sdist or a docs build has nothing beside the repository (no ../shared).
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    pages = [p for p in pages if "_build" not in p.parts]
    bad = []
    for page in pages:
        text = page.read_text()
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        targets += re.findall(r"^```\{(?:include|figure|image)\} (\S+)", text, flags=re.M)
        for target in targets:
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            path = (page.parent / target).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                bad.append(f"{page.relative_to(ROOT)} -> {target}")
    assert pages and not bad, bad
