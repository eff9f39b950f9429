"""OPES in the fused, compiled steps of cl.Langevin (cvlearn.engine._fused) against the eager steps.

The fast tests share two compiled configurations (Muller-Brown, 2 walkers, float64): OPES on x (one CV)
and OPES on (x, y) with y periodic. The kernel slots' dimension is dynamic, so a growing kernel count
costs no further compilation.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.bias import Fusable
from cvlearn.bias._opes import FUSED_MIN_CAPACITY, _fused_capacity

DATA = Path(__file__).parent / "data" / "plumed"


class _XY(torch.nn.Module):
    """The (x, y) of one 2-D particle, named as the CVs of the PLUMED test files."""

    names = ["phi", "psi"]

    def forward(self, positions):
        return positions[:, 0, :]


def _x():
    return cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0], [0.0]]),
                                          cl.features.Positions(1, 2))


def _opes(**kwargs):
    """OPES on x, deposited every 20 steps: without merging (threshold 0) 2 walkers pass 32 kernels at step 340."""
    args = dict(barrier=30.0, pace=20, sigma=0.1, compression_threshold=0.0) | kwargs
    return cl.OPES(_x(), **args)


def _opes_2d(**kwargs):
    """OPES on (x, y), y periodic with a period the walkers cross, kernels merged within 1 sigma."""
    return cl.OPES(_XY(), barrier=30.0, pace=25, sigma=[0.1, 0.05], periodic=[False, (0.3, 0.7)], **kwargs)


def _engine(compile, bias, seed=0):
    return cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=2, seed=seed, bias=bias,
                       compile=compile)


def _assert_runs_equal(eager, fused, a, b, tmp_path=None):
    assert fused._fused is not None and fused.compile_failure is None  # the compiled path ran
    assert eager._fused is None
    np.testing.assert_array_equal(a.step, b.step)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.bias_energy, a.bias_energy, rtol=1e-10, atol=1e-10)
    ka, kb = eager.biases[0].kernels, fused.biases[0].kernels
    for key in ("center", "sigma", "height"):
        np.testing.assert_allclose(kb[key], ka[key], rtol=1e-10, atol=1e-12)
    oa, ob = eager.biases[0], fused.biases[0]
    assert oa.n_kernels == ob.n_kernels
    assert ob.zed == pytest.approx(oa.zed, rel=1e-10) and ob.neff == pytest.approx(oa.neff, rel=1e-10)
    assert fused._fused.periods == [oa.pace] and fused._fused.depositing == ()  # OPES deposits in Python


def _relative(x, y):
    return float((x - y).abs().max() / y.abs().max())


def test_fused_opes_equals_the_eager_steps_across_a_capacity_boundary(tmp_path):
    runs = {}
    for name in ("eager", "fused"):
        bias = _opes(kernels=tmp_path / f"KERNELS_{name}")
        engine = _engine(name == "fused", bias)
        assert bias.fused_state(torch.float64, "cpu")[0].shape == (FUSED_MIN_CAPACITY, 1)  # empty slots at start
        runs[name] = engine, engine.run(400, stride=50, colvar=tmp_path / f"COLVAR_{name}")
        bias.close()
    (eager, a), (fused, b) = runs["eager"], runs["fused"]
    _assert_runs_equal(eager, fused, a, b)
    n = fused.biases[0].n_kernels
    assert n == 2 * 20 > FUSED_MIN_CAPACITY and fused.biases[0].fused_state(torch.float64, "cpu")[0].shape == (64, 1)
    for walker in (0, 1):  # COLVAR rows (CV, bias, rct, zed, neff, nker) of the blocks' last configurations
        np.testing.assert_allclose(np.loadtxt(tmp_path / f"COLVAR_fused.{walker}"),
                                   np.loadtxt(tmp_path / f"COLVAR_eager.{walker}"), rtol=1e-10, atol=1e-10)
    ka, kb = np.loadtxt(tmp_path / "KERNELS_eager"), np.loadtxt(tmp_path / "KERNELS_fused")
    assert ka.shape == kb.shape == (n, 5)
    np.testing.assert_allclose(kb, ka, rtol=1e-10, atol=1e-12)


def test_fused_opes_seed_reproduces_a_run_across_a_restart(tmp_path):
    whole_bias = _opes()
    whole = _engine(True, whole_bias, seed=3).run(400, stride=50)
    files = dict(state=tmp_path / "STATE", kernels=tmp_path / "KERNELS")
    first_bias = _opes(**files)
    first = _engine(True, first_bias, seed=3)
    part1 = first.run(250, stride=50, checkpoint=tmp_path / "state.npz")  # ends between two depositions
    first_bias.close()
    again_bias = _opes(**files, restart=True)
    again = _engine(True, again_bias, seed=42)
    again.load_checkpoint(tmp_path / "state.npz")
    part2 = again.run(150, stride=50)
    np.testing.assert_array_equal(cl.Trajectory.concatenate([part1, part2]).positions, whole.positions)
    for key in ("center", "sigma", "height"):
        np.testing.assert_array_equal(again_bias.kernels[key], whole_bias.kernels[key])
    assert again.compile_failure is None and len(np.loadtxt(tmp_path / "KERNELS")) == whole_bias.n_kernels


def test_fused_opes_on_two_cvs_one_periodic_with_merging():
    eager, fused = _engine(False, _opes_2d()), _engine(True, _opes_2d())
    a, b = eager.run(300, stride=50), fused.run(300, stride=50)
    _assert_runs_equal(eager, fused, a, b)
    opes = fused.biases[0]
    assert opes.n_kernels < 2 * 12  # merged
    s = opes.cv_values(fused.positions)
    assert bool(((s[:, 1] >= 0.3) & (s[:, 1] < 0.7)).all())  # wrapped into the period


def test_fused_adaptive_sigma_samples_the_cv_every_pace_steps(tmp_path):
    """Blocks end at frames too; the fused steps measure the adaptive sigma only at the multiples of pace
    (as a molecular engine does), so the COLVAR stride does not change the run: the kernels are those of an
    OPES that sees the CV of every 20th step."""
    biases = [_opes(sigma="adaptive", adaptive_sigma_stride=100, compression_threshold=1.0) for _ in range(3)]
    a = _engine(True, biases[0]).run(300, stride=20, colvar=tmp_path / "COLVAR")
    b = _engine(True, biases[1]).run(300, stride=30)
    np.testing.assert_array_equal(a.positions[2::3], b.positions[1::2])  # steps 60, 120, ..., 300
    assert biases[0].n_kernels > 0 and biases[0].n_kernels == biases[1].n_kernels
    reference = biases[2]  # driven as the OpenMM engine drives it: the CV of every pace-th step, then update
    reference.bind(cl.systems.MullerBrown().temperature, 0.005)
    for w in (0, 1):
        assert np.loadtxt(tmp_path / f"COLVAR.{w}").shape[0] == 15
    rows = [np.loadtxt(tmp_path / f"COLVAR.{w}") for w in (0, 1)]
    for k in range(15):
        reference.value_and_gradient(np.array([rows[0][k, 1], rows[1][k, 1]])[:, None])
        reference.update(20 * (k + 1), None)
    for key in ("center", "sigma", "height"):  # COLVAR holds the CV exactly; the weights are equal to round-off
        np.testing.assert_allclose(reference.kernels[key], biases[0].kernels[key], rtol=1e-10)


def test_fused_forces_equal_the_energy_path():
    """Bias and force of fused_forces (uncompiled) against energy() and autograd, to 1e-12 relative in float64:
    OPES_METAD_EXPLORE read from PLUMED's state (two periodic CVs), and three CVs of mixed periodicity."""
    explore = cl.OPES.from_plumed_state(DATA / "STATE_explore", cv=_XY(), temperature=300.0)
    three = cl.OPES(cl.features.Positions(1, 3), barrier=20.0, pace=10, sigma=[0.1, 0.2, 0.3], temperature=300.0,
                    periodic=[False, True, (0.0, 2.0)])
    rng = np.random.default_rng(0)
    for k in range(30):
        s = rng.uniform(-1.0, 1.0, size=(4, 3))
        three.deposit(s, three.evaluate(s), k)
    assert type(explore).__name__ == "_OPESExplore" and isinstance(explore, Fusable)
    for opes, dims, kernels in ((explore, 2, explore.n_kernels), (three, 3, three.n_kernels)):
        assert kernels > 10 and _fused_capacity(kernels) > kernels  # padded slots take part
        x = torch.tensor(rng.uniform(-4.0, 4.0, size=(200, 1, dims)))  # beyond the periods too
        xg = x.clone().requires_grad_(True)
        e = opes.energy(xg)
        (grad,) = torch.autograd.grad(e.sum(), xg)
        v, force, s, inside = opes.fused_forces(x, opes.fused_state(x.dtype, x.device))
        assert _relative(v, e.detach()) < 1e-12 and _relative(force, -grad) < 1e-12
        assert torch.equal(s, opes.cv_values(x)) and bool(inside.all())
        assert torch.isfinite(v).all() and torch.isfinite(force).all()


def test_fused_capacity_doubles():
    assert [_fused_capacity(n) for n in (0, 1, 32, 33, 64, 65, 1000)] == [32, 32, 32, 64, 64, 128, 1024]


@pytest.mark.slow
def test_fused_opes_three_cvs_float32_and_explore_compiled():
    """Three CVs of (x, y) (two periodic) with merging, to 1e-10 in float64; OPES on x in float32 (to
    float32 round-off); and OPES_METAD_EXPLORE's fused_forces compiled as the engine compiles it (whole graph)."""
    explore = cl.OPES.from_plumed_state(DATA / "STATE_explore", cv=_XY(), temperature=300.0)
    x = torch.tensor(np.random.default_rng(1).uniform(-4.0, 4.0, size=(50, 1, 2)))
    v, force, _, _ = torch.compile(explore.fused_forces, fullgraph=True)(x, explore.fused_state(x.dtype, x.device))
    xg = x.clone().requires_grad_(True)
    e = explore.energy(xg)
    (grad,) = torch.autograd.grad(e.sum(), xg)
    assert _relative(v, e.detach()) < 1e-12 and _relative(force, -grad) < 1e-12

    cv = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0, 0.0], [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]),
                                        cl.features.Positions(1, 2))

    def three():
        return cl.OPES(cv, barrier=30.0, pace=25, sigma=[0.1, 0.1, 0.1], periodic=[False, (0.0, 0.8), (-0.5, 0.5)])

    eager, fused = _engine(False, three()), _engine(True, three())
    _assert_runs_equal(eager, fused, eager.run(300, stride=50), fused.run(300, stride=50))

    def single(compile):
        return cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=2, seed=0, bias=_opes(),
                           dtype=torch.float32, compile=compile)

    eager, fused = single(False), single(True)
    a, b = eager.run(200, stride=50), fused.run(200, stride=50)
    assert fused.compile_failure is None
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-4)
