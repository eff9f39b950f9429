"""Sphinx configuration of cvlearn's documentation site: `make docs` -> docs/_build/html."""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import apipages  # noqa: E402
import docstrings  # noqa: E402
import gallery  # noqa: E402

import cvlearn  # noqa: E402

project = "cvlearn"
author = "The cvlearn developers"
copyright = "2026, The cvlearn developers"
release = version = cvlearn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# API pages from __all__ (docs/api/), one page per name (docs/api/generated/).
apipages.write(DOCS)
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_validation_checks = set()

# The gallery: the tutorials in their fast mode. 04_alanine_dipeptide_from_files has no fast mode
# (its full run takes ~1.5 min on 2 cores) and iterate_alanine_dipeptide's fast mode takes ~1 min:
# shown with their code and full-mode numbers, not executed, to keep the build a few minutes.
sphinx_gallery_conf = {
    "examples_dirs": str(gallery.prepare_sources(DOCS.parent / "tutorials")),
    "gallery_dirs": str(DOCS / "gallery"),
    "filename_pattern": r"/(0[12356]_[^/]*|iterate_muller_brown)\.py$",
    "reset_argv": "gallery.reset_argv",
    "image_scrapers": ("gallery.png_scraper",),
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 5,
    "within_subsection_order": "FileNameSortKey",
}

html_theme = "pydata_sphinx_theme"
html_title = f"cvlearn {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []


def setup(app):
    # scikit-learn's generated set_*_request methods (metadata routing) are not cvlearn's API, and
    # their docstrings reference scikit-learn's own glossary.
    app.connect("autodoc-skip-member", docstrings.skip_member)
    # Docstrings are written for the terminal (``help()``) first: |x| and name_ are plain text there.
    app.connect("autodoc-process-docstring", docstrings.escape_plain_text, priority=100)
