"""The Langevin engine's random numbers: a counter-based Gaussian stream, the same in eager and fused steps.

The noise of step ``k`` is a pure function of the engine's key and ``k``: SplitMix64 (Steele, Lea & Flood,
OOPSLA 2014; its output function is the ``mix`` below, and its state after ``c`` draws is
``key + c * GAMMA``) gives two uniforms per pair of normals, and the Box-Muller transform turns them into
two independent standard normals. Why counter-based rather than a stateful generator (torch's Mersenne
twister, as the engine used before):

- the compiled fused steps compute the noise inside their loop, with no call back to Python and no
  pre-drawn buffer (drawing 2 x 10^4 normals per step with torch's CPU generator took as long as the
  compiled step itself, and one call per step cost ~2-5 us for one walker);
- the eager steps evaluate the same function, so a fused block equals them up to round-off;
- a checkpoint needs only the key and the step, and a restart continues the same stream whatever the
  block boundaries were;
- it runs unchanged on a GPU.

Everything is int64 torch arithmetic (products wrap modulo 2^64 as in the C reference; right shifts are
made logical by masking), so it traces into ``torch.compile``; the uniforms have 53 random bits in
float64 and 24 in float32, and the first of each pair is offset by half a unit so that its logarithm is
finite. SplitMix64 passes BigCrush (Steele et al.).
"""

import math

import numpy as np
import torch

__all__ = ["NoiseStream", "gaussian_noise", "noise_keys"]

#: Values of one cached chunk of eager noise at most (the eager steps evaluate whole chunks of steps).
CHUNK_VALUES = 2**17
#: Steps of one cached chunk at most.
CHUNK_STEPS = 64

_GAMMA = -7046029254386353131  # 0x9e3779b97f4a7c15 as a signed 64-bit integer
_MIX1 = -4658895280553007687  # 0xbf58476d1ce4e5b9
_MIX2 = -7723592293110705685  # 0x94d049bb133111eb


def _shr(z, k):
    """Logical right shift of int64 ``z`` by ``k`` bits (torch's >> is arithmetic on signed integers)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix(z):
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def _uniform(bits, dtype, offset):
    """Uniforms in [0, 1) (offset 0) or (0, 1) (offset 0.5) from the top bits of 64-bit integers."""
    if dtype == torch.float64:
        return (_shr(bits, 11).to(dtype) + offset) * 2.0**-53
    return (_shr(bits, 40).to(dtype) + offset) * 2.0**-24


def gaussian_noise(key, step, shape, dtype=torch.float64, device="cpu", steps=None):
    """Standard normal noise of ``step`` for a tensor of ``shape``: a pure function of (key, step).

    ``key`` and ``step`` are Python ints or int64 tensors (0-d); the values do not depend on which. With
    ``steps``, the noise of the steps ``step, ..., step + steps - 1`` at once, shape (steps, *shape).
    """
    numel = math.prod(shape)
    pairs = (numel + 1) // 2
    key = torch.as_tensor(key, dtype=torch.int64, device=device)
    first = torch.as_tensor(step, dtype=torch.int64, device=device)
    k = 1 if steps is None else steps
    rows = first + torch.arange(k, dtype=torch.int64, device=device)[:, None]
    counter = 2 * (rows * pairs + torch.arange(pairs, dtype=torch.int64, device=device))
    u1 = _uniform(_mix(key + counter * _GAMMA), dtype, 0.5)
    u2 = _uniform(_mix(key + (counter + 1) * _GAMMA), dtype, 0.0)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2.0 * math.pi) * u2
    z = torch.cat([r * torch.cos(theta), r * torch.sin(theta)], 1)[:, :numel]
    return z.reshape(shape) if steps is None else z.reshape(k, *shape)


class NoiseStream:
    """The eager steps' noise: :func:`gaussian_noise` of ``key`` evaluated a chunk of steps at a time.

    Chunks are aligned to multiples of ``chunk`` steps (a function of the shape only), so a step's noise
    is computed by the same vectorized operations whatever step a run or a restart began at: a seed
    reproduces an eager run bit for bit. One walker's step costs ~2 us of noise instead of ~100 us.
    """

    def __init__(self, key, shape, dtype, device):
        self.key, self.shape, self.dtype, self.device = int(key), tuple(shape), dtype, torch.device(device)
        self.chunk = max(1, min(CHUNK_STEPS, CHUNK_VALUES // max(1, math.prod(self.shape))))
        self._first, self._values = None, None

    def __call__(self, step):
        """Noise (``shape``) of ``step`` (a Python int)."""
        first = step - step % self.chunk
        if first != self._first:
            self._values = gaussian_noise(self.key, first, self.shape, self.dtype, self.device, steps=self.chunk)
            self._first = first
        return self._values[step - first]


def noise_keys(seed):
    """(noise key, initial-velocity key), signed 64-bit ints, from ``seed`` (an int, or None for fresh entropy)."""
    words = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return tuple(int(w) for w in words.view(np.int64))
