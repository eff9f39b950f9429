"""Units: nm, ps, kJ/mol, K, amu, radians (OpenMM's ``md_unit_system``, also PLUMED's defaults)."""

import numpy as np

__all__ = ["BOLTZMANN", "kT", "as_float", "as_array"]

#: Molar Boltzmann constant in kJ/(mol K) (CODATA 2018, as in OpenMM and PLUMED).
BOLTZMANN = 0.00831446261815324

_UNITS = {"nm": "nanometer", "ps": "picosecond", "kJ/mol": "kilojoule_per_mole", "K": "kelvin",
          "amu": "dalton", "1/ps": None}


def kT(temperature):
    """Thermal energy in kJ/mol at ``temperature`` (K)."""
    return BOLTZMANN * as_float(temperature, "K")


def as_float(value, unit):
    """Return ``value`` as a float in ``unit``; an ``openmm.unit.Quantity`` is converted once here.

    ``unit`` is one of "nm", "ps", "kJ/mol", "K", "amu", "1/ps".
    """
    if hasattr(value, "value_in_unit"):
        from openmm import unit as u

        target = u.picosecond**-1 if unit == "1/ps" else getattr(u, _UNITS[unit])
        return float(value.value_in_unit(target))
    return float(value)


def as_array(value, unit):
    """Return ``value`` (array_like or an ``openmm.unit.Quantity`` of arrays/Vec3s) as float64 numpy in ``unit``."""
    if hasattr(value, "value_in_unit"):
        from openmm import unit as u

        value = value.value_in_unit(u.picosecond**-1 if unit == "1/ps" else getattr(u, _UNITS[unit]))
    return np.asarray(value, dtype=np.float64)
