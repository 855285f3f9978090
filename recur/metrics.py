"""Pure metric functions on arrays. Time runs along axis 0 (``(T, D)`` or ``(T,)``)."""

from __future__ import annotations

import numpy as np

from .validation import as_float_array, check_in_interval, check_positive

__all__ = ["rmse", "nrmse", "valid_time", "memory_capacity", "overlap", "log_likelihood",
           "kl_divergence"]


def _pair(y_true, y_pred):
    y_true = as_float_array(y_true, "y_true", ndim=(1, 2))
    y_pred = as_float_array(y_pred, "y_pred", ndim=(1, 2), allow_nonfinite=True)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y_true.shape} "
                         f"and {y_pred.shape}")
    if y_true.shape[0] == 0:
        raise ValueError("y_true is empty")
    return y_true, y_pred


def rmse(y_true, y_pred):
    r"""Root mean squared error over all steps and channels."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def nrmse(y_true, y_pred):
    r"""Root mean squared error divided by the standard deviation of the truth.

    .. math::

        \mathrm{NRMSE} = \sqrt{\frac{\langle \|y_t - \hat y_t\|^2 \rangle_t}
                                    {\langle \|y_t - \bar y\|^2 \rangle_t}}

    1 is the error of predicting the mean; 0 is perfect.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    var = np.mean(np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=1))
    if var == 0:
        raise ValueError("y_true is constant: NRMSE is undefined")
    return float(np.sqrt(np.mean(np.sum((y_true - y_pred) ** 2, axis=1)) / var))


def valid_time(y_true, y_pred, *, threshold=0.4, lyapunov_time=None):
    r"""How long a generated trajectory stays close to the truth.

    The normalised error :math:`e_t = \|y_t - \hat y_t\| / \sqrt{\langle \|y - \bar y\|^2
    \rangle}` is compared with ``threshold``; the valid time is the number of steps before
    it first exceeds it (``T`` when it never does).

    Parameters
    ----------
    y_true, y_pred : array, shape (T, D) or (T,)
    threshold : float > 0
        0.4 follows Pathak et al. (2018).
    lyapunov_time : float, optional
        Steps per Lyapunov time; when given the result is in Lyapunov times.

    Returns
    -------
    float
    """
    y_true, y_pred = _pair(y_true, y_pred)
    check_positive(threshold, "threshold")
    scale = np.sqrt(np.mean(np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=1)))
    if scale == 0:
        raise ValueError("y_true is constant: the normalised error is undefined")
    err = np.sqrt(np.sum((y_true - y_pred) ** 2, axis=1)) / scale
    bad = ~(err <= threshold)  # NaN counts as a failure
    steps = int(np.argmax(bad)) if bad.any() else y_true.shape[0]
    if lyapunov_time is not None:
        check_positive(lyapunov_time, "lyapunov_time")
        return steps / float(lyapunov_time)
    return float(steps)


def memory_capacity(states, inputs, max_delay, *, alpha=1e-8, test_fraction=0.5,
                    return_per_delay=False):
    r"""Short-term memory capacity (Jaeger 2002), summed over delays.

    For each delay :math:`k = 1..K` a ridge readout of the state :math:`x_t` is trained to
    recall :math:`u_{t-k}`; its squared correlation with the truth on held-out steps is
    :math:`MC_k`, and :math:`MC = \sum_k MC_k`. For i.i.d. input :math:`MC \le N`.

    Parameters
    ----------
    states : array, shape (T, N)
        States driven by ``inputs`` (``states[t]`` has seen ``inputs[t]``), washout removed.
    inputs : array, shape (T,) or (T, 1)
        A scalar i.i.d. input sequence.
    max_delay : int
        Largest delay K; ``2 N`` covers what a network can hold.
    alpha : float
        Ridge penalty of the readouts.
    test_fraction : float in (0, 1)
        Share of the usable steps (after the first ``max_delay``) kept for evaluation.
    return_per_delay : bool

    Returns
    -------
    mc : float
    mc_k : ndarray, shape (K,)
        Only with ``return_per_delay``.
    """
    from .readouts.ridge import Ridge

    states = as_float_array(states, "states", ndim=2)
    u = as_float_array(inputs, "inputs", ndim=(1, 2))
    if u.ndim == 2:
        if u.shape[1] != 1:
            raise ValueError(f"inputs must be one channel, got shape {u.shape}")
        u = u[:, 0]
    if u.shape[0] != states.shape[0]:
        raise ValueError(f"states and inputs must have the same length, got {states.shape[0]} "
                         f"and {u.shape[0]}")
    check_positive(max_delay, "max_delay", integer=True)
    check_in_interval(test_fraction, "test_fraction", 0.0, 1.0, high_open=True)
    T = states.shape[0] - max_delay
    n_test = int(round(T * test_fraction))
    if T < 2 * max_delay or n_test < 10 or T - n_test < 10:
        raise ValueError(f"{states.shape[0]} steps are too few for max_delay={max_delay}: "
                         "use at least 3 * max_delay steps")
    X = states[max_delay:]
    # Column k-1 holds u[t-k] for the states x[t], t >= max_delay.
    targets = np.stack([u[max_delay - k : states.shape[0] - k] for k in range(1, max_delay + 1)],
                       axis=1)
    split = T - n_test
    readout = Ridge(alpha=alpha).fit(X[:split], targets[:split])
    pred = readout.predict(X[split:])
    truth = targets[split:]
    pc = pred - pred.mean(axis=0)
    tc = truth - truth.mean(axis=0)
    denom = np.sum(pc**2, axis=0) * np.sum(tc**2, axis=0)
    mc_k = np.where(denom > 0, np.sum(pc * tc, axis=0) ** 2 / np.where(denom > 0, denom, 1), 0.0)
    total = float(mc_k.sum())
    return (total, mc_k) if return_per_delay else total


def overlap(states, patterns):
    r"""Overlap of +-1 states with patterns, row by row.

    .. math::

        m = \frac{1}{N} \sum_{i=1}^{N} s_i\, \xi_i

    1 means the state is the pattern, -1 its mirror image, ~0 an unrelated state.

    Parameters
    ----------
    states, patterns : array, shape (..., N)
        Broadcast against each other (one pattern against many states, or row by row).

    Returns
    -------
    float or ndarray of shape ``broadcast(states, patterns).shape[:-1]``
    """
    s = as_float_array(states, "states")
    p = as_float_array(patterns, "patterns")
    if s.ndim == 0 or p.ndim == 0:
        raise ValueError("states and patterns must have a unit axis")
    if s.shape[-1] != p.shape[-1]:
        raise ValueError(f"states have {s.shape[-1]} units and patterns {p.shape[-1]}")
    m = np.mean(s * p, axis=-1)
    return float(m) if np.ndim(m) == 0 else m


def log_likelihood(net, params, data, *, max_units=20):
    r"""Exact mean log-likelihood per pattern of a small Boltzmann machine, in nats.

    .. math::

        \mathcal L = \frac1P \sum_{p=1}^{P} \log p(v_p), \qquad
        p(v) = \frac{1}{Z} \sum_h e^{-E(v, h)/T}

    computed by exact enumeration (:meth:`recur.Boltzmann.visible_log_probs`).

    Parameters
    ----------
    net : Boltzmann
    params : dict
    data : array, shape (P, n_visible) of 0/1
    max_units : int
        Refuse (``ValueError``) when more than this many units would be enumerated.

    Returns
    -------
    float
        At most 0; ``-log(P_distinct)`` is the best a model can do on ``P_distinct``
        equally frequent patterns.
    """
    return float(np.mean(net.visible_log_probs(params, data, max_units=max_units)))


def kl_divergence(net, params, data, *, max_units=20):
    r"""KL divergence from the empirical distribution of ``data`` to a Boltzmann machine's
    visible marginal, in nats, by exact enumeration.

    .. math::

        \mathrm{KL}(q \,\|\, p) = \sum_v q(v) \log \frac{q(v)}{p(v)}

    with :math:`q(v)` the frequency of pattern ``v`` among the rows of ``data``. Zero exactly
    when the model reproduces the data distribution.

    Parameters
    ----------
    net : Boltzmann
    params : dict
    data : array, shape (P, n_visible) of 0/1
    max_units : int

    Returns
    -------
    float >= 0
    """
    data = as_float_array(data, "data", ndim=(1, 2))
    data = data.reshape(1, -1) if data.ndim == 1 else data
    patterns, counts = np.unique(data, axis=0, return_counts=True)
    q = counts / counts.sum()
    log_p = net.visible_log_probs(params, patterns, max_units=max_units)
    return float(max(0.0, np.sum(q * (np.log(q) - log_p))))
