"""Plots of free energy surfaces, CVs, metadynamics runs and training (needs matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` (and most draw into an ``ax=`` you
pass); none calls ``plt.show()``. Energies are in kJ/mol (or kT with ``units="kT"``), time in ps,
positions in nm.

Examples
--------
>>> import cvlearn as cl
>>> from cvlearn import plot
>>> mb = cl.systems.MullerBrown()
>>> fig = plot.fes(mb.exact_fes(bins=60), units="kT", basins=mb.basins)
>>> fig.savefig("fes.png")  # doctest: +SKIP
"""

try:
    import matplotlib  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("cvlearn.plot needs matplotlib: pip install matplotlib") from exc

from ._fes import fes, fes_comparison
from ._landscape import cv_on_landscape
from ._latent import latent_space, path_energy
from ._timeseries import cv_timeseries, delta_f_convergence, loss

__all__ = ["fes", "fes_comparison", "cv_timeseries", "delta_f_convergence", "cv_on_landscape",
           "loss", "latent_space", "path_energy"]
