r"""Perturbation learning: gradient estimates from the change in a scalar loss.

The network runs ``K`` randomly perturbed copies of itself (its own batched runs; see
:class:`~recur.rules.Perturbed`) and reports each copy's loss and, for every parameter, the
*eligibility* :math:`e_k` the perturbation left on it. Both rules here are the same arithmetic
on that evidence,

.. math::

    \hat g = \frac{1}{K \sigma^2} \sum_{k=1}^{K} a_k\, e_k, \qquad
    \Delta\theta = -\hat g,

with the *advantage* :math:`a_k` of perturbation ``k``:

- antithetic pairs (each perturbation run with both signs): :math:`a_k = (L^+_k - L^-_k)/2`;
- one-sided: :math:`a_k = L_k - b`, with the baseline ``b`` the unperturbed loss
  (``baseline="clean"``) or a running average of past perturbed losses kept in the rule's
  state (``baseline="running"``, reward-modulated learning without a clean run).

They differ only in what is perturbed, so in the eligibility:

- **weight perturbation** perturbs every parameter value, :math:`e_k = \epsilon_k \sim
  N(0, \sigma^2 I)`, and :math:`L_k - L_0 = \langle g, \epsilon_k \rangle + O(\sigma^2)`;
- **node perturbation** injects noise :math:`\xi_{k,t} \sim N(0, \sigma^2 I)` into the input
  (pre-activation) of every unit at every step, output units included, and the eligibility is
  the noise times the presynaptic activity of the unperturbed run, summed over the trial:
  :math:`e_k[W] = \sum_t \xi_{k,t}\, x_{t-1}^\top` (an eligibility trace). Then
  :math:`L_k - L_0 \approx \sum_t \langle \delta_t, \xi_{k,t} \rangle` with
  :math:`\delta_t = \partial L / \partial z_t`, and because the noise is white,
  :math:`\mathbb E[(L_k - L_0)\, e_k] = \sigma^2 \sum_t \delta_t x_{t-1}^\top = \sigma^2 g`.

**Bias.** With antithetic pairs or the clean baseline, :math:`\mathbb E[\hat g] = g +
O(\sigma^2)` (the curvature term :math:`\tfrac12 e^\top H e` is even in :math:`e` and drops out
of the mean; the third-order term leaves an :math:`O(\sigma^2)` bias). A running baseline does
not depend on the current draw and :math:`\mathbb E[e_k] = 0`, so it adds no bias either.

**Variance.** For small ``sigma`` and an exact baseline each perturbation gives
:math:`\mathbb E\|\hat g_1 - g\|^2 \approx (D_\mathrm{eff} + 1)\,\|g\|^2`, so with ``K`` of
them the cosine of :math:`\hat g` to the gradient is about
:math:`\sqrt{K / (K + D_\mathrm{eff} + 1)}`. :math:`D_\mathrm{eff}` is the number of
independent directions the perturbation explores: the number of perturbed values for weight
perturbation (measured: D + 1 on a small ESN), the number of (unit, step) noise sources
for node perturbation, which in practice can be far fewer (correlated units) or far more: when
the parameter gradient :math:`\sum_t \delta_t x_{t-1}^\top` is small next to its node-space
terms :math:`\delta_t` (they cancel over the trial, as can happen over a closed-loop free
run), the estimate is a small difference of large noisy sums (measured D_eff from ~15 to
~6 x 10^4 on 10-unit ESNs). That is the intuition behind Werfel et al. (2005): learning
slows by about the number of weights (WP) or of perturbed outputs (NP) compared with gradient
descent; and behind Züge et al. (2021): in tasks extended over ``T`` steps node perturbation
explores ``N x T`` directions, so weight perturbation can win once that exceeds the number of
weights. Further terms:

- antithetic pairs cancel every even-order term of the loss expansion, so
  :math:`a_k = \langle g, e_k\rangle + O(\sigma^3)`; a one-sided advantage keeps the
  curvature term, whose mean :math:`\sigma^2 \operatorname{tr} H / 2` acts like a baseline
  error. Pairs therefore win at equal numbers of runs when the curvature matters (near a
  minimum, where :math:`\|g\|` is small, or at larger ``sigma``). In the small-``sigma``
  limit with an exact clean baseline the advantages are equally good, and ``2K`` one-sided
  samples (``2K + 1`` runs) have about half the variance of ``K`` pairs (``2K`` runs).
- a running baseline that is off by :math:`\Delta b` adds :math:`\Delta b^2\,
  \mathbb E[e e^\top] / (K \sigma^4)` to the covariance: for weight perturbation
  :math:`\Delta b^2 / (K \sigma^2)` per weight, which grows as ``sigma`` shrinks. Use it when
  no clean run is available (a reward-modulated setting, Fiete & Seung 2006; Hoerzer et al.
  2014), with antithetic pairs when possible.

References
----------
.. [1] J. Werfel, X. Xie, H. S. Seung, "Learning curves for stochastic gradient descent in
   linear feedforward networks", Neural Computation 17:2699-2718 (2005).
.. [2] I. R. Fiete, H. S. Seung, "Gradient learning in spiking neural networks by dynamic
   perturbation of conductances", Physical Review Letters 97:048104 (2006).
.. [3] P. Züge, C. Klos, R.-M. Memmesheimer, "Weight versus node perturbation learning in
   temporally extended tasks: weight perturbation often performs similarly or better",
   bioRxiv 2021.10.04.463055 (2021).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..masked import with_values
from ..validation import check_in_interval, check_positive
from .evidence import Perturbations, Perturbed
from .rule import Rule

__all__ = ["weight_perturbation", "node_perturbation", "perturbation_direction"]

BASELINES = ("clean", "running")


def weight_perturbation(sigma, n_samples=16, antithetic=True, baseline="clean",
                        baseline_decay=0.9, params=None):
    r"""Weight perturbation: perturb every parameter value, correlate the loss change with it.

    .. math::

        \Delta\theta = -\frac{1}{K \sigma^2} \sum_{k=1}^{K} a_k\, \epsilon_k, \qquad
        \epsilon_k \sim N(0, \sigma^2 I),

        a_k = \tfrac12 (L(\theta + \epsilon_k) - L(\theta - \epsilon_k))
        \ \text{(antithetic)}, \quad a_k = L(\theta + \epsilon_k) - b \ \text{(one-sided)}.

    An unbiased (to :math:`O(\sigma^2)`) estimate of the descent direction
    :math:`-\nabla L`; its cosine to it is about :math:`\sqrt{K / (K + D + 1)}` with ``D`` the
    number of perturbed values (every weight on the graph, input weights, biases, readout).
    See :mod:`recur.rules.perturbation` for the bias, the variance and when antithetic pairs
    or a running baseline help.

    The network evaluates the ``K`` (or ``2K``) perturbed copies as one batched run
    (``Perturbed(sigma, n_samples, where="weights")``); for a sparse ``W`` only its edges are
    perturbed and the update is a CSR matrix with exactly ``W``'s structure.

    Parameters
    ----------
    sigma : float > 0
        Standard deviation of the perturbation of each value.
    n_samples : int >= 1
        Perturbations ``K`` per update (pairs, when antithetic).
    antithetic : bool
        Run each perturbation with both signs and use half the difference of the two losses.
    baseline : {"clean", "running"}
        For one-sided estimates: the unperturbed loss (one extra run) or a running average of
        past perturbed losses (the first update uses the mean of the other ``K - 1``).
        Ignored by the estimate when ``antithetic``; the running average is kept either way.
    baseline_decay : float in [0, 1)
        ``b <- decay * b + (1 - decay) * mean(L_k)`` after every update.
    params : tuple of str or None
        Names of the parameters to perturb and update (None: every trainable parameter); the
        others run unperturbed and get no update. ``D`` is then the number of their values.

    Returns
    -------
    Rule
        ``requires = Perturbed(sigma, n_samples, where="weights", antithetic, clean, params)``; state
        ``{"baseline": float or None, "n_updates": int}``. Chain with
        :func:`~recur.rules.scale` for a learning rate.

    References
    ----------
    Werfel, Xie & Seung, Neural Comput. 17:2699 (2005); Züge, Klos & Memmesheimer, bioRxiv
    2021.10.04.463055 (2021).
    """
    return _perturbation_rule("weight_perturbation", "weights", sigma, n_samples, antithetic,
                              baseline, baseline_decay, params)


def node_perturbation(sigma, n_samples=16, antithetic=True, baseline="clean",
                      baseline_decay=0.9, params=None):
    r"""Node perturbation: perturb every unit's input, credit each weight through its trace.

    Noise :math:`\xi_{k,t} \sim N(0, \sigma^2 I)` is added to the pre-activation of every unit
    (outputs included) at every step of perturbed run ``k``; each weight's eligibility is the
    noise its postsynaptic unit received times its presynaptic activity in the unperturbed
    run, summed over the trial, :math:`e_k[W_{ij}] = \sum_t \xi_{k,t,i}\, x_{t-1,j}`:

    .. math::

        \Delta W = -\frac{1}{K \sigma^2} \sum_{k=1}^{K} a_k \sum_t \xi_{k,t}\, x_{t-1}^\top,

    with the advantage :math:`a_k` as in :func:`weight_perturbation`. The noise lives in
    (unit x step) space rather than weight space, so its variance scales with the number of
    perturbed units and steps instead of the number of weights (Werfel et al. 2005: ``~M``
    instead of ``~M N`` times slower than gradient descent for ``M`` outputs and ``N``
    inputs); over long trials that advantage shrinks (Züge et al. 2021). See
    :mod:`recur.rules.perturbation`.

    Parameters
    ----------
    sigma : float > 0
        Standard deviation of the noise on each unit at each step.
    n_samples : int >= 1
        Perturbations ``K`` per update (pairs, when antithetic).
    antithetic : bool
        Run each noise sequence with both signs.
    baseline : {"clean", "running"}
        See :func:`weight_perturbation`.
    baseline_decay : float in [0, 1)
    params : tuple of str or None
        Names of the parameters to credit and update (None: all). Noise goes only into the
        units they feed: on an ESN, the recurrent units when any of ``"W"``, ``"W_in"``,
        ``"b"`` is listed, the outputs when ``"W_out"`` or ``"b_out"`` is; e.g.
        ``("W_out", "b_out")`` perturbs the outputs only (Werfel et al.'s setting: few
        perturbed nodes).

    Returns
    -------
    Rule
        ``requires = Perturbed(sigma, n_samples, where="nodes", antithetic, clean, params)``.

    References
    ----------
    Fiete & Seung, Phys. Rev. Lett. 97:048104 (2006); Werfel, Xie & Seung, Neural Comput.
    17:2699 (2005); Züge, Klos & Memmesheimer, bioRxiv 2021.10.04.463055 (2021).
    """
    return _perturbation_rule("node_perturbation", "nodes", sigma, n_samples, antithetic,
                              baseline, baseline_decay, params)


def _check_hparams(sigma, n_samples, antithetic, baseline, baseline_decay):
    check_positive(sigma, "sigma")
    check_positive(n_samples, "n_samples", integer=True)
    if not isinstance(antithetic, (bool, np.bool_)):
        raise TypeError(f"antithetic must be True or False, got {antithetic!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    check_in_interval(baseline_decay, "baseline_decay", 0.0, 1.0, low_open=False,
                      high_open=True)


def _perturbation_rule(name, where, sigma, n_samples, antithetic, baseline, baseline_decay,
                       params=None):
    _check_hparams(sigma, n_samples, antithetic, baseline, baseline_decay)
    antithetic = bool(antithetic)
    if isinstance(params, list):
        params = tuple(params)
    request = Perturbed(sigma=sigma, n_samples=n_samples, where=where, antithetic=antithetic,
                        clean=(baseline == "clean" and not antithetic), params=params)

    def init(params):
        return {"baseline": None, "n_updates": 0}

    def update(evidence, state, params, *, rng=None):
        result = evidence[request]
        if state is None:
            state = init(params)
        direction, batch_mean = perturbation_direction(
            result, params, antithetic=antithetic, baseline=baseline,
            running=state["baseline"], n_samples=n_samples)
        previous = state["baseline"]
        running = batch_mean if previous is None else (
            baseline_decay * previous + (1.0 - baseline_decay) * batch_mean)
        return direction, {"baseline": running, "n_updates": state["n_updates"] + 1}

    hparams = {"sigma": sigma, "n_samples": n_samples, "antithetic": antithetic,
               "baseline": baseline, "baseline_decay": baseline_decay, "params": params}
    return Rule(name=name, hparams=hparams, init=init, update=update, requires=request)


def perturbation_direction(result, params, *, antithetic, baseline="clean", running=None,
                           n_samples=None):
    r"""The improvement direction :math:`-\frac{1}{K\sigma^2}\sum_k a_k e_k` from evidence.

    Parameters
    ----------
    result : Perturbations
    params : dict
        Parameters to update: every name in both ``params`` and ``result.eligibility``.
    antithetic : bool
        Use :math:`a_k = (L^+_k - L^-_k)/2` (needs ``result.losses_minus``).
    baseline : {"clean", "running"}
        For one-sided advantages :math:`a_k = L_k - b`: ``b = result.loss_clean``, or
        ``b = running`` (when None, the leave-one-out mean of this batch's losses, which keeps
        the estimate unbiased; with ``K = 1`` that makes the advantage 0).
    running : float or None
    n_samples : int, optional
        Expected ``K``, checked against the evidence.

    Returns
    -------
    direction : dict
        Same structure as the parameters; a CSR parameter gets a CSR update with exactly its
        structure.
    batch_mean : float
        Mean of the perturbed losses (both signs when antithetic), for a running baseline.
    """
    if not isinstance(result, Perturbations):
        raise TypeError(f"expected Perturbations evidence, got {type(result).__name__}")
    losses = np.asarray(result.losses, dtype=np.float64)
    K = losses.size
    if n_samples is not None and K != n_samples:
        raise ValueError(f"the evidence holds {K} perturbations, the rule expects {n_samples}")
    if antithetic:
        if result.losses_minus is None:
            raise ValueError("antithetic estimate needs the mirrored losses (losses_minus)")
        minus = np.asarray(result.losses_minus, dtype=np.float64)
        advantage = 0.5 * (losses - minus)
        batch_mean = 0.5 * (losses.mean() + minus.mean())
    else:
        if baseline == "clean":
            if result.loss_clean is None:
                raise ValueError("baseline='clean' needs the unperturbed loss (loss_clean)")
            b = float(result.loss_clean)
        elif running is not None:
            b = float(running)
        else:
            b = (losses.sum() - losses) / (K - 1) if K > 1 else losses
        advantage = losses - b
        batch_mean = float(losses.mean())
    coef = -advantage / (K * float(result.sigma) ** 2)
    direction = {}
    for name, e in result.eligibility.items():
        if name not in params:
            continue
        p = params[name]
        e = np.asarray(e)
        value_shape = (p.nnz,) if sp.issparse(p) else np.shape(p)
        if e.shape != (K,) + tuple(value_shape):
            raise ValueError(f"eligibility of {name!r} has shape {e.shape}, expected "
                             f"{(K,) + tuple(value_shape)}")
        d = np.tensordot(coef, e, axes=1)
        dtype = p.dtype if sp.issparse(p) else np.asarray(p).dtype
        direction[name] = with_values(p, d.astype(dtype, copy=False))
    return direction, float(batch_mean)
