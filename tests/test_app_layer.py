"""The application layer's contracts: the command line only parses (each command's work is in cvlearn.app),
one method list, ``import cvlearn`` stays light, and one truncation of PLUMED files on resume."""

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import cvlearn
from cvlearn.app import METHODS, commands
from cvlearn.cli import build_parser
from cvlearn.io import read_colvar, truncate_after


def test_cli_only_parses_and_calls_the_app_layer():
    """cli.py imports nothing of cvlearn that could run a workflow (engines, biases, learners...), and the
    function each command calls is the app layer's."""
    tree = ast.parse(Path(cvlearn.__file__).with_name("cli.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported <= {"app", "exceptions", "_version"}, imported
    absolute = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert absolute <= {"argparse", "logging", "math", "os", "sys"}, absolute
    parser = build_parser()
    for name, sub in parser.commands.items():
        func = sub.get_default("func")
        assert func.__module__ == "cvlearn.app.commands" and func is getattr(commands, func.__name__), name
        assert sub.description == func.__doc__, name  # the command's help is its workflow's description


def test_every_command_offers_the_one_method_list():
    parser = build_parser()
    for name in ("quickstart", "learn", "iterate"):
        [method] = [a for a in parser.commands[name]._actions if "--method" in a.option_strings]
        assert tuple(method.choices) == METHODS, name


def test_import_cvlearn_does_not_import_the_app_layer():
    code = "import sys, cvlearn; print(sorted(m for m in sys.modules if m.startswith(('cvlearn.app', 'matplotlib'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_truncate_after_keeps_coarse_times_of_the_checkpoint(tmp_path):
    """PLUMED writes the time column with few digits (here 0.001 ps, timestep 1.5 fs): the checkpoint's row
    at 0.0015 ps reads 0.002 and is kept, the next one (0.003) dropped; an absolute tolerance of 1e-9 ps
    would have dropped the checkpoint's row too."""
    path = tmp_path / "HILLS"
    path.write_text("#! FIELDS time s sigma_s height biasf\n0.000 0.1 0.2 1.0 10\n0.002 0.3 0.2 1.0 10\n"
                    "0.003 0.5 0.2 1.0 10\n")
    assert truncate_after(path, 1 * 0.0015, 0.0015) == 1
    assert read_colvar(path)["time"].tolist() == [0.0, 0.002]
    assert truncate_after(path, 1 * 0.0015, 0.0015) == 0  # nothing more to drop: the file is left alone


def test_truncate_after_at_full_precision_and_a_half_written_line(tmp_path):
    """cvlearn's own COLVAR (full precision; a walker killed mid-line): rows after the checkpoint and the
    half-written last line go, the checkpoint's row stays even when its time differs in the last bits."""
    path = tmp_path / "COLVAR.0"
    times = [k * 0.1 for k in range(5)]  # 0.30000000000000004 at k = 3
    path.write_text("#! FIELDS time s\n" + "".join(f"{t:.17g} {k}\n" for k, t in enumerate(times)) + "0.5 1")
    assert truncate_after(path, 0.3, 0.1) == 2  # the row at 0.4 and the half-written one
    assert read_colvar(path)["time"].tolist() == times[:4]
    assert path.read_text().endswith("\n")
    assert truncate_after(tmp_path / "missing", 1.0, 0.1) == 0


@pytest.mark.parametrize("time", [0.0, 0.3])
def test_truncate_after_keeps_headers_and_restarts(tmp_path, time):
    path = tmp_path / "COLVAR"
    path.write_text("#! FIELDS time s\n#! SET min_s -pi\n0 1\n\n#! FIELDS time s\n0.5 2\n")
    truncate_after(path, time, 0.1)
    assert path.read_text() == "#! FIELDS time s\n#! SET min_s -pi\n0 1\n\n#! FIELDS time s\n"


def test_the_command_line_shows_workflow_and_compilation_notices(capsys):
    from cvlearn.cli import _Notices

    with _Notices("quickstart"):
        logging.getLogger("cvlearn.app").info("resumed at step 500")
        logging.getLogger("cvlearn.engine").info("compiling the fused steps")
        logging.getLogger("cvlearn").info("a library detail")
    err = capsys.readouterr().err
    assert "cvlearn quickstart: resumed at step 500" in err and "cvlearn quickstart: compiling the fused steps" in err
    assert "a library detail" not in err
