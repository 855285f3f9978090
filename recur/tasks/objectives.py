"""What a network is trained to do with a signal it makes for itself.

An objective holds the data and says how the loss is computed on it. Two cover the
self-generated signals recur trains on:

- :class:`TeacherForced`: the true series is the input at every step and the readout predicts
  the next value (next-step prediction);
- :class:`ClosedLoop`: after a teacher-forced warm-up the network runs on its own predictions,
  each fed back as its next input, and the loss is the error of that free run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import as_float_array, check_positive

__all__ = ["TeacherForced", "ClosedLoop", "windows", "as_objective"]


@dataclass(frozen=True, eq=False)
class TeacherForced:
    r"""Next-step prediction with the true input at every step.

    .. math::

        L = \frac{1}{|S| D} \sum_{(b, t) \in S} \|W_{out} x_{b,t} + b_{out} - y_{b,t}\|^2

    over the steps after ``washout``.

    Parameters
    ----------
    inputs : array, shape (T, n_in) or (B, T, n_in)
    targets : array, shape (T, n_out) or (B, T, n_out)
    washout : int >= 0
        Initial steps left out of the loss, while the state forgets its start.
    """

    inputs: np.ndarray
    targets: np.ndarray
    washout: int = 0

    def __post_init__(self):
        u = as_float_array(self.inputs, "inputs", ndim=(2, 3))
        y = as_float_array(self.targets, "targets", ndim=(2, 3))
        if u.shape[:-1] != y.shape[:-1]:
            raise ValueError(f"inputs {u.shape} and targets {y.shape} must cover the same steps")
        check_positive(self.washout, "washout", strict=False, integer=True)
        if self.washout >= u.shape[-2]:
            raise ValueError(f"washout ({self.washout}) leaves no step of the {u.shape[-2]} "
                             "for the loss")
        object.__setattr__(self, "inputs", u)
        object.__setattr__(self, "targets", y)

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[-2]


@dataclass(frozen=True, eq=False)
class ClosedLoop:
    r"""Free-running generation after a teacher-forced warm-up.

    The network reads ``series[:warmup]``; from then on its prediction :math:`\hat y_h`
    (the readout of its state) is compared with ``series[warmup + h]`` and fed back as its
    next input, for ``h = 0 .. horizon-1``:

    .. math::

        L = \frac{1}{B H D} \sum_{b, h} \|\hat y_{b,h} - s_{b,\,warmup+h}\|^2

    Parameters
    ----------
    series : array, shape (T, D) or (B, T, D)
        ``T >= warmup + horizon``; a batch holds several windows (see :func:`windows`).
    warmup : int >= 1
    horizon : int >= 1
    """

    series: np.ndarray
    warmup: int
    horizon: int

    def __post_init__(self):
        s = as_float_array(self.series, "series", ndim=(2, 3))
        check_positive(self.warmup, "warmup", integer=True)
        check_positive(self.horizon, "horizon", integer=True)
        if s.shape[-2] < self.warmup + self.horizon:
            raise ValueError(f"series has {s.shape[-2]} steps, fewer than warmup + horizon = "
                             f"{self.warmup + self.horizon}")
        object.__setattr__(self, "series", s)

    @property
    def inputs(self) -> np.ndarray:
        """The teacher-forced warm-up inputs, shape (..., warmup, D)."""
        return self.series[..., : self.warmup, :]

    @property
    def targets(self) -> np.ndarray:
        """What the free run should produce, shape (..., horizon, D)."""
        return self.series[..., self.warmup : self.warmup + self.horizon, :]


def windows(x, length, n_windows=None, *, stride=None, rng=None):
    """Cut a long series into a batch of windows, shape (B, length, D).

    Windows start every ``stride`` steps (default ``length``, no overlap); with
    ``n_windows`` and ``rng``, that many start points are drawn at random instead.
    """
    x = as_float_array(x, "x", ndim=(1, 2))
    if x.ndim == 1:
        x = x[:, None]
    check_positive(length, "length", integer=True)
    if length > x.shape[0]:
        raise ValueError(f"length {length} exceeds the series ({x.shape[0]} steps)")
    last = x.shape[0] - length
    if n_windows is not None:
        check_positive(n_windows, "n_windows", integer=True)
    if stride is not None:
        check_positive(stride, "stride", integer=True)
    if n_windows is not None and rng is not None:
        starts = np.sort(np.random.default_rng(rng).integers(0, last + 1, n_windows))
    else:
        starts = np.arange(0, last + 1, stride or length)
        if n_windows is not None:
            starts = starts[:n_windows]
    return np.stack([x[s : s + length] for s in starts])


def as_objective(data):
    """Accept an objective, or an ``(inputs, targets)`` pair as :class:`TeacherForced`."""
    if isinstance(data, (TeacherForced, ClosedLoop)):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return TeacherForced(*data)
    raise TypeError("data must be a TeacherForced or ClosedLoop objective, or an "
                    f"(inputs, targets) pair, got {type(data).__name__}")
