"""tutorials/iterate_alanine_dipeptide.py in its --fast mode: the loop runs on alanine dipeptide in OpenMM."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("mdtraj")

PATH = pathlib.Path(__file__).parents[1] / "tutorials" / "iterate_alanine_dipeptide.py"


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("iterate_alanine_tutorial", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_mode_runs_the_loop_out_of_c7eq(tutorial, tmp_path):
    result, summary = tutorial.main(fast=True, out=str(tmp_path))
    on_disk = json.loads((tmp_path / "rounds.json").read_text())  # strict JSON (no NaN / inf)
    assert on_disk == json.loads(json.dumps(summary))
    assert (tmp_path / "iterate_alanine.png").stat().st_size > 10_000
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and summary["reference_delta_f"] == 9.76
    assert summary["simulated_ps_per_round"] == pytest.approx(tutorial.FAST["steps"] * 0.002)
    first, last = result.rounds[0], result.rounds[-1]
    assert last.trajectory.positions.shape == (tutorial.FAST["steps"] // tutorial.STRIDE, 1, 22, 3)  # nm
    # The unbiased start never leaves phi < 0; the biased rounds must push the molecule to phi > 0, which
    # 300 K MD does not reach in nanoseconds (the point of the loop).
    phi0 = tutorial.PHI.transform(result.rounds[0].trajectory)[0][:, 0]
    assert np.all(np.isfinite(phi0)) and np.abs(phi0).max() <= np.pi + 1e-6  # rad
    assert max(r["fraction_phi_positive"] for r in rounds) > 0.05
    assert 0.0 <= rounds[1]["cv_change"] <= 1.0
    # Round 1's CV is linear in the distances (TICA); its bias grew to several kJ/mol (hills of 5 kJ/mol).
    assert first.bias.n_hills == tutorial.FAST["steps"] // tutorial.FAST["pace"]
    assert np.max(first.bias.field.values()) > 10.0
    for r in rounds:  # Delta F, where both basins were reweighted into, is a free energy of tens of kJ/mol at most
        assert 0.1 <= r["skip"] < 1.0
        if r["delta_f"] is not None:
            assert -10.0 < r["delta_f"] < 60.0
