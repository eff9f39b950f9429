"""`cvlearn simulate`, `learn` and `bias` on alanine dipeptide: files, resume, and the learned CV."""

import json
import os
import re

import numpy as np
import pytest

import cvlearn as cl
from cvlearn.cli import main
from cvlearn.data import alanine_dipeptide_pdb

pytest.importorskip("openmm")
md = pytest.importorskip("mdtraj")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--steps", "6000", "--stride", "20", "--out", str(out), "--no-progress"]) == 0
    return out


def test_simulate_writes_trajectory_and_report(simulated):
    traj = md.load(os.path.join(simulated, "trajectory.xtc"), top=alanine_dipeptide_pdb())
    assert traj.n_frames == 300
    np.testing.assert_allclose(traj.time[:2], [0.04, 0.08], atol=1e-6)  # ps
    report = json.loads((simulated / "report.json").read_text())
    assert report["steps"] == 6000 and report["platform"] == "Reference"


def test_simulate_resume_continues_the_same_run(tmp_path, simulated):
    out = tmp_path / "sim"
    main(["simulate", "--steps", "3000", "--stride", "20", "--out", str(out), "--no-progress"])
    main(["simulate", "--steps", "6000", "--stride", "20", "--out", str(out), "--no-progress", "--resume"])
    a = md.load(os.path.join(out, "trajectory.xtc"), top=alanine_dipeptide_pdb())
    b = md.load(os.path.join(simulated, "trajectory.xtc"), top=alanine_dipeptide_pdb())
    # The checkpoint continues the run exactly (Reference platform); xtc stores positions to 1e-3 nm.
    assert a.n_frames == b.n_frames
    np.testing.assert_allclose(a.xyz, b.xyz, atol=2e-3)


@pytest.mark.parametrize("method", ["tica", "pca"])
def test_learn_saves_a_cv_equal_to_the_estimator(tmp_path, simulated, method):
    cv_path = tmp_path / "cv.pt"
    traj_path = os.path.join(simulated, "trajectory.xtc")
    assert main(["learn", "--traj", traj_path, "--top", alanine_dipeptide_pdb(), "--method", method, "--lag", "5",
                 "--out", str(cv_path)]) == 0
    cv = cl.load(cv_path)
    traj = md.load(traj_path, top=alanine_dipeptide_pdb())
    feat = cl.features.Distances(traj.topology, selection="heavy")
    est = (cl.TICA(lagtime=5, n_components=1) if method == "tica" else cl.PCA(n_components=1)).fit(feat.transform(traj))
    import torch

    s = cv(torch.as_tensor(traj.xyz, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(s, est.transform(feat.transform(traj)), atol=1e-8)
    # Streaming the file in chunks gives the same CV.
    streamed = tmp_path / "streamed.pt"
    main(["learn", "--traj", traj_path, "--top", alanine_dipeptide_pdb(), "--method", method, "--lag", "5",
          "--chunk", "37", "--out", str(streamed)])
    s2 = cl.load(streamed)(torch.as_tensor(traj.xyz, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(s2, s, atol=1e-8)


def test_bias_runs_metadynamics_and_resumes(tmp_path, simulated, capsys):
    cv_path = tmp_path / "cv.pt"
    main(["learn", "--traj", os.path.join(simulated, "trajectory.xtc"), "--top", alanine_dipeptide_pdb(),
          "--lag", "5", "--out", str(cv_path)])
    std = json.loads((tmp_path / "cv.pt.json").read_text())["cv_std"][0]
    out = tmp_path / "metad"
    args = ["bias", "--cv", str(cv_path), "--sigma", str(0.5 * std), "--pace", "100", "--stride", "100",
            "--out", str(out), "--no-progress"]
    assert main(args + ["--steps", "1000"]) == 0
    code, err = _cli(capsys, *args, "--steps", "2000", "--resume")
    assert code == 0 and (f"Resuming {out} from checkpoint.npz at step 1000 (2 ps); rows written after it and "
                          "discarded: none") in err
    colvar = cl.io.read_colvar(out / "COLVAR")
    np.testing.assert_allclose(colvar["time"], 0.2 * np.arange(1, 21))
    fields, _, rows, _ = cl.io.read_plumed_table(out / "HILLS")
    assert len(rows) == 20 and fields[1] == "tic1"
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 2000 and report["hills"] == 20
    # Resuming with another CV, other settings or fewer steps is refused before any work; nothing changes.
    other = tmp_path / "pca.pt"
    main(["learn", "--traj", os.path.join(simulated, "trajectory.xtc"), "--top", alanine_dipeptide_pdb(),
          "--method", "pca", "--out", str(other)])
    hills = (out / "HILLS").read_text()
    for change, words in [(["--cv", str(other)], rf"--cv: the run has {cv_path} \(names \['tic1'\], method tica, "
                           r"features distances:heavy, sha256 \w+\), this call " + rf"{other} \(names \['pc1'\]"),
                          (["--temperature", "310"], "--temperature: the run has 300.0, this call 310.0"),
                          (["--grid=-3,3,300"], "--grid: the run has"),
                          (["--steps", "1000"], "already holds 2000 steps, more than --steps 1000")]:
        code, err = _cli(capsys, *args, "--steps", "3000", "--resume", *change)
        assert code == 2 and re.search(words, err) and err.count("\n") == 1, err
    assert (out / "HILLS").read_text() == hills
    code, err = _cli(capsys, *args, "--steps", "2000")
    assert code == 2 and "already holds a run" in err and "--resume" in err and "--force" in err


def _cli(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_learn_makes_missing_folders_and_keeps_an_existing_cv(tmp_path, simulated, capsys):
    argv = ["learn", "--traj", os.path.join(simulated, "trajectory.xtc"), "--top", alanine_dipeptide_pdb(), "--out",
            str(tmp_path / "new" / "x.pt")]
    assert main(argv) == 0
    assert sorted(os.listdir(tmp_path / "new")) == ["x.pt", "x.pt.json"]
    first = (tmp_path / "new" / "x.pt").read_bytes()
    code, err = _cli(capsys, *argv)
    assert code == 2 and "x.pt already exists: pass --force" in err  # refused before training
    assert main(argv + ["--force"]) == 0
    assert (tmp_path / "new" / "bck.0.x.pt").read_bytes() == first
    assert (tmp_path / "new" / "bck.0.x.pt.json").exists()


def test_bad_feature_spec_names_the_choices():
    with pytest.raises(ValueError, match="Unknown feature kind 'angles'.*distances:<selection>"):
        cl.features.from_spec("angles:heavy", alanine_dipeptide_pdb())
