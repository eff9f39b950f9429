"""Runs never lose or mix a user's work: the output guard of every command, --force, --resume checks,
one-line command-line errors, and the quickstart's answer when basin B was never visited."""

import json
import logging
import os

import numpy as np
import pytest

from cvlearn.app import RunFolderError, claim_file, claim_output
from cvlearn.cli import main

QUICK = ["quickstart", "--steps", "500", "--walkers", "2", "--no-progress"]


def run_cli(capsys, *argv):
    """Exit status and stderr of ``cvlearn argv`` (argparse's own exits included)."""
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


# --- the guard itself (no simulation) ---

def test_a_second_run_is_refused_and_force_keeps_the_first_whole(tmp_path):
    out = str(tmp_path / "run")
    assert claim_output(out, "bias", settings={"temperature": 300.0}) is False
    for name in ("HILLS", "cv.pt", "report.json"):
        (tmp_path / "run" / name).write_text(name)
    with pytest.raises(RunFolderError, match=r"already holds a run \(HILLS, cv.pt, report.json, settings.json\): "
                       r"pass --resume to continue it, --force to keep it in .*/bck.<n>/"):
        claim_output(out, "bias", settings={"temperature": 300.0})
    assert claim_output(out, "bias", force=True, settings={"temperature": 310.0}) is False
    kept = tmp_path / "run" / "bck.0"
    assert sorted(os.listdir(kept)) == ["HILLS", "cv.pt", "report.json", "settings.json"]
    assert (kept / "cv.pt").read_text() == "cv.pt"  # moved, not rewritten
    assert json.loads((kept / "settings.json").read_text())["temperature"] == 300.0
    assert sorted(os.listdir(tmp_path / "run")) == ["bck.0", "settings.json"]  # backups are no run: no refusal
    (tmp_path / "run" / "HILLS").write_text("2")
    claim_output(out, "bias", force=True, settings={"temperature": 310.0})
    assert sorted(os.listdir(tmp_path / "run")) == ["bck.0", "bck.1", "settings.json"]


def test_resume_compares_every_setting_and_names_both_cvs(tmp_path):
    out = str(tmp_path)
    cv = lambda sha: {"file": f"{sha}.pt", "names": ["tic1"], "sha256": sha}  # noqa: E731
    claim_output(out, "bias", settings={"cv": cv("aaaa"), "grid": [[-3.0], [3.0], [300]], "temperature": 300.0})
    (tmp_path / "HILLS").write_text("")
    (tmp_path / "checkpoint.npz").write_text("")
    same = {"cv": {**cv("aaaa"), "file": "moved/aaaa.pt"}, "grid": ([-3.0], [3.0], [300]), "temperature": 300.0}
    assert claim_output(out, "bias", resume=True, settings=same, resumable=("HILLS", "checkpoint.npz")) is True
    with pytest.raises(RunFolderError, match=r"--resume would mix two runs in .*--cv: the run has aaaa.pt \(names "
                       r"\['tic1'\], sha256 aaaa\), this call bbbb.pt \(names \['tic1'\], sha256 bbbb\)"):
        claim_output(out, "bias", resume=True, settings={**same, "cv": cv("bbbb")})
    with pytest.raises(RunFolderError, match=r"--grid: the run has \[\[-3.0\], \[3.0\], \[300\]\], this call "
                       r"\[\[-3.0\], \[4.0\], \[300\]\]; --temperature: the run has 300.0, this call 310.0"):
        claim_output(out, "bias", resume=True, settings={**same, "grid": [[-3.0], [4.0], [300]], "temperature": 310.0})
    with pytest.raises(RunFolderError, match="holds a run of cvlearn bias, not of cvlearn simulate"):
        claim_output(out, "simulate", resume=True, settings={})


def test_resume_with_nothing_to_resume_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="cvlearn"):
        assert claim_output(str(tmp_path / "new"), "bias", resume=True, settings={}) is False
    assert "Nothing to resume in" in caplog.text
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=r"holds files \(notes.txt\) but no run of cvlearn bias to resume"):
        claim_output(str(tmp_path / "other"), "bias", resume=True, settings={})


def test_file_outputs(tmp_path):
    assert claim_file(tmp_path / "a" / "b" / "cv.pt") == str(tmp_path / "a" / "b" / "cv.pt")
    assert (tmp_path / "a" / "b").is_dir()  # missing folders are made before the work
    (tmp_path / "cv.pt").write_text("old")
    with pytest.raises(RunFolderError, match=r"cv.pt already exists: pass --force to keep it as bck.<n>.cv.pt"):
        claim_file(tmp_path / "cv.pt")
    claim_file(tmp_path / "cv.pt", force=True)
    assert (tmp_path / "bck.0.cv.pt").read_text() == "old" and not (tmp_path / "cv.pt").exists()
    with pytest.raises(RunFolderError, match="is a folder: give a file name"):
        claim_file(tmp_path / "a")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        claim_output(tmp_path / "bck.0.cv.pt", "bias")


# --- the commands ---

def test_quickstart_twice_refuses_then_force_keeps_the_first_run(tmp_path, capsys):
    out = tmp_path / "qs"
    assert run_cli(capsys, *QUICK, "--out", str(out))[0] == 0
    first = {name: (out / name).read_bytes() for name in ("cv.pt", "report.json", "HILLS", "quickstart.png")}
    code, err = run_cli(capsys, *QUICK, "--out", str(out))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"cvlearn quickstart: --out {out} already holds a run (") and "--resume" in err
    assert "--force" in err
    assert all((out / name).read_bytes() == data for name, data in first.items())  # nothing touched
    code, err = run_cli(capsys, *QUICK, "--seed", "1", "--out", str(out), "--force")
    assert code == 0 and f"Kept the earlier run of {out} in {out}/bck.0" in err
    assert all((out / "bck.0" / name).read_bytes() == data for name, data in first.items())
    assert (out / "cv.pt").read_bytes() != first["cv.pt"]  # seed 1 learned its own CV


def test_quickstart_resume_checks_steps_and_settings(tmp_path, capsys):
    out = tmp_path / "qs"
    code, err = run_cli(capsys, *QUICK, "--out", str(out), "--resume")
    assert code == 0 and "Nothing to resume in" in err
    code, err = run_cli(capsys, *QUICK[:2], "250", *QUICK[3:], "--out", str(out), "--resume")
    assert code == 2 and f"{out} already holds 500 steps, more than --steps 250" in err
    code, err = run_cli(capsys, *QUICK, "--walkers", "3", "--out", str(out), "--resume")
    assert code == 2 and "--walkers: the run has 2, this call 3" in err
    code, err = run_cli(capsys, *QUICK, "--out", str(out), "--resume")
    assert code == 0 and "already holds all 500 steps: nothing left to run" in err


def test_quickstart_resume_discards_the_rows_after_the_checkpoint(tmp_path, caplog):
    from cvlearn.app import run_quickstart

    whole = run_quickstart(str(tmp_path / "whole"), steps=1000, walkers=2, explore_steps=1000, chunks=2)
    part = tmp_path / "part"
    run_quickstart(str(part), steps=500, walkers=2, explore_steps=1000, chunks=1)
    # A run killed after it wrote a hill and a COLVAR row past its checkpoint (t = 2.5 ps):
    hill = [ln for ln in (part / "HILLS").read_text().splitlines() if not ln.startswith("#")][-1].split()
    with open(part / "HILLS", "a") as fh:
        fh.write(" ".join(["2.6", *hill[1:]]) + "\n")
    with open(part / "COLVAR.1", "a") as fh:
        fh.write("2.75 0.1 0.2 0.3\n")
    with caplog.at_level(logging.INFO, logger="cvlearn"):
        resumed = run_quickstart(str(part), steps=1000, walkers=2, explore_steps=1000, chunks=2, resume=True)
    assert "at step 500 (2.5 ps); rows written after it and discarded: 1 HILLS, 1 COLVAR.1" in caplog.text
    assert resumed["n_hills"] == whole["n_hills"]
    assert resumed["delta_f_A_to_B_kJ_mol"] == pytest.approx(whole["delta_f_A_to_B_kJ_mol"], abs=1e-8)
    hills = [line for line in (part / "HILLS").read_text().splitlines() if not line.startswith("#")]
    assert len(hills) == whole["n_hills"]  # no hill counted twice


def test_quickstart_that_never_reaches_b_says_run_longer(tmp_path, capsys):
    """500 steps (2.5 ps) from basin A: no walker of seed 0 reaches B; the report says so, nothing crashes."""
    out = tmp_path / "qs"
    code = main(["quickstart", "--steps", "500", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "Basin B was never visited in 500 steps per walker" in text and "run longer" in text
    report = json.loads((out / "report.json").read_text())
    assert report["delta_f_A_to_B_kJ_mol"] is None and report["basin_B_visited"] is False
    assert (out / "quickstart.png").stat().st_size > 10_000


def test_headline_is_the_last_point_of_the_convergence_panel(tmp_path, monkeypatch):
    """One estimator: the reported F(B) - F(A) and its error are the last point of the series the figure's
    convergence panel draws (c(t)-weighted frames in A and B, the first 10% of the run skipped)."""
    from cvlearn.app import quickstart

    drawn = {}
    real = quickstart._summary_figure

    def spy(*args):
        drawn["series"] = args[7]
        return real(*args)

    monkeypatch.setattr(quickstart, "_summary_figure", spy)
    report = quickstart.run_quickstart(str(tmp_path), steps=2500, walkers=4, explore_steps=2000)
    series = drawn["series"]
    assert report["basin_B_visited"] and quickstart.SKIP == 0.1
    assert report["delta_f_A_to_B_kJ_mol"] == series["delta_f"][-1]
    error = series["error"][-1]  # NaN (JSON null) when a block of this short run never saw B
    assert report["delta_f_error_kJ_mol"] == (None if np.isnan(error) else error)
    assert "first 0.1 of the run skipped" in report["delta_f_estimator"]


def test_one_progress_bar_per_run(tmp_path, capsys):
    """The metadynamics of the quickstart runs in 5 chunks under one bar (the exploration has its own)."""
    from cvlearn.app import run_quickstart

    run_quickstart(str(tmp_path), steps=500, walkers=2, explore_steps=500, chunks=5, progress=True)
    finished = [line for line in capsys.readouterr().err.split("\n") if "100%" in line]
    assert len(finished) == 2, finished
    assert "500/500" in finished[1]


def test_iterate_refuses_an_occupied_folder(tmp_path, capsys):
    (tmp_path / "summary.json").write_text("{}")
    code, err = run_cli(capsys, "iterate", "--system", "muller-brown", "--out", str(tmp_path))
    assert code == 2 and "already holds a run (summary.json)" in err and "--force" in err
    assert os.listdir(tmp_path) == ["summary.json"]


def test_numeric_options_are_checked_before_any_work(tmp_path, capsys):
    for argv, words in [
        (["quickstart", "--steps", "-5"], "argument --steps: must be a positive integer; got '-5'"),
        (["quickstart", "--walkers", "0"], "argument --walkers: must be a positive integer; got '0'"),
        (["simulate", "--steps", "100", "--stride", "500"], "--stride 500 is larger than --steps 100"),
        (["simulate", "--steps", "100", "--timestep", "nan"], "argument --timestep: must be a positive number"),
        (["demo", "--barrier", "inf"], "argument --barrier: must be a positive number; got 'inf'"),
        (["bias", "--cv", "x.pt", "--sigma", "0.1", "--steps", "10", "--stride", "10", "--bias-factor", "1"],
         "argument --bias-factor: must be a number > 1; got '1'"),
        (["walkers", "--n-walkers", "2", "--seed", "-1"], "argument --seed: must be an integer >= 0"),
    ]:
        code, err = run_cli(capsys, *argv, "--out", str(tmp_path / "out"))
        assert code == 2 and words in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "out").exists()


def test_errors_are_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    argv = ["bias", "--cv", str(tmp_path / "nope.pt"), "--sigma", "0.1", "--steps", "10", "--stride", "10", "--out",
            str(tmp_path / "out")]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and err == f"cvlearn bias: No saved CV at {tmp_path / 'nope.pt'}.\n"
    with pytest.raises(FileNotFoundError):
        main(argv + ["--debug"])
    monkeypatch.setenv("CVLEARN_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(argv)


@pytest.fixture(scope="module")
def saved_cv(tmp_path_factory):
    md = pytest.importorskip("mdtraj")
    import cvlearn as cl
    from cvlearn.data import alanine_dipeptide_pdb

    frames = md.load(alanine_dipeptide_pdb())
    xyz = frames.xyz + np.random.default_rng(0).normal(scale=0.01, size=(50, *frames.xyz.shape[1:]))
    feat = cl.features.Distances(frames.topology, selection="heavy")
    cv = cl.TICA(lagtime=1, n_components=1).fit(feat.transform(xyz.astype(np.float32))).to_module(featurizer=feat)
    path = tmp_path_factory.mktemp("cv") / "cv.pt"
    cl.save(cv, path)
    return path


def test_export_writes_all_or_nothing(tmp_path, capsys, saved_cv):
    pytest.importorskip("mdtraj")
    code, err = run_cli(capsys, "export", str(saved_cv), "--plumed", "--out", str(tmp_path / "plumed"))
    assert code == 2 and "sigma" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []  # no half-written folder, no staging folder left
    assert run_cli(capsys, "export", str(saved_cv), "--plumed", "--out", str(tmp_path / "plumed"), "--sigma", "0.1",
                   "--grid=-3,3,300")[0] == 0
    assert sorted(os.listdir(tmp_path / "plumed")) == ["README.md", "model.ptc", "plumed.dat"]
    assert oct(os.stat(tmp_path / "plumed").st_mode & 0o777) == oct(0o777 & ~_umask())
    code, err = run_cli(capsys, "export", str(saved_cv), "--out", str(tmp_path / "plumed" / "model.ptc"))
    assert code == 2 and "model.ptc already exists: pass --force" in err


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
