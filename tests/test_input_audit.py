"""The bad-input audit: every mistake in docs/bad_input.md raises one clear error (or warning) naming the fix.

Each case is (id, action(tmp_path), expected exception or warning, regex of the message). The
docs table lists the same ids; a test checks that the two never drift apart. Cases that need a
whole simulation use tiny ones.
"""

import atexit
import contextlib
import functools
import io
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.data import alanine_dipeptide_pdb

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 3))


def _mb_metad(grid=None, **kw):
    mb = cl.systems.MullerBrown()
    cv = cl.TICA(lagtime=1, n_components=1).fit(rng.normal(size=(100, 2))).to_module(
        featurizer=cl.features.Positions.of(mb))
    args = {"sigma": 0.1, "height": 1.0, "bias_factor": 10, "pace": 10, "grid": grid or cl.Grid(-5, 5, 200)}
    args.update(kw)
    return mb, cl.WellTemperedMetad(cv, **args)


def _hills(tmp_path, names=("cv0",)):
    mb, metad = _mb_metad()
    metad.cv.names = list(names)
    metad.names = list(names)
    eng = cl.Langevin(mb, timestep=0.005, friction=5.0, seed=0, bias=metad)
    eng.run(30, stride=10, hills=tmp_path / "HILLS")
    metad.close()
    return tmp_path / "HILLS"


def _grid_escape(tmp_path):
    mb, metad = _mb_metad(grid=cl.Grid(-0.01, 0.01, 10), sigma=0.01)
    cl.Langevin(mb, timestep=0.005, friction=5.0, seed=0, bias=metad).run(100, stride=10)


def _restart_other_cv(tmp_path):
    path = _hills(tmp_path, names=("other",))  # this bias names its CV tic1
    _, metad = _mb_metad(hills=path, restart=True)
    metad.load_hills(path)


def _truncated_colvar(tmp_path):
    path = tmp_path / "COLVAR"
    path.write_text("#! FIELDS time cv\n0.0 1.0\n0.1 2.0 3.0\n")
    cl.io.read_colvar(path)


def _not_a_cv(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    cl.load(path)


def _other_version(tmp_path):
    feat = cl.features.Positions(1, 2)
    cv = cl.TICA(lagtime=1, n_components=1).fit(X[:, :2]).to_module(featurizer=feat)
    path = tmp_path / "cv.pt"
    cl.save(cv, path)
    import cvlearn._version as version  # where cl.load reads the running version

    real = version.__version__
    try:
        version.__version__ = "0.0.1"
        cl.load(path)
    finally:
        version.__version__ = real


def _blow_up(tmp_path):
    cl.Langevin(cl.systems.MullerBrown(), timestep=1.0, friction=1.0, seed=0).run(200, stride=10)


def _openmm_blow_up(tmp_path):
    pytest.importorskip("openmm")
    cl.engine.OpenMM.from_pdb(alanine_dipeptide_pdb(), timestep=0.5, seed=0).run(2000, stride=10)


def _top_mismatch(tmp_path):
    md = pytest.importorskip("mdtraj")
    traj = md.load(alanine_dipeptide_pdb())
    traj.save(tmp_path / "a.dcd")
    cl.load_trajectories(tmp_path / "a.dcd", top=traj.atom_slice(range(10)).topology)


def _missing_top(tmp_path):
    md = pytest.importorskip("mdtraj")
    md.load(alanine_dipeptide_pdb()).save(tmp_path / "a.xtc")
    cl.load_trajectories(tmp_path / "a.xtc")


def _empty_selection(tmp_path):
    cl.features.Distances(alanine_dipeptide_pdb(), selection="name XYZ")


def _wrong_atom_count(tmp_path):
    feat = cl.features.Distances(alanine_dipeptide_pdb(), selection="heavy")
    feat(torch.zeros(1, 20, 3))


def _unreadable(tmp_path):
    path = tmp_path / "broken.xtc"
    path.write_bytes(b"not an xtc file at all" * 10)
    cl.load_trajectories(path, top=alanine_dipeptide_pdb())


def _nan_in_chunk(tmp_path):
    bad = X.copy()
    bad[123, 2] = np.nan
    cl.PCA().fit([[bad[:100], bad[100:]]])  # one trajectory in two chunks


def _generator_read_twice(tmp_path):
    data = iter([X])
    cl.TICA(lagtime=1).fit(data).transform(data)


def _scheduler_unreachable(tmp_path):
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a free port where nothing listens
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    cl.walkers.connect(address, timeout=1)


def _walker_id_in_use(tmp_path):
    def walker():
        return cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
                                    grid=cl.Grid(-2, 2, 200), temperature=300.0, walkers_dir=tmp_path, walker_id=1,
                                    n_walkers=2)

    first = walker()
    try:
        walker()
    finally:
        first.close()


def _tiny_autoencoder(n_features=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        return cl.AutoEncoder(layers=[4], n_components=1, max_epochs=2, seed=0).fit(
            rng.normal(size=(60, n_features)))


def _generate_wrong_topology(tmp_path):
    _tiny_autoencoder(6).generate([[0.0]], alanine_dipeptide_pdb())  # decodes 2 atoms; the topology has 22


def _nan_decoded(tmp_path):
    ae = _tiny_autoencoder(6)
    with torch.no_grad():
        ae.extra_[0][-1].bias[0] = float("nan")
    ae.generate([[0.0]], alanine_dipeptide_pdb(), atoms=[0, 1])


def _two_particle_system(nonbonded_method):
    import openmm

    system = openmm.System()
    for _ in range(2):
        system.addParticle(12.0)
    nb = openmm.NonbondedForce()
    for _ in range(2):
        nb.addParticle(0.1, 0.3, 0.5)
    nb.setNonbondedMethod(nonbonded_method)
    system.addForce(nb)
    return system


def _unsupported_force(tmp_path):
    import openmm

    system = _two_particle_system(openmm.NonbondedForce.NoCutoff)
    system.addForce(openmm.CustomBondForce("0.5*k*r^2"))
    cl.physics.ForceFieldEnergy(system)


def _periodic_system(tmp_path):
    import openmm

    system = _two_particle_system(openmm.NonbondedForce.PME)
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(3, 0, 0), openmm.Vec3(0, 3, 0), openmm.Vec3(0, 0, 3))
    cl.physics.ForceFieldEnergy(system)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


_COLVAR = "#! FIELDS time phi metad.bias metad.rct\n"
_PLUMED_DATA = Path(__file__).parent / "data" / "plumed"


def _colvar_without_phi(tmp_path):
    path = _write(tmp_path, "COLVAR", "#! FIELDS time psi metad.bias metad.rct\n0 1 0 0\n1 2 0 0\n")
    cl.fes.from_colvar(path, ["phi"])


def _colvar_nan_row(tmp_path):
    cl.fes.from_colvar(_write(tmp_path, "COLVAR", _COLVAR + "0 1 0 0\n1 nan 0 0\n"), ["phi"])


def _colvar_block_without_phi(tmp_path):
    text = _COLVAR + "0 1 0 0\n#! FIELDS time psi metad.bias metad.rct\n1 2 0 0\n"
    cl.fes.from_colvar(_write(tmp_path, "COLVAR", text), ["phi"])


def _sigma_too_long(tmp_path):
    _mb_metad(sigma=[0.1, 0.2, 0.3])


def _hills_unknown_kernel(tmp_path):
    text = "#! FIELDS time x sigma_x height biasf\n#! SET kerneltype uniform\n0 0.0 0.1 1.0 10\n"
    cl.bias.read_hills(_write(tmp_path, "HILLS", text))


def _hills_bad_width(tmp_path):
    text = "#! FIELDS time x sigma_x height biasf\n0 0.0 0.1 1.0 10\n1 0.2 -0.1 1.0 10\n"
    cl.bias.read_hills(_write(tmp_path, "HILLS", text))


def _opes_kinds_mixed(tmp_path):
    opes = cl.OPES.from_plumed_state(_PLUMED_DATA / "STATE_opes", temperature=300.0)
    opes.load_kernels(_PLUMED_DATA / "KERNELS_explore")


class CommandLineMistake(Exception):
    """What ``cvlearn ...`` printed on stderr when it exited with status 2: one line, no traceback."""


def _cli(*argv):
    from cvlearn.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own exit
            code = exc.code
    text = err.getvalue()
    assert code == 2 and text.count("\n") == 1 and "Traceback" not in text, (code, text)
    raise CommandLineMistake(text.strip())


@functools.cache
def _alanine_run():
    """A folder with a saved TICA CV of alanine dipeptide (cv.pt) and a 20-step `cvlearn bias` run on it (run/)."""
    pytest.importorskip("openmm")
    md = pytest.importorskip("mdtraj")
    from cvlearn.cli import main

    home = Path(tempfile.mkdtemp(prefix="cvlearn-audit-"))
    atexit.register(shutil.rmtree, home, True)
    frames = md.load(alanine_dipeptide_pdb())
    xyz = frames.xyz + rng.normal(scale=0.01, size=(50, *frames.xyz.shape[1:]))
    feat = cl.features.Distances(frames.topology, selection="heavy")
    tica = cl.TICA(lagtime=1, n_components=1).fit(feat.transform(xyz.astype(np.float32)))
    cl.save(tica.to_module(featurizer=feat), home / "cv.pt")
    assert main(["bias", "--cv", str(home / "cv.pt"), "--sigma", "0.1", "--steps", "20", "--stride", "10", "--pace",
                 "10", "--out", str(home / "run"), "--no-progress"]) == 0
    return home


def _resume_bias(tmp_path, *change):
    """`cvlearn bias --resume` on a copy of the 20-step run, with ``change`` to its options."""
    home = _alanine_run()
    shutil.copytree(home / "run", tmp_path / "run")
    shutil.copy(home / "cv.pt", tmp_path / "cv.pt")
    _cli("bias", "--cv", tmp_path / "cv.pt", "--sigma", "0.1", "--steps", "40", "--stride", "10", "--pace", "10",
         "--out", tmp_path / "run", "--no-progress", "--resume", *change)


def _other_cv(tmp_path):
    cv = cl.load(_alanine_run() / "cv.pt")
    cv.names = ["other"]
    cl.save(cv, tmp_path / "other.pt")
    return tmp_path / "other.pt"


def _occupied(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text("{}")
    _cli("simulate", "--steps", "10", "--stride", "10", "--out", tmp_path / "run")


def _learn_over_a_cv(tmp_path):
    (tmp_path / "cv.pt").write_text("an earlier CV")
    _cli("learn", "--traj", "t.xtc", "--top", "t.pdb", "--out", tmp_path / "cv.pt")


def _export_without_grid(tmp_path):
    try:
        _cli("export", _alanine_run() / "cv.pt", "--plumed", "--out", tmp_path / "plumed")
    finally:
        assert not list(tmp_path.iterdir())  # all or nothing: no half-written folder


CASES = [
    ("shape", lambda t: cl.TICA(lagtime=1).fit(rng.normal(size=(10, 2, 2))), ValueError, "must be 2-D"),
    ("dtype", lambda t: cl.PCA().fit(np.array([["a", "b"], ["c", "d"]])), TypeError, "numeric array"),
    ("nan-frame", lambda t: cl.PCA().fit(np.where(np.arange(600).reshape(200, 3) == 52, np.nan, X)), ValueError,
     r"NaN or infinite values in 1 frame\(s\), first at frame 17"),
    ("lag-too-long", lambda t: cl.TICA(lagtime=200).fit(X), ValueError, "Use a shorter lag or longer trajectories"),
    ("zero-variance", lambda t: cl.PCA().fit(np.c_[X, np.full(200, 4.2)]), ValueError,
     r"Feature\(s\) \[3\] are constant"),
    ("feature-count", lambda t: cl.TICA(lagtime=1).fit([X, X[:, :2]]), ValueError, "has 2 features but X\\[0\\] has 3"),
    ("missing-topology", _missing_top, ValueError, "top="),
    ("topology-mismatch", _top_mismatch, ValueError, "22"),
    ("unreadable-file", _unreadable, (ValueError, OSError), "broken.xtc"),
    ("empty-selection", _empty_selection, ValueError, "matches no atom of the 22-atom topology"),
    ("atom-count", _wrong_atom_count, ValueError, "20 atoms"),
    ("grid-escape", _grid_escape, cl.SimulationError, "left the bias grid.*Widen the grid"),
    ("bias-factor", lambda t: _mb_metad(bias_factor=1.0), ValueError, "bias_factor must be > 1"),
    ("negative-height", lambda t: _mb_metad(height=-1.0), ValueError, "height"),
    ("negative-sigma", lambda t: _mb_metad(sigma=-0.1), ValueError, "sigma must be positive"),
    ("hills-other-cv", _restart_other_cv, ValueError, "lacks the columns"),
    ("truncated-colvar", _truncated_colvar, ValueError, "COLVAR"),
    ("not-a-cv-file", _not_a_cv, ValueError, "is not a CV saved by cvlearn.save"),
    ("other-version", _other_version, UserWarning, "was saved by cvlearn"),
    ("blow-up", _blow_up, cl.SimulationError, "blew up at step"),
    ("openmm-blow-up", _openmm_blow_up, cl.SimulationError, "step"),
    # Data read chunk by chunk (lists of chunks, generators, NpyFiles, stream_features) and walkers.
    ("chunk-feature-count", lambda t: cl.TICA(lagtime=1).fit([[X[:100], X[100:, :2]]]), ValueError,
     r"X\[0\] has a chunk of 2 features at frame 100, but the data so far have 3"),
    ("stream-lag-too-long", lambda t: cl.TICA(lagtime=7).fit([[X[:2], X[2:5]], [X[:3], X[3:6]]]), ValueError,
     r"must be an int in \[1, n_frames\)\. Got 7 for trajectories of at most 6 frames"),
    ("nan-in-chunk", _nan_in_chunk, ValueError, r"X\[0\] has NaN or infinite values at frame 123"),
    ("generator-read-twice", _generator_read_twice, ValueError,
     r"X is an iterator that gave no trajectories: .*an earlier call read it"),
    ("no-batch-size", lambda t: cl.AutoEncoder().fit([[X[:100], X[100:]]]), ValueError, r"set batch_size"),
    ("continues-nothing", lambda t: cl.TICA(lagtime=1).partial_fit(X, continues=True), ValueError,
     r"continues=True, but this TICA has no earlier partial_fit call"),
    ("scheduler-unreachable", _scheduler_unreachable, cl.walkers.SchedulerUnreachableError,
     r"No Dask scheduler answered at .* within 1 s"),
    ("walker-id-in-use", _walker_id_in_use, ValueError,
     r"Walker 1 of walkers_dir .* is already running .*its own walker_id in \[0, 2\)"),
    # Generative CVs and the force field in torch.
    ("latent-dimension", lambda t: _tiny_autoencoder().decode([[0.0, 1.0]]), ValueError,
     r"latent points must have shape \(n, 1\) \(this model has 1 latent dimension"),
    ("generate-atom-count", _generate_wrong_topology, ValueError,
     r"decodes 6 features \(2 atoms x 3\), but the topology has 22 atoms.*atoms="),
    ("nan-decoded", _nan_decoded, ValueError, r"NaN or infinite coordinates for point\(s\) \[0\]"),
    ("unsupported-force", _unsupported_force, cl.physics.UnsupportedForceError,
     r"CustomBondForce.*Supported: HarmonicBondForce"),
    ("periodic-system", _periodic_system, cl.physics.UnsupportedForceError, r"periodic boundary conditions"),
    ("colvar-missing-variable", _colvar_without_phi, cl.io.PlumedFileError,
     r"COLVAR .*COLVAR has no column 'phi'; it has \['time', 'psi'"),
    ("colvar-nan-row", _colvar_nan_row, cl.io.PlumedFileError, r"COLVAR, line 3: phi is nan, not a finite number"),
    ("colvar-block-lacks-column", _colvar_block_without_phi, cl.io.PlumedFileError,
     r"COLVAR: the block at line 3 \('#! FIELDS time psi .*has no column 'phi'"),
    ("sigma-too-long", _sigma_too_long, ValueError, r"sigma must be one value or one per CV \(1: \['tic1'\]\)"),
    ("plumed-not-text", lambda t: cl.io.read_colvar(_write(t, "COLVAR", b"#! FIELDS time x\n0 \xff\n")),
     cl.io.PlumedFileError, r"COLVAR, line 2: bytes that are not UTF-8 text"),
    ("plumed-non-numeric", lambda t: cl.io.read_colvar(_write(t, "COLVAR", "#! FIELDS time x\n0 1\n1 abc\n")),
     cl.io.PlumedFileError, r"COLVAR, line 3: column 'x' holds 'abc', not a number"),
    ("plumed-repeated-column", lambda t: cl.io.read_colvar(_write(t, "COLVAR", "#! FIELDS time x x\n0 1 2\n")),
     cl.io.PlumedFileError, r"COLVAR, line 1: the '#! FIELDS' header names \['x'\] twice"),
    ("hills-unknown-kernel", _hills_unknown_kernel, cl.io.PlumedFileError, r"HILLS: the block at line 1 .*kerneltype "
     r"'uniform'; cvlearn reads \['gaussian', 'stretched-gaussian'\]"),
    ("hills-bad-width", _hills_bad_width, cl.io.PlumedFileError, r"HILLS, line 3: a hill whose widths \[-0.1\]"),
    ("opes-kinds-mixed", _opes_kinds_mixed, cl.io.PlumedFileError,
     r"KERNELS_explore was written by OPES_METAD_EXPLORE, this bias is OPES_METAD"),
    # The command line: one line on stderr, exit status 2, checked before any work; runs never lose or mix work.
    ("cli-negative-number", lambda t: _cli("quickstart", "--steps", "-5", "--out", t), CommandLineMistake,
     r"^cvlearn quickstart: argument --steps: must be a positive integer; got '-5' \(see cvlearn quickstart --help\)$"),
    ("cli-iterate-negative", lambda t: _cli("iterate", "--system", "molecule", "--barrier", "-5", "--out", t),
     CommandLineMistake, r"^cvlearn iterate: argument --barrier: must be a positive number; got '-5'"),
    ("cli-not-finite", lambda t: _cli("simulate", "--steps", "100", "--timestep", "nan", "--out", t),
     CommandLineMistake, r"argument --timestep: must be a positive number; got 'nan'"),
    ("cli-stride-over-steps", lambda t: _cli("simulate", "--steps", "100", "--stride", "500", "--out", t),
     CommandLineMistake, r"--stride 500 is larger than --steps 100, so no frame would be saved"),
    ("cli-steps-not-multiple", lambda t: _cli("quickstart", "--steps", "1001", "--out", t), CommandLineMistake,
     r"--steps must be a multiple of 5"),
    ("cli-bias-factor", lambda t: _cli("bias", "--cv", "cv.pt", "--sigma", "0.1", "--steps", "10", "--bias-factor",
                                       "1", "--out", t), CommandLineMistake, r"--bias-factor: must be a number > 1"),
    ("cli-bad-grid", lambda t: _cli("bias", "--cv", "cv.pt", "--sigma", "0.1", "--steps", "10", "--grid=1,0,5",
                                    "--out", t), CommandLineMistake, r"--grid: must be lo,hi,bins with lo < hi"),
    ("cli-missing-file", lambda t: _cli("bias", "--cv", t / "nope.pt", "--sigma", "0.1", "--steps", "10", "--stride",
                                        "10", "--out", t / "run"), CommandLineMistake,
     r"^cvlearn bias: No saved CV at .*nope.pt\.$"),
    ("out-holds-a-run", _occupied, CommandLineMistake,
     r"--out .*run already holds a run \(report.json\): pass --resume to continue it, --force to keep it in "
     r".*run/bck.<n>/ and start anew, or choose another --out"),
    ("out-is-a-file", lambda t: _cli("simulate", "--steps", "10", "--stride", "10", "--out", _write(t, "x", "")),
     CommandLineMistake, r"--out .*x is a file, not a folder"),
    ("learn-over-a-cv", _learn_over_a_cv, CommandLineMistake,
     r"--out .*cv.pt already exists: pass --force to keep it as bck.<n>.cv.pt"),
    ("export-incomplete-bias", _export_without_grid, CommandLineMistake, r"^cvlearn export: .*sigma"),
    ("resume-other-cv", lambda t: _resume_bias(t, "--cv", _other_cv(t)), CommandLineMistake,
     r"--resume would mix two runs in .*--cv: the run has .*cv.pt \(names \['tic1'\].*\), this call "
     r".*other.pt \(names \['other'\]"),
    ("resume-other-settings", lambda t: _resume_bias(t, "--temperature", "310", "--height", "2"), CommandLineMistake,
     r"--height: the run has 1.2, this call 2.0; --temperature: the run has 300.0, this call 310.0"),
    ("resume-fewer-steps", lambda t: _resume_bias(t, "--steps", "10"), CommandLineMistake,
     r"already holds 20 steps, more than --steps 10: pass --steps above 20"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_message(case, tmp_path):
    _, action, expected, match = case
    if isinstance(expected, type) and issubclass(expected, Warning):
        with pytest.warns(expected, match=match):
            action(tmp_path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cl.SamplingWarning)
            with pytest.raises(expected, match=match):
                action(tmp_path)


def test_docs_table_lists_every_case():
    table = (Path(__file__).parents[1] / "docs" / "bad_input.md").read_text()
    documented = set(re.findall(r"^\| `([\w-]+)` \|", table, flags=re.M))
    assert documented == {c[0] for c in CASES}
