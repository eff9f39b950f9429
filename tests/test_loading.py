"""Trajectory files (mdtraj formats) loaded whole and streamed in chunks into TICA and PCA.

Streaming must give the numbers of the in-memory fit on the same features: covariances and means
to round-off (~1e-15 relative: only the summation order and the shift of Moments differ),
eigenvalues and well-separated eigenvectors to 1e-10.
"""

import collections
import re
import tracemalloc

import numpy as np
import pytest

import cvlearn as cl
from cvlearn.data import alanine_dipeptide_pdb
from cvlearn.features import FeatureStream, Positions, load_trajectories, stream_features
from cvlearn.learners._moments import Moments

md = pytest.importorskip("mdtraj")

pytestmark = pytest.mark.filterwarnings("ignore:.*netCDF4:UserWarning")  # mdtraj falls back to scipy's reader

PDB = alanine_dipeptide_pdb()
LAG = 5


@pytest.fixture(scope="module")
def topology():
    return md.load_topology(PDB)


def ar_frames(n, seed, scale=0.05):
    """Alanine dipeptide coordinates (nm) plus three AR(1) signals (phi 0.995, 0.98, 0.9) mixed into all
    atoms and white noise: well-separated TICA eigenvalues, so eigenvectors are well conditioned."""
    rng = np.random.default_rng(seed)
    ref = md.load(PDB).xyz[0]
    latent = np.zeros((n, 3))
    for t in range(1, n):
        latent[t] = [0.995, 0.98, 0.9] * latent[t - 1] + rng.normal(size=3)
    mix = np.random.default_rng(123).normal(size=(3, 66))  # one mixing for all files
    xyz = ref + scale * (latent @ mix / 3 + rng.normal(size=(n, 66))).reshape(n, 22, 3)
    return xyz.astype(np.float32)


def write(path, xyz, topology):
    md.Trajectory(xyz, topology).save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def ar_files(tmp_path_factory, topology):
    """Four files of different lengths and formats; the pdb (4 frames) is shorter than lag + 1."""
    d = tmp_path_factory.mktemp("ar")
    spec = [("a.xtc", 1300, 0), ("b.dcd", 800, 1), ("c.pdb", 4, 2), ("d.trr", 555, 3)]
    return [write(d / name, ar_frames(n, seed), topology) for name, n, seed in spec]


@pytest.fixture(scope="module")
def md_files(tmp_path_factory, topology, alanine_md_frames):
    """Alanine dipeptide in vacuum at 500 K (OpenMM, amber99sb-ildn, HBonds), 3000 frames every 20 fs,
    split into an xtc, a dcd and a pdb file."""
    xyz = alanine_md_frames(3000, 10, seed=1)
    d = tmp_path_factory.mktemp("md")
    return [write(d / "a.xtc", xyz[:1700], topology), write(d / "b.dcd", xyz[1700:2950], topology),
            write(d / "c.pdb", xyz[2950:], topology)]


def in_memory(files, featurizer, stride=1, atoms=None):
    return [featurizer.transform(t.xyz) for t in load_trajectories(files, top=PDB, stride=stride, atoms=atoms)]


def assert_same_tica(a, b, n_vectors):
    scale = np.abs(a.cov_00_).max()
    np.testing.assert_allclose(b.mean_, a.mean_, rtol=0, atol=1e-12 * np.abs(a.mean_).max())
    np.testing.assert_allclose(b.cov_00_, a.cov_00_, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(b.cov_0t_, a.cov_0t_, rtol=0, atol=1e-12 * scale)
    assert len(b.eigenvalues_) == len(a.eigenvalues_)
    np.testing.assert_allclose(b.eigenvalues_[:n_vectors], a.eigenvalues_[:n_vectors], rtol=0, atol=1e-10)
    if n_vectors:
        u, v = a.singular_vectors_[:, :n_vectors], b.singular_vectors_[:, :n_vectors]
        np.testing.assert_allclose(v, u, rtol=0, atol=1e-10 * np.abs(u).max())


# --- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, tol", [("xtc", 6e-4), ("dcd", 1e-6), ("pdb", 6e-5), ("trr", 1e-6), ("nc", 1e-6),
                                      ("h5", 1e-6)])
def test_load_formats(tmp_path, topology, fmt, tol):
    """Every format reads back the frames written (to its precision: xtc 1e-3 nm, pdb 1e-4 nm)."""
    if fmt == "h5":
        pytest.importorskip("tables")
    xyz = ar_frames(40, seed=0)
    path = write(tmp_path / f"x.{fmt}", xyz, topology)
    (traj,) = load_trajectories(path, top=PDB)
    assert traj.n_atoms == 22
    np.testing.assert_allclose(traj.xyz, xyz, atol=tol)
    (strided,) = load_trajectories([path], top=topology, stride=3, atoms="not element H")
    heavy = topology.select("not element H")
    np.testing.assert_allclose(strided.xyz, xyz[::3][:, heavy], atol=tol)
    (picked,) = load_trajectories(path, top=PDB, atoms=[4, 1])
    np.testing.assert_allclose(picked.xyz, xyz[:, [1, 4]], atol=tol)  # mdtraj keeps atoms in file order


def test_stream_chunks_concatenate_to_the_file(ar_files):
    # stride with a selection: the case where mdtraj's own trr reader corrupts memory (read whole, sliced here)
    feat = Positions(10, 3)
    ref = in_memory(ar_files, feat, stride=2, atoms="not element H")
    stream = stream_features(ar_files, feat, top=PDB, chunk=37, stride=2, atoms="not element H")
    assert stream.files == ar_files and stream.n_features == 30
    for _ in range(2):  # re-iterable: each pass re-reads the files
        got = [list(chunks) for chunks in stream]
        assert [max(len(c) for c in chunks) for chunks in got] == [min(37, len(x)) for x in ref]
        for chunks, x in zip(got, ref):
            assert all(c.dtype == np.float64 for c in chunks)
            np.testing.assert_array_equal(np.concatenate(chunks), x)


@pytest.mark.parametrize("chunk", [1, 3, 5, 6, 37, 1000])
def test_each_lagged_pair_in_exactly_one_block(tmp_path, topology, chunk):
    """Blocks with overlap = lag hold every pair (t, t + lag) of a file once, and none across files.

    Frame t of file f is written with atom 0 at x = t and atom 1 at x = f (exact in dcd's float32),
    so the pairs inside each block can be read off its rows.
    """
    lengths = [50, 7, 3, 23]
    files = []
    for f, n in enumerate(lengths):
        xyz = np.zeros((n, 22, 3), np.float32)
        xyz[:, 0, 0], xyz[:, 1, 0] = np.arange(n), f
        files.append(write(tmp_path / f"{f}.dcd", xyz, topology))
    stream = stream_features(files, Positions(22, 3), top=PDB, chunk=chunk)
    seen = collections.Counter()
    for blocks in stream.blocks(overlap=LAG):
        for block in blocks:
            assert len(block) <= chunk + LAG
            t, f = block[:, 0].astype(int), block[:, 3].astype(int)
            assert (np.diff(t) == 1).all() and (f == f[0]).all()  # contiguous frames of one file
            seen.update((f[i], t[i], t[i + LAG]) for i in range(len(block) - LAG))
    expected = collections.Counter((f, t, t + LAG) for f, n in enumerate(lengths) for t in range(n - LAG))
    assert seen == expected


# --- streamed learners equal in-memory ones ------------------------------------------------------


@pytest.mark.parametrize("chunk", [37, 3, 100_000])  # several chunks, chunks shorter than the lag, one chunk
def test_streamed_tica_equals_in_memory(ar_files, chunk):
    feat = Positions(22, 3)
    ref = cl.TICA(lagtime=LAG, scaling=None).fit(in_memory(ar_files, feat))
    stream = stream_features(ar_files, feat, top=PDB, chunk=chunk)
    got = cl.TICA(lagtime=LAG, scaling=None).fit(stream)
    assert_same_tica(ref, got, n_vectors=3)
    assert np.all(-np.diff(np.abs(ref.eigenvalues_[:4])) > 0.05)  # three well-separated slow processes
    # transform: one projection per file; score: the same VAMP-2 as on the arrays
    proj = got.transform(stream)
    assert [len(p) for p in proj] == [len(x) for x in in_memory(ar_files, feat)]
    for p, q in zip(proj, ref.transform(in_memory(ar_files, feat))):
        np.testing.assert_allclose(p[:, :3], q[:, :3], atol=1e-9 * np.abs(q[:, :3]).max())
    assert got.score(stream) == pytest.approx(ref.score(in_memory(ar_files, feat)), rel=1e-10)


@pytest.mark.parametrize("chunk", [37, 1])
def test_streamed_pca_equals_in_memory(ar_files, chunk):
    feat = Positions(22, 3)
    ref = cl.PCA(n_components=10).fit(in_memory(ar_files, feat))
    got = cl.PCA(n_components=10).fit(stream_features(ar_files, feat, top=PDB, chunk=chunk))
    scale = ref.explained_variance_[0]
    np.testing.assert_allclose(got.mean_, ref.mean_, rtol=0, atol=1e-12 * np.abs(ref.mean_).max())
    np.testing.assert_allclose(got.explained_variance_, ref.explained_variance_, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(got.components_[:3], ref.components_[:3], rtol=0, atol=1e-10)


def test_streamed_weights_equal_in_memory(ar_files):
    feat = Positions(22, 3)
    arrays = in_memory(ar_files, feat)
    rng = np.random.default_rng(3)
    w = [rng.random(len(x)) for x in arrays]
    logw = [rng.normal(scale=3.0, size=len(x)) for x in arrays]
    stream = stream_features(ar_files, feat, top=PDB, chunk=37)
    assert_same_tica(cl.TICA(lagtime=LAG).fit(arrays, weights=w), cl.TICA(lagtime=LAG).fit(stream, weights=w), 3)
    assert_same_tica(cl.TICA(lagtime=LAG).fit(arrays, logweights=logw),
                     cl.TICA(lagtime=LAG).fit(stream, logweights=logw), 3)
    ref, got = cl.PCA().fit(arrays, weights=w), cl.PCA().fit(stream, weights=w)
    np.testing.assert_allclose(got.explained_variance_, ref.explained_variance_, rtol=0,
                               atol=1e-12 * ref.explained_variance_[0])
    with pytest.raises(ValueError, match=r"give weights as a list of 4 1-D arrays"):
        cl.TICA(lagtime=LAG).fit(stream, weights=w[:3])
    short = [w[0], w[1], w[2], w[3][:-1]]
    with pytest.raises(ValueError, match=r"weights\[3\] has 554 entries but .*d\.trr' has more frames"):
        cl.TICA(lagtime=LAG).fit(stream, weights=short)
    long = [w[0], np.r_[w[1], 1.0], w[2], w[3]]
    with pytest.raises(ValueError, match=r"weights\[1\] has 801 entries for .*b\.dcd', which has 800 frames"):
        cl.PCA().fit(stream, weights=long)


@pytest.mark.openmm
@pytest.mark.parametrize("chunk, stride", [(37, 1), (4, 2)])
def test_streamed_tica_on_alanine_dipeptide(md_files, chunk, stride):
    """Real MD frames in three formats, heavy atoms only: covariances to round-off, slow eigenvalues to 1e-10.

    (Cartesian features of a tumbling molecule have nearly degenerate slow eigenvalues, so only the
    eigenvalues, not single eigenvectors, are compared here; test_streamed_tica_equals_in_memory
    compares eigenvectors on well-separated data.)
    """
    feat = Positions(10, 3)
    ref = cl.TICA(lagtime=LAG, n_components=5).fit(in_memory(md_files, feat, stride, atoms="not element H"))
    stream = stream_features(md_files, feat, top=PDB, chunk=chunk, stride=stride, atoms="not element H")
    got = cl.TICA(lagtime=LAG, n_components=5).fit(stream)
    assert_same_tica(ref, got, n_vectors=0)
    np.testing.assert_allclose(got.eigenvalues_, ref.eigenvalues_, rtol=0, atol=1e-10)
    assert ref.eigenvalues_[0] > 0.9  # the slow (rotational and backbone) motions are there


# --- memory ------------------------------------------------------------------------------------


class RecordingPositions(Positions):
    """Positions that remember the largest batch of frames they were given."""

    largest = 0

    def forward(self, positions):
        self.largest = max(self.largest, positions.shape[0])
        return super().forward(positions)


def test_stream_holds_one_chunk_plus_overlap(ar_files, monkeypatch):
    rows = []
    add = Moments.add
    monkeypatch.setattr(Moments, "add", lambda self, X, w: (rows.append(len(X)), add(self, X, w))[1])
    feat = RecordingPositions(22, 3)
    cl.TICA(lagtime=LAG).fit(stream_features(ar_files, feat, top=PDB, chunk=37))
    assert feat.largest == 37 and max(rows) == 37 + LAG
    rows.clear()
    feat.largest = 0
    cl.TICA(lagtime=50).fit(stream_features(ar_files, feat, top=PDB, chunk=8))  # overlap over several chunks
    assert feat.largest == 8 and max(rows) == 8 + 50


def test_streamed_fit_peak_memory_is_one_chunk(tmp_path, topology):
    """Peak numpy allocation (tracemalloc) of a streamed fit is a few chunks, far below the features' size."""
    n, chunk = 20_000, 500
    path = write(tmp_path / "long.dcd", ar_frames(n, seed=4), topology)
    feat = Positions(22, 3)
    stream = stream_features(path, feat, top=PDB, chunk=chunk)
    full_bytes = n * feat.n_features * 8  # 10.6 MB of float64 features

    def peak(fn):
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    streamed = peak(lambda: cl.TICA(lagtime=LAG).fit(stream))
    loaded = peak(lambda: cl.TICA(lagtime=LAG).fit(in_memory([path], feat)))
    chunk_bytes = chunk * feat.n_features * 8
    assert loaded > full_bytes
    # A few chunk-sized temporaries (positions in float32 and float64, features, Moments' shifted
    # copies): about 5 chunks measured, 1.4 MB, against 10.6 MB of features.
    assert streamed < 8 * chunk_bytes, f"streamed fit peaked at {streamed / 1e6:.2f} MB"


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def good(tmp_path, topology):
    return write(tmp_path / "good.xtc", ar_frames(30, seed=5), topology)


def both(files, **kw):
    """Call load_trajectories and stream_features with the same arguments (both must raise)."""
    top = kw.pop("top", PDB)
    yield lambda: load_trajectories(files, top=top, **kw)
    yield lambda: stream_features(files, Positions(22, 3), top=top, **kw)


def test_missing_file(good):
    for call in both([good, "nowhere/missing.xtc"]):
        with pytest.raises(FileNotFoundError, match=r"'nowhere/missing.xtc' does not exist"):
            call()
    with pytest.raises(FileNotFoundError, match=r"Topology file 'missing.pdb' does not exist"):
        load_trajectories(good, top="missing.pdb")


@pytest.mark.parametrize("ext", ["xtc", "dcd", "trr", "nc"])
def test_coordinate_only_format_needs_topology(tmp_path, topology, ext):
    path = write(tmp_path / f"x.{ext}", ar_frames(5, seed=0), topology)
    for call in both(path, top=None):
        with pytest.raises(ValueError, match=rf"x\.{ext}' is a \.{ext} file.*pass top=<pdb or prmtop>"):
            call()
    (traj,) = load_trajectories(write(tmp_path / "x.pdb", ar_frames(5, seed=0), topology))  # pdb: no top needed
    assert traj.n_frames == 5


def test_atom_count_mismatch(tmp_path, topology, good):
    small = write(tmp_path / "small.pdb", ar_frames(1, seed=0)[:, :10], topology.subset(range(10)))
    for call in both(good, top=small):
        with pytest.raises(ValueError, match=r"topology has 10 atoms but .*good\.xtc' has 22 atoms per frame"):
            call()
    with pytest.raises(ValueError, match=r"small\.pdb' gives 10 atoms per frame but .*good\.xtc' gives 22"):
        stream_features([small, good], Positions(22, 3), top=PDB)


@pytest.mark.parametrize("content", [b"", b"not a trajectory" * 50])
def test_unreadable_file_named(tmp_path, content):
    path = tmp_path / "broken.xtc"
    path.write_bytes(content)
    for call in both(str(path)):
        with pytest.raises(ValueError, match=r"Could not read the trajectory file .*broken\.xtc' \(\.xtc\)"):
            call()


def test_truncated_file_named_when_read(tmp_path, topology):
    path = write(tmp_path / "cut.xtc", ar_frames(400, seed=0), topology)
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2 + 7])
    with pytest.raises(ValueError, match=r"Could not read the trajectory file .*cut\.xtc'"):
        load_trajectories(path, top=PDB)
    stream = stream_features(path, Positions(22, 3), top=PDB, chunk=50)  # the header is fine
    with pytest.raises(ValueError, match=r"Could not read the trajectory file .*cut\.xtc'"):
        cl.TICA(lagtime=LAG).fit(stream)


def test_bad_selection(good):
    for call in both(good, atoms="resname XYZ"):
        with pytest.raises(ValueError, match=r"atoms='resname XYZ' matches no atoms of the topology \(22 atoms"):
            call()
    with pytest.raises(ValueError, match=r"not a valid mdtraj selection"):
        load_trajectories(good, top=PDB, atoms="name CA and")
    for atoms in ([], [0, 22], [0.5]):
        with pytest.raises(ValueError, match=r"atoms"):
            load_trajectories(good, top=PDB, atoms=atoms)


@pytest.mark.parametrize("stride", [0, -1, 1.5, True])
def test_bad_stride(good, stride):
    for call in both(good, stride=stride):
        with pytest.raises(ValueError, match=re.escape(f"stride must be an int >= 1 (keep every stride-th frame); "
                                                       f"got {stride!r}")):
            call()


def test_bad_chunk_and_featurizer(good):
    with pytest.raises(ValueError, match=r"chunk must be an int >= 1"):
        stream_features(good, Positions(22, 3), top=PDB, chunk=0)
    with pytest.raises(TypeError, match=r"featurizer must be a cvlearn Featurizer"):
        stream_features(good, "positions", top=PDB)
    with pytest.raises(ValueError, match=r"overlap must be an int >= 0"):
        stream_features(good, Positions(22, 3), top=PDB).blocks(overlap=-1)
    with pytest.raises(ValueError, match=r"Positions cannot featurize frames of 22 atoms .*Positions\(22, 3\)"):
        stream_features(good, Positions(10, 3), top=PDB)
    stream = stream_features(good, Positions(22, 3, particles=range(5)), top=PDB)
    tica = cl.TICA(lagtime=1).fit(stream)
    with pytest.raises(ValueError, match=r"stream has 66 features, but TICA is expecting 15"):
        tica.transform(stream_features(good, Positions(22, 3), top=PDB))
    with pytest.raises(ValueError, match=r"DeepTICA trains on data read chunk by chunk.*set batch_size"):
        cl.DeepTICA(lagtime=1).fit(stream)  # networks train from streams too (tests/test_out_of_core.py)


class Singular(Positions):
    """Positions divided by (x of atom 0 - 7 nm): infinite where atom 0 sits at x = 7 nm."""

    def forward(self, positions):
        p = super().forward(positions)
        return p / (p[..., :1] - 7)


def test_non_finite_features_named(tmp_path, topology):
    xyz = np.zeros((20, 22, 3), np.float32)
    xyz[:, 0, 0] = np.arange(20)
    path = write(tmp_path / "t.dcd", xyz, topology)
    stream = stream_features(path, Singular(22, 3), top=PDB, chunk=5)
    with pytest.raises(ValueError, match=r"NaN or infinite values for frame 7 .*t\.dcd'"):
        cl.PCA().fit(stream)


def test_short_files_raise_as_in_memory(tmp_path, topology, good):
    """A stream fails like the same features in memory: lag >= every file, or a file of one frame."""
    feat = Positions(22, 3)
    one = write(tmp_path / "one.pdb", ar_frames(1, seed=0), topology)
    cases = [([good], 30, r"'lagtime' parameter of TICA must be an int in \[1, n_frames\)\. Got 30 for "
                          r"trajectories of at most 30 frames"),
             ([good, one], 5, r"has 1 frame\(s\) \(n_samples=1\)")]
    for files, lag, msg in cases:
        with pytest.raises(ValueError, match=msg):
            cl.TICA(lagtime=lag).fit(in_memory(files, feat))
        with pytest.raises(ValueError, match=msg):
            cl.TICA(lagtime=lag).fit(stream_features(files, feat, top=PDB, chunk=7))
    with pytest.raises(ValueError, match=r"one\.pdb' has 1 frame\(s\)"):
        cl.PCA().fit(stream_features([good, one], feat, top=PDB))


def test_repr_and_type(good):
    stream = stream_features(good, Positions(22, 3), top=PDB, chunk=7)
    assert isinstance(stream, FeatureStream)
    assert repr(stream) == "FeatureStream(1 file(s), 66 features, chunk=7, stride=1)"
