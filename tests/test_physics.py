"""cvlearn.physics.ForceFieldEnergy against OpenMM's Reference platform, force group by force group.

Tolerances: energies 1e-6 relative and forces 1e-5 relative (|F - F_ref| / |F_ref| over all atoms), both in
float64. The two codes sum the same terms in different orders, so the expected differences are round-off,
~1e-13. A wrong sign, a missed or double-counted pair (one 1-4 pair of alanine is ~1e-2 of its nonbonded
energy) or a wrong functional form exceed them by orders of magnitude; the Coulomb constant, whose last
digits are a 1e-8 effect, is checked exactly by its own test.
"""

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.openmm
mm = pytest.importorskip("openmm")
app = pytest.importorskip("openmm.app")

import cvlearn as cl  # noqa: E402
from cvlearn.physics import ONE_4PI_EPS0, ForceFieldEnergy, UnsupportedForceError, solute_atoms  # noqa: E402

DATA = Path(__file__).parent / "data" / "openmmtools"
E_TOL, F_TOL = 1e-6, 1e-5


def _unzip(tmp_dir, rel):
    """Decompress tests/data/openmmtools/<rel>.gz (OpenMM's readers take file names) and return the path."""
    out = tmp_dir / Path(rel).name
    if not out.exists():
        with gzip.open(DATA / f"{rel}.gz", "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return str(out)


def _reference(system, frames):
    """OpenMM Reference energies (n_frames,) and forces (n_frames, N, 3) per force group, one force per group."""
    system = mm.XmlSerializer.clone(system)
    names = {}
    for g, force in enumerate(system.getForces()):
        force.setForceGroup(g)
        names[g] = force.getName()
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    out = {}
    for frame in frames:
        ctx.setPositions(frame)
        for g, name in names.items():
            st = ctx.getState(getEnergy=True, getForces=True, groups={g})
            e, f = out.setdefault(name, ([], []))
            e.append(st.getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole))
            f.append(st.getForces(asNumpy=True).value_in_unit(mm.unit.kilojoule_per_mole / mm.unit.nanometer))
    return {k: (np.array(e), np.array(f)) for k, (e, f) in out.items()}


def _compare(energy, system, frames, skip=("CMMotionRemover",)):
    """Max relative energy error and force error per term against OpenMM; asserts the tolerances."""
    ref = _reference(system, frames)
    x = torch.tensor(np.asarray(frames), dtype=torch.float64, requires_grad=True)
    ours = energy.energies(x)
    errors = {}
    for name, (e_ref, f_ref) in ref.items():
        if name in skip:
            continue
        e = ours[name]
        f = -torch.autograd.grad(e.sum(), x)[0].numpy()
        e = e.detach().numpy()
        e_err = float(np.max(np.abs(e - e_ref) / np.abs(e_ref)))
        f_err = float(np.linalg.norm(f - f_ref) / np.linalg.norm(f_ref))
        errors[name] = (e_err, f_err)
        assert e_err < E_TOL, f"{name}: energy {e} vs OpenMM {e_ref} (relative error {e_err:.2e})"
        assert f_err < F_TOL, f"{name}: force relative error {f_err:.2e}"
    assert set(ours) - set(ref) <= {"constraints"}, f"terms OpenMM does not have: {set(ours) - set(ref)}"
    return errors


def _alanine_system(constraints):
    pdb = app.PDBFile(cl.data.alanine_dipeptide_pdb())
    ff = app.ForceField("amber99sbildn.xml")
    return pdb, ff.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=constraints)


def _langevin_frames(system, positions, n_frames, stride, timestep, seed=1):
    """Frames (n_frames, N, 3) nm of a Langevin run at 300 K (Reference platform, fixed seed)."""
    integrator = mm.LangevinMiddleIntegrator(300.0, 1.0, timestep)
    integrator.setRandomNumberSeed(seed)
    ctx = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(positions)
    ctx.setVelocitiesToTemperature(300.0, seed)
    frames = []
    for _ in range(n_frames):
        integrator.step(stride)
        frames.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(mm.unit.nanometer))
    return np.array(frames)


@pytest.fixture(scope="module", params=[None, "HBonds"], ids=["flexible", "hbonds"])
def alanine(request):
    constraints = getattr(app, request.param) if request.param else None
    pdb, system = _alanine_system(constraints)
    dt = 0.002 if constraints else 0.001
    frames = _langevin_frames(system, pdb.positions, n_frames=4, stride=100, timestep=dt)
    return request.param, system, frames


@pytest.fixture(scope="module")
def t4(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("t4")
    prmtop = app.AmberPrmtopFile(_unzip(tmp, "T4-lysozyme-L99A-implicit/receptor.prmtop"))
    frames = [app.AmberInpcrdFile(_unzip(tmp, f"T4-lysozyme-L99A-implicit/{name}.crd")).getPositions(asNumpy=True)
              for name in ("receptor", "receptor-minimized")]
    return prmtop, np.array([f.value_in_unit(mm.unit.nanometer) for f in frames])


SOLVATED = {
    # name: (prmtop, crd, number of solute atoms, solute residues)
    "alanine-dipeptide": ("alanine-dipeptide-explicit/alanine-dipeptide", 22, 3),  # ff96, 749 TIP3P
    "trpzip2": ("trpzip2-explicit/trpzip2", 218, 12),  # 12 residues, 1 Cl-, 3605 TIP3P (prmtop converted, README)
}


@pytest.fixture(scope="module", params=list(SOLVATED))
def solvated(request, tmp_path_factory):
    """A peptide in a box of water read from an Amber prmtop, built in vacuum (NoCutoff), HBonds constraints."""
    stem, n_solute, n_res = SOLVATED[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    prmtop = app.AmberPrmtopFile(_unzip(tmp, stem + ".prmtop"))
    crd = app.AmberInpcrdFile(_unzip(tmp, stem + ".crd"))
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds, rigidWater=True)
    positions = crd.getPositions(asNumpy=True).value_in_unit(mm.unit.nanometer)
    return prmtop, system, positions, n_solute, n_res


def test_coulomb_constant_is_openmms():
    # Two +1 e charges 1 nm apart: OpenMM's Reference energy is ONE_4PI_EPS0 itself.
    system = mm.System()
    nb = mm.NonbondedForce()
    for _ in range(2):
        system.addParticle(1.0)
        nb.addParticle(1.0, 0.3, 0.0)
    system.addForce(nb)
    ref = _reference(system, [np.array([[0.0, 0, 0], [1.0, 0, 0]])])["NonbondedForce"][0][0]
    assert ONE_4PI_EPS0 == pytest.approx(ref, rel=1e-14)
    x = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64)
    assert ForceFieldEnergy(system)(x).item() == pytest.approx(ref, rel=1e-14)


def test_alanine_matches_openmm(alanine):
    constraints, system, frames = alanine
    energy = ForceFieldEnergy(system, constraints="ignore")
    errors = _compare(energy, system, frames)
    assert set(errors) == {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"}
    # The total is the System's potential energy.
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(frames[0])
    total = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole)
    assert energy(torch.tensor(frames[:1])).item() == pytest.approx(total, rel=1e-10)


def test_restored_constraints(alanine):
    constraints, system, frames = alanine
    energy = ForceFieldEnergy(system)
    if constraints is None:
        assert "constraints" not in energy.groups
        return
    # HBonds: the 12 X-H bonds come back with the constrained length (= the flexible System's bond length).
    _, flexible = _alanine_system(None)
    bond = next(f for f in flexible.getForces() if isinstance(f, mm.HarmonicBondForce))
    r0 = {tuple(sorted(bond.getBondParameters(i)[:2])): bond.getBondParameters(i)[2].value_in_unit(mm.unit.nanometer)
          for i in range(bond.getNumBonds())}
    restored = energy.parameters_of("constraints")
    idx, length = restored["index"], restored["length"]
    np.testing.assert_array_equal(restored["k"], 4.0e5)
    assert len(idx) == system.getNumConstraints() == 12
    np.testing.assert_allclose(length, [r0[tuple(sorted(p))] for p in idx.tolist()], rtol=1e-12)
    # On constrained frames (SHAKE tolerance 1e-5 relative: |r - d| < ~1.1e-6 nm) 12 terms of 2e5 * dr^2
    # add up to at most ~3e-6 kJ/mol.
    terms = energy.energies(torch.tensor(frames))
    assert terms["constraints"].max().item() < 1e-5
    # A stretched X-H bond costs constraint_k/2 dr^2: 0.01 nm on the first one -> 20 kJ/mol.
    moved = frames[:1].copy()
    i, j = idx[0]
    u = (moved[0, j] - moved[0, i]) / np.linalg.norm(moved[0, j] - moved[0, i])
    moved[0, j] += 0.01 * u
    stretched = energy.energies(torch.tensor(moved))["constraints"].item()
    assert stretched == pytest.approx(0.5 * 4.0e5 * 0.01 ** 2, rel=1e-3)


def test_split_nonbonded(alanine):
    # Coulomb alone against OpenMM with every epsilon zeroed (particles and exceptions): energies and forces.
    # Differentiating one split term alone takes the backward path that recomputes LJ and Coulomb gradients.
    _, system, frames = alanine
    coulomb_only = mm.XmlSerializer.clone(system)
    nb = next(f for f in coulomb_only.getForces() if isinstance(f, mm.NonbondedForce))
    for i in range(nb.getNumParticles()):
        q, sigma, _ = nb.getParticleParameters(i)
        nb.setParticleParameters(i, q, sigma, 0.0)
    for k in range(nb.getNumExceptions()):
        i, j, qq, sigma, _ = nb.getExceptionParameters(k)
        nb.setExceptionParameters(k, i, j, qq, sigma, 0.0)
    e_ref, f_ref = _reference(coulomb_only, frames)["NonbondedForce"]
    energy = ForceFieldEnergy(system)
    x = torch.tensor(frames, requires_grad=True)
    terms = energy.energies(x, split_nonbonded=True)
    coulomb = terms["NonbondedForce:coulomb"]
    f = -torch.autograd.grad(coulomb.sum(), x)[0].numpy()
    np.testing.assert_allclose(coulomb.detach().numpy(), e_ref, rtol=E_TOL)
    assert np.linalg.norm(f - f_ref) < F_TOL * np.linalg.norm(f_ref)
    total = energy.energies(x)["NonbondedForce"]
    torch.testing.assert_close(terms["NonbondedForce:lennard_jones"] + coulomb, total, rtol=1e-13, atol=1e-10)


def test_float32_and_chunking(alanine):
    _, system, frames = alanine
    x = torch.tensor(frames)
    ref = ForceFieldEnergy(system)(x)
    # Tiny blocks: one row and one frame per block; same numbers up to float64 round-off.
    small = ForceFieldEnergy(system, pair_chunk=5)(x)
    torch.testing.assert_close(small, ref, rtol=1e-12, atol=1e-9)
    # An openmm Quantity is converted at the boundary (here from angstrom); numpy arrays are taken as nm.
    in_angstrom = mm.unit.Quantity(frames * 10.0, mm.unit.angstrom)
    torch.testing.assert_close(ForceFieldEnergy(system)(in_angstrom), ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(ForceFieldEnergy(system)(frames), ref, rtol=0, atol=0)
    # float32: terms of |E| ~ 10^2 kJ/mol, each ~1e-7 relative -> a few 1e-4 kJ/mol at most.
    e32 = ForceFieldEnergy(system)(x.float())
    assert e32.dtype == torch.float32
    torch.testing.assert_close(e32.double(), ref, rtol=0, atol=5e-3)


def test_t4_lysozyme_matches_openmm(t4):
    prmtop, frames = t4
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, implicitSolvent=None, constraints=None)
    energy = ForceFieldEnergy(system)
    assert energy.n_atoms == 2603
    errors = _compare(energy, system, frames)
    assert len(errors) == 4


def test_solvent_stripped(solvated):
    prmtop, system, positions, n_solute, n_res = solvated
    atoms = solute_atoms(prmtop.topology)
    np.testing.assert_array_equal(atoms, np.arange(n_solute))  # the peptide comes first in both files
    every = list(prmtop.topology.atoms())
    assert len({every[i].residue.index for i in atoms}) == n_res
    energy = ForceFieldEnergy(system, atoms=atoms)
    assert energy.n_atoms == n_solute
    # The solute's X-H constraints come back as harmonic terms; the rigid waters' ones went with the waters.
    solute_constraints = sum(system.getConstraintParameters(i)[0] < n_solute for i in range(system.getNumConstraints()))
    assert len(energy.parameters_of("constraints")["index"]) == solute_constraints > 0
    # Independent reference: OpenMM on the whole box with the solvent made inert (no charge, no LJ; the rigid
    # waters and the ion have no bonded terms).
    inert = mm.XmlSerializer.clone(system)
    nb = next(f for f in inert.getForces() if isinstance(f, mm.NonbondedForce))
    for i in range(n_solute, inert.getNumParticles()):
        nb.setParticleParameters(i, 0.0, 0.1, 0.0)
    frames = positions[None]
    ref = _reference(inert, frames)
    solute = torch.tensor(frames[:, :n_solute], requires_grad=True)
    terms = energy.energies(solute)
    assert set(terms) == {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce",
                          "constraints"}
    for name, e in terms.items():
        if name == "constraints":
            continue
        e_ref, f_ref = ref[name]
        assert abs(e.item() - e_ref[0]) < E_TOL * abs(e_ref[0]), (name, e.item(), e_ref[0])
        f = -torch.autograd.grad(e.sum(), solute)[0].numpy()
        assert np.linalg.norm(f - f_ref[:, :n_solute]) < F_TOL * np.linalg.norm(f_ref[:, :n_solute]), name
        assert np.abs(f_ref[:, n_solute:]).max() == 0.0  # the solvent feels nothing: the reference is what we think
    # Whole-box positions are accepted too: the solute is taken from them.
    torch.testing.assert_close(energy(torch.tensor(frames)), energy(solute.detach()), rtol=0, atol=0)


def _random_system(n=9, seed=0):
    """Random parameters on every supported term, incl. torsion phases and Coulomb-only exceptions."""
    rng = np.random.default_rng(seed)
    system = mm.System()
    for _ in range(n):
        system.addParticle(12.0)
    bonds, angles, torsions = mm.HarmonicBondForce(), mm.HarmonicAngleForce(), mm.PeriodicTorsionForce()
    nb = mm.NonbondedForce()
    for _ in range(n):
        nb.addParticle(rng.normal(0, 0.5), rng.uniform(0.2, 0.35), rng.uniform(0.1, 1.0))
    for i in range(n - 1):
        bonds.addBond(i, i + 1, rng.uniform(0.1, 0.15), rng.uniform(1e5, 3e5))
        nb.addException(i, i + 1, 0.0, 0.1, 0.0)
    for i in range(n - 2):
        angles.addAngle(i, i + 1, i + 2, rng.uniform(1.8, 2.1), rng.uniform(300, 600))
        nb.addException(i, i + 2, rng.normal(0, 0.2), 0.3, 0.0)  # Coulomb-only exception
    for i in range(n - 3):
        for period in (1, 2, 3):
            torsions.addTorsion(i, i + 1, i + 2, i + 3, period, rng.uniform(-np.pi, np.pi), rng.uniform(0.5, 5))
        nb.addException(i, i + 3, rng.normal(0, 0.2), rng.uniform(0.2, 0.3), rng.uniform(0.1, 0.5))
    for force in (bonds, angles, torsions, nb):
        system.addForce(force)
    # A zig-zag chain with random dihedrals, all pairs > 0.1 nm apart.
    x = np.zeros((n, 3))
    for i in range(1, n):
        x[i] = x[i - 1] + 0.15 * np.array([1.0, (-1) ** i * 0.8, 0.0]) / np.sqrt(1.64) + rng.normal(0, 0.03, 3)
    return system, x


def test_random_parameters_match_openmm():
    system, x = _random_system()
    rng = np.random.default_rng(1)
    frames = x[None] + rng.normal(0, 0.01, (3, *x.shape))
    errors = _compare(ForceFieldEnergy(system), system, frames)
    assert len(errors) == 4


def test_duplicate_force_names_and_groups():
    # Two forces of one class keep separate terms (the second name made unique) and report their groups.
    system, x = _random_system()
    extra = mm.HarmonicBondForce()
    extra.addBond(0, 8, 0.5, 1000.0)
    extra.setForceGroup(5)
    system.addForce(extra)
    energy = ForceFieldEnergy(system)
    assert energy.groups == {"HarmonicBondForce": 0, "HarmonicAngleForce": 0, "PeriodicTorsionForce": 0,
                             "NonbondedForce": 0, "HarmonicBondForce_2": 5}
    r = np.linalg.norm(x[8] - x[0])
    e = energy.energies(torch.tensor(x[None]))["HarmonicBondForce_2"].item()
    assert e == pytest.approx(0.5 * 1000.0 * (r - 0.5) ** 2, rel=1e-12)
    # ignore= by class leaves out every force of the class; by name, that force only.
    by_class = ForceFieldEnergy(system, ignore=["HarmonicBondForce"])
    assert "HarmonicBondForce" not in by_class.groups and "HarmonicBondForce_2" not in by_class.groups
    extra.setName("restraint")
    assert set(ForceFieldEnergy(system).groups) >= {"HarmonicBondForce", "restraint"}
    assert set(ForceFieldEnergy(system, ignore=["restraint"]).groups) == {
        "HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"}


def test_second_derivatives():
    # create_graph=True recomputes the pair gradient differentiably: Hessian-vector products are right.
    system, x = _random_system(n=6)
    energy = ForceFieldEnergy(system)
    pos = torch.tensor(x[None], requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda p: energy(p), (pos,), atol=1e-5, rtol=1e-4)


def test_bad_input(alanine):
    _, system, frames = alanine
    energy = ForceFieldEnergy(system)
    with pytest.raises(ValueError, match=r"positions have 21 atoms but this ForceFieldEnergy has 22"):
        energy(torch.zeros(1, 21, 3, dtype=torch.float64))
    bad = torch.tensor(frames)
    bad[2, 5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite .*frame 2, atom 5"):
        energy(bad)
    with pytest.raises(ValueError, match=r"shape \(n_frames, n_atoms, 3\).*got \(22, 3\).*positions\[None\]"):
        energy(torch.tensor(frames[0]))
    for dtype in (torch.int64, torch.float16):
        with pytest.raises(TypeError, match=f"float32 or float64 \\(nm\\); got {dtype}"):
            energy(torch.zeros(1, 22, 3, dtype=dtype))
    with pytest.raises(ValueError, match=r"atoms must lie in \[0, 22\).*from 0 to 22"):
        ForceFieldEnergy(system, atoms=np.arange(23))
    with pytest.raises(ValueError, match="repeated indices"):
        ForceFieldEnergy(system, atoms=[0, 0, 1])
    with pytest.raises(ValueError, match="integer atom indices"):
        ForceFieldEnergy(system, atoms=np.ones(22, dtype=bool))
    with pytest.raises(ValueError, match="cuts through .* bonds of HarmonicBondForce"):
        ForceFieldEnergy(system, atoms=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"No term named 'Bonds'; the terms are \['HarmonicBondForce'"):
        energy.parameters_of("Bonds")
    with pytest.raises(ValueError, match="constraints must be 'harmonic' or 'ignore'"):
        ForceFieldEnergy(system, constraints="drop")
    with pytest.raises(ValueError, match=r"ignore names \['GBSAOBCForce'\], but the System has no such force"):
        ForceFieldEnergy(system, ignore=["GBSAOBCForce"])


@pytest.mark.parametrize("solvated", ["alanine-dipeptide"], indirect=True)
def test_unsupported_forces(solvated):
    _, system = _alanine_system(None)
    extra = mm.XmlSerializer.clone(system)
    torsion = mm.CustomTorsionForce("k*theta^2")
    torsion.addPerTorsionParameter("k")
    torsion.addTorsion(4, 6, 8, 14, [1.0])
    extra.addForce(torsion)
    with pytest.raises(UnsupportedForceError, match=r"CustomTorsionForce \(named 'CustomTorsionForce'\).*Supported: "
                                                    r"HarmonicBondForce.*ignore=\['CustomTorsionForce'\]"):
        ForceFieldEnergy(extra)
    x = torch.tensor(app.PDBFile(cl.data.alanine_dipeptide_pdb()).getPositions(asNumpy=True)._value)[None]
    torch.testing.assert_close(ForceFieldEnergy(extra, ignore=["CustomTorsionForce"])(x), ForceFieldEnergy(system)(x),
                               rtol=0, atol=0)
    prmtop = solvated[0]
    with pytest.raises(UnsupportedForceError, match="periodic boundary conditions.*NoCutoff"):
        ForceFieldEnergy(prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9))
    cutoff = prmtop.createSystem(nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=0.9)
    with pytest.raises(UnsupportedForceError, match="cutoff method.*only NoCutoff"):
        ForceFieldEnergy(cutoff, atoms=np.arange(22))
    pdb = app.PDBFile(cl.data.alanine_dipeptide_pdb())
    gb = app.ForceField("amber99sbildn.xml", "implicit/obc2.xml").createSystem(pdb.topology)
    with pytest.raises(UnsupportedForceError, match="(GBSAOBCForce|CustomGBForce).*implicitSolvent=None"):
        ForceFieldEnergy(gb)


def test_import_is_lazy():
    code = "import sys, cvlearn.physics; assert 'openmm' not in sys.modules, 'openmm imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
