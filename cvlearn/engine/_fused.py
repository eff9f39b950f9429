"""Fused, compiled blocks of BAOAB steps for :class:`cvlearn.Langevin`.

Between two events of a run (a recorded frame, a step at which a bias changes in Python, the end of the
run) the steps run as one compiled function: the system's forces, every bias's forces
(:class:`cvlearn.bias.Fusable`), the noise, the BAOAB update and the deposits of
:class:`cvlearn.bias.FusedDeposit` biases (well-tempered metadynamics), with no return to Python in
between. On the 2-core machine of ``benchmarks/RESULTS.md`` the eager step with a metadynamics bias costs
~1 ms whatever the walker count, almost all of it per-operation overhead.

The design was chosen by measurement (``benchmarks/RESULTS.md``, "Fused Langevin steps"):

- one ``torch.compile`` of two nested ``while_loop`` s: the inner one runs ONE traced step per iteration
  up to the next deposit (or the end of the block), the outer one deposits and goes on. The compile
  time does not grow with the block length and one graph serves every block length (blocks of K
  unrolled steps took 20 s to compile for K = 10 and minutes for K = 100, and a graph per length);
- inductor's C++ wrapper (``cpp_wrapper``) on the CPU, so the loops run in C++ (the Python wrapper's
  loop costs ~30 us per iteration); each iteration of a ``while_loop`` costs ~0.2 us per value it
  carries or reads, so constants (the potential's parameters, the grid's geometry) are Python numbers
  compiled into the code, not tensors read at every step;
- the noise is :func:`cvlearn.engine._noise.gaussian_noise`, a pure function of the engine's key and the
  step, computed inside the loop by the same torch operations as the eager steps: a block equals the
  eager steps up to round-off (~1e-13 in float64; a test checks 1e-10). The former design drew the noise
  before each block with torch's generator and deposited hills in Python between blocks of ``pace``
  steps: the draws cost as much as the compiled steps for 10^4 walkers, and a deposit ~1 ms;
- deposits happen inside the compiled function (:meth:`cvlearn.bias.FusedDeposit.fused_deposit`, after
  every multiple of the bias's pace), and their records (hill centers, heights, c(t)) fill preallocated
  slots that the bias commits to its HILLS file at the end of the block, so a block runs up to the next
  recorded frame (at most ``MAX_BLOCK`` steps, and as many deposits as ``RECORD_BYTES`` holds). A bias
  sharing hills with other walkers (files read every ``read_stride``), a deposit too large for one
  graph (``DEPOSIT_POINTS``) and an OPES bias still update in Python, at block ends;
- the compiled function is shared by every engine of the process (dynamo caches one graph per system
  class, bias configuration, shape and dtype). A later process finds the compiled code in inductor's
  on-disk cache (the ``while_loop`` is marked cacheable, below) and skips inductor's vector-instruction
  probe (:mod:`cvlearn.engine._vec_isa`), but dynamo still traces the block: ~2-3 s per configuration
  on 2 cores, against ~30 s cold.

A block that fails (a non-finite energy, a CV off an ``outside="error"`` grid) leaves the engine's and the
biases' state as they were before it (deposits are committed only after a good block), and the engine
replays it through the eager steps, which raise the usual error at the exact step. When compilation is
impossible (no C++ compiler, a potential torch cannot trace) the engine warns once and continues with the
eager steps.
"""

import contextlib
import logging
import time
import warnings

import torch
from torch.utils import _pytree as pytree

from ..bias import Adaptive, Fusable, FusedDeposit, Paced, SharedHills
from . import _vec_isa
from ._noise import gaussian_noise

try:
    from torch._higher_order_ops.while_loop import while_loop
except ImportError:  # a torch without the while_loop construct: the engine then runs the eager steps
    while_loop = None

__all__ = ["FusedSteps", "eager_step_seconds", "event_periods", "fusable_biases", "own_deposits"]

log = logging.getLogger("cvlearn.engine")  # shown by the command line (a pause of seconds is explained)

#: Steps of one block at most (a block also ends at every event): long enough that the ~0.2 ms of Python
#: per block is ~2 % of one walker's steps, short enough that an interrupt loses little.
MAX_BLOCK = 1000
#: Bytes of the deposit records one block may hold (hill centers and heights of every walker per deposit).
RECORD_BYTES = 8 * 2**20
#: Grid values one in-graph deposit may write (walkers x window points x value and derivatives); above
#: it the bias deposits in Python between blocks (the window arrays of the compiled deposit would be
#: hundreds of MB, e.g. 10^4 walkers on a fine 2-D grid).
DEPOSIT_POINTS = 2**22
#: Configurations (system class, biases, shape, dtype) one process may compile: dynamo's default limit
#: of graphs per function (8) would refuse the ninth engine configuration of a benchmark or a notebook.
MAX_CONFIGURATIONS = 64
#: Position values (walkers x atoms x dimensions) below which the compiled code runs on one thread: its
#: loops are then shorter than a parallel region's fork and join, and on a busy machine every barrier of
#: a parallel region waits for a thread the kernel has descheduled (measured: the quickstart's 8 walkers
#: took 29 s instead of 7-9 s with another process running 2 torch threads on the 2 cores). 1000 walkers of
#: Muller-Brown run as fast on one thread as on two; above the limit the loops over walkers run on all of
#: torch's threads (10^4 walkers: 1.2-1.6x faster on 2 threads than on 1; benchmarks/RESULTS.md).
PARALLEL_ELEMENTS = 4096

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


def own_deposits(biases):
    """Indices of the FusedDeposit biases of a single run (no hills shared through files): those whose
    state an engine checkpoint holds, since a compiled deposit and a rebuild from the HILLS file agree
    only to round-off."""
    return tuple(i for i, b in enumerate(biases)
                 if isinstance(b, FusedDeposit) and not (isinstance(b, SharedHills) and b.read_stride))


def in_graph_deposits(biases, n_walkers):
    """Indices of the biases that deposit inside the compiled steps: :func:`own_deposits` whose deposit
    fits ``DEPOSIT_POINTS``."""
    return tuple(i for i in own_deposits(biases) if biases[i].fused_deposit_points(n_walkers) <= DEPOSIT_POINTS)


def event_periods(biases):
    """Steps whose multiples end a block because a bias may change there in Python: ``pace`` of the Paced
    biases and ``read_stride`` of those sharing hills with other walkers."""
    periods = [b.pace for b in biases if isinstance(b, Paced)]
    return periods + [b.read_stride for b in biases if isinstance(b, SharedHills) and b.read_stride]


def _step(system, biases, states, key, step, x, v, f, half_dt, c1, noise_scale, inv_m):
    """One BAOAB step from ``step`` (the arithmetic of :meth:`cvlearn.Langevin._step_once`): x, v, f and
    whether the positions are finite and every CV on its bias grid (energies, forces and velocities are
    checked once per deposit interval)."""
    noise = gaussian_noise(key, step, x.shape, x.dtype, x.device)
    v = torch.addcmul(v, f, inv_m, value=half_dt)
    x = x + half_dt * v
    v = torch.addcmul(c1 * v, noise, noise_scale)
    x = x + half_dt * v
    _, f = system.traced_energy_and_forces(x)
    inside = torch.isfinite(x).all()  # a blow-up stops the loop at once
    for b, state in zip(biases, states):
        _, fb, _, on_grid = b.fused_forces(x, state)
        f, inside = f + fb, inside & on_grid.all()
    v = torch.addcmul(v, f, inv_m, value=half_dt)
    return x, v, f, inside


def _observe(system, biases, states, x, v, f):
    """What the last force call at ``x`` saw, packed into one (walkers, 2 + sum of (d + 1)) tensor: potential
    energy, bias energy, then each bias's CV values (d columns) and bias; and whether the configuration is
    finite. One tensor because a loop body must not return one tensor twice (inductor's C++ wrapper,
    torch 2.13, crashes), and with one bias the bias energy IS that bias's value."""
    e, _ = system.traced_energy_and_forces(x)
    eb, columns = torch.zeros_like(e), []
    for b, state in zip(biases, states):
        vb, _, s, _ = b.fused_forces(x, state)
        eb, columns = eb + vb, columns + [s.to(e.dtype), vb[:, None].to(e.dtype)]
    finite = torch.isfinite(e.sum() + eb.sum() + f.sum() + x.sum() + v.sum())  # finite only if every term is
    return torch.cat([e[:, None], eb[:, None], *columns], 1), finite


def _block(system, biases, depositing, slots, seen_like, states, key, start, n, x, v, f, half_dt, c1, noise_scale,
           inv_m):
    """``n`` (>= 1) BAOAB steps from step ``start`` (0-d tensors), positions ``x``, velocities ``v`` and
    forces ``f``, with the bias states ``states`` (one pytree per bias): the biases listed in ``depositing``
    deposit after every multiple of their pace, into record slots shaped by ``slots`` (per depositing bias,
    the (shape, dtype) of each record buffer). ``seen_like`` is the (shape, dtype) of what a force call
    saw (:func:`_observe`). Shapes come from the caller, so no deposit or force call is traced only to
    learn them (a smaller graph: 20-30 % less cold compilation time).

    Returns (x, v, f, what the last force call saw, ok, the states of the depositing biases, their record
    slots, their deposit counts); ``ok`` is False (and the loops stop) once a CV is off its grid or a
    position is not finite, or at the next deposit or the end any value is not finite. The same
    arithmetic as the eager steps.
    """
    end = start + n
    flat_states, state_spec = pytree.tree_flatten([states[i] for i in depositing])
    paces = [biases[i].pace for i in depositing]
    zeros = lambda shape, dtype: torch.zeros(shape, dtype=dtype, device=x.device)  # noqa: E731
    flat_slots, slot_spec = pytree.tree_flatten([tuple(zeros(*buffer) for buffer in record) for record in slots])
    seen = zeros(*seen_like)  # overwritten by the first step
    counts = [zeros((), torch.int64) for _ in depositing]
    sizes = [len(flat_states), len(flat_slots)]

    def unpack(rest):
        parts, a = [], 0
        for size in sizes:
            parts.append(list(rest[a:a + size]))
            a += size
        return (*parts, list(rest[a:]))

    def outer_running(step, x, v, f, seen, ok, *rest):
        return (step < end) & ok

    def outer_step(step, x, v, f, seen, ok, *rest):
        flat_states, flat_slots, counts = unpack(rest)
        all_states = list(states)
        for i, state in zip(depositing, pytree.tree_unflatten(flat_states, state_spec)):
            all_states[i] = state
        stop = end
        for pace in paces:  # the next deposit
            stop = torch.minimum(stop, (step // pace + 1) * pace)

        def running(step, x, v, f, ok):
            return (step < stop) & ok

        def one(step, x, v, f, ok):
            x, v, f, inside = _step(system, biases, all_states, key, step, x, v, f, half_dt, c1, noise_scale, inv_m)
            return step + 1, x, v, f, ok & inside

        step, x, v, f, ok = while_loop(running, one, (step, x, v, f, ok))
        # What the last force call saw, computed again once per deposit interval: carried out of the inner
        # loop instead, it made every step ~20 % slower for one walker (one more carried tensor and a cat).
        seen, finite = _observe(system, biases, all_states, x, v, f)  # before this step's deposit
        ok = ok & finite
        new_states, slot_list = [], pytree.tree_unflatten(flat_slots, slot_spec)
        for j, (i, pace) in enumerate(zip(depositing, paces)):
            on = ok & (step % pace == 0)
            state, record = biases[i].fused_deposit(x, all_states[i], on)
            new_states.append(state)
            at = counts[j].reshape(1)  # a slot is taken (the count moves on) only by a deposit
            slot_list[j] = tuple(buf.index_copy(0, at, r[None].to(buf.dtype)) for buf, r in zip(slot_list[j], record))
            counts[j] = counts[j] + on.long()
        return (step, x, v, f, seen, ok, *pytree.tree_flatten(new_states)[0], *pytree.tree_flatten(slot_list)[0],
                *counts)

    ok = torch.ones((), dtype=torch.bool, device=x.device)
    carried = (start.clone(), x, v, f, seen, ok, *flat_states, *flat_slots, *counts)
    _, x, v, f, seen, ok, *rest = while_loop(outer_running, outer_step, carried)
    flat_states, flat_slots, counts = unpack(rest)
    return (x, v, f, seen, ok, pytree.tree_unflatten(flat_states, state_spec),
            pytree.tree_unflatten(flat_slots, slot_spec), counts)


def _compiled_block(device_type):
    if while_loop is None:
        raise RuntimeError(f"torch {torch.__version__} has no while_loop construct")
    fn = _compiled.get(device_type)
    if fn is None:
        # The C++ wrapper runs the loop in C++ on the CPU; on a GPU the default (Python) wrapper
        # launches the loop's kernels.
        options = {"cpp_wrapper": True} if device_type == "cpu" else {}
        # Let inductor's on-disk FX graph cache keep graphs with a while_loop (torch 2.13 refuses by default):
        # its key hashes the loop bodies' code and constants too (checked: runs differing only in a constant of
        # the potential or of the deposit compile anew and equal the eager steps), so a later process skips
        # inductor's lowering and C++ compilation (dynamo's tracing remains; see the module's docstring).
        options["unsafe_marked_cacheable_functions"] = {"torch.ops.higher_order.while_loop": torch.__version__}
        fn = _compiled[device_type] = torch.compile(_block, fullgraph=True, dynamic=False, options=options)
    return fn


class FusedSteps:
    """The fused path of one :class:`cvlearn.Langevin` engine: which biases deposit inside it, how long a
    block may be, and the compiled blocks.

    ``compile_seconds`` accumulates the time of the calls that compiled (the first of a configuration in
    this process); ``failure`` is the reason compilation failed (None while it works).
    """

    def __init__(self, engine):
        self.engine = engine
        biases = engine.biases
        self.depositing = in_graph_deposits(biases, engine.n_walkers)
        python = [b for i, b in enumerate(biases) if i not in self.depositing]
        #: Steps whose multiples end a block (the updates left to Python), and those updates.
        self.periods = event_periods(python)
        self.updates = [b.update for b in python if isinstance(b, Adaptive)]
        shape = tuple(engine.positions.shape)
        self.key = (type(engine.system), tuple(type(b) for b in biases), self.depositing, shape, engine.dtype,
                    engine.device.type)
        self.compile_seconds, self.failure = 0.0, None
        self.max_steps = MAX_BLOCK
        try:
            self._size_blocks()
        except Exception as exc:  # noqa: BLE001 - a fused path that fails even eagerly: the eager steps run
            self._fail(exc, stacklevel=5)

    def _size_blocks(self):
        """Shapes the compiled block allocates, from one eager force call and one eager deposit with no hill
        (tracing them in the block only to learn shapes made its graph ~20 % larger): what a force call saw
        (energy, bias energy, each bias's d CV values and bias; see :func:`_observe`), whose columns per
        bias are ``widths``, and the record slots of the depositing biases, as many as a block needs (the
        loop copies them at every deposit) plus a spare that a step without a deposit writes to."""
        eng, biases = self.engine, self.engine.biases
        states = [b.fused_state(eng.dtype, eng.device) for b in biases]
        energy, _ = eng.system.traced_energy_and_forces(eng.positions)
        self.widths = [b.fused_forces(eng.positions, state)[2].shape[1] for b, state in zip(biases, states)]
        self._seen_like = ((eng.n_walkers, 2 + sum(d + 1 for d in self.widths)), energy.dtype)
        off = torch.zeros((), dtype=torch.bool, device=eng.device)
        records = [biases[i].fused_deposit(eng.positions, states[i], off)[1] for i in self.depositing]
        record_bytes = sum(r.numel() * r.element_size() for record in records for r in record)
        pace = min((biases[i].pace for i in self.depositing), default=MAX_BLOCK)
        self.slots = max(2, min(MAX_BLOCK // pace + 2, RECORD_BYTES // max(record_bytes, 1)))
        self._slot_shapes = tuple(tuple(((self.slots, *r.shape), r.dtype) for r in record) for record in records)
        # A block of n steps holds at most ceil(n / pace) deposits of the most frequent depositor.
        self.max_steps = min(MAX_BLOCK, (self.slots - 1) * pace)

    def advance(self, n):
        """Integrate ``n`` (<= ``max_steps``) steps as one block and return True; or return False with
        the engine's and the biases' state untouched, for the eager steps to replay the block."""
        eng = self.engine
        half_dt, c1, noise_scale, inv_m = eng._coefficients
        first = eng.step
        try:
            fn = _compiled_block(eng.device.type)
            states = [b.fused_state(eng.dtype, eng.device) for b in eng.biases]
            new = self.key not in _seen
            if new:
                log.info("Langevin: compiling the fused steps of this configuration (20-30 s the first time, "
                         "a few seconds once torch has them in its disk cache)")
            t0 = time.perf_counter()
            # Every call: a bias state that grows (OPES's kernel slots) may recompile at any block.
            with torch._dynamo.config.patch(recompile_limit=MAX_CONFIGURATIONS), self._inductor_options(), \
                    _vec_isa.compile_context():
                x, v, f, seen, ok, dep_states, slots, counts = fn(
                    eng.system, eng.biases, self.depositing, self._slot_shapes, self._seen_like, states,
                    torch.tensor(eng.noise_key, dtype=torch.int64, device=eng.device),
                    torch.tensor(first, device=eng.device), torch.tensor(n, device=eng.device),
                    eng.positions, eng.velocities, eng._forces, half_dt, c1, noise_scale, inv_m)
            ok = bool(ok)
        except Exception as exc:  # noqa: BLE001 - any failure to compile or run: the eager steps decide
            self._fail(exc)
            return False
        if new:
            _seen.add(self.key)
            self.compile_seconds += time.perf_counter() - t0
            log.info("Langevin: compiled the fused steps in %.1f s", time.perf_counter() - t0)
        if not ok:
            return False
        eng.positions, eng.velocities, eng._forces, eng._energies = x, v, f, (seen[:, 0], seen[:, 1])
        eng.step += n
        column = 2
        for b, d in zip(eng.biases, self.widths):
            b.fused_record(seen[:, column:column + d], seen[:, column + d])
            column += d + 1
        for i, state, records, count in zip(self.depositing, dep_states, slots, counts):
            pace = eng.biases[i].pace
            steps = list(range((first // pace + 1) * pace, first + n + 1, pace))
            if int(count) != len(steps):
                raise RuntimeError(f"the fused steps made {int(count)} deposits where {len(steps)} were due")
            eng.biases[i].fused_commit(state, [tuple(r[k] for r in records) for k in range(len(steps))], steps,
                                       eng.step)
        return True

    def _inductor_options(self):
        """Inductor's options for compiling this engine's blocks: one thread below ``PARALLEL_ELEMENTS``.
        A function of the positions' shape, on which the compiled code is guarded, so a graph found
        compiled in the process was compiled with the same options."""
        if self.engine.positions.numel() >= PARALLEL_ELEMENTS:
            return contextlib.nullcontext()
        from torch._inductor import config

        return config.patch({"cpp.threads": 1})

    def _fail(self, exc, stacklevel=4):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        self.failure = f"{type(exc).__name__}: {' '.join(lines[:2])[:300]}"
        warnings.warn(f"cvlearn.Langevin: the compiled fused steps are unavailable ({self.failure}); running the "
                      "eager steps instead (the eager trajectory, slower). Pass compile=False to skip the attempt.",
                      RuntimeWarning, stacklevel=stacklevel)
