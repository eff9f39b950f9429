"""Multiple walkers sharing one bias through PLUMED's HILLS.<id> files, in one process (no Dask here)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.app import DemoWalkers
from cvlearn.bias._walkers import HillsTail
from cvlearn.engine import Langevin
from cvlearn.walkers import Walker, run_walker

PLUMED_RT11D = Path(__file__).parent / "data" / "plumed_rt11d"  # PLUMED's regtest files (LGPL, see README)


def dw_metad(**kw):
    args = dict(sigma=0.1, height=1.0, bias_factor=10.0, pace=20, grid=cl.Grid(-2.0, 2.0, 200), outside="wall")
    args.update(kw)
    return cl.WellTemperedMetad(cl.features.Positions(1, 1), **args)


def walker_metad(walkers_dir, walker_id, n_walkers=2, read_stride=40, **kw):
    return dw_metad(walkers_dir=walkers_dir, walker_id=walker_id, n_walkers=n_walkers, read_stride=read_stride, **kw)


def dw_engine(walker):
    """make_engine of a cheap 1-D double well (10 kJ/mol barrier), for run_walker."""
    return Langevin(cl.systems.DoubleWell(1, barrier=10.0), n_walkers=1, seed=walker.seed,
                    bias=dw_metad(**walker.metad_kwargs))


class D1(torch.nn.Module):
    """The CV of PLUMED's regtest files: named d1 (here the x of a 1-D particle)."""

    names = ["d1"]

    def forward(self, x):
        return x[:, 0, :1]


def hill_rows(path):
    return np.array([line.split() for line in open(path) if not line.startswith("#")], dtype=float)


def gaussian_sum(points, rows, gamma):
    """What PLUMED sums from HILLS rows (time, s, sigma, height, biasf): heights times (gamma - 1) / gamma."""
    return (rows[:, 3] * (gamma - 1) / gamma * np.exp(-0.5 * ((points[:, None] - rows[:, 1]) / rows[:, 2]) ** 2)).sum(1)


def test_walkers_in_lockstep_share_one_bias_that_the_files_rebuild(tmp_path):
    metads = [walker_metad(tmp_path, i) for i in range(2)]
    engines = [Langevin(cl.systems.DoubleWell(1, barrier=10.0), n_walkers=1, seed=i, bias=m)
               for i, m in enumerate(metads)]
    for _ in range(5):
        for e in engines:
            e.run(200, stride=100)
    # Each walker's bias is the sum of the file prefixes it has read, to the last bit of float64 sums.
    for m in metads:
        counts = m.walker_hill_counts
        assert counts[metads.index(m)] == 50
        prefix = [str(tmp_path / f"p{j}") for j in range(2)]
        for j in range(2):
            lines = open(tmp_path / f"HILLS.{j}").read().splitlines()
            header = [x for x in lines if x.startswith("#")]
            rows = [x for x in lines if not x.startswith("#")][:counts[j]]
            Path(prefix[j]).write_text("\n".join(header + rows) + "\n")
        rebuilt = cl.bias.read_hills(prefix, grid=m.grid)
        np.testing.assert_allclose(m.field.data.numpy(), rebuilt.field.data.numpy(), rtol=0, atol=1e-10)
    # After a last flush and read every walker holds all hills: the bias of the whole directory.
    for m in metads:
        m.flush_hills()
    for m in metads:
        m.read_walkers()
    merged = cl.bias.read_hills(tmp_path, grid=metads[0].grid, temperature=300.0)
    for m in metads:
        assert m.walker_hill_counts == [50, 50]
        np.testing.assert_allclose(m.field.data.numpy(), merged.field.data.numpy(), rtol=0, atol=1e-10)
    # A walker restarted from the directory rebuilds the same bias from all files, its own included.
    metads[0].close()
    again = walker_metad(tmp_path, 0, restart=True)
    again.bind(300.0, 0.005)
    assert again.walker_hill_counts == [50, 50] and again.n_hills == 100
    np.testing.assert_allclose(again.field.data.numpy(), merged.field.data.numpy(), rtol=0, atol=1e-10)
    # Same columns and header as a single run's HILLS.
    assert open(tmp_path / "HILLS.1").readline() == "#! FIELDS time x0 sigma_x0 height biasf\n"


def test_single_walker_behaviour_unchanged(tmp_path):
    metad = dw_metad(hills=tmp_path / "HILLS")
    Langevin(cl.systems.DoubleWell(1, barrier=10.0), n_walkers=2, seed=0, bias=metad).run(100, stride=50)
    assert metad.walker_files is None and metad.read_stride is None
    assert len(hill_rows(tmp_path / "HILLS")) == 2 * 5  # written at each deposition, not buffered
    assert not list(tmp_path.glob(".HILLS*"))


def test_tail_reads_complete_lines_only(tmp_path):
    path = tmp_path / "HILLS.3"
    tail = HillsTail(path)
    assert tail.read() == []  # that walker has not started yet
    head = "#! FIELDS time x sigma_x height biasf\n#! SET multivariate false\n"
    path.write_text(head + "0.1 0.5 0.1 1.0 10\n0.2 0.6")  # the last line is still being written
    (fields, rows), = tail.read()
    assert fields == ["time", "x", "sigma_x", "height", "biasf"] and rows.tolist() == [[0.1, 0.5, 0.1, 1.0, 10.0]]
    assert tail.offset == len(head) + len("0.1 0.5 0.1 1.0 10\n") and tail.constants == {"multivariate": "false"}
    assert tail.read() == []  # nothing new and complete
    with open(path, "a") as fh:
        fh.write("5 0.1 0.8 10\n")
    (_, rows), = tail.read()
    assert rows.tolist() == [[0.2, 0.65, 0.1, 0.8, 10.0]]
    # A restarted writer repeats its header: later rows follow the new FIELDS.
    with open(path, "a") as fh:
        fh.write("#! FIELDS time x sigma_x height biasf clock\n0.3 0.7 0.1 0.7 10 123\n")
    (fields, rows), = tail.read()
    assert fields[-1] == "clock" and rows.shape == (1, 6)
    path.write_text(head)  # replaced under the readers' feet
    with pytest.raises(ValueError, match="shrank"):
        tail.read()


def test_plumed_walker_files_are_summed_as_plumed_does(tmp_path):
    """PLUMED's own HILLS files (regtest rt11d): one as written, one restarted (two headers)."""
    shutil.copy(PLUMED_RT11D / "HILLS.0", tmp_path / "HILLS.0")
    shutil.copy(PLUMED_RT11D / "HILLS.0.reference", tmp_path / "HILLS.1")
    rows = np.concatenate([hill_rows(tmp_path / f"HILLS.{j}") for j in range(2)])
    assert len(rows) == 12
    bias = cl.bias.read_hills(tmp_path, temperature=300.0)
    assert bias.names == ["d1"] and bias.bias_factor == 5.0
    s = bias.grid.axes[0]
    exact = gaussian_sum(s, rows, 5.0)
    np.testing.assert_allclose(bias.evaluate(s[:, None]), exact, rtol=0, atol=1e-7 * exact.max())
    # A cvlearn walker joining that run (walker 2 of 3) reads the same hills into the same bias.
    walker = cl.WellTemperedMetad(D1(), sigma=0.1, height=1.0, bias_factor=5.0, pace=10, grid=bias.grid,
                                  walkers_dir=tmp_path, walker_id=2, n_walkers=3, restart=True)
    walker.bind(300.0, 0.005)
    assert walker.walker_hill_counts == [4, 8, 0]
    np.testing.assert_allclose(walker.field.data.numpy(), bias.field.data.numpy(), rtol=0, atol=1e-12)
    assert (tmp_path / "HILLS.2").read_text().startswith("#! FIELDS time d1 sigma_d1 height biasf\n")


def test_files_of_other_cvs_are_refused(tmp_path):
    shutil.copy(PLUMED_RT11D / "HILLS.0", tmp_path / "HILLS.0")
    shutil.copy(PLUMED_RT11D / "HILLS.1", tmp_path / "HILLS.1")  # hills on d2, not d1
    with pytest.raises(ValueError, match=r"HILLS\.1 lacks the columns \['d1', 'sigma_d1'\].*same CVs"):
        cl.bias.read_hills(tmp_path)
    cv = D1()
    walker = cl.WellTemperedMetad(cv, sigma=0.1, height=1.0, bias_factor=5.0, pace=10, grid=cl.Grid(0, 3, 300),
                                  walkers_dir=tmp_path, walker_id=2, n_walkers=3)
    walker.bind(300.0, 0.005)
    with pytest.raises(ValueError, match=r"HILLS\.1 lacks the columns \['d1', 'sigma_d1'\].*are \['d1'\]"):
        walker.read_walkers()
    # Same CV, other hill width or bias factor: refused too.
    (tmp_path / "w").mkdir()
    shutil.copy(PLUMED_RT11D / "HILLS.0", tmp_path / "w" / "HILLS.0")
    for kw, match in ((dict(sigma=0.2, bias_factor=5.0), "width"), (dict(sigma=0.1, bias_factor=8.0), "bias factor")):
        m = cl.WellTemperedMetad(cv, height=1.0, pace=10, grid=cl.Grid(0, 3, 300), walkers_dir=tmp_path / "w",
                                 walker_id=1, n_walkers=2, **kw)
        m.bind(300.0, 0.005)
        with pytest.raises(ValueError, match=match):
            m.read_walkers()
        m.close()


def test_bad_walker_setup_gets_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist. Create it"):
        walker_metad(tmp_path / "missing", 0)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        walker_metad(tmp_path / "file", 0)
    unwritable = Path("/proc") if os.geteuid() == 0 else tmp_path / "ro"  # root writes through chmod
    if unwritable != Path("/proc"):
        unwritable.mkdir()
        unwritable.chmod(0o500)
    with pytest.raises(PermissionError, match="not writable"):
        walker_metad(unwritable, 0)
    with pytest.raises(ValueError, match=r"walker_id must be in \[0, n_walkers\) = \[0, 2\); got 2"):
        walker_metad(tmp_path, 2)
    with pytest.raises(ValueError, match="got -1"):
        walker_metad(tmp_path, -1)
    with pytest.raises(ValueError, match="n_walkers must be a positive int"):
        walker_metad(tmp_path, 0, n_walkers=0)
    with pytest.raises(ValueError, match="needs walker_id="):
        walker_metad(tmp_path, None)
    with pytest.raises(ValueError, match="pass walkers_dir= too"):
        walker_metad(None, 0)
    with pytest.raises(ValueError, match="file name prefix"):
        walker_metad(tmp_path, 0, hills=str(tmp_path / "HILLS"))
    with pytest.raises(ValueError, match="read_stride"):
        walker_metad(tmp_path, 0, read_stride=0)
    first = walker_metad(tmp_path, 1)
    with pytest.raises(ValueError, match=r"Walker 1 of walkers_dir .* is already running \(pid \d+ on "):
        walker_metad(tmp_path, 1)
    first.close()
    walker_metad(tmp_path, 1).close()  # the id is free again
    with pytest.raises(ValueError, match="Drop hills= from run"):
        Langevin(cl.systems.DoubleWell(1), bias=walker_metad(tmp_path, 0)).run(10, hills=tmp_path / "HILLS")


def _interrupt(monkeypatch, method, at_call, partial=False):
    """Make ``method`` of WellTemperedMetad die on its ``at_call``-th call (a killed process, in one process)."""
    original, calls = getattr(cl.WellTemperedMetad, method), []

    def dying(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            if partial:  # the flush got half a line out
                with open(self.hills_path, "a") as fh:
                    fh.write(" ".join(f"{v:.17g}" for v in self._pending[0][0])[:20])
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cl.WellTemperedMetad, method, dying)


@pytest.mark.parametrize("where", ["before_flush", "mid_flush", "mid_chunk"])
def test_run_walker_resumes_after_a_crash_without_losing_or_repeating_hills(tmp_path, monkeypatch, where):
    walker = Walker(0, 2, str(tmp_path), seed=3, read_stride=100)
    if where == "mid_chunk":  # between two checkpoints: the hills after the last one never reached the file
        original = Langevin._step_once

        def dying(self, *args):
            if self.step == 530:
                raise KeyboardInterrupt
            return original(self, *args)

        monkeypatch.setattr(Langevin, "_step_once", dying)
    else:  # after the checkpoint at step 400, before (or during) the flush of its hills
        _interrupt(monkeypatch, "flush_hills", at_call=5, partial=where == "mid_flush")
    with pytest.raises(KeyboardInterrupt):
        run_walker(dw_engine, walker, 1000, stride=50)
    monkeypatch.undo()
    report = run_walker(dw_engine, walker, 1000, stride=50)
    assert report.restarts == 1 and report.steps == 1000
    rows = hill_rows(tmp_path / "HILLS.0")
    steps = np.rint(rows[:, 0] / 0.005).astype(int)
    assert steps.tolist() == list(range(20, 1001, 20))  # every hill once, in order
    colvar = cl.io.read_colvar(tmp_path / "COLVAR.0")
    np.testing.assert_allclose(colvar["time"], np.arange(50, 1001, 50) * 0.005)
    rebuilt = cl.bias.read_hills(tmp_path / "HILLS.0", grid=report.grid)
    np.testing.assert_allclose(report.bias, rebuilt.field.values(), rtol=0, atol=1e-10)
    assert report.hills_read == [50, 0]


def test_run_walker_rejects_engines_not_set_up_for_the_walker(tmp_path):
    walker = Walker(1, 2, str(tmp_path), seed=0)
    with pytest.raises(ValueError, match=r"exactly one WellTemperedMetad built with \*\*walker.metad_kwargs"):
        run_walker(lambda w: Langevin(cl.systems.DoubleWell(1), bias=dw_metad()),
                   walker, 10)
    with pytest.raises(ValueError, match="for another walker"):
        run_walker(lambda w: dw_engine(Walker(0, 2, str(tmp_path), 0)), walker, 10)
    with pytest.raises(ValueError, match="n_walkers=1"):
        run_walker(lambda w: Langevin(cl.systems.DoubleWell(1), n_walkers=2, bias=walker_metad(tmp_path, 1)),
                   walker, 10)
    with pytest.raises(ValueError, match="must divide the bias's read_stride"):
        run_walker(dw_engine, walker, 10, stride=30)


def test_unreachable_scheduler_fails_fast(capsys):
    pytest.importorskip("distributed")
    import socket
    import time

    with socket.socket() as s:  # a free port where nothing listens
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    t0 = time.perf_counter()
    with pytest.raises(cl.walkers.SchedulerUnreachableError, match=r"No Dask scheduler answered at .* within 2 s"):
        cl.walkers.connect(address, timeout=2)
    assert time.perf_counter() - t0 < 15
    from cvlearn.cli import main

    # On the command line: one line on stderr, exit 2, no traceback.
    assert main(["walkers", "--n-walkers", "2", "--scheduler", address, "--timeout", "2", "--steps", "100"]) == 2
    assert "No Dask scheduler answered" in capsys.readouterr().err



def test_demo_walkers_learn_the_hidden_coordinate():
    """`cvlearn walkers --system hidden-double-well`: the TICA CV it biases follows the hidden x."""
    import doctest

    import cvlearn.app.walkers_demo as demo_module

    assert doctest.testmod(demo_module).failed == 0
    demo = DemoWalkers("hidden-double-well", explore_steps=1500)
    run = demo.engine(n_walkers=4, seed=2).run(600, stride=20)
    pos = torch.as_tensor(run.positions.reshape(-1, *run.positions.shape[2:]))
    with torch.no_grad():
        s = demo.cv(pos).numpy().ravel()
    x = demo.system().slow_coordinates(run.positions.reshape(-1, *run.positions.shape[2:]))[:, 0]
    assert abs(np.corrcoef(s, x)[0, 1]) > 0.9
