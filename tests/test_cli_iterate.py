"""`cvlearn iterate`: the learn -> bias -> reweight -> relearn loop from the command line."""

import json

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.cli import build_parser, main
from cvlearn.workflows import iterate


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
    with pytest.raises(ValueError, match="one OpenMM walker per round.*walkers=1"):
        iterate(str(tmp_path), walkers=4)
    with pytest.raises(ValueError, match="needs the two basins"):
        iterate(str(tmp_path), pdb=cl.data.alanine_dipeptide_pdb(), walkers=1)
    with pytest.raises(ValueError, match="reweighting must be 'ct' or 'final'"):
        iterate(str(tmp_path), system="muller-brown", reweighting="bias")
    with pytest.raises(ValueError, match="system must be 'muller-brown' or None"):
        iterate(str(tmp_path), system="alanine")


def test_molecule_in_openmm(tmp_path):
    pytest.importorskip("openmm")
    md = pytest.importorskip("mdtraj")
    argv = ["iterate", "--system", "molecule", "--rounds", "1", "--steps", "1000", "--initial-steps", "1000",
            "--stride", "50", "--lag", "2", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reference_delta_f"] == 9.76  # the shipped alanine dipeptide, Delta F on phi
    assert summary["rounds"][0]["simulated_ps"] == pytest.approx(2.0)  # 1000 steps x 2 fs, one walker
    assert len(cl.io.read_colvar(tmp_path / "round_1" / "HILLS")["time"]) == 2  # a hill every 500 steps
    fes = np.load(tmp_path / "round_1" / "fes.npz")
    assert fes["axis0"][0] > -np.pi and fes["axis0"][-1] < np.pi and len(fes["axis0"]) == 60  # phi, rad
    cv = cl.load(tmp_path / "round_1" / "cv.pt")  # TICA on the 45 heavy-atom distances
    xyz = torch.as_tensor(md.load(cl.data.alanine_dipeptide_pdb()).xyz, dtype=torch.float64)
    with torch.no_grad():
        assert cv(xyz).shape == (1, 1) and torch.isfinite(cv(xyz)).all()
    assert cv.featurizer.n_features == 45
