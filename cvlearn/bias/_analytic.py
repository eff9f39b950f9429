"""A torch autograd node for biases that compute their gradient alongside their value."""

import torch

__all__ = ["ValueWithGradient"]


class ValueWithGradient(torch.autograd.Function):
    """``ValueWithGradient.apply(s, fn)``: V(s) from ``fn(s) -> (V (n,), dV/ds (n, d))``, with that gradient
    saved for the backward pass: one small autograd node instead of a graph of ~100 tiny operations
    (grid interpolation, kernel sums), which is the MD hot path."""

    @staticmethod
    def forward(ctx, s, fn):
        with torch.no_grad():
            value, grad = fn(s)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output[:, None] * grad, None
