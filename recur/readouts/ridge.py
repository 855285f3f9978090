"""Ridge regression readout built on accumulated sufficient statistics."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..validation import check_positive
from .base import Readout

__all__ = ["Ridge"]

# Rows converted to float64 at a time when X arrives in float32, so a long float32 state
# matrix is never copied whole.
_CHUNK_ROWS = 4096


class Ridge(Readout):
    r"""Ridge (Tikhonov) regression readout.

    .. math::

        W = (\tilde X^\top \tilde X + \alpha I)^{-1} \tilde X^\top \tilde Y, \qquad
        b = \bar y - W^\top \bar x

    where :math:`\tilde X, \tilde Y` are centred (the intercept is not penalised) when
    ``fit_intercept``. Only :math:`X^\top X`, :math:`X^\top Y`, the sums and the count are
    kept, so ``partial_fit`` over many sequences or chunks gives exactly the fit on their
    concatenation, in memory independent of their length.

    Parameters
    ----------
    alpha : float >= 0
        Ridge penalty.
    fit_intercept : bool

    Attributes
    ----------
    coef_ : ndarray, shape (n_out, n_features)
    intercept_ : ndarray, shape (n_out,)
    n_features_in_ : int
    n_outputs_ : int
    n_samples_seen_ : int
    """

    def __init__(self, alpha=1e-6, fit_intercept=True):
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    def partial_fit(self, X, y):
        """Add ``(X, y)`` to the accumulated statistics and re-solve; returns ``self``.

        ``X`` (T, N) or (B, T, N); ``y`` (T, M) or (B, T, M).
        """
        check_positive(self.alpha, "alpha", strict=False)
        X2, lead = self._features(X, fitting=True)
        X_ndim = len(lead) + 1
        Y2 = self._targets(y, lead, X_ndim)
        n, m = X2.shape[1], Y2.shape[1]
        if getattr(self, "n_features_in_", None) is None:
            self.n_features_in_, self.n_outputs_ = n, m
            self._xtx = np.zeros((n, n))
            self._xty = np.zeros((n, m))
            self._xsum = np.zeros(n)
            self._ysum = np.zeros(m)
            self.n_samples_seen_ = 0
        rows = X2.shape[0] if X2.dtype == np.float64 else _CHUNK_ROWS
        for start in range(0, X2.shape[0], rows):
            Xc = X2[start:start + rows].astype(np.float64, copy=False)
            Yc = Y2[start:start + rows]
            self._xtx += Xc.T @ Xc
            self._xty += Xc.T @ Yc
            self._xsum += Xc.sum(axis=0)
            self._ysum += Yc.sum(axis=0)
        self.n_samples_seen_ += X2.shape[0]
        self._solve()
        return self

    def _solve(self):
        A = self._xtx.copy()
        B = self._xty.copy()
        n = self.n_samples_seen_
        if self.fit_intercept:
            x_mean = self._xsum / n
            y_mean = self._ysum / n
            A -= n * np.outer(x_mean, x_mean)
            B -= n * np.outer(x_mean, y_mean)
        A[np.diag_indices_from(A)] += self.alpha
        try:
            W = sla.solve(A, B, assume_a="pos", check_finite=False)
        except (sla.LinAlgError, ValueError):
            # alpha = 0 with collinear features: take the minimum-norm solution.
            W = sla.lstsq(A, B, check_finite=False)[0]
        self.coef_ = W.T.copy()
        self.intercept_ = (y_mean - x_mean @ W) if self.fit_intercept else np.zeros(W.shape[1])
