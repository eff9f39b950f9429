"""How physical are generated structures: RMSD, bond lengths and angles, Ramachandran regions, energy."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["StructureReport", "structure_quality", "ramachandran_allowed", "openmm_energies"]

# Coarse allowed regions of the Ramachandran plot (degrees), from the general-case contours of
# Lovell et al., Proteins 50, 437 (2003), drawn generously: (phi_lo, phi_hi, psi_lo, psi_hi).
# The left half (beta, PPII, C7eq, alpha_R and the bridge; psi wraps past 180) minus the strained
# strip around psi = -135, and the alpha_L / C7ax region of phi > 0.
_ALLOWED_BOXES = (
    (-180.0, -45.0, -120.0, 180.0),
    (-180.0, -45.0, -180.0, -150.0),
    (30.0, 110.0, -100.0, 100.0),
)


def ramachandran_allowed(phi, psi):
    """Whether each (phi, psi) pair (radians) lies in a coarse allowed region of the Ramachandran plot.

    The regions are boxes around the beta/PPII, C7eq, alpha_R (with the bridge) and alpha_L/C7ax
    basins of Lovell et al. (2003), drawn generously: a structure outside them has a strained backbone.

    Examples
    --------
    >>> import numpy as np
    >>> ramachandran_allowed(np.radians([-80.0, -60.0, 60.0, 60.0]), np.radians([150.0, -45.0, 45.0, 180.0]))
    array([ True,  True,  True, False])
    """
    wrap = lambda a: (np.degrees(np.asarray(a)) + 180.0) % 360.0 - 180.0  # noqa: E731  [-180, 180)
    phi, psi = wrap(phi), wrap(psi)
    ok = np.zeros(np.broadcast(phi, psi).shape, dtype=bool)
    for p0, p1, s0, s1 in _ALLOWED_BOXES:
        ok |= (phi >= p0) & (phi <= p1) & (psi >= s0) & (psi <= s1)
    return ok


@dataclass
class StructureReport:
    """Per-structure quality of generated conformations (units: nm, radians, kJ/mol).

    Attributes
    ----------
    rmsd : ndarray or None
        RMSD (nm) of each structure to its reference frame after optimal superposition.
    bond_rms, bond_max : ndarray or None
        RMS and largest |length - equilibrium length| (nm) over the force field's bonds
        (harmonic bonds and constraints) of each structure.
    angle_rms, angle_max : ndarray or None
        Same for the harmonic angles (radians).
    rama_allowed : ndarray or None
        Fraction of each structure's (phi, psi) pairs in allowed regions (:func:`ramachandran_allowed`).
    energy : ndarray or None
        Potential energy (kJ/mol) from the OpenMM ``System``.

    Examples
    --------
    >>> import numpy as np
    >>> report = StructureReport(rmsd=np.array([0.01, 0.03, 0.02]), n_structures=3)
    >>> report.summary()
    {'n_structures': 3, 'median_rmsd': 0.02}
    """

    rmsd: np.ndarray = None
    bond_rms: np.ndarray = None
    bond_max: np.ndarray = None
    angle_rms: np.ndarray = None
    angle_max: np.ndarray = None
    rama_allowed: np.ndarray = None
    energy: np.ndarray = None
    n_structures: int = 0
    extra: dict = field(default_factory=dict)

    def summary(self):
        """Medians over the structures of every measured quantity (and the mean allowed fraction)."""
        out = {"n_structures": self.n_structures}
        for name in ("rmsd", "bond_rms", "bond_max", "angle_rms", "angle_max", "energy"):
            v = getattr(self, name)
            if v is not None:
                out[f"median_{name}"] = float(np.median(v))
        if self.rama_allowed is not None:
            out["rama_allowed"] = float(np.mean(self.rama_allowed))
        return out

    def __str__(self):
        return "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in self.summary().items())


def _system_terms(system):
    """(bond pairs, lengths nm), (angle triples, angles rad) of an OpenMM System's harmonic terms and constraints."""
    import openmm

    pairs, lengths, triples, angles = [], [], [], []
    for i in range(system.getNumConstraints()):
        a, b, d = system.getConstraintParameters(i)
        pairs.append((a, b))
        lengths.append(d.value_in_unit(openmm.unit.nanometer))
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for i in range(force.getNumBonds()):
                a, b, d, _ = force.getBondParameters(i)
                pairs.append((a, b))
                lengths.append(d.value_in_unit(openmm.unit.nanometer))
        elif isinstance(force, openmm.HarmonicAngleForce):
            for i in range(force.getNumAngles()):
                a, b, c, t, _ = force.getAngleParameters(i)
                triples.append((a, b, c))
                angles.append(t.value_in_unit(openmm.unit.radian))
    return (np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(lengths)), \
        (np.array(triples, dtype=np.int64).reshape(-1, 3), np.array(angles))


def openmm_energies(system, xyz, platform="Reference"):
    """Potential energy (kJ/mol) of each frame of ``xyz`` (n, atoms, 3) nm under an OpenMM ``System``.

    Examples
    --------
    >>> import mdtraj as md, openmm.app as app, cvlearn as cl
    >>> pdb = app.PDBFile(cl.data.alanine_dipeptide_pdb())
    >>> system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff)
    >>> e = openmm_energies(system, md.load(cl.data.alanine_dipeptide_pdb()).xyz)
    >>> e.shape
    (1,)
    """
    import openmm

    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (system.getNumParticles(), 3):
        raise ValueError(f"openmm_energies: positions must be (n, {system.getNumParticles()}, 3) nm for this "
                         f"System; got shape {xyz.shape}.")
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    out = np.empty(len(xyz))
    for k, x in enumerate(xyz):
        context.setPositions(x)
        out[k] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(
            openmm.unit.kilojoule_per_mole)
    return out


def structure_quality(structures, reference=None, system=None):
    """Measure how physical generated structures are.

    Parameters
    ----------
    structures : mdtraj.Trajectory
        Generated (decoded) structures, e.g. ``model.generate(model.transform(X_test), top)``.
    reference : mdtraj.Trajectory, optional
        The frames the structures should reproduce, one per structure (held-out frames whose
        reconstructions ``structures`` are): gives the RMSD.
    system : openmm.System, optional
        The force field: gives bond-length and angle deviations from its equilibrium values and
        the potential energy. The structures must then hold every atom of the system.

    Returns
    -------
    StructureReport
        The Ramachandran fraction is measured whenever the topology has phi/psi dihedrals.

    Examples
    --------
    >>> import mdtraj as md, cvlearn as cl
    >>> pdb = md.load(cl.data.alanine_dipeptide_pdb())
    >>> report = structure_quality(pdb, reference=pdb)
    >>> float(report.rmsd[0]) < 1e-3, float(report.rama_allowed[0])
    (True, 1.0)
    """
    import mdtraj

    if not isinstance(structures, mdtraj.Trajectory):
        raise TypeError(f"structure_quality: structures must be an mdtraj.Trajectory (e.g. from model.generate); "
                        f"got {type(structures).__name__}.")
    report = StructureReport(n_structures=structures.n_frames)
    if reference is not None:
        if reference.n_frames != structures.n_frames or reference.n_atoms != structures.n_atoms:
            raise ValueError(f"structure_quality: reference has {reference.n_frames} frames of {reference.n_atoms} "
                             f"atoms; expected one frame per structure ({structures.n_frames}) with the same "
                             f"{structures.n_atoms} atoms.")
        report.rmsd = np.array([mdtraj.rmsd(structures[i], reference, frame=i)[0]
                                for i in range(structures.n_frames)])
    phi_idx, phi = mdtraj.compute_phi(structures)
    psi_idx, psi = mdtraj.compute_psi(structures)
    # mdtraj lists phi from the second residue and psi up to the second to last: pair them by the
    # residue of their second atom (N for phi, CA for psi: the same residue).
    residue = lambda quads: [structures.topology.atom(int(q[1])).residue.index for q in quads]  # noqa: E731
    phi_res, psi_res = residue(phi_idx), residue(psi_idx)
    common = sorted(set(phi_res) & set(psi_res))
    if common:
        ip, iq = [phi_res.index(r) for r in common], [psi_res.index(r) for r in common]
        report.rama_allowed = ramachandran_allowed(phi[:, ip], psi[:, iq]).mean(1)
    if system is not None:
        if system.getNumParticles() != structures.n_atoms:
            raise ValueError(f"structure_quality: the System has {system.getNumParticles()} particles but the "
                             f"structures have {structures.n_atoms} atoms; bond, angle and energy checks need "
                             "structures of every atom (train on AlignedPositions of all atoms).")
        (pairs, lengths), (triples, angles) = _system_terms(system)
        xyz = structures.xyz.astype(np.float64)
        if len(pairs):
            dev = np.abs(np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1) - lengths)
            report.bond_rms, report.bond_max = np.sqrt((dev**2).mean(1)), dev.max(1)
        if len(triples):
            u = xyz[:, triples[:, 0]] - xyz[:, triples[:, 1]]
            v = xyz[:, triples[:, 2]] - xyz[:, triples[:, 1]]
            cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
            dev = np.abs(np.arccos(np.clip(cos, -1.0, 1.0)) - angles)
            report.angle_rms, report.angle_max = np.sqrt((dev**2).mean(1)), dev.max(1)
        report.energy = openmm_energies(system, xyz)
    return report
