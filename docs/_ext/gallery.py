"""sphinx-gallery hooks for cvlearn's tutorials: their sources, fast-mode arguments, and their PNG files.

- :func:`prepare_sources` copies ``tutorials/*.py`` into ``docs/_build/gallery_src`` with the module
  docstring made a gallery header: its first line as the title, the rest shown verbatim (the
  tutorials' docstrings are plain text, not reStructuredText). The code is unchanged.
- :func:`reset_argv` gives each executed tutorial its fast-mode arguments and an output directory.
- The tutorials save their figures with ``fig.savefig`` into ``--out`` and close them, so the usual
  matplotlib scraper finds nothing: :func:`png_scraper` puts the PNGs a tutorial wrote into its
  output directory (``docs/_build/gallery_runs/<tutorial>``) into the gallery page.
"""

import ast
import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

BUILD = Path(__file__).resolve().parents[1] / "_build"
RUNS = BUILD / "gallery_runs"
SOURCES = BUILD / "gallery_src"

# The arguments of each executed tutorial: its fast mode (what tests/test_tutorial_scripts.py runs);
# iterate_muller_brown has no --fast: two short rounds.
FAST_ARGS = {"iterate_muller_brown": ["--rounds", "2", "--steps", "4000", "--walkers", "4"]}

HEADER = """Tutorials
=========

The tutorials are plain scripts in ``tutorials/`` of the source tree; run one with
``python tutorials/<name>.py`` (most take ``--fast`` for a run of seconds). These pages ran them in
their fast mode while the documentation was built (as the test suite does), so their figures and
printed numbers are rough: the numbers of the full runs are quoted in each page's text, under
"Results". Two are shown without being run, to keep the build a few minutes: the alanine dipeptide
tutorial (``04_alanine_dipeptide_from_files.py``, ~1.5 min, no fast mode) and the alanine dipeptide
loop (``iterate_alanine_dipeptide.py``, ~1 min even with ``--fast``).
"""

NOTE = """
.. note::

   These figures come from the tutorial's fast mode (seconds, as the tests run it), so their numbers
   are rough. The full-mode results are quoted in the text at the top of this page, under "Results".
"""


def _header(name, docstring):
    title, _, rest = docstring.strip().partition("\n")
    title = title.strip().rstrip(".")
    body = "\n".join("    " + line if line.strip() else "" for line in rest.strip("\n").splitlines())
    text = [title, "=" * len(title), "", f"``tutorials/{name}``, as distributed; its text:", ""]
    if body.strip():
        text += ["::", "", body, ""]
    return "\n".join(text)


def prepare_sources(tutorials):
    """Gallery copies of the tutorials in SOURCES (rewritten each build); returns SOURCES."""
    shutil.rmtree(SOURCES, ignore_errors=True)
    SOURCES.mkdir(parents=True)
    (SOURCES / "GALLERY_HEADER.rst").write_text(HEADER)
    for path in sorted(Path(tutorials).glob("*.py")):
        source = path.read_text()
        module = ast.parse(source)
        doc = ast.get_docstring(module, clean=True)
        if not doc:
            raise ValueError(f"{path} has no module docstring: the gallery needs its title")
        code = "\n".join(source.splitlines()[module.body[0].end_lineno:])
        header = _header(path.name, doc).replace("\\", "\\\\").replace('"' * 3, "'" * 3)
        (SOURCES / path.name).write_text('"' * 3 + header + "\n" + '"' * 3 + "\n" + code + "\n")
    return SOURCES


def out_dir(script):
    return RUNS / Path(script).stem


def reset_argv(gallery_conf, script_vars):
    """sys.argv[1:] of a tutorial run by the gallery: fast mode, output into its own run directory."""
    script = script_vars["src_file"]
    out = out_dir(script)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return FAST_ARGS.get(Path(script).stem, ["--fast"]) + ["--out", str(out)]


def png_scraper(block, block_vars, gallery_conf):
    """The PNG files the tutorial has written into its run directory (each once), as gallery images."""
    out = out_dir(block_vars["src_file"])
    if not out.is_dir():
        return ""
    shown = block_vars.setdefault("cvlearn_shown_pngs", set())
    images = []
    for png in sorted(p for p in out.rglob("*.png") if p not in shown):
        shown.add(png)
        target = block_vars["image_path_iterator"].next()
        shutil.copyfile(png, target)
        images.append(target)
    return figure_rst(images, gallery_conf["src_dir"]) + NOTE if images else ""
