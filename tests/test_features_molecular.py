"""Molecular featurizers (Dihedrals, Distances, Contacts, AlignedPositions) against mdtraj on real frames."""

import json

import mdtraj as md
import numpy as np
import pytest
import torch

import cvlearn as cl
import cvlearn.data
from cvlearn.features import AlignedPositions, Contacts, Dihedrals, Distances

# mdtraj computes in float32 (its xyz dtype): agreement is limited to ~1e-6 by mdtraj, not by us.
MDTRAJ_ATOL = 1e-5


@pytest.fixture(scope="module")
def top():
    return md.load_topology(cvlearn.data.alanine_dipeptide_pdb())


@pytest.fixture(scope="module")
def traj(top, alanine_md_frames):
    """200 frames of alanine dipeptide in vacuum at 500 K (every 0.1 ps, after minimization), from OpenMM."""
    return md.Trajectory(alanine_md_frames(200, 50, seed=7, minimize=True), top)


@pytest.fixture(scope="module")
def pos(traj):
    return torch.from_numpy(traj.xyz.astype(np.float64))


def all_featurizers(top, traj):
    return {
        "dihedrals": Dihedrals(top, "phi psi"),
        "dihedrals_sincos": Dihedrals(top, "phi psi", sincos=True),
        "distances": Distances(top, selection="heavy"),
        "contacts": Contacts(top, selection="heavy", r0=0.3, d0=0.05),
        "coordination": Contacts(top, selection="heavy", r0=0.3, total=True),
        "aligned": AlignedPositions(traj[0], selection="heavy"),
    }


KINDS = ["dihedrals", "dihedrals_sincos", "distances", "contacts", "coordination", "aligned"]


# ---------------------------------------------------------------------------------------------------------
# Values against mdtraj


def test_dihedrals_match_mdtraj(top, traj, pos):
    f = Dihedrals(top, "phi psi")
    phi_idx, phi = md.compute_phi(traj, periodic=False)
    psi_idx, psi = md.compute_psi(traj, periodic=False)
    assert f.indices.tolist() == np.vstack([phi_idx, psi_idx]).tolist()
    assert f.feature_names() == ["phi_2", "psi_2"]
    np.testing.assert_allclose(f(pos).numpy(), np.hstack([phi, psi]), rtol=0, atol=MDTRAJ_ATOL)
    assert np.ptp(psi) > 3  # the run crosses the psi = +-pi seam region: both signs are exercised
    sc = Dihedrals(top, ["phi", "psi"], sincos=True)
    assert sc.feature_names() == ["sin_phi_2", "cos_phi_2", "sin_psi_2", "cos_psi_2"]
    ref = np.stack([np.sin(phi[:, 0]), np.cos(phi[:, 0]), np.sin(psi[:, 0]), np.cos(psi[:, 0])], axis=1)
    np.testing.assert_allclose(sc(pos).numpy(), ref, rtol=0, atol=MDTRAJ_ATOL)


def test_explicit_dihedrals_full_range_match_mdtraj():
    # Random conformations cover every angle in (-pi, pi]: checks the sign convention everywhere.
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(500, 6, 3)).astype(np.float32)
    quads = np.array([[0, 1, 2, 3], [5, 4, 3, 2], [1, 3, 0, 5]])
    topology = md.Topology()
    residue = topology.add_residue("UNK", topology.add_chain())
    for i in range(6):
        topology.add_atom(f"C{i}", md.element.carbon, residue)
    t = md.Trajectory(xyz, topology)
    expected = md.compute_dihedrals(t, quads, periodic=False)
    f = Dihedrals(indices=quads, n_atoms=6)
    assert f.feature_names() == ["dih_0_1_2_3", "dih_5_4_3_2", "dih_1_3_0_5"]
    np.testing.assert_allclose(f(torch.from_numpy(xyz.astype(np.float64))).numpy(), expected, atol=MDTRAJ_ATOL)
    assert expected.min() < -3.0 and expected.max() > 3.0


def test_distances_match_mdtraj(top, traj, pos):
    f = Distances(top, selection="heavy")
    assert f.n_features == 45  # 10 heavy atoms
    np.testing.assert_allclose(f(pos).numpy(), md.compute_distances(traj, f.pairs.numpy(), periodic=False),
                               rtol=0, atol=MDTRAJ_ATOL)
    assert f.feature_names()[0] == "d_1_4"
    g = Distances(None, pairs=[[8, 16], [4, 15]])
    assert g.n_atoms is None and g.atoms.tolist() == [4, 8, 15, 16]
    np.testing.assert_allclose(g.transform(traj), md.compute_distances(traj, [[8, 16], [4, 15]], periodic=False),
                               atol=MDTRAJ_ATOL)


def rational(r, r0, d0, n, m):
    """PLUMED's RATIONAL switching function, the textbook formula (numpy reference).

    In float64: near r - d0 = r0 the formula is 0/0 and mdtraj's float32 distances would lose 4 digits.
    """
    x = np.clip(np.asarray(r, dtype=np.float64) - d0, 0, None) / r0
    return (1 - x**n) / (1 - x**m)


@pytest.mark.parametrize("r0, d0, n, m", [(0.3, 0.0, 6, 12), (0.25, 0.1, 8, 14), (0.4, 0.05, 1, 3)])
def test_contacts_match_switching_of_mdtraj_distances(top, traj, pos, r0, d0, n, m):
    per_pair = Contacts(top, selection="heavy", r0=r0, d0=d0, n=n, m=m)
    expected = rational(md.compute_distances(traj, per_pair.pairs.numpy(), periodic=False), r0, d0, n, m)
    np.testing.assert_allclose(per_pair(pos).numpy(), expected, rtol=0, atol=MDTRAJ_ATOL)
    total = Contacts(top, selection="heavy", r0=r0, d0=d0, n=n, m=m, total=True)
    assert total.feature_names() == ["coordination"]
    np.testing.assert_allclose(total(pos).numpy()[:, 0], expected.sum(1), rtol=0, atol=45 * MDTRAJ_ATOL)


def test_contacts_match_mdtraj_compute_contacts(traj, pos):
    # compute_contacts measures residue pairs; with one heavy atom kept per residue (ACE C, ALA CB,
    # NME C) its 'closest-heavy' distances are exactly those atom pairs.
    atoms = [4, 10, 18]
    dist, res_pairs = md.compute_contacts(traj.atom_slice(atoms), contacts=[[0, 1], [0, 2], [1, 2]],
                                          scheme="closest-heavy", periodic=False)
    pairs = [[atoms[a], atoms[b]] for a, b in res_pairs]
    f = Contacts(traj.topology, pairs=pairs, r0=0.35)
    np.testing.assert_allclose(f(pos).numpy(), rational(dist, 0.35, 0.0, 6, 12), rtol=0, atol=MDTRAJ_ATOL)
    total = Contacts(traj.topology, pairs=pairs, r0=0.35, total=True)
    np.testing.assert_allclose(total(pos).numpy()[:, 0], rational(dist, 0.35, 0.0, 6, 12).sum(1), atol=MDTRAJ_ATOL)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_contacts_singularity_and_extremes(dtype):
    f = Contacts(pairs=[[0, 1]], r0=0.5, d0=0.1, n=6, m=12)
    for r, value in [(0.6, 6 / 12), (0.05, 1.0), (0.1, 1.0), (1e4, 0.0)]:  # r = d0 + r0, r < d0, r = d0, far
        x = torch.tensor([[0.0, 0, 0], [r, 0, 0]], dtype=dtype, requires_grad=True)
        s = f(x)
        s.sum().backward()
        assert s.item() == pytest.approx(value, abs=1e-6)
        assert torch.isfinite(x.grad).all()
    # The derivative at the removable singularity equals the limit of the textbook formula's:
    # ds/dx at x = 1 is n(n - m)/(2m) per unit x, i.e. / r0 per nm.
    x = torch.tensor([[0.0, 0, 0], [0.6, 0, 0]], dtype=torch.float64, requires_grad=True)
    f(x).sum().backward()
    assert x.grad[1, 0].item() == pytest.approx(6 * (6 - 12) / (2 * 12) / 0.5, rel=1e-10)


def test_aligned_positions_match_superpose(top, traj, pos):
    ref = traj[0]
    heavy = top.select("not element H")
    f = AlignedPositions(ref, selection="heavy")
    assert f.n_features == 30 and f.feature_names()[:3] == ["x1", "y1", "z1"]
    expected = md.Trajectory(traj.xyz.copy(), top).superpose(ref, atom_indices=heavy).xyz
    np.testing.assert_allclose(f(pos).numpy(), expected[:, heavy].reshape(len(traj), -1), rtol=0, atol=MDTRAJ_ATOL)
    # Fit on the heavy atoms, output every atom.
    g = AlignedPositions(ref, fit_selection="heavy")
    expected = md.Trajectory(traj.xyz.copy(), top).superpose(ref, atom_indices=heavy).xyz
    np.testing.assert_allclose(g(pos).numpy(), expected.reshape(len(traj), -1), rtol=0, atol=MDTRAJ_ATOL)
    assert g.atoms.tolist() == list(range(22)) and g.fit_atoms.tolist() == heavy.tolist()


def kabsch(x, y):
    """Rotation taking centered x onto centered y: SVD with the det sign correction (float64 reference)."""
    u, _, vt = np.linalg.svd((x - x.mean(0)).T @ (y - y.mean(0)))
    return vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T


def test_aligned_positions_match_float64_kabsch(top, traj, pos):
    # 8 backbone fit atoms: mdtraj's float32 superpose is off by 1.4e-5 here, so compare in float64.
    bb = top.select("backbone")
    g = AlignedPositions(traj[0], fit_selection="backbone")
    xyz, ref = traj.xyz.astype(np.float64), traj.xyz[0].astype(np.float64)
    expected = np.stack([(x - x[bb].mean(0)) @ kabsch(x[bb], ref[bb]).T + ref[bb].mean(0) for x in xyz])
    np.testing.assert_allclose(g(pos).numpy(), expected.reshape(len(traj), -1), rtol=0, atol=1e-12)


def test_aligned_positions_never_reflect(top, traj, pos):
    # A mirror image cannot be rotated onto the reference: the best proper rotation (what mdtraj's
    # superpose finds too) must be used, not the reflection an unguarded Kabsch would return.
    ref = traj[0]
    mirrored = traj.xyz[:20] * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    f = AlignedPositions(ref)
    expected = md.Trajectory(mirrored.copy(), top).superpose(ref).xyz
    out = f(torch.from_numpy(mirrored.astype(np.float64))).numpy().reshape(20, 22, 3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=MDTRAJ_ATOL)
    # and the result is still a mirror image of the reference (signed volume of 4 heavy atoms flips)
    def volume(x):
        return np.linalg.det(x[..., [4, 8, 14], :] - x[..., [6], :])

    assert np.all(np.sign(volume(out)) == -np.sign(volume(ref.xyz[0])))


def test_aligned_positions_invariant_to_rigid_motion(traj, pos):
    f = AlignedPositions(traj[0], fit_selection="heavy")
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a proper rotation
    moved = pos[:10] @ torch.from_numpy(q).T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    np.testing.assert_allclose(f(moved).numpy(), f(pos[:10]).numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(f(pos[0]).numpy(), traj.xyz[0].ravel(), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Gradients, batching, dtypes, TorchScript


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(top, traj, pos, kind):
    f = all_featurizers(top, traj)[kind]
    frames = pos[[3, 77, 150]].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (frames,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_random_frames_gradcheck_aligned():
    # Random non-degenerate frames against a random reference, output atoms differ from fit atoms.
    gen = torch.Generator().manual_seed(3)
    ref = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    f = AlignedPositions(ref, atoms=[7, 0, 2], fit_atoms=[0, 1, 3, 4, 5, 6])
    x = torch.randn(4, 8, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_dihedral_gradient_finite_at_seam():
    # A dihedral of exactly pi (the atan2 branch cut): gradient finite, sin/cos smooth across it.
    x = torch.tensor([[[1.0, 1, 0], [0, 0, 0], [1, 0, 0], [0, -1, 0]]], dtype=torch.float64, requires_grad=True)
    f = Dihedrals(indices=[[0, 1, 2, 3]])
    angle = f(x)
    assert abs(abs(angle.item()) - np.pi) < 1e-12
    angle.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.autograd.gradcheck(Dihedrals(indices=[[0, 1, 2, 3]], sincos=True), (x.detach().requires_grad_(),))


@pytest.mark.parametrize("kind", KINDS)
def test_batched_shapes_and_float32(top, traj, pos, kind):
    f = all_featurizers(top, traj)[kind]
    out = f(pos)
    assert out.shape == (len(traj), f.n_features) and out.dtype == torch.float64
    assert f(pos[5]).shape == (f.n_features,)
    np.testing.assert_array_equal(f(pos[:12].reshape(3, 4, 22, 3)).reshape(12, -1).numpy(), out[:12].numpy())
    out32 = f(pos.float())
    assert out32.dtype == torch.float32
    # float32 rounds positions of ~1 nm to ~1e-7 nm; measured: <= 4e-7 for angles, distances, contacts
    # and aligned coordinates, 5e-6 for the 45-term coordination number (~10). Margin ~5x.
    np.testing.assert_allclose(out32.double().numpy(), out.numpy(), rtol=1e-6, atol=2e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_torchscript(top, traj, pos, kind):
    f = all_featurizers(top, traj)[kind]
    scripted = torch.jit.script(f)
    torch.testing.assert_close(scripted(pos), f(pos), rtol=0, atol=0)
    with pytest.raises(Exception, match="22-atom system"):
        scripted(pos[:, :21])


def test_atoms_and_n_atoms(top, traj):
    f = Dihedrals(top, "phi psi")
    assert f.atoms.dtype == torch.long and f.atoms.tolist() == [4, 6, 8, 14, 16] and f.n_atoms == 22
    a = AlignedPositions(traj[0], atoms=[10, 1], fit_atoms=[4, 6, 8, 14])
    assert a.atoms.tolist() == [1, 4, 6, 8, 10, 14] and a.n_atoms == 22
    assert a.feature_names() == ["x10", "y10", "z10", "x1", "y1", "z1"]


def test_concatenation(top, traj, pos):
    parts = [all_featurizers(top, traj)[k] for k in ("dihedrals_sincos", "distances", "coordination", "aligned")]
    feat = parts[0] | parts[1] | parts[2] | parts[3]
    assert feat.n_features == 4 + 45 + 1 + 30
    assert feat.feature_names() == [n for p in parts for n in p.feature_names()]
    np.testing.assert_array_equal(feat(pos).numpy(), np.hstack([p(pos).numpy() for p in parts]))
    torch.testing.assert_close(torch.jit.script(feat)(pos), feat(pos), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------
# transform on stored frames, save/load, export


def test_transform_accepts_mdtraj(top, traj, pos):
    f = Dihedrals(top, "phi psi") | Distances(top, pairs=[[1, 18]])
    X = f.transform(traj)
    assert isinstance(X, np.ndarray) and X.dtype == np.float64
    np.testing.assert_array_equal(X, f(pos).numpy())
    parts = f.transform([traj[:50], traj[50:]])
    assert isinstance(parts, list) and [len(p) for p in parts] == [50, 150]
    np.testing.assert_array_equal(np.vstack(parts), X)
    walkers = cl.Trajectory(traj.xyz.reshape(100, 2, 22, 3), time=np.arange(100.0))
    mixed = f.transform([traj[:10], walkers])
    assert [len(p) for p in mixed] == [10, 100, 100]
    np.testing.assert_array_equal(mixed[2], f.transform(traj.xyz.reshape(100, 2, 22, 3)[:, 1]))


@pytest.fixture(scope="module")
def cv(top, traj):
    feat = (Dihedrals(top, "phi psi", sincos=True) | Distances(top, selection="heavy")
            | Contacts(top, selection="heavy", r0=0.3, total=True) | AlignedPositions(traj[0], selection="heavy"))
    X = feat.transform(traj)
    return cl.TICA(lagtime=2, n_components=2).fit(X).to_module(featurizer=feat)


def test_save_load_roundtrip(cv, pos, tmp_path):
    json.dumps(cv.featurizer.config())  # plain JSON data, no topology inside
    cl.save(cv, tmp_path / "cv.pt")
    loaded = cl.load(tmp_path / "cv.pt")
    assert loaded.featurizer.feature_names() == cv.featurizer.feature_names()
    assert loaded.featurizer.config() == cv.featurizer.config()
    torch.testing.assert_close(loaded(pos), cv(pos), rtol=0, atol=0)
    x = pos[:4].clone().requires_grad_(True)
    loaded(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_export_to_torchscript(cv, pos, tmp_path):
    scripted = cl.export.to_torchscript(cv, tmp_path / "cv_ts.pt")
    torch.testing.assert_close(scripted(pos), cv(pos), rtol=0, atol=0)
    reloaded = torch.jit.load(str(tmp_path / "cv_ts.pt"))
    torch.testing.assert_close(reloaded(pos), cv(pos), rtol=0, atol=0)
    s32 = cl.export.to_torchscript(cv, dtype=torch.float32)
    out32 = s32(pos.float())
    assert out32.dtype == torch.float32
    # float32 features (see test_batched_shapes_and_float32) summed over 80 TICA weights: measured 6e-6
    # on CV values up to ~2.
    np.testing.assert_allclose(out32.double().numpy(), cv(pos).detach().numpy(), rtol=0, atol=5e-5)


# ---------------------------------------------------------------------------------------------------------
# Bad input: each error says what was wrong and how to fix it


@pytest.mark.parametrize("make, match", [
    (lambda top: Distances(top, selection="name XYZ"), "matches no atom"),
    (lambda top: Distances(top, selection="name and or"), "not a valid mdtraj selection"),
    (lambda top: Distances(None, selection="heavy"), "needs a topology"),
    (lambda top: Distances(top, selection="name CA"), "single atom"),
    (lambda top: Distances(top, pairs=[[0, 22]]), "atom index 22 but the system has 22 atoms"),
    (lambda top: Distances(top, pairs=[[0, -1]]), "negative atom index"),
    (lambda top: Distances(top, pairs=[0, 1, 2]), r"shape \(k, 2\)"),
    (lambda top: Distances(top, pairs=[[0, 1, 2]]), r"shape \(k, 2\)"),
    (lambda top: Distances(top, pairs=[[0.0, 1.5]]), "integer atom indices"),
    (lambda top: Distances(top, pairs=[[0, 1], [2]]), "rows of different lengths"),
    (lambda top: Distances(top, pairs=[[3, 3]]), "different atoms"),
    (lambda top: Distances(top), "exactly one of pairs= .* or selection="),
    (lambda top: Distances(top, pairs=[[0, 1]], n_atoms=30), "disagrees with the topology"),
    (lambda top: Contacts(top, pairs=[[4, 4]], r0=0.3), "different atoms"),
    (lambda top: Contacts(top, selection="heavy", r0=-0.3), "r0 must be a positive length"),
    (lambda top: Contacts(top, selection="heavy", r0=0.3, n=12, m=6), "m > n >= 1"),
    (lambda top: Dihedrals(top, "phi kappa"), "unknown dihedral name"),
    (lambda top: Dihedrals(top, "chi1"), "no chi1 dihedral"),
    (lambda top: Dihedrals(top, "omega"), "no omega dihedral"),
    (lambda top: Dihedrals(None, "phi"), "needs a topology"),
    (lambda top: Dihedrals(top, "phi", indices=[[0, 1, 2, 3]]), "either which= .* or indices="),
    (lambda top: Dihedrals(top, indices=[[0, 1, 2]]), r"shape \(k, 4\)"),
    (lambda top: Dihedrals(top, indices=[[0, 1, 2, 40]]), "atom index 40"),
    (lambda top: Dihedrals(top, indices=[[0, 1, 2, 3]], names=["a", "b"]), "2 names for 1 dihedrals"),
    (lambda top: AlignedPositions(np.zeros((5, 3)), selection="heavy"), "needs a topology"),
    (lambda top: AlignedPositions(np.eye(3), fit_atoms=[0, 1]), "at least 3 distinct atoms"),
    (lambda top: AlignedPositions(np.zeros((5, 2))), r"shape \(n_atoms, 3\)"),
    (lambda top: AlignedPositions(np.zeros((5, 3)), atoms=[7]), "atom index 7"),
])
def test_bad_construction(top, make, match):
    with pytest.raises(ValueError, match=match):
        make(top)


def test_bad_topology_type():
    with pytest.raises(TypeError, match="mdtraj Topology"):
        Distances(42, pairs=[[0, 1]])


@pytest.mark.parametrize("kind", KINDS)
def test_bad_positions(top, traj, pos, kind):
    f = all_featurizers(top, traj)[kind]
    with pytest.raises(ValueError, match="positions have 21 atoms but the featurizer was built for a 22-atom"):
        f(pos[:, :21])
    with pytest.raises(ValueError, match=r"must be \(\.\.\., n_atoms, 3\)"):
        f(pos[..., :2])
    with pytest.raises(ValueError, match="positions have 21 atoms"):
        f.transform(pos[:, :21].numpy())


def test_bad_positions_without_n_atoms():
    f = Distances(pairs=[[0, 9]])
    assert f(torch.zeros(2, 30, 3)).shape == (2, 1)  # any atom count holding atom 9 is fine
    with pytest.raises(ValueError, match="reads atom 9"):
        f(torch.zeros(2, 5, 3))
