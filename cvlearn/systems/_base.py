"""The analytic-system protocol: a torch potential of positions (walkers, particles, dims) in kJ/mol."""

import abc

import numpy as np
import torch

from ..exceptions import NoReferenceError
from ..fes import Basin, FreeEnergySurface
from ..units import kT as _kT

__all__ = ["System", "FunctionSystem", "from_function"]


class System(torch.nn.Module, metaclass=abc.ABCMeta):
    """Base class of analytic potentials run by :class:`cvlearn.Langevin`.

    Subclasses implement :meth:`potential`; forces come from autograd unless :meth:`energy_and_forces`
    is overridden with an analytic gradient. A system that knows its slow coordinate(s) overrides
    :meth:`slow_coordinates`, :meth:`exact_free_energy` and ``slow_bounds`` to get exact references
    (:meth:`exact_fes`, :meth:`exact_delta_f`) by numerical integration.

    Parameters
    ----------
    n_particles, n_dims : int
        Shape of one configuration.
    temperature : float
        Default temperature (K) for engines and exact references.
    masses : array_like, optional
        Particle masses in amu (default 1).

    Examples
    --------
    A harmonic well in 1-D (one particle) with an exact reference along its only coordinate:

    >>> import numpy as np, torch, cvlearn as cl
    >>> class Harmonic(cl.systems.System):
    ...     slow_names, slow_bounds = ("x",), ((-1.0, 1.0),)
    ...     def __init__(self, k=100.0):
    ...         super().__init__(n_particles=1, n_dims=1, temperature=300.0)
    ...         self.k = k                                  # kJ/mol/nm^2
    ...     def potential(self, x):                         # x: (walkers, 1, 1) nm -> kJ/mol
    ...         return 0.5 * self.k * x[:, 0, 0] ** 2
    ...     def slow_coordinates(self, x):
    ...         return x[..., 0, :]
    ...     def exact_free_energy(self, s, temperature=None):
    ...         return 0.5 * self.k * np.asarray(s)[..., 0] ** 2
    >>> h = Harmonic()
    >>> e, f = h.energy_and_forces(torch.tensor([[[0.1]]], dtype=torch.float64))   # forces by autograd
    >>> round(float(e[0]), 6), round(float(f[0, 0, 0]), 6)                          # kJ/mol, kJ/mol/nm
    (0.5, -10.0)
    >>> fes = h.exact_fes(bins=201)
    >>> fes.F.shape, round(float(fes.F.max()), 6)                                   # kJ/mol, minimum at 0
    ((201,), 50.0)
    """

    #: Names of the slow coordinates, e.g. ("x", "y").
    slow_names = ()
    #: [(lo, hi), ...] default plotting/integration range of each slow coordinate.
    slow_bounds = ()

    def __init__(self, n_particles, n_dims, temperature=300.0, masses=None):
        super().__init__()
        self.n_particles = int(n_particles)
        self.n_dims = int(n_dims)
        self.temperature = float(temperature)
        m = torch.ones(self.n_particles, dtype=torch.float64) if masses is None else torch.as_tensor(
            masses, dtype=torch.float64).reshape(self.n_particles)
        if not (m > 0).all():
            raise ValueError(f"Masses must be positive (amu); got {m.tolist()}.")
        self.register_buffer("masses", m)
        self.basins = {}

    # -- the potential ---------------------------------------------------------------------------
    @abc.abstractmethod
    def potential(self, x):
        """Potential energy (kJ/mol) of positions ``x`` (walkers, particles, dims) in nm -> (walkers,)."""

    def forward(self, x):
        return self.potential(x)

    def energy_and_forces(self, x):
        """Energies (walkers,) in kJ/mol and forces (walkers, particles, dims) in kJ/mol/nm."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            e = self.potential(x)
            (g,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), -g

    def traced_energy_and_forces(self, x):
        """:meth:`energy_and_forces` in operations ``torch.compile`` can trace into the engine's fused steps.

        An overridden :meth:`energy_and_forces` (analytic forces) is taken as it is; the autograd default
        becomes a pullback by ``torch.func.vjp`` (``torch.autograd.grad`` cannot be traced).
        """
        if type(self).energy_and_forces is not System.energy_and_forces:
            return self.energy_and_forces(x)
        e, pullback = torch.func.vjp(self.potential, x)
        (g,) = pullback(torch.ones_like(e))
        return e, -g

    # -- slow coordinates and exact references ---------------------------------------------------
    def slow_coordinates(self, x):
        """True slow coordinate(s) of positions ``x`` (..., particles, dims) -> (..., n_slow).

        Accepts numpy arrays or torch tensors and returns the same kind.
        """
        raise NoReferenceError(f"{type(self).__name__} does not define its slow coordinates; pass slow= to "
                               "from_function or override slow_coordinates().")

    def exact_free_energy(self, s, temperature=None):
        """Exact free energy (kJ/mol, up to a constant) at slow-coordinate values ``s`` (n, n_slow).

        ``temperature`` (K) matters when integrating out fast coordinates changes the shape.
        """
        raise NoReferenceError(f"{type(self).__name__} has no exact free energy; override exact_free_energy(s) "
                               "(and set slow_bounds) to compare estimates with an exact reference.")

    def start_positions(self, basin=None):
        """One configuration (particles, dims) to start walkers from, in ``basin`` if given."""
        return torch.zeros(self.n_particles, self.n_dims, dtype=torch.float64)

    def exact_fes(self, temperature=None, bins=200, bounds=None):
        """Exact free energy surface on the slow coordinates, as a :class:`FreeEnergySurface`.

        Parameters
        ----------
        temperature : float, optional
            K; the system's default if omitted. (The free energy of a separable system's slow
            coordinate does not depend on it up to a constant, but basin differences do.)
        bins : int or sequence of int
            Grid points per slow coordinate.
        bounds : [(lo, hi), ...], optional
            Grid range; ``slow_bounds`` by default.
        """
        temperature = self.temperature if temperature is None else float(temperature)
        bounds = list(bounds or self.slow_bounds)
        if not bounds:
            raise NoReferenceError(f"{type(self).__name__} defines no slow_bounds for an exact FES; pass bounds=.")
        nb = [bins] * len(bounds) if np.isscalar(bins) else list(bins)
        axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(bounds, nb)]
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([m.ravel() for m in mesh], axis=-1)
        F = np.asarray(self.exact_free_energy(pts, temperature=temperature), dtype=np.float64)
        return FreeEnergySurface(axes, F.reshape(mesh[0].shape), temperature,
                                 names=list(self.slow_names), metadata={"method": "exact"})

    def exact_delta_f(self, a, b, temperature=None, bins=801):
        """Exact F(b) - F(a) (kJ/mol) between two basins, by numerical integration on a fine grid.

        ``a`` and ``b`` are basin names (see ``basins``) or :class:`cvlearn.fes.Basin` objects.
        """
        a, b = (self.basins[x] if isinstance(x, str) else x for x in (a, b))
        return self.exact_fes(temperature, bins=bins).delta_f(a, b).value

    def kT(self, temperature=None):
        """Thermal energy (kJ/mol) at ``temperature`` (K; default: the system's)."""
        return _kT(self.temperature if temperature is None else temperature)

    def _add_basins(self, **centers_radius):
        for name, (center, radius) in centers_radius.items():
            self.basins[name] = Basin(center=center, radius=radius, name=name)


class FunctionSystem(System):
    """A system from any torch function of positions; see :func:`from_function`.

    Parameters are those of :func:`from_function`: ``fn(x)`` maps positions (walkers, particles,
    dims) in nm to energies (walkers,) in kJ/mol; ``start`` in nm; ``masses`` in amu; ``temperature``
    in K; ``slow(x)`` gives the known slow coordinates.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> sys = cl.systems.FunctionSystem(lambda x: 50.0 * (x ** 2).sum(dim=(1, 2)), n_particles=2, n_dims=3,
    ...                                 slow=lambda x: x[..., 0, :1])
    >>> x = torch.full((4, 2, 3), 0.1, dtype=torch.float64)        # 4 walkers, nm
    >>> sys.potential(x).tolist()                                   # kJ/mol
    [3.0000000000000004, 3.0000000000000004, 3.0000000000000004, 3.0000000000000004]
    >>> tuple(sys.slow_coordinates(x).shape)
    (4, 1)
    """

    def __init__(self, fn, n_particles, n_dims, temperature=300.0, masses=None, start=None, slow=None):
        super().__init__(n_particles, n_dims, temperature, masses)
        self._fn = fn
        self._slow = slow
        self._start = None if start is None else torch.as_tensor(start, dtype=torch.float64).reshape(
            self.n_particles, self.n_dims)

    def potential(self, x):
        e = self._fn(x)
        if e.shape != x.shape[:1]:
            raise ValueError(f"The potential function must return one energy per walker, shape "
                             f"({x.shape[0]},); got {tuple(e.shape)}.")
        return e

    def slow_coordinates(self, x):
        if self._slow is None:
            return super().slow_coordinates(x)
        return self._slow(x)

    def start_positions(self, basin=None):
        return super().start_positions(basin) if self._start is None else self._start.clone()


def from_function(fn, n_particles=1, n_dims=2, temperature=300.0, masses=None, start=None, slow=None):
    """Wrap a torch function of positions as a system for the engine.

    Parameters
    ----------
    fn : callable
        ``fn(x)`` with ``x`` a tensor (walkers, particles, dims) in nm returning energies (walkers,)
        in kJ/mol. It must be differentiable by autograd (forces are -grad).
    n_particles, n_dims : int
        Shape of one configuration.
    temperature : float
        Default temperature, K.
    masses : array_like, optional
        amu per particle (default 1).
    start : array_like, optional
        Starting configuration (particles, dims), nm (default all zeros).
    slow : callable, optional
        ``slow(x)`` -> known slow coordinates (for checking a learned CV).

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> sys = cl.systems.from_function(lambda x: 10.0 * ((x[:, 0, 0] ** 2 - 1) ** 2) + 5.0 * x[:, 0, 1] ** 2,
    ...                                n_particles=1, n_dims=2, start=[[1.0, 0.0]])
    >>> e, f = sys.energy_and_forces(torch.tensor([[[0.5, 0.0]]], dtype=torch.float64))
    >>> round(float(e[0]), 4), round(float(f[0, 0, 0]), 4)
    (5.625, 15.0)
    """
    return FunctionSystem(fn, n_particles, n_dims, temperature, masses, start, slow)
