"""tutorials/iterate_alanine_dipeptide.py in its --fast mode: the CLI's loop protocol on alanine dipeptide."""

import importlib.util
import json
import pathlib

import pytest

import cvlearn as cl

pytest.importorskip("openmm")
pytest.importorskip("mdtraj")

PATH = pathlib.Path(__file__).parents[1] / "tutorials" / "iterate_alanine_dipeptide.py"


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("iterate_alanine_tutorial", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_mode_runs_the_protocol(tutorial, tmp_path):
    summary = tutorial.main(fast=True, out=str(tmp_path))
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert (tmp_path / "iterate_alanine.png").stat().st_size > 10_000
    assert summary["reference_delta_f"] == cl.data.alanine_reference()["delta_f_kj_mol"]
    assert (summary["method"], summary["bias"], summary["explore_temperature_K"]) == ("deeptica", "opes", 700.0)
    fast = tutorial.FAST
    assert summary["simulated_ns"] == pytest.approx((fast["initial_steps"] + fast["walkers"] * fast["steps"]) * 2e-6)
    (r,) = summary["rounds"]
    # 2 x 20 ps cannot be expected to reach phi > 0: either a Delta F with an error, or a bound and no number.
    assert (r["delta_f"] is not None) == r["sampled"] == (r["bound"] is None)
