r"""Local (Hebbian) rules: each weight changes with the activity on its two sides only.

Every rule here requires :class:`~recur.rules.evidence.Activity` and reads the
:class:`~recur.rules.evidence.ActivityTrace` the network collected: for each parameter
``name``, ``pre[name]`` (S, n_pre) and ``post[name]`` (S, n_post) over ``S`` samples (time
steps, flattened over sequences). Conventions shared by all of them:

- ``W[i, j]`` is the weight from unit ``j`` onto unit ``i`` (``W[post, pre]``); the networkx
  edge ``(u, v)`` (``u -> v``) is ``W[v, u]``, so ``W = A.T``.
- Each rule returns the change to *add* (an improvement direction in the rule's own sense;
  there is no gradient here). Chain with :func:`~recur.rules.scale` or pass
  ``learning_rate``.
- Sums over samples are divided by ``S``, so a learning rate does not depend on how long the
  sequences or chunks are: the update is the *mean* per-sample change.
- Which parameters: by default every matrix parameter that has activity in the trace and is
  in ``params`` (for the ESN: ``"W"``, ``"W_in"``, ``"W_out"``); ``params=("W",)`` restricts
  the rule (as do :func:`~recur.rules.partition` and :func:`~recur.rules.masked_by`).
- A sparse (CSR) weight matrix gets an update with exactly its structure, computed by
  :func:`recur.masked.masked_outer` in O(samples x edges) time and memory, never O(N^2). A
  dense matrix gets the full outer product; the network's ``constrain`` (called by
  :func:`recur.train`) keeps a dense ``W`` on its graph.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from scipy.signal import lfilter

from ..masked import edge_rows, masked_outer, values, with_values
from .evidence import Activity, ActivityTrace
from .rule import Rule

__all__ = ["hebbian", "anti_hebbian", "oja", "bcm", "covariance", "intrinsic_plasticity"]

_ACTIVITY = Activity()


# -- validation ----------------------------------------------------------------------------

def _check_real(value, name, *, low=None, high=None, low_open=True, high_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return float(value)


def _check_names(names):
    """``None`` (every eligible parameter) or a non-empty tuple of parameter names."""
    if names is None:
        return None
    if isinstance(names, str):
        names = (names,)
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"params must be None or a sequence of parameter names, got "
                        f"{names!r}") from None
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"params must be None or a non-empty sequence of parameter names, got "
                        f"{names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"params names a parameter twice: {names!r}")
    return names


def _is_matrix(p):
    return sp.issparse(p) or np.ndim(p) == 2


def _trace(evidence, rule) -> ActivityTrace:
    trace = evidence[_ACTIVITY]
    if not isinstance(trace, ActivityTrace):
        raise TypeError(f"{rule} needs an ActivityTrace as its Activity evidence, got "
                        f"{type(trace).__name__}")
    return trace


def _selected(trace, params, names, rule):
    """Names of the parameters the rule updates on this evidence."""
    if names is None:
        chosen = [n for n in trace.pre if n in trace.post and n in params
                  and _is_matrix(params[n])]
        if not chosen:
            raise ValueError(f"{rule} found no weight matrix with activity on both sides: the "
                             f"trace has {sorted(trace.pre)}, params has {sorted(params)}")
        return chosen
    for n in names:
        if n not in trace.pre or n not in trace.post:
            raise ValueError(f"{rule} was asked to update {n!r}, but the activity trace has "
                             f"pre/post activity for {sorted(set(trace.pre) & set(trace.post))} "
                             "only")
        if n not in params:
            raise KeyError(f"{rule} was asked to update {n!r}, which params does not hold "
                           f"(it has {sorted(params)})")
    return list(names)


def _pair(trace, name, like, rule):
    """Validated (post, pre) of parameter ``name``, each (S, n)."""
    post = np.asarray(trace.post[name])
    pre = np.asarray(trace.pre[name])
    post = post.reshape(-1, 1) if post.ndim == 1 else post
    pre = pre.reshape(-1, 1) if pre.ndim == 1 else pre
    if post.ndim != 2 or pre.ndim != 2:
        raise ValueError(f"{rule}: activity of {name!r} must be (samples, units), got post "
                         f"{post.shape}, pre {pre.shape}")
    if post.shape[0] != pre.shape[0]:
        raise ValueError(f"{rule}: post and pre activity of {name!r} have {post.shape[0]} and "
                         f"{pre.shape[0]} samples")
    if post.shape[0] == 0:
        raise ValueError(f"{rule}: the activity trace of {name!r} has no samples")
    shape = like.shape
    if post.shape[1] != shape[0] or pre.shape[1] != shape[1]:
        raise ValueError(f"{rule}: post {post.shape} and pre {pre.shape} activity do not match "
                         f"parameter {name!r} of shape {tuple(shape)}")
    return post, pre


def _as_matrix(p):
    """A bias vector (n,) is the matrix (n, 1) reading a constant presynaptic 1."""
    if sp.issparse(p) and p.format != "csr":
        raise TypeError(f"a sparse weight matrix must be CSR (as recur networks make them), "
                        f"got {p.format.upper()}")
    return p if _is_matrix(p) else np.asarray(p).reshape(-1, 1)


def _shaped(update, p, mask=None):
    """The update in ``p``'s shape; a dense update is zeroed where ``mask`` (the graph) has no
    connection, so transforms chained after the rule never see off-graph entries."""
    if mask is not None and not sp.issparse(update):
        update = np.where(mask, update, 0.0)
    return update if _is_matrix(p) else np.asarray(update).reshape(np.shape(p))


def _row_scaled(p, factor):
    """``factor[i] * p[i, j]`` on ``p``'s structure."""
    if sp.issparse(p):
        return with_values(p, p.data * factor[edge_rows(p)])
    p = np.asarray(p)
    return factor.reshape((-1,) + (1,) * (p.ndim - 1)) * p


def _running_before(x, start, tau):
    r"""Exponential running average seen *before* each sample.

    ``m_0 = start``, :math:`m_{s+1} = m_s + (x_s - m_s) / \tau`. Returns ``(m_0 .. m_{S-1})``
    (S, n) and ``m_S`` (n,), in O(S n) through a first-order IIR filter.
    """
    a = 1.0 / tau
    after, _ = lfilter([a], [1.0, -(1.0 - a)], x, axis=0, zi=((1.0 - a) * start)[None, :])
    before = np.concatenate([start[None, :], after[:-1]], axis=0)
    return before, after[-1].copy()


# -- rules ---------------------------------------------------------------------------------

def _outer_rule(name, sign, learning_rate, params):
    learning_rate = _check_real(learning_rate, "learning_rate", low=0.0)
    names = _check_names(params)
    label = name

    def update(evidence, state, prm, *, rng=None):
        trace = _trace(evidence, label)
        out = {}
        for n in _selected(trace, prm, names, label):
            p = _as_matrix(prm[n])
            post, pre = _pair(trace, n, p, label)
            u = masked_outer(post, pre, p)
            out[n] = _shaped(with_values(u, values(u) * (sign * learning_rate / post.shape[0])),
                             prm[n], trace.masks.get(n))
        return out, state

    return Rule(name=name, hparams={"learning_rate": learning_rate, "params": names},
                update=update, requires=_ACTIVITY)


def hebbian(learning_rate=1.0, *, params=None):
    r"""Plain Hebbian learning: a weight grows with the correlation of its two sides.

    .. math::

        \Delta W_{ij} = \frac{\eta}{S} \sum_{s=1}^{S} \mathrm{post}_{s,i}\, \mathrm{pre}_{s,j}

    over the ``S`` samples of the activity trace, only on existing connections
    (``W[i, j]``: from unit ``j`` onto unit ``i``).

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`.
    params : sequence of str, optional
        Parameters to update; by default every weight matrix with activity in the trace
        (for the ESN ``"W"``, ``"W_in"``, ``"W_out"``).

    Returns
    -------
    Rule
        ``requires = Activity()``; stateless.

    Notes
    -----
    Unbounded: the weights of correlated units grow without limit. Bound them with
    :func:`~recur.rules.normalize_rows`, :func:`~recur.rules.weight_decay` or
    :func:`~recur.rules.heterosynaptic_cap`, or use :func:`oja` or :func:`bcm`.

    References
    ----------
    .. [1] D. O. Hebb, *The Organization of Behavior*, Wiley (1949).
    """
    return _outer_rule("hebbian", 1.0, learning_rate, params)


def anti_hebbian(learning_rate=1.0, *, params=None):
    r"""Anti-Hebbian learning: a weight shrinks with the correlation of its two sides.

    .. math::

        \Delta W_{ij} = -\frac{\eta}{S} \sum_{s=1}^{S} \mathrm{post}_{s,i}\, \mathrm{pre}_{s,j}

    Decorrelates the units it connects (lateral inhibition learned from activity).

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`.
    params : sequence of str, optional
        Parameters to update; by default every weight matrix with activity in the trace.

    Returns
    -------
    Rule
        ``requires = Activity()``; stateless.

    References
    ----------
    .. [1] D. O. Hebb, *The Organization of Behavior*, Wiley (1949).
    """
    return _outer_rule("anti_hebbian", -1.0, learning_rate, params)


def oja(learning_rate=1.0, *, params=None):
    r"""Oja's rule: Hebbian growth with a decay that keeps each row's norm near 1.

    .. math::

        \Delta W_{ij} = \frac{\eta}{S} \sum_{s=1}^{S}
            \mathrm{post}_{s,i} \left(\mathrm{pre}_{s,j} - \mathrm{post}_{s,i} W_{ij}\right)
        = \frac{\eta}{S}\Big[\sum_s \mathrm{post}_{s,i}\mathrm{pre}_{s,j}
            - \Big(\sum_s \mathrm{post}_{s,i}^2\Big) W_{ij}\Big]

    For a linear unit :math:`y = w^\top x` on zero-mean input, :math:`w` converges to the
    unit-norm principal eigenvector of :math:`E[x x^\top]` (up to sign).

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`; iterated, ``learning_rate * <y^2>`` must stay well below 1.
    params : sequence of str, optional
        Parameters to update; by default every weight matrix with activity in the trace.

    Returns
    -------
    Rule
        ``requires = Activity()``; stateless.

    Notes
    -----
    The decay uses the parameter's current value ``W[i, j]`` (so the update is only
    meaningful when the trace was collected with those same parameters). On a sparse ``W``
    both terms live on the graph's edges: the row being normalised is the unit's *existing*
    incoming weights.

    References
    ----------
    .. [1] E. Oja, "A simplified neuron model as a principal component analyzer",
       J. Math. Biology 15:267-273 (1982).
    """
    learning_rate = _check_real(learning_rate, "learning_rate", low=0.0)
    names = _check_names(params)

    def update(evidence, state, prm, *, rng=None):
        trace = _trace(evidence, "oja")
        out = {}
        for n in _selected(trace, prm, names, "oja"):
            p = _as_matrix(prm[n])
            post, pre = _pair(trace, n, p, "oja")
            hebb = values(masked_outer(post, pre, p))
            decay = values(_row_scaled(p, np.sum(post.astype(np.float64) ** 2, axis=0)))
            u = with_values(p, (hebb - decay) * (learning_rate / post.shape[0]))
            out[n] = _shaped(u, prm[n], trace.masks.get(n))
        return out, state

    return Rule(name="oja", hparams={"learning_rate": learning_rate, "params": names},
                update=update, requires=_ACTIVITY)


def _init_unit_state(prm, names, fill):
    """``{name: array (n_post,) of fill}`` for the parameters a stateful rule may update."""
    chosen = names if names is not None else [n for n, p in prm.items() if _is_matrix(p)]
    return {n: np.full(np.shape(prm[n])[0], fill, dtype=np.float64) for n in chosen if n in prm}


def bcm(learning_rate=1.0, *, tau=100.0, theta_init=None, params=None):
    r"""Bienenstock-Cooper-Munro rule with a sliding modification threshold.

    For each sample ``s`` in order,

    .. math::

        \Delta W_{ij} = \frac{\eta}{S} \sum_{s=1}^{S}
            \mathrm{post}_{s,i}\left(\mathrm{post}_{s,i} - \theta_{s,i}\right)\mathrm{pre}_{s,j},
        \qquad
        \theta_{s+1,i} = \theta_{s,i} + \frac{1}{\tau}\left(\mathrm{post}_{s,i}^2
            - \theta_{s,i}\right)

    Activity above the threshold potentiates, below it depresses; the threshold tracks
    :math:`\langle \mathrm{post}^2 \rangle` (Intrator & Cooper's form), and because it grows
    faster than the activity it stabilises the weights.

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`.
    tau : float >= 1
        Time constant of the threshold, in samples (time steps): the threshold is an
        exponential running average of :math:`\mathrm{post}^2` over about ``tau`` samples,
        carried across updates (and chunks of a stream) in the rule state.
    theta_init : float >= 0 or None
        Starting threshold. ``None`` starts it at the mean of :math:`\mathrm{post}^2` over the
        first evidence the rule sees (each unit at its own equilibrium).
    params : sequence of str, optional
        Parameters to update; by default every weight matrix with activity in the trace.

    Returns
    -------
    Rule
        ``requires = Activity()``. State: ``{name: theta (n_post,)}``, the threshold of each
        postsynaptic unit of each parameter, as it stands after the last sample seen.

    Notes
    -----
    :math:`\theta_{s}` is the threshold *before* sample ``s`` is seen; the sample then moves it.
    The threshold sequence is computed exactly (a first-order linear recursion, evaluated as
    an IIR filter) in O(S x units). BCM was stated for non-negative rates; on tanh units the
    same arithmetic applies to signed activity.

    References
    ----------
    .. [1] E. L. Bienenstock, L. N. Cooper and P. W. Munro, "Theory for the development of
       neuron selectivity: orientation specificity and binocular interaction in visual
       cortex", J. Neurosci. 2:32-48 (1982).
    .. [2] N. Intrator and L. N. Cooper, "Objective function formulation of the BCM theory
       of visual cortical plasticity", Neural Networks 5:3-17 (1992).
    """
    learning_rate = _check_real(learning_rate, "learning_rate", low=0.0)
    tau = _check_real(tau, "tau", low=1.0, low_open=False)
    if theta_init is not None:
        theta_init = _check_real(theta_init, "theta_init", low=0.0, low_open=False)
    names = _check_names(params)

    def init(prm):
        return _init_unit_state(prm, names, np.nan if theta_init is None else theta_init)

    def update(evidence, state, prm, *, rng=None):
        trace = _trace(evidence, "bcm")
        state = dict(state or {})
        out = {}
        for n in _selected(trace, prm, names, "bcm"):
            p = _as_matrix(prm[n])
            post, pre = _pair(trace, n, p, "bcm")
            post64 = post.astype(np.float64)
            sq = post64**2
            theta = state.get(n)
            if theta is None:
                theta = np.full(post.shape[1], np.nan if theta_init is None else theta_init)
            theta = np.where(np.isnan(theta), sq.mean(axis=0), theta)
            before, end = _running_before(sq, theta, tau)
            phi = post64 * (post64 - before)
            u = masked_outer(phi, pre, p)
            out[n] = _shaped(with_values(u, values(u) * (learning_rate / post.shape[0])), prm[n],
                             trace.masks.get(n))
            state[n] = end
        return out, state

    return Rule(name="bcm", hparams={"learning_rate": learning_rate, "tau": tau,
                                     "theta_init": theta_init, "params": names},
                init=init, update=update, requires=_ACTIVITY)


def covariance(learning_rate=1.0, *, average="batch", tau=100.0, params=None):
    r"""Covariance rule: weights follow the covariance of their two sides' fluctuations.

    .. math::

        \Delta W_{ij} = \frac{\eta}{S} \sum_{s=1}^{S}
            \left(\mathrm{post}_{s,i} - \langle \mathrm{post}_i \rangle\right)
            \left(\mathrm{pre}_{s,j} - \langle \mathrm{pre}_j \rangle\right)

    Unlike :func:`hebbian` it can depress as well as potentiate, and constant activity (a
    bias) does not drive it.

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`.
    average : {"batch", "running"}
        How the means :math:`\langle\cdot\rangle` are taken.

        - ``"batch"``: the mean over the ``S`` samples of this evidence; the update is then
          exactly :math:`\eta` times the sample covariance (divided by ``S``). Stateless.
        - ``"running"``: exponential running averages over about ``tau`` samples, kept in
          the rule state and carried across updates and chunks:
          :math:`m_{s+1} = m_s + (a_s - m_s)/\tau`, and sample ``s`` is centred by
          :math:`m_s`, the average of the samples *before* it. The averages start at the
          means of the first evidence.
    tau : float >= 1
        Time constant of the running averages, in samples; used with ``average="running"``.
    params : sequence of str, optional
        Parameters to update; by default every weight matrix with activity in the trace.

    Returns
    -------
    Rule
        ``requires = Activity()``. State: ``None`` for ``"batch"``; for ``"running"``
        ``{name: (post_mean (n_post,), pre_mean (n_pre,))}``.

    References
    ----------
    .. [1] T. J. Sejnowski, "Storing covariance with nonlinearly interacting neurons",
       J. Math. Biology 4:303-321 (1977).
    """
    learning_rate = _check_real(learning_rate, "learning_rate", low=0.0)
    if average not in ("batch", "running"):
        raise ValueError(f"average must be 'batch' or 'running', got {average!r}")
    tau = _check_real(tau, "tau", low=1.0, low_open=False)
    names = _check_names(params)

    def init(prm):
        if average == "batch":
            return None
        return {}

    def update(evidence, state, prm, *, rng=None):
        trace = _trace(evidence, "covariance")
        new_state = None if average == "batch" else dict(state or {})
        out = {}
        for n in _selected(trace, prm, names, "covariance"):
            p = _as_matrix(prm[n])
            post, pre = _pair(trace, n, p, "covariance")
            post64, pre64 = post.astype(np.float64), pre.astype(np.float64)
            if average == "batch":
                d_post = post64 - post64.mean(axis=0)
                d_pre = pre64 - pre64.mean(axis=0)
            else:
                m_post, m_pre = new_state.get(n, (post64.mean(axis=0), pre64.mean(axis=0)))
                before_post, end_post = _running_before(post64, np.asarray(m_post, float), tau)
                before_pre, end_pre = _running_before(pre64, np.asarray(m_pre, float), tau)
                d_post, d_pre = post64 - before_post, pre64 - before_pre
                new_state[n] = (end_post, end_pre)
            u = masked_outer(d_post, d_pre, p)
            out[n] = _shaped(with_values(u, values(u) * (learning_rate / post.shape[0])), prm[n],
                             trace.masks.get(n))
        return out, new_state

    return Rule(name="covariance", hparams={"learning_rate": learning_rate, "average": average,
                                            "tau": tau, "params": names},
                init=init, update=update, requires=_ACTIVITY)


_GAIN_PARAMS = ("W", "W_in", "W_fb")


def intrinsic_plasticity(learning_rate=1.0, *, mu=0.0, sigma=0.2, params=None):
    r"""Intrinsic plasticity of tanh units toward a Gaussian output distribution.

    Each unit :math:`i` has the rate :math:`y = \tanh(a\,x + b)` with gain :math:`a`, bias
    :math:`b` and synaptic input :math:`x`. Gradient descent on the Kullback-Leibler
    divergence between the unit's output distribution and :math:`\mathcal N(\mu, \sigma^2)`
    gives, per sample (Schrauwen et al. 2008),

    .. math::

        \Delta b = -\eta\left(-\frac{\mu}{\sigma^2} + \frac{y}{\sigma^2}
            \left(2\sigma^2 + 1 - y^2 + \mu y\right)\right), \qquad
        \Delta a = \frac{\eta}{a} + \Delta b\; x

    The network has no separate gain: the gain multiplies the unit's whole synaptic input, so
    the weights absorb it and the current gain is :math:`a = 1`. With
    :math:`z = W x_{prev} + W_{in} u + b` the trace's ``preactivation``, :math:`y = \tanh z`
    and :math:`x = z - b`, the rule averages over the ``S`` samples

    .. math::

        \delta b_i = \frac{\eta}{S}\sum_s g_{s,i}, \qquad
        \delta a_i = \frac{\eta}{S}\sum_s \left(1 + g_{s,i}\, x_{s,i}\right), \qquad
        g = \frac{\mu}{\sigma^2} - \frac{y}{\sigma^2}\left(2\sigma^2 + 1 - y^2 + \mu y\right)

    and returns the gain change as a row scaling of every incoming weight matrix,
    ``u_W[i, j] = delta_a[i] * W[i, j]`` on W's structure (likewise ``"W_in"`` and, when
    present, ``"W_fb"``), and the bias change as ``u_b = delta_b``.

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`. Triesch and Schrauwen et al. use about ``1e-3`` per sample; since the
        update is the mean over the samples of one evidence, larger values suit one update per
        sequence.
    mu : float in (-1, 1)
        Target mean of each unit's rate.
    sigma : float > 0
        Target standard deviation of each unit's rate.
    params : sequence of str, optional
        Parameters to update, among ``"W"``, ``"W_in"``, ``"W_fb"`` (gain) and ``"b"``
        (bias); by default all of them that ``params`` holds.

    Returns
    -------
    Rule
        ``requires = Activity()``; stateless. Reads ``ActivityTrace.preactivation``.

    Notes
    -----
    The rates are :math:`\tanh z`, not the leaky state the ESN carries: the target
    distribution is that of each unit's nonlinearity output. Leaving out ``"W"`` (e.g.
    ``params=("W_in", "b")``) changes the gain of the input only, which is no longer the
    rule above; restrict it knowingly.

    References
    ----------
    .. [1] J. Triesch, "A gradient rule for the plasticity of a neuron's intrinsic
       excitability", ICANN 2005, LNCS 3696:65-70 (2005).
    .. [2] B. Schrauwen, M. Wardermann, D. Verstraeten, J. J. Steil and D. Stroobandt,
       "Improving reservoirs using intrinsic plasticity", Neurocomputing 71:1159-1171 (2008).
    """
    learning_rate = _check_real(learning_rate, "learning_rate", low=0.0)
    mu = _check_real(mu, "mu", low=-1.0, high=1.0)
    sigma = _check_real(sigma, "sigma", low=0.0)
    names = _check_names(params)
    if names is not None:
        bad = [n for n in names if n not in _GAIN_PARAMS + ("b",)]
        if bad:
            raise ValueError(f"intrinsic_plasticity adapts the gain through {_GAIN_PARAMS} "
                             f"and the bias 'b'; it cannot update {bad}")
    var = sigma**2

    def update(evidence, state, prm, *, rng=None):
        trace = _trace(evidence, "intrinsic_plasticity")
        if trace.preactivation is None:
            raise ValueError("intrinsic_plasticity needs the units' preactivation in the "
                             "activity trace, and this network did not provide it")
        z = np.asarray(trace.preactivation, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] == 0:
            raise ValueError(f"preactivation must be (samples, units) with samples > 0, got "
                             f"shape {z.shape}")
        chosen = names if names is not None else [n for n in _GAIN_PARAMS + ("b",) if n in prm]
        missing = [n for n in chosen if n not in prm]
        if missing:
            raise KeyError(f"intrinsic_plasticity was asked to update {missing}, which params "
                           f"does not hold (it has {sorted(prm)})")
        n_units = z.shape[1]
        for n in chosen:
            if np.shape(prm[n])[0] != n_units:
                raise ValueError(f"parameter {n!r} has {np.shape(prm[n])[0]} rows, the "
                                 f"preactivation {n_units} units")
        bias = np.asarray(prm["b"], dtype=np.float64) if "b" in prm else 0.0
        x = z - bias
        y = np.tanh(z)
        g = mu / var - (y / var) * (2.0 * var + 1.0 - y**2 + mu * y)
        scale = learning_rate / z.shape[0]
        d_bias = scale * g.sum(axis=0)
        d_gain = scale * (1.0 + g * x).sum(axis=0)
        out = {}
        for n in chosen:
            if n == "b":
                out[n] = d_bias.reshape(np.shape(prm[n]))
            else:
                out[n] = _row_scaled(_as_matrix(prm[n]), d_gain)
        return out, state

    return Rule(name="intrinsic_plasticity",
                hparams={"learning_rate": learning_rate, "mu": mu, "sigma": sigma,
                         "params": names},
                update=update, requires=_ACTIVITY)
