"""A linear student ``y = W x``: the teacher-student setting of perturbation-learning theory."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..rules import evidence as ev
from ..tasks.objectives import TeacherForced, as_objective
from ..validation import DivergenceError, check_positive

__all__ = ["Linear"]


@dataclass(frozen=True, eq=False)
class Linear:
    r"""Linear map from inputs to outputs, trained on (input, target) pairs.

    .. math::

        y_s = W x_s, \qquad
        L(W) = \frac{1}{S M} \sum_{s=1}^{S} \|W x_s - y^*_s\|^2

    over the ``S`` samples of the data (after its ``washout``) and the ``M = n_out`` outputs:
    the mean squared error, as the :class:`~recur.ESN` scores its readout. ``W[post, pre]`` is
    ``W[output, input]``. The network has no state: each sample is an independent pair, so a
    batch ``(B, S, n_in)`` is just ``B * S`` samples.

    This is the student of Werfel, Xie & Seung (2005): with a linear teacher
    ``y* = W* x`` and ``x ~ N(0, I)``, gradient descent, node perturbation and weight
    perturbation can be compared exactly, and the same rule objects then run unchanged on a
    recurrent network.

    Evidence it collects (:meth:`collect`):

    - :class:`~recur.rules.Gradient`:
      :math:`\nabla_W L = \frac{2}{SM} \sum_s (W x_s - y^*_s)\, x_s^\top`, exact.
    - :class:`~recur.rules.Perturbed` ``(where="weights")``: ``K`` perturbed copies
      :math:`W + \epsilon_k`, :math:`\epsilon_k \sim N(0, \sigma^2 I)`; eligibility
      :math:`\epsilon_k`.
    - :class:`~recur.rules.Perturbed` ``(where="nodes")``: noise :math:`\xi_{k,s} \sim N(0,
      \sigma^2 I_M)` added to every output at every sample, :math:`y_{k,s} = W x_s +
      \xi_{k,s}`; eligibility :math:`\sum_s \xi_{k,s}\, x_s^\top`.
    - :class:`~recur.rules.Activity`: ``pre = x``, ``post = y``, and the targets.

    ``Perturbed(params=...)`` may name only ``"W"`` (the outputs are the only nodes, and
    ``W`` feeds them); any other name raises ``ValueError``.

    The ``K`` perturbations are evaluated as one vectorised batch; antithetic pairs
    (:math:`\pm\epsilon_k`) fill ``losses_minus`` and ``clean`` the unperturbed loss, exactly
    as the ESN returns them.

    Parameters
    ----------
    n_in : int >= 1
        Input dimension ``N``.
    n_out : int >= 1
        Output dimension ``M``.
    init_scale : float >= 0
        :meth:`init` draws ``W ~ N(0, init_scale**2 / n_in)``; 0 starts from ``W = 0``.
    dtype : numpy floating type

    Notes
    -----
    ``params`` is ``{"W": ndarray (n_out, n_in)}``.

    References
    ----------
    .. [1] J. Werfel, X. Xie, H. S. Seung, "Learning curves for stochastic gradient descent in
       linear feedforward networks", Neural Computation 17:2699-2718 (2005).
    """

    n_in: int
    n_out: int = 1
    init_scale: float = 1.0
    dtype: type = np.float64

    def __post_init__(self):
        check_positive(self.n_in, "n_in", integer=True)
        check_positive(self.n_out, "n_out", integer=True)
        check_positive(self.init_scale, "init_scale", strict=False)
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype!r}")

    # -- parameters -----------------------------------------------------------------------
    def init(self, rng=None) -> dict:
        """Draw ``{"W": (n_out, n_in)}`` with entries ``N(0, init_scale**2 / n_in)``."""
        rng = np.random.default_rng(rng)
        scale = self.init_scale / np.sqrt(self.n_in)
        W = rng.normal(0.0, 1.0, (self.n_out, self.n_in)) * scale
        return {"W": W.astype(self.dtype)}

    def check_params(self, params) -> None:
        """Raise if ``params`` does not fit this network or holds NaN/inf."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        if "W" not in params:
            raise ValueError("params is missing 'W'")
        W = params["W"]
        if np.shape(W) != (self.n_out, self.n_in):
            raise ValueError(f"params['W'] must have shape {(self.n_out, self.n_in)}, got "
                             f"{np.shape(W)}")
        if not np.isfinite(W).all():
            raise DivergenceError("params['W'] contains NaN or inf")

    def constrain(self, params):
        """No invariants: every entry of ``W`` is free."""
        return params

    # -- function -------------------------------------------------------------------------
    def output(self, params, inputs):
        """``y = W x`` for inputs ``(..., n_in)``; returns ``(..., n_out)``."""
        return np.asarray(inputs) @ params["W"].T

    def _samples(self, data):
        """The counted (input, target) samples as ``(S, n_in)``, ``(S, n_out)`` arrays."""
        objective = as_objective(data)
        if not isinstance(objective, TeacherForced):
            raise TypeError("a Linear network learns (inputs, targets) pairs; got a "
                            f"{type(objective).__name__} objective")
        u, y = objective.inputs, objective.targets
        if u.shape[-1] != self.n_in:
            raise ValueError(f"the data has {u.shape[-1]} input channel(s), the network "
                             f"n_in={self.n_in}")
        if y.shape[-1] != self.n_out:
            raise ValueError(f"the data has {y.shape[-1]} target channel(s), the network "
                             f"n_out={self.n_out}")
        u = u[..., objective.washout:, :].reshape(-1, self.n_in)
        y = y[..., objective.washout:, :].reshape(-1, self.n_out)
        return u.astype(self.dtype, copy=False), y

    @staticmethod
    def _mse(err, axes):
        """Mean of squares over ``axes`` (all when None), in float64."""
        sq = np.square(err, dtype=np.float64)
        n = sq.size if axes is None else math.prod(sq.shape[a] for a in axes)
        return sq.sum(axis=axes) / n

    def loss(self, params, data, state=None) -> float:
        """Mean squared error over samples and outputs; ``state`` is ignored (no memory)."""
        self.check_params(params)
        x, target = self._samples(data)
        with np.errstate(over="ignore", invalid="ignore"):
            loss = float(self._mse(self.output(params, x) - target, None))
        if not np.isfinite(loss):
            raise DivergenceError("the Linear network's predictions became NaN or inf")
        return loss

    # -- learning -------------------------------------------------------------------------
    def collect(self, params, data, requires, *, state=None, rng=None) -> ev.Evidence:
        """Collect the evidence a rule asked for.

        Parameters
        ----------
        params : dict
        data : TeacherForced or (inputs, targets)
            Inputs ``(S, n_in)`` (or ``(B, S, n_in)``), targets ``(S, n_out)``.
        requires : request or tuple of requests
            :class:`~recur.rules.Gradient`, :class:`~recur.rules.Perturbed`,
            :class:`~recur.rules.Activity`.
        state : ignored
            The network has no memory; accepted for the common protocol.
        rng : None, int or Generator
            Draws the perturbations.

        Returns
        -------
        Evidence
            ``state`` is None.
        """
        requests = ev.as_requests(requires)
        self.check_params(params)
        x, target = self._samples(data)
        rng = np.random.default_rng(rng)
        results = {}
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            y = self.output(params, x)
            err = y - target
            loss = float(self._mse(err, None))
            if not np.isfinite(loss):
                raise DivergenceError("the Linear network's predictions became NaN or inf")
            self._collect_into(results, requests, params, x, y, target, err, loss, rng)
        return ev.Evidence(loss=loss, results=results, state=None)

    def _collect_into(self, results, requests, params, x, y, target, err, loss, rng):
        for req in requests:
            if isinstance(req, ev.Gradient):
                results[req] = {"W": (2.0 / err.size) * (err.T @ x)}
            elif isinstance(req, ev.Perturbed):
                results[req] = self._perturbations(params, x, err, loss, req, rng)
            elif isinstance(req, ev.Activity):
                results[req] = ev.ActivityTrace(pre={"W": x}, post={"W": y}, target=target)
            else:
                raise NotImplementedError(f"Linear cannot collect {type(req).__name__} evidence")

    def _perturbations(self, params, x, err, loss, req, rng) -> ev.Perturbations:
        r"""``K`` perturbed runs at once.

        The output change a perturbation causes is ``d[k, s] = eps_k x_s`` (weights) or
        ``xi[k, s]`` (nodes), so the perturbed losses are ``mean((err + d_k)^2)`` and the
        mirrored ones ``mean((err - d_k)^2)``; both are expanded around the clean loss,
        ``L_0 +- 2 <err, d_k> / (S M) + mean(d_k^2)``, which is exact for a quadratic loss
        and keeps the small differences ``L_k - L_0`` free of cancellation.
        """
        K, sigma = req.n_samples, req.sigma
        S, M = err.shape
        req.selected(("W",))  # the only parameter; raises on unknown names
        if req.where == "weights":
            eps = rng.standard_normal((K,) + np.shape(params["W"])) * sigma
            delta = np.matmul(eps, x.T).transpose(0, 2, 1)           # (K, S, M): eps_k x_s
            eligibility = eps
        else:
            delta = rng.standard_normal((K, S, M)) * sigma           # xi[k, s]
            eligibility = np.matmul(delta.transpose(0, 2, 1), x)     # sum_s xi_ks x_s^T
        # mean((err +- d)^2) = L_0 +- 2 <err, d> / (S M) + mean(d^2), for all k at once
        cross = (2.0 / (S * M)) * np.einsum("ksm,sm->k", delta, err)
        own = np.einsum("ksm,ksm->k", delta, delta) / (S * M)
        losses = loss + cross + own
        losses_minus = loss - cross + own if req.antithetic else None
        check = losses if losses_minus is None else losses + losses_minus
        if not np.isfinite(check).all():
            raise DivergenceError("the Linear network's perturbed losses became NaN or inf")
        return ev.Perturbations(sigma=sigma, eligibility={"W": eligibility}, losses=losses,
                                losses_minus=losses_minus,
                                loss_clean=loss if req.clean else None)
