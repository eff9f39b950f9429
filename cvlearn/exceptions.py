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
    "ConvergenceWarning",
    "SamplingWarning",
]


class CVLearnError(Exception):
    """Base class of every error raised by cvlearn."""


class NotFittedError(CVLearnError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (same contract as scikit-learn's)."""


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
    """

    def __init__(self, message, *, step, walkers, trajectory=None):
        super().__init__(message)
        self.step = step
        self.walkers = list(walkers)
        self.trajectory = trajectory


class ConvergenceWarning(UserWarning):
    """An iterative procedure stopped before it converged."""


class SamplingWarning(UserWarning):
    """The data look insufficient for a reliable estimate (few transitions, few frames...)."""


class GridError(CVLearnError, ValueError):
    """A CV left the range of a bias grid (with ``outside="error"``).

    Attributes
    ----------
    walkers : list of int
        The walkers whose CV is outside the grid.
    """

    def __init__(self, message, *, walkers=()):
        super().__init__(message)
        self.walkers = list(walkers)


class NoReferenceError(CVLearnError, LookupError):
    """A system was asked for something it does not provide (slow coordinates, an exact free energy).

    Built-in systems provide both; a system made with ``from_function`` or a subclass provides them
    only if it was given ``slow=`` or overrides ``slow_coordinates`` / ``exact_free_energy``.
    """
