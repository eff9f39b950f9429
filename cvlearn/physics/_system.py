"""Read the force-field terms of an OpenMM ``System`` into plain parameter tables (numpy, md units).

This module is the only place that talks to OpenMM's force classes; :mod:`._terms` evaluates the tables
in torch. OpenMM is imported on use, so ``import cvlearn`` does not import it.
"""

from dataclasses import dataclass, field

import numpy as np

from .._optional import require_openmm
from ..exceptions import CVLearnError

__all__ = ["UnsupportedForceError", "SUPPORTED_FORCES", "ForceTable", "read_system", "solute_atoms"]

#: OpenMM force classes that :class:`cvlearn.physics.ForceFieldEnergy` evaluates (CMMotionRemover has no energy).
SUPPORTED_FORCES = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce",
                    "CMMotionRemover")

#: Residue names read as solvent by :func:`solute_atoms`: water models and monatomic ions.
SOLVENT_RESIDUES = frozenset({
    "HOH", "WAT", "H2O", "SOL", "TIP3", "TIP3P", "TP3", "T3P", "TIP4", "TIP4P", "T4P", "TIP5", "T5P", "SPC", "SPCE",
    "OPC", "NA", "NA+", "Na+", "SOD", "CL", "CL-", "Cl-", "CLA", "K", "K+", "POT", "MG", "MG2", "CA2", "CAL", "ZN",
    "ZN2", "LI", "LI+", "Li+", "RB", "CS", "CS+", "F", "F-", "BR", "BR-", "I", "I-", "IOD",
})


class UnsupportedForceError(CVLearnError, ValueError):
    """An OpenMM ``System`` holds a force (or a force setting) that ForceFieldEnergy cannot evaluate.

    Raised for forces other than :data:`SUPPORTED_FORCES` (e.g. GBSAOBCForce, CMAPTorsionForce, any Custom*
    force), for periodic Systems and cutoff methods other than NoCutoff, for parameter offsets and for
    virtual sites. The message names the force and the way out (build the System without it, or pass
    ``ignore=[name]`` to ForceFieldEnergy to leave it out deliberately).

    Examples
    --------
    >>> import openmm
    >>> from cvlearn.physics import ForceFieldEnergy, UnsupportedForceError
    >>> system = openmm.System()
    >>> _ = system.addParticle(1.0)
    >>> _ = system.addForce(openmm.CustomExternalForce("x^2"))
    >>> try:
    ...     ForceFieldEnergy(system)
    ... except UnsupportedForceError as err:
    ...     print(str(err)[:72])
    The System holds a CustomExternalForce (named 'CustomExternalForce'), wh
    >>> ForceFieldEnergy(system, ignore=["CustomExternalForce"]).n_atoms
    1
    """


@dataclass
class ForceTable:
    """Parameters of one energy term, restricted to the selected atoms and renumbered (0 .. n_atoms - 1).

    Attributes
    ----------
    kind : str
        ``"bond"``, ``"angle"``, ``"torsion"`` or ``"nonbonded"``.
    name : str
        Key of the term in :meth:`ForceFieldEnergy.energies` (the OpenMM force's name, made unique).
    group : int or None
        The OpenMM force group of the force (None for the restored constraints).
    arrays : dict of str to numpy.ndarray
        Atom indices (int64) and parameters (float64, nm / rad / kJ/mol / e).
    """

    kind: str
    name: str
    group: int | None
    arrays: dict = field(default_factory=dict)


def _openmm():
    return require_openmm("cvlearn.physics")


def _md(q):
    """A float in OpenMM's md unit system (nm, kJ/mol, e, rad) from a Quantity or a plain number."""
    return q.value_in_unit_system(_openmm().unit.md_unit_system) if hasattr(q, "value_in_unit_system") else float(q)


def solute_atoms(topology):
    """Indices of the atoms that are not solvent (water or monatomic ions), in ascending order.

    Parameters
    ----------
    topology : openmm.app.Topology or mdtraj.Topology
        For example ``openmm.app.AmberPrmtopFile(path).topology`` of a solvated system.

    Returns
    -------
    numpy.ndarray of int64
        The atoms of every residue whose name is not in :data:`SOLVENT_RESIDUES` (``HOH``, ``WAT``, ``Na+``,
        ``Cl-``, ...): pass them as ``atoms=`` to :class:`ForceFieldEnergy` to strip the solvent.

    Examples
    --------
    >>> import openmm.app as app
    >>> import cvlearn as cl
    >>> from cvlearn.physics import solute_atoms
    >>> top = app.PDBFile(cl.data.alanine_dipeptide_pdb()).topology
    >>> solute_atoms(top).size  # no solvent in this file: all 22 atoms
    22
    """
    out = [atom.index for residue in topology.residues() for atom in residue.atoms()
           if residue.name.strip() not in SOLVENT_RESIDUES]
    return np.asarray(sorted(out), dtype=np.int64)


def _select(atoms, n_particles):
    """Checked, sorted atom indices and the old -> new index map (-1 for dropped atoms)."""
    if atoms is None:
        idx = np.arange(n_particles, dtype=np.int64)
    else:
        raw = np.asarray(atoms)
        if raw.ndim != 1 or raw.size == 0 or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"atoms must be a non-empty 1-D sequence of integer atom indices; got an array of shape "
                             f"{raw.shape} and dtype {raw.dtype}. Use e.g. cvlearn.physics.solute_atoms(topology).")
        idx = np.unique(raw.astype(np.int64))
        if idx.size != raw.size:
            raise ValueError("atoms contains repeated indices; pass each atom once.")
        if idx[0] < 0 or idx[-1] >= n_particles:
            raise ValueError(f"atoms must lie in [0, {n_particles}) for this System of {n_particles} particles; got "
                             f"indices from {idx[0]} to {idx[-1]}.")
    new = np.full(n_particles, -1, dtype=np.int64)
    new[idx] = np.arange(idx.size)
    return idx, new


def _renumber(old, new, what, name):
    """Keep the terms whose atoms are all selected; error for a term that is cut by the selection."""
    if old.size == 0:
        return np.zeros(old.shape, dtype=np.int64), np.zeros(0, dtype=bool)
    mapped = new[old]
    inside = (mapped >= 0).all(axis=1)
    cut = (mapped >= 0).any(axis=1) & ~inside
    if cut.any():
        t = int(np.flatnonzero(cut)[0])
        raise ValueError(f"The atom selection cuts through {int(cut.sum())} {what} of {name} (the first joins atoms "
                         f"{old[t].tolist()}, not all selected). Select whole molecules (e.g. solute_atoms(topology)).")
    return mapped[inside], inside


def _table(force, getter, count, n_idx):
    """(indices int64 (n, n_idx), parameter rows float64 (n, n_par)) of a bonded force, via a Python loop (setup)."""
    rows = [getattr(force, getter)(i) for i in range(getattr(force, count)())]
    if not rows:
        return np.zeros((0, n_idx), dtype=np.int64), np.zeros((0, 3), dtype=np.float64)
    idx = np.array([r[:n_idx] for r in rows], dtype=np.int64)
    par = np.array([[_md(v) for v in r[n_idx:]] for r in rows], dtype=np.float64)
    return idx, par


def _read_nonbonded(mm, force, name, new):
    if force.getNonbondedMethod() != mm.NonbondedForce.NoCutoff:
        raise UnsupportedForceError(
            f"{name} uses a cutoff method ({force.getNonbondedMethod()}, not NoCutoff); only NoCutoff (vacuum, all "
            "pairs) is supported so far. Build the System with nonbondedMethod=openmm.app.NoCutoff.")
    if force.getNumParticleParameterOffsets() or force.getNumExceptionParameterOffsets():
        raise UnsupportedForceError(f"{name} has parameter offsets (global-parameter-dependent charges or LJ "
                                    "parameters); they are not supported. Bake them into the particle parameters.")
    par = np.array([[_md(v) for v in force.getParticleParameters(i)] for i in range(force.getNumParticles())],
                   dtype=np.float64).reshape(-1, 3)
    exc_idx, exc_par = _table(force, "getExceptionParameters", "getNumExceptions", 2)
    keep = new >= 0
    # Exceptions with a dropped atom vanish with it; the rest are renumbered (pairs i < j).
    inside = (new[exc_idx] >= 0).all(axis=1) if exc_idx.size else np.zeros(0, dtype=bool)
    pairs = np.sort(new[exc_idx[inside]], axis=1) if exc_idx.size else np.zeros((0, 2), dtype=np.int64)
    exc_par = exc_par[inside]
    if pairs.size and (pairs[:, 0] == pairs[:, 1]).any():
        raise UnsupportedForceError(f"{name} has an exception of an atom with itself; fix the System.")
    active = (exc_par[:, 0] != 0.0) | (exc_par[:, 2] != 0.0)  # chargeProd or epsilon: a scaled (1-4) pair
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return {
        "charge": par[keep, 0], "sigma": par[keep, 1], "epsilon": par[keep, 2],
        "excluded": pairs[order],  # every exception pair replaces the normal interaction of that pair
        "pair14": pairs[active], "charge_prod14": exc_par[active, 0], "sigma14": exc_par[active, 1],
        "epsilon14": exc_par[active, 2],
    }


def read_system(system, atoms=None, *, constraints="harmonic", constraint_k=4.0e5, ignore=()):
    """Parameter tables of every energy term of ``system`` among ``atoms`` (see ForceFieldEnergy)."""
    mm = _openmm()
    if not isinstance(system, mm.System):
        raise TypeError(f"system must be an openmm.System; got {type(system).__name__}. Build one with "
                        "ForceField.createSystem or AmberPrmtopFile.createSystem.")
    if constraints not in ("harmonic", "ignore"):
        raise ValueError(f"constraints must be 'harmonic' or 'ignore'; got {constraints!r}.")
    if not constraint_k > 0:
        raise ValueError(f"constraint_k must be a positive force constant in kJ/mol/nm^2; got {constraint_k!r}.")
    ignore = {ignore} if isinstance(ignore, str) else set(ignore)
    n = system.getNumParticles()
    idx, new = _select(atoms, n)
    if system.usesPeriodicBoundaryConditions():
        raise UnsupportedForceError(
            "The System uses periodic boundary conditions; only non-periodic systems (NoCutoff, vacuum) are "
            "supported so far. Build it with nonbondedMethod=openmm.app.NoCutoff (and strip the solvent with atoms=).")
    virtual = [int(i) for i in idx if system.isVirtualSite(int(i))]
    if virtual:
        raise UnsupportedForceError(f"Atoms {virtual[:5]} are virtual sites (e.g. TIP4P's M), which are not "
                                    "supported; leave them out of atoms=.")
    forces = list(system.getForces())
    known = {f.getName() for f in forces} | {type(f).__name__ for f in forces}
    unknown = sorted(ignore - known)
    if unknown:
        raise ValueError(f"ignore names {unknown}, but the System has no such force; its forces are "
                         f"{sorted({f.getName() for f in forces})}.")
    tables, names, bonded_pairs = [], set(), set()

    def unique(name):
        out, k = name, 1
        while out in names:
            k += 1
            out = f"{name}_{k}"
        names.add(out)
        return out

    for force in forces:
        cls, fname = type(force).__name__, force.getName()
        if cls in ignore or fname in ignore or cls == "CMMotionRemover":
            continue
        if cls not in SUPPORTED_FORCES:
            raise UnsupportedForceError(
                f"The System holds a {cls} (named {fname!r}), which ForceFieldEnergy cannot evaluate. Supported: "
                f"{', '.join(SUPPORTED_FORCES)}. Build the System without it (e.g. implicitSolvent=None), or skip it "
                f"deliberately with ignore=[{fname!r}].")
        if cls != "NonbondedForce" and force.usesPeriodicBoundaryConditions():
            raise UnsupportedForceError(f"{fname} uses periodic boundary conditions, which are not supported.")
        name, group = unique(fname), force.getForceGroup()
        if cls == "HarmonicBondForce":
            old, par = _table(force, "getBondParameters", "getNumBonds", 2)
            i2, keep = _renumber(old, new, "bonds", fname)
            bonded_pairs.update(map(tuple, np.sort(i2, axis=1).tolist()))
            tables.append(ForceTable("bond", name, group, {"index": i2, "length": par[keep, 0], "k": par[keep, 1]}))
        elif cls == "HarmonicAngleForce":
            old, par = _table(force, "getAngleParameters", "getNumAngles", 3)
            i3, keep = _renumber(old, new, "angles", fname)
            tables.append(ForceTable("angle", name, group, {"index": i3, "angle": par[keep, 0], "k": par[keep, 1]}))
        elif cls == "PeriodicTorsionForce":
            old, par = _table(force, "getTorsionParameters", "getNumTorsions", 4)
            i4, keep = _renumber(old, new, "torsions", fname)
            tables.append(ForceTable("torsion", name, group, {"index": i4, "periodicity": par[keep, 0],
                                                              "phase": par[keep, 1], "k": par[keep, 2]}))
        elif cls == "NonbondedForce":
            tables.append(ForceTable("nonbonded", name, group, _read_nonbonded(mm, force, fname, new)))
    if constraints == "harmonic" and system.getNumConstraints():
        rows = [system.getConstraintParameters(i) for i in range(system.getNumConstraints())]
        old = np.array([r[:2] for r in rows], dtype=np.int64)
        i2, keep = _renumber(old, new, "constraints", "the System")
        length = np.array([_md(r[2]) for r in rows], dtype=np.float64)[keep]
        # A constrained pair that still has a bond term (flexibleConstraints=True) keeps only that term.
        fresh = np.array([tuple(p) not in bonded_pairs for p in np.sort(i2, axis=1).tolist()], dtype=bool)
        if fresh.any():
            tables.append(ForceTable("bond", unique("constraints"), None, {
                "index": i2[fresh], "length": length[fresh], "k": np.full(int(fresh.sum()), float(constraint_k))}))
    return idx, tables
