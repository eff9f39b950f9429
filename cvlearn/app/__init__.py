"""The application layer: the workflows behind the ``cvlearn`` commands, as Python functions.

``cvlearn <command>`` parses its options (:mod:`cvlearn.cli`) and calls ``<command>_command`` in
:mod:`cvlearn.app.commands`, which runs one of the workflows here and prints what it did:

- :func:`run_quickstart` (``cvlearn quickstart``): the whole loop on Muller-Brown in about a minute;
- :func:`run_iterate` (``cvlearn iterate``): learn, bias, reweight and relearn, round after round;
- :func:`run_simulate`, :func:`run_learn`, :func:`run_bias` (``cvlearn simulate``, ``learn``, ``bias``):
  a molecule in OpenMM, a CV learned from trajectory files, metadynamics on it;
- :class:`DemoWalkers`, :class:`AlanineWalkers` (``cvlearn walkers``): the engines of walkers that share one
  bias (a model system on the built-in engine; alanine dipeptide in OpenMM).

Every workflow claims its output first (:func:`claim_output`, :func:`claim_file`: an earlier run is
never overwritten), and builds its CV learner with :func:`make_learner` (the methods in :data:`METHODS`).
Units: nm, ps, kJ/mol, K. ``import cvlearn`` does not import this package; matplotlib, OpenMM and Dask
are imported only by the workflows that use them.
"""

from .cv_learners import METHODS, make_learner
from .iterate import run_iterate
from .molecular import run_bias, run_learn, run_simulate
from .quickstart import quickstart_learner, run_quickstart
from .runs import RunFolderError, claim_file, claim_output
from .walkers_demo import AlanineWalkers, DemoWalkers

__all__ = ["run_quickstart", "run_iterate", "run_simulate", "run_learn", "run_bias", "DemoWalkers", "AlanineWalkers",
           "METHODS",
           "make_learner", "quickstart_learner", "claim_output", "claim_file", "RunFolderError"]
