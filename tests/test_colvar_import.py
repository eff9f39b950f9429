"""Reweighting a run from its COLVAR files alone (as for a PLUMED run on a cluster) equals reweighting it in cvlearn."""

import numpy as np
import pytest

import cvlearn as cl


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("colvar")
    mb = cl.systems.MullerBrown()
    hot = cl.Langevin(cl.systems.MullerBrown(temperature=1000.0), timestep=0.005, friction=5.0, n_walkers=8,
                      seed=0).run(2000, stride=10)
    tica = cl.TICA(lagtime=10, n_components=1, scaling=None).fit(hot)
    cv = tica.to_module(featurizer=cl.features.Positions.of(mb))
    metad = cl.WellTemperedMetad(cv, sigma=0.15, height=1.5, bias_factor=10, pace=50, grid=cl.Grid(-6, 6, 400),
                                 outside="wall")
    traj = cl.Langevin(mb, timestep=0.005, friction=5.0, n_walkers=4, seed=1, bias=metad).run(
        4000, stride=50, colvar=out / "COLVAR")
    return out, mb, metad, traj


def test_from_colvar_equals_in_process_reweighting(run):
    out, mb, metad, traj = run
    files = [out / f"COLVAR.{i}" for i in range(4)]
    fes = cl.fes.from_colvar(files, ["tic1"], temperature=300.0, bins=40, ranges=[(-4, 4)], skip=0.1)
    ref = cl.fes.reweight(traj, metad.cv, bias=metad, method="ct", bins=40, ranges=[(-4, 4)], skip=0.1)
    finite = np.isfinite(ref.F)
    assert finite.sum() > 10
    np.testing.assert_allclose(fes.F[finite], ref.F[finite], atol=1e-8)
    np.testing.assert_allclose(fes.error[finite], ref.error[finite], atol=1e-8, equal_nan=True)


def test_colvar_logweights_retrain_and_errors(run):
    out, mb, metad, traj = run
    logw = cl.fes.colvar_logweights([out / f"COLVAR.{i}" for i in range(4)], temperature=300.0)
    np.testing.assert_allclose(logw, cl.fes.log_weights(traj, metad), atol=1e-10)
    X = cl.features.Positions.of(mb).transform(traj)
    tica = cl.TICA(lagtime=5, n_components=1).fit(X, logweights=list(logw.T))  # retrain on the run's frames
    assert np.isfinite(tica.eigenvalues_).all()
    with pytest.raises(ValueError, match="has no column 'opes.bias'.*bias='metad.bias'"):
        cl.fes.colvar_logweights(out / "COLVAR.0", bias="opes.bias", rct=None)
