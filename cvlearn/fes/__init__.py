"""Free energy surfaces: from a bias or by reweighting frames; basins and free energy differences."""

from ._basin import Basin
from ._reweight import delta_f_timeseries, from_bias, log_weights, reweight
from ._surface import DeltaF, FreeEnergySurface

__all__ = ["Basin", "DeltaF", "FreeEnergySurface", "delta_f_timeseries", "from_bias", "log_weights", "reweight"]
