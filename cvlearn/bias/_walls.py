"""Harmonic restraints and walls on CVs (PLUMED's RESTRAINT, UPPER_WALLS, LOWER_WALLS with EXP=2)."""

import numpy as np
import torch

__all__ = ["HarmonicRestraint", "UpperWall", "LowerWall"]


class _CVBias:
    """Shared part of the simple CV biases: evaluate the CV, apply a function of s."""

    label = "restraint"

    def __init__(self, cv, at, kappa, label=None):
        self.cv = cv
        self.at = np.atleast_1d(np.asarray(at, dtype=np.float64))
        self.kappa = np.broadcast_to(np.asarray(kappa, dtype=np.float64), self.at.shape).copy()
        if not np.all(self.kappa > 0):
            raise ValueError(f"kappa must be positive (kJ/mol per CV unit^2); got {kappa}.")
        if label is not None:
            self.label = label
        self._at, self._kappa = self.at.tolist(), self.kappa.tolist()
        self._last = None

    def energy(self, positions):
        e, _ = self._energy_and_cv(positions)
        self._last = e.detach()
        return e

    def _energy_and_cv(self, positions):
        """Bias (walkers,) kJ/mol and CV values (walkers, d) of torch positions, recording nothing."""
        s = self.cv(positions)
        if s.ndim == 1:
            s = s[:, None]
        if s.shape[1] != len(self._at):  # _at, not the numpy at: this runs inside the compiled graph too
            raise ValueError(f"The CV returns {s.shape[1]} values; 'at' has {len(self._at)}.")
        # From Python floats: a numpy array would become an input of the engine's compiled graph.
        at = torch.tensor(self._at, dtype=s.dtype, device=s.device)
        kappa = torch.tensor(self._kappa, dtype=s.dtype, device=s.device)
        return 0.5 * (kappa * self._excess(s - at) ** 2).sum(1), s

    # -- fused engine steps (cvlearn.bias.Fusable) --------------------------------------------------
    def fused_state(self, dtype, device):
        """Nothing: the bias is its Python numbers ``at`` and ``kappa``."""
        return ()

    def fused_forces(self, positions, state):
        """Bias (walkers,) kJ/mol, its force (walkers, particles, dims), CV values (walkers, d) and all-True
        flags at ``positions``, in pure torch (the pullback by ``torch.func.vjp``)."""
        e, pullback, s = torch.func.vjp(self._energy_and_cv, positions, has_aux=True)
        (grad,) = pullback(torch.ones_like(e))
        return e, -grad, s, torch.ones_like(e, dtype=torch.bool)

    def fused_record(self, cv_values, bias):
        """Record the bias of a fused block's last configuration, as :meth:`energy` would have."""
        self._last = bias

    def colvar(self):
        last = self._last
        if isinstance(last, float):
            last = torch.tensor([last], dtype=torch.float64)
        elif isinstance(last, np.ndarray):
            last = torch.from_numpy(last)
        return {f"{self.label}.bias": last}

    def point_value_and_gradient(self, point):
        """:meth:`value_and_gradient` of one point in Python floats: V (float) and dV/ds (list)."""
        if len(point) != len(self._at):
            raise ValueError(f"The CV returns {len(point)} values; 'at' has {len(self._at)}.")
        v, grad = 0.0, []
        for x, at, kappa in zip(point, self._at, self._kappa):
            e = self._py_excess(x - at)
            v += 0.5 * kappa * e * e
            grad.append(kappa * e)
        self._last = v  # a tensor when read (colvar)
        return v, grad

    def value_and_gradient(self, s):
        """Bias V (n,) kJ/mol and dV/ds (n, d) at CV values ``s`` (n, d), numpy, without autograd."""
        s = np.asarray(s, dtype=np.float64).reshape(-1, len(self.at))
        excess = self._np_excess(s - self.at)
        v = 0.5 * (self.kappa * excess**2).sum(1)
        self._last = v  # a tensor when read (colvar)
        return v, self.kappa * excess

    def evaluate(self, points):
        """Bias (kJ/mol) at CV values ``points`` (n, d)."""
        s = np.asarray(points, dtype=np.float64).reshape(-1, len(self.at))
        d = torch.as_tensor(s - self.at)
        return 0.5 * (self.kappa * self._excess(d).numpy() ** 2).sum(1)


class HarmonicRestraint(_CVBias):
    """V = sum_i kappa_i / 2 (s_i - at_i)^2 (kJ/mol; kappa in kJ/mol per CV unit^2).

    Examples
    --------
    >>> import torch
    >>> r = HarmonicRestraint(lambda x: x[:, 0, :1], at=1.0, kappa=100.0)
    >>> r.energy(torch.tensor([[[1.5]]])).tolist()
    [12.5]
    """

    label = "restraint"

    @staticmethod
    def _excess(d):
        return d

    _np_excess = _py_excess = _excess


class UpperWall(_CVBias):
    """V = kappa / 2 (s - at)^2 for s > at, 0 below (PLUMED's UPPER_WALLS with EXP=2).

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> wall = cl.bias.UpperWall(lambda x: x[:, 0, :1], at=1.0, kappa=100.0)     # nm, kJ/mol/nm^2
    >>> wall.energy(torch.tensor([[[1.5]], [[0.0]]])).tolist()                  # kJ/mol
    [12.5, 0.0]
    """

    label = "uwall"

    @staticmethod
    def _excess(d):
        return torch.clamp(d, min=0.0)

    @staticmethod
    def _np_excess(d):
        return np.maximum(d, 0.0)

    @staticmethod
    def _py_excess(d):
        return d if d > 0.0 else 0.0


class LowerWall(_CVBias):
    """V = kappa / 2 (s - at)^2 for s < at, 0 above (PLUMED's LOWER_WALLS with EXP=2).

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> wall = cl.bias.LowerWall(lambda x: x[:, 0, :1], at=-1.0, kappa=100.0)    # nm, kJ/mol/nm^2
    >>> wall.energy(torch.tensor([[[-1.5]], [[0.0]]])).tolist()                 # kJ/mol
    [12.5, 0.0]
    """

    label = "lwall"

    @staticmethod
    def _excess(d):
        return torch.clamp(d, max=0.0)

    @staticmethod
    def _np_excess(d):
        return np.minimum(d, 0.0)

    @staticmethod
    def _py_excess(d):
        return d if d < 0.0 else 0.0
