"""Least-mean-squares (delta rule) readout."""

from __future__ import annotations

import numpy as np

from ..validation import DivergenceError, check_positive
from .base import Readout

__all__ = ["Lms"]


class Lms(Readout):
    r"""Online least-mean-squares readout (Widrow-Hoff delta rule).

    For each sample in order,

    .. math::

        e = W x + b - y, \qquad W \leftarrow W - \eta\, e x^\top, \qquad
        b \leftarrow b - \eta\, e

    Parameters
    ----------
    learning_rate : float > 0
        Step size :math:`\eta`; stable for :math:`\eta < 2 / \|x\|^2`.
    fit_intercept : bool

    Attributes
    ----------
    coef_ : ndarray, shape (n_out, n_features)
    intercept_ : ndarray, shape (n_out,)
    n_features_in_, n_outputs_, n_samples_seen_ : int
    """

    def __init__(self, learning_rate=1e-3, fit_intercept=True):
        self.learning_rate = learning_rate
        self.fit_intercept = fit_intercept

    def partial_fit(self, X, y):
        """One delta-rule step per sample of ``(X, y)``, in order; returns ``self``."""
        check_positive(self.learning_rate, "learning_rate")
        X2, lead = self._features(X, fitting=True)
        Y2 = self._targets(y, lead, len(lead) + 1)
        if getattr(self, "n_features_in_", None) is None:
            self.n_features_in_, self.n_outputs_ = X2.shape[1], Y2.shape[1]
            self.coef_ = np.zeros((Y2.shape[1], X2.shape[1]))
            self.intercept_ = np.zeros(Y2.shape[1])
            self.n_samples_seen_ = 0
        eta = self.learning_rate
        W, b = self.coef_, self.intercept_
        with np.errstate(over="ignore", invalid="ignore"):
            for x, target in zip(X2.astype(np.float64, copy=False), Y2):
                e = W @ x + b - target
                W -= eta * np.outer(e, x)
                if self.fit_intercept:
                    b -= eta * e
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise DivergenceError("Lms weights became NaN or inf: learning_rate "
                                  f"{eta!r} is too large for these features")
        self.n_samples_seen_ += X2.shape[0]
        return self
