"""Double wells: 1-D, or 2-D with a harmonic orthogonal direction."""

import numpy as np
import torch

from ._base import System

__all__ = ["DoubleWell"]


class DoubleWell(System):
    """A quartic double well along x, optionally with a harmonic y direction.

    V(x[, y]) = barrier * ((x/a)^2 - 1)^2 + tilt * x/a  [+ stiffness/2 * y^2]

    Minima near x = -a and x = +a (nm), separated by ``barrier`` kJ/mol at x = 0 (for tilt = 0);
    ``tilt`` (kJ/mol) makes the right well higher (tilt > 0). One particle of mass 1 amu.
    The slow coordinate is x; y integrates out exactly, so the exact free energy along x is the
    1-D potential. Basins "left" (x < 0) and "right" (x > 0).

    Parameters
    ----------
    dim : {1, 2}
        Number of dimensions.
    barrier : float
        kJ/mol (default 25 kJ/mol = 10 kT at 300 K).
    a : float
        Position of the minima, nm.
    tilt : float
        Linear tilt, kJ/mol at x = a.
    stiffness : float
        Force constant along y, kJ/mol/nm^2.
    temperature : float
        Default temperature, K.

    Examples
    --------
    >>> import cvlearn as cl
    >>> dw = cl.systems.DoubleWell(dim=2, barrier=25.0, tilt=2.0)
    >>> round(dw.barrier / dw.kT(), 2)                                  # barrier in kT at 300 K
    10.02
    >>> round(dw.exact_delta_f("left", "right"), 2)                     # kJ/mol, ~2 * tilt
    3.92
    >>> traj = cl.Langevin(dw, timestep=0.002, friction=10.0, n_walkers=2, seed=0).run(100, stride=50)
    >>> traj.positions.shape                                            # (frames, walkers, particles, dims)
    (2, 2, 1, 2)
    """

    slow_names = ("x",)

    def __init__(self, dim=1, barrier=25.0, a=1.0, tilt=0.0, stiffness=100.0, temperature=300.0):
        if dim not in (1, 2):
            raise ValueError(f"DoubleWell supports dim=1 or dim=2; got {dim!r}.")
        super().__init__(1, dim, temperature)
        self.barrier, self.a, self.tilt, self.stiffness = float(barrier), float(a), float(tilt), float(stiffness)
        self.slow_bounds = ((-2.0 * self.a, 2.0 * self.a),)
        self.basins = {}
        from ..fes import Basin

        self.basins["left"] = Basin(lo=[-np.inf], hi=[0.0], name="left")
        self.basins["right"] = Basin(lo=[0.0], hi=[np.inf], name="right")

    def _v1(self, x):
        u = x / self.a
        return self.barrier * (u**2 - 1.0) ** 2 + self.tilt * u

    def potential(self, x):
        e = self._v1(x[:, 0, 0])
        if self.n_dims == 2:
            e = e + 0.5 * self.stiffness * x[:, 0, 1] ** 2
        return e

    def energy_and_forces(self, x):
        u = x[:, 0, 0] / self.a
        e = self.barrier * (u**2 - 1.0) ** 2 + self.tilt * u
        f = torch.zeros_like(x)
        f[:, 0, 0] = -(4.0 * self.barrier * (u**2 - 1.0) * u + self.tilt) / self.a
        if self.n_dims == 2:
            e = e + 0.5 * self.stiffness * x[:, 0, 1] ** 2
            f[:, 0, 1] = -self.stiffness * x[:, 0, 1]
        return e, f

    def slow_coordinates(self, x):
        return x[..., 0, :1]

    def exact_free_energy(self, s, temperature=None):
        return self._v1(np.asarray(s, dtype=np.float64)[..., 0])

    def start_positions(self, basin=None):
        x = self.a if basin == "right" else -self.a
        p = torch.zeros(1, self.n_dims, dtype=torch.float64)
        p[0, 0] = x
        return p
