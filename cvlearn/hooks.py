"""What each featurizer and CV module tells the rest of cvlearn: one registry per concern.

Four parts of cvlearn need to know something about a featurizer or a CV module beyond its torch
``forward``; each asks a generic function here (:func:`functools.singledispatch`), and each class
registers its implementation next to its own definition (``cvlearn/features/_molecular.py`` for
Dihedrals, Distances, Contacts; ``cvlearn/learners`` for LinearCV, NeuralCV, ...). A new class is
taught to cvlearn by registering its hooks, without editing the engine, the exporter or the loader:

=====================  =====================================================  ========================
concern                generic function (asked by)                            explicit opt-out
=====================  =====================================================  ========================
numpy value/gradient   :func:`lean_steps` (``cvlearn.engine`` OpenMM force)   :func:`autograd_only`
PLUMED actions         :func:`plumed_lines` (``cvlearn.export.to_plumed``)    :func:`not_exportable`
saving and loading     :func:`to_config`, :func:`from_config`                 (none: not registered)
                       (``cvlearn.save``, ``cvlearn.load``)
periodicity            :func:`periodicity` (``cvlearn.OPES``' default)        (register ``not_periodic``)
=====================  =====================================================  ========================

This module sits below every package of cvlearn: it imports numpy and torch only, never a featurizer,
learner or engine class, so any package may import it. :func:`hooks_of` says which hooks a class has.

The lean path (:func:`lean_steps`) speaks a small vocabulary that ``cvlearn.engine`` compiles into
fused numpy calls on preallocated buffers: a featurizer returns one :class:`FeatureStep` (positions
-> features, with its own forward and backward in numpy); a model returns :class:`Affine`,
:class:`Tanh` and :class:`Elementwise` steps, which the engine fuses and wires itself.
"""

import functools
import re

import numpy as np

__all__ = ["Affine", "Elementwise", "FeatureStep", "Rows", "Tanh", "Unsupported", "autograd_only", "float64",
           "from_config", "hooks_of", "lean_steps", "not_exportable", "not_periodic", "periodicity", "plumed_atoms",
           "plumed_label", "plumed_lines", "register_config", "to_config"]


class Unsupported(TypeError):
    """A module (or one inside it) has no lean step; the engine then uses torch autograd instead.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> try:
    ...     cl.hooks.lean_steps(torch.nn.Softsign(), cl.hooks.Rows(None))
    ... except cl.hooks.Unsupported as exc:
    ...     print(exc)
    no lean step for Softsign
    """


# The explicit opt-outs, by concern then class: (the implementation registered, the reason given).
_OPT_OUTS = {"lean": {}, "plumed": {}}


# -- the lean path: numpy value and gradient of one configuration ------------------------------------------
@functools.singledispatch
def lean_steps(module, rows):
    """The steps computing ``module`` on one configuration in numpy, value and vector-Jacobian product.

    Register an implementation per class (``lean_steps.register(cls)``): a featurizer returns
    ``[FeatureStep]``, a model a list of :class:`Affine`, :class:`Tanh` and :class:`Elementwise`
    steps, a container the concatenated steps of its parts. A class with no numpy path registers
    :func:`autograd_only` instead.

    Parameters
    ----------
    module : torch.nn.Module
    rows : Rows
        Which atoms' positions the CV will be given (featurizers map their atom indices with it).

    Returns
    -------
    list

    Raises
    ------
    Unsupported
        No step registered for the class of ``module`` (or of a part), or the class is autograd only.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> [type(s).__name__ for s in cl.hooks.lean_steps(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh()),
    ...                                                cl.hooks.Rows(None))]
    ['Affine', 'Tanh']
    """
    raise Unsupported(f"no lean step for {type(module).__name__}")


def autograd_only(cls, reason):
    """Register ``cls`` as having no numpy path: the engine computes its force with torch autograd.

    Parameters
    ----------
    cls : type
    reason : str
        Why (shown in the engine's log and by :func:`hooks_of`).

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> class Cubed(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x**3
    >>> cl.hooks.autograd_only(Cubed, "rarely used")
    >>> cl.hooks.hooks_of(Cubed)["lean"]
    'autograd only: rarely used'
    """
    @lean_steps.register(cls)
    def _autograd(module, rows):
        raise Unsupported(f"{type(module).__name__} is computed with autograd ({reason})")

    _OPT_OUTS["lean"][cls] = (_autograd, reason)


def float64(tensor):
    """A float64 numpy copy of a torch tensor (parameters and buffers for the lean steps).

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> cl.hooks.float64(torch.tensor([0.5, 2.0])).dtype
    dtype('float64')
    """
    return tensor.detach().cpu().double().numpy().copy()


class Affine:
    """Lean model step y = x @ matrix + offset (matrix (n_in, n_out); ``diagonal``: its diagonal (n,) only).

    The engine fuses adjacent affine steps into one matrix product.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> step = cl.hooks.Affine(np.array([[2.0], [1.0]]), np.array([0.5]))
    >>> step.n_in, step.n_out
    (2, 1)
    """

    def __init__(self, matrix, offset=None, diagonal=False):
        self.matrix, self.diagonal = np.asarray(matrix, dtype=np.float64), bool(diagonal)
        self.n_in = self.matrix.shape[0]
        self.n_out = self.n_in if self.diagonal else self.matrix.shape[1]
        self.offset = np.zeros(self.n_out) if offset is None else np.asarray(offset, dtype=np.float64)


class Tanh:
    """Lean model step y = tanh(x), elementwise (the engine computes 1 - y^2 of all tanh layers at once).

    Examples
    --------
    >>> import cvlearn as cl
    >>> type(cl.hooks.Tanh()).__name__
    'Tanh'
    """


class Elementwise:
    """Lean model step y = fn(x), elementwise, with ``derivative(x, y)`` = dy/dx (numpy arrays in and out).

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> relu = cl.hooks.Elementwise(lambda x: np.maximum(x, 0.0), lambda x, y: (x > 0).astype(float))
    >>> relu.fn(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def __init__(self, fn, derivative):
        self.fn, self.derivative = fn, derivative


class Rows:
    """Maps a featurizer's atom indices onto the rows of the positions a lean CV is given.

    Parameters
    ----------
    atoms : array_like of int or None
        Sorted indices of the atoms whose positions the CV receives (rows in this order); None: all
        atoms of the system, row i = atom i.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.Rows([3, 7, 9]).rows([9, 3], "Distances").tolist()
    [2, 0]
    """

    def __init__(self, atoms):
        self.atoms = None if atoms is None else np.asarray(atoms, dtype=np.int64)

    def rows(self, index, owner):
        """Rows of atoms ``index``; :class:`Unsupported` if one is not among ``atoms``."""
        index = np.asarray(index, dtype=np.int64)
        if self.atoms is None:
            return index
        pos = np.searchsorted(self.atoms, index)
        ok = (pos < len(self.atoms)) & (self.atoms[np.minimum(pos, len(self.atoms) - 1)] == index)
        if not ok.all():
            raise Unsupported(f"{owner} reads atom {int(index[~ok][0])}, which is not among the atoms given")
        return pos


class FeatureStep:
    """Base of a featurizer's lean step: positions x (rows, 3) in nm -> features (n_out,), and back.

    A subclass sets ``n_out`` and ``shape`` (the positions shape it accepts, or None when only a
    minimum atom count is known; :meth:`expect_atoms` sets both checks) and defines

    - ``forward(x)``: the features, a new array, a view, or ``self.out`` filled in;
    - ``backward(g)``: sum_k g_k d(feature_k)/dx, shaped like x, for the x of the last forward.

    Optionally ``ops(x)``/``backward_ops(g)`` return the same computation as fixed lists of
    (numpy function, arguments) calls on preallocated buffers, which the engine runs without
    per-step dispatch (None: not available). ``fresh_output = True`` says forward always returns a
    new array (the engine then need not copy it).

    Examples
    --------
    The distance (nm) of atom 0 from the origin:

    >>> import numpy as np, cvlearn as cl
    >>> class Radius(cl.hooks.FeatureStep):
    ...     n_out, shape = 1, (1, 3)
    ...     def forward(self, x):
    ...         self.x = self.check(x)[0]
    ...         return np.array([np.linalg.norm(self.x)])
    ...     def backward(self, g):
    ...         return (g[0] * self.x / np.linalg.norm(self.x))[None, :]
    >>> step = Radius()
    >>> step.forward(np.array([[0.3, 0.4, 0.0]])).tolist(), step.backward(np.array([1.0])).tolist()
    ([0.5], [[0.6, 0.8, 0.0]])
    """

    out = None
    shape = None
    fresh_output = False

    def setup_out(self, out):
        """Use ``out`` (a view of the next step's input) as the output buffer, or allocate one."""
        self.out = np.empty(self.n_out) if out is None else out

    def check(self, x):
        """``x`` if its shape is ``shape``, else a ValueError naming the featurizer."""
        if x.shape != self.shape:
            self.shape_error(x)
        return x

    def expect_atoms(self, rows, expected, minimum, owner):
        """Positions check of an atom featurizer: (len(atoms), 3) with ``rows.atoms``, else ``expected`` atoms
        (-1: not known, then any count of at least ``minimum`` atoms)."""
        self.owner = owner
        if rows.atoms is not None:
            self.shape = (len(rows.atoms), 3)
            self.expected, self.minimum = len(rows.atoms), 0
        else:
            self.expected, self.minimum = expected, minimum
            self.shape = (expected, 3) if expected >= 0 else None
        if self.shape is None:
            self.check = self._check_open

    def _check_open(self, x):
        if x.ndim != 2 or x.shape[1] != 3 or x.shape[0] < self.minimum:
            self.shape_error(x)
        return x

    def shape_error(self, x):
        raise ValueError(f"{self.owner}: expected ({self.expected if self.expected >= 0 else 'n_atoms'}, 3) "
                         f"positions (nm), got {x.shape}.")

    def ops(self, x):
        return None

    def backward_ops(self, g):
        return None


# -- PLUMED actions -----------------------------------------------------------------------------------------
@functools.singledispatch
def plumed_lines(featurizer, used):
    """PLUMED action lines computing ``featurizer``'s features, and one argument label per feature.

    Register an implementation per featurizer class (``plumed_lines.register(cls)``), or
    :func:`not_exportable`. Lines use nm and radians, atoms numbered from 1 (:func:`plumed_atoms`),
    ``NOPBC``; labels come from :func:`plumed_label` with the set ``used`` (shared by all parts).

    Returns
    -------
    lines, labels : list of str

    Raises
    ------
    ValueError
        The class has no PLUMED equivalent.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.plumed_lines(cl.features.Distances(pairs=[[0, 3]]), set())
    (['d_0_3: DISTANCE ATOMS=1,4 NOPBC'], ['d_0_3'])
    """
    refused = {impl for impl, _ in _OPT_OUTS["plumed"].values()}
    exportable = sorted(c.__name__ for c, impl in plumed_lines.registry.items()
                        if c is not object and impl not in refused)
    raise ValueError(f"Cannot write PLUMED actions for a {type(featurizer).__name__} featurizer; exportable: "
                     f"{', '.join(exportable)} (register cvlearn.hooks.plumed_lines for another class).")


def not_exportable(cls, reason):
    """Register ``cls`` as having no PLUMED equivalent: exporting it raises ValueError(``reason``).

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.hooks_of(cl.features.AlignedPositions)["plumed"][:39]
    'not exportable: AlignedPositions has no'
    """
    @plumed_lines.register(cls)
    def _refuse(featurizer, used):
        raise ValueError(reason)

    _OPT_OUTS["plumed"][cls] = (_refuse, reason)


def plumed_label(name, used):
    """A PLUMED label from a feature name (letters, digits, underscores), unique among ``used`` (updated).

    Examples
    --------
    >>> import cvlearn as cl
    >>> used = set()
    >>> cl.hooks.plumed_label("phi-2", used), cl.hooks.plumed_label("phi-2", used), cl.hooks.plumed_label("1x", used)
    ('phi_2', 'phi_2_2', 'f_1x')
    """
    base = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not base or base[0].isdigit():
        base = f"f_{base}"
    label, k = base, 1
    while label in used:
        k += 1
        label = f"{base}_{k}"
    used.add(label)
    return label


def plumed_atoms(*indices):
    """0-based atom indices as PLUMED's comma-separated, 1-based atom numbers.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.plumed_atoms(0, 4, 6)
    '1,5,7'
    """
    return ",".join(str(int(i) + 1) for i in indices)


# -- saving and loading -------------------------------------------------------------------------------------
_BUILDERS = {}  # saved type name -> (class, build)


@functools.singledispatch
def to_config(module):
    """``module`` as plain JSON data: ``{"type": <class name>, ...}``, rebuilt by :func:`from_config`.

    Classes register with :func:`register_config`.

    Raises
    ------
    TypeError
        The class has no config hook.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.to_config(cl.features.Positions(1, 2))
    {'type': 'Positions', 'n_particles': 1, 'n_dims': 2, 'particles': [0]}
    """
    name = type(module).__name__
    raise TypeError(f"Cannot save a {name}: it has no config hook; register one with "
                    f"cvlearn.hooks.register_config({name}, dump, build), or save a CV without it.")


def from_config(config):
    """The module that :func:`to_config` described (its parameters and buffers come from the state dict).

    Raises
    ------
    ValueError
        An unknown ``type`` (saved by a newer cvlearn, or by a class whose hooks are not imported).

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.from_config({"type": "Positions", "n_particles": 1, "n_dims": 2, "particles": [0]}).n_features
    2
    """
    fields = dict(config)
    kind = fields.pop("type", None)
    if kind not in _BUILDERS:
        raise ValueError(f"Unknown module type {kind!r} in the saved file (saved by a newer cvlearn, or by a class "
                         "whose hooks are registered in a module not imported here?).")
    return _BUILDERS[kind][1](**fields)


def register_config(cls, dump, build):
    """Save ``cls`` as ``{"type": cls.__name__, **dump(module)}`` and load it with ``build(**fields)``.

    Parameters
    ----------
    cls : type
    dump : callable
        module -> dict of JSON data (a ``"type"`` entry in it is overwritten with the class name).
    build : callable
        Keyword arguments (the dict's entries) -> an instance of ``cls`` of the same shape.

    Raises
    ------
    ValueError
        Another class (of another module or qualified name) is registered under the same name; a
        class defined again (a reloaded module, a notebook cell run twice) replaces its old self.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> class Scale(torch.nn.Module):
    ...     def __init__(self, factor):
    ...         super().__init__()
    ...         self.factor = factor
    >>> cl.hooks.register_config(Scale, lambda m: {"factor": m.factor}, Scale)
    >>> cl.hooks.from_config(cl.hooks.to_config(Scale(2.5))).factor
    2.5
    """
    name = cls.__name__
    old = _BUILDERS.get(name, (cls, None))[0]
    if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"A class named {name} ({old.__module__}.{old.__qualname__}) is already saved under that "
                         "name; rename one of them.")
    _BUILDERS[name] = (cls, build)

    @to_config.register(cls)
    def _dump(module):
        return {"type": name, **dump(module)}


# -- periodicity ----------------------------------------------------------------------------------------
@functools.singledispatch
def periodicity(cv):
    """Default periodicity of a CV's components, in the form of ``cvlearn.OPES(periodic=...)``.

    False (all open), True (all periodic on (-pi, pi), radians), or one entry per component (None,
    True or a (lo, hi) period). Anything not registered (e.g. a plain function) is open.

    Examples
    --------
    >>> import mdtraj as md, cvlearn as cl
    >>> top = md.load_topology(cl.data.alanine_dipeptide_pdb())
    >>> cl.hooks.periodicity(cl.features.Dihedrals(top, "phi")), cl.hooks.periodicity(lambda x: x)
    (True, False)
    """
    return False


def not_periodic(cv):
    """The :func:`periodicity` implementation of classes whose components are all open.

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.not_periodic(cl.features.Distances(pairs=[[0, 1]]))
    False
    """
    return False


# -- introspection -----------------------------------------------------------------------------------------
def hooks_of(cls):
    """What each registry holds for ``cls`` itself: "registered", "autograd only: <reason>",
    "not exportable: <reason>", "inherited from <base>" (registered for a base class only, which may
    not fit a subclass), or None where nothing is registered (the generic default applies).

    Examples
    --------
    >>> import cvlearn as cl
    >>> cl.hooks.hooks_of(cl.features.Contacts)  # doctest: +ELLIPSIS
    {'lean': 'autograd only: ...', 'plumed': 'registered', 'config': 'registered', 'periodicity': 'registered'}
    """
    out = {}
    for concern, generic, opt_out in (("lean", lean_steps, "autograd only"), ("plumed", plumed_lines, "not exportable"),
                                      ("config", to_config, None), ("periodicity", periodicity, None)):
        owner = next(k for k in cls.__mro__ if k in generic.registry)  # as singledispatch picks, for single bases
        if owner is object:
            out[concern] = None
        elif owner is not cls:
            out[concern] = f"inherited from {owner.__name__}"
        else:
            impl = generic.registry[cls]
            reason = next((r for f, r in _OPT_OUTS.get(concern, {}).values() if f is impl), None)
            out[concern] = "registered" if reason is None else f"{opt_out}: {reason}"
    return out
