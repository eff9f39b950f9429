"""PLUMED's files exactly as PLUMED writes and reads them: restarted blocks, multivariate and stretched hills,
OPES (and OPES_METAD_EXPLORE) KERNELS and STATE files, garbage that gives one clear error.

The reference files in tests/data/plumed were written by PLUMED 2.11 itself (``generate.py`` there says
how); the tests that run ``plumed sum_hills`` live skip when ../shared/plumed is absent.
"""

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cvlearn as cl
from cvlearn.io import PlumedFileError, parse_number, plumed_table_text, read_plumed, read_plumed_table

DATA = Path(__file__).parent / "data" / "plumed"
PLUMED_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "plumed"


def _plumed_env():
    """Environment that runs ../shared/plumed/bin/plumed (its env.sh, sourced), or None if it does not run."""
    if not (PLUMED_ROOT / "bin" / "plumed").exists():
        return None
    try:
        out = subprocess.run(["bash", "-c", f". {PLUMED_ROOT}/env.sh {Path(os.sys.executable)} >/dev/null && "
                              "plumed info --version >/dev/null && env -0"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


needs_plumed = pytest.mark.skipif(_plumed_env() is None, reason=f"no runnable PLUMED at {PLUMED_ROOT} (its "
                                  "bin/plumed is absent or 'plumed info --version' fails); the tests on the "
                                  "stored reference files cover the same numbers")


# -- restarted files: every FIELDS block by name ------------------------------------------------------------

def test_restarted_colvar_keeps_each_blocks_columns(tmp_path):
    path = tmp_path / "COLVAR"
    path.write_text("#! FIELDS time phi psi\n0 -1.0 2.0\n1 -1.1 2.1\n"
                    "#! FIELDS time psi phi metad.bias\n# a comment\n\n2 2.2 -1.2 0.5\n")
    col = cl.io.read_colvar(path)
    assert col["phi"].tolist() == [-1.0, -1.1, -1.2]
    assert col["psi"].tolist() == [2.0, 2.1, 2.2]
    assert np.isnan(col["metad.bias"][:2]).all() and col["metad.bias"][2] == 0.5   # added column: NaN before
    fields, _, rows, _ = read_plumed_table(path)
    assert fields == ["time", "psi", "phi", "metad.bias"] and rows[0][:3] == [0.0, 2.0, -1.0]
    with pytest.raises(PlumedFileError, match=r"block at line 1 .*time phi psi.* has no column 'metad.bias'"):
        cl.io.read_colvar(path, columns=["phi", "metad.bias"])


def test_plumed_restart_colvar_and_hills_agree_block_by_block():
    """PLUMED's own restart (CVs swapped in the second run): each hill sits at the CVs COLVAR printed then."""
    colvar, hills = read_plumed(DATA / "COLVAR_restart"), read_plumed(DATA / "HILLS_restart")
    assert [b.fields[1:3] for b in colvar.blocks] == [["phi", "psi"], ["psi", "phi"]]
    for cb, hb in zip(colvar.blocks, hills.blocks):
        c = {f: cb.data[:, i] for i, f in enumerate(cb.fields)}
        h = {f: hb.data[:, i] for i, f in enumerate(hb.fields)}
        at = np.searchsorted(np.round(c["time"], 6), np.round(h["time"], 6))
        for name in ("phi", "psi"):
            np.testing.assert_allclose(c[name][at], h[name], atol=1e-6)  # COLVAR prints 8 significant digits
    whole = cl.io.read_colvar(DATA / "COLVAR_restart")
    rows = read_plumed(DATA / "COLVAR_restart").blocks[1]
    np.testing.assert_array_equal(whole["phi"][-len(rows.data):], rows.data[:, rows.fields.index("phi")])


# -- hills: sum_hills' own numbers ---------------------------------------------------------------------------

def _sum_hills_grid(path):
    """The Grid of a sum_hills output, its points (as printed) and file.free."""
    t = read_plumed(path)
    c, names = t.constants, t.fields[:t.fields.index("file.free")]
    periodic = [c[f"periodic_{n}"] == "true" for n in names]
    bins = [int(c[f"nbins_{n}"]) - (0 if p else 1) for n, p in zip(names, periodic)]
    grid = cl.Grid([parse_number(c[f"min_{n}"]) for n in names], [parse_number(c[f"max_{n}"]) for n in names],
                   bins, periodic=periodic)
    return grid, t.columns(names), t.column("file.free")


def _max_difference(hills, fes):
    grid, points, free = _sum_hills_grid(fes)
    bias = cl.bias.read_hills(hills, grid=grid, temperature=300.0)
    ours = bias.free_energy().F + (-bias._height_scale() * bias.field.values()).min()  # sum_hills: not shifted
    node = tuple(np.rint((points[:, i] - grid.lo[i]) / grid.spacing[i]).astype(int) % grid.shape[i]
                 for i in range(grid.ndim))
    return np.abs(ours[node] - free).max()


@pytest.mark.parametrize("name", ["restart", "geom2d", "diff1d", "diff3d"])
def test_read_hills_free_energy_is_sum_hills(name):
    """Stretched-gaussian hills, restarted (2 blocks, CVs swapped), multivariate (GEOM 2-D with a periodic and an
    open CV, DIFF 1-D and 3-D): the nodes equal PLUMED's printed values (10 decimals: rounding 5e-11)."""
    assert _max_difference(DATA / f"HILLS_{name}", DATA / f"fes_{name}.dat") < 1e-8


def test_plain_gaussians_would_not_match(tmp_path):
    """The reference can tell kernels apart: read as plain Gaussians, the same hills are off by > 1e-3 kJ/mol."""
    text = (DATA / "HILLS_restart").read_text().replace("stretched-gaussian", "gaussian")
    (tmp_path / "HILLS").write_text(text)
    assert _max_difference(tmp_path / "HILLS", DATA / "fes_restart.dat") > 1e-3


def _random_hills(rng, names, n, periodic, multivariate, blocks=1):
    """HILLS text as PLUMED writes it, ``blocks`` FIELDS blocks (diagonal hills: the CVs in a new order each)."""
    d, out = len(names), []
    for b in range(blocks):
        # PLUMED reads multivariate widths in its own CV order only: reorder the CVs of diagonal hills only.
        order = list(rng.permutation(d)) if b and not multivariate else list(range(d))
        cvs = [names[i] for i in order]
        if multivariate:
            packed = [(j + i, j) for i in range(d) for j in range(d - i)]
            sig = [f"sigma_{cvs[r]}_{cvs[c]}" for r, c in packed]
        else:
            sig = [f"sigma_{c}" for c in cvs]
        consts = {"multivariate": str(multivariate).lower(), "kerneltype": "stretched-gaussian"}
        for i in order:
            if periodic[i]:
                consts |= {f"min_{names[i]}": "-pi", f"max_{names[i]}": "pi"}
        rows = []
        for _ in range(n):
            center = rng.uniform(-2.5, 2.5, d)
            if multivariate:
                low = np.tril(rng.uniform(-0.15, 0.15, (d, d)))
                low[np.diag_indices(d)] = rng.uniform(0.08, 0.4, d)
                widths = [low[r, c] for r, c in packed]
            else:
                widths = list(rng.uniform(0.1, 0.4, d))
            rows.append([0.1, *center, *widths, rng.uniform(0.5, 1.5), 10.0])
        out.append(plumed_table_text(["time", *cvs, *sig, "height", "biasf"], consts, rows))
    return "".join(out)


@needs_plumed
@pytest.mark.parametrize("d, multivariate", [(1, False), (2, True), (3, True), (3, False)])
def test_against_live_sum_hills(tmp_path, d, multivariate):
    """Random hills (restarted: 2 blocks, CVs reordered), summed by the real `plumed sum_hills`."""
    rng = np.random.default_rng(d + 10 * multivariate)
    names = ["a", "b", "c"][:d]
    periodic = [True, False, True][:d]
    (tmp_path / "HILLS").write_text(_random_hills(rng, names, 15, periodic, multivariate, blocks=2))
    lo = ["-pi" if p else "-4.0" for p in periodic]
    hi = ["pi" if p else "4.0" for p in periodic]
    bins = [str(b) for b in [60, 40, 20][:d]]
    subprocess.run(["plumed", "sum_hills", "--hills", "HILLS", "--outfile", "fes.dat", "--min", ",".join(lo),
                    "--max", ",".join(hi), "--bin", ",".join(bins), "--fmt", "%.10f"], cwd=tmp_path,
                   env=_plumed_env(), check=True, capture_output=True, timeout=120)
    assert _max_difference(tmp_path / "HILLS", tmp_path / "fes.dat") < 1e-4


def test_multivariate_block_in_another_cv_order(tmp_path):
    """The second block of a restarted GEOM file with the CVs swapped (its Cholesky factor packed in that order)
    gives the same bias as the hills written in the first order."""
    text = (DATA / "HILLS_geom2d").read_text().splitlines()
    head, rows = [t for t in text if t.startswith("#")], [t.split() for t in text if not t.startswith("#")]
    swapped = ["#! FIELDS time d phi sigma_d_d sigma_phi_phi sigma_phi_d height biasf", *head[1:]]
    for r in rows[20:]:
        cov = np.array([[float(r[3]) ** 2, float(r[3]) * float(r[5])],
                        [float(r[3]) * float(r[5]), float(r[5]) ** 2 + float(r[4]) ** 2]])  # (phi, d) order
        low = np.linalg.cholesky(cov[::-1, ::-1])  # (d, phi) order
        widths = [repr(float(w)) for w in (low[0, 0], low[1, 1], low[1, 0])]
        swapped.append(" ".join([r[0], r[2], r[1], *widths, r[6], r[7]]))
    (tmp_path / "HILLS").write_text("\n".join(text[:len(head) + 20] + swapped) + "\n")
    grid = cl.Grid([-np.pi, 0.0], [np.pi, 2.6], [48, 52], periodic=[True, False])
    both = [cl.bias.read_hills(p, grid=grid).field.values() for p in (DATA / "HILLS_geom2d", tmp_path / "HILLS")]
    np.testing.assert_allclose(both[1], both[0], atol=1e-9)


def test_hills_block_without_a_cv_is_named(tmp_path):
    text = (DATA / "HILLS_restart").read_text()
    second = text.index("#! FIELDS", 10)
    (tmp_path / "HILLS").write_text(text[:second] + text[second:].replace(" phi ", " chi ", 1))
    with pytest.raises(PlumedFileError, match=r"lacks the columns \['phi'\] in the block at line 47 .*time psi chi"):
        cl.bias.read_hills(tmp_path / "HILLS")


# -- OPES: KERNELS and STATE of OPES_METAD and OPES_METAD_EXPLORE ---------------------------------------------

@pytest.mark.parametrize("tag", ["opes", "explore"])
@pytest.mark.parametrize("source", ["state", "kernels"])
def test_opes_files_rebuild_plumeds_bias(tag, source):
    """PLUMED restarted from each file without depositing and printed opes.bias: the same bias here (COLVAR
    prints 8 significant digits: the values, ~10 kJ/mol, are rounded at 1e-6). The KERNELS file holds two
    blocks (CVs swapped by a restart) and the STATE file one block per stored state."""
    colvar = cl.io.read_colvar(DATA / f"COLVAR_{tag}_from_{source}")
    read = cl.OPES.from_plumed_state if source == "state" else cl.OPES.from_plumed_kernels
    bias = read(DATA / f"{'STATE' if source == 'state' else 'KERNELS'}_{tag}", temperature=300.0)
    points = np.column_stack([colvar[n] for n in bias.names])
    np.testing.assert_allclose(bias.evaluate(points), colvar["opes.bias"], atol=1e-4, rtol=0)
    assert (type(bias).__name__ == "_OPESExplore") == (tag == "explore")


def test_explore_bias_is_not_continued_and_kinds_do_not_mix():
    explore = cl.OPES.from_plumed_state(DATA / "STATE_explore", temperature=300.0, pace=10)
    with pytest.raises(ValueError, match="OPES_METAD_EXPLORE bias: cvlearn evaluates it"):
        explore.bind(300.0, 0.002)
    opes = cl.OPES.from_plumed_state(DATA / "STATE_opes", temperature=300.0)
    with pytest.raises(PlumedFileError, match="written by OPES_METAD_EXPLORE, this bias is OPES_METAD"):
        opes.load_kernels(DATA / "KERNELS_explore")


# -- files written atomically respect the umask --------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        cl.io.write_text_atomic(tmp_path / "report.json", "{}")
        cl.io.save_npz_atomic(tmp_path / "state.npz", x=np.zeros(2))
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    for name in ("report.json", "state.npz", "plain.txt"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name


def test_atomic_rewrite_keeps_the_files_mode(tmp_path):
    path = tmp_path / "cv.json"
    cl.io.write_text_atomic(path, "1")
    os.chmod(path, 0o664)
    cl.io.write_text_atomic(path, "2")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o664 and path.read_text() == "2"


# -- property-based: random tables, blocks, garbage -----------------------------------------------------------

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9_.]{0,6}", fullmatch=True), min_size=1, max_size=5, unique=True)
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(names=NAMES, data=st.data())
def test_random_table_round_trip(tmp_path, names, data):
    rows = data.draw(st.lists(st.lists(FLOATS, min_size=len(names), max_size=len(names)), max_size=20))
    path = tmp_path / "T"
    path.write_text(plumed_table_text(names, {"min_x": "-pi"}, rows))
    fields, consts, back, end = read_plumed_table(path)
    assert fields == names and consts == {"min_x": "-pi"} and end == path.stat().st_size
    assert np.array_equal(np.array(back).reshape(len(rows), len(names)),
                          np.array(rows, dtype=float).reshape(len(rows), len(names)))


@SETTINGS
@given(names=NAMES, data=st.data())
def test_blocks_with_shuffled_columns_comments_and_a_cut_line(tmp_path, names, data):
    n = data.draw(st.integers(1, 30))
    table = np.array(data.draw(st.lists(st.lists(FLOATS, min_size=len(names), max_size=len(names)),
                                        min_size=n, max_size=n)))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    text = []
    for a, b in zip([0, *cuts], [*cuts, n]):
        order = data.draw(st.permutations(range(len(names))))
        text.append("#! FIELDS " + " ".join(names[i] for i in order) + "\n")
        for row in table[a:b]:
            if data.draw(st.booleans()):
                text.append(data.draw(st.sampled_from(["# a comment\n", "\n", "   \n", "#! SET x 1\n"])))
            text.append(" ".join(repr(float(row[i])) for i in order) + "\n")
    if data.draw(st.booleans()):
        text.append("1.5 2")  # a last line still being written: not read
    path = tmp_path / "T"
    path.write_text("".join(text))
    got = read_plumed(path).columns(names)
    assert np.array_equal(got, table)


@SETTINGS
@given(blob=st.binary(max_size=300), after_header=st.booleans())
def test_garbage_gives_one_clear_error(tmp_path, blob, after_header):
    """Random bytes (alone, or after a valid header and row): read, or one PlumedFileError naming file and line."""
    path = tmp_path / "GARBAGE"
    path.write_bytes((b"#! FIELDS time x\n0 1\n" if after_header else b"") + blob)
    try:
        table = read_plumed(path)
        if table.blocks:
            cl.io.read_colvar(path)
    except PlumedFileError as err:
        assert str(path) in str(err) and err.path == str(path)
        assert err.line is None or (isinstance(err.line, int) and err.line >= 1 and f"line {err.line}" in str(err))


WORDS = st.from_regex(r"[A-Za-z_?]{1,6}", fullmatch=True).filter(lambda w: w.lower() not in ("nan", "inf", "infinity"))


@SETTINGS
@given(word=WORDS, at=st.integers(0, 3), kind=st.sampled_from(["word", "short", "long"]))
def test_a_bad_row_is_named_by_its_line(tmp_path, word, at, kind):
    rows = ["0 1", "1 2", "2 3", "3 4"]
    rows[at] = {"word": f"{at} {word}", "short": f"{at}", "long": f"{at} 1 2"}[kind]
    path = tmp_path / "COLVAR"
    path.write_text("#! FIELDS time x\n" + "\n".join(rows) + "\n")
    with pytest.raises(PlumedFileError) as info:
        read_plumed(path)
    assert info.value.line == at + 2 and f"line {at + 2}" in str(info.value) and str(path) in str(info.value)


def test_not_text_names_file_and_line(tmp_path):
    path = tmp_path / "COLVAR"
    path.write_bytes(b"#! FIELDS time x\n0 1\n1 \xff\xfe\n")
    with pytest.raises(PlumedFileError, match=r"COLVAR, line 3: bytes that are not UTF-8"):
        cl.io.read_colvar(path)

