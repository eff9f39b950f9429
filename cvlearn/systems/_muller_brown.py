"""The Muller-Brown potential (Muller & Brown, Theor. Chim. Acta 53, 75 (1979)) in kJ/mol."""

import numpy as np
import torch

from ._base import System

__all__ = ["MullerBrown"]

# Standard constants of the original paper.
_A = (-200.0, -100.0, -170.0, 15.0)
_a = (-1.0, -1.0, -6.5, 0.7)
_b = (0.0, 0.0, 11.0, 0.6)
_c = (-10.0, -10.0, -6.5, 0.7)
_X0 = (1.0, 0.0, -0.5, -1.0)
_Y0 = (0.0, 0.5, 1.5, 1.0)


class MullerBrown(System):
    """Muller-Brown's 2-D, three-minimum potential for one particle, in kJ/mol.

    V(x, y) = scale * sum_i A_i exp(a_i (x-x0_i)^2 + b_i (x-x0_i)(y-y0_i) + c_i (y-y0_i)^2)

    with the original constants, x and y in nm. The original energies are dimensionless; ``scale``
    (default 0.3 kJ/mol per original unit) and the default temperature of 300 K put the barrier out of
    the deepest basin ("A", at (-0.558, 1.442)) over the highest saddle on the way to "B" (at (0.623,
    0.028)) at 31.8 kJ/mol = 12.8 kT, and the A-B energy difference at 11.6 kJ/mol = 4.6 kT.
    Mass 1 amu. The slow coordinates are (x, y) themselves; basins "A", "B", "C" (the shallow middle
    minimum at (-0.050, 0.467)) are discs of radius 0.3 nm.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> mb = cl.systems.MullerBrown()
    >>> round(float(mb.potential(torch.tensor([[[-0.558, 1.442]]], dtype=torch.float64))[0]), 2)
    -44.01
    """

    slow_names = ("x", "y")
    slow_bounds = ((-1.7, 1.3), (-0.5, 2.2))
    minima = {"A": (-0.558224, 1.441726), "B": (0.623499, 0.028038), "C": (-0.050011, 0.466694)}

    def __init__(self, scale=0.3, temperature=300.0):
        super().__init__(1, 2, temperature)
        self.scale = float(scale)
        for name, v in (("A", _A), ("a", _a), ("b", _b), ("c", _c), ("x0", _X0), ("y0", _Y0)):
            self.register_buffer("_" + name, torch.tensor(v, dtype=torch.float64))
        self._add_basins(**{k: (v, 0.3) for k, v in self.minima.items()})

    def potential(self, x):
        return self._energy_xy(x[:, 0, 0], x[:, 0, 1])

    def _terms(self, x, y):
        dx = x[..., None] - self._x0.to(x)
        dy = y[..., None] - self._y0.to(x)
        a, b, c = self._a.to(x), self._b.to(x), self._c.to(x)
        t = self.scale * self._A.to(x) * torch.exp(a * dx**2 + b * dx * dy + c * dy**2)
        return t, dx, dy, a, b, c

    def _energy_xy(self, x, y):
        return self._terms(x, y)[0].sum(-1)

    def energy_and_forces(self, x):
        t, dx, dy, a, b, c = self._terms(x[:, 0, 0], x[:, 0, 1])
        fx = -(t * (2 * a * dx + b * dy)).sum(-1)
        fy = -(t * (b * dx + 2 * c * dy)).sum(-1)
        return t.sum(-1), torch.stack([fx, fy], dim=-1)[:, None, :]

    def traced_energy_and_forces(self, x):
        """:meth:`energy_and_forces` with the constants as Python numbers, for the engine's compiled steps
        (compiled into the code instead of read from six buffers at every step)."""
        px, py = x[:, 0, 0], x[:, 0, 1]
        e = fx = fy = 0.0
        for A, a, b, c, x0, y0 in zip(_A, _a, _b, _c, _X0, _Y0):
            dx, dy = px - x0, py - y0
            t = (self.scale * A) * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
            e, fx, fy = e + t, fx - t * (2 * a * dx + b * dy), fy - t * (b * dx + 2 * c * dy)
        return e, torch.stack([fx, fy], dim=-1)[:, None, :]

    def slow_coordinates(self, x):
        return x[..., 0, :]

    def exact_free_energy(self, s, temperature=None):
        s = torch.as_tensor(np.asarray(s), dtype=torch.float64)
        return self._energy_xy(s[..., 0], s[..., 1]).numpy()

    def start_positions(self, basin=None):
        return torch.tensor([self.minima[basin or "A"]], dtype=torch.float64)
