"""Walkers as Dask tasks on a LocalCluster of worker processes: faults, the CLI, and accuracy."""

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import cvlearn as cl
from cvlearn.app import DemoWalkers
from cvlearn.cli import main

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each: the 2 cores of the test machine."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def dw_engine(walker):
    """One walker of a 1-D double well (10 kJ/mol barrier) with metadynamics on x."""
    metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10.0, pace=20,
                                 grid=cl.Grid(-2.0, 2.0, 200), outside="wall", **walker.metad_kwargs)
    return cl.Langevin(cl.systems.DoubleWell(1, barrier=10.0), n_walkers=1, seed=walker.seed, bias=metad)


def hill_steps(path, timestep=0.005):
    rows = [line.split() for line in open(path) if not line.startswith("#")]
    return np.rint(np.array([float(r[0]) for r in rows]) / timestep).astype(int)


def prefixes_bias(walkers_dir, counts, grid):
    """The bias of the first counts[j] hills of each HILLS.<j> (what a walker that read that much holds)."""
    out = []
    for j, n in enumerate(counts):
        lines = open(os.path.join(walkers_dir, f"HILLS.{j}")).read().splitlines()
        rows = [x for x in lines if not x.startswith("#")][:n]
        path = os.path.join(walkers_dir, f"prefix.{j}")
        with open(path, "w") as fh:
            fh.write("\n".join([x for x in lines if x.startswith("#")] + rows) + "\n")
        out.append(path)
    return cl.bias.read_hills(out, grid=grid).field.values()


def test_killed_worker_reruns_its_walker_without_losing_or_repeating_hills(client, tmp_path):
    n_steps, pace, stride = 1500, 20, 50
    result = {}

    def launch():
        result["run"] = cl.walkers.run(dw_engine, 2, n_steps, tmp_path, client=client, stride=stride,
                                       read_stride=100, progress=False)

    runner = threading.Thread(target=launch)
    runner.start()
    hills0 = tmp_path / "HILLS.0"
    deadline = time.monotonic() + 120
    while not (hills0.exists() and len(hill_steps(hills0)) >= 15):  # walker 0 is at step >= 300 of 1500
        assert time.monotonic() < deadline and runner.is_alive(), "walker 0 never got going"
        time.sleep(0.05)
    pid = int((tmp_path / ".HILLS.0.lock").read_text().split()[1])  # the worker process running walker 0
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    run = result["run"]
    assert run.walkers[0].restarts >= 1  # Dask reran the task; it resumed from its checkpoint
    for j in range(2):
        # Every hill exactly once, and every COLVAR row once: nothing lost, nothing repeated.
        assert hill_steps(tmp_path / f"HILLS.{j}").tolist() == list(range(pace, n_steps + 1, pace))
        times = cl.io.read_colvar(tmp_path / f"COLVAR.{j}")["time"]
        np.testing.assert_allclose(times, np.arange(stride, n_steps + 1, stride) * 0.005)
    for w in run.walkers:  # each walker's bias is the sum of the file prefixes it read
        assert w.hills_read[w.walker_id] == n_steps // pace
        np.testing.assert_allclose(w.bias, prefixes_bias(tmp_path, w.hills_read, w.grid), rtol=0, atol=1e-10)
    # The merged bias is the sum over all files, which is also what a walker restarted from them holds.
    again = dw_engine(cl.walkers.Walker(0, 2, str(tmp_path), seed=0, restart=True)).biases[0]
    assert again.walker_hill_counts == [n_steps // pace] * 2
    np.testing.assert_allclose(run.bias.field.data.numpy(), again.field.data.numpy(), rtol=0, atol=1e-10)
    again.close()


def test_cli_runs_walkers_on_a_given_scheduler(client, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["walkers", "--n-walkers", "2", "--scheduler", client.scheduler.address, "--steps", "400",
                 "--read-stride", "200", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_walkers"] == 2 and report["hills_per_walker"] == [4, 4] and report["restarts"] == [0, 0]
    assert np.isfinite(report["fes_rmse_vs_exact_kT"])
    for name in ("HILLS.0", "HILLS.1", "COLVAR.0", "COLVAR.1", "fes.npz"):
        assert (out / name).stat().st_size > 0
    fes = cl.fes.FreeEnergySurface.load(out / "fes.npz")
    assert np.isfinite(fes.F).all()
    # The progress bar went over all walkers' steps (tqdm writes to stderr).
    assert "2 walkers: 100%" in capsys.readouterr().err
    # A second run in the same directory is refused; with --force it keeps the first one's files.
    again = ["walkers", "--n-walkers", "2", "--scheduler", client.scheduler.address, "--steps", "200",
             "--read-stride", "200", "--out", str(out), "--no-progress"]
    assert main(again) == 2 and "--force" in capsys.readouterr().err
    assert main([*again, "--force"]) == 0
    assert (out / "bck.0" / "HILLS.0").exists() and len(hill_steps(out / "HILLS.0", 0.005)) == 2
    # --resume says where the walkers continue from, and refuses fewer steps than they have run.
    resume = ["walkers", "--n-walkers", "2", "--scheduler", client.scheduler.address, "--read-stride", "200",
              "--out", str(out), "--no-progress", "--resume", "--steps"]
    assert main([*resume, "100"]) == 2 and "fewer than walker" in capsys.readouterr().err
    assert main([*resume, "400"]) == 0
    assert "continue from their checkpoints at steps 200, 200" in capsys.readouterr().out
    assert len(hill_steps(out / "HILLS.0", 0.005)) == 4


@pytest.mark.slow
def test_walkers_in_processes_as_accurate_as_batched_walkers(client, tmp_path):
    """Muller-Brown on a TICA CV: 2 walkers in 2 processes vs 2 walkers batched in one, same total steps.

    Error bar of each F(B) - F(A) along the CV: the spread of the estimate from the bias at 5 times
    over the last 40 % of the run. 2 x 2 x 10^4 steps is short (errors of ~1 kT); benchmarks/walkers_scaling.py
    runs the same comparison longer, with more seeds.
    """
    demo = DemoWalkers("muller-brown", seed=0)
    n, steps = 2, 20000
    procs = cl.walkers.run(demo, n, steps, tmp_path / "procs", client=client, read_stride=500, seed=1,
                           progress=False)
    engine = demo.engine(n_walkers=n, seed=1)
    engine.run(steps, stride=100)
    batched = engine.biases[0]
    kT, at = demo.system().kT(), np.linspace(0.6, 1.0, 5) * steps * engine.timestep
    exact_df = demo.exact_fes(bins=400).delta_f(*demo.basins()).value
    (v1, e1), (v2, e2) = ((d[-1], d.std(ddof=1)) for d in (demo.delta_f(procs.hills, at),
                                                           demo.delta_f(batched.hills, at)))
    print(f"dF exact {exact_df:.2f}; processes {v1:.2f} +- {e1:.2f}; batched {v2:.2f} +- {e2:.2f} kJ/mol")
    assert abs(v1 - v2) < 3 * np.hypot(e1, e2) + 0.25 * kT
    for v, e in ((v1, e1), (v2, e2)):
        assert abs(v - exact_df) < 3 * e + 0.5 * kT
    # The whole free energy along the CV from the bias (merged files vs the batched grid) against the exact one.
    rmse = {"processes": demo.fes_rmse(procs.fes), "batched": demo.fes_rmse(batched.free_energy())}
    print("FES RMSE (kT)", rmse)
    assert max(rmse.values()) < 1.5 and abs(rmse["processes"] - rmse["batched"]) < 1.0
