"""`cvlearn export --plumed` run by a real PLUMED (2.11-dev, PYTORCH and OPES modules).

PLUMED's driver reads the alanine dipeptide frames cvlearn evaluates (an xtc written by cvlearn's
OpenMM engine, read back by both) and computes the features with the actions the export wrote, the
CV through PYTORCH_MODEL, and the METAD / OPES_METAD bias. Skipped, with the reason, where no PLUMED
is found (../shared/plumed beside the repository, or CVLEARN_PLUMED=/path/to/plumed).
"""

import copy
import re

import numpy as np
import pytest
import torch
from plumed_real import alanine_metad_run, find_plumed, plumed_metad_bias, print_every_frame

import cvlearn as cl
from cvlearn.cli import main as cli_main
from cvlearn.export import torchscript_format_version

pytest.importorskip("openmm")  # the frames come from cvlearn's OpenMM engine
pytestmark = pytest.mark.openmm

# PLUMED computes the features in double precision and runs the model in float32 (PYTORCH_MODEL);
# the reference is cvlearn's CV in float64. float32 keeps 7 significant digits, and a network's sums
# lose one or two more: measured max |PLUMED - cvlearn| on these frames 4e-7 to 5e-6 for TICA on each
# featurizer, 5e-6 (TICA), 1.2e-5 at |s| = 1.04 (Deep-TICA) and 6e-6 (autoencoder) on 49 features. The
# same float32 model run by torch on cvlearn's features is as far from float64 (other summation order),
# so this is float32 rounding: the tolerance is 1e-5 absolute plus 1e-5 relative.
CV_TOL = 1e-5


@pytest.fixture(scope="module")
def plumed():
    return find_plumed()


@pytest.fixture(scope="module")
def alanine(tmp_path_factory):
    """400 frames (16 ps) of alanine dipeptide, metadynamics on phi so that both phi basins appear (~5 s)."""
    return alanine_metad_run(tmp_path_factory.mktemp("alanine"))


def _featurizers(top):
    f = cl.features
    return {
        "distances": f.Distances(top, selection="heavy"),
        "dihedrals": f.Dihedrals(top, "phi psi"),
        "dihedrals_sincos": f.Dihedrals(top, "phi psi", sincos=True),
        "contacts": f.Contacts(top, pairs=[[4, 14], [6, 16], [1, 18]], r0=0.4, d0=0.05),
        "contacts_total": f.Contacts(top, pairs=[[4, 14], [6, 16], [1, 18]], r0=0.35, n=8, m=16, total=True),
        "positions": f.Positions(22, 3, particles=[8, 14]),
    }


def _export_and_drive(plumed, alanine, cv, directory, edit=None, **kwargs):
    """Export ``cv`` with ``cvlearn export --plumed`` (the command line, on a cl.save'd CV), run PLUMED's
    driver on the frames (after ``edit(text) -> text`` of plumed.dat, if given); return the export's
    directory, PLUMED's COLVAR columns and its log."""
    directory.mkdir()
    cl.save(cv, directory / "cv.pt")
    args = ["export", str(directory / "cv.pt"), "--plumed", "--out", str(directory / "export")]
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        args += [f"{flag}={v}" for v in value] if isinstance(value, list) else [f"{flag}={value}"]
    assert cli_main(args) == 0
    export = directory / "export"
    text = print_every_frame(export / "plumed.dat")
    if edit is not None:
        (export / "plumed.dat").write_text(edit(text))
    log = plumed.driver(export, export / "plumed.dat", alanine["xtc"]).stdout
    return export, cl.io.read_colvar(export / "COLVAR"), log


def _assert_plumed_equals_cvlearn(theirs, cv, alanine):
    """PLUMED's printed CV (frames, components) against cvlearn's, in float64."""
    ours = _cvlearn_values(cv, alanine)
    assert theirs.shape == ours.shape == (400, cv.n_components)
    assert np.ptp(ours, axis=0).min() > 0.1  # the CV moves over the frames: the comparison is not of constants
    np.testing.assert_allclose(theirs, ours, rtol=CV_TOL, atol=CV_TOL)


def _cvlearn_values(cv, alanine):
    """The CV in float64 (neural CVs keep float32 weights; their float64 copy is the exact value of the
    network PLUMED runs in float32)."""
    with torch.no_grad():
        return copy.deepcopy(cv).double()(alanine["positions"]).numpy()


@pytest.mark.parametrize("name", ["distances", "dihedrals", "dihedrals_sincos", "contacts", "contacts_total",
                                  "positions", "all"])
def test_pytorch_model_gives_cvlearn_values_for_each_featurizer(plumed, alanine, tmp_path, name):
    feats = _featurizers(alanine["top"])
    feat = feats[name] if name != "all" else (
        feats["distances"] | feats["dihedrals_sincos"] | feats["contacts"] | feats["contacts_total"]
        | feats["positions"])
    X = feat.transform(alanine["frames"])
    k = min(2, X.shape[1])
    cv = cl.TICA(lagtime=5, n_components=k).fit(X).to_module(featurizer=feat)
    _, colvar, _ = _export_and_drive(plumed, alanine, cv, tmp_path / name, bias="none")
    theirs = np.stack([colvar[f"cv.node-{i}"] for i in range(k)], axis=1)
    _assert_plumed_equals_cvlearn(theirs, cv, alanine)


def _learner(kind):
    if kind == "tica":
        return cl.TICA(lagtime=5, n_components=2)
    if kind == "deeptica":
        return cl.DeepTICA(lagtime=5, layers=[16, 16], n_components=2, max_epochs=40, seed=0)
    return cl.AutoEncoder(layers=[16, 8], n_components=2, max_epochs=40, seed=0)


@pytest.mark.parametrize("kind", ["tica", "deeptica", "autoencoder"])
def test_pytorch_model_gives_cvlearn_values_for_each_learner(plumed, alanine, tmp_path, kind):
    top = alanine["top"]
    feat = cl.features.Distances(top, selection="heavy") | cl.features.Dihedrals(top, "phi psi", sincos=True)
    cv = _learner(kind).fit(feat.transform(alanine["frames"])).to_module(featurizer=feat)  # the encoder, for AE
    _, colvar, _ = _export_and_drive(plumed, alanine, cv, tmp_path / kind, bias="none")
    theirs = np.stack([colvar["cv.node-0"], colvar["cv.node-1"]], axis=1)
    _assert_plumed_equals_cvlearn(theirs, cv, alanine)


def test_model_written_here_loads_in_this_plumed_and_readme_says_which(plumed, alanine, tmp_path):
    feat = cl.features.Dihedrals(alanine["top"], "phi psi", sincos=True)
    cv = cl.PCA(n_components=1).fit(feat.transform(alanine["frames"])).to_module(featurizer=feat)
    export, colvar, log = _export_and_drive(plumed, alanine, cv, tmp_path / "pca", bias="none")
    assert "Action PYTORCH_MODEL" in log and "Number of outputs: 1" in log
    assert len(colvar["cv.node-0"]) == 400 and np.isfinite(colvar["cv.node-0"]).all()
    libtorch = re.search(r"LibTorch version: (\S+)", log).group(1)  # what this PLUMED is linked to
    version = torchscript_format_version(export / "model.ptc")
    assert 1 <= version <= 10  # what every LibTorch 2.x reads (caffe2/serialize/versions.h)
    readme = (export / "README.md").read_text()
    assert f"torch {torch.__version__}" in readme and f"file-format version {version}" in readme
    # The README's "checked" line is this test: this PLUMED, this LibTorch, this torch.
    assert plumed.version.startswith("2.11") and "PLUMED 2.11-dev" in readme
    assert libtorch == torch.__version__.split("+")[0] and f"LibTorch {libtorch}" in readme


def _one_d_tica(alanine):
    feat = cl.features.Dihedrals(alanine["top"], "phi psi", sincos=True)
    X = feat.transform(alanine["frames"])
    cv = cl.TICA(lagtime=5, n_components=1).fit(X).to_module(featurizer=feat)
    return cv, _cvlearn_values(cv, alanine)[:, 0]


def _restart_without_deposition(export, action, keep_grid):
    """plumed.dat continued from the deposited hills/kernels: RESTART, no new deposition (PACE beyond the
    run), and for METAD optionally without its grid (PLUMED then sums the hills one by one)."""
    text = (export / "plumed.dat").read_text()
    lines = []
    for line in text.splitlines():
        if f": {action} " in line:
            line = line.replace("PACE=100 ", "PACE=100000000 ")
            if not keep_grid:
                line = " ".join(w for w in line.split() if not w.startswith("GRID_"))
            if action == "OPES_METAD":
                line = " ".join("STATE_RFILE=STATE.deposited" if w == "STATE_WFILE=STATE" else w
                                for w in line.split() if not w.startswith("STATE_WSTRIDE="))
        lines.append(line.replace("FILE=COLVAR", "FILE=COLVAR.restart"))
    (export / "restart.dat").write_text("RESTART\n" + "\n".join(lines) + "\n")
    return export / "restart.dat"


def test_metad_hills_deposited_by_plumed_give_cvlearn_bias(plumed, alanine, tmp_path):
    cv, s = _one_d_tica(alanine)
    lo, hi = s.min() - 1.5, s.max() + 1.5
    export, _, _ = _export_and_drive(plumed, alanine, cv, tmp_path / "metad", bias="metad", sigma=0.2,
                                     height=1.2, bias_factor=10, pace=100, grid=[f"{lo},{hi},600"])
    hills = np.loadtxt(export / "HILLS", comments="#")
    assert len(hills) == 79  # one hill every 100 steps = 5 frames, none at the first step
    np.testing.assert_allclose(hills[:, 1], s[5::5], atol=CV_TOL)  # hills where cvlearn puts the CV
    plumed.driver(export, _restart_without_deposition(export, "METAD", keep_grid=False), alanine["xtc"])
    printed = cl.io.read_colvar(export / "COLVAR.restart")["metad.bias"]
    assert printed.max() > 5.0  # kJ/mol: 79 hills of 1.2 kJ/mol, well tempered, have filled a basin
    # PLUMED itself is what we think it is: its stretched, truncated Gaussians (independent formula).
    np.testing.assert_allclose(printed, plumed_metad_bias(s[:, None], hills, 10.0), rtol=0, atol=1e-4)
    # cvlearn's reading of the same HILLS: the same kernels, summed on read_hills' default grid (sigma / 5
    # spacing) and interpolated: measured 2.9e-4 kJ/mol at a 19 kJ/mol maximum. (Plain, unstretched
    # Gaussians would be off by 0.2 % of the bias, 0.04 kJ/mol here.)
    ours = cl.bias.read_hills(export / "HILLS", temperature=300.0).evaluate(s[:, None])
    np.testing.assert_allclose(ours, printed, rtol=0, atol=1e-3)


def test_opes_kernels_and_state_written_by_plumed_give_cvlearn_bias(plumed, alanine, tmp_path):
    cv, s = _one_d_tica(alanine)
    # The export asks for a STATE every 1000 kernels; the driver's 79 need one at the last (step 7900).
    export, _, _ = _export_and_drive(plumed, alanine, cv, tmp_path / "opes", bias="opes", barrier=20.0, pace=100,
                                     sigma=0.2, edit=lambda t: t.replace("STATE_WSTRIDE=100000", "STATE_WSTRIDE=7900"))
    kernels = cl.io.read_colvar(export / "KERNELS")
    assert len(kernels["time"]) == 79
    np.testing.assert_allclose(kernels["cv.node-0"], s[5::5], atol=CV_TOL)
    # A restarted driver continues from the STATE without depositing, printing the bias it holds.
    (export / "STATE").rename(export / "STATE.deposited")
    plumed.driver(export, _restart_without_deposition(export, "OPES_METAD", keep_grid=True), alanine["xtc"])
    printed = cl.io.read_colvar(export / "COLVAR.restart")["opes.bias"]
    assert np.ptp(printed) > 5.0  # kJ/mol
    ours = cl.OPES.from_plumed_state(export / "STATE.deposited", temperature=300.0).evaluate(s[:, None])
    np.testing.assert_allclose(ours, printed, rtol=0, atol=1e-4)
