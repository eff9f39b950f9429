"""Every public class and function has a numpydoc docstring whose Examples run as doctests.

"Public" means everything listed in ``cvlearn.__all__`` and in the ``__all__`` of each subpackage that
``cvlearn.__all__`` names, plus the lazily imported ``cvlearn.plot`` and ``cvlearn.walkers`` and
``cvlearn.app`` (constants and submodules excepted). An object re-exported under several names is
checked once, under the first name in ``MODULES`` order. For a class, the class docstring must have the
Examples section; doctests in its methods' docstrings run too.

Objects living in files this test's owner does not edit, and still lacking Examples, are listed in
``PENDING``: skipped with the reason, and the test fails as soon as one of them gains an Examples
section, so that the list only shrinks. A new public object without Examples fails.

Each doctest runs, as under ``python -m doctest``, with a copy of its defining module's globals, in a
fresh temporary working directory (examples may write files by relative name), with
``ELLIPSIS | NORMALIZE_WHITESPACE``. New examples should still import what they use (``import cvlearn as
cl``), so that users can paste them.
"""

import doctest
import importlib
import inspect
import io
import os
import re
import time
import warnings

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # plot examples on machines without a display

def _modules():
    """cvlearn, every subpackage its ``__all__`` lists (so a new one is covered at once), and the extra ones."""
    import types

    import cvlearn

    subpackages = sorted(f"cvlearn.{n}" for n in cvlearn.__all__ if isinstance(getattr(cvlearn, n), types.ModuleType))
    extra = ["cvlearn.app", "cvlearn.plot", "cvlearn.walkers"]  # imported lazily, not in cvlearn.__all__
    return ["cvlearn", *sorted(set(subpackages) | set(extra))]


MODULES = _modules()

# Public objects without Examples whose source files belong to other engineers (issue 7). Each is skipped
# with this reason; remove a name here once its docstring gains an Examples section.
PENDING = set()

# Examples that exist but fail, in files this test's owner does not edit: xfail(strict), so a fix shows as
# XPASS and fails until the name is removed here. The proposed fix is in the reason.
BROKEN = {}

# Examples that need the openmm extra (skipped where it is not installed).
NEEDS_OPENMM = {"cvlearn.app.run_simulate", "cvlearn.app.run_learn", "cvlearn.app.run_bias",
                "cvlearn.units.as_float", "cvlearn.units.as_array", "cvlearn.seed_walkers", "cvlearn.engine.OpenMM",
                "cvlearn.engine.default_platform",
                "cvlearn.generative.openmm_energies",
                "cvlearn.generative.structure_quality"}

# Time budget of one object's examples (s): most take well under 1 s, small simulations (walkers, quickstart)
# a few seconds. Over SLOW_WARNING: a warning (timings on shared CI machines are noisy); over TIME_LIMIT: a failure.
SLOW_WARNING = 5.0
TIME_LIMIT = 60.0

_EXAMPLES = re.compile(r"^\s*Examples\n\s*-{8,}\s*$", re.MULTILINE)


def _public_objects():
    seen, out = set(), []
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # submodules, __version__, BOLTZMANN
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((f"{modname}.{name}", obj))
    return out


OBJECTS = _public_objects()
NAMES = [name for name, _ in OBJECTS]


def _has_examples(obj):
    doc = obj.__doc__ or ""
    m = _EXAMPLES.search(doc)
    return m is not None and ">>>" in doc[m.end():]


def test_collection_is_sane():
    assert len(OBJECTS) > 60
    stale = sorted(PENDING - set(NAMES))
    stale += sorted((set(BROKEN) | NEEDS_OPENMM) - set(NAMES))
    assert not stale, f"Names in PENDING, BROKEN or NEEDS_OPENMM that are no longer public objects: {stale}."


@pytest.mark.parametrize("name,obj", OBJECTS, ids=NAMES)
def test_has_numpydoc_examples(name, obj):
    if name in PENDING:
        if _has_examples(obj):
            pytest.fail(f"{name} now has an Examples section: remove it from PENDING in {__file__}.")
        pytest.skip(f"{name}: Examples pending (its file belongs to another engineer, issue 7)")
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring."
    assert _has_examples(obj), f"{name}'s docstring has no numpydoc 'Examples' section with a '>>>' example."


@pytest.mark.parametrize("name,obj", OBJECTS, ids=NAMES)
def test_examples_run(name, obj, tmp_path, monkeypatch, request):
    if not _has_examples(obj):
        pytest.skip(f"{name}: no Examples section (test_has_numpydoc_examples reports it)")
    if name in NEEDS_OPENMM:
        pytest.importorskip("openmm", reason="these examples use openmm.unit")
    if name in BROKEN:
        request.applymarker(pytest.mark.xfail(reason=BROKEN[name], strict=True))
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(exclude_empty=True)
    # As `python -m doctest` and pytest's --doctest-modules: the defining module's globals (a copy).
    globs = dict(vars(inspect.getmodule(obj)))
    tests = [t for t in finder.find(obj, name, globs=globs) if t.examples]
    assert tests, f"{name}: no doctest found."
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    t0 = time.perf_counter()
    for test in tests:
        runner.run(test, out=out.write, clear_globs=True)
    elapsed = time.perf_counter() - t0
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed:\n{out.getvalue()}"
    assert elapsed < TIME_LIMIT, f"{name}: examples took {elapsed:.1f} s (limit {TIME_LIMIT} s); make them smaller."
    if elapsed > SLOW_WARNING:
        warnings.warn(f"{name}: examples took {elapsed:.1f} s; keep doctests small.", stacklevel=1)
