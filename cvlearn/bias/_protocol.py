"""The engine-bias contract: what an engine (:class:`cvlearn.Langevin`, :class:`cvlearn.engine.OpenMM`)
calls on a bias, when, and what each call may assume.

A bias supports a part of the contract by having its methods (structural typing): the engines test
``isinstance(bias, Protocol)`` against the runtime-checkable protocols below, never single names. A
subclass that must not offer an inherited method sets it to None (e.g. ``point_value_and_gradient =
None``: the engines then take :meth:`CVBias.value_and_gradient`). Units: positions nm, energies kJ/mol,
temperature K, time ps, CV values in the CV's own unit.

In the order an engine calls them:

1. Construction. The engine takes ``bias=`` (None, one bias, or a list), each a :class:`Bias` (else a
   TypeError), and calls :meth:`Bindable.bind` ``(temperature, timestep)`` once per engine, in list
   order, before any other call. The bias may adopt or refuse the temperature, rebuild itself from its
   files (``restart=True``) and open its output files. A bias shared by several engines
   (:class:`cvlearn.engine.WalkerGroup`) is bound by each, with the same temperature and timestep.
   ``run(hills=path, restart=...)`` calls :meth:`HillsWriter.open_hills` ``(path, restart=restart)``
   before its first step (and refuses ``hills=`` when no bias is a HillsWriter).
2. Each step's forces. :class:`cvlearn.Langevin` calls :meth:`Bias.energy` on the torch positions
   (walkers, particles, dims) of each new configuration (and of the start), under autograd; the force
   is minus the gradient. :class:`cvlearn.engine.OpenMM` groups the biases by their ``cv`` object: where
   every bias of a group is a :class:`CVBias` and the CV has a lean numpy path, it calls
   :meth:`PointEvaluable.point_value_and_gradient` (one CV point as Python floats) if every bias of the
   group is a PointEvaluable, else :meth:`CVBias.value_and_gradient` (numpy (1, d)), and computes ds/dx
   itself; otherwise :meth:`Bias.energy` on positions (1, atoms, 3) under autograd. With
   ``bias_interval=k`` this happens every k-th step only. It also evaluates the bias once more at the
   configuration of every recorded frame and every update step. A force call may assume nothing about
   the step; it must not change the bias, and it records the CV values and bias of the configuration
   it evaluated (what :meth:`Adaptive.update` deposits at and :meth:`ColvarWriter.colvar` reports).
3. Every ``pace`` steps, updates. :class:`cvlearn.Langevin` calls :meth:`Adaptive.update` ``(step,
   positions)`` after every step; :class:`cvlearn.engine.OpenMM`, which returns to Python only between
   integrator calls, calls it only at the steps that are multiples of a :class:`Paced` bias's ``pace``
   (so there every Adaptive bias must be Paced). ``step`` is the engine's global step count (it
   continues across ``run`` calls and restarts), ``positions`` the torch positions of that step, and
   the last force call was at that configuration. The update may change the bias (deposit a hill or a
   kernel, read other walkers' hills): OpenMM then invalidates the forces it cached, while Langevin
   keeps the forces it already computed for that step (BAOAB's next half-kick), so a deposit acts from
   the next force evaluation on, in both engines.
4. Every ``stride`` steps, a COLVAR row (``run(colvar=path)``). :meth:`ColvarWriter.colvar` returns
   ``{column: (walkers,) values}`` of the last evaluated configuration, which is the frame's;
   the keys of the first call make the header, every later call has the same keys. Langevin calls it
   after that step's update, OpenMM before it (so counters such as OPES's ``nker`` may differ by that
   step's deposit). Without a ColvarWriter the engine writes time and potential energy. The engine's
   ``callback(frame)`` follows, with a :class:`cvlearn.engine.Frame`.
5. Hills files. A :class:`HillsWriter` writes its own file (HILLS, OPES KERNELS) as it deposits,
   flushed per row; the engine only points it at a path. Whoever created the bias closes it
   (``close()``), not the engine.
6. Checkpoints. An engine's ``state_dict()`` / ``save_checkpoint`` hold the engine's state only
   (positions, velocities, step, random state); a bias's state is its files, and it is rebuilt from
   them on restart (``restart=True`` at construction, or ``run(hills=..., restart=True)``). A
   :class:`SharedHills` bias (multiple walkers) holds hills not yet in its file: a launcher stores its
   :meth:`SharedHills.walker_state` in the same checkpoint as the engine's state and only then calls
   :meth:`SharedHills.flush_hills` (with ``autoflush`` False), so a restart neither loses nor repeats a
   hill (:func:`cvlearn.walkers.run_walker`).
7. Fused blocks (optional). :class:`cvlearn.Langevin` may integrate the steps between two events
   (a recorded frame, a multiple of a Paced bias's ``pace`` or of a SharedHills bias's ``read_stride``,
   the end of the run) as one compiled function, when every bias is a :class:`Fusable`. Each step's
   force call of item 2 is then :meth:`Fusable.fused_forces` inside that function (traced once by
   ``torch.compile``, so it must be pure torch with no side effects); at the end of the block the engine
   hands the CV values and bias of the last configuration to :meth:`Fusable.fused_record` (what a force
   call records), and calls :meth:`Adaptive.update` once, with that block's last step. Every step at
   which a Paced bias may change ends a block, so the updates it sees are the ones that act.
   A :class:`FusedDeposit` bias (well-tempered metadynamics of a single run) updates inside the compiled
   function instead: after each step that is a multiple of its ``pace``, :meth:`FusedDeposit.fused_deposit`
   turns its state into the next one and returns a record of the deposit; its pace then ends no block,
   and at the end of a block the engine hands the final state and the block's records to
   :meth:`FusedDeposit.fused_commit` (after :meth:`Fusable.fused_record`), which does what the updates
   would have done in Python (the hills, their file rows, c(t) and what the last force call saw). A block
   the engine discards (a step that is not finite) commits nothing.

Examples
--------
>>> import cvlearn as cl
>>> from cvlearn.bias import Adaptive, PointEvaluable
>>> restraint = cl.bias.HarmonicRestraint(cl.features.Positions(1, 1), at=0.5, kappa=100.0)
>>> isinstance(restraint, PointEvaluable), isinstance(restraint, Adaptive)    # a float path; no update
(True, False)
"""

from typing import Any, Protocol, runtime_checkable

__all__ = ["Bias", "CVBias", "PointEvaluable", "Bindable", "Adaptive", "Paced", "ColvarWriter", "HillsWriter",
           "SharedHills", "Fusable", "FusedDeposit"]


@runtime_checkable
class Bias(Protocol):
    """What every bias has: its energy on positions, for the engines' autograd path.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> wall = cl.bias.UpperWall(cl.features.Positions(1, 1), at=1.0, kappa=100.0)    # nm, kJ/mol/nm^2
    >>> isinstance(wall, cl.bias.Bias), wall.energy(torch.tensor([[[1.5]]])).tolist()  # kJ/mol
    (True, [12.5])
    """

    def energy(self, positions):
        """Bias (walkers,) kJ/mol of torch positions (walkers, particles, dims) nm, differentiable in them."""


@runtime_checkable
class CVBias(Bias, Protocol):
    """A bias of a CV that evaluates itself on CV values without autograd (the molecular engine's lean path).

    Examples
    --------
    >>> import cvlearn as cl
    >>> wall = cl.bias.UpperWall(cl.features.Positions(1, 1), at=1.0, kappa=100.0)
    >>> v, dv = wall.value_and_gradient([[1.5]])                 # kJ/mol and kJ/mol/nm at s = 1.5 nm
    >>> isinstance(wall, cl.bias.CVBias), v.tolist(), dv.tolist()
    (True, [12.5], [[50.0]])
    """

    cv: Any
    """positions (walkers, particles, dims) nm -> CV values (walkers, d); biases sharing one ``cv`` object
    share its evaluation."""

    def value_and_gradient(self, s):
        """V (n,) kJ/mol and dV/ds (n, d) at CV values ``s`` (n, d), numpy; records them as the last evaluation."""


@runtime_checkable
class PointEvaluable(CVBias, Protocol):
    """A CVBias with a one-point path in Python floats (the OpenMM engine's hot path for one molecule).

    A subclass whose :meth:`CVBias.value_and_gradient` records more than the inherited point method
    does sets ``point_value_and_gradient = None``: it is then no PointEvaluable.

    Examples
    --------
    >>> import cvlearn as cl
    >>> wall = cl.bias.UpperWall(cl.features.Positions(1, 1), at=1.0, kappa=100.0)
    >>> isinstance(wall, cl.bias.PointEvaluable), wall.point_value_and_gradient([1.5])   # kJ/mol, kJ/mol/nm
    (True, (12.5, [50.0]))
    >>> class ArrayOnly(cl.bias.UpperWall):
    ...     point_value_and_gradient = None
    >>> isinstance(ArrayOnly(cl.features.Positions(1, 1), at=1.0, kappa=100.0), cl.bias.PointEvaluable)
    False
    """

    def point_value_and_gradient(self, point):
        """V (float, kJ/mol) and dV/ds (list of d floats) at CV values ``point`` (sequence of d floats),
        recording the same state as :meth:`CVBias.value_and_gradient`."""


@runtime_checkable
class Bindable(Protocol):
    """A bias that needs the engine's settings before the first step.

    Examples
    --------
    >>> import cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 40))
    >>> metad.bind(300.0, 0.002)                                   # what an engine does: K, ps
    >>> isinstance(metad, cl.bias.Bindable), metad.temperature
    (True, 300.0)
    """

    def bind(self, temperature, timestep):
        """Adopt the engine's ``temperature`` (K) and ``timestep`` (ps); called once, at construction."""


@runtime_checkable
class Adaptive(Protocol):
    """A bias that changes as the run goes (deposits hills or kernels).

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 40), temperature=300.0)
    >>> metad.update(10, torch.zeros(1, 1, 1))                     # step 10 is a multiple of pace: one hill
    >>> isinstance(metad, cl.bias.Adaptive), metad.n_hills
    (True, 1)
    """

    def update(self, step, positions):
        """Called after the forces of ``step``'s configuration (torch positions (walkers, particles, dims) nm)."""


@runtime_checkable
class Paced(Adaptive, Protocol):
    """An Adaptive bias that changes only every ``pace`` steps (what the OpenMM engine needs).

    Examples
    --------
    >>> import cvlearn as cl
    >>> opes = cl.OPES(cl.features.Positions(1, 1), barrier=20.0, pace=50, sigma=0.1, temperature=300.0)
    >>> isinstance(opes, cl.bias.Paced), opes.pace
    (True, 50)
    """

    pace: int
    """Steps between depositions: the engine calls :meth:`Adaptive.update` at least at every multiple."""


@runtime_checkable
class ColvarWriter(Protocol):
    """A bias that reports COLVAR columns.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> wall = cl.bias.UpperWall(cl.features.Positions(1, 1), at=1.0, kappa=100.0)
    >>> _ = wall.energy(torch.tensor([[[1.5]], [[0.0]]]))         # two walkers
    >>> isinstance(wall, cl.bias.ColvarWriter), {k: v.tolist() for k, v in wall.colvar().items()}
    (True, {'uwall.bias': [12.5, 0.0]})
    """

    def colvar(self):
        """``{column name: (walkers,) tensor or array}`` of the last evaluated configuration."""


@runtime_checkable
class HillsWriter(Protocol):
    """A bias that writes its deposits to a file (HILLS, OPES KERNELS), for ``run(hills=...)``.

    Examples
    --------
    >>> import cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 40), temperature=300.0)
    >>> metad.open_hills("HILLS")
    >>> isinstance(metad, cl.bias.HillsWriter), open("HILLS").readline().split()
    (True, ['#!', 'FIELDS', 'time', 'x0', 'sigma_x0', 'height', 'biasf'])
    """

    def open_hills(self, path, restart=False):
        """Write to ``path`` from now on; with ``restart``, first rebuild the bias from it and append."""


@runtime_checkable
class SharedHills(Paced, Protocol):
    """A Paced bias whose hills other processes share through files (PLUMED's multiple walkers), for launchers.

    Examples
    --------
    >>> import cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 40))
    >>> isinstance(metad, cl.bias.SharedHills), metad.walker_files is None      # a single run shares nothing
    (True, True)
    """

    walker_files: Any
    """The walker's files (:class:`~cvlearn.bias._walkers.WalkerFiles`), None for a single run."""
    read_stride: Any
    """Steps between reads of the other walkers' files (None for a single run)."""
    autoflush: bool
    """Append pending hills to the file at every read (a launcher that checkpoints sets it to False)."""

    def walker_state(self):
        """The arrays a checkpoint must hold so that a restart neither repeats nor loses a hill."""

    def flush_hills(self):
        """Append the pending hills to this walker's file; returns their number."""


@runtime_checkable
class Fusable(Bias, Protocol):
    """A bias with a pure torch force path that ``torch.compile`` can trace into the engine's fused steps.

    An Adaptive Fusable bias must also be :class:`Paced`: the engine ends a block at every multiple of
    ``pace`` (and of ``read_stride`` for a :class:`SharedHills` bias) and calls :meth:`Adaptive.update`
    only there. A subclass whose evaluation cannot be traced sets ``fused_forces = None``.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 40), temperature=300.0)
    >>> metad.deposit(torch.tensor([[0.0]]), step=10)
    >>> x = torch.tensor([[[0.1]]], dtype=torch.float64)                 # positions (walkers, particles, dims) nm
    >>> v, f, s, inside = metad.fused_forces(x, metad.fused_state(x.dtype, x.device))
    >>> isinstance(metad, cl.bias.Fusable), bool(inside[0])
    (True, True)
    >>> round(float(v[0]), 4), round(float(f[0, 0, 0]), 2)     # exp(-1/2) kJ/mol; s / sigma^2 V kJ/mol/nm
    (0.6065, 6.07)
    """

    def fused_state(self, dtype, device):
        """The tensors :meth:`fused_forces` reads besides the positions (e.g. the bias grid), current now:
        a pytree of tensors, called before every block (updates change them in place or replace them)."""

    def fused_forces(self, positions, state):
        """Bias (walkers,) kJ/mol, its force (walkers, particles, dims) kJ/mol/nm, the CV values (walkers, d)
        and a (walkers,) bool that is False where the evaluation is not valid (a CV off an ``outside="error"``
        grid: the engine then replays the block through :meth:`Bias.energy`, which raises), at torch
        ``positions``; pure (no side effects, no Python branch on tensor values)."""

    def fused_record(self, cv_values, bias):
        """Record ``cv_values`` (walkers, d) and ``bias`` (walkers,) kJ/mol of the last configuration of a
        block as a force call at it would (for :meth:`Adaptive.update` and :meth:`ColvarWriter.colvar`)."""


@runtime_checkable
class FusedDeposit(Fusable, Paced, Protocol):
    """A Fusable bias whose update (a deposit every ``pace`` steps) also runs inside the engine's fused steps.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 40), temperature=300.0)
    >>> x = torch.tensor([[[0.0]]], dtype=torch.float64)
    >>> state, record = metad.fused_deposit(x, metad.fused_state(x.dtype, x.device), torch.tensor(True))
    >>> metad.fused_commit(state, [record], [10], 10)      # the hill deposited at step 10, a block's last
    >>> isinstance(metad, cl.bias.FusedDeposit), metad.n_hills, round(float(metad.evaluate([[0.0]])[0]), 6)
    (True, 1, 1.0)
    """

    def fused_deposit_points(self, n_walkers):
        """Grid values one deposit of ``n_walkers`` walkers writes (the engine deposits in Python above a limit)."""

    def fused_deposit(self, positions, state, on):
        """(next state, record) after a deposit at torch ``positions`` (the last force call's configuration)
        from ``state`` (as :meth:`Fusable.fused_state`), or the same values with ``on`` (a 0-d bool
        tensor) False; the record is a tuple of tensors of fixed shapes. Pure torch, as ``fused_forces``."""

    def fused_commit(self, state, records, steps, last_step):
        """Adopt ``state``, the state after a block ending at ``last_step``, and record the deposits of
        ``records`` (one tuple per deposit) made at ``steps`` (ints, increasing) as :meth:`Adaptive.update`
        would have; called after :meth:`Fusable.fused_record` of the block's last configuration."""
