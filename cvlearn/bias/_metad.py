"""Well-tempered metadynamics on 1 to 3 CVs, with hills accumulated on a grid."""

import logging
import math
import os

import numpy as np
import torch

from .._validation import check_positive
from ..io import PlumedWriter, parse_number, read_plumed
from ..units import BOLTZMANN, as_float
from ._binding import adopt_engine_settings
from ._gridbias import GridBias
from ._walkers import WalkerFiles, fsync_path

__all__ = ["WellTemperedMetad"]

log = logging.getLogger("cvlearn")

#: Hills times grid points up to which the compiled deposit evaluates every hill at every grid point
#: (:meth:`HermiteField.dense_add_gaussians`, matrix products) instead of scattering windows.
DENSE_DEPOSIT_POINTS = 2**23


class WellTemperedMetad(GridBias):
    """Well-tempered metadynamics (Barducci, Bussi & Parrinello, PRL 100, 020603 (2008)).

    Every ``pace`` steps each walker deposits a Gaussian hill at its current CV value s, of height
    ``height * exp(-V(s) / (kB * T * (bias_factor - 1)))``: hills shrink where bias has accumulated,
    and the bias converges to ``V(s) = -(1 - 1/bias_factor) F(s)``. All walkers of a batched engine
    share (and fill) one bias. Hills are summed on ``grid`` (value and derivatives, exactly), so a
    step costs the same after 10 or 10^5 hills; between grid points the bias is a C1 cubic Hermite
    interpolant, so forces are continuous. The force on the atoms is -dV/ds * ds/dx by autograd
    through ``cv``.

    Parameters
    ----------
    cv : torch.nn.Module
        positions (walkers, particles, dims) -> (walkers, d) CV values (or (walkers,) for d = 1),
        differentiable. ``cv.names`` (if present) names the COLVAR/HILLS columns.
    sigma : float or sequence of float
        Hill widths per CV, in the CV's unit.
    height : float
        Initial hill height, kJ/mol.
    bias_factor : float or None
        gamma = (T + Delta T) / T > 1; None for untempered metadynamics (hills never shrink).
    pace : int
        Steps between depositions.
    grid : Grid
        Range and resolution of the bias; use a spacing of at most sigma / 4.
    temperature : float, optional
        K; taken from the engine when omitted.
    outside : {"error", "wall"}
        What happens when a CV leaves a non-periodic grid range: stop with a clear error, or push
        back with a harmonic wall of force constant ``wall_kappa`` (kJ/mol per CV unit^2) beyond
        the edge (the grid bias is held at its edge value there). Never a silent zero force.
    hills : str, optional
        Path of the HILLS file (PLUMED format) written as hills are deposited.
    restart : bool
        Read the existing ``hills`` file, rebuild the bias from it, and append to it. With
        ``walkers_dir``: read every walker's file, this walker's own included.
    label : str
        Prefix of the COLVAR columns (``label.bias``, ``label.rct``), as PLUMED's action label.
    walkers_dir : str, optional
        Share the bias with other processes or machines by PLUMED's multiple-walkers protocol
        (``WALKERS_DIR``): this walker appends its hills to ``walkers_dir/<hills>.<walker_id>``
        (``hills`` is then the file name prefix, default ``"HILLS"``), pushes them to storage every
        ``read_stride`` steps, and every ``read_stride`` steps adds the complete new lines of the other
        walkers' files to its grid. The bias is therefore a pure function of the hills in the files:
        a walker restarted from the directory (``restart=True``) rebuilds it. Without ``restart`` its
        own old file is kept as ``bck.N.<name>`` and the others' existing hills are read at the first
        read, as PLUMED does. PLUMED walkers (``WALKERS_N``, ``WALKERS_ID``, ``WALKERS_DIR``,
        ``WALKERS_RSTRIDE``, same CV names, sigma and bias factor) can share the directory.
    walker_id : int, optional
        This walker's id, 0 to ``n_walkers - 1`` (``WALKERS_ID``); two live walkers with one id are refused.
    n_walkers : int, optional
        Number of walkers sharing ``walkers_dir`` (``WALKERS_N``).
    read_stride : int, optional
        Steps between reads of the other walkers' files (``WALKERS_RSTRIDE``); default ``pace``.
        See ``docs/scaling.md`` for how to choose it with many walkers.

    Attributes
    ----------
    autoflush : bool
        With ``walkers_dir``: append this walker's new hills to its file at every read (True, the
        default). A launcher that checkpoints the engine sets it to False and calls
        :meth:`flush_hills` right after each checkpoint, so a restart neither repeats nor loses a hill.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> cv = cl.TICA(lagtime=1, n_components=1).fit(torch.randn(100, 2).numpy()).to_module()
    >>> metad = cl.WellTemperedMetad(cv, sigma=0.1, height=1.0, bias_factor=10, pace=100,
    ...                              grid=cl.Grid(-5, 5, 200), temperature=300)
    >>> metad.deposit(torch.tensor([[0.0]]), step=100)
    >>> round(float(metad.evaluate([[0.0]])[0]), 6)
    1.0
    """

    def __init__(self, cv, sigma, height, bias_factor, pace, grid, temperature=None, outside="error",
                 wall_kappa=1000.0, hills=None, restart=False, label="metad", walkers_dir=None, walker_id=None,
                 n_walkers=None, read_stride=None):
        owner = "WellTemperedMetad"
        super().__init__(cv, grid, outside=outside, wall_kappa=wall_kappa, label=label)
        d = grid.ndim
        sigma_arr = np.asarray(sigma, dtype=np.float64)
        if sigma_arr.ndim > 1 or (sigma_arr.ndim == 1 and len(sigma_arr) not in (1, d)):
            raise ValueError(f"sigma must be one value or one per CV ({d}: {self.names}); got {sigma!r}.")
        self.sigma = np.broadcast_to(sigma_arr, (d,)).copy()
        if not np.all(self.sigma > 0):
            raise ValueError(f"sigma must be positive for each of the {d} CVs; got {sigma}.")
        self._sigmas = tuple(float(x) for x in self.sigma)  # Python numbers: compiled into the fused steps
        self.height = check_positive(as_float(height, "kJ/mol"), "height", owner)
        if bias_factor is not None and not (np.isfinite(bias_factor) and bias_factor > 1):
            raise ValueError(f"bias_factor must be > 1 (or None for untempered metadynamics); got {bias_factor}.")
        self.bias_factor = None if bias_factor is None else float(bias_factor)
        self.pace = check_positive(pace, "pace", owner, integer=True)
        self.temperature = None if temperature is None else check_positive(as_float(temperature, "K"),
                                                                           "temperature", owner)
        coarse = grid.spacing > self.sigma / 2
        if coarse.any():
            raise ValueError(f"The grid spacing {grid.spacing.tolist()} is coarser than sigma/2 "
                             f"({(self.sigma / 2).tolist()}); hills would be poorly resolved. Use more bins.")
        self.timestep = None
        self._hills, self._n_hills = [], 0  # arrays of rows: time, centers..., sigmas..., height (actual), step
        self.rct_steps, self.rct = [0], [0.0]
        self._writer = None
        self._restart = restart
        self.autoflush, self._pending, self._step = True, [], 0
        if walkers_dir is None:
            if walker_id is not None or n_walkers is not None or read_stride is not None:
                raise ValueError("walker_id, n_walkers and read_stride set up multiple walkers: pass walkers_dir= too "
                                 "(the directory the walkers share), or drop them for a single run.")
            self._walkers, self.read_stride = None, None
            self.hills_path = None if hills is None else os.fspath(hills)
            if restart and self.hills_path is None:
                raise ValueError("restart=True needs the path of the HILLS file to restart from (hills=...).")
            return
        if walker_id is None or n_walkers is None:
            raise ValueError("walkers_dir= needs walker_id= (this walker, counted from 0) and n_walkers= (how many "
                             "walkers share the directory), as PLUMED's WALKERS_ID and WALKERS_N.")
        self.read_stride = self.pace if read_stride is None else check_positive(read_stride, "read_stride", owner,
                                                                               integer=True)
        self._walkers = WalkerFiles(walkers_dir, walker_id, n_walkers, file="HILLS" if hills is None else hills)
        self.hills_path = self._walkers.own_path
        self._from = [0] * self._walkers.n_walkers  # hills in this bias by walker of origin

    # -- engine protocol -------------------------------------------------------------------------
    def bind(self, temperature, timestep):
        """Called by the engine: adopt its temperature (K) and timestep (ps); open the HILLS file."""
        adopt_engine_settings(self, temperature, timestep, "metadynamics")
        if self.hills_path is not None and self._writer is None:
            self.open_hills(self.hills_path, self._restart)

    def open_hills(self, path, restart=False):
        """Write hills to ``path`` from now on; with ``restart``, first rebuild the bias from it and append.

        Without ``restart`` an existing file is kept as ``bck.N.<name>`` (never overwritten). With
        ``walkers_dir`` the path is this walker's file, and ``restart`` reads every walker's file.
        """
        if self._walkers is not None and os.path.abspath(path) != os.path.abspath(self._walkers.own_path):
            raise ValueError(f"This walker writes {self._walkers.own_path} (walkers_dir, walker_id and the hills= "
                             f"prefix set it); got hills={os.fspath(path)!r}. Drop hills= from run().")
        if self._writer is not None:
            if os.path.abspath(path) == os.path.abspath(self._writer.path):
                return
            self._writer.close()
        self.hills_path = os.fspath(path)
        if restart and os.path.exists(self.hills_path):
            n = self.load_hills(self.hills_path)
            if self._walkers is not None:
                self._from[self._walkers.walker_id] += n
            log.info("Restarted metadynamics from %d hills in %s", n, self.hills_path)
        if restart and self._walkers is not None:
            n = self.read_walkers()
            log.info("Read %d hills of the other walkers in %s", n, self._walkers.directory)
        self._writer = PlumedWriter(self.hills_path, self._hill_fields(), self._hill_constants(), append=restart)
        self._restart = False

    @property
    def kT(self):
        if self.temperature is None:
            raise ValueError("The metadynamics temperature is unknown: pass temperature= or attach the bias "
                             "to an engine first.")
        return BOLTZMANN * self.temperature

    def update(self, step, positions):
        """Deposit one hill per walker every ``pace`` steps, at the CV values of the last energy call;
        with ``walkers_dir``, every ``read_stride`` steps also flush this walker's hills and read the others'."""
        self._step = step
        if step % self.pace == 0:
            s = self._last_s if self._last_s is not None else self.cv_values(positions).detach()
            self.deposit(s, step)
        if self._walkers is not None and step % self.read_stride == 0:
            if self.autoflush:
                self.flush_hills()
            self.read_walkers()

    def energy(self, positions):
        self._rct_in_force = self.rct[-1]
        return super().energy(positions)

    def value_and_gradient(self, s):
        self._rct_in_force = self.rct[-1]
        return super().value_and_gradient(s)

    def point_value_and_gradient(self, point):
        # The engines' float path (one CV point): records the same c(t) as value_and_gradient.
        self._rct_in_force = self.rct[-1]
        return super().point_value_and_gradient(point)

    def fused_record(self, cv_values, bias):
        # The fused engine steps' record of a block's last configuration: the same c(t) as energy().
        self._rct_in_force = self.rct[-1]
        super().fused_record(cv_values, bias)

    def colvar(self):
        """COLVAR columns of the last evaluated configuration: CVs, ``label.bias``, ``label.rct``.

        ``rct`` is c(t) of the bias that was evaluated (before a hill deposited at the same step), as
        PLUMED prints it, so (bias - rct) / kT in the file is each frame's c(t) log-weight.
        """
        out = super().colvar()
        bias = out[f"{self.label}.bias"]
        out[f"{self.label}.rct"] = torch.full_like(bias, getattr(self, "_rct_in_force", self.rct[-1]))
        return out

    # -- hills -----------------------------------------------------------------------------------
    def deposit(self, centers, step):
        """Deposit hills at ``centers`` (n, d) (one per walker), all with heights from the bias before."""
        c = torch.as_tensor(centers, dtype=torch.float64).reshape(-1, self.grid.ndim)
        c = self.grid.wrap(c)
        inside = torch.as_tensor(~self.grid.outside(c.cpu().numpy()))
        heights = np.full(len(c), self.height)
        if self.bias_factor is not None:
            v = np.zeros(len(c))
            if inside.any():
                with torch.no_grad():
                    v[inside.numpy()] = self.field.evaluate(c[inside].to(self.field.data.device)).cpu().numpy()
            heights *= np.exp(-v / (self.kT * (self.bias_factor - 1.0)))
        self._add(c.cpu().numpy(), heights, step)
        if self._walkers is not None:
            self._from[self._walkers.walker_id] += len(c)

    def _add(self, centers, heights, step, time=None, write=True, at=None):
        """Add hills (n, d) to the grid and the record; ``step`` and ``time`` (ps) per hill or one for all.

        ``at`` is the step from which they act in this run (default: the latest hill's), for c(t).
        """
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, self.grid.ndim)
        if len(centers) == 0:
            return
        self.field.add_gaussians(centers, self.sigma, heights)
        self._record_hills(centers, heights, step, time, write, at, self._c_of_t())

    def _record_hills(self, centers, heights, step, time, write, at, rct):
        """Record hills (n, d) already on the grid, with c(t) ``rct`` (kJ/mol) from then on; see :meth:`_add`."""
        n = len(centers)
        step = np.broadcast_to(np.asarray(step, dtype=np.int64), (n,))
        if time is None:
            time = step * self.timestep if self.timestep is not None else step.astype(np.float64)
        rows = np.column_stack([np.broadcast_to(time, (n,)), centers, np.tile(self.sigma, (n, 1)),
                                np.broadcast_to(heights, (n,)), step])
        self._hills.append(rows)
        self._n_hills += n
        # Other walkers' hills arrive out of time order: c(t) steps in the order the bias changed.
        self.rct_steps.append(max(int(step.max()) if at is None else int(at), self.rct_steps[-1]))
        self.rct.append(rct)
        if not write:
            return
        if self._walkers is not None:
            self._pending.append(self._file_rows(rows))
        elif self._writer is not None:
            self._writer.write(self._file_rows(rows))

    # -- fused engine steps (cvlearn.bias.FusedDeposit) -------------------------------------------
    def fused_deposit_points(self, n_walkers):
        """Grid values one deposit of ``n_walkers`` hills writes (window points times value and derivatives)."""
        return n_walkers * 2**self.grid.ndim * self.field.window_points(self.sigma)

    def fused_deposit(self, positions, state, on):
        """:meth:`deposit` at the CV values of torch ``positions`` in torch operations: (the grid after the
        hills, (centers (walkers, d), heights (walkers,) kJ/mol, c(t) after the deposit kJ/mol)); heights
        are zero and the grid unchanged where ``on`` is False."""
        c = self._traced_cv_values(positions).to(state.dtype)
        heights = torch.full(c.shape[:1], self.height, dtype=state.dtype, device=state.device)
        if self.bias_factor is not None:
            clamped, held = self._traced_clamp(c)
            v, _ = self.field.traced_value_and_gradient(clamped, state)
            v = torch.where(held.any(1), torch.zeros_like(v), v)  # a hill off the grid: the full height
            heights = heights * torch.exp(v * (-1.0 / (self.kT * (self.bias_factor - 1.0))))
        heights = heights * on.to(heights.dtype)
        if len(c) * self.field.points <= DENSE_DEPOSIT_POINTS:
            state = self.field.dense_add_gaussians(state, c, self._sigmas, heights)
        else:
            state = self.field.traced_add_gaussians(state, c, self._sigmas, heights)
        return state, (c, heights, self._rct_of(state))

    def fused_commit(self, state, records, steps, last_step):
        """Adopt the grid ``state`` of a fused block and record its deposits as :meth:`update` would have."""
        if state is not self.field.data:
            self.field.data.copy_(state)
        for (centers, heights, rct), step in zip(records, steps):
            self._record_hills(centers.cpu().numpy(), heights.cpu().numpy(), step, None, True, None, float(rct))
        self._step = last_step
        # The last force call (fused_record) saw c(t) before a deposit at that same step, as in energy().
        self._rct_in_force = self.rct[-2] if steps and steps[-1] == last_step else self.rct[-1]

    # -- multiple walkers ------------------------------------------------------------------------
    def flush_hills(self):
        """Append this walker's pending hills to its HILLS file and push them to storage (walkers_dir only).

        Returns the number of hills written.
        """
        if not self._pending:
            return 0
        if self._writer is None:
            self.open_hills(self.hills_path, self._restart)
        rows = np.concatenate(self._pending)
        self._writer.write(rows)
        fsync_path(self._writer.path)  # visible to walkers on other machines (NFS commits on fsync)
        self._pending = []
        return len(rows)

    def read_walkers(self):
        """Add the complete hills the other walkers appended to their files since the last read.

        They act from the current step on (for c(t)). Returns the number of hills added.
        """
        if self._walkers is None:
            raise ValueError("read_walkers() needs multiple walkers: create the bias with walkers_dir=, walker_id= "
                             "and n_walkers=.")
        parts = []
        for j, tail in self._walkers.tails.items():
            for fields, rows in tail.read():
                parts.append((tail.path, self._hill_columns(tail.path, fields, tail.constants, rows)))
                self._from[j] += len(rows)
        if not parts:
            return 0
        time, centers, heights = self._checked(parts)
        dt = self.timestep or 1.0
        self._add(centers, heights, np.rint(time / dt).astype(np.int64), time=time, write=False, at=self._step)
        return len(time)

    @property
    def walker_hill_counts(self):
        """Hills in this bias by walker of origin (list of n_walkers ints): the prefix of each walker's file
        (this walker's own: deposited, pending included) that the bias is the sum of."""
        if self._walkers is None:
            raise ValueError("walker_hill_counts needs multiple walkers (walkers_dir=).")
        return list(self._from)

    @property
    def walker_files(self):
        """The :class:`~cvlearn.bias._walkers.WalkerFiles` of a multiple-walkers bias (None for a single run)."""
        return self._walkers

    def walker_state(self):
        """What a checkpoint must hold so that a restart neither repeats nor loses this walker's hills:
        ``n_hills_in_file`` and ``hills_pending``, the rows (in the file's units) not yet appended."""
        pending = np.concatenate(self._pending) if self._pending else np.zeros((0, len(self._hill_fields())))
        return {"n_hills_in_file": self._from[self._walkers.walker_id] - len(pending), "hills_pending": pending}

    def _c_of_t(self):
        """c(t) of Tiwary & Parrinello (JPCB 119, 736 (2015)) on the grid, kJ/mol (NaN without a temperature)."""
        if self.temperature is None:
            return float("nan")
        return float(self._rct_of(self.field.data))

    def _rct_of(self, data):
        """c(t) (0-d tensor, kJ/mol) of the grid values and derivatives ``data``."""
        beta = 1.0 / self.kT
        v = data[0].flatten()
        if self.bias_factor is None:
            num, den = beta * v, torch.zeros_like(v)
        else:
            g = self.bias_factor
            num, den = beta * v * g / (g - 1.0), beta * v / (g - 1.0)
        return (torch.logsumexp(num, 0) - torch.logsumexp(den, 0)) / beta

    def _hill_fields(self):
        return ["time", *self.names, *[f"sigma_{n}" for n in self.names], "height", "biasf"]

    def _hill_constants(self):
        consts = {"multivariate": "false", "kerneltype": "gaussian"}
        for i, n in enumerate(self.names):
            if self.grid.periodic[i]:  # PLUMED's METAD restart compares these strings to its own "-pi" / "pi"
                angle = (float(self.grid.lo[i]), float(self.grid.hi[i])) == (-math.pi, math.pi)
                consts[f"min_{n}"] = "-pi" if angle else repr(float(self.grid.lo[i]))
                consts[f"max_{n}"] = "pi" if angle else repr(float(self.grid.hi[i]))
        return consts

    def _file_rows(self, rows):
        d = self.grid.ndim
        out = rows[:, : 2 + 2 * d].copy()
        out[:, -1] = rows[:, 1 + 2 * d] * self._height_scale()
        biasf = 1.0 if self.bias_factor is None else self.bias_factor
        return np.column_stack([out, np.full(len(rows), biasf)])

    def load_hills(self, path):
        """Add every hill of a PLUMED HILLS file to this bias; returns the number of hills read.

        Columns are matched by name (time, the CV names, sigma_<name>, height). Hills sharing a time
        stamp are one deposition (several walkers), for the c(t) series.
        """
        # One restarted file may hold several FIELDS blocks, in different column orders: read each by name.
        return sum(self._load_table(path, b.fields, b.constants, b.data) for b in read_plumed(path).blocks
                   if len(b.data))

    def _load_table(self, path, fields, constants, data):
        """Add the hills of a parsed HILLS table (see :meth:`load_hills`); returns their number."""
        time, centers, heights = self._checked([(path, self._hill_columns(path, fields, constants, data))])
        dt = self.timestep or 1.0
        for t in np.unique(time):
            sel = time == t
            self._add(centers[sel], heights[sel], int(round(t / dt)), time=t, write=False)
        return len(data)

    def _hill_columns(self, path, fields, constants, data):
        """HILLS rows as columns time, centers, sigmas, height (file units), biasf (NaN if absent), after
        checking the file's CV names and periods against this bias."""
        missing = [f for f in self._hill_fields()[:-1] if f not in fields]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing} (it has {fields}); the CV names of this bias "
                             f"are {self.names}. Every file read into one bias must come from the same CVs "
                             "(same names, e.g. cv.names) and the same sigma.")
        for i, name in enumerate(self.names):
            if f"min_{name}" in constants:
                period = (parse_number(constants[f"min_{name}"]), parse_number(constants[f"max_{name}"]))
                if not self.grid.periodic[i] or not np.allclose(period, (self.grid.lo[i], self.grid.hi[i])):
                    raise ValueError(f"{path} has {name} periodic in {period}, but this bias's grid on {name} is "
                                     f"{'periodic in ' if self.grid.periodic[i] else 'not periodic, '}"
                                     f"[{self.grid.lo[i]}, {self.grid.hi[i]}]. Use the same CV and grid period.")
        col = {f: i for i, f in enumerate(fields)}
        gamma = data[:, col["biasf"]] if "biasf" in col else np.full(len(data), np.nan)
        return np.column_stack([data[:, [col[f] for f in self._hill_fields()[:-1]]], gamma])

    def _checked(self, parts):
        """(time (ps), centers (n, d), heights (kJ/mol, as deposited)) of the hills of ``parts``, a list of
        (path, columns from :meth:`_hill_columns`), once every hill's bias factor and sigma are checked
        against this bias (in one vectorized pass; the error names the file)."""
        table = np.concatenate([c for _, c in parts])
        d = self.grid.ndim
        gamma, sigmas = table[:, -1], table[:, 1 + d:1 + 2 * d]
        bad_gamma = np.zeros(len(table), dtype=bool)
        if self.bias_factor is not None:
            bad_gamma = np.abs(gamma - self.bias_factor) > 1e-6 * self.bias_factor  # NaN (no biasf column): False
        bad_sigma = ~np.isclose(sigmas, self.sigma, rtol=1e-9).all(1)
        if bad_gamma.any() or bad_sigma.any():
            i = int(np.argmax(bad_gamma | bad_sigma))
            path = parts[int(np.searchsorted(np.cumsum([len(c) for _, c in parts]), i, side="right"))][0]
            if bad_gamma[i]:
                raise ValueError(f"{path} was written with bias factor {gamma[i]}, this bias has "
                                 f"{self.bias_factor}; heights would be rescaled wrongly.")
            raise ValueError(f"{path} has hills of width {sigmas[i]} but this bias uses sigma={self.sigma}.")
        return table[:, 0], table[:, 1:1 + d], table[:, 1 + 2 * d] / self._height_scale()

    @property
    def hills(self):
        """Hills in this bias as a dict of arrays: time (ps), center (n, d), sigma (n, d), height (kJ/mol), step."""
        d = self.grid.ndim
        a = np.concatenate(self._hills) if self._hills else np.zeros((0, 3 + 2 * d))
        return {"time": a[:, 0], "center": a[:, 1:1 + d], "sigma": a[:, 1 + d:1 + 2 * d],
                "height": a[:, 1 + 2 * d], "step": a[:, 2 + 2 * d].astype(np.int64)}

    @property
    def n_hills(self):
        return self._n_hills

    def close(self):
        """Close the HILLS file (flushed after every deposition anyway; with ``walkers_dir`` pending hills
        are flushed first if ``autoflush``) and release the walker id."""
        if self._walkers is not None and self.autoflush:
            self.flush_hills()
        if self._writer is not None:
            self._writer.close()
        if self._walkers is not None:
            self._walkers.close()

    # -- analysis --------------------------------------------------------------------------------
    def c_of_t(self, steps):
        """c(t) (kJ/mol) in force at the given steps (after the last deposition strictly before each)."""
        idx = np.searchsorted(np.asarray(self.rct_steps), np.asarray(steps), side="left") - 1
        return np.asarray(self.rct)[np.clip(idx, 0, None)]

    def _metadata(self):
        return {"n_hills": self.n_hills, "height": self.height, "sigma": self.sigma.tolist(), "pace": self.pace}
