"""The walkers of ``cvlearn walkers``: metadynamics on a TICA CV of Muller-Brown or the hidden double well,
or on the backbone dihedrals of alanine dipeptide (OpenMM)."""

import math
import warnings

import numpy as np
import torch

from ..bias import Grid, WellTemperedMetad
from ..data import alanine_dipeptide_pdb
from ..engine import Langevin, OpenMM
from ..exceptions import ConvergenceWarning
from ..features import Dihedrals, Positions
from ..fes import Basin, FreeEnergySurface
from ..systems import HiddenDoubleWell, MullerBrown
from .quickstart import EXPLORE_T, FRICTION, TIMESTEP, _exact_fes_along, quickstart_learner

__all__ = ["AlanineWalkers", "DemoWalkers"]

# Per system: how to build it, the hot exploration that shows transitions for TICA to learn from,
# and the metadynamics settings (sigma, grid margin in CV standard deviations; height kJ/mol).
_SYSTEMS = {
    "muller-brown": {"make": lambda T: MullerBrown(temperature=T), "timestep": TIMESTEP, "friction": FRICTION,
                     "sigma_std": 0.1, "margin_std": 0.5, "height": 1.5, "bias_factor": 10.0, "pace": 100},
    # 25 kJ/mol = 10 kT at 300 K: rare without a good bias; ~3 kT during the 1000 K exploration.
    "hidden-double-well": {"make": lambda T: HiddenDoubleWell(dim=10, barrier=25.0, temperature=T),
                           "timestep": 0.02, "friction": 1.0, "sigma_std": 0.2, "margin_std": 3.0, "height": 2.0,
                           "bias_factor": 15.0, "pace": 50},
}


class DemoWalkers:
    """``make_engine`` for :func:`cvlearn.walkers.run`: well-tempered metadynamics at 300 K on a TICA CV.

    The CV is learned once, here, from a short unbiased run at 1000 K (as ``cvlearn quickstart``
    does), so every walker biases the same CV; the instance is picklable and builds one walker's
    engine per call.

    Parameters
    ----------
    system : {"muller-brown", "hidden-double-well"}
        Muller-Brown (2-D) or the double well hidden in 10 dimensions (25 kJ/mol barrier).
    seed : int
        Seed of the exploration.
    explore_steps : int
        Steps of the 16-walker exploration.

    Examples
    --------
    >>> from cvlearn.app import DemoWalkers
    >>> demo = DemoWalkers("muller-brown", explore_steps=1000)
    >>> engine = demo.engine(n_walkers=4, seed=1)  # the same bias, batched in one process
    >>> engine.run(200, stride=100).positions.shape
    (2, 4, 1, 2)
    """

    def __init__(self, system="muller-brown", seed=0, explore_steps=4000):
        if system not in _SYSTEMS:
            raise ValueError(f"system must be one of {sorted(_SYSTEMS)}; got {system!r}.")
        self.name, self.settings = system, _SYSTEMS[system]
        hot = self.settings["make"](EXPLORE_T)
        explore = Langevin(hot, timestep=self.settings["timestep"], friction=self.settings["friction"], n_walkers=16,
                           seed=seed).run(explore_steps, stride=10)
        est = quickstart_learner("tica", seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(explore)
        self.cv = est.to_module(featurizer=Positions.of(hot))
        s = np.concatenate(est.transform(explore))[:, 0]
        self.sigma = self.settings["sigma_std"] * s.std()
        lo, hi = s.min() - self.settings["margin_std"] * s.std(), s.max() + self.settings["margin_std"] * s.std()
        self.grid = Grid(lo, hi, int(np.ceil((hi - lo) / (self.sigma / 5))))

    def system(self):
        """The system at 300 K."""
        return self.settings["make"](300.0)

    def engine(self, n_walkers=1, seed=0, metad_kwargs=None):
        """A Langevin engine of ``n_walkers`` walkers with the metadynamics bias (extra ``metad_kwargs``)."""
        c = self.settings
        metad = WellTemperedMetad(self.cv, sigma=self.sigma, height=c["height"], bias_factor=c["bias_factor"],
                                  pace=c["pace"], grid=self.grid, outside="wall", **(metad_kwargs or {}))
        return Langevin(self.system(), timestep=c["timestep"], friction=c["friction"], n_walkers=n_walkers, seed=seed,
                        bias=metad)

    def __call__(self, walker):
        """One walker's engine (the ``make_engine`` protocol of :func:`cvlearn.walkers.run`)."""
        return self.engine(seed=walker.seed, metad_kwargs=walker.metad_kwargs)

    def exact_fes(self, bins=100):
        """Exact free energy along the CV (Muller-Brown only: 2-D, integrated on a fine grid), or None."""
        return _exact_fes_along(self.system(), self.cv, bins) if self.name == "muller-brown" else None

    def basins(self):
        """CV intervals around Muller-Brown's minima A and B (half-width: a quarter of their distance on the CV)."""
        mb = self.system()
        with torch.no_grad():
            s = [float(self.cv(torch.tensor([[mb.minima[k]]], dtype=torch.float64)).reshape(-1)[0]) for k in "AB"]
        half = 0.25 * abs(s[1] - s[0])
        return [Basin(lo=[x - half], hi=[x + half], name=k) for x, k in zip(s, "AB")]

    def delta_f(self, hills, times):
        """F(B) - F(A) (kJ/mol) along the CV implied by the hills deposited up to each of ``times`` (ps).

        ``hills``: a dict with "time", "center" (n, 1) and "height" (kJ/mol, as deposited), e.g.
        ``WellTemperedMetad.hills`` or ``WalkersResult.hills``; F = -gamma / (gamma - 1) V on the grid.
        """
        a, b = self.basins()
        s, gamma = self.grid.axes[0], self.settings["bias_factor"]
        out = []
        for t in times:
            sel = hills["time"] <= t
            u = (s[:, None] - hills["center"][sel, 0]) / self.sigma
            v = (hills["height"][sel] * np.exp(-0.5 * u**2)).sum(1)
            out.append(FreeEnergySurface([s], -gamma / (gamma - 1) * v, 300.0).delta_f(a, b).value)
        return np.array(out)

    def report(self, result, region_kT=6.0):
        """A JSON-ready summary of a :func:`cvlearn.walkers.run` of these walkers.

        For Muller-Brown it adds F(B) - F(A) along the CV from the merged bias (its error: the standard
        deviation of that estimate at 5 times over the last 40 % of the run) next to the exact one, and
        :meth:`fes_rmse` of the merged free energy.
        """
        out = _summary(self.name, self.settings["timestep"], result)
        exact = self.exact_fes(bins=400)
        if exact is None:
            return out
        end = out["steps_per_walker"] * out["timestep_ps"]
        series = self.delta_f(result.hills, np.linspace(0.6, 1.0, 5) * end)
        out["delta_f_A_to_B_kJ_mol"] = round(float(series[-1]), 3)
        out["delta_f_error_kJ_mol"] = round(float(series.std(ddof=1)), 3)
        out["delta_f_exact_kJ_mol"] = round(exact.delta_f(*self.basins()).value, 3)
        out["fes_rmse_vs_exact_kT"] = round(self.fes_rmse(result.fes, region_kT), 3)
        return out

    def fes_rmse(self, fes, region_kT=6.0):
        """RMSE (kT) of a free energy along the CV against the exact one (Muller-Brown), where the exact F
        is within ``region_kT`` of its minimum, after removing the mean offset."""
        exact = self.exact_fes(bins=400)
        s, F = exact.axes[0], exact.F
        est = np.interp(s, fes.axes[0], fes.F)
        region = np.isfinite(F) & (F - np.nanmin(F[np.isfinite(F)]) < region_kT * exact.kT)
        diff = est[region] - F[region]
        return float(np.sqrt(((diff - diff.mean()) ** 2).mean()) / exact.kT)


def _summary(system, timestep, result):
    """The part of a walkers report every system shares (``timestep`` in ps, ``result`` a WalkersResult)."""
    return {"system": system, "n_walkers": len(result.walkers), "steps_per_walker": result.walkers[0].steps,
            "timestep_ps": timestep, "hills_per_walker": [w.n_hills for w in result.walkers],
            "restarts": [w.restarts for w in result.walkers], "wall_time_s": round(result.wall_time_s, 2),
            "walker_steps_per_s": round(result.walker_steps_per_s, 1), "walkers_dir": result.walkers_dir}


class AlanineWalkers:
    """``make_engine`` for :func:`cvlearn.walkers.run`: alanine dipeptide in vacuum (OpenMM, Amber99SB-ILDN,
    HBonds constrained, 2 fs steps, 300 K) with well-tempered metadynamics on its backbone dihedrals
    (phi, psi), rad, each walker one :class:`cvlearn.engine.OpenMM` engine (``cvlearn walkers --system alanine``).

    Picklable and small: each call builds the CV, the bias and the engine of one walker in the worker.

    Parameters
    ----------
    platform : str, optional
        OpenMM platform; default :func:`cvlearn.engine.default_platform` (Reference for this molecule
        without a GPU).
    sigma : float
        Hill width, rad (on both angles).
    height : float
        Initial hill height, kJ/mol.
    bias_factor : float
    pace : int
        Steps between hills; it must divide the walkers' ``read_stride`` (the OpenMM engine updates
        the bias only at multiples of ``pace``).

    Examples
    --------
    >>> import cvlearn.app
    >>> demo = cvlearn.app.AlanineWalkers(platform="Reference")
    >>> demo.names, demo.grid.shape, demo.pace               # periodic (phi, psi) grid over (-pi, pi]^2
    (['phi', 'psi'], (90, 90), 100)
    """

    names = ["phi", "psi"]

    def __init__(self, platform=None, sigma=0.35, height=1.2, bias_factor=10.0, pace=100):
        self.platform, self.sigma, self.height = platform, float(sigma), float(height)
        self.bias_factor, self.pace = float(bias_factor), int(pace)
        bins = int(math.ceil(2 * math.pi / (self.sigma / 5)))  # spacing sigma / 5
        self.grid = Grid([-math.pi] * 2, [math.pi] * 2, bins, periodic=True)

    def cv(self):
        """The CV module: (phi, psi) of the shipped structure's alanine residue, rad."""
        return Dihedrals(alanine_dipeptide_pdb(), "phi psi", names=self.names)

    def __call__(self, walker):
        """One walker's engine (the ``make_engine`` protocol of :func:`cvlearn.walkers.run`)."""
        metad = WellTemperedMetad(self.cv(), sigma=self.sigma, height=self.height, bias_factor=self.bias_factor,
                                  pace=self.pace, grid=self.grid, **walker.metad_kwargs)
        return OpenMM.from_pdb(alanine_dipeptide_pdb(), temperature=300.0, timestep=0.002, bias=metad,
                               seed=walker.seed, platform=self.platform, minimize=True)

    def report(self, result):
        """A JSON-ready summary of a :func:`cvlearn.walkers.run` of these walkers, with the hills each
        walker read from every walker's file (``hills_read``)."""
        out = _summary("alanine", 0.002, result)
        out["hills_read"] = [w.hills_read for w in result.walkers]
        return out
