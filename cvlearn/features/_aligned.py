"""Cartesian positions after optimal rigid alignment onto a reference structure."""

import numpy as np
import torch

from .. import hooks
from ._topology import AtomFeaturizer, check_atom_indices, select_atoms

__all__ = ["AlignedPositions"]


def _optimal_rotation(h: torch.Tensor) -> torch.Tensor:
    """Rotation R (..., 3, 3) maximizing sum_i y_i . R x_i, from h = sum_i x_i y_i^T (..., 3, 3).

    Horn's quaternion method: R comes from the eigenvector of the largest eigenvalue of a symmetric
    4x4 matrix, so it is always a proper rotation (no reflection case, unlike Kabsch's SVD with its
    det sign flip). Only that eigenvector is used, so the gradient's other terms are exact zeros and
    near-degenerate singular values of h do not amplify rounding errors as SVD's backward does
    (it divides by every difference of singular values). Exactly tied eigenvalues (fit atoms in a
    perfectly symmetric arrangement, e.g. a square) still give NaN gradients (0/0 inside eigh).
    """
    sxx, sxy, sxz = h[..., 0, 0], h[..., 0, 1], h[..., 0, 2]
    syx, syy, syz = h[..., 1, 0], h[..., 1, 1], h[..., 1, 2]
    szx, szy, szz = h[..., 2, 0], h[..., 2, 1], h[..., 2, 2]
    k = torch.stack([
        torch.stack([sxx + syy + szz, syz - szy, szx - sxz, sxy - syx], dim=-1),
        torch.stack([syz - szy, sxx - syy - szz, sxy + syx, szx + sxz], dim=-1),
        torch.stack([szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy], dim=-1),
        torch.stack([sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz], dim=-1),
    ], dim=-2)
    q = torch.linalg.eigh(k)[1][..., -1]  # eigenvalues ascend: the last is the largest
    a, b, c, d = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return torch.stack([
        torch.stack([a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)], dim=-1),
        torch.stack([2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)], dim=-1),
        torch.stack([2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d], dim=-1),
    ], dim=-2)


def _pick(top, atoms, selection, n_atoms, default, what):
    if atoms is not None and selection is not None:
        raise ValueError(f"AlignedPositions: give either {what}atoms= (indices) or {what}selection= (an mdtraj "
                         "selection string), not both.")
    if selection is not None:
        return np.asarray(select_atoms(top, selection, "AlignedPositions", f"{what}selection"), dtype=np.int64)
    if atoms is None:
        return default
    return check_atom_indices(atoms, None, n_atoms, "AlignedPositions", f"{what}atoms")


class AlignedPositions(AtomFeaturizer):
    """Cartesian coordinates (nm) of atoms after the optimal rigid-body fit onto a reference.

    Each frame is translated and rotated (never reflected) to minimize the RMSD of its fit atoms
    to the reference's, exactly as ``mdtraj.Trajectory.superpose(reference, atom_indices=fit)``
    does; the output is the aligned coordinates of ``atoms``, flattened (x, y, z per atom). This
    removes overall translation and rotation from Cartesian features, and stays differentiable.

    Parameters
    ----------
    reference : mdtraj.Trajectory or array-like, shape (n_atoms, 3)
        The reference structure, nm (frame 0 of a Trajectory; pass ``traj[i]`` for another).
        With ``n_atoms`` given, it may hold only the fit atoms' rows (shape (len(fit_atoms), 3)),
        the compact form :meth:`config` stores (rows in increasing atom index).
    atoms, selection : array-like of int or str, optional
        Atoms whose aligned positions are output (indices, or an mdtraj selection string such as
        ``"heavy"``, which needs a Trajectory reference). Default: all atoms.
    fit_atoms, fit_selection : array-like of int or str, optional
        Atoms that define the fit (at least 3). Default: the output atoms.
    n_atoms : int, optional
        Atom count of the system, for a reference array that holds only the fit atoms.

    Features are named ``x{i}``, ``y{i}``, ``z{i}`` for atom i, like :class:`Positions`.

    Notes
    -----
    The gradient is finite as long as the best rotation is unique (fit atoms not collinear) and the
    fit atoms are not in an exactly symmetric arrangement (real frames never are); see
    ``_optimal_rotation``.

    Examples
    --------
    >>> import torch
    >>> from cvlearn.features import AlignedPositions
    >>> ref = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])                  # nm
    >>> moved = ref @ torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]) + 2.0
    >>> AlignedPositions(ref)(moved).reshape(3, 3).allclose(ref, atol=1e-6)
    True
    """

    def __init__(self, reference, atoms=None, selection=None, fit_atoms=None, fit_selection=None, n_atoms=None):
        super().__init__()
        top = getattr(reference, "topology", None)
        coords = np.asarray(reference.xyz[0] if hasattr(reference, "xyz") else reference, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] != 3 or not np.isfinite(coords).all():
            raise ValueError(f"AlignedPositions: reference must be an mdtraj Trajectory or finite coordinates of "
                             f"shape (n_atoms, 3) in nm; got shape {coords.shape}.")
        if n_atoms is None:
            n_atoms = len(coords)
        elif top is not None and int(n_atoms) != top.n_atoms:
            raise ValueError(f"AlignedPositions: n_atoms={n_atoms} disagrees with the reference's {top.n_atoms} "
                             "atoms; leave n_atoms out with a Trajectory reference.")
        n_atoms = int(n_atoms)
        out = _pick(top, atoms, selection, n_atoms, np.arange(n_atoms), "")
        # The fit is a set of atoms: sorted, so that reference rows line up with it unambiguously.
        fit = np.unique(_pick(top, fit_atoms, fit_selection, n_atoms, out, "fit_"))
        if len(fit) < 3:
            raise ValueError(f"AlignedPositions: the fit needs at least 3 distinct atoms (a rotation is not "
                             f"defined by fewer); got {fit.tolist()}.")
        if len(coords) == n_atoms:
            coords = coords[fit]
        elif len(coords) != len(fit):
            raise ValueError(f"AlignedPositions: reference has {len(coords)} rows; expected one per atom "
                             f"({n_atoms}) or, with n_atoms given, one per fit atom ({len(fit)}).")
        self.register_buffer("reference", torch.from_numpy(coords.copy()))
        self.register_buffer("fit_atoms", torch.from_numpy(fit))
        self.register_buffer("output_atoms", torch.from_numpy(out))
        self._init_atoms(np.concatenate([out, fit]), n_atoms)

    @property
    def n_features(self):
        return 3 * len(self.output_atoms)

    @torch.jit.unused
    def feature_names(self):
        return [f"{a}{i}" for i in self.output_atoms.tolist() for a in "xyz"]

    @torch.jit.unused
    def config(self):
        """Constructor arguments as plain JSON data: indices and the fit atoms' reference rows (nm)."""
        return {"type": "AlignedPositions", "reference": self.reference.tolist(),
                "atoms": self.output_atoms.tolist(), "fit_atoms": self.fit_atoms.tolist(), "n_atoms": self.n_atoms}

    def forward(self, positions):
        self._check_positions(positions, "AlignedPositions")
        ref = self.reference.to(positions.dtype)
        ref_center = ref.mean(0)
        mobile = positions.index_select(-2, self.fit_atoms)
        center = mobile.mean(-2, keepdim=True)
        h = (mobile - center).transpose(-1, -2) @ (ref - ref_center)
        rotation = _optimal_rotation(h)
        aligned = (positions.index_select(-2, self.output_atoms) - center) @ rotation.transpose(-1, -2) + ref_center
        return aligned.flatten(start_dim=-2)


hooks.autograd_only(AlignedPositions, "the optimal rotation (an eigenvector) has no numpy step")
hooks.not_exportable(AlignedPositions, "AlignedPositions has no one-line PLUMED equivalent (PLUMED aligns with "
                     "FIT_TO_TEMPLATE, which moves the whole frame); retrain the CV on Distances, Dihedrals or "
                     "Contacts to export it, or run it in cvlearn's OpenMM engine.")
hooks.register_config(AlignedPositions, AlignedPositions.config, AlignedPositions)
hooks.periodicity.register(AlignedPositions)(hooks.not_periodic)
