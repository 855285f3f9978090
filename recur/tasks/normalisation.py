"""Rescalings that put a series in the working range of tanh units, with their inverses."""

from __future__ import annotations

import numpy as np

from ..validation import as_float_array

__all__ = ["standardize", "rescale", "squash", "unsquash"]


def standardize(x, mean=None, std=None):
    """Zero mean and unit variance per channel: ``(x - mean) / std``.

    ``mean`` and ``std`` default to those of ``x`` over time (axis 0); pass the training
    statistics to standardise held-out data the same way.

    Returns
    -------
    z : ndarray, same shape as x
    mean, std : ndarray, shape (D,)
    """
    x = as_float_array(x, "x", ndim=(1, 2))
    mean = x.mean(axis=0) if mean is None else np.asarray(mean, dtype=float)
    std = x.std(axis=0) if std is None else np.asarray(std, dtype=float)
    if np.any(std == 0):
        raise ValueError("x has a constant channel (std 0), which cannot be standardised")
    return (x - mean) / std, mean, std


def rescale(x, low=-1.0, high=1.0):
    """Map each channel's range linearly onto ``[low, high]``."""
    x = as_float_array(x, "x", ndim=(1, 2))
    if not low < high:
        raise ValueError(f"low must be < high, got {low!r}, {high!r}")
    lo, hi = x.min(axis=0), x.max(axis=0)
    if np.any(hi == lo):
        raise ValueError("x has a constant channel, which cannot be rescaled")
    return low + (x - lo) * (high - low) / (hi - lo)


def squash(x, shift=1.0):
    """``tanh(x - shift)``: Jaeger & Haas's (2004) transform of Mackey-Glass into (-1, 1)."""
    return np.tanh(as_float_array(x, "x") - shift)


def unsquash(z, shift=1.0):
    """Inverse of :func:`squash`: ``arctanh(z) + shift``."""
    z = as_float_array(z, "z")
    if np.any(np.abs(z) >= 1):
        raise ValueError("z must lie strictly inside (-1, 1) to be unsquashed")
    return np.arctanh(z) + shift
