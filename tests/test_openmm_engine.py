"""OpenMM engine: bias forces, files, reproducibility, restarts and failures on alanine dipeptide."""

import warnings

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.data import alanine_dipeptide_pdb
from cvlearn.learners import CollectiveVariable, LinearCV
from cvlearn.learners._neural import NeuralCV

openmm = pytest.importorskip("openmm")

HEAVY = [1, 4, 5, 6, 8, 10, 14, 15, 16, 18]


def neural_cv(seed=0):
    torch.manual_seed(seed)
    net = NeuralCV(3 * len(HEAVY), [16, 8], 1).double()  # float64: finite differences resolve the force
    for p in net.parameters():
        p.data.normal_(0.0, 0.3)
    return CollectiveVariable(net, cl.features.Positions(22, 3, particles=HEAVY))


def metad(cv, pace=100):
    return cl.WellTemperedMetad(cv, sigma=0.05, height=1.0, bias_factor=8, pace=pace, grid=cl.Grid(-20, 20, 4000),
                                outside="wall")


def engine(bias=None, **kw):
    kw.setdefault("seed", 1)
    return cl.engine.OpenMM.from_pdb(alanine_dipeptide_pdb(), bias=bias, minimize=True, **kw)


@pytest.mark.parametrize("lean", [True, False])
def test_bias_force_is_minus_gradient_of_bias_energy(lean):
    eng = engine(metad(neural_cv()), lean=lean)
    assert (eng._groups[0].lean is not None) == lean
    eng.run(1000, stride=500)  # 10 hills: a bias with structure
    x = eng.positions
    forces = eng.context.getState(getForces=True, groups={cl.engine._openmm.BIAS_GROUP}).getForces(asNumpy=True)
    forces = forces._value
    h, num = 1e-5, np.zeros((len(HEAVY), 3))
    for a, i in enumerate(HEAVY):
        for d in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, d] += h
            xm[i, d] -= h
            num[a, d] = -(eng.bias_energy(xp) - eng.bias_energy(xm)) / (2 * h)
    # Central differences with h = 1e-5 nm: truncation ~h^2 |V'''| and round-off ~1e-16 V / h, both < 1e-7.
    assert np.abs(num).max() > 0.1
    np.testing.assert_allclose(forces[HEAVY], num, atol=1e-6)
    hydrogens = [i for i in range(22) if i not in HEAVY]
    assert np.all(forces[hydrogens] == 0.0)


def test_lean_and_autograd_runs_agree():
    # The two force paths differ only by float round-off, so short runs stay together to ~1e-8 nm.
    runs = [engine(metad(neural_cv()), lean=lean).run(600, stride=200) for lean in (True, False)]
    np.testing.assert_allclose(runs[0].positions, runs[1].positions, atol=1e-7)
    np.testing.assert_allclose(runs[0].bias_energy, runs[1].bias_energy, atol=1e-6)


def test_same_seed_same_run_and_colvar_hills(tmp_path):
    a = engine(metad(neural_cv())).run(400, stride=100, colvar=tmp_path / "COLVAR", hills=tmp_path / "HILLS")
    b = engine(metad(neural_cv())).run(400, stride=100)
    c = engine(metad(neural_cv()), seed=2).run(400, stride=100)
    assert a.positions.shape == (4, 1, 22, 3)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert np.abs(a.positions - c.positions).max() > 1e-3
    col = cl.io.read_colvar(tmp_path / "COLVAR")
    assert list(col)[:2] == ["time", "cv0"]
    np.testing.assert_allclose(col["time"], [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(col["metad.bias"], a.bias_energy[:, 0], rtol=1e-9)
    fields, _, rows, _ = cl.io.read_plumed_table(tmp_path / "HILLS")
    assert fields[:2] == ["time", "cv0"] and len(rows) == 4


def test_checkpoint_restart_continues_exactly(tmp_path):
    straight = engine(metad(neural_cv())).run(800, stride=200)
    first = engine(metad(neural_cv()))
    first.run(400, stride=200, hills=tmp_path / "HILLS", checkpoint=tmp_path / "state.npz")
    second = engine(metad(neural_cv())).load_checkpoint(tmp_path / "state.npz")
    tail = second.run(400, stride=200, hills=tmp_path / "HILLS", restart=True)
    assert second.step == 800
    np.testing.assert_allclose(tail.positions, straight.positions[2:], atol=1e-12)
    np.testing.assert_allclose(tail.bias_energy, straight.bias_energy[2:], atol=1e-9)


def test_multiple_time_step_bias_acts_in_impulses():
    eng = engine(metad(neural_cv()), bias_interval=2)
    traj = eng.run(400, stride=100)
    assert eng.step == 400 and traj.n_frames == 4
    single = engine(metad(neural_cv()))
    single.run(400, stride=100)
    single.context.setPositions(eng.positions)
    single.biases[0].field.data.copy_(eng.biases[0].field.data)  # same bias, same configuration
    group = {cl.engine._openmm.BIAS_GROUP}

    def bias_force(e, step):
        e.context.setStepCount(step)
        return e.context.getState(getForces=True, groups=group).getForces(asNumpy=True)._value

    reference = bias_force(single, 401)
    assert np.abs(reference).max() > 0.1
    np.testing.assert_allclose(bias_force(eng, 402), 2 * reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(bias_force(eng, 403), 0.0)
    with pytest.raises(ValueError, match="multiple of bias_interval"):
        eng.run(300, stride=101)
    with pytest.raises(ValueError, match="multiple of bias_interval"):
        engine(metad(neural_cv(), pace=101), bias_interval=2).run(202, stride=2)


def test_cv_leaving_the_grid_stops_with_the_frames_so_far():
    cv = neural_cv()
    eng = engine(cl.WellTemperedMetad(cv, sigma=0.05, height=1.0, bias_factor=8, pace=100,
                                      grid=cl.Grid(-0.001, 0.001, 10)))
    with pytest.raises(cl.SimulationError, match="left the bias grid"):
        eng.run(200, stride=100)


def test_blow_up_is_reported():
    eng = engine(timestep=0.5)  # 500 fs: the molecule explodes within a few steps
    with pytest.raises(cl.SimulationError, match="step"):
        eng.run(2000, stride=10)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((21, 3)), r"\(22, 3\)"),
    (np.full((22, 3), np.nan), "NaN"),
])
def test_bad_positions(bad, match):
    system = engine().system
    with pytest.raises(ValueError, match=match):
        cl.engine.OpenMM(system, bad)


def test_from_pdb_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No PDB"):
        cl.engine.OpenMM.from_pdb(tmp_path / "missing.pdb")
    with pytest.raises(ValueError, match="force field"):
        cl.engine.OpenMM.from_pdb(alanine_dipeptide_pdb(), forcefield="no-such-ff.xml")


def _distance_cv(pairs):
    import mdtraj

    top = mdtraj.load_topology(alanine_dipeptide_pdb())
    return CollectiveVariable(LinearCV(np.zeros(1), np.ones((1, 1))), cl.features.Distances(top, pairs=pairs))


def test_thermostat_holds_temperature_and_warns_when_the_bias_is_too_rough():
    eng = engine()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cl.SamplingWarning)
        traj = eng.run(4000, stride=20)
    assert traj.n_frames == 200
    # A bias oscillating with a 3 pm period along a bond: the force changes within a few steps.
    grid = cl.Grid(0.0, 1.0, 4000)
    rough = cl.bias.StaticBias.from_grid(_distance_cv([[4, 14]]), grid, 0.5 * np.sin(2 * np.pi * grid.axes[0] / 0.003),
                                         outside="wall")
    with pytest.warns(cl.SamplingWarning, match="kinetic temperature averaged .* not 300 K"):
        engine(rough, seed=0).run(4000, stride=20)


@pytest.mark.parametrize("bias_interval", [1, 2])
def test_restraint_on_a_distance_holds_it(bias_interval):
    # Harmonic restraint (kappa = 2e4 kJ/mol/nm^2) on the distance between the two terminal methyl carbons.
    # Unbiased, it is 0.65 +- 0.068 nm (measured): an effective stiffness k = kT / var = 545 kJ/mol/nm^2.
    # Restrained at 0.55 nm, linear response puts the mean at (k 0.65 + kappa 0.55) / (k + kappa) = 0.553 nm
    # and the spread at sqrt(kT / (k + kappa)) = 0.011 nm; 200 correlated frames give the mean to ~0.002 nm.
    # Applied in impulses every 2 steps (4 fs), the restraint must hold the same distribution.
    cv = _distance_cv([[1, 18]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", cl.SamplingWarning)  # the start-up heating has gone by mid-run
        traj = engine(cl.bias.HarmonicRestraint(cv, at=0.55, kappa=2e4), bias_interval=bias_interval).run(
            4000, stride=20)
    d = np.linalg.norm(traj.positions[:, 0, 18] - traj.positions[:, 0, 1], axis=-1)
    assert abs(d.mean() - 0.553) < 0.006
    assert 0.007 < d.std() < 0.016


def _finite_difference_forces(eng, atoms, h=1e-5):
    x = eng.positions
    num = np.zeros((len(atoms), 3))
    for a, i in enumerate(atoms):
        for d in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, d] += h
            xm[i, d] -= h
            num[a, d] = -(eng.bias_energy(xp) - eng.bias_energy(xm)) / (2 * h)
    return num


@pytest.mark.parametrize("kind", ["distances", "phi"])
def test_lean_force_on_the_cv_atoms_only(kind):
    # The PythonForce hands the callback the CV's atoms only; the lean CV reads those rows directly
    # (Deep-TICA-like network on heavy-atom distances; phi in scalar arithmetic on a periodic grid).
    import mdtraj

    top = mdtraj.load_topology(alanine_dipeptide_pdb())
    if kind == "distances":
        feat = cl.features.Distances(top, selection="heavy")
        torch.manual_seed(3)
        net = NeuralCV(45, [32, 16], 1, head=True).double()
        for p in net.parameters():
            p.data.normal_(0.0, 0.3)
        net.standardize.mean.fill_(0.3)
        net.standardize.std.fill_(0.1)
        bias = metad(CollectiveVariable(net, feat))
    else:
        feat = cl.features.Dihedrals(top, "phi")
        bias = cl.WellTemperedMetad(feat, sigma=0.3, height=2.0, bias_factor=8, pace=100,
                                    grid=cl.Grid(-np.pi, np.pi, 180, periodic=True))
    eng = engine(bias)
    atoms = feat.atoms.numpy()
    assert eng._groups[0].on_atoms and np.array_equal(eng._bias_atoms, atoms)
    eng.run(1000, stride=500)
    forces = eng.context.getState(getForces=True, groups={cl.engine._openmm.BIAS_GROUP}).getForces(asNumpy=True)._value
    num = _finite_difference_forces(eng, atoms)
    assert np.abs(num).max() > 0.1
    np.testing.assert_allclose(forces[atoms], num, atol=1e-6)
    others = np.setdiff1d(np.arange(22), atoms)
    assert np.all(forces[others] == 0.0)


class _MetadArrayPath(cl.WellTemperedMetad):
    """A subclass whose value_and_gradient would record more state: it turns the float path off, explicitly."""

    point_value_and_gradient = None

    def value_and_gradient(self, s):
        return super().value_and_gradient(s)


def test_float_path_only_where_the_bias_offers_it():
    cv = neural_cv()
    plain = _MetadArrayPath(cv, sigma=0.05, height=1.0, bias_factor=8, pace=100, grid=cl.Grid(-20, 20, 4000),
                            outside="wall")
    assert isinstance(plain, cl.bias.CVBias) and not isinstance(plain, cl.bias.PointEvaluable)
    point = metad(cv)  # WellTemperedMetad records c(t) on both paths
    assert isinstance(point, cl.bias.PointEvaluable)
    assert isinstance(cl.bias.HarmonicRestraint(cv, at=0.0, kappa=1.0), cl.bias.PointEvaluable)
    # The two paths give the same run, forces and COLVAR rows.
    runs = []
    for bias in (plain, point):
        eng = engine(bias)
        assert (eng._groups[0].points is None) == (bias is plain)
        runs.append((eng.run(600, stride=200), bias.colvar()))
    np.testing.assert_allclose(runs[0][0].positions, runs[1][0].positions, atol=1e-9)
    np.testing.assert_allclose(runs[0][0].bias_energy, runs[1][0].bias_energy, rtol=1e-9)
    for name in runs[0][1]:
        np.testing.assert_allclose(runs[0][1][name].numpy(), runs[1][1][name].numpy(), rtol=1e-9)


def test_two_cvs_on_different_atoms():
    # Two bias groups (metad on phi, a restraint on a distance): each lean CV reads its rows of the
    # union of their atoms; the forces add up there and are -grad of the total bias.
    import mdtraj

    top = mdtraj.load_topology(alanine_dipeptide_pdb())
    phi = cl.features.Dihedrals(top, "phi")
    dist = _distance_cv([[1, 18]])
    meta = cl.WellTemperedMetad(phi, sigma=0.3, height=2.0, bias_factor=8, pace=100,
                                grid=cl.Grid(-np.pi, np.pi, 180, periodic=True))
    eng = engine([meta, cl.bias.HarmonicRestraint(dist, at=0.6, kappa=500.0)])
    assert len(eng._groups) == 2 and all(g.on_atoms for g in eng._groups)
    atoms = np.union1d(phi.atoms.numpy(), [1, 18])
    np.testing.assert_array_equal(eng._bias_atoms, atoms)
    eng.run(600, stride=200)
    forces = eng.context.getState(getForces=True, groups={cl.engine._openmm.BIAS_GROUP}).getForces(asNumpy=True)._value
    num = _finite_difference_forces(eng, atoms)
    np.testing.assert_allclose(forces[atoms], num, atol=1e-5)
    assert np.abs(num[atoms == 18]).max() > 0.1


def test_both_engines_hand_callbacks_the_same_frame():
    frames = {}
    langevin = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, n_walkers=2, seed=0)
    langevin.run(20, stride=10, callback=lambda f: frames.setdefault("Langevin", f))
    engine(cl.bias.HarmonicRestraint(neural_cv(), at=0.0, kappa=1.0)).run(
        20, stride=10, callback=lambda f: frames.setdefault("OpenMM", f))
    for name, shape, dt in (("Langevin", (2, 1, 2), 0.005), ("OpenMM", (1, 22, 3), 0.002)):
        frame = frames[name]
        assert type(frame) is cl.engine.Frame, name
        assert frame.step == 10 and frame.time == pytest.approx(10 * dt)
        assert tuple(frame.positions.shape) == shape  # (walkers, particles, dims) nm
        assert tuple(frame.potential_energy.shape) == tuple(frame.bias_energy.shape) == shape[:1]
    assert frames["OpenMM"].bias_energy[0] > 0.0


def test_updates_need_a_pace_and_walkers_read_at_its_multiples(tmp_path):
    class NoPace:
        cv = neural_cv()

        def energy(self, positions):
            return 0.0 * positions.sum((1, 2))

        def update(self, step, positions):
            pass

    with pytest.raises(TypeError, match="NoPace has update\\(\\) but no pace"):
        engine(NoPace())
    shared = cl.WellTemperedMetad(neural_cv(), sigma=0.05, height=1.0, bias_factor=8, pace=100,
                                  grid=cl.Grid(-20, 20, 4000), outside="wall", walkers_dir=tmp_path, walker_id=0,
                                  n_walkers=2, read_stride=150)
    with pytest.raises(ValueError, match=r"read_stride \(150\) must be a multiple of the bias pace \(100\)"):
        engine(shared).run(100, stride=50)
    shared.close()
