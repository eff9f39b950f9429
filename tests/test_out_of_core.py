"""Learning from more frames than fit in memory: partial_fit, fit on sources read chunk by chunk
(NpyFiles, memory-mapped arrays, lists of chunks, generators), and networks trained through a DataLoader.

Linear learners must give the in-memory numbers to round-off (covariances 1e-12 relative,
eigenvalues 1e-10): only the summation order differs. Networks trained from files see the same
standardization, initialization, block split and validation loss as in memory, but other
minibatches (a shuffle buffer instead of one permutation of all pairs), so their scores agree
within the scatter of minibatch order, far below the scatter between seeds (see
test_streamed_training_matches_in_memory).
"""

import collections
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn.features import NpyFiles
from cvlearn.features._source import as_source
from cvlearn.learners import _data
from cvlearn.learners._training import plan_blocks, split_blocks

LAG = 7


def ar_data(lengths, n_features=6, seed=0):
    """Trajectories of three AR(1) processes (phi 0.99, 0.95, 0.8) mixed into ``n_features`` features plus
    noise, with offsets far from zero: well-separated TICA eigenvalues, a test of the moments' shift."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(3, n_features))
    out = []
    for n in lengths:
        latent = np.zeros((n, 3))
        for t in range(1, n):
            latent[t] = [0.99, 0.95, 0.8] * latent[t - 1] + rng.normal(size=3)
        out.append(latent @ mix + 0.3 * rng.normal(size=(n, n_features)) + 50.0)
    return out


@pytest.fixture(scope="module")
def trajs():
    return ar_data([900, 40, 5, 611])  # one trajectory shorter than the lag


@pytest.fixture(scope="module")
def npy_paths(trajs, tmp_path_factory):
    d = tmp_path_factory.mktemp("npy")
    paths = [str(d / f"t{i}.npy") for i in range(len(trajs))]
    for p, x in zip(paths, trajs):
        np.save(p, x)
    return paths


def assert_same_fit(ref, got, n_vectors=3):
    np.testing.assert_allclose(got.mean_, ref.mean_, rtol=1e-12)
    if isinstance(ref, cl.TICA):
        scale = np.abs(ref.cov_00_).max()
        np.testing.assert_allclose(got.cov_00_, ref.cov_00_, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(got.cov_0t_, ref.cov_0t_, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(got.eigenvalues_, ref.eigenvalues_, rtol=0, atol=1e-10)
    else:
        np.testing.assert_allclose(got.explained_variance_, ref.explained_variance_, rtol=0,
                                   atol=1e-12 * ref.explained_variance_[0])
    u, v = ref.eigenvectors_[:, :n_vectors], got.eigenvectors_[:, :n_vectors]
    np.testing.assert_allclose(v, u, rtol=0, atol=1e-10 * np.abs(u).max())


LINEAR = {"TICA": lambda: cl.TICA(lagtime=LAG), "PCA": lambda: cl.PCA()}


# --- partial_fit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("chunk", [3, 50, 10_000])  # shorter than the lag, several, one per trajectory
def test_partial_fit_chunks_equal_fit(trajs, name, chunk):
    """Chunks passed with continues=True give the fit of whole trajectories, weighted or not."""
    rng = np.random.default_rng(1)
    w = [rng.random(len(x)) for x in trajs]
    for weights in (None, w):
        ref = LINEAR[name]().fit(trajs, weights=weights)
        est = LINEAR[name]()
        for i, x in enumerate(trajs):
            for a in range(0, len(x), chunk):
                est.partial_fit(x[a:a + chunk], weights=None if weights is None else w[i][a:a + chunk],
                                continues=a > 0)
        assert_same_fit(ref, est)


def test_partial_fit_pairs_never_cross_calls_unless_continued(trajs):
    """Without continues=True each call is its own trajectory: the fit of the list of pieces."""
    x = trajs[0]
    pieces = [x[:300], x[300:302], x[302:]]  # the two-frame piece adds no pair
    est = cl.TICA(lagtime=LAG)
    for p in pieces:
        est.partial_fit(p)
    assert_same_fit(cl.TICA(lagtime=LAG).fit(pieces), est)
    est.partial_fit([trajs[1], trajs[3]])  # a list: independent trajectories
    assert_same_fit(cl.TICA(lagtime=LAG).fit(pieces + [trajs[1], trajs[3]]), est)
    assert_same_fit(cl.TICA(lagtime=LAG).fit(x), cl.TICA(lagtime=LAG).partial_fit(x[:50]).fit(x))  # fit restarts


@pytest.mark.parametrize("name", LINEAR)
def test_partial_fit_after_fit_adds_trajectories(trajs, name):
    """As in scikit-learn, partial_fit after fit adds to fit's frames, also with (log-)weights."""
    rng = np.random.default_rng(4)
    w = [rng.random(len(x)) for x in trajs]
    logw = [rng.normal(scale=3.0, size=len(x)) + 100.0 * i for i, x in enumerate(trajs)]
    for kw in ({}, {"weights": w}, {"logweights": logw}):
        first = {k: v[:2] for k, v in kw.items()}
        est = LINEAR[name]().fit(trajs[:2], **first)
        for i in (2, 3):
            est.partial_fit(trajs[i], **{k: v[i] for k, v in kw.items()})
        assert_same_fit(LINEAR[name]().fit(trajs, **kw), est)
    with pytest.raises(ValueError, match=r"fit keeps no frames of its last trajectory"):
        LINEAR[name]().fit(trajs).partial_fit(trajs[0], continues=True)


def test_partial_fit_logweights_rebased(trajs):
    """Log-weights whose maximum grows from call to call (1e3 kT apart) equal one in-memory fit."""
    rng = np.random.default_rng(2)
    logw = [rng.normal(scale=3.0, size=len(x)) + 300.0 * i for i, x in enumerate(trajs)]
    ref = cl.TICA(lagtime=LAG).fit(trajs, logweights=logw)
    est = cl.TICA(lagtime=LAG)
    for x, lw in zip(trajs, logw):
        h = len(x) // 2
        est.partial_fit(x[:h], logweights=lw[:h])
        est.partial_fit(x[h:], logweights=lw[h:], continues=True)
    assert_same_fit(ref, est)


# --- fit on sources read chunk by chunk ------------------------------------------------------------


def sources(trajs, paths, chunk=37):
    """The same trajectories in every form a learner reads chunk by chunk."""
    return {
        "NpyFiles": NpyFiles(paths, chunk=chunk),
        "memmaps": [np.load(p, mmap_mode="r") for p in paths],
        "lists of chunks": [[x[a:a + chunk] for a in range(0, len(x), chunk)] for x in trajs],
        "generator of arrays": (x for x in trajs),
        "generator of generators": ((x[a:a + chunk] for a in range(0, len(x), chunk)) for x in trajs),
    }


@pytest.mark.parametrize("kind", ["NpyFiles", "memmaps", "lists of chunks", "generator of arrays",
                                  "generator of generators"])
@pytest.mark.parametrize("name", LINEAR)
def test_fit_on_sources_equals_in_memory(trajs, npy_paths, kind, name):
    rng = np.random.default_rng(3)
    w = [rng.random(len(x)) for x in trajs]
    ref = LINEAR[name]().fit(trajs, weights=w)
    assert_same_fit(ref, LINEAR[name]().fit(sources(trajs, npy_paths)[kind], weights=w))
    if kind.startswith("generator"):
        return
    got = LINEAR[name]().fit(sources(trajs, npy_paths)[kind])
    assert_same_fit(LINEAR[name]().fit(trajs), got)
    for p, q in zip(got.transform(sources(trajs, npy_paths)[kind]), got.transform(trajs)):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-9 * np.abs(q).max())
    if name == "TICA":
        assert got.score(sources(trajs, npy_paths)[kind]) == pytest.approx(got.score(trajs), rel=1e-10)


def test_npy_files_float32_and_one_memmap(tmp_path, trajs):
    """float32 files read as float64; one memory-mapped array is one trajectory (transform gives one array)."""
    path = str(tmp_path / "x.npy")
    np.save(path, trajs[0].astype(np.float32))
    data = NpyFiles(path, chunk=64)
    assert (data.lengths, data.n_features, data.dtype) == ([900], 6, np.float32)
    assert repr(data) == "NpyFiles(1 file(s), 6 features, 900 frames, chunk=64)"
    ref = cl.TICA(lagtime=LAG).fit(np.load(path))
    assert_same_fit(ref, cl.TICA(lagtime=LAG).fit(data))
    mm = np.load(path, mmap_mode="r")
    assert_same_fit(ref, cl.TICA(lagtime=LAG).fit(mm))
    assert ref.transform(mm).shape == (900, 6)


def test_streamed_tica_peak_memory_is_a_few_chunks(tmp_path):
    """Peak numpy allocation (tracemalloc) of a fit on NpyFiles is a few chunks, far below the data."""
    n, f, chunk = 200_000, 20, 2_000
    path = str(tmp_path / "long.npy")
    np.save(path, np.random.default_rng(0).normal(size=(n, f)).astype(np.float32))
    data = NpyFiles(path, chunk=chunk)
    tracemalloc.start()
    try:
        cl.TICA(lagtime=LAG).fit(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk_bytes = chunk * f * 8
    assert peak < 10 * chunk_bytes < n * f * 8 / 4, f"peak {peak / 1e6:.2f} MB"


# --- networks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hidden(hidden_run, tmp_path_factory):
    """The hidden double well's first 6 walkers (4000 frames, 10 features, float32 files) to train on, the
    last 2 to score on."""
    _, traj = hidden_run
    walkers = [p.reshape(len(p), -1) for p in traj.per_walker()]
    d = tmp_path_factory.mktemp("hidden")
    paths = [str(d / f"w{i}.npy") for i in range(6)]
    for p, x in zip(paths, walkers[:6]):
        np.save(p, x.astype(np.float32))
    return [np.load(p) for p in paths], paths, walkers[6:]


def test_streamed_training_matches_in_memory(hidden):
    """Deep-TICA from .npy files (read in random pieces) and from lists of chunks (read front to back,
    trajectories interleaved) reaches the VAMP-2 score on held-out walkers and the eigenvalue of the
    in-memory training with the same seed.

    Tolerance: 0.01 in VAMP-2 and 0.005 in the eigenvalue. At this training length (25 epochs, not
    converged) VAMP-2 varies by 0.08 between seeds 0-3 (1.871 to 1.947) but by at most 0.004 between
    the three data paths with one seed (same initialization, standardization and split; only the
    minibatches differ).
    """
    train, paths, test = hidden
    kw = dict(lagtime=10, layers=[16, 8], max_epochs=25, patience=10, batch_size=1024, seed=0)

    def vamp2(est):
        return cl.TICA(lagtime=10, scaling=None).fit(est.transform(test)).vamp2_score_

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        ref = cl.DeepTICA(**kw).fit(train)
        fits = {"npy": cl.DeepTICA(**kw).fit(NpyFiles(paths)),
                "chunks": cl.DeepTICA(**kw).fit([[x[:1500], x[1500:]] for x in train])}
    assert vamp2(ref) > 1.9  # the slow process is found (linear TICA: 1.87)
    for name, est in fits.items():
        assert abs(vamp2(est) - vamp2(ref)) < 0.01, (name, vamp2(est), vamp2(ref))
        np.testing.assert_allclose(est.eigenvalues_, ref.eigenvalues_, atol=0.005)
        assert len(est.history_["valid"]) == len(ref.history_["valid"])
        for a, b in [(est.module_.standardize.mean, ref.module_.standardize.mean),
                     (est.module_.standardize.std, ref.module_.standardize.std)]:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)  # float32 buffers of the same statistics
    a, b = fits["npy"].transform(NpyFiles(paths)), fits["npy"].transform(train)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-6)


def test_networks_train_from_a_feature_stream(tmp_path):
    """A FeatureStream (mdtraj files, read front to back) trains a TimeLaggedAutoEncoder: the same
    standardization as the features in memory, one CV array per file."""
    md = pytest.importorskip("mdtraj")
    from cvlearn.data import alanine_dipeptide_pdb
    from cvlearn.features import Positions, load_trajectories, stream_features

    pdb = alanine_dipeptide_pdb()
    top = md.load_topology(pdb)
    rng = np.random.default_rng(0)
    ref = md.load(pdb).xyz[0]
    files = []
    for i, n in enumerate([700, 450]):
        walk = np.cumsum(rng.normal(scale=0.01, size=(n, 1, 3)), axis=0)
        xyz = (ref + walk + 0.02 * rng.normal(size=(n, 22, 3))).astype(np.float32)
        files.append(str(tmp_path / f"{i}.dcd"))
        md.Trajectory(xyz, top).save(files[-1])
    feat = Positions(22, 3)
    stream = stream_features(files, feat, top=pdb, chunk=128)
    in_memory = [feat.transform(t.xyz) for t in load_trajectories(files, top=pdb)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        est = cl.TimeLaggedAutoEncoder(lagtime=LAG, layers=[8], max_epochs=3, batch_size=256).fit(stream)
    allx = np.concatenate(in_memory)
    np.testing.assert_allclose(est.module_.standardize.mean.numpy(), allx.mean(0), rtol=1e-6)
    np.testing.assert_allclose(est.module_.standardize.std.numpy(), allx.std(0), rtol=1e-6)
    for p, q in zip(est.transform(stream), est.transform(in_memory)):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-6)
    assert len(est.history_["valid"]) == 3


def test_scan_statistics_equal_numpy(trajs, npy_paths):
    mean, std, lengths = _data.scan(NpyFiles(npy_paths, chunk=37), "test")
    allx = np.concatenate(trajs)
    np.testing.assert_allclose(mean, allx.mean(0), rtol=1e-14)
    np.testing.assert_allclose(std, allx.std(0), rtol=1e-12)
    assert lengths == [len(x) for x in trajs]


NEURAL = {
    "DeepTICA": lambda **kw: cl.DeepTICA(lagtime=LAG, **kw),
    "TimeLaggedAutoEncoder": lambda **kw: cl.TimeLaggedAutoEncoder(lagtime=LAG, **kw),
    "AutoEncoder": lambda **kw: cl.AutoEncoder(**kw),
}


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("random_access", [True, False])
def test_streamed_validation_loss_is_the_in_memory_loss(trajs, npy_paths, name, random_access):
    """The validation loss summed over pieces equals the loss of the whole in-memory validation set
    (float32 round-off), for the same block split; and training runs from the source."""
    long = [trajs[0], trajs[3]]
    source = NpyFiles([npy_paths[0], npy_paths[3]], chunk=50) if random_access else [
        [x[a:a + 50] for a in range(0, len(x), 50)] for x in long]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        est = NEURAL[name](layers=[8], n_components=2, max_epochs=3, batch_size=128, seed=1).fit(source)
    lag = LAG if est._lagged else None
    mean, std = np.concatenate(long).mean(0), np.concatenate(long).std(0)
    lengths = [len(x) for x in long]
    blocks, valid = plan_blocks(lengths, lag, est.valid_fraction, est.n_blocks, est.seed)
    reader = _data.PairReader(as_source(source), lengths, blocks, valid, mean, std, lag, None, torch.float32)
    cv, extra = est.module_, est.extra_
    with torch.no_grad():
        streamed = float(est._parts_loss(reader.valid_sum(lambda b: est._loss_parts(cv, extra, b), "cpu")))
        _, valid_batch = split_blocks([(x - mean) / std for x in long], [np.ones(n) for n in lengths], lag,
                                      est.valid_fraction, est.n_blocks, est.seed, torch.float32, "cpu")
        in_memory = float(est._loss(cv, extra, valid_batch))
    assert streamed == pytest.approx(in_memory, rel=1e-5, abs=1e-6)
    assert est.history_["valid"][est.best_epoch_] == min(est.history_["valid"])
    assert [len(v) for v in est.transform(source)] == lengths


@pytest.mark.parametrize("random_access", [True, False])
def test_pair_stream_yields_each_training_pair_once(tmp_path, monkeypatch, random_access):
    """One epoch holds every training pair once and no pair of a validation block or across
    trajectories; batches are full but the last, mix trajectories, and differ between epochs."""
    monkeypatch.setattr(_data, "_BUFFER_BYTES", 4 * 2 * 700)  # about 700 frames per buffer: several buffers
    monkeypatch.setattr(_data, "_PIECE", 50)
    lengths, lag, bs = [1000, 640, 333], 3, 64
    # two features: the trajectory index and the frame index (exact in float32), to read the pairs off
    arrays = [np.c_[np.full(n, i, float), np.arange(n, dtype=float)] for i, n in enumerate(lengths)]
    paths = []
    for i, x in enumerate(arrays):
        paths.append(str(tmp_path / f"{i}.npy"))
        np.save(paths[-1], x)
    source = NpyFiles(paths, chunk=90) if random_access else as_source(
        [[x[a:a + 90] for a in range(0, len(x), 90)] for x in arrays])
    blocks, valid = plan_blocks(lengths, lag, 0.2, 5, seed=0)
    reader = _data.PairReader(source, lengths, blocks, valid, np.zeros(2), np.ones(2), lag, None, torch.float32)
    stream = _data.PairStream(reader, bs)
    loader = torch.utils.data.DataLoader(stream, batch_size=None)
    expected = collections.Counter((i, t) for k, (i, a, b) in enumerate(blocks) if k not in valid
                                   for t in range(a, b - lag))
    epochs = []
    for seed in (0, 1):
        stream.seed = seed
        seen, sizes, mixed = collections.Counter(), [], []
        for frames, w in loader:
            n = len(w)
            x0, xt = frames[:n].numpy().astype(int), frames[n:].numpy().astype(int)
            assert (x0[:, 0] == xt[:, 0]).all() and (xt[:, 1] - x0[:, 1] == lag).all()
            seen.update(zip(x0[:, 0].tolist(), x0[:, 1].tolist()))
            sizes.append(n)
            mixed.append(len(set(x0[:, 0].tolist())))
        assert seen == expected
        assert all(s == bs for s in sizes[:-1]) and 1 < sizes[-1] <= bs
        assert np.median(mixed) == 3  # batches draw from every trajectory
        epochs.append(x0[:, 1].tolist())
    assert epochs[0] != epochs[1]


def test_streamed_training_memory_is_bounded(tmp_path, monkeypatch):
    """Training from files reads pieces, never a whole file, and its numpy allocations peak at a few
    buffers, far below the data (tracemalloc; the frames are float32, 3.2 MB, buffer 0.4 MB)."""
    monkeypatch.setattr(_data, "_BUFFER_BYTES", 400_000)
    n, f = 40_000, 20
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"{i}.npy"))
        np.save(paths[-1], np.cumsum(rng.normal(size=(n, f)), axis=0).astype(np.float32))

    class Recording(NpyFiles):
        largest = 0

        def read(self, i, start, stop):
            Recording.largest = max(Recording.largest, stop - start)
            return super().read(i, start, stop)

    est = cl.DeepTICA(lagtime=5, layers=[8], max_epochs=2, batch_size=512)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cl.ConvergenceWarning)
            est.fit(Recording(paths, chunk=2000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert Recording.largest <= 2000 + 5  # a chunk of validation pairs and their lagged partners
    data_bytes = 2 * n * f * 4
    assert peak < data_bytes / 2, f"peak {peak / 1e6:.2f} MB for {data_bytes / 1e6:.1f} MB of data"


# --- bad input -----------------------------------------------------------------------------------


def test_chunks_with_different_feature_counts(trajs, tmp_path):
    x = trajs[0]
    with pytest.raises(ValueError, match=r"X\[0\] has a chunk of 5 features at frame 100, but the data so far "
                                         r"have 6\. Every chunk"):
        cl.TICA(lagtime=LAG).fit([[x[:100], x[100:, :5]]])
    with pytest.raises(ValueError, match=r"X\[1\] has a chunk of 4 features at frame 0"):
        cl.PCA().fit(iter([x, x[:, :4]]))
    paths = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    np.save(paths[0], x)
    np.save(paths[1], x[:, :3])
    with pytest.raises(ValueError, match=r"b\.npy' has 3 features but .*a\.npy' has 6"):
        NpyFiles(paths)
    with pytest.raises(ValueError, match=r"X\[1\] has 3 features but X\[0\] has 6"):
        cl.TICA(lagtime=LAG).fit([np.load(p, mmap_mode="r") for p in paths])
    with pytest.raises(ValueError, match=r"has 3 features, but TICA is expecting 6"):
        cl.TICA(lagtime=LAG).partial_fit(x).partial_fit(x[:, :3])
    with pytest.raises(ValueError, match=r"stream has 3 features, but TICA is expecting 6"):
        cl.TICA(lagtime=LAG).fit(x).transform(NpyFiles(paths[1]))


def test_lag_longer_than_the_trajectories(trajs, tmp_path):
    short = [trajs[2][:5], trajs[1][:6]]
    match = r"must be an int in \[1, n_frames\)\. Got 7 for trajectories of at most 6 frames"
    for data in ([[x[:2], x[2:]] for x in short], iter(short)):
        with pytest.raises(ValueError, match=match):
            cl.TICA(lagtime=LAG).fit(data)
    with pytest.raises(ValueError, match=match):
        cl.DeepTICA(lagtime=LAG, batch_size=8).fit([[x[:2], x[2:]] for x in short])
    est = cl.TICA(lagtime=LAG).partial_fit(short[0]).partial_fit(short[1])  # no pair yet: not fitted
    with pytest.raises(cl.NotFittedError, match=r"partial_fit has not seen enough data yet: .*no trajectory longer "
                                                r"than lagtime=7 frames"):
        est.transform(short[0])
    est.partial_fit(short[0], continues=True)  # 12 frames of one trajectory: 5 pairs
    assert est.transform(short[0]).shape == (5, 6)


def test_empty_iterables(tmp_path):
    for est in (cl.TICA(lagtime=LAG), cl.PCA()):
        with pytest.raises(ValueError, match=r"X is an iterator that gave no trajectories: it is empty, or an "
                                             r"earlier call read it"):
            est.fit(iter([]))
        with pytest.raises(ValueError, match=r"X\[1\] is an iterator that gave no chunks"):
            est.fit([[np.ones((3, 2))], iter([])])
        with pytest.raises(ValueError, match=r"X\[0\] has 0 frame\(s\)"):
            est.fit([[np.ones((0, 2))]])
        with pytest.raises(ValueError, match=r"empty list"):
            est.fit([])
    with pytest.raises(ValueError, match=r"DeepTICA got data with no trajectories"):
        cl.DeepTICA(lagtime=LAG, batch_size=8).fit(_EmptySource())
    x = np.random.default_rng(0).normal(size=(50, 2))
    assert_same_fit(cl.PCA().fit(x), cl.PCA().fit([[x[:0], x[:20], x[20:20], x[20:]]]), 2)  # empty chunks skipped
    with pytest.raises(ValueError, match=r"empty list of trajectory files"):
        NpyFiles([])
    path = str(tmp_path / "none.npy")
    np.save(path, np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"none\.npy' has 0 frame\(s\)"):
        cl.PCA().fit(NpyFiles(path))


class _EmptySource(cl.features.FrameSource):
    """A re-iterable source with no trajectories."""

    def _trajectories(self):
        return iter([])


def test_non_numeric_and_malformed_npy(tmp_path):
    cases = [
        ("strings", lambda p: np.save(p, np.array([["a", "b"], ["c", "d"]])), TypeError,
         r"strings\.npy' holds <U1 values; features must be real numbers"),
        ("objects", lambda p: np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True), TypeError,
         r"objects\.npy' holds Python objects"),
        ("complex", lambda p: np.save(p, np.ones((4, 2), complex)), TypeError, r"holds complex128 values"),
        ("text", lambda p: open(p, "w").write("1 2 3\n4 5 6\n"), ValueError, r"text\.npy' is not a \.npy file"),
        ("flat", lambda p: np.save(p, np.arange(10.0)), ValueError, r"flat\.npy' has shape \(10,\) but must be 2-D"),
    ]
    for name, write, exc, match in cases:
        path = str(tmp_path / f"{name}.npy")
        write(path)
        with pytest.raises(exc, match=match):
            NpyFiles(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.npy' does not exist"):
        NpyFiles(str(tmp_path / "missing.npy"))
    with pytest.raises(TypeError, match=r"X\[0\] has a chunk of dtype <U1 at frame 0; features must be real"):
        cl.TICA(lagtime=1).fit(iter([np.array([["a", "b"]] * 5)]))


def test_other_bad_uses(trajs):
    x = trajs[0]
    bad = x.copy()
    bad[123, 2] = np.inf
    with pytest.raises(ValueError, match=r"X\[0\] has NaN or infinite values at frame 123"):
        cl.PCA().fit([[bad[:100], bad[100:]]])
    with pytest.raises(ValueError, match=r"X is an iterator that gave no trajectories: .* an earlier call read it"):
        data = iter([x])
        cl.TICA(lagtime=LAG).fit(data).transform(data)
    with pytest.raises(ValueError, match=r"reads its data several times .* one-shot iterator"):
        cl.DeepTICA(lagtime=LAG, batch_size=64).fit(iter([x]))
    with pytest.raises(ValueError, match=r"set batch_size"):
        cl.AutoEncoder().fit([[x[:500], x[500:]]])
    with pytest.raises(ValueError, match=r"continues=True, but this TICA has no earlier partial_fit call"):
        cl.TICA(lagtime=LAG).partial_fit(x, continues=True)
    with pytest.raises(TypeError, match=r"partial_fit takes frames in memory"):
        cl.PCA().partial_fit([[x[:10], x[10:]]])
    with pytest.raises(ValueError, match=r"give weights as a list of 2 1-D arrays"):
        cl.TICA(lagtime=LAG).fit([[x[:10], x[10:]], [x]], weights=np.ones(len(x)))
