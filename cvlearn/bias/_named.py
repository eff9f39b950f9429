"""A CV that only names its components: for biases read from files (HILLS, OPES KERNELS/STATE) without their CV."""

import torch

__all__ = ["NamedCV"]


class NamedCV(torch.nn.Module):
    """Stands in for the CV of a bias read from a file: carries the CV names (``names``) for analysis
    (evaluate, free energies, reweighting on CV values) and refuses positions with a clear error.

    Examples
    --------
    >>> from cvlearn.bias._named import NamedCV
    >>> NamedCV(["phi", "psi"]).names
    ['phi', 'psi']
    """

    def __init__(self, names):
        super().__init__()
        self.names = list(names)

    def forward(self, positions):
        raise TypeError("This bias was read from a file without its CV; pass cv= when reading it (e.g. "
                        "read_hills(..., cv=...)) to apply it to positions.")
