"""Network building blocks of the nonlinear learners: standardization and MLPs, as torch modules.

Here too their lean steps (:func:`cvlearn.hooks.lean_steps`: numpy value and gradient for the OpenMM
engine), for Standardize and for the torch layers the networks are built of.
"""

import numpy as np
import torch

from .. import hooks

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


# -- lean steps (cvlearn.hooks) of Standardize and of the torch modules the networks are made of ------------
@hooks.lean_steps.register(Standardize)
def _standardize_lean(m, rows):
    scale = 1.0 / hooks.float64(m.std)
    return [hooks.Affine(scale, -hooks.float64(m.mean) * scale, diagonal=True)]


@hooks.lean_steps.register(torch.nn.Identity)
def _identity_lean(m, rows):
    return []


@hooks.lean_steps.register(torch.nn.Sequential)
def _sequential_lean(m, rows):
    return [s for child in m for s in hooks.lean_steps(child, rows)]


@hooks.lean_steps.register(torch.nn.Linear)
def _linear_lean(m, rows):
    return [hooks.Affine(hooks.float64(m.weight).T, None if m.bias is None else hooks.float64(m.bias))]


@hooks.lean_steps.register(torch.nn.Tanh)
def _tanh_lean(m, rows):
    return [hooks.Tanh()]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@hooks.lean_steps.register(torch.nn.ReLU)
def _relu_lean(m, rows):
    return [hooks.Elementwise(lambda x: np.maximum(x, 0.0), lambda x, y: (x > 0).astype(np.float64))]


@hooks.lean_steps.register(torch.nn.SiLU)
def _silu_lean(m, rows):
    return [hooks.Elementwise(lambda x: x * _sigmoid(x), lambda x, y: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x))))]


@hooks.lean_steps.register(torch.nn.ELU)
def _elu_lean(m, rows):
    alpha = float(m.alpha)
    return [hooks.Elementwise(lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
                              lambda x, y: np.where(x > 0, 1.0, y + alpha))]


@hooks.lean_steps.register(torch.nn.Softplus)
def _softplus_lean(m, rows):
    beta, threshold = float(m.beta), float(m.threshold)

    def fn(x):  # torch's Softplus: the identity above threshold / beta
        bx = beta * x
        return np.where(bx > threshold, x, np.logaddexp(0.0, bx) / beta)

    def derivative(x, y):
        bx = beta * x
        return np.where(bx > threshold, 1.0, _sigmoid(bx))

    return [hooks.Elementwise(fn, derivative)]
