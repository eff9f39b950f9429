"""Walkers on a molecule: alanine dipeptide in OpenMM (Reference platform), two walkers sharing
well-tempered metadynamics on (phi, psi) through their HILLS.<id> files, on Dask and resumed."""

import json

import numpy as np
import pytest

import cvlearn as cl
from cvlearn.app import AlanineWalkers
from cvlearn.cli import main
from cvlearn.walkers import Walker, run_walker

pytest.importorskip("openmm")
distributed = pytest.importorskip("distributed")


def test_cli_runs_alanine_walkers_that_read_each_others_hills(tmp_path):
    out = tmp_path / "out"
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        code = main(["walkers", "--system", "alanine", "--n-walkers", "2", "--scheduler", client.scheduler.address,
                     "--steps", "400", "--read-stride", "100", "--stride", "50", "--out", str(out), "--no-progress"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["system"] == "alanine" and report["hills_per_walker"] == [4, 4] and report["restarts"] == [0, 0]
    for name in ("HILLS.0", "HILLS.1", "COLVAR.0", "COLVAR.1", "fes.npz"):
        assert (out / name).stat().st_size > 0
    fields, _, rows, _ = cl.io.read_plumed_table(out / "HILLS.1")
    assert fields == ["time", "phi", "psi", "sigma_phi", "sigma_psi", "height", "biasf"] and len(rows) == 4
    # The walkers read hills from each other's files while they ran; how many depends on how their tasks
    # overlapped (a walker that ran before the other started reads none of its hills).
    (own0, other0), (other1, own1) = report["hills_read"]
    assert own0 == own1 == 4 and other0 + other1 > 0
    # A walker rebuilt from the directory holds both walkers' hills: the merged bias of fes.npz.
    demo = AlanineWalkers()
    merged = cl.bias.read_hills(out, grid=demo.grid, temperature=300.0)
    for i in range(2):
        walker = Walker(i, 2, str(out), seed=0, restart=True)
        metad = cl.WellTemperedMetad(demo.cv(), sigma=demo.sigma, height=demo.height, bias_factor=demo.bias_factor,
                                     pace=demo.pace, grid=demo.grid, **walker.metad_kwargs)
        metad.bind(300.0, 0.002)
        assert metad.walker_hill_counts == [4, 4]
        np.testing.assert_allclose(metad.field.values(), merged.field.values(), rtol=0, atol=1e-10)
        metad.close()
    fes = cl.fes.FreeEnergySurface.load(out / "fes.npz")
    np.testing.assert_allclose(fes.F, merged.free_energy().F, rtol=0, atol=1e-10)


def test_alanine_walkers_in_turns_read_each_others_hills_and_end_with_one_bias(tmp_path):
    demo = AlanineWalkers(platform="Reference")
    engines = [demo(Walker(i, 2, str(tmp_path), seed=i, read_stride=100)) for i in range(2)]
    assert all(e.n_walkers == 1 for e in engines)
    for _ in range(4):  # turns of 100 steps: each read sees the other's hills up to its last turn
        for e in engines:
            e.run(100, stride=50)
    metads = [e.biases[0] for e in engines]
    assert [m.walker_hill_counts for m in metads] == [[4, 3], [4, 4]]
    for m in metads:  # a last flush and read: both hold all hills, one bias
        m.flush_hills()
    for m in metads:
        m.read_walkers()
    np.testing.assert_allclose(metads[0].field.values(), metads[1].field.values(), rtol=0, atol=1e-10)
    merged = cl.bias.read_hills(tmp_path, grid=demo.grid)
    np.testing.assert_allclose(metads[0].field.values(), merged.field.values(), rtol=0, atol=1e-10)
    assert np.ptp(merged.field.values()) > 1.0  # kJ/mol: eight hills of 1.2
    for m in metads:
        m.close()


def test_alanine_walker_resumed_from_its_checkpoint_continues_exactly(tmp_path):
    demo = AlanineWalkers(platform="Reference")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    resumed.mkdir()
    report = run_walker(demo, Walker(0, 1, str(straight), seed=7, read_stride=100), n_steps=400, stride=50)
    walker = Walker(0, 1, str(resumed), seed=7, read_stride=100)
    assert run_walker(demo, walker, n_steps=200, stride=50).steps == 200
    again = run_walker(demo, walker, n_steps=400, stride=50)  # from checkpoint.0.npz: OpenMM's own, bit for bit
    assert (again.steps, again.n_hills, again.restarts) == (400, 4, 1)
    assert (resumed / "HILLS.0").read_text() == (straight / "HILLS.0").read_text()
    a, b = cl.io.read_colvar(straight / "COLVAR.0"), cl.io.read_colvar(resumed / "COLVAR.0")
    assert list(a) == ["time", "phi", "psi", "metad.bias", "metad.rct"] and len(a["time"]) == 8
    for name in a:
        np.testing.assert_array_equal(b[name], a[name])
    np.testing.assert_array_equal(again.bias, report.bias)
    with np.load(straight / "checkpoint.0.npz") as x, np.load(resumed / "checkpoint.0.npz") as y:
        np.testing.assert_array_equal(y["positions"], x["positions"])
        np.testing.assert_array_equal(y["velocities"], x["velocities"])
