"""Force-field energy terms in torch, batched over frames: bonded terms by index gathers (plain autograd) and
all nonbonded pairs in dense blocks with a memory-bounded, hand-written gradient.

Functional forms are OpenMM's (https://docs.openmm.org/latest/userguide/theory.html):

- bond ``k/2 (r - r0)^2``; angle ``k/2 (theta - theta0)^2``; torsion ``k (1 + cos(n phi - phi0))`` with the
  IUPAC dihedral sign (as OpenMM and mdtraj);
- nonbonded ``4 eps ((sigma/r)^12 - (sigma/r)^6) + ONE_4PI_EPS0 q_i q_j / r`` over every pair i < j that is not an
  exception, with Lorentz-Berthelot mixing ``sigma = (sigma_i + sigma_j) / 2``, ``eps = sqrt(eps_i eps_j)``; each
  exception (1-4 pair) uses its own chargeProd, sigma and epsilon instead.
"""

import torch

__all__ = ["ONE_4PI_EPS0", "bond_energy", "angle_energy", "torsion_energy", "pair14_energy", "pair_energies"]

#: 1 / (4 pi eps0) in kJ/mol nm / e^2 (CODATA 2018), the value of OpenMM >= 8 (measured on its Reference platform).
ONE_4PI_EPS0 = 138.93545764438198


def bond_energy(x, index, length, k):
    """Sum of ``k/2 (r - r0)^2`` per frame; x (B, N, 3) nm, index (n, 2), length nm, k kJ/mol/nm^2."""
    r = (x[:, index[:, 1]] - x[:, index[:, 0]]).norm(dim=-1)
    return (0.5 * k * (r - length) ** 2).sum(-1)


def angle_energy(x, index, angle, k):
    """Sum of ``k/2 (theta - theta0)^2`` per frame; theta at the middle atom, rad; k kJ/mol/rad^2."""
    v1 = x[:, index[:, 0]] - x[:, index[:, 1]]
    v2 = x[:, index[:, 2]] - x[:, index[:, 1]]
    theta = torch.atan2(torch.linalg.cross(v1, v2).norm(dim=-1), (v1 * v2).sum(-1))  # stable near 0 and pi
    return (0.5 * k * (theta - angle) ** 2).sum(-1)


def dihedral(x, index):
    """IUPAC dihedral angles (rad, in (-pi, pi]) of atoms index (n, 4): (B, n)."""
    b1 = x[:, index[:, 1]] - x[:, index[:, 0]]
    b2 = x[:, index[:, 2]] - x[:, index[:, 1]]
    b3 = x[:, index[:, 3]] - x[:, index[:, 2]]
    c1 = torch.linalg.cross(b2, b3)
    c2 = torch.linalg.cross(b1, b2)
    return torch.atan2((b1 * c1).sum(-1) * b2.norm(dim=-1), (c1 * c2).sum(-1))


def torsion_energy(x, index, periodicity, phase, k):
    """Sum of ``k (1 + cos(n phi - phi0))`` per frame; phase rad, k kJ/mol."""
    phi = dihedral(x, index)
    return (k * (1.0 + torch.cos(periodicity * phi - phase))).sum(-1)


def pair14_energy(x, pairs, charge_prod, sigma, epsilon):
    """(Lennard-Jones, Coulomb) energies per frame of the exception pairs, with their own parameters."""
    r = (x[:, pairs[:, 1]] - x[:, pairs[:, 0]]).norm(dim=-1)
    s6 = (sigma / r) ** 6
    return (4.0 * epsilon * (s6 * s6 - s6)).sum(-1), (ONE_4PI_EPS0 * charge_prod / r).sum(-1)


def _block_mask(a, b, n, excluded, starts, device):
    """(b - a, n - a) bool: pairs (i, j) with a <= i < b, j > i, not an exception."""
    rows = torch.arange(a, b, device=device)[:, None]
    cols = torch.arange(a, n, device=device)[None, :]
    mask = cols > rows
    lo, hi = int(starts[a]), int(starts[b])
    if hi > lo:
        ex = excluded[lo:hi]
        mask[ex[:, 0] - a, ex[:, 1] - a] = False
    return mask


def _pair_block(xt, a, b, params, grad_mode):
    """LJ and Coulomb energies (B,) of rows [a, b) against columns [a, N), and their gradient if asked.

    ``xt`` is (3, B, N): one contiguous plane per Cartesian component, so that every pair quantity is a
    contiguous (B, R, C) array. ``params`` holds per-atom ``sqrt(ONE_4PI_EPS0) q``, ``sigma / 2`` and
    ``2 sqrt(eps)``, so that each pair parameter is one product or sum. ``grad_mode`` None, ``"total"`` (the
    gradient of LJ + Coulomb) or ``"split"`` (both). Returns ``(e_lj, e_c, grads)`` with grads a list of
    (3, B, N - a) arrays over atoms a..N-1.
    """
    qs, sh, e2, excluded, starts = params
    n = xt.shape[2]
    mask = _block_mask(a, b, n, excluded, starts, xt.device)
    d = [c[:, a:b, None] - c[:, None, a:] for c in xt]  # 3 x (B, R, C)
    r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    inv_r = torch.rsqrt(r2.masked_fill_(~mask, 1.0))  # masked pairs (i >= j, exceptions): r = 1, zero parameters
    inv_r2 = inv_r * inv_r
    s2 = (sh[a:b, None] + sh[None, a:]) ** 2
    eps4 = (e2[a:b, None] * e2[None, a:]).masked_fill_(~mask, 0.0)
    qq = (qs[a:b, None] * qs[None, a:]).masked_fill_(~mask, 0.0)
    s6 = (s2 * inv_r2) ** 3
    lj6 = eps4 * s6
    lj12 = lj6 * s6
    e_c_pair = qq * inv_r
    e_lj = (lj12 - lj6).sum((1, 2))
    e_c = e_c_pair.sum((1, 2))
    if grad_mode is None:
        return e_lj, e_c, []
    w_lj = (6.0 * lj6 - 12.0 * lj12) * inv_r2  # (dE/dr) / r per pair
    w_c = -e_c_pair * inv_r2
    weights = [w_lj + w_c] if grad_mode == "total" else [w_lj, w_c]
    grads = []
    for w in weights:
        g = xt.new_zeros(3, xt.shape[1], n - a)
        for c in range(3):
            t = w * d[c]  # dE/dx_i of each pair along c; dE/dx_j = -t
            g[c] -= t.sum(1)
            g[c, :, : b - a] += t.sum(2)
        grads.append(g)
    return e_lj, e_c, grads


def _pair_pass(x, params, grad_mode, pair_chunk):
    """Energies (B, 2) [LJ, Coulomb] over all non-excluded pairs, and gradients (k, B, N, 3) if asked (k = 1
    for ``grad_mode="total"``, 2 for ``"split"``)."""
    bsz, n, _ = x.shape
    energy = x.new_zeros(bsz, 2)
    grad = x.new_zeros({"total": 1, "split": 2}[grad_mode], 3, bsz, n) if grad_mode else None
    xt = x.permute(2, 0, 1)  # (3, B, N)
    fchunk = max(1, min(bsz, pair_chunk // max(n, 1)))
    for f0 in range(0, bsz, fchunk):
        f1 = min(bsz, f0 + fchunk)
        xf = xt[:, f0:f1]
        a = 0
        while a < n - 1:
            b = min(n - 1, a + max(1, pair_chunk // ((f1 - f0) * (n - a))))
            e_lj, e_c, grads = _pair_block(xf, a, b, params, grad_mode)
            energy[f0:f1, 0] += e_lj
            energy[f0:f1, 1] += e_c
            for k, g in enumerate(grads):
                grad[k, :, f0:f1, a:] += g
            a = b
    return energy, (grad.permute(0, 2, 3, 1) if grad_mode else None)


class _PairEnergy(torch.autograd.Function):
    """All non-excluded pairs. The gradient of LJ + Coulomb is computed block by block in the forward pass (when
    positions need it), so memory stays bounded by ``pair_chunk`` instead of an autograd graph over every pair.
    A backward pass that weights LJ and Coulomb differently (one split term differentiated alone) or that
    builds second derivatives (``create_graph=True``) recomputes the gradients (differentiably in the second
    case, then holding a graph over all blocks)."""

    @staticmethod
    def forward(ctx, x, qs, sh, e2, excluded, starts, pair_chunk):
        params = (qs, sh, e2, excluded, starts)
        want = ctx.needs_input_grad[0]
        energy, grad = _pair_pass(x, params, "total" if want else None, pair_chunk)
        ctx.pair_chunk, ctx.starts = pair_chunk, starts
        ctx.save_for_backward(x, qs, sh, e2, excluded, grad[0] if want else None)
        return energy

    @staticmethod
    def backward(ctx, grad_out):
        x, qs, sh, e2, excluded, grad = ctx.saved_tensors
        if not torch.is_grad_enabled() and torch.equal(grad_out[:, 0], grad_out[:, 1]):
            return grad_out[:, 0, None, None] * grad, None, None, None, None, None, None
        # create_graph=True (grad mode is on here): the recomputed gradients are functions of x.
        _, grads = _pair_pass(x, (qs, sh, e2, excluded, ctx.starts), "split", ctx.pair_chunk)
        gx = (grad_out.T[:, :, None, None] * grads).sum(0)
        return gx, None, None, None, None, None, None


def pair_energies(x, q, sig, sqeps, excluded, starts, pair_chunk):
    """(Lennard-Jones, Coulomb) energies (B,) each over every non-excluded pair i < j.

    Parameters
    ----------
    x : torch.Tensor
        (B, N, 3) positions, nm.
    q, sig, sqeps : torch.Tensor
        (N,) charges (e), sigmas (nm) and square roots of the LJ well depths (sqrt(kJ/mol)).
    excluded : torch.Tensor
        (n_exc, 2) int64 exception pairs, i < j, sorted by i then j.
    starts : numpy.ndarray
        (N + 1,) int64, on the host: the exceptions of atom i are ``excluded[starts[i]:starts[i + 1]]``.
    pair_chunk : int
        Largest number of (frame, pair) elements in one block: bounds the memory (~ 30 numbers per element).
    """
    qs = q * ONE_4PI_EPS0 ** 0.5
    energy = _PairEnergy.apply(x, qs, 0.5 * sig, 2.0 * sqeps, excluded, starts, int(pair_chunk))
    return energy[:, 0], energy[:, 1]
