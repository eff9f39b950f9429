"""Fused, compiled blocks of BAOAB steps for :class:`cvlearn.Langevin`.

Between two events of a run (a recorded frame, a step at which a bias may deposit, the end of the run)
the steps change nothing but positions, velocities and forces, so they can run as one compiled function:
the system's forces, every bias's forces (:class:`cvlearn.bias.Fusable`) and the BAOAB update, with no
return to Python in between. On the 2-core machine of ``benchmarks/RESULTS.md`` the eager step with a
metadynamics bias costs ~1 ms whatever the walker count, almost all of it per-operation overhead.

The design was chosen by measurement (``benchmarks/RESULTS.md``, "Fused Langevin steps"):

- one ``torch.compile`` of a ``while_loop`` whose body is ONE traced step, run for ``n`` steps (a tensor):
  the compile time does not grow with the block length and one graph serves every block length (blocks
  of K unrolled steps took 20 s to compile for K = 10 and minutes for K = 100, and a graph per length);
- inductor's C++ wrapper (``cpp_wrapper``) on the CPU, so the loop itself runs in C++ (the Python
  wrapper's loop costs ~30 us per iteration); the call costs ~50 us, once per block;
- the noise is drawn before the block by the engine's generator, one ``normal_`` per step into a row of
  a buffer: the calls the eager step makes in the same order, so the random stream is the same and a
  block equals the eager steps up to round-off (~1e-13 in float64; a test checks 1e-10);
- the compiled function is shared by every engine of the process (dynamo caches one graph per system
  class, bias configuration, shape and dtype). Inductor cannot keep the graph of a ``while_loop`` in its
  on-disk FX graph cache (torch 2.13: "Can't cache HigherOrderOperator"), only the compiled C++: a later
  process compiles in ~10 s instead of ~30 s cold on 2 busy cores. K unrolled steps are cached on disk
  (~6 s warm for K = 10) but take ~55 s cold and run no faster.

A block that fails (a non-finite energy, a CV off an ``outside="error"`` grid) leaves the engine's state
and random generator as they were before it, and the engine replays it through the eager steps, which
raise the usual error at the exact step. When compilation is impossible (no C++ compiler, a potential
torch cannot trace) the engine warns once and continues with the eager steps.
"""

import contextlib
import logging
import time
import warnings

import torch

from ..bias import Adaptive, Fusable, Paced, SharedHills

try:
    from torch._higher_order_ops.while_loop import while_loop
except ImportError:  # a torch without the while_loop construct: the engine then runs the eager steps
    while_loop = None

__all__ = ["FusedSteps", "eager_step_seconds", "event_periods", "fusable_biases"]

log = logging.getLogger("cvlearn")

#: Pre-drawn noise of one block at most, bytes (the noise buffer's rows are steps).
NOISE_BYTES = 64 * 2**20
#: Steps of one block at most (a block also ends at every event).
MAX_BLOCK = 1000
#: Configurations (system class, biases, shape, dtype) one process may compile: dynamo's default limit
#: of graphs per function (8) would refuse the ninth engine configuration of a benchmark or a notebook.
MAX_CONFIGURATIONS = 64

_compiled = {}  # device type -> the compiled block function, shared by every engine of the process
_seen = set()  # configurations compiled in this process: the first call of any other one is compile time


def eager_step_seconds(n_walkers, n_biases):
    """Seconds per eager BAOAB step, a model of the measurements on 2 busy cores (Muller-Brown, float64):
    2.3e-4 s plus 9e-4 s per bias per step, and 1.3e-7 s plus 2.7e-7 s per bias per walker and step.

    Deterministic on purpose: ``compile="auto"`` decides with it, and a seed must reproduce a run
    whatever the machine's load.
    """
    return 2.3e-4 + 9e-4 * n_biases + n_walkers * (1.3e-7 + 2.7e-7 * n_biases)


def fusable_biases(biases):
    """None if every bias can run in fused steps, else the reason why not (one line)."""
    for b in biases:
        if not isinstance(b, Fusable):
            return f"{type(b).__name__} has no fused force path (cvlearn.bias.Fusable)"
        if isinstance(b, Adaptive) and not isinstance(b, Paced):
            return f"{type(b).__name__} changes at every step (Adaptive but not Paced)"
    return None


def event_periods(biases):
    """Steps whose multiples end a block because a bias may change there: ``pace`` of the Paced biases
    and ``read_stride`` of those sharing hills with other walkers."""
    periods = [b.pace for b in biases if isinstance(b, Paced)]
    return periods + [b.read_stride for b in biases if isinstance(b, SharedHills) and b.read_stride]


def _step(system, biases, states, x, v, f, noise, half_dt, c1, noise_scale, inv_m):
    """One BAOAB step (the arithmetic of :meth:`cvlearn.Langevin._step_once`): x, v, f, potential and bias
    energy, and whether the step is finite and on every bias grid."""
    v = torch.addcmul(v, f, inv_m, value=half_dt)
    x = x + half_dt * v
    v = torch.addcmul(c1 * v, noise, noise_scale)
    x = x + half_dt * v
    e, f = system.traced_energy_and_forces(x)
    eb, ok = torch.zeros_like(e), torch.ones((), dtype=torch.bool, device=x.device)
    for b, state in zip(biases, states):
        vb, fb, _, inside = b.fused_forces(x, state)
        eb, f, ok = eb + vb, f + fb, ok & inside.all()
    ok = ok & torch.isfinite(e.sum() + eb.sum() + f.sum() + x.sum())  # finite only if every term is
    v = torch.addcmul(v, f, inv_m, value=half_dt)
    return x, v, f, e, eb, ok


def _block(system, biases, states, x, v, f, noise, n, half_dt, c1, noise_scale, inv_m):
    """``n`` BAOAB steps from positions ``x``, velocities ``v`` and forces ``f`` with the noise rows
    ``noise[:n]``: (x, v, f, potential energy, bias energy, ok, [(CV values, bias) per bias]) of the last
    step; ``ok`` is False (and the loop stops) once a step is non-finite or off a bias grid. The same
    arithmetic as :meth:`cvlearn.Langevin._step_once`."""
    zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def running(i, x, v, f, e, eb, ok):
        return (i < n) & ok

    def step(i, x, v, f, e, eb, ok):
        row = torch.index_select(noise, 0, i.reshape(1))[0]
        x, v, f, e, eb, ok_step = _step(system, biases, states, x, v, f, row, half_dt, c1, noise_scale, inv_m)
        return i + 1, x, v, f, e, eb, ok & ok_step

    start = (torch.zeros((), dtype=torch.int64, device=x.device), x, v, f, zeros, zeros.clone(),
             torch.ones((), dtype=torch.bool, device=x.device))
    _, x, v, f, e, eb, ok = while_loop(running, step, start)
    # What each bias records of the last configuration (the loop carries only the engine's state).
    records = []
    for b, state in zip(biases, states):
        vb, _, s, _ = b.fused_forces(x, state)
        records.append((s, vb))
    return x, v, f, e, eb, ok, records


def _compiled_block(device_type):
    if while_loop is None:
        raise RuntimeError(f"torch {torch.__version__} has no while_loop construct")
    fn = _compiled.get(device_type)
    if fn is None:
        # The C++ wrapper runs the loop in C++ on the CPU; on a GPU the default (Python) wrapper
        # launches the loop's kernels.
        options = {"cpp_wrapper": True} if device_type == "cpu" else None
        fn = _compiled[device_type] = torch.compile(_block, fullgraph=True, dynamic=False, options=options)
    return fn


class FusedSteps:
    """The fused path of one :class:`cvlearn.Langevin` engine: its noise buffer and compiled blocks.

    ``compile_seconds`` accumulates the time of the calls that compiled (the first of a configuration in
    this process); ``failure`` is the reason compilation failed (None while it works).
    """

    def __init__(self, engine):
        self.engine = engine
        shape, dtype, device = tuple(engine.positions.shape), engine.dtype, engine.device
        row_bytes = engine.positions.numel() * engine.positions.element_size()
        self.max_steps = int(min(MAX_BLOCK, max(1, NOISE_BYTES // row_bytes)))
        self.noise = torch.empty((self.max_steps, *shape), dtype=dtype, device=device)
        self.key = (type(engine.system), tuple(type(b) for b in engine.biases), shape, dtype, device.type)
        self.compile_seconds, self.failure = 0.0, None

    def advance(self, n):
        """Integrate ``n`` (<= ``max_steps``) steps as one block and return True; or return False with
        the engine's state and random generator untouched, for the eager steps to replay the block."""
        eng = self.engine
        rng = eng._gen.get_state()
        half_dt, c1, noise_scale, inv_m = eng._coefficients
        try:
            for k in range(n):  # the eager step's draws, in its order
                self.noise[k].normal_(generator=eng._gen)
            fn = _compiled_block(eng.device.type)
            states = [b.fused_state(eng.dtype, eng.device) for b in eng.biases]
            new = self.key not in _seen
            t0 = time.perf_counter()
            with torch._dynamo.config.patch(recompile_limit=MAX_CONFIGURATIONS) if new else contextlib.nullcontext():
                x, v, f, e, eb, ok, records = fn(eng.system, eng.biases, states, eng.positions, eng.velocities,
                                                 eng._forces, self.noise, torch.tensor(n, device=eng.device),
                                                 half_dt, c1, noise_scale, inv_m)
            ok = bool(ok)
        except Exception as exc:  # noqa: BLE001 - any failure to compile or run: the eager steps decide
            eng._gen.set_state(rng)
            self._fail(exc)
            return False
        except BaseException:  # an interrupt: the checkpoint must hold the state before the block
            eng._gen.set_state(rng)
            raise
        if new:
            _seen.add(self.key)
            self.compile_seconds += time.perf_counter() - t0
            log.info("Langevin: compiled the fused steps in %.1f s", time.perf_counter() - t0)
        if not ok:
            eng._gen.set_state(rng)
            return False
        eng.positions, eng.velocities, eng._forces, eng._energies = x, v, f, (e, eb)
        eng.step += n
        for b, (s, vb) in zip(eng.biases, records):
            b.fused_record(s, vb)
        return True

    def _fail(self, exc):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        self.failure = f"{type(exc).__name__}: {' '.join(lines[:2])[:300]}"
        warnings.warn(f"cvlearn.Langevin: the compiled fused steps are unavailable ({self.failure}); running the "
                      "eager steps instead (the eager trajectory, slower). Pass compile=False to skip the attempt.",
                      RuntimeWarning, stacklevel=4)
