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


def _pair_block(xt, a, b, params, want_grad):
    """LJ and Coulomb energies (B,) of rows [a, b) against columns [a, N), and their gradients if asked.

    ``xt`` is (3, B, N): one contiguous plane per Cartesian component, so that every pair quantity is a
    contiguous (B, R, C) array. Returns ``(e_lj, e_c, g_lj, g_c)`` with gradients (3, B, N - a) over atoms
    a..N-1 (None if not asked).
    """
    q, sig, sqeps, excluded, starts = params
    n = xt.shape[2]
    mask = _block_mask(a, b, n, excluded, starts, xt.device).to(xt.dtype)
    d = [c[:, a:b, None] - c[:, None, a:] for c in xt]  # 3 x (B, R, C)
    # Masked pairs (i >= j, exceptions) get r^2 + 1 (never 0) and zero parameters.
    inv_r2 = 1.0 / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + (1.0 - mask))
    s = 0.5 * (sig[a:b, None] + sig[None, a:])
    eps4 = (4.0 * mask) * sqeps[a:b, None] * sqeps[None, a:]
    qq = (ONE_4PI_EPS0 * mask) * q[a:b, None] * q[None, a:]
    s6 = (s * s * inv_r2) ** 3
    s12 = s6 * s6
    e_c_pair = qq * inv_r2.sqrt()
    e_lj = (eps4 * (s12 - s6)).sum((1, 2))
    e_c = e_c_pair.sum((1, 2))
    if not want_grad:
        return e_lj, e_c, None, None
    grads = []
    for w in (eps4 * (6.0 * s6 - 12.0 * s12) * inv_r2, -e_c_pair * inv_r2):  # (dE/dr) / r per pair
        g = xt.new_zeros(3, xt.shape[1], n - a)
        for c in range(3):
            t = w * d[c]  # dE/dx_i of each pair along c; dE/dx_j = -t
            g[c] -= t.sum(1)
            g[c, :, : b - a] += t.sum(2)
        grads.append(g)
    return e_lj, e_c, grads[0], grads[1]


def _pair_pass(x, params, want_grad, pair_chunk):
    """Energies (B, 2) [LJ, Coulomb] over all non-excluded pairs, and gradients (2, B, N, 3) if asked."""
    bsz, n, _ = x.shape
    energy = x.new_zeros(bsz, 2)
    grad = x.new_zeros(2, 3, bsz, n) if want_grad else None
    xt = x.permute(2, 0, 1)  # (3, B, N)
    fchunk = max(1, min(bsz, pair_chunk // max(n, 1)))
    for f0 in range(0, bsz, fchunk):
        f1 = min(bsz, f0 + fchunk)
        xf = xt[:, f0:f1]
        a = 0
        while a < n - 1:
            b = min(n - 1, a + max(1, pair_chunk // ((f1 - f0) * (n - a))))
            e_lj, e_c, g_lj, g_c = _pair_block(xf, a, b, params, want_grad)
            energy[f0:f1, 0] += e_lj
            energy[f0:f1, 1] += e_c
            if want_grad:
                grad[0, :, f0:f1, a:] += g_lj
                grad[1, :, f0:f1, a:] += g_c
            a = b
    return energy, (grad.permute(0, 2, 3, 1) if want_grad else None)


class _PairEnergy(torch.autograd.Function):
    """All non-excluded pairs; the gradient is computed block by block in the forward pass (when positions need
    it), so memory stays bounded by ``pair_chunk`` instead of an autograd graph over every pair. Second
    derivatives (``create_graph=True``) recompute the gradient differentiably, holding a graph over all blocks."""

    @staticmethod
    def forward(ctx, x, q, sig, sqeps, excluded, starts, pair_chunk):
        params = (q, sig, sqeps, excluded, starts)
        want = ctx.needs_input_grad[0]
        energy, grad = _pair_pass(x, params, want, pair_chunk)
        ctx.pair_chunk = pair_chunk
        ctx.save_for_backward(x, q, sig, sqeps, excluded, starts, grad if want else None)
        return energy

    @staticmethod
    def backward(ctx, grad_out):
        x, q, sig, sqeps, excluded, starts, grad = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: rebuild the gradient as a function of x
            _, grad = _pair_pass(x, (q, sig, sqeps, excluded, starts), True, ctx.pair_chunk)
        gx = (grad_out.T[:, :, None, None] * grad).sum(0)
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
    starts : torch.Tensor
        (N + 1,) int64: the exceptions of atom i are ``excluded[starts[i]:starts[i + 1]]``.
    pair_chunk : int
        Largest number of (frame, pair) elements in one block: bounds the memory (~ 15 doubles per element).
    """
    energy = _PairEnergy.apply(x, q, sig, sqeps, excluded, starts, int(pair_chunk))
    return energy[:, 0], energy[:, 1]
