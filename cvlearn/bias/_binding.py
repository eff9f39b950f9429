"""What every history-dependent bias does when an engine binds it: adopt the engine's temperature and timestep."""

__all__ = ["adopt_engine_settings"]


def adopt_engine_settings(bias, temperature, timestep, name):
    """Set ``bias.temperature`` (K) from the engine's unless the bias has its own, and ``bias.timestep`` (ps).

    A bias created with a temperature must run at it: its hill heights (well-tempered metadynamics)
    or its target distribution (OPES) assume it. ``name`` names the bias in the error.

    Raises
    ------
    ValueError
        If the bias's temperature differs from the engine's by more than 1e-9 K.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> b = SimpleNamespace(temperature=None, timestep=None)
    >>> adopt_engine_settings(b, 300.0, 0.002, "OPES")
    >>> b.temperature, b.timestep
    (300.0, 0.002)
    """
    if bias.temperature is None:
        bias.temperature = float(temperature)
    elif abs(bias.temperature - temperature) > 1e-9:
        raise ValueError(f"The {name} temperature ({bias.temperature} K) differs from the engine's ({temperature} K). "
                         f"Create the {name} bias without temperature= (it then adopts the engine's), or give both "
                         "the same temperature.")
    bias.timestep = float(timestep)
