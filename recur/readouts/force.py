"""FORCE learning: recursive least squares on a readout, usable online in a closed loop."""

from __future__ import annotations

import numpy as np

from ..validation import check_positive
from .base import Readout

__all__ = ["Force"]


class Force(Readout):
    r"""Recursive-least-squares readout (FORCE learning, Sussillo & Abbott 2009).

    Each sample ``(x, y)`` updates, with :math:`P_0 = I / \alpha`,

    .. math::

        k = \frac{P x}{1 + x^\top P x}, \quad P \leftarrow P - k (P x)^\top, \quad
        e = W x + b - y, \quad W \leftarrow W - e\, k^\top

    so the error is cut at every step; run inside a closed loop (``recur.generate`` with a
    ``target``) it keeps the fed-back output close to the target while the network learns.
    Samples are processed in order; ``fit`` starts from :math:`P_0` and zero weights.

    Parameters
    ----------
    alpha : float > 0
        Inverse of the initial ``P``'s scale: a learning rate, smaller learns faster.
    fit_intercept : bool
        Learn a bias through a constant feature.

    Attributes
    ----------
    coef_ : ndarray, shape (n_out, n_features)
    intercept_ : ndarray, shape (n_out,)
    P_ : ndarray, shape (n_features (+1), n_features (+1))
        Running inverse correlation matrix.
    n_features_in_, n_outputs_, n_samples_seen_ : int

    References
    ----------
    .. [1] D. Sussillo and L. F. Abbott, "Generating coherent patterns of activity from
       chaotic neural networks", Neuron 63:544-557 (2009).
    """

    def __init__(self, alpha=1.0, fit_intercept=False):
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    def partial_fit(self, X, y):
        """Update on each sample of ``(X, y)`` in order; returns ``self``."""
        check_positive(self.alpha, "alpha")
        X2, lead = self._features(X, fitting=True)
        Y2 = self._targets(y, lead, len(lead) + 1)
        if getattr(self, "n_features_in_", None) is None:
            n = X2.shape[1] + int(bool(self.fit_intercept))
            self.n_features_in_, self.n_outputs_ = X2.shape[1], Y2.shape[1]
            self.P_ = np.eye(n) / self.alpha
            self._w = np.zeros((Y2.shape[1], n))
            self.n_samples_seen_ = 0
        if self.fit_intercept:
            X2 = np.hstack([X2, np.ones((X2.shape[0], 1), dtype=X2.dtype)])
        P, w = self.P_, self._w
        for x, target in zip(X2.astype(np.float64, copy=False), Y2):
            Px = P @ x
            k = Px / (1.0 + x @ Px)
            P -= np.outer(k, Px)
            w -= np.outer(w @ x - target, k)
        self.n_samples_seen_ += X2.shape[0]
        self._publish()
        return self

    def _publish(self):
        n = self.n_features_in_
        self.coef_ = self._w[:, :n].copy()
        self.intercept_ = self._w[:, n].copy() if self.fit_intercept else np.zeros(self.n_outputs_)
