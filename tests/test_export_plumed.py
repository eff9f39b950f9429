"""PLUMED export: the written actions compute cvlearn's features, the model reproduces the CV in a fresh process."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.data import alanine_dipeptide_pdb
from cvlearn.export import to_plumed

md = pytest.importorskip("mdtraj")


@pytest.fixture(scope="module")
def frames():
    """200 frames of alanine dipeptide: the PDB structure with thermal-size random displacements."""
    ref = md.load(alanine_dipeptide_pdb())
    rng = np.random.default_rng(0)
    xyz = ref.xyz[0][None] + rng.normal(0.0, 0.02, (200, 22, 3)).astype(np.float32)
    return md.Trajectory(xyz, ref.topology)


def _featurizer(top):
    return (cl.features.Distances(top, selection="heavy") | cl.features.Dihedrals(top, "phi psi", sincos=True)
            | cl.features.Contacts(top, pairs=[[4, 14], [6, 16]], r0=0.4, d0=0.05, total=True)
            | cl.features.Contacts(top, pairs=[[1, 18]], r0=0.5) | cl.features.Positions(22, 3, particles=[8]))


def _rational(r, r0, d0, n, m):
    x = np.maximum(r - d0, 0.0) / r0
    return (1 - x**n) / (1 - x**m)


def _interpret(plumed_dat, traj):
    """Evaluate the feature actions of a plumed.dat on mdtraj frames: an independent reading of what PLUMED
    computes (atom numbers from 1, NOPBC), for the subset of actions cvlearn writes."""
    values = {}
    for line in plumed_dat.splitlines():
        m = re.match(r"(\w+): (\w+) (.*)", line)
        if not m:
            continue
        label, action, rest = m.groups()
        kw = dict(re.findall(r"(\w+)=(\{[^}]*\}|\S+)", rest))
        atoms = lambda key, kw=kw: [int(a) - 1 for a in kw[key].split(",")]  # noqa: E731
        if action == "DISTANCE":
            values[label] = md.compute_distances(traj, [atoms("ATOMS")], periodic=False)[:, 0]
        elif action == "TORSION":
            values[label] = md.compute_dihedrals(traj, [atoms("ATOMS")], periodic=False)[:, 0]
        elif action == "CUSTOM":
            fn = {"sin(x)": np.sin, "cos(x)": np.cos}[kw["FUNC"]]
            values[label] = fn(values[kw["ARG"]])
        elif action == "COORDINATION":
            sw = dict(re.findall(r"(\w+)=(\S+)", kw["SWITCH"].strip("{}")))
            r = md.compute_distances(traj, [atoms("GROUPA") + atoms("GROUPB")], periodic=False)[:, 0]
            values[label] = _rational(r.astype(np.float64), float(sw["R_0"]), float(sw["D_0"]), int(sw["NN"]),
                                      int(sw["MM"]))
        elif action == "COMBINE":
            values[label] = sum(values[a] for a in kw["ARG"].split(","))
        elif action == "POSITION":
            for k, axis in enumerate("xyz"):
                values[f"{label}.{axis}"] = traj.xyz[:, atoms("ATOM")[0], k]
        elif action == "PYTORCH_MODEL":
            return np.column_stack([values[a] for a in kw["ARG"].split(",")]).astype(np.float64), kw
    raise AssertionError("no PYTORCH_MODEL line")


@pytest.mark.parametrize("learner", ["tica", "deeptica"])
def test_plumed_export_reproduces_the_cv(tmp_path, frames, learner):
    feat = _featurizer(frames.topology)
    X = feat.transform(frames)
    est = (cl.TICA(lagtime=1, n_components=2) if learner == "tica"
           else cl.DeepTICA(lagtime=1, layers=(16,), n_components=2, max_epochs=3, seed=0))
    cv = est.fit(X).to_module(featurizer=feat)
    out = to_plumed(cv, tmp_path, bias="metad", sigma=[0.1, 0.1], grid=([-5, -5], [5, 5], [200, 200]))
    text = open(out["plumed"]).read()
    features, kw = _interpret(text, frames)
    # PLUMED's actions give cvlearn's features (mdtraj computes in float32: 1e-5).
    np.testing.assert_allclose(features, X, atol=2e-5)
    assert kw["FILE"] == "model.ptc" and len(out["features"]) == feat.n_features
    # The model alone, in a fresh process without cvlearn, on those features, gives the CV.
    np.save(tmp_path / "features.npy", features.astype(np.float32))
    script = textwrap.dedent(f"""
        import numpy as np, torch
        model = torch.jit.load({str(tmp_path / 'model.ptc')!r})
        x = torch.from_numpy(np.load({str(tmp_path / 'features.npy')!r}))
        out = torch.cat([model(x[i:i + 1]) for i in range(len(x))])  # PLUMED sends (1, n) float32
        assert out.dtype == torch.float32
        np.save({str(tmp_path / 'out.npy')!r}, out.detach().numpy())
        one = x[:1].clone().requires_grad_(True)  # PLUMED differentiates each output w.r.t. the input
        (grad,) = torch.autograd.grad(model(one)[0, 0], one)
        np.save({str(tmp_path / 'grad.npy')!r}, grad.numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    expected = cv(torch.as_tensor(frames.xyz, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5 * max(1.0, np.abs(expected).max()))
    xf = torch.as_tensor(features[:1]).requires_grad_(True)
    (grad,) = torch.autograd.grad(cv.model(xf)[0, 0], xf)
    np.testing.assert_allclose(np.load(tmp_path / "grad.npy"), grad.numpy(), atol=1e-4 * max(1.0, grad.abs().max()))
    assert "metad: METAD ARG=cv.node-0,cv.node-1 SIGMA=0.1,0.1" in text
    assert "GRID_BIN=200,200" in text and "PRINT ARG=cv.node-0,cv.node-1,metad.*" in text


def test_opes_and_walkers_lines(tmp_path, frames):
    feat = cl.features.Dihedrals(frames.topology, "phi psi")
    cv = cl.TICA(lagtime=1, n_components=1).fit(feat.transform(frames)).to_module(featurizer=feat)
    text = open(to_plumed(cv, tmp_path, bias="opes", barrier=40.0, walkers=(4, "../shared"))["plumed"]).read()
    assert "opes: OPES_METAD ARG=cv.node-0 PACE=500 BARRIER=40.0 TEMP=300.0" in text
    assert "WALKERS_N=4" in text and "WALKERS_DIR=../shared" in text
    assert "phi_2: TORSION ATOMS=5,7,9,15 NOPBC" in text  # C(ACE) N CA C(ALA), 1-based


def test_unexportable_featurizers_say_why(tmp_path, frames):
    aligned = cl.features.AlignedPositions(frames[0], selection="heavy")
    cv = cl.TICA(lagtime=1, n_components=1).fit(aligned.transform(frames)).to_module(featurizer=aligned)
    with pytest.raises(ValueError, match="FIT_TO_TEMPLATE"):
        to_plumed(cv, tmp_path)
    bare = cl.TICA(lagtime=1, n_components=1).fit(np.random.default_rng(0).normal(size=(50, 3))).to_module()
    with pytest.raises(ValueError, match="no featurizer"):
        to_plumed(bare, tmp_path)
    cv = cl.TICA(lagtime=1, n_components=1).fit(
        cl.features.Dihedrals(frames.topology, "phi psi").transform(frames)).to_module(
        featurizer=cl.features.Dihedrals(frames.topology, "phi psi"))
    with pytest.raises(ValueError, match="needs sigma"):
        to_plumed(cv, tmp_path, bias="metad")


def test_cli_export(tmp_path, frames):
    from cvlearn.cli import main

    feat = cl.features.Distances(frames.topology, selection="heavy")
    cv = cl.TICA(lagtime=1, n_components=1).fit(feat.transform(frames)).to_module(featurizer=feat)
    cl.save(cv, tmp_path / "cv.pt")
    assert main(["export", str(tmp_path / "cv.pt"), "--plumed", "--out", str(tmp_path / "plumed"), "--sigma", "0.1",
                 "--grid=-3,3,300"]) == 0
    text = (tmp_path / "plumed" / "plumed.dat").read_text()
    assert "GRID_MIN=-3.0 GRID_MAX=3.0 GRID_BIN=300" in text and text.count("DISTANCE") == 45
    assert main(["export", str(tmp_path / "cv.pt"), "--out", str(tmp_path / "cv_ts.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "cv_ts.pt"))
    x = torch.as_tensor(frames.xyz[:5], dtype=torch.float64)
    torch.testing.assert_close(scripted(x), cv(x))
