"""Reward-modulated exploratory Hebbian learning of a readout (Hoerzer, Legenstein & Maass)."""

from __future__ import annotations

import numbers

import numpy as np

from ..validation import DivergenceError, check_positive
from .base import Readout

__all__ = ["ExploratoryHebbian"]


class ExploratoryHebbian(Readout):
    r"""Online readout trained by trial and error: the exploratory Hebbian (EH) rule.

    The readout explores: it emits its linear output plus noise. A scalar reward says whether
    that output was better than usual, and only then does the readout move toward what it
    just did. For each sample ``(x_t, f_t)`` in order (``x_t`` the features, ``f_t`` the
    target):

    .. math::

        z_t &= W x_t + b + \xi_t, \qquad \xi_{t,k} \sim U[-\nu, \nu] \\
        P_t &= -\|z_t - f_t\|^2 \\
        \bar z_t &= \alpha \bar z_{t-1} + (1 - \alpha) z_t, \qquad
        \bar P_t = \alpha \bar P_{t-1} + (1 - \alpha) P_t, \qquad \alpha = 1 - 1/\tau \\
        M_t &= \begin{cases} 1 & P_t > \bar P_t \\ 0 & \text{otherwise} \end{cases} \\
        W &\leftarrow W + \eta_t\, M_t\, (z_t - \bar z_t)\, x_t^\top, \qquad
        b \leftarrow b + \eta_t\, M_t\, (z_t - \bar z_t), \qquad
        \eta_t = \frac{\eta}{1 + t / T}

    :math:`z_t - \bar z_t` estimates the exploration that was just made, and :math:`M_t`
    keeps it only when it paid off, so on average the weights follow the performance
    gradient without any error signal reaching the synapses. (:math:`P_t > \bar P_t` is the
    same test as :math:`P_t > \bar P_{t-1}`, since :math:`\bar P_t` mixes in :math:`P_t`.)

    Parameters
    ----------
    learning_rate : float > 0
        :math:`\eta`, the initial learning rate.
    noise : float >= 0
        Amplitude :math:`\nu` of the uniform exploration noise on each output, in the units
        of the target (0.5 suits a target of amplitude about 1).
    tau : float > 1
        Time constant, in samples, of the running averages :math:`\bar z` and
        :math:`\bar P` (``tau = 5`` is the filter :math:`\alpha = 0.8`). It should be short
        against the target's period, or the signal's own change leaks into
        :math:`z - \bar z`.
    decay : float > 0 or None
        :math:`T`, in samples: the learning rate falls as :math:`\eta / (1 + t/T)`, as in
        Hoerzer et al., so the weights settle. ``None`` keeps it constant.
    fit_intercept : bool
        Learn a bias through a constant feature (Hoerzer et al. have none).
    rng : None, int or numpy.random.Generator
        Source of the exploration noise, normalised with ``np.random.default_rng`` when
        fitting starts; an int makes ``fit`` reproducible.

    Attributes
    ----------
    coef_ : ndarray, shape (n_out, n_features)
        Starts at zero.
    intercept_ : ndarray, shape (n_out,)
    output_mean_ : ndarray, shape (n_out,)
        :math:`\bar z`, the running average of the noisy output.
    performance_mean_ : float
        :math:`\bar P`, the running average of the performance.
    last_output_ : ndarray, shape X.shape[:-1] + (n_out,)
        The noisy outputs :math:`z` emitted for the samples of the last ``partial_fit``,
        computed before the update: what a closed loop should feed back while learning.
    n_rewarded_ : int
        Number of samples with :math:`M_t = 1`.
    rng_ : numpy.random.Generator
    n_features_in_, n_outputs_, n_samples_seen_ : int

    Notes
    -----
    The performance is one scalar for all outputs (a global reward), as a neuromodulator
    would broadcast it. The averages start at the first sample's :math:`z` and :math:`P`
    (so the first sample does not learn). ``predict`` is the noise-free :math:`W x + b`.

    In a closed loop (:func:`recur.generate` with a ``target``) the output that enters the
    network while learning is, in Hoerzer et al., the noisy :math:`z_t`; ``last_output_``
    holds it after each ``partial_fit`` for the loop to feed back. The rule learns with either
    output fed back (the noise-free prediction, or :math:`z_t`), because the reward compares
    the noisy output it just made with the target.

    The rule is much slower than FORCE (:class:`~recur.Force`), which corrects the error
    at every step; Hoerzer et al. train it for far longer. A 200-unit chaotic ESN learns a
    period-200 signal in about 16,000 steps to a free-running NRMSE of roughly 0.2-0.6.

    References
    ----------
    .. [1] G. M. Hoerzer, R. Legenstein and W. Maass, "Emergence of complex computational
       structures from chaotic neural networks through reward-modulated Hebbian learning",
       Cerebral Cortex 24:677-690 (2014).
    .. [2] R. Legenstein, S. M. Chase, A. B. Schwartz and W. Maass, "A reward-modulated
       Hebbian learning rule can explain experimentally observed network reorganization in
       a brain control task", J. Neurosci. 30:8400-8410 (2010).
    """

    def __init__(self, learning_rate=1e-2, noise=0.5, tau=5.0, decay=None,
                 fit_intercept=False, rng=None):
        self.learning_rate = learning_rate
        self.noise = noise
        self.tau = tau
        self.decay = decay
        self.fit_intercept = fit_intercept
        self.rng = rng

    def _check_hyperparameters(self):
        check_positive(self.learning_rate, "learning_rate")
        check_positive(self.noise, "noise", strict=False)
        check_positive(self.tau, "tau")
        if self.tau <= 1:
            raise ValueError(f"tau must be > 1 (the averages must remember something), got "
                             f"{self.tau!r}")
        if self.decay is not None:
            check_positive(self.decay, "decay")
        if self.rng is not None and not isinstance(self.rng, (numbers.Integral,
                                                              np.random.Generator,
                                                              np.random.SeedSequence,
                                                              np.random.BitGenerator)):
            raise TypeError(f"rng must be None, an int or a numpy Generator, got {self.rng!r}")

    def partial_fit(self, X, y):
        """One exploratory step per sample of ``(X, y)``, in order; returns ``self``."""
        X2, lead = self._features(X, fitting=True)
        Y2 = self._targets(y, lead, len(lead) + 1)
        if getattr(self, "n_features_in_", None) is None:
            self._check_hyperparameters()
            self.n_features_in_, self.n_outputs_ = X2.shape[1], Y2.shape[1]
            self.coef_ = np.zeros((Y2.shape[1], X2.shape[1]))
            self.intercept_ = np.zeros(Y2.shape[1])
            self.output_mean_ = None
            self.performance_mean_ = None
            self.n_samples_seen_ = 0
            self.n_rewarded_ = 0
            self.rng_ = np.random.default_rng(self.rng)
        alpha = 1.0 - 1.0 / self.tau
        W, b = self.coef_, self.intercept_
        z_bar, p_bar = self.output_mean_, self.performance_mean_
        X2 = X2.astype(np.float64, copy=False)
        # The noise of every sample is drawn up front: chunked calls draw the same sequence.
        xi = (self.rng_.uniform(-self.noise, self.noise, Y2.shape) if self.noise
              else np.zeros(Y2.shape))
        emitted = np.empty_like(Y2)
        t0 = self.n_samples_seen_
        rewarded = 0
        with np.errstate(over="ignore", invalid="ignore"):
            for s in range(X2.shape[0]):
                x = X2[s]
                z = W @ x + b + xi[s]
                emitted[s] = z
                perf = -float(np.sum((z - Y2[s]) ** 2))
                if z_bar is None:
                    z_bar, p_bar = z, perf
                    continue
                z_bar = alpha * z_bar + (1.0 - alpha) * z
                p_bar = alpha * p_bar + (1.0 - alpha) * perf
                if perf > p_bar:
                    eta = self.learning_rate
                    if self.decay is not None:
                        eta = eta / (1.0 + (t0 + s) / self.decay)
                    step = eta * (z - z_bar)
                    W += np.outer(step, x)
                    if self.fit_intercept:
                        b += step
                    rewarded += 1
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise DivergenceError("ExploratoryHebbian weights became NaN or inf: "
                                  f"learning_rate {self.learning_rate!r} is too large for "
                                  "these features")
        self.output_mean_, self.performance_mean_ = z_bar, p_bar
        self.n_samples_seen_ = t0 + X2.shape[0]
        self.n_rewarded_ += rewarded
        self.last_output_ = emitted.reshape(lead + (Y2.shape[1],))
        return self
