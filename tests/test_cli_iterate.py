"""`cvlearn iterate`: the learn -> bias -> reweight -> relearn loop from the command line."""

import json

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.app import run_iterate
from cvlearn.cli import build_parser, main


@pytest.fixture(scope="module")
def mb_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iterate_mb")
    argv = ["iterate", "--system", "muller-brown", "--rounds", "2", "--walkers", "4", "--steps", "2000",
            "--initial-steps", "1000", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return out


def test_writes_every_round_and_a_summary(mb_run):
    summary = json.loads((mb_run / "summary.json").read_text())  # strict JSON: no inf or NaN
    mb = cl.systems.MullerBrown()
    assert summary["reference_delta_f"] == pytest.approx(mb.exact_delta_f("A", "B"), abs=1e-10)
    assert [r["round"] for r in summary["rounds"]] == [1, 2]  # tol 1 kJ/mol cannot be met without transitions
    for r in summary["rounds"]:
        assert r["simulated_ps"] == pytest.approx(2000 * 0.005 * 4)  # steps x 5 fs x walkers
        assert r["transitions"] >= 0 and {"delta_f", "error", "cv_change"} <= set(r)
        d = mb_run / f"round_{r['round']}"
        fes = np.load(d / "fes.npz")
        assert np.nanmin(fes["F"]) == pytest.approx(0.0, abs=1e-12)  # kJ/mol, minimum 0
        hills = cl.io.read_colvar(d / "HILLS")
        assert len(hills["time"]) == 2000 // 100 * 4  # a hill per walker every 100 steps
    assert summary["rounds"][1]["cv_change"] is not None and 0.0 <= summary["rounds"][1]["cv_change"] <= 1.0
    assert (mb_run / "summary.png").stat().st_size > 10_000


def test_round_one_cv_is_tica_of_the_unbiased_run(mb_run):
    """The first CV is TICA (lag 10 frames) of the unbiased 4-walker run from basin A (same seed): equal
    up to sign to 1e-8 (float64 eigenproblem on the same frames)."""
    mb = cl.systems.MullerBrown()
    initial = cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=4, seed=0,
                          positions=mb.basins["A"].center[None]).run(1000, stride=10)
    feat = cl.features.Positions.of(mb)
    ref = cl.TICA(lagtime=10, n_components=1).fit(feat.transform(initial)).to_module(featurizer=feat)
    cv = cl.load(mb_run / "round_1" / "cv.pt")
    x = torch.as_tensor(initial.positions[::10, 0], dtype=torch.float64)
    with torch.no_grad():
        a, b = cv(x)[:, 0].double().numpy(), ref(x)[:, 0].double().numpy()
    assert np.std(a) > 0.1
    np.testing.assert_allclose(np.abs(a), np.abs(b), atol=1e-8)


def test_help_gives_units_and_meanings(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["iterate", "--help"])
    text = capsys.readouterr().out
    for words in ("kJ/mol", "5 fs", "--timestep", "lag time in frames", "transient", "F(phi > 0) - F(phi < 0)"):
        assert words in " ".join(text.split()), words


def test_bad_input_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="--system molecule"):
        main(["iterate", "--pdb", "x.pdb", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="one walker per round.*walkers=1.*bias='opes'"):
        run_iterate(str(tmp_path), bias="metad", walkers=4)
    with pytest.raises(ValueError, match="OPES has no c\\(t\\)"):
        run_iterate(str(tmp_path), reweighting="ct")
    with pytest.raises(ValueError, match="needs the two basins"):
        run_iterate(str(tmp_path), pdb=cl.data.alanine_dipeptide_pdb(), initial_steps=100)
    with pytest.raises(ValueError, match="reweighting must be 'ct', 'final' or 'bias'"):
        run_iterate(str(tmp_path), system="muller-brown", reweighting="exp")
    with pytest.raises(ValueError, match="system must be 'muller-brown' or None"):
        run_iterate(str(tmp_path), system="alanine")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        run_iterate(str(tmp_path), steps=-5)
    with pytest.raises(ValueError, match="multiples of stride"):
        run_iterate(str(tmp_path), steps=150, stride=100)


def test_molecule_default_protocol_at_toy_length(tmp_path, capsys):
    """The molecule protocol end to end (exploration at 700 K, Deep-TICA best of 2, OPES with 2 walkers
    taking turns, reweighting onto phi) at toy length: every file, the reference, the bookkeeping."""
    pytest.importorskip("openmm")
    md = pytest.importorskip("mdtraj")
    argv = ["iterate", "--system", "molecule", "--rounds", "1", "--steps", "2000", "--initial-steps", "4000",
            "--stride", "50", "--lag", "2", "--walkers", "2", "--epochs", "3", "--n-models", "2", "--out",
            str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "exploration: 4000 steps unbiased at 700 K" in out and "round 1:" in out
    assert out.strip().splitlines()[-1].endswith("Wrote " + str(tmp_path) + "/round_*/, summary.json, summary.png")
    summary = json.loads((tmp_path / "summary.json").read_text())  # strict JSON
    ref = cl.data.alanine_reference("vacuum")
    assert summary["reference_delta_f"] == ref["delta_f_kj_mol"] and summary["reference_error"] == ref["sem_kj_mol"]
    assert (summary["method"], summary["bias"], summary["reweighting"], summary["n_models"], summary["n_components"]) \
        == ("deeptica", "opes", "bias", 2, 2)
    assert summary["explore_temperature_K"] == 700.0
    r = summary["rounds"][0]
    assert r["simulated_ps"] == pytest.approx(2000 * 0.002 * 2)  # steps x 2 fs x walkers
    assert summary["simulated_ns"] == pytest.approx((4000 + 2 * 2000) * 0.002 / 1000)  # exploration included
    if r["sampled"]:  # 8 ps cannot be expected to cross; whichever happened, the report is consistent
        assert r["delta_f"] is not None and r["bound"] is None
    else:
        assert r["delta_f"] is None and summary["delta_f"] is None and np.isfinite(r["bound"])
        assert f"basin {r['missing']} not sampled" in out and "no estimate" in out
    kernels = cl.io.read_colvar(tmp_path / "round_1" / "KERNELS")
    assert len(kernels["time"]) == 2 * 2000 // 500  # a kernel per walker every 500 steps
    fes = cl.fes.FreeEnergySurface.load(tmp_path / "round_1" / "fes.npz")
    p = np.exp(-(fes.F[np.isfinite(fes.F)]) / (cl.units.BOLTZMANN * 300.0))
    assert np.nanmin(fes.F) == pytest.approx(0.0, abs=1e-12) and 0.0 < p.sum() < np.isfinite(fes.F).sum()
    assert fes.axes[0][0] > -np.pi and fes.axes[0][-1] < np.pi and len(fes.axes[0]) == 60  # phi, rad
    cv = cl.load(tmp_path / "round_1" / "cv.pt")  # Deep-TICA on the 45 heavy-atom distances
    xyz = torch.as_tensor(md.load(cl.data.alanine_dipeptide_pdb()).xyz, dtype=torch.float64)
    with torch.no_grad():
        assert cv(xyz).shape == (1, 2) and torch.isfinite(cv(xyz)).all()
    assert cv.featurizer.n_features == 45


def test_metadynamics_on_a_molecule_runs_one_walker(tmp_path):
    pytest.importorskip("openmm")
    s = run_iterate(str(tmp_path), rounds=1, steps=1000, initial_steps=2000, stride=50, lagtime=2, method="tica",
                bias="metad", walkers=1, explore_temperature=None)
    assert s["explore_temperature_K"] == 300.0 and s["reweighting"] == "ct"
    assert len(cl.io.read_colvar(tmp_path / "round_1" / "HILLS")["time"]) == 2  # a hill every 500 steps


def test_a_continued_round_writes_its_files(tmp_path):
    """learn_rounds=1 on Muller-Brown (seed 0): round 1 does not reach B, round 2 does and is kept, round 3
    continues its bias; every round has its folder, CV and surface, and the HILLS stay with round 2."""
    s = run_iterate(str(tmp_path), system="muller-brown", rounds=3, walkers=8, steps=10000, initial_steps=2000,
                learn_rounds=1, tol=1e-9)
    assert [(r["sampled"], r["continued"]) for r in s["rounds"]] == [(False, 0), (True, 0), (True, 1)]
    for k in (1, 2, 3):
        assert {"cv.pt", "fes.npz"} <= {p.name for p in (tmp_path / f"round_{k}").iterdir()}
    assert not (tmp_path / "round_3" / "HILLS").exists()
    hills = cl.io.read_colvar(tmp_path / "round_2" / "HILLS")
    assert len(hills["time"]) == 2 * 10000 // 100 * 8  # rounds 2 and 3: a hill per walker every 100 steps
    assert s["delta_f"] == s["rounds"][2]["delta_f"]


def test_implicit_solvent_takes_its_own_reference(tmp_path):
    """amber99_obc.xml: the reference is the implicit-solvent one, or none while it has not been made."""
    pytest.importorskip("openmm")
    import json as _json
    from importlib import resources

    s = run_iterate(str(tmp_path), forcefield=("amber99sbildn.xml", "amber99_obc.xml"), rounds=1, steps=1000,
                initial_steps=2000, stride=50, lagtime=2, method="tica", walkers=1)
    table = _json.loads(resources.files("cvlearn.data").joinpath("alanine_reference.json").read_text())
    expected = table["obc"]["delta_f_kj_mol"] if "obc" in table else None
    assert s["reference_delta_f"] == expected and s["explore_temperature_K"] == 700.0
