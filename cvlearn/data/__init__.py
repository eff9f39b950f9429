"""Structures shipped with cvlearn (real coordinates, never invented).

``alanine-dipeptide.pdb``: ACE-ALA-NME, 22 atoms with hydrogens, copied unchanged from openmmtools
0.27.0 (``openmmtools/data/alanine-dipeptide-gbsa/alanine-dipeptide.pdb``, MIT license,
Copyright (c) 2012-2026 Chodera lab and contributors), so the tutorials need no extra package.

``alanine_reference.json``: the converged reference free energy of that molecule, written by
``benchmarks/alanine_reference.py`` (see :func:`alanine_reference`).
"""

import json
from importlib import resources

__all__ = ["path", "alanine_dipeptide_pdb", "alanine_reference", "alanine_solvent"]

_SOLVENTS = {("amber99sbildn.xml",): "vacuum", ("amber99sbildn.xml", "amber99_obc.xml"): "obc"}


def path(name):
    """Absolute path (str) of a data file shipped with cvlearn.

    Parameters
    ----------
    name : str
        File name, e.g. ``"alanine-dipeptide.pdb"``.

    Raises
    ------
    FileNotFoundError
        No such file; the message lists the available ones.

    Examples
    --------
    >>> import os, cvlearn as cl
    >>> os.path.basename(cl.data.path("alanine-dipeptide.pdb"))
    'alanine-dipeptide.pdb'
    >>> cl.data.path("water.pdb")
    Traceback (most recent call last):
        ...
    FileNotFoundError: cvlearn ships no data file 'water.pdb'; available: ['alanine-dipeptide.pdb', \
'alanine_reference.json'].
    """
    p = resources.files(__name__).joinpath(name)
    if not p.is_file():
        available = sorted(f.name for f in resources.files(__name__).iterdir() if not f.name.startswith("_"))
        raise FileNotFoundError(f"cvlearn ships no data file {name!r}; available: {available}.")
    return str(p)


def alanine_dipeptide_pdb():
    """Path of the alanine dipeptide (ACE-ALA-NME, vacuum) structure, 22 atoms.

    Coordinates in the PDB file are in Angstrom, as the format requires; mdtraj and OpenMM read
    them as nm.

    Examples
    --------
    >>> import mdtraj as md, cvlearn as cl
    >>> traj = md.load(cl.data.alanine_dipeptide_pdb())
    >>> traj.n_atoms, [r.name for r in traj.topology.residues]
    (22, ['ACE', 'ALA', 'NME'])
    """
    return path("alanine-dipeptide.pdb")


def alanine_reference(solvent="vacuum"):
    """The converged reference Delta F = F(phi > 0) - F(phi < 0) of the shipped alanine dipeptide.

    Made by ``benchmarks/alanine_reference.py``: independent 20 ns runs of OpenMM's own well-tempered
    Metadynamics on (phi, psi), amber99sb-ildn, no cutoff, bonds to hydrogen constrained, 300 K, 2 fs,
    Langevin 1/ps; mean +- standard error over the runs. Every tutorial, test and doc that quotes a
    reference for this molecule uses this one.

    Parameters
    ----------
    solvent : {"vacuum", "obc"}
        Vacuum (``amber99sbildn.xml``) or implicit solvent (``amber99sbildn.xml`` + ``amber99_obc.xml``).

    Returns
    -------
    dict
        ``delta_f_kj_mol``, ``sem_kj_mol``, ``runs``, ``ns_per_run``, ``finals_kj_mol``, ``method``,
        ``system``, ``basins``.

    Examples
    --------
    >>> import cvlearn as cl
    >>> ref = cl.data.alanine_reference()
    >>> ref["runs"] >= 4 and ref["ns_per_run"] >= 20 and ref["sem_kj_mol"] <= 0.3
    True
    """
    table = json.loads(resources.files(__name__).joinpath("alanine_reference.json").read_text())
    if solvent not in table:
        raise ValueError(f"No alanine dipeptide reference for solvent {solvent!r}; available: {sorted(table)}.")
    return table[solvent]


def alanine_solvent(forcefield):
    """"vacuum" or "obc" when ``forcefield`` (OpenMM XML names) is one the reference was made with, else None.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.data.alanine_solvent(["amber99sbildn.xml", "amber99_obc.xml"]), cl.data.alanine_solvent("amber14-all.xml")
    ('obc', None)
    """
    files = (forcefield,) if isinstance(forcefield, str) else tuple(forcefield)
    return _SOLVENTS.get(files)
