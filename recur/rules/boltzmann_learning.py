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


def _mean_outer(trace: ActivityTrace, name, like):
    """``mean_s post[s] pre[s]^T`` of parameter ``name``, in ``like``'s matrix shape."""
    post = np.asarray(trace.post[name])
    pre = np.asarray(trace.pre[name])
    post = post.reshape(-1, 1) if post.ndim == 1 else post
    pre = pre.reshape(-1, 1) if pre.ndim == 1 else pre
    if post.shape[0] != pre.shape[0] or post.shape[0] == 0:
        raise ValueError(f"boltzmann: the {name!r} statistics need the same positive number "
                         f"of samples on both sides, got post {post.shape}, pre {pre.shape}")
    if post.shape[1] != like.shape[0] or pre.shape[1] != like.shape[1]:
        raise ValueError(f"boltzmann: post {post.shape} and pre {pre.shape} statistics do not "
                         f"match parameter {name!r} of shape {tuple(like.shape)}")
    if sp.issparse(like):
        return values(masked_outer(post, pre, like)) / post.shape[0]
    if pre.shape[1] == 1 and np.all(pre == 1.0):
        # A bias reads a constant 1: the outer product is the column sum.
        return post.mean(axis=0)[:, None]
    return (post.T @ pre) / post.shape[0]


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
        evidence's ``masks["W"]`` (the graph, zero diagonal).

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
        names = [n for n in ("W", "b") if n in params and n in wake.post and n in sleep.post]
        if not names:
            raise ValueError(f"boltzmann found no parameter to update: the evidence covers "
                             f"{sorted(wake.post)}, params holds {sorted(params)}")
        out = {}
        for name in names:
            p = params[name]
            like = p if (sp.issparse(p) or np.ndim(p) == 2) else np.asarray(p).reshape(-1, 1)
            delta = _mean_outer(wake, name, like) - _mean_outer(sleep, name, like)
            mask = wake.masks.get(name)
            if mask is not None and not sp.issparse(p):
                delta = np.where(np.asarray(mask, dtype=bool), delta, 0.0)
            out[name] = with_values(p, delta) if sp.issparse(p) else \
                np.asarray(delta).reshape(np.shape(p))
        return out, state

    hparams = {"mode": mode, "k": k, "persistent": persistent, "n_chains": n_chains}
    return Rule(name="boltzmann", hparams=hparams, update=update, requires=request)
