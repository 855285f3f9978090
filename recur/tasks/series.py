"""Time series generators. Each returns a time-major array ``(T, D)`` and draws only from the
``rng`` it is given."""

from __future__ import annotations

import math

import numpy as np

from ..validation import check_positive

__all__ = ["mackey_glass", "lorenz", "narma", "sine_sum"]


def mackey_glass(n_steps, *, tau=17.0, beta=0.2, gamma=0.1, exponent=10, dt=0.1,
                 sample_step=1.0, x0=1.2, discard=1000.0, rng=None):
    r"""Mackey-Glass delay differential equation, sampled at a fixed step.

    .. math::

        \dot x(t) = \beta \frac{x(t - \tau)}{1 + x(t - \tau)^{n}} - \gamma x(t)

    Integrated by fourth-order Runge-Kutta with step ``dt``; the delayed values at half steps
    are the mean of the neighbouring grid points. The initial history is constant ``x0`` plus
    a small perturbation drawn from ``rng``, and the first ``discard`` time units are dropped
    so the series starts on the attractor (chaotic for ``tau >= 17``).

    Parameters
    ----------
    n_steps : int
        Number of samples returned.
    tau, beta, gamma, exponent : float
        Delay and coefficients (defaults: the chaotic ``tau = 17`` benchmark).
    dt : float
        Integration step; ``tau / dt`` and ``sample_step / dt`` must be whole numbers.
    sample_step : float
        Time between returned samples.
    x0 : float
    discard : float
        Transient dropped before the first sample, in time units.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    x : ndarray, shape (n_steps, 1)

    References
    ----------
    .. [1] M. C. Mackey and L. Glass, "Oscillation and chaos in physiological control systems",
       Science 197:287-289 (1977).
    .. [2] H. Jaeger and H. Haas, "Harnessing nonlinearity", Science 304:78-80 (2004).
    """
    check_positive(n_steps, "n_steps", integer=True)
    for name, value in (("tau", tau), ("dt", dt), ("sample_step", sample_step)):
        check_positive(value, name)
    check_positive(discard, "discard", strict=False)
    lag = tau / dt
    every = sample_step / dt
    if abs(lag - round(lag)) > 1e-9 or abs(every - round(every)) > 1e-9:
        raise ValueError(f"tau/dt and sample_step/dt must be whole numbers, got {lag} and {every}")
    lag, every = int(round(lag)), int(round(every))
    rng = np.random.default_rng(rng)
    n_discard = int(round(discard / dt))
    total = n_discard + n_steps * every
    x = np.empty(lag + total + 1)
    x[: lag + 1] = x0 + 0.02 * (rng.random(lag + 1) - 0.5)

    def f(xt, xd):
        return beta * xd / (1.0 + xd**exponent) - gamma * xt

    # Plain float arithmetic: a scalar RK4 step is ~1 us in Python, far below numpy overhead.
    h = dt
    for i in range(lag, lag + total):
        xt = x[i]
        d0, d1 = x[i - lag], x[i - lag + 1]
        dm = 0.5 * (d0 + d1)
        k1 = f(xt, d0)
        k2 = f(xt + 0.5 * h * k1, dm)
        k3 = f(xt + 0.5 * h * k2, dm)
        k4 = f(xt + h * k3, d1)
        x[i + 1] = xt + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    start = lag + n_discard + every
    return x[start : start + n_steps * every : every][:, None].copy()


def lorenz(n_steps, *, sigma=10.0, rho=28.0, beta=8.0 / 3.0, dt=0.02, discard=20.0, rng=None):
    r"""Lorenz (1963) system, integrated by fourth-order Runge-Kutta.

    .. math::

        \dot x = \sigma (y - x), \quad \dot y = x (\rho - z) - y, \quad \dot z = x y - \beta z

    The initial point is drawn near the attractor from ``rng`` and ``discard`` time units are
    dropped. The largest Lyapunov exponent at the default parameters is about 0.906, so one
    Lyapunov time is about ``1 / (0.906 * dt)`` samples.

    Returns
    -------
    x : ndarray, shape (n_steps, 3)
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(dt, "dt")
    check_positive(discard, "discard", strict=False)
    rng = np.random.default_rng(rng)
    s = np.array([1.0, 1.0, 20.0]) + rng.normal(0.0, 1.0, 3)

    def f(v):
        x, y, z = v
        return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])

    n_discard = int(round(discard / dt))
    out = np.empty((n_steps, 3))
    for i in range(n_discard + n_steps):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= n_discard:
            out[i - n_discard] = s
    return out


def narma(n_steps, *, order=10, rng=None):
    r"""NARMA system driven by i.i.d. uniform input (Atiya & Parlos 2000).

    .. math::

        y_{t+1} = 0.3\, y_t + 0.05\, y_t \sum_{i=0}^{n-1} y_{t-i}
                  + 1.5\, u_{t-n+1} u_t + 0.1, \qquad u_t \sim U[0, 0.5]

    Returns
    -------
    u : ndarray, shape (n_steps, 1)
        Input.
    y : ndarray, shape (n_steps, 1)
        Target: ``y[t]`` is the system output after input ``u[t]`` (so ``y_{t+1}`` above).

    Raises
    ------
    ValueError
        If the system diverges (possible for orders above about 10).
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(order, "order", integer=True)
    rng = np.random.default_rng(rng)
    u = rng.uniform(0.0, 0.5, n_steps + order)
    y = np.zeros(n_steps + order + 1)
    for t in range(order - 1, n_steps + order):
        window = y[t - order + 1 : t + 1].sum()
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * window + 1.5 * u[t - order + 1] * u[t] + 0.1
    if not np.isfinite(y).all() or np.abs(y).max() > 1e3:
        raise ValueError(f"NARMA-{order} diverged for this input draw; use a lower order")
    return u[order:, None].copy(), y[order + 1 :, None].copy()


def sine_sum(n_steps, *, frequencies=(0.2, 0.311, 0.42, 0.51), amplitudes=None, dt=1.0,
             rng=None):
    r"""Superimposed oscillators with random phases.

    .. math::

        x_t = \sum_k a_k \sin(\omega_k t\, \Delta t + \phi_k), \qquad \phi_k \sim U[0, 2\pi)

    The default angular frequencies are the multiple-superimposed-oscillator benchmark
    (Schmidhuber et al. 2007); the default amplitudes are ``1 / K``, so ``|x| <= 1``.

    Returns
    -------
    x : ndarray, shape (n_steps, 1)
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(dt, "dt")
    freqs = np.asarray(frequencies, dtype=float).ravel()
    if freqs.size == 0:
        raise ValueError("frequencies must name at least one frequency")
    amps = (np.full(freqs.size, 1.0 / freqs.size) if amplitudes is None
            else np.asarray(amplitudes, dtype=float).ravel())
    if amps.shape != freqs.shape:
        raise ValueError(f"amplitudes must have one entry per frequency ({freqs.size}), "
                         f"got {amps.size}")
    rng = np.random.default_rng(rng)
    phases = rng.uniform(0.0, 2.0 * math.pi, freqs.size)
    t = np.arange(n_steps)[:, None] * dt
    return (amps * np.sin(freqs * t + phases)).sum(axis=1, keepdims=True)
