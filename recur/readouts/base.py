"""What every readout shares: input validation, prediction, parameters, repr."""

from __future__ import annotations

import inspect

import numpy as np

from ..validation import as_float_array

__all__ = ["Readout", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """A readout was used before ``fit`` or ``partial_fit``."""


class Readout:
    """Base class of linear readouts ``y = coef_ @ x + intercept_``.

    Shapes: features ``X`` are ``(n_features,)`` (one sample), ``(T, n_features)`` or
    ``(B, T, n_features)``; targets ``Y`` match with ``n_out`` in the last axis (a 1-D target
    beside 2-D features is one output). Predictions have ``X.shape[:-1] + (n_out,)``.
    Hyperparameters are stored verbatim by ``__init__``; fitted attributes end in ``_``.
    """

    # -- scikit-learn conventions ---------------------------------------------------------
    def get_params(self) -> dict:
        """Hyperparameters as passed to ``__init__``."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self):
        if getattr(self, "n_features_in_", None) is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit or "
                                 "partial_fit before predict")

    # -- validation -----------------------------------------------------------------------
    def _features(self, X, *, fitting):
        """Validate features; returns (2-D samples, leading shape)."""
        X = as_float_array(X, "X", ndim=(1, 2, 3))
        lead = X.shape[:-1]
        X2 = X.reshape(-1, X.shape[-1])
        n_features = getattr(self, "n_features_in_", None)
        if n_features is not None and X2.shape[1] != n_features:
            raise ValueError(f"X has {X2.shape[1]} features, but this {type(self).__name__} "
                             f"was fitted with {n_features}")
        if fitting and X2.shape[0] == 0:
            raise ValueError("X has no samples")
        return X2, lead

    def _targets(self, Y, lead, X_ndim):
        Y = as_float_array(Y, "y", ndim=(1, 2, 3), dtype=np.float64)
        if Y.ndim == X_ndim - 1 and X_ndim >= 2:  # one output, given without its axis
            Y = Y[..., None]
        if Y.shape[:-1] != lead:
            raise ValueError(f"y must have the same leading shape as X {lead}, got {Y.shape}")
        Y2 = Y.reshape(-1, Y.shape[-1])
        n_out = getattr(self, "n_outputs_", None)
        if n_out is not None and Y2.shape[1] != n_out:
            raise ValueError(f"y has {Y2.shape[1]} outputs, but this {type(self).__name__} "
                             f"was fitted with {n_out}")
        return Y2

    # -- prediction -----------------------------------------------------------------------
    def predict(self, X):
        """``y = X @ coef_.T + intercept_``; shape ``X.shape[:-1] + (n_out,)``."""
        self._check_fitted()
        X2, lead = self._features(X, fitting=False)
        Y = X2 @ self.coef_.T + self.intercept_
        return Y.reshape(lead + (Y.shape[-1],))

    def fit(self, X, y):
        """Forget any previous fit, then learn from ``(X, y)``; returns ``self``."""
        self._reset()
        return self.partial_fit(X, y)

    def _reset(self):
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("__"):
                delattr(self, name)
