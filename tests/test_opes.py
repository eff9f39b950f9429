"""OPES: PLUMED's formulas and numbers, compression, files and exact restarts, and free energies
against exact ones."""

import math

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.bias._named import NamedCV
from cvlearn.engine._lean import compile_cv

KT300 = cl.units.kT(300.0)


def xy_cv(positions):
    """The (x, y) of one 2-D particle: CV values equal positions, so autograd gives dV/ds."""
    return positions[:, 0, :]


def paper_bias(points, centers, sigmas, heights, sum_w, kT, gamma, eps, cutoff, periods):
    """V(s) = (1 - 1/gamma) kT log(P(s)/Z + eps) of Invernizzi & Parrinello, JPCL 11, 2731 (2020), by loops:
    P(s) = sum_k h_k G_k(s) / sum_w with kernels truncated at ``cutoff`` sigmas and shifted to 0 there
    (PLUMED), Z = mean of P over the kernel centers. ``periods``: period per CV or None."""
    def kernel(s, c, sig, h):
        r2 = 0.0
        for x, y, w, p in zip(s, c, sig, periods):
            dx = x - y
            if p:
                dx -= p * round(dx / p)
            r2 += (dx / w) ** 2
        return h * (math.exp(-r2 / 2) - math.exp(-cutoff**2 / 2)) if r2 < cutoff**2 else 0.0

    def prob(s):
        return sum(kernel(s, c, sig, h) for c, sig, h in zip(centers, sigmas, heights)) / sum_w

    zed = sum(prob(c) for c in centers) / len(centers)
    pref = 1.0 - 1.0 / gamma
    return np.array([pref * kT * math.log(prob(s) / zed + eps) for s in points]), zed


def write_kernels(path, rows, names=("x", "y"), periodic=("y",)):
    """A KERNELS file in PLUMED's format: time, centers, sigmas, height, logweight."""
    lines = ["#! FIELDS time " + " ".join(names) + " " + " ".join(f"sigma_{n}" for n in names) + " height logweight",
             "#! SET action OPES_METAD_kernels"]
    lines += [f"#! SET {m}_{n} {v}" for n in periodic for m, v in (("min", "-pi"), ("max", "pi"))]
    lines += [" ".join(f"{v:.17g}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_barrier_sets_bias_factor_epsilon_and_cutoff_as_plumed():
    opes = cl.OPES(xy_cv, barrier=30.0, pace=10, sigma=[0.1, 0.2], temperature=300.0)
    gamma = 30.0 / KT300
    pref = 1 - 1 / gamma
    assert opes.bias_factor == pytest.approx(gamma, rel=1e-14)
    assert opes.epsilon == pytest.approx(math.exp(-30.0 / (pref * KT300)), rel=1e-14)
    assert opes.kernel_cutoff == pytest.approx(math.sqrt(2 * 30.0 / (pref * KT300)), rel=1e-14)
    # The cutoff is where a kernel has fallen to epsilon; with no kernel the bias is -barrier everywhere.
    assert math.exp(-0.5 * opes.kernel_cutoff**2) == pytest.approx(opes.epsilon, rel=1e-12)
    np.testing.assert_allclose(opes.evaluate([[0.0, 0.0], [5.0, -3.0]]), -30.0, rtol=1e-14)
    # PLUMED starts the weights at exp(beta V0) with one sample: rct = V0 = -barrier, N_eff from it.
    assert opes.rct == pytest.approx(-30.0, rel=1e-12)
    assert opes.neff == pytest.approx((1 + math.exp(-30 / KT300)) ** 2 / (1 + math.exp(-60 / KT300)), rel=1e-14)
    explicit = cl.OPES(xy_cv, barrier=30.0, pace=10, sigma=[0.1, 0.2], temperature=300.0, bias_factor=5.0)
    assert explicit.epsilon == pytest.approx(math.exp(-30.0 / (0.8 * KT300)), rel=1e-14)
    flat = cl.OPES(xy_cv, barrier=30.0, pace=10, sigma=[0.1, 0.2], temperature=300.0, bias_factor=np.inf)
    assert flat.prefactor == 1.0 and flat.epsilon == pytest.approx(math.exp(-30.0 / KT300), rel=1e-14)


# plumed2 regtest/opes/rt-opes_metad (LGPL): OPES_METAD ARG=phi,psi PACE=5 TEMP=300 SIGMA=0.15,0.15
# EPSILON=0.001 BIASFACTOR=inf KERNEL_CUTOFF=6 NO_ZED RECURSIVE_MERGE_OFF FIXED_SIGMA on alanine
# frames. Columns of its Colvar.data.reference: time phi psi opes.bias opes.rct opes.neff opes.nker.
PLUMED_COLVAR = """
0 -2.85656 2.7909 -17.2303 0 2 0
5 -2.29224 1.14276 -17.2303 -1.72645 2.002 1
10 -2.13168 1.89325 -17.2303 -2.73533 2.004 2
15 -2.92489 2.86227 -17.2303 -3.45042 2.006 3
20 -2.56135 0.91674 -17.0753 -4.00437 2.00813 4
25 -1.10925 1.61448 -17.2303 -4.45666 2.01014 5
30 1.47871 -1.34139 -17.2303 -4.83868 2.01214 6
35 -1.27313 0.919978 -17.2303 -5.16927 2.01415 7
40 -1.10608 0.941929 -16.172 -5.45928 2.01721 8
45 -3.03879 -2.43909 -17.2303 -5.71961 2.01922 9
50 -1.69099 1.06944 -17.1974 -5.95485 2.02126 10
"""
# logweight column of its KERNELS.reference, one row per deposition (times 5 to 50).
PLUMED_LOGWEIGHTS = [-6.907755, -6.907753, -6.907755, -6.845638, -6.907755, -6.907755, -6.907743, -6.483498,
                     -6.907755, -6.894580]


def test_replays_plumed_reference_run(tmp_path):
    ref = np.array([[float(v) for v in line.split()] for line in PLUMED_COLVAR.strip().splitlines()])
    opes = cl.OPES(NamedCV(["phi", "psi"]), barrier=20.0, pace=5, sigma=[0.15, 0.15], temperature=300.0,
                   bias_factor=np.inf, epsilon=0.001, kernel_cutoff=6.0, no_zed=True, fixed_sigma=True,
                   recursive_merge=False, periodic=True, kernels=tmp_path / "KERNELS")
    opes.bind(300.0, 1.0)  # PLUMED's time unit here is one step
    got = []
    for t, phi, psi, *_ in ref:
        opes.value_and_gradient([[phi, psi]])
        bias = float(opes.colvar()["opes.bias"][0])
        if t > 0:  # PLUMED skips the update of the first step, as the engines do
            opes.update(int(t), None)
        got.append([bias, opes.rct, opes.neff, opes.n_kernels])
    # The reference prints 6 significant digits (and its CVs too): agreement to that precision.
    np.testing.assert_allclose(np.array(got), ref[:, 3:], rtol=2e-5, atol=1e-5)
    logw = cl.io.read_colvar(tmp_path / "KERNELS")["logweight"]
    np.testing.assert_allclose(logw, PLUMED_LOGWEIGHTS, atol=1e-5)


def test_bias_is_the_paper_formula_on_fixed_kernels(tmp_path):
    rng = np.random.default_rng(3)
    n = 25
    rows = np.column_stack([np.arange(n), rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n),
                            rng.uniform(0.1, 0.4, n), rng.uniform(0.2, 0.6, n), rng.uniform(0.5, 2, n),
                            rng.normal(0, 2, n)])
    write_kernels(tmp_path / "KERNELS", rows)
    # compression_threshold=0: the kernels stay exactly as in the file.
    opes = cl.OPES(NamedCV(["x", "y"]), barrier=25.0, pace=1, sigma=[0.1, 0.1], temperature=300.0,
                   compression_threshold=0.0, periodic=[False, True])
    assert opes.load_kernels(tmp_path / "KERNELS") == n and opes.n_kernels == n
    sum_w = opes.epsilon ** opes.prefactor + np.exp(rows[:, -1]).sum()
    pts = np.column_stack([rng.uniform(-1.5, 1.5, 40), rng.uniform(-np.pi, np.pi, 40)])
    pts[:3, 1] = [np.pi - 1e-3, -np.pi + 1e-3, 3 * np.pi]  # across the periodic seam, and a far image
    periods = [None, 2 * np.pi]
    args = (rows[:, 1:3], rows[:, 3:5], rows[:, 5], sum_w, KT300, opes.bias_factor, opes.epsilon,
            opes.kernel_cutoff, periods)
    direct, zed = paper_bias(pts, *args)
    assert opes.zed == pytest.approx(zed, rel=1e-12)
    np.testing.assert_allclose(opes.evaluate(pts), direct, rtol=1e-12, atol=1e-12)
    # dV/ds against central differences of the direct formula.
    _, grad = opes.value_and_gradient(pts[:5])
    h = 1e-6
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        fd = (paper_bias(pts[:5] + e, *args)[0] - paper_bias(pts[:5] - e, *args)[0]) / (2 * h)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-6, atol=1e-7)


def test_compression_merges_as_plumed():
    def kernels(recursive):
        k = cl.OPES(NamedCV(["x"]), barrier=30.0, pace=1, sigma=1.0, temperature=300.0, recursive_merge=recursive)
        ks = k._kernels
        ks.add(1.0, [0.0], [1.0])
        ks.add(1.0, [1.5], [1.0])  # 1.5 sigma away: a second kernel
        ks.add(3.0, [0.75], [1.0])  # 0.75 sigma from both: merged into the first (the earlier on ties)
        return k.kernels

    # Merge of the new kernel into the first: h = 4, c = (0 + 3 * 0.75) / 4, sigma^2 = moments.
    k = kernels(recursive=False)
    c, var = 0.5625, (1 * (1 + 0) + 3 * (1 + 0.75**2)) / 4 - 0.5625**2
    np.testing.assert_allclose(k["height"], [4.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(k["center"][:, 0], [c, 1.5], rtol=1e-15)
    np.testing.assert_allclose(k["sigma"][:, 0], [np.sqrt(var), 1.0], rtol=1e-14)
    # Recursive: the merged kernel (at 0.5625) is now 0.9375 sigma from the second: they merge too.
    k = kernels(recursive=True)
    c2 = (4 * c + 1.5) / 5
    var2 = (4 * (var + c**2) + 1 * (1 + 1.5**2)) / 5 - c2**2
    np.testing.assert_allclose([k["height"][0], k["center"][0, 0], k["sigma"][0, 0]], [5.0, c2, np.sqrt(var2)],
                               rtol=1e-14)
    assert len(k["height"]) == 1
    # Across the periodic seam: 3.1 and -3.12 are 0.063 apart; the merged center wraps into [-pi, pi).
    p = cl.OPES(NamedCV(["phi"]), barrier=30.0, pace=1, sigma=0.1, temperature=300.0, periodic=True)
    p._kernels.add(1.0, [3.1], [0.1])
    p._kernels.add(1.0, [-3.12], [0.1])
    gap = 2 * np.pi - 3.1 - 3.12
    np.testing.assert_allclose(p.kernels["center"][0, 0], 3.1 + gap / 2, rtol=1e-14)
    np.testing.assert_allclose(p.kernels["sigma"][0, 0], np.sqrt(0.01 + (gap / 2) ** 2), rtol=1e-12)


def test_incremental_normalization_equals_full_sum():
    """Z needs the sum over all kernel pairs; after a deposition only pairs with changed kernels are
    evaluated (PLUMED's update), merges and recursive merges included."""
    opes = cl.OPES(NamedCV(["phi", "psi"]), barrier=30.0, pace=1, sigma=0.3, temperature=300.0, periodic=True)
    ks = opes._kernels
    rng = np.random.default_rng(5)
    total = ks.overlap()
    for _ in range(60):
        before = ks.snapshot()
        for c in rng.normal([2.8, 0.0], 0.8, (4, 2)):  # around the periodic seam of phi
            ks.add(rng.uniform(0.5, 2.0), c, rng.uniform(0.1, 0.3, 2))
        total = ks.overlap(before, total)
    full = ks.overlap()
    assert len(ks) > 40 and len(ks) < 240  # many kernels, many merges
    assert total == pytest.approx(full, rel=1e-10)


def test_lean_path_equals_autograd():
    opes = cl.OPES(xy_cv, barrier=20.0, pace=1, sigma=[0.2, 0.3], temperature=300.0, periodic=[False, True])
    rng = np.random.default_rng(0)
    for s in rng.normal(0, 0.5, (30, 2)):  # deposits with the weights of the bias as it grows
        opes.deposit(s[None], opes.evaluate(s[None]), step=0)
    pts = np.column_stack([rng.normal(0, 0.7, 50), rng.uniform(-4, 4, 50)])
    pts[0] = [5.0, 0.0]  # beyond every kernel's cutoff: zero force
    # Batched engine: energy() with its gradient computed alongside, against plain autograd of the formula.
    x = torch.from_numpy(pts[:, None, :]).requires_grad_(True)
    v = opes.energy(x)
    (g,) = torch.autograd.grad(v.sum(), x)
    s = torch.from_numpy(opes.domain.wrap(pts)).requires_grad_(True)
    (g_auto,) = torch.autograd.grad(opes._bias(s).sum(), s)
    np.testing.assert_allclose(g[:, 0].numpy(), g_auto.numpy(), rtol=1e-10, atol=1e-12)
    for i in range(len(pts)):  # one configuration at a time, as the molecular engine calls it
        lv, lg = opes.value_and_gradient(pts[i:i + 1])
        np.testing.assert_allclose(lv, v[i].detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lg[0], g_auto[i].numpy(), rtol=1e-10, atol=1e-12)
    assert np.all(g[0].numpy() == 0)
    # Several points at once through the numpy path give the same numbers.
    lv, lg = opes.value_and_gradient(pts)
    np.testing.assert_allclose(lg, g_auto.numpy(), rtol=1e-10, atol=1e-12)


def dw_opes(**kw):
    args = dict(barrier=30.0, pace=20, adaptive_sigma_stride=100)
    args.update(kw)
    return cl.OPES(cl.features.Positions(1, 1), **args)


def test_restart_from_state_continues_exactly(tmp_path):
    dw = cl.systems.DoubleWell(1, barrier=10.0)

    def engine(bias):
        return cl.Langevin(dw, n_walkers=3, seed=11, bias=bias, timestep=0.005, friction=2.0)

    full_bias = dw_opes()
    full = engine(full_bias).run(600, stride=20)
    first_bias = dw_opes(state=tmp_path / "STATE", kernels=tmp_path / "KERNELS")
    first = engine(first_bias).run(310, stride=10, colvar=tmp_path / "COLVAR", checkpoint=tmp_path / "ckpt.npz")
    first_bias.close()  # writes the state of step 310, between depositions (adaptive sums included)
    # A new process: bias from the state file, engine from its checkpoint.
    resumed_bias = dw_opes(state=tmp_path / "STATE", kernels=tmp_path / "KERNELS", restart=True)
    resumed = engine(resumed_bias).load_checkpoint(tmp_path / "ckpt.npz")
    assert resumed_bias.n_kernels == first_bias.n_kernels > 0
    second = resumed.run(290, stride=10, colvar=tmp_path / "COLVAR", restart=True)
    joined = cl.Trajectory.concatenate([first, second])
    np.testing.assert_array_equal(joined.positions[1::2], full.positions)
    for key in ("center", "sigma", "height"):
        np.testing.assert_array_equal(resumed_bias.kernels[key], full_bias.kernels[key])
    assert (resumed_bias.zed, resumed_bias.neff, resumed_bias.rct) == (full_bias.zed, full_bias.neff, full_bias.rct)
    # Files: COLVAR per walker with PLUMED's opes.* columns; one KERNELS row per deposited kernel.
    col = cl.io.read_colvar(tmp_path / "COLVAR.0")
    assert list(col) == ["time", "x0", "opes.bias", "opes.rct", "opes.zed", "opes.neff", "opes.nker"]
    assert len(col["time"]) == 60
    kern = cl.io.read_colvar(tmp_path / "KERNELS")
    n_dep = len(range(100, 601, 20))  # no kernel before adaptive_sigma_stride steps
    assert len(kern["time"]) == 3 * n_dep
    # The incrementally updated Z equals the full sum over the compressed kernels.
    k = full_bias._kernels
    assert full_bias.zed == pytest.approx(k.overlap() / full_bias._sum_w / len(k), rel=1e-12)
    # The state file read back for analysis gives the same bias.
    back = cl.OPES.from_plumed_state(tmp_path / "STATE", temperature=dw.temperature)
    q = np.linspace(-1.5, 1.5, 31)[:, None]
    np.testing.assert_allclose(back.evaluate(q), resumed_bias.evaluate(q), rtol=1e-14)
    with pytest.raises(ValueError, match="without pace="):
        cl.Langevin(dw, bias=back)


# A state file as PLUMED 2.9's OPES_METAD writes it (FMT=%f, two walkers with WALKERS_MPI, adaptive sigma).
PLUMED_STATE = """#! FIELDS time phi psi sigma_phi sigma_psi height
#! SET action OPES_METAD_state
#! SET biasfactor 10.000000
#! SET epsilon 0.000005
#! SET kernel_cutoff 4.950000
#! SET compression_threshold 1.000000
#! SET zed 0.250000
#! SET sum_weights 12.500000
#! SET sum_weights2 30.000000
#! SET counter 41
#! SET adaptive_counter 20000
#! SET av_cv_phi_0 -1.400000
#! SET av_M2_phi_0 500.000000
#! SET av_cv_psi_0 1.100000
#! SET av_M2_psi_0 800.000000
#! SET av_cv_phi_1 -1.300000
#! SET av_M2_phi_1 520.000000
#! SET av_cv_psi_1 2.900000
#! SET av_M2_psi_1 790.000000
#! SET min_phi -pi
#! SET max_phi pi
#! SET min_psi -pi
#! SET max_psi pi
 40.000000 -1.450000 1.100000 0.150000 0.180000 2.500000
 40.000000 -1.200000 3.050000 0.120000 0.200000 1.250000
 40.000000 1.100000 -0.600000 0.140000 0.170000 0.300000
"""


def test_reads_a_plumed_state_file(tmp_path):
    (tmp_path / "State.data").write_text(PLUMED_STATE)
    opes = cl.OPES.from_plumed_state(tmp_path / "State.data", temperature=300.0, pace=500)
    assert opes.names == ["phi", "psi"] and opes.adaptive and opes.n_kernels == 3
    assert opes.bias_factor == 10.0 and opes.zed == 0.25 and opes.neff == pytest.approx(13.5**2 / 31)
    np.testing.assert_allclose(opes._av_cv, [[-1.4, 1.1], [-1.3, 2.9]])
    pts = np.array([[-1.4, 1.2], [-1.25, -3.1], [1.0, -0.5], [3.0, 3.0]])
    k = opes.kernels
    direct = (1 - 1 / 10) * KT300 * np.log(_plumed_prob(pts, k, 12.5, 4.95) / 0.25 + 0.000005)
    np.testing.assert_allclose(opes.evaluate(pts), direct, rtol=1e-12)


def _plumed_prob(pts, k, sum_w, cutoff):
    d = pts[:, None, :] - k["center"][None]
    d -= 2 * np.pi * np.round(d / (2 * np.pi))
    r2 = ((d / k["sigma"]) ** 2).sum(-1)
    return (np.where(r2 < cutoff**2, k["height"] * (np.exp(-r2 / 2) - np.exp(-cutoff**2 / 2)), 0)).sum(1) / sum_w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reweighted_free_energy_difference_matches_exact(seed):
    """1-D double well, 10 kT barrier, right well 4 kJ/mol higher: 32 walkers share one OPES for 4000 steps.

    Tolerance: over 16 seeds (0-15) of this set-up the error of the reweighted F(right) - F(left) had a
    mean of +0.06 +- 0.04 kT and a spread (std) of 0.14 kT, the largest 0.30 kT: larger than the block
    error bars, since the walkers share one bias. 0.5 kT is 3.5 such standard deviations. With fixed
    seeds the numbers are deterministic.
    """
    dw = cl.systems.DoubleWell(1, barrier=25.0, tilt=4.0)
    opes = dw_opes(pace=25, adaptive_sigma_stride=250)
    traj = cl.Langevin(dw, timestep=0.01, friction=5.0, n_walkers=32, seed=seed, bias=opes).run(4000, stride=10)
    fes = cl.fes.reweight(traj, dw.slow_coordinates, bias=opes, bins=40, ranges=[(-1.8, 1.8)], skip=0.3)
    d = fes.delta_f(dw.basins["left"], dw.basins["right"])
    exact = dw.exact_delta_f("left", "right")
    assert fes.metadata["method"] == "reweight_bias"
    assert np.isfinite(d.error) and abs(d.value - exact) < 0.5 * dw.kT(), (d, exact)
    # The kernels' own P(s) is a rougher estimate (as in PLUMED, heights are not divided by each
    # walker's adaptive sigma): a quick look, right to within 1 kT here.
    kde = cl.fes.from_bias(opes).delta_f(dw.basins["left"], dw.basins["right"])
    assert abs(kde.value - exact) < dw.kT(), (kde, exact)
    # The kernels compress: their number follows the explored range, not the 32 * 150 depositions.
    assert opes.n_kernels < 60
    # No c(t): the log-weights are beta times the bias each frame felt.
    np.testing.assert_allclose(cl.fes.log_weights(traj, opes), traj.bias_energy / dw.kT(), rtol=1e-14)


@pytest.mark.openmm
def test_opes_on_alanine_phi_psi_in_openmm(tmp_path):
    pytest.importorskip("openmm")
    import mdtraj as md

    pdb = cl.data.alanine_dipeptide_pdb()
    cv = cl.features.Dihedrals(md.load_topology(pdb), "phi psi")
    opes = cl.OPES(cv, barrier=40.0, pace=100)
    assert opes.domain.periodic.all()  # angles of a Dihedrals featurizer are periodic by default
    eng = cl.engine.OpenMM.from_pdb(pdb, bias=opes, seed=1, minimize=True)
    assert eng._groups[0].lean is not None
    eng.run(2000, stride=100, colvar=tmp_path / "COLVAR", hills=tmp_path / "KERNELS")
    col = cl.io.read_colvar(tmp_path / "COLVAR")
    assert list(col) == ["time", "phi_2", "psi_2", "opes.bias", "opes.rct", "opes.zed", "opes.neff", "opes.nker"]
    # Adaptive sigma from samples every pace steps: first kernel at 10 * pace, then one per pace.
    assert len(cl.io.read_colvar(tmp_path / "KERNELS")["time"]) == 11
    # The engine's lean force (numpy CV + value_and_gradient) equals autograd through the torch modules.
    x = eng.positions
    lean = compile_cv(cv)
    v, dvds = opes.value_and_gradient(lean.value(x)[None])
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    e = opes.energy(xt)
    (g,) = torch.autograd.grad(e.sum(), xt)
    assert float(v[0]) == pytest.approx(float(e.detach()[0]), rel=1e-12)
    np.testing.assert_allclose(lean.vjp(dvds[0]), g[0].numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(barrier=0.0), "barrier"),
    (dict(barrier=-5.0), "barrier"),
    (dict(barrier=None), "barrier="),
    (dict(bias_factor=1.0), "bias_factor must be > 1"),
    (dict(bias_factor=0.5), "bias_factor must be > 1"),
    (dict(sigma=[0.1, 0.2, 0.3]), "one per CV"),
    (dict(sigma=[[0.1, 0.2]]), "one per CV"),
    (dict(sigma=-0.1), "positive"),
    (dict(sigma="wide"), "'adaptive'"),
    (dict(bias_factor=np.inf), "inf"),
    (dict(compression_threshold=6.0), "below kernel_cutoff"),
    (dict(pace=0), "pace"),
    (dict(restart=True), "restart=True needs"),
    (dict(periodic=[True]), "one per CV"),
    (dict(adaptive_sigma_stride=5), ">= pace"),
    (dict(sigma=0.1, adaptive_sigma_stride=100), "only to sigma='adaptive'"),
])
def test_bad_input(kwargs, match):
    args = dict(barrier=20.0, pace=10, temperature=300.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        cl.OPES(cl.features.Positions(1, 2), **args)


def test_bad_input_found_late():
    with pytest.raises(ValueError, match="must exceed kT"):  # gamma = barrier / kT <= 1
        cl.OPES(xy_cv, barrier=2.0, pace=10, sigma=[0.1, 0.1], temperature=300.0)
    opes = cl.OPES(xy_cv, barrier=20.0, pace=10, sigma=0.1)  # no names: one CV assumed from a scalar sigma
    with pytest.raises(ValueError, match="temperature is unknown"):
        opes.evaluate([[0.0]])
    with pytest.raises(ValueError, match="returns 2 values per walker"):
        cl.Langevin(cl.systems.MullerBrown(), bias=opes).run(10)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cl.Langevin(cl.systems.MullerBrown(), bias=cl.OPES(xy_cv, barrier=20.0, pace=10, sigma=[0.1, 0.1],
                                                            state="/nonexistent/STATE", restart=True))


@pytest.mark.parametrize("make", [
    lambda t: cl.OPES(xy_cv, barrier=20.0, pace=10, sigma=[0.1, 0.1], temperature=t),
    lambda t: cl.WellTemperedMetad(xy_cv, sigma=0.1, height=1.0, bias_factor=10, pace=10, temperature=t,
                                   grid=cl.Grid([-2.0, -1.0], [1.5, 2.5], [100, 100])),
], ids=["OPES", "WellTemperedMetad"])
def test_both_biases_adopt_the_engine_temperature_alike(make):
    mb = cl.systems.MullerBrown()  # 300 K
    bias = make(None)
    cl.Langevin(mb, temperature=310.0, timestep=0.004, bias=bias)
    assert (bias.temperature, bias.timestep) == (310.0, 0.004)  # the engine's, exactly
    cl.Langevin(mb, temperature=300.0, timestep=0.004, bias=make(300.0))  # equal temperatures: accepted
    with pytest.raises(ValueError, match=r"temperature \(300.0 K\) differs from the engine's \(310.0 K\).*without "
                                         r"temperature="):
        cl.Langevin(mb, temperature=310.0, timestep=0.004, bias=make(300.0))
