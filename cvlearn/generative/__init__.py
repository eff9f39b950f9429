"""Generative use of autoencoder CVs: decode structures, latent paths, quality reports, seeded walkers.

An autoencoder trained on aligned Cartesian coordinates (``cl.features.AlignedPositions``) decodes
any latent point to a structure (``AutoEncoder.generate``). This subpackage builds on it:
:func:`latent_path` interpolates between conformations or basins, :func:`structure_quality`
measures how physical generated structures are, and :func:`seed_walkers` relaxes structures
decoded where the simulation has not been, to start walkers there.
"""

from ._path import LatentPath, latent_path
from ._quality import StructureReport, openmm_energies, ramachandran_allowed, structure_quality
from ._seeding import SeededWalkers, seed_walkers

__all__ = ["LatentPath", "latent_path", "StructureReport", "structure_quality", "ramachandran_allowed",
           "openmm_energies", "SeededWalkers", "seed_walkers"]
