"""Well-tempered metadynamics on 1 to 3 CVs, with hills accumulated on a grid."""

import logging
import os

import numpy as np
import torch

from .._validation import check_positive
from ..io import PlumedWriter, read_plumed_table
from ..units import BOLTZMANN, as_float
from ._gridbias import GridBias

__all__ = ["WellTemperedMetad"]

log = logging.getLogger("cvlearn")


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
        Read the existing ``hills`` file, rebuild the bias from it, and append to it.
    label : str
        Prefix of the COLVAR columns (``label.bias``, ``label.rct``), as PLUMED's action label.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> cv = cl.TICA(lagtime=1).fit(torch.randn(100, 2).numpy()).to_module()
    >>> metad = cl.WellTemperedMetad(cv, sigma=0.1, height=1.0, bias_factor=10, pace=100,
    ...                              grid=cl.Grid(-5, 5, 200), temperature=300)
    >>> metad.deposit(torch.tensor([[0.0]]), step=100)
    >>> round(float(metad.evaluate([[0.0]])[0]), 6)
    1.0
    """

    def __init__(self, cv, sigma, height, bias_factor, pace, grid, temperature=None, outside="error",
                 wall_kappa=1000.0, hills=None, restart=False, label="metad"):
        owner = "WellTemperedMetad"
        super().__init__(cv, grid, outside=outside, wall_kappa=wall_kappa, label=label)
        d = grid.ndim
        self.sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (d,)).copy()
        if not np.all(self.sigma > 0):
            raise ValueError(f"sigma must be positive for each of the {d} CVs; got {sigma}.")
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
        self._hills = []  # rows: time, centers..., sigmas..., height (actual), step
        self.rct_steps, self.rct = [0], [0.0]
        self._writer = None
        self.hills_path = None if hills is None else os.fspath(hills)
        if restart and self.hills_path is None:
            raise ValueError("restart=True needs the path of the HILLS file to restart from (hills=...).")
        self._restart = restart

    # -- engine protocol -------------------------------------------------------------------------
    def bind(self, temperature, timestep):
        """Called by the engine: adopt its temperature (K) and timestep (ps); open the HILLS file."""
        if self.temperature is None:
            self.temperature = float(temperature)
        elif abs(self.temperature - temperature) > 1e-9:
            raise ValueError(f"The metadynamics temperature ({self.temperature} K) differs from the engine's "
                             f"({temperature} K).")
        self.timestep = float(timestep)
        if self.hills_path is not None and self._writer is None:
            self.open_hills(self.hills_path, self._restart)

    def open_hills(self, path, restart=False):
        """Write hills to ``path`` from now on; with ``restart``, first rebuild the bias from it and append.

        Without ``restart`` an existing file is kept as ``bck.N.<name>`` (never overwritten).
        """
        if self._writer is not None:
            if os.path.abspath(path) == os.path.abspath(self._writer.path):
                return
            self._writer.close()
        self.hills_path = os.fspath(path)
        if restart and os.path.exists(self.hills_path):
            n = self.load_hills(self.hills_path)
            log.info("Restarted metadynamics from %d hills in %s", n, self.hills_path)
        self._writer = PlumedWriter(self.hills_path, self._hill_fields(), self._hill_constants(), append=restart)
        self._restart = False

    @property
    def kT(self):
        if self.temperature is None:
            raise ValueError("The metadynamics temperature is unknown: pass temperature= or attach the bias "
                             "to an engine first.")
        return BOLTZMANN * self.temperature

    def update(self, step, positions):
        """Deposit one hill per walker every ``pace`` steps, at the CV values of the last energy call."""
        if step % self.pace == 0:
            s = self._last_s if self._last_s is not None else self.cv_values(positions).detach()
            self.deposit(s, step)

    def colvar(self):
        """COLVAR columns of the last evaluated configuration: CVs, ``label.bias``, ``label.rct``."""
        out = super().colvar()
        bias = out[f"{self.label}.bias"]
        out[f"{self.label}.rct"] = torch.full_like(bias, self.rct[-1])
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

    def _add(self, centers, heights, step, time=None, write=True):
        self.field.add_gaussians(centers, self.sigma, heights)
        if time is None:
            time = step * self.timestep if self.timestep is not None else float(step)
        n = len(centers)
        rows = np.column_stack([np.full(n, time), centers, np.tile(self.sigma, (n, 1)), heights, np.full(n, step)])
        self._hills.extend(rows.tolist())
        self.rct_steps.append(int(step))
        self.rct.append(self._c_of_t())
        if write and self._writer is not None:
            self._writer.write(self._file_rows(rows))

    def _c_of_t(self):
        """c(t) of Tiwary & Parrinello (JPCB 119, 736 (2015)) on the grid, kJ/mol (NaN without a temperature)."""
        if self.temperature is None:
            return float("nan")
        beta = 1.0 / self.kT
        v = self.field.data[0].flatten()
        if self.bias_factor is None:
            num, den = beta * v, torch.zeros_like(v)
        else:
            g = self.bias_factor
            num, den = beta * v * g / (g - 1.0), beta * v / (g - 1.0)
        return float((torch.logsumexp(num, 0) - torch.logsumexp(den, 0)) / beta)

    def _hill_fields(self):
        return ["time", *self.names, *[f"sigma_{n}" for n in self.names], "height", "biasf"]

    def _hill_constants(self):
        consts = {"multivariate": "false", "kerneltype": "gaussian"}
        for i, n in enumerate(self.names):
            if self.grid.periodic[i]:
                consts[f"min_{n}"] = repr(float(self.grid.lo[i]))
                consts[f"max_{n}"] = repr(float(self.grid.hi[i]))
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
        fields, _, rows, _ = read_plumed_table(path)
        missing = [f for f in self._hill_fields()[:-1] if f not in fields]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing} (it has {fields}); the CV names of this bias "
                             f"are {self.names}.")
        data = np.array(rows, dtype=np.float64).reshape(-1, len(fields))
        col = {f: i for i, f in enumerate(fields)}
        if "biasf" in col and len(data) and self.bias_factor is not None:
            file_gamma = data[:, col["biasf"]]
            if np.any(np.abs(file_gamma - self.bias_factor) > 1e-6 * self.bias_factor):
                raise ValueError(f"{path} was written with bias factor {file_gamma[0]}, this bias has "
                                 f"{self.bias_factor}; heights would be rescaled wrongly.")
        time = data[:, col["time"]]
        centers = data[:, [col[n] for n in self.names]]
        sigmas = data[:, [col[f"sigma_{n}"] for n in self.names]]
        heights = data[:, col["height"]] / self._height_scale()
        dt = self.timestep or 1.0
        for t in np.unique(time):
            sel = time == t
            if not np.allclose(sigmas[sel], self.sigma, rtol=1e-9):
                raise ValueError(f"{path} has hills of width {sigmas[sel][0]} but this bias uses sigma={self.sigma}.")
            self._add(centers[sel], heights[sel], int(round(t / dt)), time=t, write=False)
        return len(data)

    @property
    def hills(self):
        """Deposited hills as a dict of arrays: time (ps), center (n, d), sigma (n, d), height (kJ/mol), step."""
        d = self.grid.ndim
        a = np.array(self._hills, dtype=np.float64).reshape(-1, 3 + 2 * d)
        return {"time": a[:, 0], "center": a[:, 1:1 + d], "sigma": a[:, 1 + d:1 + 2 * d],
                "height": a[:, 1 + 2 * d], "step": a[:, 2 + 2 * d].astype(np.int64)}

    @property
    def n_hills(self):
        return len(self._hills)

    def close(self):
        """Close the HILLS file (it is flushed after every deposition anyway)."""
        if self._writer is not None:
            self._writer.close()

    # -- analysis --------------------------------------------------------------------------------
    def c_of_t(self, steps):
        """c(t) (kJ/mol) in force at the given steps (after the last deposition strictly before each)."""
        idx = np.searchsorted(np.asarray(self.rct_steps), np.asarray(steps), side="left") - 1
        return np.asarray(self.rct)[np.clip(idx, 0, None)]

    def _metadata(self):
        return {"n_hills": self.n_hills, "height": self.height, "sigma": self.sigma.tolist(), "pace": self.pace}
