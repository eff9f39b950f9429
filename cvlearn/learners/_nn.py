"""Network building blocks of the nonlinear learners: standardization and MLPs, as torch modules."""

import torch

__all__ = ["Standardize", "mlp", "ACTIVATIONS"]

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU, "silu": torch.nn.SiLU,
               "softplus": torch.nn.Softplus}


class Standardize(torch.nn.Module):
    """(x - mean) / std with mean and std as buffers: part of the saved CV, never a separate scaler."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean).clone())
        self.register_buffer("std", torch.as_tensor(std).clone())

    def forward(self, x):
        return (x - self.mean) / self.std


def mlp(sizes, activation="tanh", last_activation=False):
    """Fully connected network with layer sizes ``sizes`` (input first) and ``activation`` between layers."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)
