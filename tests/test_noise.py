"""The Langevin engine's counter-based Gaussian noise (cvlearn.engine._noise)."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

import cvlearn as cl
from cvlearn.engine import _noise

KEY = _noise.noise_keys(0)[0]


def _splitmix64_output(state):
    """The C reference of SplitMix64's output function, on Python integers modulo 2^64."""
    z = state % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def test_the_integer_mix_is_splitmix64():
    rng = np.random.default_rng(1)
    states = [int(x) for x in rng.integers(0, 2**63, 200)] + [2**64 - 1, 2**63, 0, 1]
    signed = torch.tensor([s - 2**64 if s >= 2**63 else s for s in states], dtype=torch.int64)
    got = [int(z) % 2**64 for z in _noise._mix(signed)]
    assert got == [_splitmix64_output(s) for s in states]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_noise_is_standard_normal(dtype):
    z = _noise.gaussian_noise(KEY, 0, (400_000,), dtype).double().numpy()
    n = len(z)
    # Tolerances: 5 standard errors of each estimate for n independent standard normals.
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(scipy.stats.kurtosis(z, fisher=False) - 3) < 5 * math.sqrt(24 / n)
    assert abs(np.mean(np.abs(z) > 3) - 0.0026998) < 5 * math.sqrt(0.0027 / n)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3


def test_the_noise_of_steps_and_neighbours_is_uncorrelated():
    z = _noise.gaussian_noise(KEY, 0, (2, 1, 3), steps=20_000).numpy().reshape(20_000, 6)
    n = z.size
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 5 / math.sqrt(n)  # step to step
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 5 / math.sqrt(n)  # element to element
    assert abs(np.corrcoef(z[:, 0], z[:, 3])[0, 1]) < 5 / math.sqrt(len(z))  # the cos and sin halves of a pair
    other = _noise.gaussian_noise(_noise.noise_keys(1)[0], 0, (2, 1, 3), steps=20_000).numpy().reshape(-1)
    assert abs(np.corrcoef(z.ravel(), other)[0, 1]) < 5 / math.sqrt(n)  # another seed


def test_the_noise_is_a_pure_function_of_key_and_step():
    one = _noise.gaussian_noise(KEY, 7, (3, 1, 2))
    assert torch.equal(one, _noise.gaussian_noise(torch.tensor(KEY), torch.tensor(7), (3, 1, 2)))
    assert torch.equal(one, _noise.gaussian_noise(KEY, 0, (3, 1, 2), steps=10)[7])
    assert not torch.equal(one, _noise.gaussian_noise(KEY, 8, (3, 1, 2)))
    stream = _noise.NoiseStream(KEY, (3, 1, 2), torch.float64, "cpu")
    for step in (130, 0, 63, 64, 7):  # any order, across chunk boundaries
        assert torch.equal(stream(step), _noise.gaussian_noise(KEY, step - step % stream.chunk, (3, 1, 2),
                                                              steps=stream.chunk)[step % stream.chunk])
    assert stream.chunk == 64 and _noise.NoiseStream(KEY, (10_000, 1, 2), torch.float64, "cpu").chunk == 6


def test_seeds_give_distinct_keys_and_none_fresh_ones():
    assert _noise.noise_keys(0) == _noise.noise_keys(0)
    assert len({*_noise.noise_keys(0), *_noise.noise_keys(1)}) == 4
    assert _noise.noise_keys(None) != _noise.noise_keys(None)


def test_an_eager_run_does_not_depend_on_where_runs_and_restarts_split_it(tmp_path):
    def engine():
        return cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=3, seed=4, compile=False)

    whole = engine().run(300, stride=10)
    first = engine()
    part1 = first.run(77, stride=10, checkpoint=str(tmp_path / "state.npz"))
    again = engine()
    again.load_checkpoint(tmp_path / "state.npz")
    part2 = again.run(223, stride=10)
    np.testing.assert_array_equal(cl.Trajectory.concatenate([part1, part2]).positions, whole.positions)


def test_a_checkpoint_of_the_former_generator_continues_with_a_warning(tmp_path):
    engine = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=2, seed=4, compile=False)
    engine.run(50, stride=50)
    state = {k: v for k, v in engine.state_dict().items() if k != "noise_key"}
    state["rng_state"] = torch.Generator().get_state().numpy()  # what earlier versions saved
    other = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, friction=5.0, n_walkers=2, seed=9, compile=False)
    with pytest.warns(RuntimeWarning, match="older cvlearn"):
        other.load_state_dict(state)
    assert other.step == 50 and other.noise_key == _noise.noise_keys(9)[0]
    np.testing.assert_array_equal(other.positions.numpy(), engine.positions.numpy())
