"""Internal coordinates of molecules as featurizers: dihedral angles, distances, contacts.

Positions are taken as given (no periodic images): pass whole molecules, as OpenMM's positions and
unwrapped trajectories are. Values equal mdtraj's ``compute_dihedrals``/``compute_distances``
with ``periodic=False``.
"""

import itertools

import numpy as np
import torch

from .. import hooks
from ._molecular_steps import DihedralsStep, DistancesStep
from ._topology import AtomFeaturizer, as_topology, check_atom_indices, resolve_n_atoms, select_atoms

__all__ = ["Dihedrals", "Distances", "Contacts"]

_DIHEDRAL_KINDS = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4", "chi5")


def _residue_labels(top):
    # resSeq reads like the PDB file; with repeated numbers (several chains) fall back to 0-based indices.
    seqs = [r.resSeq for r in top.residues]
    if len(set(seqs)) == len(seqs):
        return {r.index: str(r.resSeq) for r in top.residues}
    return {r.index: f"r{r.index}" for r in top.residues}


def _topology_dihedrals(top, which, owner):
    from mdtraj.geometry import dihedral

    kinds = which.replace(",", " ").split() if isinstance(which, str) else list(which)
    unknown = [k for k in kinds if k not in _DIHEDRAL_KINDS]
    if unknown or not kinds:
        raise ValueError(f"{owner}: unknown dihedral name(s) {unknown or which!r}; choose from "
                         f"{' '.join(_DIHEDRAL_KINDS)} (e.g. which='phi psi'), or pass indices= for others.")
    labels = _residue_labels(top)
    quads, names = [], []
    for kind in kinds:
        found = getattr(dihedral, f"indices_{kind}")(top)
        if len(found) == 0:
            raise ValueError(f"{owner}: the topology has no {kind} dihedral (mdtraj finds none: e.g. chi1 needs "
                             "a residue with a CB and a gamma atom, so glycine and alanine have none; omega "
                             "needs CA atoms on both sides, so ACE/NME caps have none). Drop "
                             f"{kind!r} from which=, or pass indices= for the atoms you mean.")
        for quad in found:
            quads.append([int(i) for i in quad])
            # The second atom's residue names the angle: phi_i, psi_i, omega_i (IUPAC) and chi_i all agree.
            names.append(f"{kind}_{labels[top.atom(int(quad[1])).residue.index]}")
    return quads, names


def _dihedral_angles(positions: torch.Tensor, quads: torch.Tensor) -> torch.Tensor:
    """Dihedral angles (radians, in (-pi, pi]) of atom quadruplets, mdtraj's sign convention.

    atan2 of two smooth functions, so the gradient is finite wherever the angle is defined (no acos).
    """
    p0 = positions.index_select(-2, quads[:, 0])
    p1 = positions.index_select(-2, quads[:, 1])
    p2 = positions.index_select(-2, quads[:, 2])
    p3 = positions.index_select(-2, quads[:, 3])
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    c1 = torch.linalg.cross(b2, b3)
    c2 = torch.linalg.cross(b1, b2)
    y = (b1 * c1).sum(-1) * torch.linalg.vector_norm(b2, dim=-1)
    x = (c1 * c2).sum(-1)
    return torch.atan2(y, x)


def _pair_distances(positions: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Distances (nm) between the atoms of each pair (k, 2)."""
    d = positions.index_select(-2, pairs[:, 1]) - positions.index_select(-2, pairs[:, 0])
    return torch.linalg.vector_norm(d, dim=-1)


class Dihedrals(AtomFeaturizer):
    """Dihedral angles (radians, in (-pi, pi]), optionally as (sin, cos) pairs.

    Parameters
    ----------
    top : mdtraj.Topology, mdtraj.Trajectory, str or None
        The system (or a structure file); needed for ``which``, optional with ``indices``.
    which : str or list of str, optional
        Backbone and side-chain angles found by mdtraj: any of ``phi psi omega chi1 chi2 chi3 chi4
        chi5``. Default ``"phi psi"`` when ``indices`` is not given. Features come kind by kind, in
        the order given, then residue by residue.
    sincos : bool
        Output (sin, cos) of each angle instead of the angle: continuous across the +-pi seam, which
        suits learners (the angle itself jumps by 2 pi there).
    indices : array-like of int, shape (k, 4), optional
        Explicit atom quadruplets (0-based) instead of ``which``.
    names : list of str, optional
        One name per angle (default ``dih_a_b_c_d`` for ``indices``).
    n_atoms : int, optional
        Atom count of the system when ``top`` is None (checked in ``forward``).

    Notes
    -----
    Angles from ``which`` are named ``{kind}_{resSeq}`` with the residue number of the PDB file,
    e.g. ``phi_2``/``psi_2`` for the alanine of ACE-ALA-NME; if residue numbers repeat (several
    chains) the 0-based residue index is used instead (``phi_r12``). A residue owns the angle through
    the angle's second atom: phi_i = C(i-1) N(i) CA(i) C(i), psi_i = N(i) CA(i) C(i) N(i+1),
    omega_i = CA(i) C(i) N(i+1) CA(i+1). With ``sincos`` the names are ``sin_phi_2``, ``cos_phi_2``.

    Examples
    --------
    >>> import mdtraj as md, cvlearn.data
    >>> from cvlearn.features import Dihedrals
    >>> top = md.load_topology(cvlearn.data.alanine_dipeptide_pdb())
    >>> Dihedrals(top, "phi psi", sincos=True).feature_names()
    ['sin_phi_2', 'cos_phi_2', 'sin_psi_2', 'cos_psi_2']
    """

    def __init__(self, top=None, which=None, sincos=False, indices=None, names=None, n_atoms=None):
        super().__init__()
        top = as_topology(top, "Dihedrals")
        n_atoms = resolve_n_atoms(top, n_atoms, "Dihedrals")
        if indices is not None:
            if which is not None:
                raise ValueError("Dihedrals: give either which= (angles found in the topology) or indices= "
                                 "(explicit atom quadruplets), not both.")
            quads = check_atom_indices(indices, 4, n_atoms, "Dihedrals", "indices")
            default_names = [f"dih_{a}_{b}_{c}_{d}" for a, b, c, d in quads.tolist()]
        else:
            if top is None:
                raise ValueError("Dihedrals: which= needs a topology (top=); pass one, or give explicit atom "
                                 "quadruplets with indices=.")
            quad_list, default_names = _topology_dihedrals(top, "phi psi" if which is None else which, "Dihedrals")
            quads = np.asarray(quad_list, dtype=np.int64)
        if names is None:
            names = default_names
        names = [str(n) for n in names]
        if len(names) != len(quads):
            raise ValueError(f"Dihedrals: got {len(names)} names for {len(quads)} dihedrals; give one name each.")
        self.angle_names = names
        self.sincos = bool(sincos)
        self.register_buffer("indices", torch.from_numpy(quads))
        self._init_atoms(quads.ravel(), n_atoms)

    @property
    def n_features(self):
        return len(self.angle_names) * (2 if self.sincos else 1)

    @torch.jit.unused
    def feature_names(self):
        if self.sincos:
            return [f"{f}_{n}" for n in self.angle_names for f in ("sin", "cos")]
        return list(self.angle_names)

    @torch.jit.unused
    def config(self):
        """Constructor arguments as plain JSON data (atom indices, not the topology)."""
        return {"type": "Dihedrals", "indices": self.indices.tolist(), "names": list(self.angle_names),
                "sincos": self.sincos, "n_atoms": self.n_atoms}

    def forward(self, positions):
        self._check_positions(positions, "Dihedrals")
        angles = _dihedral_angles(positions, self.indices)
        if self.sincos:
            return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(start_dim=-2)
        return angles


def _resolve_pairs(top, pairs, selection, n_atoms, owner):
    if (pairs is None) == (selection is None):
        raise ValueError(f"{owner}: give exactly one of pairs= (atom index pairs, shape (k, 2)) or selection= "
                         "(an mdtraj selection string: all pairs of its atoms, e.g. 'heavy').")
    if pairs is not None:
        return check_atom_indices(pairs, 2, n_atoms, owner, "pairs")
    atoms = select_atoms(top, selection, owner)
    if len(atoms) < 2:
        raise ValueError(f"{owner}: selection={selection!r} matches a single atom ({atoms[0]}); a pair needs two.")
    return np.asarray(list(itertools.combinations(atoms, 2)), dtype=np.int64)


class Distances(AtomFeaturizer):
    """Distances (nm) between pairs of atoms.

    Parameters
    ----------
    top : mdtraj.Topology, mdtraj.Trajectory, str or None
        The system; needed for ``selection``, optional with ``pairs``.
    pairs : array-like of int, shape (k, 2), optional
        Atom index pairs (0-based).
    selection : str, optional
        mdtraj selection string (``"heavy"`` = ``"not element H"``): every pair of its atoms, in
        index order (i < j); e.g. 45 heavy-atom pairs for alanine dipeptide.
    n_atoms : int, optional
        Atom count of the system when ``top`` is None (checked in ``forward``).

    Features are named ``d_i_j``.

    Examples
    --------
    >>> import torch
    >>> from cvlearn.features import Distances
    >>> Distances(pairs=[[0, 1]])(torch.tensor([[0.0, 0, 0], [0.3, 0.4, 0]])).tolist()
    [0.5]
    """

    def __init__(self, top=None, pairs=None, selection=None, n_atoms=None):
        super().__init__()
        top = as_topology(top, "Distances")
        n_atoms = resolve_n_atoms(top, n_atoms, "Distances")
        pairs = _resolve_pairs(top, pairs, selection, n_atoms, "Distances")
        self.register_buffer("pairs", torch.from_numpy(pairs))
        self._init_atoms(pairs.ravel(), n_atoms)

    @property
    def n_features(self):
        return len(self.pairs)

    @torch.jit.unused
    def feature_names(self):
        return [f"d_{a}_{b}" for a, b in self.pairs.tolist()]

    @torch.jit.unused
    def config(self):
        """Constructor arguments as plain JSON data (atom indices, not the topology)."""
        return {"type": "Distances", "pairs": self.pairs.tolist(), "n_atoms": self.n_atoms}

    def forward(self, positions):
        self._check_positions(positions, "Distances")
        return _pair_distances(positions, self.pairs)


def _geometric_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """1 + x + ... + x^(k-1), by Horner's rule."""
    s = torch.ones_like(x)
    for _ in range(k - 1):
        s = s * x + 1
    return s


def _rational_switch(x: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """PLUMED's RATIONAL switching function (1 - x^n) / (1 - x^m) of x = (r - d0) / r0 >= 0.

    Both sides are divided by (1 - x): the ratio of geometric sums has no singularity at x = 1
    (value n/m there, finite gradient) and above 1 it is rewritten in y = 1/x so that large
    distances neither overflow nor give inf/inf. Both branches are finite everywhere, so
    ``torch.where`` passes finite gradients.
    """
    near = x <= 1.0
    xs = torch.where(near, x, torch.ones_like(x))
    y = 1.0 / torch.where(near, torch.ones_like(x), x)
    inner = _geometric_sum(xs, n) / _geometric_sum(xs, m)
    outer = y.pow(m - n) * _geometric_sum(y, n) / _geometric_sum(y, m)
    return torch.where(near, inner, outer)


class Contacts(AtomFeaturizer):
    """Contacts between atom pairs: PLUMED's rational switching function of their distances.

    s(r) = (1 - ((r - d0) / r0)^n) / (1 - ((r - d0) / r0)^m) for r > d0, and 1 for r <= d0: about 1
    for pairs in contact, decaying to 0 beyond d0 + r0 (s = n/m at r = d0 + r0, where the formula's
    0/0 is removed analytically, so values and gradients stay finite). With ``total=True`` the
    output is their sum, a coordination number (PLUMED's COORDINATION).

    Parameters
    ----------
    top, pairs, selection, n_atoms
        Which atom pairs, as in :class:`Distances`.
    r0 : float
        Switching length (nm), e.g. 0.5 for heavy-atom contacts.
    d0 : float
        Offset (nm): distances below d0 count as full contacts.
    n, m : int
        Exponents, integers with m > n >= 1 (PLUMED's NN, MM; defaults 6, 12).
    total : bool
        Return one feature, the sum over pairs (``coordination``), instead of one per pair
        (``c_i_j``).

    Examples
    --------
    >>> import torch
    >>> from cvlearn.features import Contacts
    >>> c = Contacts(pairs=[[0, 1]], r0=0.5)                                     # r0 in nm
    >>> round(c(torch.tensor([[0.0, 0, 0], [0.5, 0, 0]])).item(), 6)
    0.5
    """

    def __init__(self, top=None, pairs=None, selection=None, *, r0, d0=0.0, n=6, m=12, total=False, n_atoms=None):
        super().__init__()
        top = as_topology(top, "Contacts")
        n_atoms = resolve_n_atoms(top, n_atoms, "Contacts")
        pairs = _resolve_pairs(top, pairs, selection, n_atoms, "Contacts")
        if not (np.isfinite(r0) and r0 > 0) or not (np.isfinite(d0) and d0 >= 0):
            raise ValueError(f"Contacts: r0 must be a positive length and d0 a non-negative length (nm); "
                             f"got r0={r0}, d0={d0}.")
        if int(n) != n or int(m) != m or not 1 <= n < m:
            raise ValueError(f"Contacts: n and m must be integers with m > n >= 1 (so that s decays to 0 at "
                             f"large distance), e.g. n=6, m=12; got n={n}, m={m}.")
        self.r0, self.d0, self.n, self.m = float(r0), float(d0), int(n), int(m)
        self.total = bool(total)
        self.register_buffer("pairs", torch.from_numpy(pairs))
        self._init_atoms(pairs.ravel(), n_atoms)

    @property
    def n_features(self):
        return 1 if self.total else len(self.pairs)

    @torch.jit.unused
    def feature_names(self):
        return ["coordination"] if self.total else [f"c_{a}_{b}" for a, b in self.pairs.tolist()]

    @torch.jit.unused
    def config(self):
        """Constructor arguments as plain JSON data (atom indices, not the topology)."""
        return {"type": "Contacts", "pairs": self.pairs.tolist(), "r0": self.r0, "d0": self.d0, "n": self.n,
                "m": self.m, "total": self.total, "n_atoms": self.n_atoms}

    def forward(self, positions):
        self._check_positions(positions, "Contacts")
        x = torch.clamp(_pair_distances(positions, self.pairs) - self.d0, min=0.0) / self.r0
        s = _rational_switch(x, self.n, self.m)
        return s.sum(-1, keepdim=True) if self.total else s


# -- hooks (cvlearn.hooks): lean numpy steps, PLUMED actions, saving, periodicity ----------------------------
@hooks.lean_steps.register(Distances)
def _distances_lean(m, rows):
    return [DistancesStep(m.pairs.numpy(), m._expected_atoms, m._min_atoms, rows)]


@hooks.lean_steps.register(Dihedrals)
def _dihedrals_lean(m, rows):
    return [DihedralsStep(m.indices.numpy(), m.sincos, m._expected_atoms, m._min_atoms, rows)]


hooks.autograd_only(Contacts, "the switching function has no numpy step yet")


@hooks.plumed_lines.register(Distances)
def _distances_plumed(m, used):
    lines, args = [], []
    for (i, j), name in zip(m.pairs.tolist(), m.feature_names()):
        label = hooks.plumed_label(name, used)
        lines.append(f"{label}: DISTANCE ATOMS={hooks.plumed_atoms(i, j)} NOPBC")
        args.append(label)
    return lines, args


@hooks.plumed_lines.register(Dihedrals)
def _dihedrals_plumed(m, used):
    lines, args = [], []
    for quad, name in zip(m.indices.tolist(), m.angle_names):
        label = hooks.plumed_label(name, used)
        lines.append(f"{label}: TORSION ATOMS={hooks.plumed_atoms(*quad)} NOPBC")
        if m.sincos:
            for fn in ("sin", "cos"):
                trig = hooks.plumed_label(f"{fn}_{name}", used)
                lines.append(f"{trig}: CUSTOM ARG={label} FUNC={fn}(x) PERIODIC=NO")
                args.append(trig)
        else:
            args.append(label)
    return lines, args


@hooks.plumed_lines.register(Contacts)
def _contacts_plumed(m, used):
    switch = f"SWITCH={{RATIONAL R_0={m.r0!r} D_0={m.d0!r} NN={m.n} MM={m.m}}}"
    lines, pair_labels = [], []
    for i, j in m.pairs.tolist():
        label = hooks.plumed_label(f"c_{i}_{j}", used)
        lines.append(f"{label}: COORDINATION GROUPA={hooks.plumed_atoms(i)} GROUPB={hooks.plumed_atoms(j)} {switch} "
                     "NOPBC")
        pair_labels.append(label)
    if not m.total:
        return lines, pair_labels
    label = hooks.plumed_label("coordination", used)
    lines.append(f"{label}: COMBINE ARG={','.join(pair_labels)} PERIODIC=NO")
    return lines, [label]


hooks.register_config(Dihedrals, Dihedrals.config, Dihedrals)
hooks.register_config(Distances, Distances.config, Distances)
hooks.register_config(Contacts, Contacts.config, Contacts)
hooks.periodicity.register(Dihedrals)(lambda m: not m.sincos)  # angles on (-pi, pi]; sin and cos are open
hooks.periodicity.register(Distances)(hooks.not_periodic)
hooks.periodicity.register(Contacts)(hooks.not_periodic)
