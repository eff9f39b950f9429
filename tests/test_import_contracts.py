"""The two custom import-linter contract types can fail (`make test` runs ``lint-imports`` on cvlearn itself).

The custom types of tools/import_contracts.py run here on small packages written for the test, so a contract
that could never break would be caught.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("importlinter")


def _write_package(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / "pkgx" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def _lint(tmp_path, contracts):
    config = textwrap.dedent(f"""
        [importlinter]
        root_package = pkgx
        include_external_packages = True
        contract_types =
            eager_imports: import_contracts.EagerImportsContract
            private_names: import_contracts.PrivateNamesContract
        {contracts}
    """)
    (tmp_path / ".importlinter").write_text(config)
    env = {"PYTHONPATH": f"{tmp_path}{':'}{ROOT / 'tools'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--config", str(tmp_path / ".importlinter"), "--no-cache"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


EAGER = """
[importlinter:contract:light]
name = light
type = eager_imports
source = pkgx
forbidden = json
"""


def test_eager_imports_contract_sees_module_level_imports_through_a_chain(tmp_path):
    _write_package(tmp_path, {"__init__.py": "from . import a\n", "a/__init__.py": "from .b import f\n",
                              "a/b.py": "import json\n\ndef f():\n    return json\n"})
    rc, out = _lint(tmp_path, EAGER)
    assert rc == 1, out
    assert "pkgx -> pkgx.a -> pkgx.a.b -> json" in out


def test_eager_imports_contract_allows_imports_inside_functions(tmp_path):
    _write_package(tmp_path, {"__init__.py": "from . import a\n", "a/__init__.py": "from .b import f\n",
                              "a/b.py": "def f():\n    import json\n    return json\n"})
    rc, out = _lint(tmp_path, EAGER)
    assert rc == 0, out


PRIVATE = """
[importlinter:contract:names]
name = names
type = private_names
source = pkgx
"""


def test_private_names_contract_breaks_across_packages_only(tmp_path):
    _write_package(tmp_path, {"__init__.py": "", "a/__init__.py": "", "a/x.py": "_helper = 1\nshared = 2\n",
                              "a/y.py": "from .x import _helper\n",             # same package: allowed
                              "b/__init__.py": "", "b/z.py": "from ..a.x import shared, _helper\n"})
    rc, out = _lint(tmp_path, PRIVATE)
    assert rc == 1, out
    assert "pkgx.b.z:1 imports _helper from pkgx.a.x" in out
    assert "pkgx.a.y" not in out

