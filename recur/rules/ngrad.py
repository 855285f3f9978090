r"""NGRAD rules: errors as differences between a free phase and a nudged or clamped phase.

All three rules read :class:`~recur.rules.Phases` (requested with
:class:`~recur.rules.TwoPhase`) and do arithmetic on them only; the network settles the
phases. For an energy network whose energy has :math:`\partial F / \partial W_{ij} = -s_i
s_j` and :math:`\partial F / \partial b_i = -s_i` (:class:`~recur.EnergyNet`), with a
symmetric ``W``:

- **equilibrium propagation** (Scellier & Bengio 2017): nudge the outputs toward the target
  with strength :math:`\beta`; then :math:`\frac{1}{\beta}(s s^\top|_\beta - s s^\top|_0)
  \to -\nabla_W L` as :math:`\beta \to 0`, with an :math:`O(\beta)` bias that symmetric
  nudging (:math:`\pm\beta`, Laborieux et al. 2021) reduces to :math:`O(\beta^2)`;
- **contrastive Hebbian learning** (Movellan 1991): the clamped phase minus the free one,
  :math:`s^+ s^{+\top} - s^- s^{-\top}`; with weak feedback and linear outputs it is
  proportional to backprop (Xie & Seung 2003);
- **GeneRec** (O'Reilly 1996): :math:`(s^+ - s^-)\, s^{-\top}`, the postsynaptic change times
  the presynaptic minus-phase activity, symmetrised here because ``W`` must stay symmetric
  (with the midpoint as presynaptic activity it is half of CHL).

Conventions: every update is a mean over the samples of the phases; a dense ``W`` update is
zero off the trace's ``masks["W"]`` (the graph) and on the diagonal; a CSR ``W`` gets an
update with exactly its structure. Each rule returns an improvement direction to add; chain
with :func:`~recur.rules.scale` for a learning rate.

References
----------
.. [1] B. Scellier & Y. Bengio, Front. Comput. Neurosci. 11:24 (2017).
.. [2] A. Laborieux, M. Ernoult, B. Scellier, Y. Bengio, J. Grollier & D. Querlioz,
   Front. Neurosci. 15:633674 (2021).
.. [3] J. R. Movellan, "Contrastive Hebbian learning in the continuous Hopfield model",
   Connectionist Models Summer School (1991).
.. [4] X. Xie & H. S. Seung, Neural Computation 15:441 (2003).
.. [5] R. C. O'Reilly, Neural Computation 8:895 (1996).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ..masked import edge_rows, masked_outer, values, with_values
from .evidence import ActivityTrace, Phases, TwoPhase
from .rule import Rule

__all__ = ["equilibrium_propagation", "contrastive_hebbian", "generec"]


def _phases(evidence, request, rule) -> Phases:
    phases = evidence[request]
    if not isinstance(phases, Phases):
        raise TypeError(f"{rule} needs Phases as its TwoPhase evidence, got "
                        f"{type(phases).__name__}")
    return phases


def _2d(a):
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, 1) if a.ndim == 1 else a


def _names(params, *traces):
    names = [n for n in ("W", "b") if n in params and all(n in t.post and n in t.pre
                                                        for t in traces)]
    if not names:
        raise ValueError(f"found no parameter to update: the phases cover "
                         f"{sorted(traces[0].post)}, params holds {sorted(params)}")
    return names


def _mean_outer(post, pre, like):
    """``mean_s post[s] pre[s]^T`` in the shape of ``like`` (CSR: its exact structure)."""
    post, pre = _2d(post), _2d(pre)
    if post.shape[0] != pre.shape[0] or post.shape[0] == 0:
        raise ValueError(f"post {post.shape} and pre {pre.shape} need the same positive "
                         "number of samples")
    n = post.shape[0]
    if sp.issparse(like):
        return values(masked_outer(post, pre, like)) / n
    if pre.shape[1] == 1 and np.all(pre == 1.0) and np.ndim(like) == 1:
        return post.mean(axis=0)
    return (post.T @ pre) / n


def _finish(name, delta, like, trace: ActivityTrace):
    """Mask a dense matrix update to the graph with a zero diagonal; shape it like ``like``."""
    if sp.issparse(like):
        return with_values(like, delta)
    delta = np.asarray(delta, dtype=np.float64)
    if delta.ndim == 2:
        mask = trace.masks.get(name)
        if mask is not None:
            delta = np.where(np.asarray(mask, dtype=bool), delta, 0.0)
        np.fill_diagonal(delta, 0.0)
    return delta.reshape(np.shape(like))


def _correlation_difference(plus: ActivityTrace, minus: ActivityTrace, params, scale):
    """``scale * (<post pre^T>_plus - <post pre^T>_minus)`` for every matrix and bias."""
    out = {}
    for name in _names(params, plus, minus):
        like = params[name]
        delta = (_mean_outer(plus.post[name], plus.pre[name], like)
                 - _mean_outer(minus.post[name], minus.pre[name], like))
        if np.ndim(like) == 1 and np.ndim(delta) == 2:
            delta = delta.ravel()
        out[name] = _finish(name, scale * delta, like, plus)
    return out


def _check_beta(beta):
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not np.isfinite(beta) \
            or beta <= 0:
        raise ValueError(f"beta must be a finite real number > 0, got {beta!r}")
    return beta


def equilibrium_propagation(beta=0.1, symmetric=False):
    r"""Equilibrium propagation: the change of the energy's parameter derivative under nudging.

    One-sided (Scellier & Bengio 2017) and symmetric (Laborieux et al. 2021):

    .. math::

        \Delta\theta = -\frac{1}{\beta}\left(\frac{\partial F}{\partial\theta}\Big|_{\beta}
        - \frac{\partial F}{\partial\theta}\Big|_{0}\right), \qquad
        \Delta\theta = -\frac{1}{2\beta}\left(\frac{\partial F}{\partial\theta}\Big|_{+\beta}
        - \frac{\partial F}{\partial\theta}\Big|_{-\beta}\right),

    which for :math:`\partial F / \partial W_{ij} = -s_i s_j`, :math:`\partial F / \partial b
    = -s` is

    .. math::

        \Delta W = \frac{1}{\beta}\big(\langle s s^\top \rangle_{\beta}
        - \langle s s^\top \rangle_{0}\big), \qquad
        \Delta b = \frac{1}{\beta}\big(\langle s \rangle_{\beta} - \langle s \rangle_{0}\big)

    (means over the samples; on the graph, zero diagonal; the symmetric version replaces the
    free phase by the :math:`-\beta` phase and :math:`\beta` by :math:`2\beta`). As
    :math:`\beta \to 0` both tend to :math:`-\nabla L` (the recurrent-backprop gradient);
    the one-sided estimate has an :math:`O(\beta)` bias, the symmetric one :math:`O(\beta^2)`.

    Parameters
    ----------
    beta : float > 0
        Nudging strength.
    symmetric : bool
        Use the :math:`\pm\beta` phases (one more settle per update).

    Returns
    -------
    Rule
        ``requires = TwoPhase(beta, clamp=False, symmetric)``; stateless. A ``-beta`` phase
        that fails to settle raises :class:`~recur.ConvergenceError` in the network, so no
        update is made from it.

    References
    ----------
    Scellier & Bengio, Front. Comput. Neurosci. 11:24 (2017); Laborieux et al., Front.
    Neurosci. 15:633674 (2021).
    """
    _check_beta(beta)
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be True or False, got {symmetric!r}")
    symmetric = bool(symmetric)
    request = TwoPhase(beta=beta, clamp=False, symmetric=symmetric)

    def update(evidence, state, params, *, rng=None):
        ph = _phases(evidence, request, "equilibrium_propagation")
        if symmetric:
            if ph.nudged_minus is None:
                raise ValueError("symmetric equilibrium propagation needs the -beta phase "
                                 "(nudged_minus)")
            return _correlation_difference(ph.nudged, ph.nudged_minus, params,
                                           0.5 / beta), state
        return _correlation_difference(ph.nudged, ph.free, params, 1.0 / beta), state

    return Rule(name="equilibrium_propagation", hparams={"beta": beta, "symmetric": symmetric},
                update=update, requires=request)


def contrastive_hebbian():
    r"""Contrastive Hebbian learning: clamped-phase correlations minus free-phase ones.

    .. math::

        \Delta W = \langle s^+ s^{+\top} \rangle - \langle s^- s^{-\top} \rangle, \qquad
        \Delta b = \langle s^+ \rangle - \langle s^- \rangle

    with :math:`s^+` the fixed point with the outputs clamped to the target and :math:`s^-`
    the free one (on the graph, zero diagonal). It descends the difference of the energies of
    the two phases, which is not the loss in general; with weak feedback and linear outputs
    its updates are proportional to backprop's (Xie & Seung 2003). It is equilibrium
    propagation with :math:`\beta \to \infty` and no :math:`1/\beta`.

    Returns
    -------
    Rule
        ``requires = TwoPhase(clamp=True)``; stateless.

    References
    ----------
    Movellan, Connectionist Models Summer School (1991); Xie & Seung, Neural Comput. 15:441
    (2003).
    """
    request = TwoPhase(clamp=True)

    def update(evidence, state, params, *, rng=None):
        ph = _phases(evidence, request, "contrastive_hebbian")
        return _correlation_difference(ph.nudged, ph.free, params, 1.0), state

    return Rule(name="contrastive_hebbian", hparams={}, update=update, requires=request)


def generec():
    r"""GeneRec: postsynaptic phase difference times presynaptic minus-phase activity.

    .. math::

        \Delta W_{ij} = \tfrac12 \big\langle (s^+_i - s^-_i)\, s^-_j
        + (s^+_j - s^-_j)\, s^-_i \big\rangle, \qquad
        \Delta b = \langle s^+ \rangle - \langle s^- \rangle

    with :math:`s^+` the clamped (plus) phase and :math:`s^-` the free (minus) phase. O'Reilly's
    rule :math:`(s^+_i - s^-_i) s^-_j` is not symmetric; an energy network's ``W`` must stay
    symmetric, so the rule takes the symmetric part (which is what ``constrain`` would keep
    anyway, and what the mean of the two directions' updates of one coupling is). Replacing
    the presynaptic :math:`s^-_j` by the midpoint :math:`(s^+_j + s^-_j)/2` turns the
    symmetrised rule into :func:`contrastive_hebbian` halved (O'Reilly 1996: the sum of the two
    directions' midpoint updates is CHL).

    Returns
    -------
    Rule
        ``requires = TwoPhase(clamp=True)``; reads ``free.pre`` (presynaptic minus phase),
        ``free.post`` and ``nudged.post``; stateless.

    References
    ----------
    O'Reilly, Neural Comput. 8:895 (1996); Hinton & McClelland, NIPS (1988).
    """
    request = TwoPhase(clamp=True)

    def update(evidence, state, params, *, rng=None):
        ph = _phases(evidence, request, "generec")
        plus, minus = ph.nudged, ph.free
        out = {}
        for name in _names(params, plus, minus):
            like = params[name]
            dpost = _2d(plus.post[name]) - _2d(minus.post[name])
            delta = _mean_outer(dpost, minus.pre[name], like)
            if sp.issparse(like):
                # Mean of each stored entry and its transposed partner, on like's structure.
                full = sp.csr_array((delta, like.indices, like.indptr), shape=like.shape)
                delta = np.asarray((0.5 * (full + full.T)).tocsr()[edge_rows(like),
                                                                   like.indices]).ravel()
            elif np.ndim(delta) == 2 and np.ndim(like) == 2:
                delta = 0.5 * (delta + delta.T)
            if np.ndim(like) == 1 and np.ndim(delta) == 2:
                delta = delta.ravel()
            out[name] = _finish(name, delta, like, plus)
        return out, state

    return Rule(name="generec", hparams={}, update=update, requires=request)
