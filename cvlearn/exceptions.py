"""Exceptions and warnings raised by cvlearn.

Every error derives from :class:`CVLearnError`, so ``except cvlearn.CVLearnError`` catches all of
them; each also derives from the matching built-in (``ValueError``, ``RuntimeError``) so that
generic handlers keep working.
"""

__all__ = [
    "CVLearnError",
    "NotFittedError",
    "SimulationError",
    "GridError",
    "NoReferenceError",
    "PlumedFileError",
    "ConvergenceWarning",
    "SamplingWarning",
]


class CVLearnError(Exception):
    """Base class of every error raised by cvlearn.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> try:
    ...     cl.TICA(lagtime=1).transform(np.zeros((10, 2)))
    ... except cl.CVLearnError as err:
    ...     print(type(err).__name__)
    NotFittedError
    """


class NotFittedError(CVLearnError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (same contract as scikit-learn's).

    Also a ``ValueError`` and an ``AttributeError``, as scikit-learn's ``NotFittedError`` is.

    Examples
    --------
    >>> import numpy as np, cvlearn as cl
    >>> cl.PCA(n_components=1).transform(np.zeros((10, 2)))
    Traceback (most recent call last):
        ...
    cvlearn.exceptions.NotFittedError: This PCA is not fitted yet; call fit(X) first.
    """


class SimulationError(CVLearnError, RuntimeError):
    """A simulation produced non-finite energies, forces or positions.

    Attributes
    ----------
    step : int
        The integration step (counted from the start of the engine) at which it happened.
    walkers : list of int
        Indices of the walkers that blew up.
    trajectory : cvlearn.Trajectory or None
        Every frame recorded before the failure, so no data is lost.

    Examples
    --------
    A 1 ps timestep is far too long for a 25 kJ/mol double well of width 1 nm (1 amu particle):

    >>> import cvlearn as cl
    >>> engine = cl.Langevin(cl.systems.DoubleWell(), timestep=1.0, friction=1.0, n_walkers=2, seed=0)
    >>> try:
    ...     engine.run(100)
    ... except cl.SimulationError as err:
    ...     print(err.step, err.walkers, err.trajectory)
    6 [0, 1] Trajectory(0 frames x 2 walkers, 1 particles in 1-D, t = 0..0 ps)
    """

    def __init__(self, message, *, step, walkers, trajectory=None):
        super().__init__(message)
        self.step = step
        self.walkers = list(walkers)
        self.trajectory = trajectory


class ConvergenceWarning(UserWarning):
    """An iterative procedure stopped before it converged.

    Examples
    --------
    A network trained for 2 epochs, its validation loss still falling:

    >>> import warnings, numpy as np, cvlearn as cl
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always", cl.ConvergenceWarning)
    ...     _ = cl.AutoEncoder(layers=[4], max_epochs=2, seed=0).fit(X)
    >>> [str(w.message) for w in caught if w.category is cl.ConvergenceWarning]
    ['AutoEncoder reached max_epochs=2 with the validation loss still improving; increase max_epochs.']
    """


class SamplingWarning(UserWarning):
    """The data look insufficient for a reliable estimate (few transitions, few frames...).

    Raised, for example, by the OpenMM engine when the kinetic temperature of a run is far from the
    thermostat's (K). Turn it into an error where a script must not go on with poor sampling:

    Examples
    --------
    >>> import warnings, cvlearn as cl
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", cl.SamplingWarning)
    ...     try:
    ...         warnings.warn("only 2 transitions between the basins", cl.SamplingWarning)
    ...     except cl.SamplingWarning as w:
    ...         print("stopped:", w)
    stopped: only 2 transitions between the basins
    """


class GridError(CVLearnError, ValueError):
    """A CV left the range of a bias grid (with ``outside="error"``).

    Attributes
    ----------
    walkers : list of int
        The walkers whose CV is outside the grid.

    Examples
    --------
    >>> import cvlearn as cl
    >>> metad = cl.WellTemperedMetad(cl.features.Positions(1, 1), sigma=0.1, height=1.0, bias_factor=10, pace=10,
    ...                              grid=cl.Grid(-1.0, 1.0, 50), temperature=300.0)
    >>> try:
    ...     metad.evaluate([[0.0], [2.0]])            # CV values in nm; the grid ends at 1 nm
    ... except cl.GridError as err:
    ...     print(err.walkers)
    [1]
    """

    def __init__(self, message, *, walkers=()):
        super().__init__(message)
        self.walkers = list(walkers)


class NoReferenceError(CVLearnError, LookupError):
    """A system was asked for something it does not provide (slow coordinates, an exact free energy).

    Built-in systems provide both; a system made with ``from_function`` or a subclass provides them
    only if it was given ``slow=`` or overrides ``slow_coordinates`` / ``exact_free_energy``.

    Examples
    --------
    >>> import torch, cvlearn as cl
    >>> system = cl.systems.from_function(lambda x: 10.0 * (x ** 2).sum(dim=(1, 2)))
    >>> try:
    ...     system.slow_coordinates(torch.zeros(1, 1, 2))
    ... except cl.NoReferenceError as err:
    ...     print(err)
    FunctionSystem does not define its slow coordinates; pass slow= to from_function or override slow_coordinates().
    """


class PlumedFileError(CVLearnError, ValueError):
    """A PLUMED text file (COLVAR, HILLS, KERNELS, STATE) that cannot be read as it stands.

    The message names the file and the line (or the ``#! FIELDS`` block) at fault.

    Attributes
    ----------
    path : str
        The file.
    line : int or None
        1-based line number of the culprit (None when the fault is not one line, e.g. a missing column).

    Examples
    --------
    >>> import cvlearn as cl
    >>> _ = open("COLVAR", "w").write("#! FIELDS time phi\\n0.0 -1.5\\n0.1 oops\\n")
    >>> try:
    ...     cl.io.read_colvar("COLVAR")
    ... except cl.CVLearnError as err:
    ...     print(type(err).__name__, err.line)
    PlumedFileError 3
    """

    def __init__(self, message, *, path, line=None):
        super().__init__(message)
        self.path = path
        self.line = line
