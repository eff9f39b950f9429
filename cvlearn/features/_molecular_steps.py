"""Lean steps of the molecular featurizers: pair distances and dihedral angles of one frame in numpy.

The engine's lean path (:func:`cvlearn.hooks.lean_steps`, registered in ``_molecular.py``) asks
these for s(x) and g . ds/dx of one configuration at every MD step. At this size numpy costs ~1 us
per call whatever it computes, so each step minimizes the calls: pair distances of a few atoms are
one product with a constant incidence matrix (the gradient one product with its transpose) instead
of gathers and scatters, and a few dihedrals are computed in plain Python floats (``math``), ~10x
faster than array code for one to four angles. The formulas equal the torch featurizers' (the tests
compare values and gradients with autograd).
"""

import math

import numpy as np

from .. import hooks

__all__ = ["DihedralsStep", "DistancesStep"]

#: Largest incidence matrix (pairs x atoms entries) used for distances; above it gathers and
#: ``np.bincount`` scatters win.
_DENSE_MAX = 1_500
#: Dihedrals computed in scalar Python arithmetic up to this many angles (array code above).
_SCALAR_DIHEDRALS = 4


class DistancesStep(hooks.FeatureStep):
    """Pair distances (nm). Few pairs of few atoms: r = P x with the constant incidence matrix P (pairs,
    atoms), the gradient P^T (g / d * r), one ``np.dot`` each way; else gathers and bincount.

    ``pairs`` (k, 2) atom indices; ``expected``, ``minimum``: the featurizer's atom counts (see
    :meth:`cvlearn.hooks.FeatureStep.expect_atoms`).
    """

    def __init__(self, pairs, expected, minimum, rows):
        self.expect_atoms(rows, expected, minimum, "Distances")
        i, j = rows.rows(pairs[:, 0], "Distances"), rows.rows(pairs[:, 1], "Distances")
        p = len(i)
        self.n_out = p
        n = self.shape[0] if self.shape is not None else None
        self.dense = n is not None and p * n <= _DENSE_MAX
        three = np.arange(3)
        self.j3 = (3 * j[:, None] + three).ravel()
        self.i3 = (3 * i[:, None] + three).ravel()
        if self.dense:  # r = P x: P (pairs, atoms) with +1 at the second atom and -1 at the first
            inc = np.zeros((p, n))
            np.add.at(inc, (np.arange(p), j), 1.0)
            np.add.at(inc, (np.arange(p), i), -1.0)
            self.incidence, self.incidence_t = inc, np.ascontiguousarray(inc.T)
        self.r = np.empty((p, 3))
        self.rf, self.rx, self.ry, self.rz = self.r.reshape(-1), self.r[:, 0], self.r[:, 1], self.r[:, 2]
        self.a, self.b = np.empty(3 * p), np.empty(3 * p)
        self.q, self.q3, self.d2 = np.empty(p), np.empty((p, 3)), np.empty(p)
        self.q_col = self.q[:, None]

    def forward(self, x):
        self.check(x)
        if self.dense:
            np.dot(self.incidence, x, out=self.r)
        else:
            self.n = x.shape[0]
            xf = x.reshape(-1)
            np.subtract(np.take(xf, self.j3, out=self.a), np.take(xf, self.i3, out=self.b), out=self.rf)
        # |r| as hypot(hypot(x, y), z): two calls instead of square, sum and root (~2x faster here).
        return np.hypot(np.hypot(self.rx, self.ry, out=self.d2), self.rz, out=self.out)

    def ops(self, x):
        if not self.dense:
            return None
        return [(np.dot, (self.incidence, x, self.r)), (np.hypot, (self.rx, self.ry, self.d2)),
                (np.hypot, (self.d2, self.rz, self.out))], self.out

    def backward_ops(self, g):
        """Calls ending with one that returns the new gradient array."""
        if not self.dense:
            return None
        return [(np.divide, (g, self.out, self.q)), (np.multiply, (self.r, self.q_col, self.q3)),
                (np.dot, (self.incidence_t, self.q3))], None

    def backward(self, g):
        np.divide(g, self.out, out=self.q)
        np.multiply(self.r, self.q_col, out=self.q3)
        if self.dense:
            return np.dot(self.incidence_t, self.q3)
        size = 3 * self.n
        q3 = self.q3.reshape(-1)
        out = np.bincount(self.j3, q3, size) - np.bincount(self.i3, q3, size)
        return out.reshape(self.n, 3)


def _cross(a, b):
    """Row-wise cross product of (k, 3) arrays; np.cross costs ~50x more for a few rows (axis handling)."""
    ax, ay, az = a[:, 0], a[:, 1], a[:, 2]
    bx, by, bz = b[:, 0], b[:, 1], b[:, 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=1)


class DihedralsStep(hooks.FeatureStep):
    """Dihedral angles (radians; atan2 form, as the torch featurizer), or their (sin, cos) pairs, with the
    analytic gradient (Blondel & Karplus, J. Comput. Chem. 17, 1132 (1996), eqs. 27, in the bond vectors
    b1, b2, b3).

    ``quads`` (k, 4) atom indices; up to ``_SCALAR_DIHEDRALS`` angles in Python floats, more in array code.
    """

    fresh_output = True  # forward returns a new array, never a buffer

    def __init__(self, quads, sincos, expected, minimum, rows):
        self.expect_atoms(rows, expected, minimum, "Dihedrals")
        self.quads = np.stack([rows.rows(q, "Dihedrals") for q in quads.T], axis=1)
        self.sincos = bool(sincos)
        self.n_out = len(self.quads) * (2 if self.sincos else 1)
        self.scalar = len(self.quads) <= _SCALAR_DIHEDRALS
        self.quad_list = self.quads.tolist()
        # Array path: a 0/1 matrix maps the gradient rows onto the distinct atoms (~5x faster than add.at).
        index = self.quads.T.ravel()
        self.atoms, inverse = np.unique(index, return_inverse=True)
        self.gather = np.zeros((len(self.atoms), len(index)))
        self.gather[inverse, np.arange(len(index))] = 1.0

    def forward(self, x):
        self.check(x)
        if self.scalar:
            return self._forward_scalar(x)
        self.n = x.shape[0]
        p0, p1, p2, p3 = (x[self.quads[:, k]] for k in range(4))
        b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
        c1, c2 = _cross(b2, b3), _cross(b1, b2)
        nb2 = np.sqrt(np.einsum("ij,ij->i", b2, b2))
        a = np.arctan2(np.einsum("ij,ij->i", b1, c1) * nb2, np.einsum("ij,ij->i", c1, c2))
        self.geometry = b1, b2, b3, c1, c2, nb2
        self.angles = a
        return np.stack([np.sin(a), np.cos(a)], -1).ravel() if self.sincos else a

    def backward(self, g):
        if self.scalar:
            return self._backward_scalar(g)
        if self.sincos:
            gs, gc = g[0::2], g[1::2]
            g = gs * np.cos(self.angles) - gc * np.sin(self.angles)
        b1, b2, b3, c1, c2, nb2 = self.geometry
        d0 = -(nb2 / np.einsum("ij,ij->i", c2, c2))[:, None] * c2
        d3 = (nb2 / np.einsum("ij,ij->i", c1, c1))[:, None] * c1
        f1 = (np.einsum("ij,ij->i", b1, b2) / nb2**2)[:, None]
        f3 = (np.einsum("ij,ij->i", b3, b2) / nb2**2)[:, None]
        d1 = f3 * d3 - (1.0 + f1) * d0
        d2 = f1 * d0 - (1.0 + f3) * d3
        gk = g[:, None]
        out = np.zeros((self.n, 3))
        out[self.atoms] = self.gather @ np.concatenate([gk * d0, gk * d1, gk * d2, gk * d3])
        return out

    # The same formulas in Python floats: for one to four angles ~10x faster than the array code above.
    def _forward_scalar(self, x):
        self.n = x.shape[0]
        xl = x.tolist()
        values, self.geometry = [], []
        for i0, i1, i2, i3 in self.quad_list:
            p0, p1, p2, p3 = xl[i0], xl[i1], xl[i2], xl[i3]
            b1 = (p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2])
            b2 = (p2[0] - p1[0], p2[1] - p1[1], p2[2] - p1[2])
            b3 = (p3[0] - p2[0], p3[1] - p2[1], p3[2] - p2[2])
            c1 = (b2[1] * b3[2] - b2[2] * b3[1], b2[2] * b3[0] - b2[0] * b3[2], b2[0] * b3[1] - b2[1] * b3[0])
            c2 = (b1[1] * b2[2] - b1[2] * b2[1], b1[2] * b2[0] - b1[0] * b2[2], b1[0] * b2[1] - b1[1] * b2[0])
            nb2 = math.sqrt(b2[0] * b2[0] + b2[1] * b2[1] + b2[2] * b2[2])
            a = math.atan2((b1[0] * c1[0] + b1[1] * c1[1] + b1[2] * c1[2]) * nb2,
                           c1[0] * c2[0] + c1[1] * c2[1] + c1[2] * c2[2])
            self.geometry.append((b1, b2, b3, c1, c2, nb2, a))
            if self.sincos:
                values += (math.sin(a), math.cos(a))
            else:
                values.append(a)
        return np.array(values)

    def _backward_scalar(self, g):
        g = g.tolist()
        grad = [[0.0, 0.0, 0.0] for _ in range(self.n)]
        for k, ((b1, b2, b3, c1, c2, nb2, a), quad) in enumerate(zip(self.geometry, self.quad_list)):
            gk = g[2 * k] * math.cos(a) - g[2 * k + 1] * math.sin(a) if self.sincos else g[k]
            s0 = -gk * nb2 / (c2[0] * c2[0] + c2[1] * c2[1] + c2[2] * c2[2])
            s3 = gk * nb2 / (c1[0] * c1[0] + c1[1] * c1[1] + c1[2] * c1[2])
            nb22 = nb2 * nb2
            f1 = (b1[0] * b2[0] + b1[1] * b2[1] + b1[2] * b2[2]) / nb22
            f3 = (b3[0] * b2[0] + b3[1] * b2[1] + b3[2] * b2[2]) / nb22
            rows = [grad[i] for i in quad]
            for c in range(3):
                d0, d3 = s0 * c2[c], s3 * c1[c]
                rows[0][c] += d0
                rows[1][c] += f3 * d3 - (1.0 + f1) * d0
                rows[2][c] += f1 * d0 - (1.0 + f3) * d3
                rows[3][c] += d3
        return np.array(grad)
