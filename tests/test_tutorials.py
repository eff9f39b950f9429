"""The tutorials run end to end (at a tiny size) and their numbers make physical sense."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import cvlearn as cl

pytest.importorskip("openmm")
pytest.importorskip("mdtraj")
pytest.importorskip("matplotlib")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def load(name):
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIALS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def alanine(tmp_path_factory):
    """The alanine dipeptide tutorial, tiny: 40 ps unbiased, 20 + 10 ps of metadynamics (~15 s on 2 cores)."""
    tut = load("04_alanine_dipeptide_from_files")
    out = tmp_path_factory.mktemp("alanine")
    return tut, out, tut.run(out, unbiased_steps=20_000, explore_steps=10_000, steps=5_000, epochs=20)


def test_alanine_writes_every_output(alanine):
    _, out, _ = alanine
    for name in ("COLVAR.explore", "HILLS.explore", "COLVAR.deeptica", "HILLS.deeptica", "deeptica_cv.pt",
                 "fes_phi_psi.npz", "alanine_dipeptide.png"):
        assert (out / name).stat().st_size > 0, name
    # One hill per 1 ps of metadynamics. (The exploration must hold > 10 lag times: DeepTICA cuts it in 10 blocks.)
    for name, n in (("HILLS.explore", 20), ("HILLS.deeptica", 10)):
        rows = [line for line in (out / name).read_text().splitlines() if not line.startswith("#")]
        assert len(rows) == n


def test_alanine_unbiased_run_stays_in_c7eq_c5(alanine):
    # Plain MD at 300 K does not cross to phi > 0 in 40 ps (nor in 1 ns). A flipped dihedral sign
    # convention, a wrong force field or a bad structure would show here.
    _, _, r = alanine
    assert np.all(r["unbiased_phi"] < 0)
    assert np.all(r["unbiased_phi"] > -np.pi)


def test_alanine_free_energy_is_lowest_in_the_sampled_basin(alanine):
    _, out, r = alanine
    fes = cl.fes.FreeEnergySurface.load(out / "fes_phi_psi.npz")
    finite = np.isfinite(fes.F)
    assert finite.sum() >= 5 and np.all(fes.F[finite] >= 0)
    phi, psi = fes.points[np.nanargmin(np.where(finite, fes.F, np.nan))]
    assert phi < 0 and psi > 0  # C7eq (-1.4, 1.2) or C5 (-2.6, 2.8), never the unsampled phi > 0 side
    # Delta F needs both basins: finite exactly when the biased run reached phi > 0, and positive then.
    visited = bool(np.any(r["phi"] > 0))
    assert np.isfinite(r["delta_f"]) == visited
    if visited:
        assert r["delta_f"] > 0


def test_alanine_saved_cv_is_the_biased_cv(alanine):
    _, out, r = alanine
    x = torch.as_tensor(r["traj"].positions[:5, 0])
    with torch.no_grad():
        np.testing.assert_allclose(cl.load(out / "deeptica_cv.pt")(x).numpy(), r["cv"](x).numpy(), rtol=1e-6)
    assert len(r["timescale_ps"]) == 3 and all(np.isfinite(t) and t > 0 for t in r["timescale_ps"])
