"""Units: nm, ps, kJ/mol, K, amu, radians (OpenMM's ``md_unit_system``, also PLUMED's defaults)."""

import numpy as np

__all__ = ["BOLTZMANN", "kT", "as_float", "as_array"]

#: Molar Boltzmann constant in kJ/(mol K) (CODATA 2018, as in OpenMM and PLUMED).
BOLTZMANN = 0.00831446261815324

_UNITS = {"nm": "nanometer", "ps": "picosecond", "kJ/mol": "kilojoule_per_mole", "K": "kelvin",
          "amu": "dalton", "1/ps": None}


def kT(temperature):
    """Thermal energy in kJ/mol at ``temperature`` (K).

    Parameters
    ----------
    temperature : float or openmm.unit.Quantity
        K.

    Returns
    -------
    float
        ``BOLTZMANN * temperature``, kJ/mol.

    Examples
    --------
    >>> from cvlearn.units import kT
    >>> round(kT(300.0), 6)
    2.494339
    """
    return BOLTZMANN * as_float(temperature, "K")


def as_float(value, unit):
    """Return ``value`` as a float in ``unit``; an ``openmm.unit.Quantity`` is converted once here.

    ``unit`` is one of "nm", "ps", "kJ/mol", "K", "amu", "1/ps".

    Parameters
    ----------
    value : float or openmm.unit.Quantity
        A plain number is taken to be in ``unit`` already.
    unit : str

    Returns
    -------
    float

    Examples
    --------
    >>> from cvlearn.units import as_float
    >>> as_float(2, "ps")                                      # plain numbers pass through
    2.0
    >>> from openmm import unit
    >>> round(as_float(2 * unit.femtosecond, "ps"), 12)
    0.002
    >>> round(as_float(1 * unit.kilocalorie_per_mole, "kJ/mol"), 3)
    4.184
    """
    if hasattr(value, "value_in_unit"):
        from openmm import unit as u

        target = u.picosecond**-1 if unit == "1/ps" else getattr(u, _UNITS[unit])
        return float(value.value_in_unit(target))
    return float(value)


def as_array(value, unit):
    """Return ``value`` (array_like or an ``openmm.unit.Quantity`` of arrays/Vec3s) as float64 numpy in ``unit``.

    Parameters
    ----------
    value : array_like or openmm.unit.Quantity
        A plain array is taken to be in ``unit`` already.
    unit : str
        One of "nm", "ps", "kJ/mol", "K", "amu", "1/ps".

    Returns
    -------
    numpy.ndarray, float64

    Examples
    --------
    >>> from cvlearn.units import as_array
    >>> as_array([[0.1, 0.2, 0.3]], "nm")
    array([[0.1, 0.2, 0.3]])
    >>> import openmm
    >>> from openmm import unit
    >>> as_array([openmm.Vec3(1.0, 2.0, 3.0)] * unit.angstrom, "nm").round(12).tolist()
    [[0.1, 0.2, 0.3]]
    """
    if hasattr(value, "value_in_unit"):
        from openmm import unit as u

        value = value.value_in_unit(u.picosecond**-1 if unit == "1/ps" else getattr(u, _UNITS[unit]))
    return np.asarray(value, dtype=np.float64)
