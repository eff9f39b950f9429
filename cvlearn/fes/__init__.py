"""Free energy surfaces: from a bias or by reweighting frames; basins and free energy differences."""

from ._basin import Basin
from ._colvar import colvar_logweights, from_colvar
from ._reweight import delta_f_timeseries, from_bias, log_weights, reweight, transient_fraction
from ._surface import DeltaF, FreeEnergySurface

__all__ = ["Basin", "DeltaF", "FreeEnergySurface", "colvar_logweights", "delta_f_timeseries", "from_bias",
           "from_colvar", "log_weights", "reweight", "transient_fraction"]
