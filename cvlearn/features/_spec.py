"""Featurizers from short text specifications, as typed on the command line."""

from ._aligned import AlignedPositions
from ._base import Concatenate
from ._molecular import Contacts, Dihedrals, Distances
from ._topology import as_topology

__all__ = ["from_spec"]

_HELP = ("Feature specifications: 'distances:<selection>' (all pairs, e.g. distances:heavy or "
         "'distances:name CA'), 'dihedrals:<names>' (e.g. dihedrals:phi,psi), 'sincos:<names>' (the same as "
         "sin/cos pairs), 'contacts:<selection>:<r0 nm>' (e.g. contacts:heavy:0.5), "
         "'positions:<selection>' (Cartesian after alignment to the topology's structure).")


def from_spec(spec, top):
    """A featurizer from one or more specifications (a string, ``+``-separated, or a list of strings).

    Specifications: ``"distances:heavy"`` (nm), ``"dihedrals:phi,psi"`` (radians),
    ``"sincos:phi,psi+distances:element O"``, ``"contacts:heavy:0.5"`` (switching length r0 in nm),
    ``"positions:backbone"`` (nm, after alignment).

    Parameters
    ----------
    spec : str or list of str
    top : mdtraj.Topology, mdtraj.Trajectory or path
        ``positions:`` needs coordinates, so a structure file or a Trajectory.

    Returns
    -------
    Featurizer
        One featurizer, or a :class:`Concatenate` of several.

    Raises
    ------
    ValueError
        An unknown kind or a malformed specification (the message lists the valid ones).

    Examples
    --------
    >>> import cvlearn as cl
    >>> pdb = cl.data.alanine_dipeptide_pdb()
    >>> feat = cl.features.from_spec("sincos:phi,psi+distances:element O", pdb)   # 2 oxygens: 1 distance
    >>> feat.n_features, feat.feature_names()[:2]
    (5, ['sin_phi_2', 'cos_phi_2'])
    >>> cl.features.from_spec("contacts:heavy:0.5", pdb).n_features     # pairs of the 10 heavy atoms
    45
    """
    parts = spec if isinstance(spec, (list, tuple)) else str(spec).split("+")
    feats = [_one(p.strip(), top) for p in parts if p.strip()]
    if not feats:
        raise ValueError(f"No feature specification given. {_HELP}")
    return feats[0] if len(feats) == 1 else Concatenate(feats)


def _one(spec, top):
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("dihedrals", "sincos"):
        which = " ".join(arg.replace(",", " ").split()) or "phi psi"
        return Dihedrals(as_topology(top, "from_spec"), which, sincos=kind == "sincos")
    if kind == "distances":
        return Distances(as_topology(top, "from_spec"), selection=arg or "heavy")
    if kind == "contacts":
        selection, _, r0 = arg.rpartition(":")
        try:
            r0 = float(r0)
        except ValueError:
            raise ValueError(f"contacts needs a switching length: 'contacts:<selection>:<r0 nm>', e.g. "
                             f"contacts:heavy:0.5; got {spec!r}.") from None
        return Contacts(as_topology(top, "from_spec"), selection=selection or "heavy", r0=r0)
    if kind == "positions":
        import mdtraj

        if isinstance(top, str) or hasattr(top, "__fspath__"):
            top = mdtraj.load(str(top))
        if not hasattr(top, "xyz"):
            raise ValueError("positions:<selection> aligns to a reference structure: pass a structure file or "
                             "an mdtraj Trajectory as the topology, not a bare Topology.")
        return AlignedPositions(top[0], selection=arg or "heavy")
    raise ValueError(f"Unknown feature kind {kind!r} in {spec!r}. {_HELP}")
