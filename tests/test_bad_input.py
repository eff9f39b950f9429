"""Every bad input a learner can get names the problem and the fix."""

import numpy as np
import pytest

import cvlearn as cl

rng = np.random.default_rng(0)
GOOD = rng.normal(size=(100, 3))
NAN = GOOD.copy()
NAN[17, 1] = np.nan
CONST = GOOD.copy()
CONST[:, 2] = 4.2


@pytest.mark.parametrize("make", [lambda: cl.PCA(), lambda: cl.TICA(lagtime=2)], ids=["PCA", "TICA"])
@pytest.mark.parametrize("X, exc, match", [
    (NAN, ValueError, r"NaN or infinite values in 1 frame\(s\), first at frame 17"),
    (CONST, ValueError, r"Feature\(s\) \[2\] are constant"),
    (rng.normal(size=(10, 2, 2)), ValueError, "must be 2-D"),
    ([GOOD, GOOD[:, :2]], ValueError, "has 2 features but X\\[0\\] has 3"),
    ([], ValueError, "empty list"),
    (np.array([["a", "b"]]), TypeError, "numeric array"),
    (np.zeros((100, 0)), ValueError, r"0 feature\(s\)"),
])
def test_bad_arrays(make, X, exc, match):
    with pytest.raises(exc, match=match):
        make().fit(X)


@pytest.mark.parametrize("lag, match", [
    (100, r"must be an int in \[1, n_frames\). Got 100 for trajectories of at most 100 frames"),
    (0, "int >= 1"),
    (2.5, "int >= 1"),
])
def test_bad_lagtime(lag, match):
    with pytest.raises(ValueError, match=match):
        cl.TICA(lagtime=lag).fit(GOOD)


def test_bad_weights_and_components():
    with pytest.raises(ValueError, match="100 frames"):
        cl.PCA().fit(GOOD, weights=np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        cl.TICA(lagtime=1).fit(GOOD, weights=-np.ones(100))
    with pytest.raises(ValueError, match="All weights are zero"):
        cl.PCA().fit(GOOD, weights=np.zeros(100))
    with pytest.raises(ValueError, match="n_components=5 exceeds"):
        cl.PCA(n_components=5).fit(GOOD)
    with pytest.raises(ValueError, match="scaling must be one of"):
        cl.TICA(lagtime=1, scaling="kinetic").fit(GOOD)


def test_not_fitted_and_feature_mismatch_at_transform():
    with pytest.raises(cl.NotFittedError, match="call fit"):
        cl.TICA().transform(GOOD)
    assert issubclass(cl.NotFittedError, AttributeError)  # sklearn's contract
    tica = cl.TICA(lagtime=1).fit(GOOD)
    with pytest.raises(ValueError, match="has 2 features, but TICA is expecting 3 features"):
        tica.transform(GOOD[:, :2])
    with pytest.raises(ValueError, match="4 features but TICA was fitted on 3"):
        tica.to_module(cl.features.Positions(4, 1))
