"""Decoding structures from autoencoder CVs: generate, latent paths, quality reports, seeded walkers,
physics-aware training."""

import warnings

import numpy as np
import pytest
import torch

import cvlearn as cl

md = pytest.importorskip("mdtraj")
openmm = pytest.importorskip("openmm")
from openmm import app, unit  # noqa: E402


@pytest.fixture(scope="module")
def alanine():
    """(system, topology, 300 frames of alanine dipeptide at 300 K, 0.1 ps apart, in C7eq)."""
    pdb = app.PDBFile(cl.data.alanine_dipeptide_pdb())
    system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                              constraints=app.HBonds)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    integrator.setRandomNumberSeed(3)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    integrator.step(2000)
    xyz = []
    for _ in range(300):
        integrator.step(50)
        xyz.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    top = md.load(cl.data.alanine_dipeptide_pdb()).topology
    return system, top, md.Trajectory(np.array(xyz), top)


@pytest.fixture(scope="module")
def model(alanine):
    """An autoencoder (2 latent dimensions) on the aligned positions of all 22 atoms."""
    _, _, traj = alanine
    feat = cl.features.AlignedPositions(traj[0])
    X = feat.transform(traj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        ae = cl.AutoEncoder(layers=[32], n_components=2, max_epochs=150, patience=150, seed=0).fit(X[:250])
    return ae, feat, X


def test_generate_reconstructs_held_out_frames(alanine, model, tmp_path):
    system, top, traj = alanine
    ae, feat, X = model
    gen = ae.generate(ae.transform(X[250:]), top)
    assert isinstance(gen, md.Trajectory) and gen.n_frames == 50 and gen.n_atoms == 22
    # The decoded coordinates are what decode() returns, reshaped per atom (nm).
    np.testing.assert_allclose(gen.xyz.reshape(50, -1), ae.decode(ae.transform(X[250:])), atol=1e-6)
    report = cl.generative.structure_quality(gen, reference=traj[250:], system=system)
    # Thermal fluctuations in C7eq are ~0.1 nm RMSD; a 2-D bottleneck keeps the backbone, so held-out
    # reconstructions sit well below that (measured 0.03-0.05 nm) but are not exact.
    assert 0.005 < np.median(report.rmsd) < 0.08
    gen.save_pdb(str(tmp_path / "gen.pdb"))
    assert md.load(str(tmp_path / "gen.pdb")).n_frames == 50


def test_generate_on_a_subset_of_atoms(alanine):
    _, top, traj = alanine
    heavy = cl.features.AlignedPositions(traj[0], selection="heavy")
    X = heavy.transform(traj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        ae = cl.AutoEncoder(layers=[16], n_components=1, max_epochs=20, seed=0).fit(X)
    gen = ae.generate([[0.0]], top, atoms=heavy.output_atoms.numpy())
    assert gen.n_atoms == 10 and all(a.element.symbol != "H" for a in gen.topology.atoms)
    with pytest.raises(ValueError, match=r"30 features \(10 atoms x 3\).*22 atoms.*atoms="):
        ae.generate([[0.0]], top)


def test_decode_rejects_bad_latent_points(model):
    ae, _, _ = model
    with pytest.raises(ValueError, match=r"shape \(n, 2\).*2 latent dimension"):
        ae.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ae.decode([np.nan, 0.0])
    assert ae.decode([0.1, 0.2]).shape == (1, 66)


def test_nan_decoded_structure_is_an_error(alanine):
    _, top, traj = alanine
    X = cl.features.AlignedPositions(traj[0]).transform(traj[:40])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        ae = cl.AutoEncoder(layers=[8], n_components=1, max_epochs=2, seed=0).fit(X)
    with torch.no_grad():
        ae.extra_[0][-1].bias[4] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite coordinates for point\(s\) \[0, 1\]"):
        ae.generate([[0.0], [1.0]], top)


def test_latent_path_is_straight_between_basin_means(alanine, model):
    _, top, _ = alanine
    ae, _, X = model
    a, b = X[:20], X[-20:]
    path = cl.latent_path(ae, a, b, n=7, topology=top)
    za, zb = ae.transform(a).mean(0), ae.transform(b).mean(0)
    np.testing.assert_allclose(path.z[0], za, atol=1e-6)
    np.testing.assert_allclose(path.z[-1], zb, atol=1e-6)
    np.testing.assert_allclose(path.z[3], (za + zb) / 2, atol=1e-6)
    np.testing.assert_allclose(path.features, ae.decode(path.z), atol=1e-12)
    assert path.structures.n_frames == 7 == len(path)
    lat = cl.latent_path(ae, [0.0, 0.0], [1.0, 2.0], n=3, latent=True)
    np.testing.assert_allclose(lat.z, [[0, 0], [0.5, 1], [1, 2]])
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        cl.latent_path(ae, a, b, n=1)
    with pytest.raises(ValueError, match="66"):
        cl.latent_path(ae, np.zeros(5), b)
    with pytest.raises(TypeError, match="decoder"):
        cl.latent_path(cl.PCA(n_components=1).fit(X), a, b)


def test_structure_quality_against_openmm_and_a_distorted_structure(alanine):
    system, _, traj = alanine
    frames = traj[:5]
    rep = cl.generative.structure_quality(frames, reference=frames, system=system)
    np.testing.assert_allclose(rep.rmsd, 0.0, atol=1e-3)
    # MD frames with HBond constraints: constrained bonds exact, others fluctuate ~0.003 nm at 300 K.
    assert rep.bond_rms.max() < 0.01 and rep.angle_rms.max() < 0.15
    assert np.all(rep.rama_allowed == 1.0)  # C7eq
    np.testing.assert_allclose(rep.energy, cl.generative.openmm_energies(system, frames.xyz), rtol=1e-12)
    # The energy is OpenMM's own for these positions.
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(frames.xyz[0].astype(np.float64))
    e0 = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert rep.energy[0] == pytest.approx(e0, rel=1e-9)
    # Stretch one C-C bond by 0.05 nm: the report sees it.
    bad = frames[:1]
    bad.xyz = bad.xyz.copy()
    bad.xyz[0, 4] += np.array([0.05, 0.0, 0.0], dtype=np.float32)
    worse = cl.generative.structure_quality(bad, system=system)
    assert worse.bond_max[0] > 0.03 and worse.energy[0] > rep.energy[0] + 100
    assert "median_energy" in worse.summary() and "rama_allowed" in str(worse)
    with pytest.raises(ValueError, match="22 particles.*10 atoms"):
        cl.generative.structure_quality(frames.atom_slice(range(10)), system=system)
    with pytest.raises(ValueError, match="one frame per structure"):
        cl.generative.structure_quality(frames, reference=frames[:2])
    with pytest.raises(TypeError, match="mdtraj.Trajectory"):
        cl.generative.structure_quality(frames.xyz)


def test_ramachandran_regions():
    deg = np.radians
    allowed = cl.generative.ramachandran_allowed
    # C7eq, C5/beta, alpha_R, alpha_L, C7ax (alanine dipeptide's minima) are allowed ...
    assert allowed(deg([-83, -150, -63, 60, 75]), deg([75, 155, -42, 45, -65])).all()
    # ... phi > 0 with psi ~ 180 and phi ~ 0 (steric clash of the backbone) are not.
    assert not allowed(deg([60, 0, 150, -90]), deg([180, 0, -100, -135])).any()
    # Angles wrap: 180 degrees is -180.
    assert allowed(deg(180.0), deg(180.0))


def test_physics_aware_training_uses_the_energy(alanine):
    """The energy term enters the loss (different weights, same seed) and is deterministic."""
    system, _, traj = alanine
    X = cl.features.AlignedPositions(traj[0]).transform(traj[:120])
    energy = cl.physics.ForceFieldEnergy(system)
    kw = dict(layers=[16], n_components=1, max_epochs=5, patience=5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.ConvergenceWarning)
        plain = cl.AutoEncoder(**kw).fit(X)
        phys1 = cl.AutoEncoder(energy=energy, n_interpolations=16, **kw).fit(X)
        phys2 = cl.AutoEncoder(energy=energy, n_interpolations=16, **kw).fit(X)
    assert plain.history_["train"][-1] != phys1.history_["train"][-1]
    assert phys1.history_["train"] == phys2.history_["train"]
    with pytest.raises(ValueError, match="energy_cap"):
        cl.AutoEncoder(energy=energy, energy_cap=-1.0, **kw).fit(X)
    with pytest.raises(TypeError, match="ForceFieldEnergy"):
        cl.AutoEncoder(energy=3.0, **kw).fit(X)


def test_energy_cap_is_logarithmic():
    """Energies above the cap enter as cap (1 + ln(E / cap)); below it unchanged."""

    class Fixed(torch.nn.Module):
        def __init__(self, values):
            super().__init__()
            self.values = torch.tensor(values, dtype=torch.float64)

        def forward(self, x):
            return self.values[: len(x)] + 0.0 * x.sum((1, 2))

    ae = cl.AutoEncoder(energy=Fixed([50.0, 1e5]), energy_cap=100.0, n_interpolations=2, layers=[4], n_components=1)
    ae._check_params("AutoEncoder")
    cv, extra = ae._new_modules(6, np.zeros(6), np.ones(6), torch.float32, torch.device("cpu"))
    batch = cl.learners._training.Batch(torch.zeros(4, 6), torch.arange(4), None, torch.ones(4))
    e = ae._interpolation_energy(cv, extra[0], batch)
    assert float(e.detach()) == pytest.approx((50.0 + 100.0 * (1 + np.log(1e3))) / 2, rel=1e-6)


def test_seed_walkers_relaxes_decoded_structures(alanine, model):
    system, top, _ = alanine
    ae, feat, X = model
    z = ae.transform(X[:2]) + np.array([[0.5, 0.0], [0.0, 0.5]])
    seeds = cl.seed_walkers(ae, z, top, system, featurizer=feat, minimize_iterations=100, relax_steps=50, seed=1)
    assert len(seeds) == 2 and seeds.positions[0].shape == (22, 3)
    # Decoded structures carry strained bonds and angles; minimization and 0.1 ps at 300 K relax them.
    assert np.all(seeds.energy_relaxed < seeds.energy_decoded)
    assert seeds.latent_relaxed.shape == (2, 2)
    # The relaxed structures run in the OpenMM engine.
    engine = cl.engine.OpenMM(system, seeds.positions[1], topology=top, seed=0)
    assert engine.run(100, stride=50).positions.shape[0] == 2
    with pytest.raises(ValueError, match="2 latent dimension"):
        cl.seed_walkers(ae, [[0.0]], top, system)


def test_latent_plots(model, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from cvlearn import plot

    ae, _, X = model
    z = ae.transform(X)
    path = cl.latent_path(ae, X[:20], X[-20:], n=5)
    fig = plot.latent_space(z, color=z[:, 0], paths=[path], labels=["path"], color_label="z1")
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(np.column_stack(line.get_data()), path.z)
    fig.savefig(tmp_path / "latent.png")
    one_d = plot.latent_space(z[:, :1], paths=[path.z[:, :1]])
    assert one_d.axes[0].get_xlabel() == "frame"
    with pytest.raises(ValueError, match=r"\(n, 1\) or \(n, 2\)"):
        plot.latent_space(np.zeros((4, 3)))
    fig = plot.path_energy([np.arange(5.0), np.ones(5)], labels=["a", "b"], reference=0.0)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), np.arange(5.0))
    assert "kJ/mol" in fig.axes[0].get_ylabel()
