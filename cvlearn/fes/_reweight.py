"""Free energies from sampled frames: reweighting biased runs onto any variable, with block errors.

Which reweighting to use
------------------------
``method="ct"`` (Tiwary & Parrinello, JPCB 119, 736 (2015)): each frame gets the weight
exp(beta [V(s, t) - c(t)]), with V(s, t) the bias acting when the frame was recorded and c(t) the
time-dependent offset computed from the bias itself, c(t) = kT log(int exp(gamma/(gamma-1) V/kT) /
int exp(V/((gamma-1) kT))) over the bias grid. It is the default for well-tempered metadynamics.

**Discard the transient** (``skip``). That formula equals the true kT log(Z_0 / Z_t) only once the bias
has the well-tempered shape V = -(1 - 1/gamma) F + const over the region sampled; while the first
basin is being filled and before the CV has crossed between the basins it can be off by many kT, and
every stretch of the run carries the same total weight, so those early frames (all in the first basin)
bias the result. Measured (``benchmarks/ct_reweighting.py``): c(t) printed by cvlearn equals a brute-force
integral over the HILLS to 1e-9 kJ/mol, yet on a periodic 2-D model with the alanine dipeptide settings
and an exact Delta F of 9.77 kJ/mol, the Tiwary-Parrinello c(t) differed from the exact offset by up to
15 kJ/mol during the filling, and on alanine dipeptide (phi, psi) all frames of 1 ns gave 13 kJ/mol
against 9.8: the molecule first reached the C7ax basin after 455 and 484 ps (two seeds), so half of
the weight sat on frames from before any crossing; discarding them (:func:`transient_fraction`) gave
10.2 and 10.8, discarding 100 ps more 10.0 and 10.6. Discard at least the time until the CV has first
reached the other basin (as PLUMED users discard an initial transient), check that the estimate no
longer moves with ``skip`` (:func:`delta_f_timeseries` takes ``skip`` too), and compare with
``method="final"`` and the bias-derived surface.

**A lag that no offset repairs.** Weighting by c(t) assumes the frames at time t are distributed as
exp(-beta (F - V_t)); a bias that grows fast under the walkers (many walkers filling one bias) outruns
them, and their populations lag it. Measured (``benchmarks/ct_reweighting_bias.py``, mean +- s.e. over
8 seeds): on the double well of ``tests/test_metad_runs.py`` (32 walkers sharing one bias, 6000 steps of
5 fs, exact Delta F 7.83 kJ/mol) c(t) with 20 % of the frames discarded gave 6.93 +- 0.22 kJ/mol, and the
exact offset kT log <exp(beta V_t)>_0 (from the exact F) the same 6.89 +- 0.23; each fifth of the run
alone gave 12.4, 5.4, 8.7, 7.2 and 7.9: the populations swing about their weights long after the first
crossing. Discarding half gave 7.64 +- 0.26, runs 4 and 16 times longer 7.62 +- 0.10 and 7.76 +- 0.05
(20 % discarded). The quickstart (Muller-Brown, 8 walkers, 25000 steps, 10 % discarded, exact 11.41)
gave 10.16 +- 0.34, and 11.03 +- 0.20 and 11.38 +- 0.05 when 4 and 16 times longer, where discarding
half did not help (10.52 +- 0.51). So compare Delta F from separate stretches of the run: while it still
swings, the run is too short for any ``skip``.

``method="final"``: every frame gets exp(beta V_final(s)), the final bias. This is right only once
the bias is quasi-static (late in a well-tempered run, OPES, or any static bias), so discard the
transient with ``skip`` (e.g. the first 30 % of frames). Use it for static biases, or to check c(t).

``method="bias"``: every frame gets exp(beta V(s, t)), the bias acting when it was recorded, with no
offset: the reweighting of OPES (Invernizzi & Parrinello, JPCL 11, 2731 (2020)), whose bias is
quasi-static after a short transient (discard it with ``skip``). It is the default for a bias that
says so (``bias.reweighting = "bias"``, as :class:`cvlearn.OPES`); "ct" is the default otherwise.

Unbiased runs (``bias=None``) get uniform weights.
"""

import numpy as np

from ..units import kT as _kT
from ._basin import Basin
from ._surface import FreeEnergySurface

__all__ = ["log_weights", "reweight", "delta_f_timeseries", "from_bias", "transient_fraction"]


def from_bias(bias):
    """The free energy implied by a metadynamics bias on its grid (see ``bias.free_energy``).

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.2, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-2.0, 2.0, 80), temperature=300.0)
    >>> metad.deposit(np.array([[0.0]]), step=10)
    >>> fes = cl.fes.from_bias(metad)                                    # F = -(10 / 9) V, minimum shifted to 0
    >>> round(float(fes.F.max() - fes.F[40]), 4)                        # kJ/mol, at the hill's center
    1.1111
    """
    return bias.free_energy()


def _temperature(trajectory, bias, temperature):
    t = temperature if temperature is not None else getattr(trajectory, "temperature", None)
    t = t if t is not None else getattr(bias, "temperature", None)
    if t is None:
        raise ValueError("The temperature is unknown: pass temperature= (K).")
    return float(t)


def _method(bias, method):
    return getattr(bias, "reweighting", "ct") if method is None else method


def log_weights(trajectory, bias=None, method=None, temperature=None):
    """Log-weights (frames, walkers) that undo ``bias`` for the frames of ``trajectory``.

    ``method`` is "ct" (bias at each frame minus c(t); needs a bias with ``c_of_t``, e.g.
    :class:`cvlearn.WellTemperedMetad`), "final" (the final bias at each frame's CV) or "bias" (the
    bias at each frame, for OPES); default the bias's own ``reweighting``, else "ct".

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> frames = cl.Trajectory(np.zeros((3, 1, 1, 1)), time=[0.0, 1.0, 2.0],
    ...                        bias_energy=[[0.0], [2.494339], [4.988678]], temperature=300.0)   # kJ/mol
    >>> cl.fes.log_weights(frames, bias=cl.bias.HarmonicRestraint(lambda x: x[:, 0, :1], at=0.0, kappa=1.0),
    ...                    method="bias").round(6).tolist()             # V / kT at each frame
    [[0.0], [1.0], [2.0]]
    """
    shape = trajectory.positions.shape[:2]
    if bias is None:
        return np.zeros(shape)
    beta = 1.0 / _kT(_temperature(trajectory, bias, temperature))
    method = _method(bias, method)
    if method == "bias":
        return beta * trajectory.bias_energy
    if method == "ct":
        if not hasattr(bias, "c_of_t"):
            raise ValueError(f"method='ct' needs a metadynamics bias with a c(t) history; {type(bias).__name__} has "
                             "none. Use method='final' for a static bias.")
        return beta * (trajectory.bias_energy - bias.c_of_t(trajectory.step)[:, None])
    if method == "final":
        import torch

        pos = torch.as_tensor(trajectory.positions.reshape(-1, *trajectory.positions.shape[2:]))
        with torch.no_grad():
            s = bias.cv_values(pos).numpy()
        return beta * bias.evaluate(s).reshape(shape)
    raise ValueError(f"method must be 'ct', 'final' or 'bias'; got {method!r}.")


def _values(trajectory, variables):
    """Evaluate ``variables`` on every frame -> (frames, walkers, k)."""
    n, w = trajectory.positions.shape[:2]
    if callable(variables):
        pos = trajectory.positions.reshape(n * w, *trajectory.positions.shape[2:])
        import torch

        if isinstance(variables, torch.nn.Module):  # CV modules and featurizers take tensors
            with torch.no_grad():
                out = variables(torch.as_tensor(pos))
        else:
            out = variables(pos)
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        out = np.asarray(out, dtype=np.float64)
    else:
        out = np.asarray(variables, dtype=np.float64)
    out = out.reshape(n, w, -1)
    if not np.isfinite(out).all():
        raise ValueError("The reweighting variables contain NaN or infinite values.")
    return out


def _blocks(n_frames, n_blocks, first):
    """Contiguous time blocks (frame index ranges) over frames[first:]."""
    if n_blocks < 2:
        raise ValueError(f"n_blocks must be >= 2 for an error bar; got {n_blocks}.")
    edges = np.linspace(first, n_frames, n_blocks + 1).astype(int)
    if np.any(np.diff(edges) < 1):
        raise ValueError(f"{n_frames - first} frames cannot be split into {n_blocks} blocks.")
    return list(zip(edges[:-1], edges[1:]))


def _check_skip(skip):
    if not (isinstance(skip, (int, float, np.floating, np.integer)) and 0.0 <= skip < 1.0):
        raise ValueError(f"skip is the fraction of the frames discarded from the start as transient, a number in "
                         f"[0, 1) (e.g. 0.3); got {skip!r}.")


def _normalized(logw):
    return np.exp(logw - logw.max())


def reweight(trajectory, variables, bias=None, method=None, bins=50, ranges=None, skip=0.0, n_blocks=5,
             temperature=None, names=None, logweights=None):
    """Free energy surface of any variable(s) from (biased) frames, with block-averaged errors.

    Parameters
    ----------
    trajectory : cvlearn.Trajectory
        Frames of a run (its ``bias_energy`` and ``step`` are used by ``method="ct"``).
    variables : callable or ndarray
        ``f(positions (n, particles, dims)) -> (n, k)`` (e.g. ``system.slow_coordinates``, a CV
        module, a featurizer), or precomputed values (frames, walkers, k); k = 1 to 3.
    bias : object, optional
        The bias that acted (e.g. the :class:`cvlearn.WellTemperedMetad` of the run).
    method : {"ct", "final", "bias"}, optional
        See the module documentation; default the bias's own (``bias.reweighting``), else "ct".
    bins : int or sequence of int
    ranges : [(lo, hi), ...], optional
        Histogram range per variable (default: the sampled range).
    skip : float
        Fraction of the frames (from the start) discarded as transient.
    n_blocks : int
        Contiguous time blocks for the error: the error of F is kT times the standard error of the
        block probabilities relative to their mean; F of each block is kept in ``samples``.
    temperature : float, optional
        K (default: the trajectory's).
    names : list of str, optional
    logweights : ndarray (frames, walkers), optional
        Log-weights computed elsewhere (e.g. :func:`cvlearn.fes.colvar_logweights` of a PLUMED run),
        used instead of ``bias``/``method``; ``temperature`` is then required unless the trajectory has one.

    Returns
    -------
    FreeEnergySurface
        F in kJ/mol on the bin centers (inf in empty bins), ``error`` and ``samples`` set.

    Examples
    --------
    Unbiased Boltzmann samples of a harmonic well, 50 kJ/mol/nm^2 at 300 K: F(x) = 25 x^2 kJ/mol.

    >>> import numpy as np, cvlearn as cl
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(scale=np.sqrt(cl.units.kT(300.0) / 50.0), size=(20000, 4, 1, 1))   # nm
    >>> traj = cl.Trajectory(x, time=np.arange(20000) * 0.01, temperature=300.0)
    >>> fes = cl.fes.reweight(traj, lambda pos: pos[:, 0, :], bins=21, ranges=[(-0.3, 0.3)])
    >>> fes.F.shape, fes.error.shape
    ((21,), (21,))
    >>> exact = 25.0 * fes.axes[0] ** 2
    >>> bool(np.all(np.abs(fes.F - (exact - exact.min())) < 4 * fes.error + 0.05))     # kJ/mol
    True
    """
    vals = _values(trajectory, variables)
    method = _method(bias, method)
    if logweights is None:
        logw = log_weights(trajectory, bias, method, temperature)
    else:
        logw = np.asarray(logweights, dtype=np.float64).reshape(vals.shape[:2])
    T = _temperature(trajectory, bias, temperature)
    n = vals.shape[0]
    _check_skip(skip)
    first = int(np.floor(skip * n))
    k = vals.shape[2]
    flat = vals[first:].reshape(-1, k)
    if ranges is None:
        lo, hi = flat.min(0), flat.max(0)
        pad = 1e-9 * np.maximum(hi - lo, 1.0)
        ranges = list(zip(lo - pad, hi + pad))
    edges = [np.linspace(lo, hi, b + 1) for (lo, hi), b in zip(ranges, np.broadcast_to(bins, (k,)))]
    vol = np.prod([e[1] - e[0] for e in edges])

    def prob(a, b):
        v = vals[a:b].reshape(-1, k)
        w = _normalized(logw[a:b]).ravel()
        h, _ = np.histogramdd(v, bins=edges, weights=w)
        return h / w.sum() / vol

    kT = _kT(T)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = prob(first, n)
        F = -kT * np.log(p)
        blocks = np.array([prob(a, b) for a, b in _blocks(n, n_blocks, first)])
        error = kT * blocks.std(0, ddof=1) / np.sqrt(n_blocks) / p
        samples = -kT * np.log(blocks)
    centers = [0.5 * (e[1:] + e[:-1]) for e in edges]
    names = names or getattr(variables, "names", None) or [f"s{i}" for i in range(k)]
    return FreeEnergySurface(centers, F, T, error=np.where(np.isfinite(F), error, np.nan), samples=samples,
                             names=names, metadata={"method": f"reweight_{method}" if bias is not None else "histogram",
                                                    "skip": skip, "n_blocks": n_blocks,
                                                    "n_frames": int((n - first) * vals.shape[1])})


def delta_f_timeseries(trajectory, variables, basin_a, basin_b, bias=None, method=None, n_points=20,
                       n_blocks=5, temperature=None, skip=0.0):
    """F(b) - F(a) (kJ/mol) from the frames up to each of ``n_points`` times, to judge convergence.

    Basin populations are summed directly from the weighted frames (no histogram). The error at
    each time is the standard error over ``n_blocks`` contiguous blocks of the frames used.

    Parameters
    ----------
    trajectory : cvlearn.Trajectory
    variables : callable or ndarray
        As in :func:`reweight`; ``basin_a`` and ``basin_b`` (:class:`Basin` or dicts) are in them.
    bias, method, temperature
        As in :func:`log_weights`.
    n_points, n_blocks : int
        Times at which Delta F is computed; blocks for each error bar.
    skip : float
        Fraction in [0, 1) of the frames up to each time discarded from its start as transient: the
        value at time t is what :func:`reweight` with this ``skip`` gives for a run stopped at t. With
        c(t) reweighting, skip the filling of the first basin (see the module documentation).

    Returns
    -------
    dict with "time" (ps), "delta_f" and "error" (kJ/mol) arrays.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> traj = cl.Trajectory(np.zeros((100, 1, 1, 1)), np.arange(100.0), np.arange(100), temperature=300.0)
    >>> x = np.where(np.arange(100) < 40, -1.0, np.tile([-1.0, 1.0], 50))[:, None, None]  # 40 frames in a first
    >>> a, b = cl.fes.Basin(lo=[-2.0], hi=[0.0]), cl.fes.Basin(lo=[0.0], hi=[2.0])
    >>> ts = cl.fes.delta_f_timeseries(traj, x, a, b, n_points=2, skip=0.4)
    >>> ts["time"].tolist()       # frames 20-49, then 40-99
    [49.0, 99.0]
    >>> [round(abs(float(d)), 4) for d in ts["delta_f"]]   # kT ln(25 / 5) with the transient's tail; 0 after it
    [4.0145, 0.0]
    """
    _check_skip(skip)
    vals = _values(trajectory, variables)
    logw = log_weights(trajectory, bias, method, temperature)
    kT = _kT(_temperature(trajectory, bias, temperature))
    a, b = (x if isinstance(x, Basin) else Basin(**x) for x in (basin_a, basin_b))
    k = vals.shape[2]
    in_a = a.contains(vals.reshape(-1, k)).reshape(vals.shape[:2])
    in_b = b.contains(vals.reshape(-1, k)).reshape(vals.shape[:2])
    n = vals.shape[0]

    def df(lo, hi):
        w = _normalized(logw[lo:hi])
        pa, pb = (w * in_a[lo:hi]).sum(), (w * in_b[lo:hi]).sum()
        return -kT * np.log(pb / pa) if pa > 0 and pb > 0 else np.nan

    ends = np.unique(np.linspace(max(n_blocks, n // n_points), n, n_points).astype(int))
    out, err = [], []
    for end in ends:
        first = int(np.floor(skip * end))
        if end - first < n_blocks:
            out.append(np.nan)
            err.append(np.nan)
            continue
        out.append(df(first, end))
        d = np.array([df(lo, hi) for lo, hi in _blocks(end, n_blocks, first)])
        d = d[np.isfinite(d)]
        err.append(d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan)
    return {"time": trajectory.time[ends - 1], "delta_f": np.array(out), "error": np.array(err)}


def transient_fraction(trajectory, variables, basin):
    """Fraction of the frames recorded before any walker first entered ``basin``: a ``skip`` for c(t) reweighting.

    A metadynamics run that starts in one basin samples it alone until the bias has filled it; those
    frames carry as much c(t) weight as any later ones and bias the free energy difference (see the
    module documentation). Pass the core of the basin the run did *not* start in (a narrow one, so that
    a fluctuation across a loose boundary does not count as a visit).

    Parameters
    ----------
    trajectory : cvlearn.Trajectory
    variables : callable or ndarray
        As in :func:`reweight`.
    basin : Basin or dict
        In ``variables``.

    Returns
    -------
    float
        In [0, 1): frames before the first visit / all frames; 0.0 if the basin was never visited
        (nothing to reweight into it then: a longer run is needed, not a skip).

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> traj = cl.Trajectory(np.zeros((10, 2, 1, 1)), np.arange(10.0), np.arange(10), temperature=300.0)
    >>> x = np.full((10, 2, 1), -1.0)
    >>> x[7, 0, 0] = x[4, 1, 0] = 1.0        # walker 1 arrives first, at frame 4
    >>> cl.fes.transient_fraction(traj, x, cl.fes.Basin(lo=[0.5], hi=[1.5]))
    0.4
    """
    vals = _values(trajectory, variables)
    b = basin if isinstance(basin, Basin) else Basin(**basin)
    inside = b.contains(vals.reshape(-1, vals.shape[2])).reshape(vals.shape[:2]).any(1)
    return float(np.argmax(inside) / len(inside)) if inside.any() else 0.0

