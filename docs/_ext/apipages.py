"""Write the API reference pages (docs/api/*.rst) from ``__all__``, so every public name has a page.

Each page holds one ``autosummary`` table with ``:toctree:``: Sphinx then writes one page per name
from its docstring (docs/api/generated/). Run by conf.py at every build: a name added to a
subpackage's ``__all__`` appears without editing the docs.
"""

import importlib
import inspect
import types
from pathlib import Path

# The public subpackages, in the order a reader meets them.
SUBPACKAGES = ["systems", "engine", "features", "learners", "bias", "fes", "loop", "plot", "export", "io",
               "walkers", "generative", "physics", "data", "units", "hooks", "app"]


def _rst(title, module, names, intro, home):
    """A page: the names documented here (one autosummary with a toctree), then links to the names
    documented on another page (``home``: id of the object -> its documented full name)."""
    mod = importlib.import_module(module)
    own = [n for n in names if home.get(id(getattr(mod, n)), f"{module}.{n}") == f"{module}.{n}"]
    elsewhere = [home[id(getattr(mod, n))] for n in names if n not in own]
    lines = [title, "=" * len(title), "", f".. currentmodule:: {module}", "", intro, ""]
    if own:
        lines += [".. autosummary::", "   :toctree: generated", ""] + [f"   {n}" for n in own] + [""]
    if elsewhere:
        lines += ["Also here, documented with their subpackage:" if own else "", "", ".. autosummary::", ""]
        lines += [f"   ~{full.removeprefix(module + '.')}" for full in elsewhere] + [""]
    return "\n".join(lines) + "\n"


def _documentable(module, name):
    obj = getattr(module, name)
    return not isinstance(obj, types.ModuleType) and (callable(obj) or inspect.isclass(obj))


def write(docs):
    out = Path(docs) / "api"
    out.mkdir(exist_ok=True)
    import cvlearn

    # Each object gets one page, under the first subpackage that lists it; the top-level page and later
    # subpackages link to that page (an object documented twice is a Sphinx error).
    home, pages = {}, {}
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"cvlearn.{sub}")
        for name in getattr(module, "__all__", []):
            if _documentable(module, name):
                home.setdefault(id(getattr(module, name)), f"cvlearn.{sub}.{name}")
    top = [n for n in cvlearn.__all__ if n != "__version__" and _documentable(cvlearn, n)]
    index = ["API reference", "=============", "",
             "Every name a user imports, generated from the docstrings (whose Examples the test suite runs).",
             "Units everywhere: nm, ps, kJ/mol, K, amu, radians.", "",
             ".. toctree::", "   :maxdepth: 1", "", "   cvlearn"]
    index += [f"   {sub}" for sub in SUBPACKAGES]
    (out / "index.rst").write_text("\n".join(index) + "\n")
    intro = "The names ``import cvlearn as cl`` puts at hand (``cl.TICA``, ``cl.iterate``, ...)."
    (out / "cvlearn.rst").write_text(_rst("cvlearn (top level)", "cvlearn", top, intro, home))
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"cvlearn.{sub}")
        names = [n for n in getattr(module, "__all__", []) if _documentable(module, n)]
        others = [n for n in getattr(module, "__all__", []) if n not in names]
        summary = (module.__doc__ or "").strip().split("\n")[0]
        intro = summary + (f"\n\nConstants: {', '.join(f'``{n}``' for n in others)}." if others else "")
        (out / f"{sub}.rst").write_text(_rst(f"cvlearn.{sub}", f"cvlearn.{sub}", names, intro, home))
