r"""Boltzmann learning: wake statistics minus sleep statistics.

For a network of 0/1 units with energy :math:`E(s) = -\tfrac12 s^\top W s - b^\top s` at
temperature :math:`T`, the gradient of the mean log-likelihood of the data is (Ackley, Hinton &
Sejnowski 1985)

.. math::

    \frac{\partial \langle \log p(v) \rangle_{\text{data}}}{\partial w_{ij}}
    = \frac1T \big(\langle s_i s_j \rangle_{\text{wake}} - \langle s_i s_j \rangle_{\text{sleep}}\big),
    \qquad
    \frac{\partial \langle \log p(v) \rangle_{\text{data}}}{\partial b_i}
    = \frac1T \big(\langle s_i \rangle_{\text{wake}} - \langle s_i \rangle_{\text{sleep}}\big)

for each symmetric pair :math:`w_{ij} = W_{ij} = W_{ji}`. The wake average clamps the visible
units to the data; the sleep average is the network's own free-running statistics. How the
sleep phase is drawn is the network's business (the request's ``mode``): equilibrium samples
(``"chl"``), ``k`` Gibbs sweeps from the data (contrastive divergence, Hinton 2002), from
persistent chains (Tieleman 2008), or deterministic mean-field fixed points in both phases
(Peterson & Anderson 1987). The rule only subtracts.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..masked import masked_outer, values, with_values
from .evidence import ActivityTrace, Phases, WakeSleep
from .rule import Rule

__all__ = ["boltzmann"]


def _statistics(trace: ActivityTrace, name):
    """``post`` and ``pre`` samples of parameter ``name`` as 2-d arrays."""
    post, pre = trace.post[name], trace.pre[name]
    post = post if np.ndim(post) == 2 else np.reshape(post, (-1, 1))
    pre = pre if np.ndim(pre) == 2 else np.reshape(pre, (-1, 1))
    if post.shape[0] != pre.shape[0] or post.shape[0] == 0:
        raise ValueError(f"boltzmann: the {name!r} statistics need the same positive number "
                         f"of samples on both sides, got post {post.shape}, pre {pre.shape}")
    return post, pre


def _correlation_difference(wake: ActivityTrace, sleep: ActivityTrace, name, like):
    """``mean post pre^T`` (wake) minus the same (sleep) for parameter ``name``, in
    ``like``'s matrix shape (a bias is a matrix with one presynaptic column of ones)."""
    (wpost, wpre), (spost, spre) = _statistics(wake, name), _statistics(sleep, name)
    shape = (like.shape[0], like.shape[1])
    for post, pre in ((wpost, wpre), (spost, spre)):
        if (post.shape[1], pre.shape[1]) != shape:
            raise ValueError(f"boltzmann: post {post.shape} and pre {pre.shape} statistics do "
                             f"not match parameter {name!r} of shape {shape}")
    if sp.issparse(like):
        return (values(masked_outer(wpost, wpre, like)) / wpost.shape[0]
                - values(masked_outer(spost, spre, like)) / spost.shape[0])
    if wpost.shape[0] == spost.shape[0]:
        return (wpost.T @ wpre - spost.T @ spre) / wpost.shape[0]
    return (wpost.T @ wpre) / wpost.shape[0] - (spost.T @ spre) / spost.shape[0]


_NAMES = ("W", "b")


def _moment_difference(wake: ActivityTrace, sleep: ActivityTrace, name, p):
    """Wake minus sleep ``moments[name]`` when both phases carry them for a dense parameter
    ``p`` (the network's own means, zero off the mask by contract: only subtract); None
    otherwise."""
    m_wake, m_sleep = wake.moments.get(name), sleep.moments.get(name)
    if m_wake is None or m_sleep is None or type(p) is not np.ndarray:
        return None
    if getattr(m_wake, "shape", None) != p.shape or getattr(m_sleep, "shape", None) != p.shape:
        raise ValueError(f"boltzmann: the {name!r} moments have shapes {np.shape(m_wake)} "
                         f"(wake) and {np.shape(m_sleep)} (sleep), the parameter {p.shape}")
    return m_wake - m_sleep


def boltzmann(mode="chl", k=1, persistent=False, n_chains=None):
    r"""Wake-minus-sleep learning of a Boltzmann machine (an ascent direction of log p).

    .. math::

        \Delta W = \langle s s^\top \rangle_{\text{wake}} - \langle s s^\top \rangle_{\text{sleep}}
        \ \ \text{(on the graph, zero diagonal)}, \qquad
        \Delta b = \langle s \rangle_{\text{wake}} - \langle s \rangle_{\text{sleep}}

    which is :math:`T` times the gradient of the mean log-likelihood per pattern when both
    phases are exact (see the module notes). Chain with :func:`~recur.rules.scale` for a
    learning rate, or :func:`~recur.rules.sign` for Ackley, Hinton & Sejnowski's fixed step.

    Parameters
    ----------
    mode : {"chl", "cd", "mean_field"}
        How the network draws the sleep phase (see :class:`~recur.rules.WakeSleep`):
        ``"chl"`` equilibrium sampling of the free-running network (annealed as the network
        is configured), ``"cd"`` ``k`` Gibbs sweeps from the data, ``"mean_field"``
        deterministic mean-field fixed points in both phases.
    k : int >= 1
        Gibbs sweeps of CD-k.
    persistent : bool
        Keep the sleep chains between updates (persistent CD, or persistent ``"chl"``
        chains); they live in the network state threaded by :func:`recur.train`.
    n_chains : int, optional
        Sleep chains (default: one per data row; one for ``"mean_field"``).

    Returns
    -------
    Rule
        Requires :class:`~recur.rules.WakeSleep`; updates ``"W"`` and ``"b"`` (whichever
        ``params`` holds and the evidence covers). A dense ``"W"`` update is zero off the
        evidence's ``masks["W"]`` (the graph, zero diagonal). The means come from the
        traces' ``moments`` when the network computed them (a sampler does, in the pass
        that draws the samples), from their ``pre`` and ``post`` samples otherwise.

    References
    ----------
    .. [1] D. H. Ackley, G. E. Hinton & T. J. Sejnowski, Cognitive Science 9:147 (1985).
    .. [2] G. E. Hinton, Neural Computation 14:1771 (2002).
    .. [3] T. Tieleman, ICML (2008).
    .. [4] C. Peterson & J. R. Anderson, Complex Systems 1:995 (1987).
    """
    request = WakeSleep(mode=mode, k=k, persistent=persistent, n_chains=n_chains)

    def update(evidence, state, params, *, rng=None):
        phases = evidence[request]
        if not isinstance(phases, Phases):
            raise TypeError(f"boltzmann needs Phases as its WakeSleep evidence, got "
                            f"{type(phases).__name__}")
        wake, sleep = phases.nudged, phases.free
        names = [n for n in _NAMES if n in params and n in wake.post and n in sleep.post]
        if not names:
            raise ValueError(f"boltzmann found no parameter to update: the evidence covers "
                             f"{sorted(wake.post)}, params holds {sorted(params)}")
        out = {}
        for name in names:
            p = params[name]
            delta = _moment_difference(wake, sleep, name, p)
            if delta is not None:
                out[name] = delta
                continue
            if sp.issparse(p):
                out[name] = with_values(p, _correlation_difference(wake, sleep, name, p))
                continue
            like = p if np.ndim(p) == 2 else np.reshape(p, (-1, 1))
            delta = _correlation_difference(wake, sleep, name, like)
            mask = wake.masks.get(name)
            if mask is not None:
                delta = np.where(mask, delta, 0.0)
            out[name] = delta.reshape(np.shape(p))
        return out, state

    hparams = {"mode": mode, "k": k, "persistent": persistent, "n_chains": n_chains}
    return Rule(name="boltzmann", hparams=hparams, update=update, requires=request)
