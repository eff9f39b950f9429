import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import cvlearn as cl


def ar_process(n, phis, seed, noise=1.0):
    """Independent AR(1) processes x_t = phi x_{t-1} + e_t (exact lag-tau autocorrelation phi**tau)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(phis)))
    e = rng.normal(size=(n, len(phis))) * noise
    for t in range(1, n):
        x[t] = np.asarray(phis) * x[t - 1] + e[t]
    return x


@pytest.fixture(scope="module")
def mixed_data():
    """Three trajectories of 3 AR(1) processes mixed into 6 features (plus noise)."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(3, 6))
    trajs = [ar_process(4000, [0.995, 0.9, 0.5], seed=s) @ mix + 0.1 * rng.normal(size=(4000, 6)) + 5.0
             for s in range(3)]
    return trajs


def test_tica_recovers_ar_eigenvalues():
    """Uncorrelated AR(1) processes are their own TICs; eigenvalues are phi**lag."""
    X = ar_process(200_000, [0.99, 0.8, 0.3], seed=1) * [1.0, 5.0, 20.0]
    tica = cl.TICA(lagtime=5).fit(X)
    np.testing.assert_allclose(tica.eigenvalues_, np.array([0.99, 0.8, 0.3]) ** 5, atol=0.01)
    v = np.abs(tica.singular_vectors_ * [[1.0], [5.0], [20.0]])  # undo the feature scales
    v /= v.max(axis=0)
    np.testing.assert_allclose(v, np.eye(3), atol=0.02)
    np.testing.assert_allclose(tica.timescales_, -5 / np.log(tica.eigenvalues_))


@pytest.mark.parametrize("scaling", [None, "kinetic_map", "commute_map"])
def test_tica_matches_deeptime(mixed_data, scaling):
    dt = pytest.importorskip("deeptime.decomposition")
    ours = cl.TICA(lagtime=7, n_components=3, scaling=scaling).fit(mixed_data)
    ref = dt.TICA(lagtime=7, dim=3, scaling=scaling).fit(mixed_data).fetch_model()
    np.testing.assert_allclose(ours.eigenvalues_, ref.singular_values[:3], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.mean_, ref.mean_0, rtol=1e-10)
    # Same projections up to the sign of each component (a subspace identity to 1e-6).
    a = np.concatenate(ours.transform(mixed_data))
    b = np.concatenate([ref.transform(x) for x in mixed_data])
    signs = np.sign((a * b).sum(0))
    np.testing.assert_allclose(a, b * signs, atol=1e-6 * np.abs(b).max())
    if scaling != "commute_map":  # deeptime's score changes when commute-map damping zeroes a column
        assert ours.score(mixed_data) == pytest.approx(dt.vamp_score(ref, r=2, dim=3), rel=1e-8)


def test_tica_weights_match_deeptime(mixed_data):
    dt = pytest.importorskip("deeptime.decomposition")
    rng = np.random.default_rng(5)
    w = [rng.random(len(x)) for x in mixed_data]
    ours = cl.TICA(lagtime=3, n_components=2).fit(mixed_data, weights=w)
    from deeptime.covariance import Covariance

    cov = Covariance(lagtime=3, compute_c0t=True, reversible=True, bessels_correction=False,
                     remove_data_mean=True)
    for x, wi in zip(mixed_data, w):
        cov.partial_fit((x[:-3], x[3:]), weights=wi[:-3])
    ref = dt.TICA(lagtime=3, dim=2).fit_from_covariances(cov.fetch_model()).fetch_model()
    np.testing.assert_allclose(ours.eigenvalues_, ref.singular_values[:2], rtol=1e-8)


def test_tica_pairs_never_cross_trajectory_seams(mixed_data):
    a, b = mixed_data[0], mixed_data[1]
    split = cl.TICA(lagtime=10).fit([a, b])
    joined = cl.TICA(lagtime=10).fit(np.concatenate([a, b]))
    assert np.abs(split.eigenvalues_ - joined.eigenvalues_).max() > 1e-6  # the seam pairs matter...
    # ...and the list fit equals a fit on explicit pairs from each trajectory alone (zero-weighting
    # the pairs that would cross the seam of the concatenation).
    w = np.ones(len(a) + len(b))
    w[len(a) - 10:len(a)] = 0.0
    masked = cl.TICA(lagtime=10).fit(np.concatenate([a, b]), weights=w)
    np.testing.assert_allclose(split.eigenvalues_, masked.eigenvalues_, rtol=1e-10, atol=1e-11)


def test_hidden_cv_tica_finds_slow_coordinate_pca_does_not(hidden_run):
    system, traj = hidden_run
    slow = np.concatenate([system.slow_coordinates(p)[:, 0] for p in traj.per_walker()])
    crossings = (np.diff(np.sign(system.slow_coordinates(traj.positions)[..., 0]), axis=0) != 0).sum()
    assert crossings >= 20  # enough transitions for a kinetic estimate
    tica = cl.TICA(lagtime=20, n_components=1).fit(traj)
    pca = cl.PCA(n_components=1).fit(traj)
    r_tica = spearmanr(np.concatenate(tica.transform(traj))[:, 0], slow)[0]
    r_pca = spearmanr(np.concatenate(pca.transform(traj))[:, 0], slow)[0]
    assert abs(r_tica) >= 0.95
    assert abs(r_pca) < 0.5
    # TICA's direction is the hidden double-well axis.
    assert abs(tica.singular_vectors_[:, 0] / np.linalg.norm(tica.singular_vectors_[:, 0])
               @ system.slow_direction()[0]) > 0.95


def test_pca_matches_sklearn(mixed_data):
    from sklearn.decomposition import PCA as SkPCA

    X = np.concatenate(mixed_data)
    ours = cl.PCA(n_components=4).fit(mixed_data)
    ref = SkPCA(n_components=4, svd_solver="full").fit(X)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-9)
    signs = np.sign((ours.components_ * ref.components_).sum(1))
    np.testing.assert_allclose(ours.components_, ref.components_ * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(np.abs(ours.transform(X)), np.abs(ref.transform(X)), atol=1e-8)


def test_pca_integer_weights_equal_repeated_frames():
    X = np.random.default_rng(2).normal(size=(300, 4)) @ np.diag([3, 2, 1, 0.5])
    w = np.random.default_rng(3).integers(0, 4, size=300)
    a = cl.PCA().fit(X, weights=w)
    b = cl.PCA().fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.mean_, b.mean_, rtol=1e-12)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-10)
    # Frequency weights: the unbiased correction differs (W - 1 vs W - sum w^2 / W), the axes do not.
    np.testing.assert_allclose(a.explained_variance_ratio_, b.explained_variance_ratio_, rtol=1e-10)


@pytest.mark.parametrize("learner", [cl.PCA(n_components=2), cl.TICA(lagtime=5, n_components=2)],
                         ids=["PCA", "TICA"])
def test_to_module_equals_transform_and_takes_positions(learner, mixed_data):
    learner.fit(mixed_data)
    X = mixed_data[0]
    module = learner.to_module()
    out = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, learner.transform(X), rtol=1e-12, atol=1e-12)
    # With a featurizer, positions (frames, 6 particles, 1 dim) map to the same values, differentiably.
    feat = cl.features.Positions(6, 1)
    cv = learner.to_module(featurizer=feat)
    pos = torch.from_numpy(X[:5, :, None]).requires_grad_(True)
    s = cv(pos)
    np.testing.assert_allclose(s.detach().numpy(), learner.transform(X[:5]), rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(s[:, 0].sum(), pos)
    np.testing.assert_allclose(g[0, :, 0].numpy(), learner.eigenvectors_[:, 0], rtol=1e-12)
    assert cv.names == [f"{learner._prefix}1", f"{learner._prefix}2"]


def test_get_set_params_and_clone():
    from sklearn.base import clone

    t = cl.TICA(lagtime=4, n_components=2, scaling=None)
    assert t.get_params() == {"lagtime": 4, "n_components": 2, "epsilon": 1e-6, "scaling": None}
    c = clone(t.set_params(lagtime=9))
    assert c.lagtime == 9 and not hasattr(c, "eigenvalues_")


def test_fit_does_not_modify_input(mixed_data):
    X = mixed_data[0].copy()
    cl.TICA(lagtime=2).fit_transform(X)
    cl.PCA().fit_transform(X)
    np.testing.assert_array_equal(X, mixed_data[0])


def test_epsilon_regularizes_linearly_dependent_features(mixed_data):
    X = [np.c_[x, x[:, 0] + 2 * x[:, 1]] for x in mixed_data]  # 7th feature is a combination
    tica = cl.TICA(lagtime=5).fit(X)
    assert len(tica.eigenvalues_) == 6  # the singular direction is dropped, not amplified
    assert np.all(np.abs(tica.eigenvalues_) <= 1 + 1e-9)


@pytest.mark.parametrize("estimator", [cl.PCA(), cl.TICA(lagtime=1)], ids=["PCA", "TICA"])
def test_sklearn_estimator_checks(estimator):
    """scikit-learn's own estimator checks (fit/transform contract, clone, errors) all pass."""
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    assert len(results) > 40


def test_logweights_equal_normalized_weights(mixed_data):
    rng = np.random.default_rng(9)
    logw = [rng.normal(scale=3.0, size=len(x)) + 50.0 for x in mixed_data]  # large offsets must not overflow
    w = [np.exp(lw - 50.0) for lw in logw]
    for make in (lambda: cl.TICA(lagtime=3), lambda: cl.PCA()):
        a, b = make().fit(mixed_data, logweights=logw), make().fit(mixed_data, weights=w)
        np.testing.assert_allclose(a.eigenvectors_, b.eigenvectors_, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="either weights or logweights"):
        cl.TICA(lagtime=3).fit(mixed_data, weights=w, logweights=logw)
