"""Physics of molecules in torch: the potential energy of an OpenMM System, batched and differentiable.

:class:`ForceFieldEnergy` scores structures (e.g. an autoencoder's decoded frames) with the force field
OpenMM would use, term by term. OpenMM is imported only when a ForceFieldEnergy is built.
"""

from ._forcefield import ForceFieldEnergy
from ._system import SOLVENT_RESIDUES, SUPPORTED_FORCES, UnsupportedForceError, solute_atoms
from ._terms import ONE_4PI_EPS0

__all__ = ["ForceFieldEnergy", "UnsupportedForceError", "solute_atoms", "SUPPORTED_FORCES", "SOLVENT_RESIDUES",
           "ONE_4PI_EPS0"]
