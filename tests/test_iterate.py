"""The learn -> bias -> relearn loop: transition counting, bias sizing, stopping rule, and a short run."""

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.fes import Basin
from cvlearn.fes._surface import DeltaF
from cvlearn.loop import _settled, count_transitions, iterate, metad_for


def test_count_transitions_needs_commitment():
    a, b = Basin(lo=[-2.0], hi=[-1.0]), Basin(lo=[1.0], hi=[2.0])
    # walker 0: A -> gap -> A (no transition) -> gap -> B (1) -> A (2); walker 1: never leaves A.
    w0 = [-1.5, 0.0, -1.5, 0.5, 1.5, 1.2, 0.0, -1.8]
    w1 = [-1.5] * len(w0)
    values = np.array([w0, w1]).T[:, :, None]
    assert count_transitions(values, a, b) == 2


def test_metad_for_scales_sigma_grid_and_walls_with_the_cv():
    s = np.random.default_rng(0).normal(3.0, 0.02, 1000)  # a CV with small units
    m = metad_for(torch.nn.Identity(), s)
    assert m.sigma[0] == pytest.approx(0.5 * s.std())
    span = np.ptp(s)
    assert m.grid.lo[0] == pytest.approx(s.min() - 3 * span) and m.grid.hi[0] == pytest.approx(s.max() + 3 * span)
    assert m.grid.spacing[0] <= m.sigma[0] / 5 + 1e-12
    # 20 kJ/mol one sigma past the edge, whatever the CV's units.
    assert 0.5 * m.wall_kappa * m.sigma[0] ** 2 == pytest.approx(20.0)


def test_stopping_rule():
    assert _settled(DeltaF(10.0, 0.5), DeltaF(10.4, 0.5), tol=1.0)
    assert not _settled(DeltaF(10.0, 0.5), DeltaF(11.2, 0.5), tol=1.0)  # moved more than tol
    assert not _settled(DeltaF(10.0, 0.1), DeltaF(10.8, 0.1), tol=1.0)  # within tol, but 5 sigma apart


def test_short_loop_records_rounds_and_relearns_from_weighted_frames():
    dw = cl.systems.DoubleWell(dim=2, barrier=10.0)  # two basins along x; a 300 K run stays in one
    left, right = Basin(lo=[-2.0], hi=[-0.5]), Basin(lo=[0.5], hi=[2.0])  # cores: crossings must commit
    start = np.array([[-1.0, 0.0]])
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=0, positions=start).run(2000, stride=10)
    feat = cl.features.Positions.of(dw)
    result = iterate(lambda bias, k: cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=k,
                                                 positions=start, bias=bias),
                     cl.TICA(lagtime=5, n_components=1, scaling=None), feat, initial, dw.slow_coordinates,
                     (left, right), rounds=2, steps=4000, stride=10, tol=1e-9,
                     reweight={"bins": 40, "ranges": dw.slow_bounds})
    assert len(result.rounds) == 2 and not result.converged  # tol=1e-9 cannot be met
    r1, r2 = result.rounds
    assert np.isnan(r1.cv_change) and 0.0 <= r2.cv_change <= 1.0
    assert r2.transitions > 0 and r2.trajectory.positions.shape == (400, 4, 1, 2)
    assert np.isfinite(r2.delta_f.value)
    with torch.no_grad():  # the relearned CV follows x, the barrier coordinate, once transitions are seen
        grid = torch.tensor([[[x, y]] for x in (-1.0, 1.0) for y in (-0.3, 0.3)], dtype=torch.float64)
        s = r2.cv(grid)[:, 0].numpy()
    assert abs((s[2] + s[3]) - (s[0] + s[1])) > 2 * abs((s[1] - s[0]) + (s[3] - s[2]))


@pytest.mark.slow
def test_loop_on_muller_brown_reaches_the_exact_free_energy(tmp_path):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "tutorials" / "iterate_muller_brown.py"
    spec = importlib.util.spec_from_file_location("iterate_tutorial", path)
    tutorial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorial)
    result = tutorial.main(rounds=5, steps=20000, out=str(tmp_path))
    exact = cl.systems.MullerBrown().exact_delta_f("A", "B")
    assert result.rounds[0].transitions <= result.rounds[-1].transitions or result.rounds[0].transitions > 0
    last = result.rounds[-1].delta_f
    assert abs(last.value - exact) < max(3 * last.error, 2.5)  # 1 kT = 2.49 kJ/mol
    assert (tmp_path / "iterate.png").exists()


def test_learner_and_skip_may_change_per_round():
    """learner(k) picks each round's estimator; a callable skip sees each round's run."""
    dw = cl.systems.DoubleWell(dim=2, barrier=10.0)
    left, right = Basin(lo=[-2.0], hi=[-0.5]), Basin(lo=[0.5], hi=[2.0])
    start = np.array([[-1.0, 0.0]])
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=2, seed=0, positions=start).run(1000, stride=10)
    used, seen = [], []

    def learner(k):
        used.append(k)
        return cl.PCA(n_components=1) if k == 1 else cl.TICA(lagtime=5, n_components=1, scaling=None)

    def skip(traj):
        seen.append(traj.positions.shape)
        return 0.5

    result = iterate(lambda bias, k: cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=2, seed=k,
                                                 positions=start, bias=bias),
                     learner, cl.features.Positions.of(dw), initial, dw.slow_coordinates, (left, right), rounds=2,
                     steps=1000, stride=10, tol=1e-9, reweight={"bins": 20, "ranges": dw.slow_bounds, "skip": skip})
    assert used == [1, 2] and seen == [(100, 2, 1, 2)] * 2
    assert all(r.fes.metadata["skip"] == 0.5 and r.fes.metadata["n_frames"] == 100 for r in result.rounds)


def test_train_weights_and_transition_basins():
    dw = cl.systems.DoubleWell(dim=2, barrier=10.0)
    left, right = Basin(lo=[-2.0], hi=[0.0]), Basin(lo=[0.0], hi=[2.0])  # halves that touch at x = 0
    start = np.array([[-1.0, 0.0]])
    # Seed 1: round 1 recrosses the barrier (with seed 0 its 4 crossings of x = 0 were 4 core-to-core transitions
    # too, which could not tell the two counting rules apart).
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=2, seed=1, positions=start).run(1000, stride=10)
    seen = []

    class Spy(cl.TICA):
        def fit(self, X, y=None, logweights=None):
            seen.append(np.concatenate(logweights))
            return super().fit(X, logweights=logweights)

    def run(**kw):
        seen.clear()
        return iterate(lambda bias, k: cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=2, seed=k,
                                                   positions=start, bias=bias),
                       Spy(lagtime=5, n_components=1, scaling=None), cl.features.Positions.of(dw), initial,
                       dw.slow_coordinates, (left, right), rounds=2, steps=2000, stride=10, tol=1e-9,
                       reweight={"bins": 20, "ranges": dw.slow_bounds}, **kw)

    reweighted = run()
    assert np.ptp(seen[1][200:]) > 1.0  # round 2 trains on round 1's frames with c(t) log-weights
    sampled = run(train_weights="sampled")
    assert len(seen[1]) == 600 and np.all(seen[1] == 0.0)  # 100 unbiased + 200 biased frames, 2 walkers
    # Same runs (same seeds, same round-1 CV); transitions are counted between the given cores.
    narrow = (Basin(lo=[-2.0], hi=[-1.2]), Basin(lo=[1.2], hi=[2.0]))
    cores = run(transition_basins=narrow)
    assert reweighted.rounds[0].transitions == sampled.rounds[0].transitions > 0
    x = dw.slow_coordinates(torch.as_tensor(cores.rounds[0].trajectory.positions.reshape(-1, 1, 2)))
    expected = count_transitions(x.numpy().reshape(200, 2, 1), *narrow)
    assert cores.rounds[0].transitions == expected < reweighted.rounds[0].transitions
    with pytest.raises(ValueError, match="train_weights must be 'reweighted' or 'sampled'"):
        run(train_weights="uniform")


def test_a_round_that_never_leaves_reports_a_bound_and_strengthens_the_next_bias():
    """A barrier of 60 kJ/mol (24 kT): 500 biased steps cannot cross. The round reports no Delta F but a
    lower bound, does not count towards convergence, and the next bias is twice as strong."""
    dw = cl.systems.DoubleWell(dim=2, barrier=60.0)
    left, right = Basin(lo=[-2.0], hi=[-0.5]), Basin(lo=[0.5], hi=[2.0])
    start = np.array([[-1.0, 0.0]])
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=2, seed=0, positions=start).run(500, stride=10)
    strengths = []

    def make_bias(cv, s, strength):
        strengths.append(strength)
        return metad_for(cv, s, height=0.5, strength=strength)

    result = iterate(lambda bias, k: cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=2, seed=k,
                                                 positions=start, bias=bias),
                     cl.TICA(lagtime=5, n_components=1, scaling=None), cl.features.Positions.of(dw), initial,
                     dw.slow_coordinates, (left, right), make_bias=make_bias, rounds=3, steps=500, stride=10,
                     tol=100.0, reweight={"bins": 20, "ranges": dw.slow_bounds})
    assert strengths == [1.0, 2.0, 4.0]  # tol=100 would have stopped after round 2 had both rounds sampled
    assert not result.converged and result.delta_f is None
    for r in result.rounds:
        assert not r.sampled and r.transitions == 0 and np.isnan(r.delta_f.value)
        # The bound: one frame of the largest weight added to the right basin, so about kT ln(frames analysed)
        # (2 walkers x 45 frames: ~11 kJ/mol less the weights' spread); the exact value is ~60 kJ/mol.
        n = 2 * 45
        assert 0.5 * 2.494 * np.log(n) < r.bound <= 2.494 * np.log(n) + 1e-9 < 60.0
    row = result.summary()[0]
    assert row["sampled"] is False and row["bound"] == result.rounds[0].bound and row["strength"] == 1.0
    axes = result.plot()  # bounds drawn as markers; the transitions axis starts at 0, not at -0.04
    assert axes[1].get_ylim()[0] == 0.0 and axes[1].get_ylim()[1] >= 1.0


def test_answer_is_the_inverse_variance_mean_of_the_last_two_rounds():
    rounds = [cl.loop.Round(k, None, None, None, DeltaF(v, e), 5, 0.0) for k, (v, e) in
              enumerate([(20.0, 5.0), (10.0, 1.0), (12.0, 1.0)], start=1)]
    done = cl.IterationResult(rounds=rounds, converged=True)
    assert done.delta_f.value == pytest.approx(11.0) and done.delta_f.error == pytest.approx(1 / np.sqrt(2))
    assert cl.IterationResult(rounds=rounds).delta_f == DeltaF(12.0, 1.0)  # not converged: the last round
    rounds[2].sampled = False
    assert cl.IterationResult(rounds=rounds).delta_f == DeltaF(10.0, 1.0)  # the last round that sampled both
    assert cl.IterationResult(rounds=[]).delta_f is None


def test_ensemble_keeps_the_network_with_the_best_vamp2_score():
    """Three Deep-TICA networks from seeds 0, 1, 2 on the same frames; the kept one has the largest sum of
    squared eigenvalues, and equals a network trained alone from its seed."""
    from cvlearn.loop import _fit_best

    rng = np.random.default_rng(0)
    state = np.cumsum(rng.random(3000) < 0.01) % 2 * 2.0 - 1
    X = [np.column_stack([state + 0.5 * rng.normal(size=3000), rng.normal(size=(3000, 2))])]
    learner = cl.DeepTICA(lagtime=5, layers=[8], max_epochs=20, seed=0)
    best, scores = _fit_best(learner, 1, X, [np.zeros(3000)], n_models=3)
    assert len(scores) == 3 and best.seed == int(np.argmax(scores))
    alone = cl.DeepTICA(lagtime=5, layers=[8], max_epochs=20, seed=best.seed).fit(X)
    np.testing.assert_allclose(best.eigenvalues_, alone.eigenvalues_, rtol=1e-6)
    assert float(np.sum(best.eigenvalues_ ** 2)) == pytest.approx(max(scores))


def test_fluctuation_scales_a_hot_run_to_the_target_temperature():
    from cvlearn.loop import fluctuation, opes_for

    rng = np.random.default_rng(1)
    slow = np.repeat(rng.normal(scale=5.0, size=200), 50)  # a slow drift the windows must not count
    hot = slow + rng.normal(scale=0.3, size=10000)
    width = fluctuation([(hot, 1200.0, 0.1)], window_ps=1.0, temperature=300.0)  # windows of 10 frames
    assert width == pytest.approx(0.3 * 0.5, rel=0.1)  # sqrt(300 / 1200) = 0.5; the drift is invisible
    opes = opes_for(torch.nn.Identity(), hot, segments=[(hot, 1200.0, 0.1)], barrier=30.0, pace=10)
    assert opes.sigma0[0] == pytest.approx(width) and opes.barrier == 30.0
    with pytest.raises(ValueError, match="No segment spans a window"):
        fluctuation([(hot[:5], 300.0, 0.1)])


def test_learn_rounds_keep_the_cv_and_continue_its_bias():
    """learn_rounds=1: round 1 learns a CV and its bias; rounds 2-3 continue that bias and those walkers,
    and reweight all of its frames (less round 1's skip)."""
    dw = cl.systems.DoubleWell(dim=2, barrier=10.0)
    left, right = Basin(lo=[-2.0], hi=[-0.5]), Basin(lo=[0.5], hi=[2.0])
    start = np.array([[-1.0, 0.0]])
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=0, positions=start).run(2000, stride=10)
    engines = []

    def make_engine(bias, k):
        engines.append(cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=k, positions=start, bias=bias))
        return engines[-1]

    result = iterate(make_engine, cl.TICA(lagtime=5, n_components=1, scaling=None), cl.features.Positions.of(dw),
                     initial, dw.slow_coordinates, (left, right), rounds=3, steps=4000, stride=10, tol=1e-9,
                     reweight={"bins": 40, "ranges": dw.slow_bounds, "skip": 0.25}, learn_rounds=1)
    r1, r2, r3 = result.rounds
    assert r1.sampled and len(engines) == 1  # one engine for all three rounds
    assert r2.bias is r1.bias and r3.cv is r1.cv and [r.continued for r in result.rounds] == [0, 1, 2]
    assert r2.cv_change == 0.0 and r2.scores == []
    assert r2.trajectory.time[0] > r1.trajectory.time[-1] and r3.trajectory.time[0] > r2.trajectory.time[-1]
    # Round 3 reweights rounds 1-3 (1200 frames of 4 walkers) less round 1's first quarter (100 frames).
    assert r3.fes.metadata["n_frames"] == (1200 - 100) * 4 and r3.fes.metadata["skip"] == pytest.approx(100 / 1200)
    assert abs(r3.delta_f.value) < 3.0  # a symmetric double well: 0 exactly
    assert not result.converged and result.delta_f == r3.delta_f  # tol=1e-9; the answer is the continued run's
    assert [row["continued"] for row in result.summary()] == [0, 1, 2]


def test_the_bound_points_the_right_way_for_the_missing_basin():
    """Frames all in b (a round that crossed once and stayed): a missing, F(b) - F(a) bounded from above;
    all in a: b missing, bounded from below; both with one more frame of the largest weight."""
    from cvlearn.loop import _bound

    a, b = Basin(lo=[-2.0], hi=[0.0]), Basin(lo=[0.0], hi=[2.0])
    kT, n = 2.494, 100
    in_b = np.full((n, 1, 1), 1.0)
    value, missing = _bound(in_b, np.zeros((n, 1)), a, b, 0, kT)
    assert missing == "a" and value == pytest.approx(-kT * np.log(n))  # F(b) - F(a) < -kT ln(100 / 1)
    value, missing = _bound(-in_b, np.zeros((n, 1)), a, b, 0, kT)
    assert missing == "b" and value == pytest.approx(kT * np.log(n))  # F(b) - F(a) > -kT ln(1 / 100)


def test_biases_are_sized_per_component_of_a_multidimensional_cv():
    from cvlearn.loop import fluctuation, opes_for

    rng = np.random.default_rng(2)
    hot = np.column_stack([rng.normal(scale=0.4, size=6000), rng.normal(scale=0.04, size=6000)])
    width = fluctuation([(hot, 1200.0, 0.1)], window_ps=1.0, temperature=300.0)
    np.testing.assert_allclose(width, [0.2, 0.02], rtol=0.1)  # each component's own width, x sqrt(300 / 1200)
    opes = opes_for(torch.nn.Identity(), hot, segments=[(hot, 1200.0, 0.1)], barrier=30.0, pace=10)
    np.testing.assert_allclose(opes.sigma0, width)
    m = metad_for(torch.nn.Identity(), hot)
    np.testing.assert_allclose(m.sigma, 0.5 * hot.std(axis=0))
    assert m.grid.lo.shape == (2,) and np.all(m.grid.spacing <= m.sigma / 5 + 1e-12)
    # the wall: 20 kJ/mol one sigma past the edge of the widest component, never stiffer
    assert 0.5 * m.wall_kappa * m.sigma.max() ** 2 == pytest.approx(20.0)
    with pytest.raises(ValueError, match="component is constant"):
        opes_for(torch.nn.Identity(), np.column_stack([hot[:, 0], np.ones(6000)]))


def test_cv_change_matches_components_that_only_swapped_order():
    from cvlearn.engine import Trajectory
    from cvlearn.loop import _cv_change

    x = np.random.default_rng(3).normal(size=(500, 1, 1, 2))
    data = [(Trajectory(x, np.arange(500.0), temperature=300.0), None)]
    first = lambda p: p[:, 0, :]  # noqa: E731  (x, y)
    swapped = lambda p: p[:, 0, [1, 0]] * torch.tensor([1.0, -1.0], dtype=p.dtype)  # noqa: E731  (y, -x)
    assert _cv_change(first, swapped, data) == pytest.approx(0.0, abs=1e-12)
    mixed = lambda p: torch.stack([p[:, 0, 0], p[:, 0, 0] + p[:, 0, 1]], dim=1)  # noqa: E731
    assert _cv_change(first, mixed, data) == pytest.approx(1 - 1 / np.sqrt(2), abs=0.05)  # worst match: r ~ 0.71


def test_loop_with_a_two_component_cv():
    dw = cl.systems.DoubleWell(dim=2, barrier=10.0)
    left, right = Basin(lo=[-2.0], hi=[-0.5]), Basin(lo=[0.5], hi=[2.0])
    start = np.array([[-1.0, 0.0]])
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=0, positions=start).run(2000, stride=10)
    result = iterate(lambda bias, k: cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=k,
                                                 positions=start, bias=bias),
                     cl.TICA(lagtime=5, n_components=2, scaling=None), cl.features.Positions.of(dw), initial,
                     dw.slow_coordinates, (left, right), rounds=2, steps=4000, stride=10, tol=1e-9,
                     reweight={"bins": 40, "ranges": dw.slow_bounds})
    r2 = result.rounds[-1]
    assert r2.bias.grid.lo.shape == (2,) and r2.transitions > 0 and np.isfinite(r2.delta_f.value)
    assert 0.0 <= r2.cv_change <= 1.0


def test_an_estimate_settles_only_with_enough_transitions():
    """The same loop (same seeds) stops at round 3 with min_transitions 0, and runs on when its estimate
    must hold more transitions than the run can make."""
    dw = cl.systems.DoubleWell(dim=2, barrier=10.0)
    left, right = Basin(lo=[-2.0], hi=[-0.5]), Basin(lo=[0.5], hi=[2.0])
    start = np.array([[-1.0, 0.0]])
    initial = cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=0, positions=start).run(2000, stride=10)

    def run(min_transitions):
        return iterate(lambda bias, k: cl.Langevin(dw, timestep=0.01, friction=2.0, n_walkers=4, seed=k,
                                                   positions=start, bias=bias),
                       cl.TICA(lagtime=5, n_components=1, scaling=None), cl.features.Positions.of(dw), initial,
                       dw.slow_coordinates, (left, right), rounds=4, steps=4000, stride=10, tol=5.0,
                       reweight={"bins": 40, "ranges": dw.slow_bounds, "skip": 0.25}, learn_rounds=1,
                       min_transitions=min_transitions)

    free = run(0)
    assert free.converged and len(free.rounds) < 4
    made = count_transitions(cl.fes._reweight._values(cl.Trajectory.concatenate([r.trajectory for r in free.rounds]),
                                                      dw.slow_coordinates), left, right)
    held = run(10 * made + 100)
    assert not held.converged and len(held.rounds) == 4
    for a, b in zip(free.rounds, held.rounds):  # the rule changes when to stop, never the rounds themselves
        assert a.delta_f.value == b.delta_f.value
