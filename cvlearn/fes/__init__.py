"""Free energy surfaces: the result object, basins and free energy differences."""

from ._basin import Basin
from ._surface import DeltaF, FreeEnergySurface

__all__ = ["Basin", "DeltaF", "FreeEnergySurface"]
