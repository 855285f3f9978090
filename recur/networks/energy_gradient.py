r"""The exact gradient of an :class:`~recur.EnergyNet`'s loss, and its perturbed copies.

**Recurrent backpropagation (implicit differentiation).** At a free fixed point
:math:`s = \rho(z)`, :math:`z = W s + b` on the free units (inputs clamped), a change of the
parameters moves the fixed point by

.. math::

    (I - D W_{ff})\, \mathrm{d}s_f = D\, (\mathrm{d}W\, s + \mathrm{d}b)_f,
    \qquad D = \mathrm{diag}\, \rho'(z_f),

so with :math:`c = \partial L / \partial s_f` (nonzero on the outputs) the loss changes by
:math:`\mathrm{d}L = \mu^\top (\mathrm{d}W\, s + \mathrm{d}b)` where

.. math::

    (I - W_{ff} D)\, v = c, \qquad \mu = D v

(``W`` symmetric). Where :math:`D` is invertible this is the Hessian system
:math:`(D^{-1} - W_{ff})\, \mu = c` of the energy on the free units (Almeida 1987; Pineda
1987; Scellier & Bengio 2017); the form above stays defined where the hard sigmoid is
saturated (:math:`\rho' = 0`: the unit does not move). It is solved exactly, batched over the
samples (``O(B n_free^3)``). Per sample the gradient with respect to the coupling
:math:`w_{ij} = W_{ij} = W_{ji}` is :math:`\mu_i s_j + s_i \mu_j`; the returned matrix holds
it at both ``(i, j)`` and ``(j, i)`` (zero off the graph and on the diagonal), the convention
of every EnergyNet update, and :math:`\partial L / \partial b = \mu`.

**Perturbations.** Weight perturbation draws one Gaussian value per coupling (applied to
``W[i, j]`` and ``W[j, i]`` alike) and per free unit's bias; node perturbation adds a constant
Gaussian drive :math:`\xi` to every free unit of every sample during settling and credits
each coupling with the tied eligibility :math:`\sum_b (\xi_b s_b^\top + s_b \xi_b^\top)`
(``s`` the clean free fixed point) and each bias with :math:`\sum_b \xi_b`. In both cases
:math:`\mathbb E[(L_k - L_0)\, e_k] = \sigma^2 \nabla L + O(\sigma^4)` in the tied convention,
because :math:`\partial L / \partial \xi_b = \mu_b`. Couplings between two input units and
input biases act on nothing (inputs are clamped): they are not perturbed and their
eligibility is zero. The ``K`` (or ``2K``, antithetic) perturbed copies settle as one batch,
each starting from the clean free fixed point.

References
----------
.. [1] L. B. Almeida, "A learning rule for asynchronous perceptrons with feedback in a
   combinatorial environment", IEEE ICNN (1987).
.. [2] F. J. Pineda, "Generalization of back-propagation to recurrent neural networks",
   Phys. Rev. Lett. 59:2229 (1987).
.. [3] B. Scellier & Y. Bengio, Front. Comput. Neurosci. 11:24 (2017).
"""

from __future__ import annotations

import numpy as np

from ..rules import evidence as ev
from ..validation import ConvergenceError
from .energy import _rho_prime

__all__ = ["fixed_point_gradient", "energy_perturbations"]


def fixed_point_gradient(net, W, s, z, y) -> dict:
    r"""Gradient of the loss at the free fixed point, by implicit differentiation.

    Parameters
    ----------
    net : EnergyNet
    W : ndarray, shape (N, N)
        Symmetric couplings.
    s, z : ndarray, shape (B, N)
        Free fixed-point activities and pre-activations.
    y : ndarray, shape (B, n_out)

    Returns
    -------
    dict
        ``"W"`` (N, N): :math:`\sum_b (\mu_b s_b^\top + s_b \mu_b^\top)` on the graph, zero
        diagonal; ``"b"`` (N,): :math:`\sum_b \mu_b` (zero on the inputs). ``mu`` carries the
        loss's :math:`1/(B\, n_{out})`.

    Raises
    ------
    ConvergenceError
        When the linear system is singular (the fixed point is not a stable one).
    """
    free = net._free
    B, N = s.shape
    out_pos = np.searchsorted(free, net._out)
    D = _rho_prime(z[:, free], net.activation)                   # (B, nf)
    c = np.zeros((B, free.size))
    c[:, out_pos] = (2.0 / (B * net.n_out)) * (s[:, net._out] - y)
    Wff = W[np.ix_(free, free)]
    # I - W_ff D_b: column k of W_ff scaled by rho'(z_k) of sample b.
    A = np.eye(free.size)[None] - Wff[None, :, :] * D[:, None, :]
    try:
        v = np.linalg.solve(A, c[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError as exc:
        raise ConvergenceError("the free fixed point is singular (I - W D has no inverse): "
                               "it is not a stable fixed point, so the loss has no gradient "
                               "there") from exc
    mu = np.zeros((B, N))
    mu[:, free] = D * v
    G = mu.T @ s
    return {"W": np.where(net._mask, G + G.T, 0.0), "b": mu.sum(axis=0)}


def _active_edges(net):
    """Upper-triangle couplings that touch at least one free unit (the ones that act)."""
    i, j = np.nonzero(np.triu(net._mask, 1))
    is_input = np.zeros(net.n_units, dtype=bool)
    is_input[net._inp] = True
    keep = ~(is_input[i] & is_input[j])
    return i[keep], j[keep]


def energy_perturbations(net, W, b, s0, loss0, y, req, rng) -> ev.Perturbations:
    """Losses of ``K`` perturbed copies of an EnergyNet and their eligibilities.

    Parameters
    ----------
    net : EnergyNet
    W, b : ndarray
        Parameters (checked).
    s0 : ndarray, shape (B, N)
        The clean free fixed point (start of every perturbed settle, and the presynaptic
        activity of node perturbation's eligibility).
    loss0 : float
        The clean loss.
    y : ndarray, shape (B, n_out)
    req : Perturbed
    rng : Generator

    Returns
    -------
    Perturbations
        ``eligibility["W"]`` (K, N, N) symmetric, on the graph; ``eligibility["b"]`` (K, N);
        only for the names ``req.params`` selects.
    """
    names = req.selected(("W", "b"))
    K, sigma = int(req.n_samples), float(req.sigma)
    B, N = s0.shape
    signs = (1.0, -1.0) if req.antithetic else (1.0,)
    free = net._free
    elig = {}
    if req.where == "weights":
        E_W = np.zeros((K, N, N))
        if "W" in names:
            i, j = _active_edges(net)
            eps = rng.normal(0.0, sigma, (K, i.size))
            E_W[:, i, j] = eps
            E_W[:, j, i] = eps
            elig["W"] = E_W
        e_b = np.zeros((K, N))
        if "b" in names:
            e_b[:, free] = rng.normal(0.0, sigma, (K, free.size))
            elig["b"] = e_b
        Ws = np.concatenate([W[None] + sg * E_W for sg in signs])          # (S K, N, N)
        bs = np.concatenate([b[None] + sg * e_b for sg in signs])[:, None, :]
        s = np.broadcast_to(s0, (Ws.shape[0], B, N)).copy()
        s, _, _, _ = net._relax(Ws, bs, s, phase="perturbed (weights)")
    else:
        xi = np.zeros((K, B, N))
        xi[:, :, free] = rng.normal(0.0, sigma, (K, B, free.size))
        if "W" in names:
            G = np.einsum("kbi,bj->kij", xi, s0)
            elig["W"] = np.where(net._mask, G + G.transpose(0, 2, 1), 0.0)
        if "b" in names:
            elig["b"] = xi.sum(axis=1)
        extra = np.concatenate([sg * xi for sg in signs])
        s = np.broadcast_to(s0, extra.shape).copy()
        s, _, _, _ = net._relax(W, b, s, extra=extra, phase="perturbed (nodes)")
    losses = np.mean(net._cost(s, y), axis=-1)
    return ev.Perturbations(sigma=sigma, eligibility=elig, losses=losses[:K],
                            losses_minus=losses[K:] if req.antithetic else None,
                            loss_clean=float(loss0))
