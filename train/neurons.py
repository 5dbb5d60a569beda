"""Spiking neurons and straight-through estimators for training.

The LIF here is the float twin of ``train.golden.lif_step``: tau = 2, hard reset to 0, spike if ``h >= th``.
In quant mode the leak uses ``floor`` so that, on integer inputs and thresholds, it computes exactly the
integer recursion of docs/integer_model.md (the gradient passes straight through the floor).
"""

import torch

SURROGATE_ALPHA = 4.0  # Spikformer's sigmoid surrogate


class SpikeFn(torch.autograd.Function):
    """Heaviside of ``u = (h - th) / unit`` forward; derivative of ``sigmoid(alpha * u)`` backward.

    ``unit`` is the value of 1.0 in the input's units (1 in float mode, the integer threshold scale in
    quant mode), so the surrogate has the same width whatever the units.
    """

    @staticmethod
    def forward(ctx, h_minus_th, unit):
        ctx.save_for_backward(h_minus_th, unit)
        return (h_minus_th >= 0).to(h_minus_th.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, unit = ctx.saved_tensors
        sig = torch.sigmoid(SURROGATE_ALPHA * x / unit)
        return grad * SURROGATE_ALPHA * sig * (1 - sig) / unit, None


def ste_floor(x):
    """floor(x) forward, identity backward."""
    return x + (torch.floor(x) - x).detach()


def ste_round(x):
    """round-half-even forward (torch.round, as numpy), identity backward."""
    return x + (torch.round(x) - x).detach()


def lif_update(state, x, th, unit, quant: bool):
    """One LIF step. Returns ``(spikes, new_state)`` as float tensors (spikes are 0/1)."""
    h = (state + x) / 2
    if quant:
        h = ste_floor(h)
    s = SpikeFn.apply(h - th, torch.as_tensor(unit, dtype=h.dtype))
    return s, h * (1 - s)


def binary_mask_ste(scores):
    """Hard mask ``scores > 0`` forward; gradient of ``sigmoid(scores)`` backward (DTS)."""
    soft = torch.sigmoid(scores)
    return (scores > 0).to(scores.dtype) + (soft - soft.detach())  # exactly 0/1 forward
