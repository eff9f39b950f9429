"""Export a trained CV to PLUMED: a TorchScript model for PYTORCH_MODEL plus a ready plumed.dat.

PLUMED computes the features itself (DISTANCE, TORSION, COORDINATION, POSITION actions, which each
featurizer class registers with :func:`cvlearn.hooks.plumed_lines`, atoms numbered from 1) and
passes them, in the featurizer's order, to the exported network as a float32 tensor of shape
(1, n_features) — what PLUMED's ``PYTORCH_MODEL`` sends (src/pytorch/PytorchModel.cpp). The
model's outputs are the components ``<label>.node-0``, ``.node-1``, ... that the bias line acts on.
"""

import os

import numpy as np
import torch

from .. import hooks
from ..io import write_text_atomic
from ._torchscript import to_torchscript

__all__ = ["to_plumed", "plumed_feature_lines", "torchscript_format_version"]


def plumed_feature_lines(featurizer):
    """PLUMED action lines computing ``featurizer``'s features, and the labels in feature order.

    The lines use PLUMED's default units (nm, radians) and atom numbers from 1; periodic boundaries
    are ignored (``NOPBC``), as cvlearn's featurizers do.

    Parameters
    ----------
    featurizer : cvlearn.features.Featurizer
        Distances, Dihedrals, Contacts, Positions, or a Concatenate of them (any class with a
        :func:`cvlearn.hooks.plumed_lines` implementation).

    Returns
    -------
    lines : list of str
    labels : list of str
        One PLUMED label per feature, in the featurizer's order.

    Examples
    --------
    >>> import mdtraj as md, cvlearn as cl
    >>> top = md.load_topology(cl.data.alanine_dipeptide_pdb())
    >>> lines, labels = cl.export.plumed_feature_lines(cl.features.Dihedrals(top, "phi")
    ...                                                | cl.features.Distances(top, pairs=[[4, 14]]))
    >>> print("\\n".join(lines))
    phi_2: TORSION ATOMS=5,7,9,15 NOPBC
    d_4_14: DISTANCE ATOMS=5,15 NOPBC
    >>> labels
    ['phi_2', 'd_4_14']
    """
    if isinstance(featurizer, torch.nn.Identity):
        raise ValueError("This CV has no featurizer (it takes features directly); PLUMED needs to know how to "
                         "compute its inputs. Build it with to_module(featurizer=...).")
    return hooks.plumed_lines(featurizer, set())


def _bias_lines(kind, arg, label, temperature, sigma, height, bias_factor, pace, grid, barrier, walkers):
    if kind is None:
        return []
    if kind == "metad":
        if sigma is None or grid is None:
            raise ValueError("METAD needs sigma= and grid=(lo, hi, bins) per CV component.")
        lo, hi, bins = (np.atleast_1d(np.asarray(g, dtype=float)) for g in grid)
        fields = [f"ARG={arg}", f"SIGMA={_csv(sigma)}", f"HEIGHT={height!r}", f"PACE={int(pace)}",
                  f"GRID_MIN={_csv(lo)}", f"GRID_MAX={_csv(hi)}", f"GRID_BIN={_csv(bins.astype(int))}",
                  f"TEMP={temperature!r}", "FILE=HILLS"]
        if bias_factor is not None:
            fields.insert(3, f"BIASFACTOR={bias_factor!r}")
        line = f"{label}: METAD " + " ".join(fields)
    elif kind == "opes":
        if barrier is None:
            raise ValueError("OPES_METAD needs barrier= (kJ/mol), the free energy barrier to overcome.")
        fields = [f"ARG={arg}", f"PACE={int(pace)}", f"BARRIER={barrier!r}", f"TEMP={temperature!r}",
                  "FILE=KERNELS", "STATE_WFILE=STATE", f"STATE_WSTRIDE={int(pace) * 1000}"]
        if sigma is not None:
            fields.insert(2, f"SIGMA={_csv(sigma)}")
        line = f"{label}: OPES_METAD " + " ".join(fields)
    else:
        raise ValueError(f"bias must be 'metad', 'opes' or None; got {kind!r}.")
    if walkers:
        n, directory = walkers
        # PLUMED reads WALKERS_ID from the command line of each replica; the user edits it per walker.
        line += f" WALKERS_N={int(n)} WALKERS_ID=0 WALKERS_DIR={directory} WALKERS_RSTRIDE={int(pace)}"
    return [line]


def _csv(values):
    return ",".join(repr(float(v)) if not isinstance(v, (int, np.integer)) else str(int(v))
                    for v in np.atleast_1d(values).tolist())


def to_plumed(cv, directory, bias="metad", sigma=None, height=1.2, bias_factor=10.0, pace=500, grid=None,
              barrier=None, temperature=300.0, walkers=None, stride=500, model="model.ptc", label="cv"):
    """Write ``model.ptc`` (TorchScript, float32, features -> CV), ``plumed.dat`` and a README into ``directory``.

    Parameters
    ----------
    cv : cvlearn.learners.CollectiveVariable
        A trained CV with a featurizer (``learner.to_module(featurizer=...)`` or ``cl.load``).
    bias : {"metad", "opes", None}
        Bias line to add: well-tempered METAD (needs ``sigma`` and ``grid`` = (lo, hi, bins) per
        component; ``bias_factor`` None = untempered), OPES_METAD (needs ``barrier``, kJ/mol), or none.
    height : float
        kJ/mol. ``pace``: steps between hills/kernels; ``stride``: steps between COLVAR rows.
    temperature : float
        K.
    walkers : (int, str), optional
        (number of walkers, shared directory) for PLUMED's multiple walkers; edit ``WALKERS_ID`` per walker.

    Returns
    -------
    dict with the paths written (``model``, ``plumed``, and ``readme``: a README.md naming the torch
    and TorchScript format versions that wrote the model and the LibTorch versions that load it) and
    the feature labels in input order.

    Examples
    --------
    >>> import numpy as np, mdtraj as md, cvlearn as cl
    >>> top = md.load_topology(cl.data.alanine_dipeptide_pdb())
    >>> feat = cl.features.Dihedrals(top, "phi psi", sincos=True)
    >>> X = np.random.default_rng(0).normal(size=(300, 4))      # stands for features of real frames
    >>> cv = cl.PCA(n_components=1).fit(X).to_module(featurizer=feat)
    >>> out = cl.export.to_plumed(cv, "plumed_run", bias="opes", barrier=40.0, pace=500)
    >>> out["plumed"], out["outputs"]
    ('plumed_run/plumed.dat', ['cv.node-0'])
    >>> print(open(out["plumed"]).read())
    # cvlearn ...: CV pc1 (LinearCV) on 4 features; units nm, ps, kJ/mol.
    UNITS LENGTH=nm TIME=ps ENERGY=kj/mol
    <BLANKLINE>
    phi_2: TORSION ATOMS=5,7,9,15 NOPBC
    sin_phi_2: CUSTOM ARG=phi_2 FUNC=sin(x) PERIODIC=NO
    cos_phi_2: CUSTOM ARG=phi_2 FUNC=cos(x) PERIODIC=NO
    psi_2: TORSION ATOMS=7,9,15,17 NOPBC
    sin_psi_2: CUSTOM ARG=psi_2 FUNC=sin(x) PERIODIC=NO
    cos_psi_2: CUSTOM ARG=psi_2 FUNC=cos(x) PERIODIC=NO
    <BLANKLINE>
    cv: PYTORCH_MODEL FILE=model.ptc ARG=sin_phi_2,cos_phi_2,sin_psi_2,cos_psi_2
    opes: OPES_METAD ARG=cv.node-0 PACE=500 BARRIER=40.0 TEMP=300.0 FILE=KERNELS STATE_WFILE=STATE ...
    <BLANKLINE>
    PRINT ARG=cv.node-0,opes.* STRIDE=500 FILE=COLVAR
    <BLANKLINE>
    """
    feature_lines, args = plumed_feature_lines(cv.featurizer)
    if len(args) != cv.model.n_features:
        raise ValueError(f"The featurizer gives {len(args)} features but the model takes {cv.model.n_features}.")
    os.makedirs(directory, exist_ok=True)
    model_path = os.path.join(directory, model)
    to_torchscript(cv.model, model_path, dtype=torch.float32)  # PLUMED passes float32 inputs
    outputs = [f"{label}.node-{k}" for k in range(cv.n_components)]
    from .._version import __version__

    lines = [f"# cvlearn {__version__}: CV {', '.join(cv.names)} ({type(cv.model).__name__}) on "
             f"{len(args)} features; units nm, ps, kJ/mol.",
             "UNITS LENGTH=nm TIME=ps ENERGY=kj/mol", "", *feature_lines, "",
             f"{label}: PYTORCH_MODEL FILE={model} ARG={','.join(args)}"]
    bias_label = {"metad": "metad", "opes": "opes"}.get(bias)
    lines += _bias_lines(bias, ",".join(outputs), bias_label, float(temperature), sigma, height, bias_factor, pace,
                         grid, barrier, walkers)
    printed = outputs + ([f"{bias_label}.*"] if bias_label else [])
    lines += ["", f"PRINT ARG={','.join(printed)} STRIDE={int(stride)} FILE=COLVAR", ""]
    dat = os.path.join(directory, "plumed.dat")
    write_text_atomic(dat, "\n".join(lines))
    readme = os.path.join(directory, "README.md")
    write_text_atomic(readme, _readme(cv, model, args, outputs, torchscript_format_version(model_path)))
    return {"model": model_path, "plumed": dat, "readme": readme, "features": args, "outputs": outputs}


def torchscript_format_version(path):
    """The file-format version recorded in a TorchScript archive (its ``<archive>/version`` entry).

    A LibTorch loads the archive only if this number is at most its own maximum (10 in LibTorch 2.x,
    ``caffe2/serialize/versions.h``); otherwise it stops with "file version too new"-type errors.

    Parameters
    ----------
    path : str or path-like
        A file written by ``torch.jit.save`` (``model.ptc`` of :func:`to_plumed`).

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> cv = cl.PCA(n_components=1).fit(np.random.default_rng(0).normal(size=(50, 2)))
    >>> _ = cl.export.to_torchscript(cv.to_module().model, "pca.ptc")
    >>> cl.export.torchscript_format_version("pca.ptc") <= 10
    True
    """
    import zipfile

    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/version"))
        return int(archive.read(name).decode().strip())


def _readme(cv, model, args, outputs, format_version):
    from .._version import __version__

    return f"""# A cvlearn CV for PLUMED

Written by cvlearn {__version__} with torch {torch.__version__}.

- `{model}`: the CV {', '.join(cv.names)} ({type(cv.model).__name__}) as TorchScript, float32: it takes the
  {len(args)} features below, in this order, as one (1, {len(args)}) tensor (what PLUMED's `PYTORCH_MODEL`
  sends) and returns {len(outputs)} value(s), `{'`, `'.join(outputs)}` in PLUMED.
- `plumed.dat`: the actions computing those features (nm, radians, atoms numbered from 1, no periodic
  boundaries), the `PYTORCH_MODEL` line and the bias. Run it with `plumed driver --plumed plumed.dat ...`
  or through your MD engine's PLUMED interface.

Features: {', '.join(args)}.

## Which PLUMED loads `{model}`

PLUMED needs its PYTORCH module (`./configure --enable-libtorch --enable-modules=pytorch`, or all modules),
linked to a LibTorch. This file is a TorchScript archive of file-format version {format_version}, written by
torch {torch.__version__}. A LibTorch loads an archive whose format version is at most its own maximum (10 in
every LibTorch 2.x); an older LibTorch stops with "file version too new" or "Attempted to read a PyTorch file
with version N, but the maximum supported version for reading is M". The safe choice is a LibTorch of the
same version as the torch that wrote the model (here {torch.__version__.split('+')[0]}); if your PLUMED is
linked to another LibTorch, export again from a Python environment whose torch has that version.

Checked: PLUMED 2.11-dev linked to LibTorch 2.13.0 (the libraries of the CPU wheel torch==2.13.0) loads
models written by torch 2.13.0 and prints the CV values cvlearn computes to within 1e-5 (plus 1e-5 of the
value: PLUMED evaluates the network in float32), on alanine dipeptide frames (cvlearn's tests/test_plumed_real.py).
"""
