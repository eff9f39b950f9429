"""The README's API tour runs as written."""

import re
from pathlib import Path

import numpy as np


def test_readme_api_tour_runs(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "HILLS").exists() and (tmp_path / "COLVAR.7").exists()
    d = namespace["fes_xy"].delta_f(namespace["system"].basins["A"], namespace["system"].basins["B"])
    assert np.isfinite(d.value)


def test_readme_molecule_tour_runs(tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("openmm")
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[1]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "HILLS").exists()
    fes = namespace["fes_phi"]
    assert np.isfinite(fes.F).any() and namespace["run"].n_frames == 200


def test_readme_generative_tour_runs(tmp_path, monkeypatch):
    import warnings

    import pytest

    pytest.importorskip("openmm")
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[2]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short training run may stop before converging
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "path.pdb").exists() and len(namespace["seeds"]) == 2
    assert np.isfinite(namespace["report"].energy).all()
