import ast
import importlib
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.contour import QuadContourSet  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, Rectangle  # noqa: E402

import cvlearn as cl  # noqa: E402
from cvlearn import plot  # noqa: E402
from cvlearn.fes import Basin, FreeEnergySurface  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def mb():
    return cl.systems.MullerBrown()


@pytest.fixture(scope="module")
def mb_fes(mb):
    return mb.exact_fes(bins=60)


@pytest.fixture(scope="module")
def pca_cv():
    X = np.random.default_rng(0).normal(size=(500, 2)) * [1.0, 0.3]
    return cl.PCA(n_components=1).fit(X).to_module(featurizer=cl.features.Positions(1, 2))


def surface_1d(error=True):
    x = np.linspace(-1.5, 1.5, 61)
    F = 10.0 * (x**2 - 1) ** 2
    return FreeEnergySurface([x], F, 300.0, error=np.full_like(x, 1.5) if error else None,
                             names=["x"])


def contour_sets(ax, filled):
    return [c for c in ax.collections if isinstance(c, QuadContourSet) and c.filled == filled]


def colorbar_label(fig):
    return [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]


def _top_level_imports(path):
    """Module names imported outside functions in one source file (relative ones as '.name')."""
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            node.body = []  # imports inside functions are lazy: fine
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names += [base] + [f"{base}.{a.name}".replace("..", ".") for a in node.names]
    return names


def test_import_cvlearn_does_not_import_matplotlib():
    # Static check (a subprocess "import cvlearn" would cost seconds of torch import).
    root = Path(cl.__file__).parent
    offenders = [
        (str(p.relative_to(root)), name)
        for p in root.rglob("*.py") if "plot" not in p.relative_to(root).parts
        for name in _top_level_imports(p)
        if name.split(".")[0] == "matplotlib" or name.strip(".").split(".")[-1] == "plot"
        or "cvlearn.plot" in name
    ]
    assert not offenders


def test_missing_matplotlib_is_explained(monkeypatch):
    for name in [m for m in sys.modules if m == "cvlearn.plot" or m.startswith("cvlearn.plot.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"cvlearn.plot needs matplotlib: pip install matplotlib"):
        importlib.import_module("cvlearn.plot")


def test_fes_1d_with_error_band_and_exact():
    dw = cl.systems.DoubleWell(1, barrier=10.0)
    fig = plot.fes(surface_1d(), exact=dw.exact_fes(bins=101), cv_units="nm", basins=dw.basins)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_ylabel() == "F (kJ/mol)" and ax.get_xlabel() == "x (nm)"
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["estimate", "± error", "exact"]
    exact_line = [ln for ln in ax.lines if ln.get_label() == "exact"][0]
    assert exact_line.get_linestyle() == "--" and np.nanmin(exact_line.get_ydata()) == 0.0
    assert {t.get_text() for t in ax.texts} == {"left", "right"}


def test_fes_1d_in_kt_without_error_has_no_band():
    s = surface_1d(error=False)
    fig = plot.fes(s, units="kT", max_value=8.0)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "F (kT)"
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), s.F / s.kT)
    assert ax.get_ylim()[1] == pytest.approx(1.05 * 8.0)


@pytest.mark.parametrize("units", ["kJ/mol", "kT"])
def test_fes_2d_levels_span_clipped_range(mb_fes, units):
    fig = plot.fes(mb_fes, units=units)
    assert len(fig.axes) == 2  # the plot and its colorbar
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert colorbar_label(fig) == [f"F ({units})"]
    (cs,) = contour_sets(ax, filled=True)
    top = 10.0 if units == "kT" else 10.0 * mb_fes.kT
    np.testing.assert_allclose(cs.levels, np.linspace(0.0, top, 11))


def test_fes_2d_custom_levels_max_value_and_basins(mb, mb_fes):
    fig = plot.fes(mb_fes, units="kT", levels=4, max_value=6.0, basins=mb.basins,
                   cv_units="nm")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x (nm)"
    np.testing.assert_allclose(contour_sets(ax, filled=True)[0].levels, [0, 1.5, 3, 4.5, 6])
    assert sum(isinstance(p, Circle) for p in ax.patches) == 3
    assert {t.get_text() for t in ax.texts} == {"A", "B", "C"}
    fig = plot.fes(mb_fes, levels=[0, 5, 10, 20], basins=[Basin(lo=[-1, 0], hi=[0, 1], name="box")])
    np.testing.assert_allclose(contour_sets(fig.axes[0], filled=True)[0].levels, [0, 5, 10, 20])
    assert sum(isinstance(p, Rectangle) for p in fig.axes[0].patches) == 1


def test_fes_2d_unsampled_bins_stay_blank():
    x, y = np.linspace(0, 1, 21), np.linspace(0, 1, 21)
    F = np.add.outer(x, y)
    F[:10] = np.inf  # x < 0.5 never sampled
    fig = plot.fes(FreeEnergySurface([x, y], F, 300.0), units="kT", max_value=1.0)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    ax = fig.axes[0]

    def pixel(px, py):
        u, v = ax.transData.transform((px, py))
        return rgba[rgba.shape[0] - int(round(v)), int(round(u)), :3]

    assert (pixel(0.2, 0.5) == 255).all()  # white background: nothing drawn
    assert not (pixel(0.8, 0.5) == 255).all()


def test_fes_rejects_3d_surface_and_bad_units(mb_fes):
    a = np.linspace(0, 1, 5)
    s3 = FreeEnergySurface([a, a, a], np.zeros((5, 5, 5)), 300.0)
    with pytest.raises(ValueError, match="3-D.*Project it"):
        plot.fes(s3)
    with pytest.raises(ValueError, match="units must be 'kJ/mol' or 'kT'"):
        plot.fes(mb_fes, units="kcal/mol")
    with pytest.raises(ValueError, match="estimate is 2-D but exact is 1-D"):
        plot.fes_comparison(mb_fes, surface_1d())


def test_fes_comparison_2d_has_three_panels(mb, mb_fes):
    estimate = mb.exact_fes(bins=41)  # another grid: exact is interpolated for the difference
    fig = plot.fes_comparison(estimate, mb_fes, units="kT")
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert [a.get_title() for a in panels] == ["estimate", "exact", "estimate − exact"]
    assert colorbar_label(fig) == ["F (kT)", "ΔF (kT)"]
    diff = contour_sets(panels[2], filled=True)[0]
    assert diff.levels[0] == pytest.approx(-diff.levels[-1])
    assert diff.levels[-1] < 0.2  # same function on two grids: only interpolation error


def test_fes_comparison_1d_overlays():
    fig = plot.fes_comparison(surface_1d(), surface_1d(error=False))
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2


def test_cv_timeseries_walkers_and_hills():
    t = np.arange(100) * 2.0
    cv = np.random.default_rng(0).normal(size=(100, 3))
    fig = plot.cv_timeseries(t, cv, hill_time=t[::5], hill_height=np.linspace(1.2, 0.2, 20),
                             names="tic1")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    top, bottom = fig.axes
    assert len(top.lines) == 3 and top.get_ylabel() == "tic1"
    assert bottom.get_ylabel() == "hill height (kJ/mol)"
    assert bottom.get_xlabel() == "time (ps)"
    fig = plot.cv_timeseries(t, cv[:, 0])
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "time (ps)"


def test_cv_timeseries_bad_input():
    t = np.arange(10.0)
    with pytest.raises(ValueError, match="time has 10 frames but cv has 9"):
        plot.cv_timeseries(t, np.zeros(9))
    with pytest.raises(ValueError, match="both hill_time"):
        plot.cv_timeseries(t, np.zeros(10), hill_time=t)


def test_delta_f_convergence_band_exact_and_ns_axis():
    t = np.linspace(500.0, 5000.0, 10)
    kT = cl.units.kT(300.0)
    fig = plot.delta_f_convergence(t, np.linspace(8, 11, 10), error=np.full(10, 1.0), exact=11.6)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "simulated time (ns)" and ax.get_ylabel() == "ΔF (kJ/mol)"
    np.testing.assert_allclose(ax.get_lines()[-1].get_xdata(), t / 1000.0)
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1
    (band,) = [p for p in ax.patches if p.get_label() == "exact ± 0.5 kT"]
    y = band.get_patch_transform().transform(band.get_path().vertices)[:, 1]
    np.testing.assert_allclose([y.min(), y.max()], [11.6 - 0.5 * kT, 11.6 + 0.5 * kT])
    fig = plot.delta_f_convergence(t[:3] / 10, [1.0, 2.0, 3.0], units="kT")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "simulated time (ps)" and ax.get_ylabel() == "ΔF (kT)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.array([1.0, 2.0, 3.0]) / kT)


def test_loss_curves_log_scale_only_when_positive():
    fig = plot.loss({"train": [1.0, 0.5, 0.2], "valid": [1.2, 0.7, None]})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "loss")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "valid"]
    assert plot.loss({"train": [0.5, -0.2]}).axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="non-empty dict"):
        plot.loss([])


def test_plots_draw_into_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    assert plot.loss({"train": [1.0, 0.5]}, ax=a) is fig
    assert plot.fes(surface_1d(), ax=b) is fig
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="sequence of 2 matplotlib Axes"):
        plot.cv_timeseries(np.arange(3.0), np.zeros(3), hill_time=[0.0], hill_height=[1.0], ax=a)


def test_cv_on_landscape_muller_brown(mb, pca_cv, tmp_path):
    traj = cl.Trajectory(np.random.default_rng(1).normal(-0.5, 0.1, size=(500, 4, 1, 2)),
                         time=np.arange(500.0))
    fig = plot.cv_on_landscape(mb, pca_cv, bins=60, n_levels=7, trajectory=traj, max_points=300)
    ax = fig.axes[0]
    (lines,) = contour_sets(ax, filled=False)
    assert len(lines.levels) == 7
    (filled,) = contour_sets(ax, filled=True)
    assert filled.levels[0] == 0.0 and filled.levels[-1] == pytest.approx(12 * mb.kT())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (nm)", "y (nm)")
    assert colorbar_label(fig) == ["V − V_min (kJ/mol)"]
    np.testing.assert_allclose(ax.get_xlim(), mb.slow_bounds[0])
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert 0 < len(points.get_offsets()) <= 300
    path = fig.savefig(tmp_path / "landscape.png") or tmp_path / "landscape.png"
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_cv_on_landscape_float32_module_and_auto_bounds():
    torch.manual_seed(0)
    module = torch.nn.Sequential(cl.features.Positions(1, 2), torch.nn.Linear(2, 1))  # float32
    dw = cl.systems.DoubleWell(2)
    fig = plot.cv_on_landscape(dw, module, bins=40, n_levels=5, units="kT")
    ax = fig.axes[0]
    assert len(contour_sets(ax, filled=False)[0].levels) == 5
    lo, hi = ax.get_ylim()  # y has no slow_bounds: the range where V < 12 kT, padded
    assert lo == pytest.approx(-hi) and 0.7 < hi < 1.5
    assert colorbar_label(fig) == ["V − V_min (kT)"]


@pytest.mark.parametrize("system", [cl.systems.DoubleWell(1),
                                    cl.systems.HiddenDoubleWell(dim=4)],
                         ids=["1-D", "4-D"])
def test_cv_on_landscape_rejects_other_systems(system, pca_cv):
    with pytest.raises(ValueError, match="one particle in 2 dimensions"):
        plot.cv_on_landscape(system, pca_cv)
