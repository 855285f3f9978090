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


# -- synfire chains ------------------------------------------------------------------------

__all__ += ["PacketMeasures", "packet_measures", "propagation_success", "synfire_map",
            "synfire_separatrix"]


class PacketMeasures(dict):
    """Result of :func:`packet_measures`: a dict with ``"a"``, ``"sigma"``, ``"center"``
    (each (n_trials, n_pools)) and ``"pool_sizes"`` (n_pools,); keys readable as attributes."""

    __getattr__ = dict.__getitem__


def _pool_members(pools, n_units):
    if isinstance(pools, dict):
        members = [np.asarray(pools[k], dtype=np.intp) for k in pools]
    else:
        members = [np.asarray(m, dtype=np.intp) for m in pools]
    if not members:
        raise ValueError("pools is empty")
    for m in members:
        if m.ndim != 1 or (m.size and (m.min() < 0 or m.max() >= n_units)):
            raise ValueError(f"pools must hold unit indices in [0, {n_units})")
    return members


def packet_measures(raster, pools, *, t0, search=10.0, min_width=1.5, min_spikes=3, lag=None,
                    n_trials=None):
    r"""Spike count :math:`a_k` and temporal spread :math:`\sigma_k` of a volley in each pool.

    A volley travels down a chain of pools (Diesmann, Gewaltig & Aertsen 1999). For each
    trial and each pool ``k`` in order, the packet is looked for in a search window: the
    ``search`` ms centred on ``t0`` for the first pool, the ``search`` ms after the previous
    pool's packet centre for the others. Within it, the centre is the median spike time
    :math:`m` and the spread a robust one, :math:`s = 1.4826\,\mathrm{median}|t - m|`; the
    packet is the spikes within :math:`m \pm h`, :math:`h = \max(3 s, \text{min\_width})`
    (at most ``search / 2``), which keeps the sparse background spikes out. Then

    .. math::

        a_k = \#\{\text{packet spikes}\}, \qquad
        \sigma_k = \sqrt{\tfrac{1}{a_k} \textstyle\sum_i (t_i - \bar t)^2}

    and the centre is :math:`\bar t`. With fewer than ``min_spikes`` in the search window the
    packet is lost: :math:`a_k` counts the (background) spikes within ``min_width`` of the
    expected centre (previous centre plus the lag between pools, ``lag`` or the median lag
    seen so far in the trial, ``search / 2`` before any), :math:`\sigma_k` is NaN.

    Parameters
    ----------
    raster : recur.rules.SpikeTrains
        Spikes of a run (``SpikingNet.run``); times are ``steps * dt`` ms.
    pools : dict of label to unit indices, or sequence of index arrays
        The chain's pools in order (``topology.pools``).
    t0 : float, ms
        Centre of the packet in the first pool (where it was injected).
    search : float > 0, ms
    min_width : float > 0, ms
    min_spikes : int >= 1
    lag : float, ms, optional
    n_trials : int, optional
        Trials of the run (default: the highest trial with a spike, plus one).

    Returns
    -------
    PacketMeasures
        ``a`` (int, (n_trials, n_pools)), ``sigma`` (ms), ``center`` (ms), ``pool_sizes``.
    """
    check_positive(search, "search")
    check_positive(min_width, "min_width")
    check_positive(min_spikes, "min_spikes", integer=True)
    if lag is not None:
        check_positive(lag, "lag")
    members = _pool_members(pools, raster.n_units)
    pool_of = np.full(raster.n_units, -1, dtype=np.intp)
    for k, idx in enumerate(members):
        pool_of[idx] = k
    if raster.trials is None:
        trial_of = np.zeros(raster.units.size, dtype=np.intp)
        B = 1
    else:
        trial_of = np.asarray(raster.trials)
        B = int(trial_of.max()) + 1 if trial_of.size else 1
    if n_trials is not None:
        if check_positive(n_trials, "n_trials", integer=True) < B:
            raise ValueError(f"n_trials={n_trials}, but the raster has spikes of trial {B - 1}")
        B = n_trials
    times = np.asarray(raster.steps) * float(raster.dt)
    K = len(members)
    a = np.zeros((B, K), dtype=np.intp)
    sigma = np.full((B, K), np.nan)
    center = np.full((B, K), np.nan)
    k_of = pool_of[np.asarray(raster.units)]
    # Group the spike times by (trial, pool) once.
    order = np.lexsort((times, k_of, trial_of))
    key = trial_of[order] * (K + 1) + (k_of[order] + 1)
    bounds = np.searchsorted(key, np.arange(B * (K + 1) + 1))
    sorted_t = times[order]
    for b in range(B):
        lags = []
        prev = None
        for k in range(K):
            g = b * (K + 1) + k + 1
            t = sorted_t[bounds[g]:bounds[g + 1]]
            lo, hi = (t0 - search / 2, t0 + search / 2) if prev is None else \
                (prev, prev + search)
            win = t[(t >= lo) & (t < hi)]
            if win.size >= min_spikes:
                m = np.median(win)
                s = 1.4826 * np.median(np.abs(win - m))
                h = min(max(3.0 * s, min_width), search / 2)
                pk = win[np.abs(win - m) <= h]
                a[b, k] = pk.size
                sigma[b, k] = pk.std()
                center[b, k] = pk.mean()
                if prev is not None:
                    lags.append(center[b, k] - prev)
            else:
                step = lag if lag is not None else (float(np.median(lags)) if lags
                                                    else search / 2)
                guess = t0 if prev is None else prev + step
                a[b, k] = int(np.sum(np.abs(t - guess) <= min_width))
                center[b, k] = guess
            prev = center[b, k]
    return PacketMeasures(a=a, sigma=sigma, center=center,
                          pool_sizes=np.array([m.size for m in members]))


def propagation_success(measures, pool_sizes=None, *, fraction=0.5, pool=-1):
    r"""Whether a volley reached a pool: :math:`a_k \ge` ``fraction`` of the pool, per trial.

    Parameters
    ----------
    measures : PacketMeasures or int array (n_trials, n_pools)
        From :func:`packet_measures`, or the counts ``a`` themselves.
    pool_sizes : int array (n_pools,), optional
        Needed when ``measures`` is an array.
    fraction : float in (0, 1]
    pool : int
        Which pool must be reached (default: the last).

    Returns
    -------
    bool ndarray, shape (n_trials,)
    """
    check_in_interval(fraction, "fraction", 0.0, 1.0)
    if isinstance(measures, dict):
        a, sizes = np.asarray(measures["a"]), np.asarray(measures["pool_sizes"])
    else:
        if pool_sizes is None:
            raise ValueError("pool_sizes is needed when measures is an array of counts")
        a, sizes = np.asarray(measures), np.broadcast_to(np.asarray(pool_sizes),
                                                         np.shape(measures)[-1:])
    if a.ndim != 2:
        raise ValueError(f"measures must be (n_trials, n_pools), got shape {a.shape}")
    return a[:, pool] >= fraction * sizes[pool]


def synfire_map(a, pool_size, p, theta):
    r"""Mean-field map of a binary synfire chain (Herrmann, Hertz & Pruegel-Bennett 1995).

    .. math::

        a_{k+1} = w\,P[\mathrm{Bin}(a_k, c) \ge \theta]

    ``w`` = ``pool_size`` units per pool, each connected to each unit of the previous pool
    with probability ``c`` = ``p`` and firing when at least ``theta`` of its inputs fired.
    ``a`` may be real (the binomial tail is continued through the regularised incomplete
    beta function, :math:`P[\mathrm{Bin}(n, c) \ge \theta] = I_c(\theta, n - \theta + 1)`).

    Parameters
    ----------
    a : float or array
        Active units in pool ``k``.
    pool_size : int
    p : float in (0, 1]
    theta : float > 0

    Returns
    -------
    float or ndarray
    """
    from scipy.special import betainc

    check_positive(pool_size, "pool_size", integer=True)
    check_in_interval(p, "p", 0.0, 1.0)
    check_positive(theta, "theta")
    a = np.asarray(a, dtype=float)
    theta_int = np.ceil(theta)
    with np.errstate(invalid="ignore"):
        tail = np.where(a >= theta_int, betainc(theta_int, np.maximum(a - theta_int + 1, 1e-300),
                                                p), 0.0)
    out = pool_size * tail
    return float(out) if out.ndim == 0 else out


def synfire_separatrix(pool_size, p, theta, *, tol=1e-10):
    r"""Unstable fixed point :math:`a^*` of :func:`synfire_map`: volleys above it grow toward
    the stable state near ``pool_size``, volleys below it die.

    Found by bisection on :math:`f(a) = \mathrm{map}(a) - a` between ``theta`` and the
    upper stable fixed point. For ``pool_size=100, p=0.5, theta=20``: 36.97.

    Returns
    -------
    float
        NaN when the map has no unstable fixed point (no bistability).
    """
    check_positive(pool_size, "pool_size", integer=True)
    check_positive(tol, "tol")

    def f(x):
        return synfire_map(x, pool_size, p, theta) - x

    grid = np.linspace(np.ceil(theta), pool_size, 4 * pool_size + 1)
    vals = f(grid)
    cross = np.flatnonzero((vals[:-1] < 0) & (vals[1:] >= 0))
    if cross.size == 0:
        return float("nan")
    lo, hi = grid[cross[0]], grid[cross[0] + 1]
    # At most 200 halvings: below the float spacing of a the interval stops shrinking.
    for _ in range(200):
        if hi - lo <= tol:
            break
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return float(0.5 * (lo + hi))
