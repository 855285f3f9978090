"""Checks applied where data enters recur, so that bad input fails with a message that names
the argument instead of a numpy traceback from deep inside."""

from __future__ import annotations

import numbers

import numpy as np


class DivergenceError(FloatingPointError):
    """States or weights became NaN or infinite during a run or training."""


class ConvergenceError(DivergenceError):
    """A network that should settle to a fixed point did not (within its iteration budget).

    Raised instead of returning states that are not a fixed point: an NGRAD rule's update is
    only meaningful between two fixed points.
    """


def as_float_array(x, name, *, ndim=None, dtype=None, allow_nonfinite=False):
    """Return ``x`` as a floating-point ndarray, checking its dimension and finiteness.

    Parameters
    ----------
    x : array_like
    name : str
        Argument name used in error messages.
    ndim : int or tuple of int, optional
        Accepted numbers of dimensions.
    dtype : numpy dtype, optional
        Target floating dtype; by default float64 unless ``x`` already is float32.
    allow_nonfinite : bool
        Accept NaN and inf.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept as the cause
        raise TypeError(f"{name} must be an array of numbers") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    arr = arr.astype(dtype, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {arr.shape}")
    if not allow_nonfinite and arr.size and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def check_positive(value, name, *, strict=True, integer=False):
    """Validate a positive scalar hyperparameter and return it unchanged."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if not np.isfinite(value) or value < 0 or (strict and value == 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def check_in_interval(value, name, low, high, *, low_open=True, high_open=False):
    """Validate that a real scalar lies in an interval such as (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{rb}, got {value!r}")
    return value
