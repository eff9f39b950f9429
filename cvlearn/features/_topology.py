"""Atom selection and index checks shared by the molecular featurizers, and their common base class.

mdtraj is imported only when a topology is actually used, so ``import cvlearn`` stays light.
"""

import numpy as np
import torch

from ._base import Featurizer

__all__ = ["AtomFeaturizer", "as_topology", "select_atoms", "check_atom_indices", "resolve_n_atoms"]

# Shortcuts accepted wherever an mdtraj selection string is (mdtraj has no keyword for them).
_SELECTION_SHORTCUTS = {"heavy": "not element H"}


def as_topology(top, owner):
    """An ``mdtraj.Topology`` from a Topology, a Trajectory or a structure file path (or None).

    ``owner`` names the caller in the TypeError raised for anything else.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.features.as_topology(cl.data.alanine_dipeptide_pdb(), "example").n_atoms
    22
    """
    if top is None:
        return None
    if hasattr(top, "topology"):  # mdtraj.Trajectory
        return top.topology
    if hasattr(top, "select") and hasattr(top, "n_atoms"):  # mdtraj.Topology
        return top
    if isinstance(top, str) or hasattr(top, "__fspath__"):
        import mdtraj

        return mdtraj.load_topology(str(top))
    raise TypeError(f"{owner}: top must be an mdtraj Topology, an mdtraj Trajectory or the path of a structure "
                    f"file (.pdb, .gro, ...); got {type(top).__name__}.")


def select_atoms(top, selection, owner, what="selection"):
    """Sorted atom indices matching an mdtraj selection string (``"heavy"`` = ``"not element H"``)."""
    if top is None:
        raise ValueError(f"{owner}: {what}={selection!r} needs a topology; pass top= (an mdtraj Topology, "
                         "Trajectory or structure file) or give atom indices instead.")
    if not isinstance(selection, str):
        raise TypeError(f"{owner}: {what} must be an mdtraj selection string such as 'heavy' or 'name CA'; "
                        f"got {type(selection).__name__}.")
    query = _SELECTION_SHORTCUTS.get(selection.strip(), selection)
    try:
        atoms = top.select(query)
    except Exception as exc:  # mdtraj raises several types for bad syntax
        raise ValueError(f"{owner}: {what}={selection!r} is not a valid mdtraj selection ({exc}). See "
                         "https://mdtraj.org/1.9.4/atom_selection.html, e.g. 'heavy', 'name CA', "
                         "'resname ALA and not element H'.") from None
    if len(atoms) == 0:
        raise ValueError(f"{owner}: {what}={selection!r} matches no atom of the {top.n_atoms}-atom topology; "
                         "check atom and residue names (e.g. [str(a) for a in top.atoms]).")
    return [int(i) for i in atoms]


def resolve_n_atoms(top, n_atoms, owner):
    """The total atom count: from the topology, else ``n_atoms`` (may be None: not known)."""
    if top is not None:
        if n_atoms is not None and int(n_atoms) != top.n_atoms:
            raise ValueError(f"{owner}: n_atoms={n_atoms} disagrees with the topology's {top.n_atoms} atoms; "
                             "leave n_atoms out when you pass a topology.")
        return int(top.n_atoms)
    if n_atoms is None:
        return None
    if int(n_atoms) < 1:
        raise ValueError(f"{owner}: n_atoms must be a positive int; got {n_atoms}.")
    return int(n_atoms)


def check_atom_indices(indices, width, n_atoms, owner, name):
    """``indices`` as an int array (k, width) (or (k,) for width None), every entry in [0, n_atoms)."""
    shape = "(k,)" if width is None else f"(k, {width})"
    try:
        arr = np.asarray(indices)
    except ValueError:  # numpy refuses ragged nested lists
        raise ValueError(f"{owner}: {name} must be an array of atom indices of shape {shape}; got rows of "
                         "different lengths.") from None
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{owner}: {name} must hold integer atom indices; got dtype {arr.dtype}.")
    if arr.size == 0 or arr.ndim != (1 if width is None else 2) or (width is not None and arr.shape[1] != width):
        raise ValueError(f"{owner}: {name} must be a non-empty array of atom indices of shape {shape}; "
                         f"got shape {arr.shape}.")
    if arr.min() < 0:
        raise ValueError(f"{owner}: {name} has a negative atom index ({int(arr.min())}); indices are 0-based.")
    if n_atoms is not None and arr.max() >= n_atoms:
        raise ValueError(f"{owner}: {name} has atom index {int(arr.max())} but the system has {n_atoms} atoms "
                         f"(valid indices 0..{n_atoms - 1}; indices are 0-based, not PDB serial numbers).")
    if width is not None:
        repeated = [row.tolist() for row in arr if len(set(row.tolist())) < width]
        if repeated:
            raise ValueError(f"{owner}: each row of {name} must name {width} different atoms; "
                             f"got {repeated[:3]}{' ...' if len(repeated) > 3 else ''}.")
    return arr.astype(np.int64)


class AtomFeaturizer(Featurizer):
    """Base of featurizers reading atoms of a molecular system: positions (..., n_atoms, 3) in nm.

    Attributes
    ----------
    atoms : torch.LongTensor
        Sorted unique indices of the atoms the featurizer reads (e.g. to hand a TorchForce or PLUMED
        only those atoms).
    n_atoms : int or None
        Atom count that ``forward`` expects (from the topology); None when built from indices
        alone without ``n_atoms``, then any count that contains every atom read is accepted.
    """

    __jit_ignored_attributes__ = ["n_atoms"]

    def _init_atoms(self, used, n_atoms):
        used = np.unique(np.asarray(used, dtype=np.int64))
        self.n_atoms = n_atoms
        # Plain ints for the TorchScript-side check (-1: count not known).
        self._expected_atoms = -1 if n_atoms is None else int(n_atoms)
        self._min_atoms = int(used.max()) + 1
        self.register_buffer("atoms", torch.from_numpy(used))

    def _check_positions(self, positions: torch.Tensor, owner: str):
        if positions.dim() < 2 or positions.shape[-1] != 3:
            raise ValueError(f"{owner}: positions must be (..., n_atoms, 3) in nm; got shape {positions.shape}.")
        n = positions.shape[-2]
        if self._expected_atoms >= 0 and n != self._expected_atoms:
            raise ValueError(f"{owner}: positions have {n} atoms but the featurizer was built for a "
                             f"{self._expected_atoms}-atom system; pass every atom of that system, in "
                             "topology order (shape (..., n_atoms, 3)).")
        if n < self._min_atoms:
            raise ValueError(f"{owner}: positions have {n} atoms but the featurizer reads atom "
                             f"{self._min_atoms - 1}; pass every atom of the system (shape (..., n_atoms, 3)).")
