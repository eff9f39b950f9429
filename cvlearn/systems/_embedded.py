"""Hidden-CV systems: a low-dimensional potential hidden in D dimensions behind a random rotation."""

import numpy as np
import torch

from ._base import System
from ._double_well import DoubleWell

__all__ = ["Embedded", "HiddenDoubleWell"]


class Embedded(System):
    """Embed a one-particle ``base`` system in ``dim`` dimensions, hiding its slow coordinate.

    The latent vector z = (z_base, z_noise) has the base system's d coordinates followed by
    dim - d harmonic "noise" coordinates with standard deviation ``noise_std`` (nm) at the
    system's temperature: V(z) = V_base(z_base) + sum_i kT / (2 noise_std_i^2) z_noise_i^2.
    Positions are x = Q z with Q a fixed random rotation (from ``seed``), so no single Cartesian
    axis carries the slow process. With ``noise_std`` larger than the spread of the slow coordinate,
    variance-based PCA picks noise directions, while TICA (which looks for slow, not large,
    motion) finds the slow one.

    The slow coordinates, exact free energy, basins and bounds are the base system's.

    Parameters
    ----------
    base : System
        One-particle system (positions (1, d)).
    dim : int
        Total dimension D > d.
    noise_std : float or array_like
        Thermal standard deviation (nm) of each noise direction at the system's temperature.
    seed : int
        Seed of the rotation.

    Examples
    --------
    Hide the Muller-Brown surface in 6 dimensions; its (x, y) are recovered by ``slow_coordinates``:

    >>> import numpy as np, cvlearn as cl
    >>> mb = cl.systems.MullerBrown()
    >>> sys = cl.systems.Embedded(mb, dim=6, noise_std=0.5, seed=0)
    >>> x = sys.start_positions("A")                                # (1 particle, 6 dims), nm
    >>> tuple(x.shape), sys.slow_coordinates(x.numpy()).round(3).tolist()   # basin A's minimum, nm
    ((1, 6), [-0.558, 1.442])
    >>> bool(np.allclose(sys.slow_direction() @ sys.slow_direction().T, np.eye(2)))   # orthonormal
    True
    """

    def __init__(self, base, dim=10, noise_std=2.0, seed=0):
        if base.n_particles != 1:
            raise ValueError("Embedded needs a one-particle base system.")
        d = base.n_dims
        if dim <= d:
            raise ValueError(f"dim must exceed the base system's {d} dimensions; got {dim}.")
        super().__init__(1, dim, base.temperature)
        self.base = base
        self.slow_names, self.slow_bounds, self.basins = base.slow_names, base.slow_bounds, base.basins
        std = np.broadcast_to(np.asarray(noise_std, dtype=np.float64), (dim - d,))
        if not (std > 0).all():
            raise ValueError(f"noise_std must be positive; got {noise_std}.")
        rng = np.random.default_rng(seed)
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q = q * np.sign(np.diag(r))  # uniform (Haar) rotation
        self.register_buffer("rotation", torch.tensor(q, dtype=torch.float64))
        self.register_buffer("noise_stiffness", torch.tensor(base.kT() / std**2, dtype=torch.float64))

    def latent(self, x):
        """Latent coordinates z = Q^T x of positions (..., 1, dim) -> (..., dim)."""
        return x[..., 0, :] @ self.rotation.to(x)

    def potential(self, x):
        z = self.latent(x)
        d = self.base.n_dims
        noise = 0.5 * (self.noise_stiffness.to(x) * z[:, d:] ** 2).sum(-1)
        return self.base.potential(z[:, None, :d]) + noise

    def energy_and_forces(self, x):
        q = self.rotation.to(x)
        z = x[:, 0, :] @ q
        d = self.base.n_dims
        k = self.noise_stiffness.to(x)
        e_base, f_base = self.base.energy_and_forces(z[:, None, :d])
        e = e_base + 0.5 * (k * z[:, d:] ** 2).sum(-1)
        fz = torch.cat([f_base[:, 0, :], -k * z[:, d:]], dim=-1)
        return e, (fz @ q.T)[:, None, :]

    def slow_coordinates(self, x):
        is_np = isinstance(x, np.ndarray)
        t = torch.as_tensor(x, dtype=torch.float64) if is_np else x
        z = self.latent(t)[..., None, : self.base.n_dims]
        s = self.base.slow_coordinates(z)
        return s.numpy() if is_np else s

    def slow_direction(self):
        """Unit vectors (n_slow_dims_of_base, dim) of the base coordinates in Cartesian space."""
        return self.rotation[:, : self.base.n_dims].T.numpy().copy()

    def exact_free_energy(self, s, temperature=None):
        return self.base.exact_free_energy(s, temperature)

    def start_positions(self, basin=None):
        z = torch.zeros(self.n_dims, dtype=self.rotation.dtype, device=self.rotation.device)  # after .to(device)
        z[: self.base.n_dims] = torch.as_tensor(self.base.start_positions(basin)[0]).to(z)
        return (self.rotation @ z)[None, :]


class HiddenDoubleWell(Embedded):
    """A 1-D double well hidden in ``dim`` dimensions with larger-variance harmonic noise.

    The standard test of "PCA fails, TICA works": the slow coordinate (the double-well axis, minima
    at +-1 nm, ``barrier`` kJ/mol) has variance about 1 nm^2, each of the dim - 1 noise directions
    has variance ``noise_std**2`` (4 nm^2 by default) but relaxes quickly.

    Examples
    --------
    >>> import cvlearn as cl
    >>> sys = cl.systems.HiddenDoubleWell(dim=10)
    >>> sys.n_dims, sys.slow_names
    (10, ('x',))
    """

    def __init__(self, dim=10, barrier=15.0, tilt=0.0, noise_std=2.0, temperature=300.0, seed=0):
        super().__init__(DoubleWell(1, barrier=barrier, tilt=tilt, temperature=temperature),
                         dim=dim, noise_std=noise_std, seed=seed)
