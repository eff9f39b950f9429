"""Optional dependencies, imported on first use with one clear line when they are missing.

Shared by the packages that drive OpenMM (engine, physics, generative), so ``import cvlearn`` never loads it.
"""

__all__ = ["require_openmm"]


def require_openmm(what="cvlearn.engine.OpenMM"):
    """The openmm module (with app and unit), or an ImportError saying that ``what`` needs it.

    >>> from cvlearn._optional import require_openmm
    >>> require_openmm().unit.md_unit_system.name
    'MD'
    """
    try:
        import openmm
        import openmm.app
        import openmm.unit
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs OpenMM: pip install 'cvlearn[openmm]' (or pip install openmm).") from exc
    return openmm
