"""Checks and conversions for decoding (generate, cvlearn.generative): latent points in, structures out."""

import numpy as np

__all__ = ["check_latent", "features_to_trajectory"]


def check_latent(z, n_components, owner):
    """``z`` as a finite float64 array (n, n_components); one point (n_components,) becomes (1, n_components)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2 or z.shape[1] != n_components:
        raise ValueError(f"{owner}: latent points must have shape (n, {n_components}) (this model has "
                         f"{n_components} latent dimension(s)); got shape {np.shape(z)}.")
    if not np.isfinite(z).all():
        raise ValueError(f"{owner}: latent points contain NaN or infinite values.")
    return z


def features_to_trajectory(features, topology, atoms, owner):
    """Decoded Cartesian features (n, 3 * n_atoms), nm, as an ``mdtraj.Trajectory`` on ``topology``.

    ``atoms`` (indices into ``topology``) names the atoms the features hold, in their order, when
    the model was trained on a subset (e.g. ``AlignedPositions(..., selection="heavy").output_atoms``);
    the trajectory then has only those atoms.
    """
    import mdtraj

    from .features import as_topology

    top = as_topology(topology, owner)
    if top is None:
        raise ValueError(f"{owner}: generate needs a topology (an mdtraj Topology, Trajectory or structure file).")
    if atoms is not None:
        atoms = np.asarray(atoms, dtype=np.int64).ravel()
        if len(atoms) and (atoms.min() < 0 or atoms.max() >= top.n_atoms):
            raise ValueError(f"{owner}: atoms must index the topology's {top.n_atoms} atoms; got indices from "
                             f"{atoms.min()} to {atoms.max()}.")
        top = top.subset(atoms)
    n, width = features.shape
    if width % 3 or width // 3 != top.n_atoms:
        raise ValueError(f"{owner}: the model decodes {width} features ({width / 3:g} atoms x 3), but the topology "
                         f"has {top.n_atoms} atoms. Pass the topology the training frames came from, and atoms= "
                         "(e.g. featurizer.output_atoms) if the features held only some of its atoms.")
    if not np.isfinite(features).all():
        bad = np.nonzero(~np.isfinite(features).all(1))[0]
        raise ValueError(f"{owner}: the decoder returned NaN or infinite coordinates for point(s) "
                         f"{bad[:10].tolist()}; the network is broken (retrain) or the latent points are far "
                         "outside the training data.")
    return mdtraj.Trajectory(features.reshape(n, top.n_atoms, 3).astype(np.float32), top)
