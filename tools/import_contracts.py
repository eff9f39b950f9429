"""import-linter contract types for what its built-in types cannot see (configured in pyproject.toml).

``eager_imports``
    ``import <package>`` loads none of the listed packages. Only the imports Python runs while importing
    (module level, class bodies, ``try`` blocks) count; an import inside a function runs on first use and
    is how cvlearn keeps matplotlib, OpenMM and Dask out of ``import cvlearn``. The built-in ``forbidden``
    type cannot tell the two apart: it would forbid the lazy imports too.
``private_names``
    No module imports a private name (``_x``, not dunders) from a module of another package. A package
    here is a first-level subpackage (``cvlearn.bias``); a module directly under the root
    (``cvlearn.loop``) is a package of its own. Private *modules* are checked by the built-in
    ``private_modules`` type.

Both read the source with :mod:`ast`; the import graph comes from import-linter (grimp).
"""

import ast
import importlib.util
from pathlib import Path

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _source_path(module, root_dir):
    """File of ``module`` without importing it (importlib.util.find_spec would import its parents)."""
    parts = module.split(".")[1:]
    base = root_dir.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _root_dir(root):
    return Path(importlib.util.find_spec(root).origin).parent


def _tree(module, root_dir):
    path = _source_path(module, root_dir)
    return ast.parse(path.read_text(), filename=str(path))


def _eager_lines(tree):
    """Line numbers of the import statements Python runs when the module is imported."""
    lines = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # runs when called, not on import
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
            visit(child)

    visit(tree)
    return lines


class EagerImportsContract(Contract):
    """``import <source>`` must load none of ``forbidden`` (top-level package names).

    Configuration options:
        - source:    the package whose import is checked (e.g. cvlearn).
        - forbidden: top-level packages it must not load (e.g. matplotlib, openmm).
    """

    type_name = "eager_imports"
    source = fields.StringField()
    forbidden = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose):
        root = str(self.source)
        root_dir = _root_dir(root)
        forbidden = {str(f) for f in self.forbidden}
        parent = {root: None}
        queue, broken = [root], []
        while queue:
            module = queue.pop(0)
            eager = _eager_lines(_tree(module, root_dir))
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                details = graph.get_import_details(importer=module, imported=imported)
                if not any(d["line_number"] in eager for d in details):
                    continue
                top = imported.split(".")[0]
                if top in forbidden:
                    chain = [imported, module]
                    while parent[chain[-1]] is not None:
                        chain.append(parent[chain[-1]])
                    broken.append(" -> ".join(reversed(chain)))
                    continue
                if top != root:
                    continue
                # importing a.b.c runs a/__init__ and a/b/__init__ first
                names = imported.split(".")
                for k in range(2, len(names) + 1):
                    name = ".".join(names[:k])
                    if name not in parent and name in graph.modules:
                        parent[name] = module
                        queue.append(name)
        return ContractCheck(kept=not broken, metadata={"chains": broken})

    def render_broken_contract(self, check):
        for chain in check.metadata["chains"]:
            output.print_error(f"import {self.source} loads: {chain}", bold=False)
            output.new_line()


def _package(module):
    parts = module.split(".")
    return ".".join(parts[:2])


def _resolve(module, node, is_package):
    """Absolute name of the module an ``ImportFrom`` node reads from."""
    if node.level == 0:
        return node.module
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class PrivateNamesContract(Contract):
    """No ``from <module of another package> import _name``.

    Configuration options:
        - source: the root package checked (e.g. cvlearn).
    """

    type_name = "private_names"
    source = fields.StringField()

    def check(self, graph, verbose):
        root = str(self.source)
        root_dir = _root_dir(root)
        broken = []
        for module in sorted(m for m in graph.modules if m == root or m.startswith(root + ".")):
            path = _source_path(module, root_dir)
            for node in ast.walk(_tree(module, root_dir)):
                if not isinstance(node, ast.ImportFrom):
                    continue
                source = _resolve(module, node, path.name == "__init__.py")
                if not source.startswith(root) or _package(source) == _package(module):
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        broken.append(f"{module}:{node.lineno} imports {alias.name} from {source}")
        return ContractCheck(kept=not broken, metadata={"imports": broken})

    def render_broken_contract(self, check):
        for line in check.metadata["imports"]:
            output.print_error(line, bold=False)
        output.new_line()
