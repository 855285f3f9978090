"""Training targets a series makes for itself, with no labels."""

from __future__ import annotations

from ..validation import as_float_array, check_positive

__all__ = ["next_step"]


def next_step(x, horizon=1):
    """Split a series into inputs and the values ``horizon`` steps later.

    ``u[t] = x[t]`` and ``y[t] = x[t + horizon]``: the series is its own teacher.

    Parameters
    ----------
    x : array, shape (T, D) or (T,)
        A 1-D series is treated as one channel.
    horizon : int >= 1

    Returns
    -------
    u : ndarray, shape (T - horizon, D)
    y : ndarray, shape (T - horizon, D)
    """
    x = as_float_array(x, "x", ndim=(1, 2))
    if x.ndim == 1:
        x = x[:, None]
    check_positive(horizon, "horizon", integer=True)
    if horizon >= x.shape[0]:
        raise ValueError(f"horizon ({horizon}) must be shorter than the series ({x.shape[0]} steps)")
    return x[:-horizon].copy(), x[horizon:].copy()
