import json

import numpy as np
import pytest

from cvlearn.app import run_quickstart
from cvlearn.cli import main


def test_quickstart_short_run_writes_everything(tmp_path):
    report = run_quickstart(str(tmp_path), steps=2500, walkers=4, explore_steps=2000)
    for name in ("HILLS", "COLVAR.0", "COLVAR.3", "quickstart.png", "fes_xy.npz", "fes_cv.npz", "report.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert report["n_hills"] == 4 * 2500 // 100
    assert report["delta_f_exact_kJ_mol"] == pytest.approx(11.41, abs=0.01)
    # 12.5 ps of metadynamics: the estimate is rough (its block error may be undefined), but finite.
    assert np.isfinite(report["delta_f_A_to_B_kJ_mol"])
    assert report["delta_f_error_kJ_mol"] is None or report["delta_f_error_kJ_mol"] > 0
    # The bias pushed the walkers out of A across the CV: they reached B within 12.5 ps.
    assert report["delta_f_A_to_B_kJ_mol"] > 0


def test_cli_help_and_bad_method(capsys):
    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--help"])
    assert info.value.code == 0
    assert "--steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["quickstart", "--method", "vae"])


def test_quickstart_with_deeptica_saves_a_loadable_cv(tmp_path):
    import torch

    import cvlearn as cl

    report = run_quickstart(str(tmp_path), steps=500, walkers=2, explore_steps=3000, method="deeptica")
    cv = cl.load(tmp_path / "cv.pt")
    assert cv.info["method"] == "deeptica" and report["cv_method"] == "deeptica"
    s = cv(torch.tensor([[[-0.558, 1.442]], [[0.623, 0.028]]], dtype=torch.float64))
    assert abs(float(s[0, 0] - s[1, 0])) > 1.0  # the CV separates basins A and B (unit-variance scale)
