"""Autodoc hooks: skip scikit-learn's metadata-routing methods; read terminal-style docstrings as text.

cvlearn's docstrings are read in the terminal first (``help(cl.TICA)``) and in Sphinx second. Two
plain-text habits are reStructuredText markup: ``|r|`` (an absolute value) is a substitution
reference, and ``components_`` (a fitted attribute) is a hyperlink reference. Both are escaped here,
outside literals, doctests and tables, rather than written with backslashes in the source.
"""

import re

_BARS = re.compile(r"(?<![\\|`])\|(?=[^|\s])([^|\n`]*?[^|\s\\])\|(?![|_])")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\\`*])\b([A-Za-z][A-Za-z0-9_]*[A-Za-z0-9])_(?=[\s,.;:)\]]|$)")


def skip_member(app, what, name, obj, skip, options):
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def _escape_outside_literals(line):
    parts = re.split(r"(``[^`]*``|`[^`]*`_?|:[a-z:]+:`[^`]*`)", line)
    for i in range(0, len(parts), 2):  # even parts are outside literals and roles
        parts[i] = _TRAILING_UNDERSCORE.sub(r"\1\\_", _BARS.sub(r"\\|\1\\|", parts[i]))
    return "".join(parts)


def escape_plain_text(app, what, name, obj, options, lines):
    in_doctest = in_literal = False
    literal_indent = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith(">>>"):
            in_doctest = True
        elif not stripped:
            in_doctest = False
        if in_literal and stripped and indent <= literal_indent:
            in_literal = False
        if in_doctest or in_literal or stripped.startswith(("|", "+", ".. ")) or stripped == "..":
            continue
        lines[i] = _escape_outside_literals(line)
        if stripped.endswith("::"):
            in_literal, literal_indent = True, indent
