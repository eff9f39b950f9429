"""A bias stored on a grid and applied through a CV: the part metadynamics and static biases share."""

import numpy as np
import torch

from ..exceptions import GridError
from ..fes import FreeEnergySurface
from ._grid import Grid
from ._hermite import HermiteField

__all__ = ["GridBias"]


class GridBias:
    """A bias V(s) held on a grid (:class:`HermiteField`), acting on positions through ``cv``.

    Parameters
    ----------
    cv : torch.nn.Module
        positions -> (walkers, d) CV values (or (walkers,) for d = 1), differentiable.
    grid : Grid
    outside : {"error", "wall"}
        A CV outside a non-periodic grid range raises :class:`cvlearn.GridError`, or is pushed back
        by a harmonic wall of ``wall_kappa`` (kJ/mol per CV unit^2) while the grid bias is held at
        its edge value. Never a silent zero force.
    label : str
        Prefix of the COLVAR column ``label.bias``.

    Examples
    --------
    GridBias is the base of the grid biases; build one through a subclass, e.g. a static bias:

    >>> import numpy as np, cvlearn as cl
    >>> grid = cl.Grid(-1.0, 1.0, 20)
    >>> bias = cl.bias.StaticBias.from_grid(cl.features.Positions(1, 1), grid, np.zeros(grid.shape),
    ...                                     outside="wall", wall_kappa=100.0)
    >>> isinstance(bias, cl.bias.GridBias), bias.evaluate([[1.5]]).tolist()   # wall: 100 / 2 * 0.5^2 kJ/mol
    (True, [12.5])
    """

    _point = None  # the last one-point evaluation, until _last_s or _last_v is read

    def __init__(self, cv, grid, outside="error", wall_kappa=1000.0, label="bias"):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a cvlearn.Grid; got {type(grid).__name__}.")
        if outside not in ("error", "wall"):
            raise ValueError(f"outside must be 'error' or 'wall'; got {outside!r}.")
        if not (np.isfinite(wall_kappa) and wall_kappa > 0):
            raise ValueError(f"wall_kappa must be positive; got {wall_kappa}.")
        self.cv, self.grid, self.label = cv, grid, label
        self.outside, self.wall_kappa = outside, float(wall_kappa)
        names = getattr(cv, "names", None)
        self.names = list(names) if names is not None else [f"cv{i + 1}" for i in range(grid.ndim)]
        if len(self.names) != grid.ndim:
            raise ValueError(f"The CV has {len(self.names)} components but the grid has {grid.ndim} dimensions.")
        self.field = HermiteField(grid)
        # (periodic, lo, hi, period) per axis as Python numbers, for the one-point path.
        self._axes = [(bool(p), float(lo), float(hi), float(hi - lo))
                      for p, lo, hi in zip(grid.periodic, grid.lo, grid.hi)]
        self._ndim, self._any_periodic = grid.ndim, bool(grid.periodic.any())
        self._last_s = self._last_v = None
        self.bias_factor = None  # a metadynamics bias sets these; free_energy() needs them
        self.temperature = None

    def cv_values(self, positions):
        """CV values (walkers, d) of positions, periodic components wrapped into the grid."""
        s = self.cv(positions)
        if s.ndim == 1:
            s = s[:, None]
        if s.shape[1] != self.grid.ndim:
            raise ValueError(f"The CV returns {s.shape[1]} values per walker; the grid has {self.grid.ndim}.")
        return self.grid.wrap(s)

    def energy(self, positions):
        """Bias energy (walkers,) in kJ/mol, differentiable in ``positions``."""
        s = self.cv_values(positions)
        v = self._bias_at(s)
        self._last_s, self._last_v = s.detach(), v.detach()
        return v

    def _clamp(self, s):
        """(s held inside the non-periodic grid range, s - held); a GridError if outside='error'."""
        g = self.grid
        lo = torch.as_tensor(g.lo, dtype=s.dtype, device=s.device)
        hi = torch.as_tensor(g.hi, dtype=s.dtype, device=s.device)
        open_axes = torch.as_tensor(~g.periodic, device=s.device)
        clamped = torch.where(open_axes, torch.minimum(torch.maximum(s, lo), hi), s)
        excess = s - clamped
        if self.outside == "error" and bool((excess != 0).any()):
            self._outside_error(s, torch.nonzero((excess != 0).any(1)).flatten().tolist())
        return clamped, excess

    def _outside_error(self, s, walkers):
        g = self.grid
        w = walkers[0]
        raise GridError(
            f"The CV of walker(s) {walkers[:10]} left the bias grid: walker {w} is at "
            f"{dict(zip(self.names, [float(v) for v in s[w].tolist()]))}, the grid spans lo={g.lo.tolist()}, "
            f"hi={g.hi.tolist()}. Widen the grid (cl.Grid(lo, hi, bins)) or pass outside='wall' "
            "to push walkers back with a harmonic wall.", walkers=walkers)

    def _bias_at(self, s):
        clamped, excess = self._clamp(s)
        v = self.field.evaluate(clamped)
        if self.outside == "wall":
            v = v + 0.5 * self.wall_kappa * (excess**2).sum(1)
        return v

    # -- fused engine steps (cvlearn.bias.Fusable) --------------------------------------------------
    def fused_state(self, dtype, device):
        """The grid values and derivatives (float64, the stored tensor), for :meth:`fused_forces`."""
        return self.field.traced_state(device)

    def fused_forces(self, positions, state):
        """Bias (walkers,) kJ/mol, force (walkers, particles, dims) kJ/mol/nm, CV values (walkers, d) and
        inside-the-grid flags (walkers,) at ``positions``: :meth:`energy` and its autograd force in pure
        torch (the CV's pullback by ``torch.func.vjp``), for the engine's compiled steps."""
        s, pullback = torch.func.vjp(self._traced_cv_values, positions)
        clamped, held = self._traced_clamp(s)
        excess = s - clamped
        v, grad = self.field.traced_value_and_gradient(clamped, state)
        grad = torch.where(held, torch.zeros_like(grad), grad)  # the grid part is held at its edge value outside
        if self.outside == "wall":
            v = v + 0.5 * self.wall_kappa * (excess**2).sum(1)
            grad = grad + self.wall_kappa * excess
            inside = torch.ones_like(v, dtype=torch.bool)
        else:
            inside = ~held.any(1)
        (force,) = pullback(-grad)
        return v, force, s, inside

    def _traced_clamp(self, s):
        """(CV values held inside the non-periodic grid range, (walkers, d) flags of the held ones)."""
        # Python numbers only (self._axes): a numpy array would become a graph input of the compiled steps.
        clamped = torch.stack([s[:, i] if periodic else s[:, i].clamp(lo, hi)
                               for i, (periodic, lo, hi, _) in enumerate(self._axes)], 1)
        return clamped, clamped != s

    def _traced_cv_values(self, positions):
        """:meth:`cv_values` with the periodic wrap in Python numbers, for the compiled steps."""
        s = self.cv(positions)
        s = s[:, None] if s.ndim == 1 else s
        if not self._any_periodic:
            return s
        return torch.stack([(s[:, i] - lo) % period + lo if periodic else s[:, i]
                            for i, (periodic, lo, _, period) in enumerate(self._axes)], 1)

    def fused_record(self, cv_values, bias):
        """Record the last configuration of a fused block, as :meth:`energy` would have."""
        self._last_s, self._last_v = cv_values, bias

    def value_and_gradient(self, s):
        """Bias V (n,) kJ/mol and dV/ds (n, d) at CV values ``s`` (n, d), numpy, without autograd.

        The engines' lean path: they compute ds/dx themselves. Records ``s`` and ``V`` for
        :meth:`colvar` and hill deposition, as :meth:`energy` does.
        """
        s = np.asarray(s, dtype=np.float64)
        if s.size == self._ndim:  # one configuration (a molecular engine): scalar arithmetic, ~10x faster
            if self._ndim == 1:
                v, g = self._point_1d(s.item(0))
                return np.array([v]), np.array([[g]])
            v, grad = self._point_value_and_gradient(s.ravel().tolist())
            return np.array([v]), np.array([grad])
        s = self.grid.wrap(s.reshape(-1, self.grid.ndim))
        clamped = np.where(self.grid.periodic, s, np.clip(s, self.grid.lo, self.grid.hi))
        excess = s - clamped
        held = excess != 0
        if self.outside == "error" and held.any():
            self._outside_error(s, np.nonzero(held.any(1))[0].tolist())
        v, grad = (a.numpy() for a in self.field.value_and_gradient(torch.from_numpy(clamped)))
        grad = np.where(held, 0.0, grad)  # the grid part is held at its edge value outside
        if self.outside == "wall":
            v = v + 0.5 * self.wall_kappa * (excess**2).sum(1)
            grad = grad + self.wall_kappa * excess
        self._last_s, self._last_v = torch.from_numpy(s), torch.from_numpy(v)
        return v, grad

    def point_value_and_gradient(self, point):
        """:meth:`value_and_gradient` of one point in Python floats: V (float, kJ/mol) and dV/ds (list of
        d floats) at CV values ``point`` (sequence of d floats).

        The molecular engines' hot path: no array is built. Records the point for :meth:`colvar` and
        hill deposition. A subclass that overrides :meth:`value_and_gradient` to record more state
        must override this method too, or set it to None: the engines then use :meth:`value_and_gradient`
        (see :class:`cvlearn.bias.PointEvaluable`).
        """
        if self._ndim == 1 and len(point) == 1:
            v, g = self._point_1d(point[0])
            return v, [g]
        return self._point_value_and_gradient(point)

    def _point_1d(self, x):
        """V and dV/ds (floats) at one value ``x`` of a 1-D bias: the hot path, unrolled."""
        periodic, lo, hi, period = self._axes[0]
        if periodic:
            x = (x - lo) % period + lo  # as Grid.wrap
        elif not lo <= x <= hi:
            if self.outside == "error":
                self._outside_error(np.array([[x]]), [0])
            held = lo if x < lo else hi
            e = x - held
            v = self.field.point_1d(held)[0] + 0.5 * self.wall_kappa * e * e
            self._point = ([x], v)
            return v, self.wall_kappa * e  # the grid part is held at its edge value; the wall pushes back
        v, g = self.field.point_1d(x)
        self._point = ([x], v)  # turned into _last_s, _last_v (tensors) only when read
        return v, g

    def _point_value_and_gradient(self, point):
        """V (float) and dV/ds (list) at one point (sequence of d floats)."""
        axes = self._axes
        if self._any_periodic:  # as Grid.wrap
            point = [(x - lo) % period + lo if periodic else x for x, (periodic, lo, _, period) in zip(point, axes)]
        else:
            point = list(point)
        held, excess = point, None
        for i, (periodic, lo, hi, _) in enumerate(axes):
            x = point[i]
            if not periodic and not lo <= x <= hi:
                if excess is None:
                    held, excess = list(point), [0.0] * len(point)
                held[i] = lo if x < lo else hi
                excess[i] = x - held[i]
        if excess is not None and self.outside == "error":
            self._outside_error(np.array([point]), [0])
        v, grad = self.field.point_value_and_gradient(held)
        if excess is not None:
            for i, e in enumerate(excess):
                if e:  # the grid part is held at its edge value; the wall pushes back
                    v += 0.5 * self.wall_kappa * e * e
                    grad[i] = self.wall_kappa * e
        self._point = (point, v)  # turned into _last_s, _last_v (tensors) only when read
        return v, grad

    # _last_s, _last_v: CV values (walkers, d) and bias (walkers,) of the last evaluation, as tensors.
    # The one-point path stores Python floats and converts on demand (~2 us saved per MD step).
    @property
    def _last_s(self):
        if self._point is not None:
            self._materialize()
        return self._s_last

    @_last_s.setter
    def _last_s(self, value):
        self._point, self._s_last = None, value

    @property
    def _last_v(self):
        if self._point is not None:
            self._materialize()
        return self._v_last

    @_last_v.setter
    def _last_v(self, value):
        self._point, self._v_last = None, value

    def _materialize(self):
        point, v = self._point
        self._point = None
        self._s_last = torch.tensor([point], dtype=torch.float64)
        self._v_last = torch.tensor([v], dtype=torch.float64)

    def colvar(self):
        """COLVAR columns of the last evaluated configuration: the CVs and ``label.bias``."""
        out = {name: self._last_s[:, i] for i, name in enumerate(self.names)}
        out[f"{self.label}.bias"] = self._last_v
        return out

    def evaluate(self, points):
        """Bias V (kJ/mol) at CV values ``points`` (n, d) or (n,) for d = 1 (numpy in, numpy out)."""
        p = torch.as_tensor(np.asarray(points, dtype=np.float64)).reshape(-1, self.grid.ndim)
        with torch.no_grad():
            return self._bias_at(self.grid.wrap(p)).numpy()

    def _height_scale(self):
        """gamma / (gamma - 1): PLUMED's HILLS height scale, and -F / V of a converged well-tempered bias."""
        return 1.0 if self.bias_factor is None else self.bias_factor / (self.bias_factor - 1.0)

    def free_energy(self):
        """Free energy on the grid implied by a metadynamics bias: F = -(gamma / (gamma - 1)) V
        (well-tempered), F = -V (untempered). Returns a :class:`FreeEnergySurface` (kJ/mol, minimum 0)."""
        if self.temperature is None:
            raise ValueError("The bias has no temperature: pass temperature= (K) when creating it.")
        F = -self._height_scale() * self.field.values()
        meta = {"method": "metad_bias", "bias_factor": self.bias_factor}
        meta.update(getattr(self, "_metadata", lambda: {})())
        return FreeEnergySurface(self.grid.axes, F, self.temperature, names=self.names, metadata=meta)
