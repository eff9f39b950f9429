"""cvlearn's HILLS, COLVAR, KERNELS and STATE files, from a real cvlearn run, read by a real PLUMED.

cvlearn's OpenMM engine biases alanine dipeptide's phi (metadynamics, then OPES) and writes its files;
PLUMED 2.11-dev reads them (``plumed sum_hills``, a RESTART of ``plumed driver``, READ) and prints the
numbers cvlearn holds. Skipped, with the reason, where no PLUMED is found (../shared/plumed beside the
repository, or CVLEARN_PLUMED=/path/to/plumed).
"""

import numpy as np
import pytest
import torch
from plumed_real import STRIDE, alanine_metad_run, copy, find_plumed, plumed_metad_bias

import cvlearn as cl

pytest.importorskip("openmm")  # the runs are cvlearn's OpenMM engine
pytestmark = pytest.mark.openmm

PHI = "phi: TORSION ATOMS=5,7,9,15"  # cvlearn's Dihedrals(top, "phi") on alanine dipeptide, atoms from 1
GAMMA = 10.0  # the metadynamics run's bias factor (plumed_real.alanine_metad_run)


@pytest.fixture(scope="module")
def plumed():
    return find_plumed()


@pytest.fixture(scope="module")
def alanine(tmp_path_factory):
    """cvlearn's metadynamics on phi: 400 frames, 79 hills, HILLS and COLVAR written by cvlearn (~5 s)."""
    return alanine_metad_run(tmp_path_factory.mktemp("alanine_files"))


def _phi(alanine):
    with torch.no_grad():
        return alanine["phi"](alanine["positions"]).numpy()[:, 0]


def test_plumed_sum_hills_reads_cvlearn_hills(plumed, alanine, tmp_path):
    hills = copy(alanine["dir"] / "HILLS", tmp_path / "HILLS")
    plumed.run(["sum_hills", "--hills", "HILLS", "--outfile", "fes.dat", "--bin", "360"], cwd=tmp_path)
    fes = cl.io.read_colvar(tmp_path / "fes.dat")
    s, f_plumed = fes["phi"], fes["file.free"]
    assert len(s) >= 360 and s.min() == pytest.approx(-np.pi) and np.ptp(f_plumed) > 10.0  # kJ/mol
    # sum_hills prints -(sum of the file's heights x kernels) = -gamma / (gamma - 1) V(s), unshifted.
    # cvlearn's HILLS say "kerneltype gaussian": plain Gaussians, which cvlearn sums in full and sum_hills
    # cuts where each hill's support on its grid ends (~3.54 sigma, rounded to bins around the hill): the
    # two differ by at most the cut tails, exp(-6.25) x the heights (0.23 kJ/mol here; measured 0.013).
    heights = np.loadtxt(hills, comments="#")[:, 3]
    tails = np.exp(-6.25) * heights.sum()
    ours = -GAMMA / (GAMMA - 1) * cl.bias.read_hills(hills, temperature=300.0).evaluate(s[:, None])
    np.testing.assert_allclose(ours, f_plumed, rtol=0, atol=tails)
    # The bias cvlearn applied during the run (its own grid) is the bias its HILLS file describes.
    live = -GAMMA / (GAMMA - 1) * alanine["metad"].evaluate(s[:, None])
    np.testing.assert_allclose(live, ours, rtol=0, atol=1e-3)


def _restart_from_hills(plumed, alanine, tmp_path, hills):
    n_hills = len(np.loadtxt(hills, comments="#"))
    (tmp_path / "plumed.dat").write_text(
        f"RESTART\n{PHI}\n"
        "metad: METAD ARG=phi SIGMA=0.35 HEIGHT=2.0 BIASFACTOR=10 PACE=100000000 TEMP=300 FILE=HILLS\n"
        "PRINT ARG=phi,metad.bias STRIDE=1 FILE=COLVAR FMT=%.12e\n")
    plumed.driver(tmp_path, tmp_path / "plumed.dat", alanine["xtc"])
    assert len(np.loadtxt(hills, comments="#")) == n_hills  # PLUMED read them all and deposited none
    return cl.io.read_colvar(tmp_path / "COLVAR")


def test_plumed_driver_restarts_from_cvlearn_hills(plumed, alanine, tmp_path):
    # cvlearn's HILLS as written: the period of phi is spelled "-pi" / "pi", which PLUMED's restart requires.
    assert "#! SET min_phi -pi" in (alanine["dir"] / "HILLS").read_text()
    out = _restart_from_hills(plumed, alanine, tmp_path, copy(alanine["dir"] / "HILLS", tmp_path / "HILLS"))
    phi = _phi(alanine)
    np.testing.assert_allclose(out["phi"], phi, rtol=0, atol=1e-6)  # rad; float xtc coordinates, double maths
    assert out["metad.bias"].max() > 5.0
    # PLUMED's METAD restart reads cvlearn's "gaussian" hills as its own stretched Gaussians (one kernel
    # type for METAD), cut at 3.54 sigma and scaled by 1 / (1 - exp(-6.25)); cvlearn sums them plain.
    # The two differ by at most 0.2 % of the bias plus the cut tails, exp(-6.25) x the heights.
    # (Measured: PLUMED = that formula to 2e-11 kJ/mol; cvlearn's plain sum 0.10 kJ/mol off at a 32 kJ/mol
    # maximum: a run continued in PLUMED from cvlearn's HILLS starts from a 0.3 % different bias.)
    rows = np.loadtxt(tmp_path / "HILLS", comments="#")
    stretched = plumed_metad_bias(out["phi"][:, None], rows, GAMMA, period=[2 * np.pi])  # at PLUMED's phi
    np.testing.assert_allclose(out["metad.bias"], stretched, rtol=0, atol=1e-6)
    ours = cl.bias.read_hills(tmp_path / "HILLS", temperature=300.0).evaluate(phi[:, None])
    np.testing.assert_allclose(out["metad.bias"], ours, rtol=0.0025, atol=np.exp(-6.25) * rows[:, 3].sum())


def test_plumed_reads_cvlearn_colvar_and_cvlearn_reads_plumed_colvar(plumed, alanine, tmp_path):
    colvar = alanine["dir"] / "COLVAR"
    ours = cl.io.read_colvar(colvar)
    fields = [f for f in ours if f != "time"]
    assert fields == ["phi", "metad.bias", "metad.rct"] and len(ours["phi"]) == 400
    (tmp_path / "plumed.dat").write_text(
        f"phi: READ FILE={colvar} VALUES=phi IGNORE_TIME\n"
        f"metad: READ FILE={colvar} VALUES=metad.bias,metad.rct IGNORE_TIME\n"
        "PRINT ARG=phi,metad.bias,metad.rct STRIDE=1 FILE=COLVAR.plumed FMT=%.17g\n")
    plumed.driver(tmp_path, tmp_path / "plumed.dat")
    theirs = cl.io.read_colvar(tmp_path / "COLVAR.plumed")
    for name in fields:  # number by number: cvlearn writes 17 digits, PLUMED reads and prints them back
        np.testing.assert_array_equal(theirs[name], ours[name], err_msg=name)
    assert np.ptp(ours["metad.bias"]) > 5.0 and np.ptp(ours["phi"]) > 1.0


@pytest.fixture(scope="module")
def opes_run(alanine, tmp_path_factory):
    """cvlearn's OPES on phi (barrier 20 kJ/mol, a kernel every 100 steps), KERNELS and STATE files (~3 s)."""
    directory = tmp_path_factory.mktemp("opes_files")
    opes = cl.OPES(alanine["phi"], barrier=20.0, pace=100, sigma=0.2, temperature=300.0, periodic=True,
                   kernels=str(directory / "KERNELS"), state=str(directory / "STATE"))
    engine = cl.engine.OpenMM.from_pdb(cl.data.alanine_dipeptide_pdb(), bias=opes, seed=1, temperature=300.0)
    engine.run(200 * STRIDE, stride=STRIDE)
    opes.close()
    return directory, opes


def _opes_restart(plumed, alanine, tmp_path, state):
    line = ("opes: OPES_METAD ARG=phi PACE=100000000 BARRIER=20.0 SIGMA=0.2 TEMP=300.0 FILE=KERNELS.new "
            + (f"STATE_RFILE={state}" if state else "FILE=KERNELS"))
    if not state:
        line = line.replace("FILE=KERNELS.new ", "")
    (tmp_path / "plumed.dat").write_text(
        f"RESTART\n{PHI}\n{line}\nPRINT ARG=phi,opes.* STRIDE=1 FILE=COLVAR FMT=%.12e\n")
    plumed.driver(tmp_path, tmp_path / "plumed.dat", alanine["xtc"])
    return cl.io.read_colvar(tmp_path / "COLVAR")


def test_plumed_restarts_from_cvlearn_opes_state(plumed, alanine, opes_run, tmp_path):
    directory, opes = opes_run
    copy(directory / "STATE", tmp_path / "STATE")
    out = _opes_restart(plumed, alanine, tmp_path, "STATE")
    phi = _phi(alanine)
    ours = opes.evaluate(phi[:, None])
    assert np.ptp(ours) > 5.0 and opes.n_kernels > 3
    np.testing.assert_allclose(out["opes.bias"], ours, rtol=0, atol=1e-4)
    assert out["opes.nker"][0] == opes.n_kernels


def test_plumed_restarts_from_cvlearn_opes_kernels(plumed, alanine, opes_run, tmp_path):
    directory, opes = opes_run
    copy(directory / "KERNELS", tmp_path / "KERNELS")
    out = _opes_restart(plumed, alanine, tmp_path, None)
    # Without a STATE both rebuild the bias from the deposited kernels, merging them again (PLUMED's
    # restart from KERNELS): cvlearn's load_kernels does the same and gives PLUMED's numbers.
    rebuilt = cl.OPES(alanine["phi"], barrier=20.0, pace=100, sigma=0.2, temperature=300.0, periodic=True)
    rebuilt.load_kernels(tmp_path / "KERNELS")
    ours = rebuilt.evaluate(_phi(alanine)[:, None])
    np.testing.assert_allclose(out["opes.bias"], ours, rtol=0, atol=1e-4)
