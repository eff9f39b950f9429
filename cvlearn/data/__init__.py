"""Structures shipped with cvlearn (real coordinates, never invented).

``alanine-dipeptide.pdb``: ACE-ALA-NME, 22 atoms with hydrogens, copied unchanged from openmmtools
0.27.0 (``openmmtools/data/alanine-dipeptide-gbsa/alanine-dipeptide.pdb``, MIT license,
Copyright (c) 2012-2026 Chodera lab and contributors), so the tutorials need no extra package.
"""

from importlib import resources

__all__ = ["path", "alanine_dipeptide_pdb"]


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
    FileNotFoundError: cvlearn ships no data file 'water.pdb'; available: ['alanine-dipeptide.pdb'].
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
