r"""Exact gradient of an ESN's trajectory loss: backpropagation through time, written out.

The forward model (one sequence; a batch repeats it per sequence), for ``t = 1 .. T``:

.. math::

    z_t = W x_{t-1} + W_{in} u_t + b, \qquad
    x_t = (1 - a)\, x_{t-1} + a \tanh z_t, \qquad
    \hat y_t = W_{out} x_t + b_{out},

with ``W[post, pre]`` (networkx edge ``u -> v`` is ``W[v, u]``, i.e. ``W = A.T``), the initial
state ``x_0`` a constant, and on closed-loop steps (``free[t]``) the input is the network's
own previous prediction, :math:`u_t = \hat y_{t-1}`. The loss is the mean squared error over
the counted steps ``C`` of ``B`` sequences and ``D`` output channels,

.. math::

    L = \frac{1}{B\,|C|\,D} \sum_b \sum_{t \in C} \|\hat y_t - y_t\|^2 .

Backward pass, ``t = T .. 1``, with :math:`\delta_{T+1} = 0`, :math:`g_{T+1} = 0` and
:math:`e_t = \frac{2}{B |C| D} (\hat y_t - y_t)\,[t \in C]` the direct error:

.. math::

    \gamma_t &= e_t + [\mathrm{free}_{t+1}]\; W_{in}^\top \delta_{t+1}
        && \partial L / \partial \hat y_t \\
    g_t &= W_{out}^\top \gamma_t + (1 - a)\, g_{t+1} + W^\top \delta_{t+1}
        && \partial L / \partial x_t \\
    \delta_t &= a\,(1 - \tanh^2 z_t) \odot g_t
        && \partial L / \partial z_t

and the parameter gradients are sums over steps and sequences:

.. math::

    \nabla_W L = M \odot \sum_t \delta_t x_{t-1}^\top, \quad
    \nabla_{W_{in}} L = \sum_t \delta_t u_t^\top, \quad
    \nabla_b L = \sum_t \delta_t, \quad
    \nabla_{W_{out}} L = \sum_t \gamma_t x_t^\top, \quad
    \nabla_{b_{out}} L = \sum_t \gamma_t,

with ``M`` the topology's mask. On a sparse ``W`` only the graph's edges are computed
(``O(T x edges)``), and the result has exactly ``W``'s CSR structure.

The slope :math:`1 - \tanh^2 z_t` comes from the stored states,
:math:`\tanh z_t = (x_t - (1-a) x_{t-1}) / a` (the very value the forward run rounded), unless
that difference would lose accuracy to cancellation (float32 networks, leaks below ~2e-3 in
float64): then ``z_t`` is recomputed in float64. Everything is computed in float64 and
returned in the network's dtype.

The backward loop over steps is the only sequential part; every sum over steps is done after
it in one batched product. It runs compiled (numba) when the network's backend resolves to
numba, with a numpy twin that computes the same numbers up to rounding.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import kernels
from ..masked import masked_outer, with_values

__all__ = ["esn_gradient"]

# The slope a (1 - tanh^2 z) is recovered from the stored states as
# h = (x_t - (1 - a) x_{t-1}) / a, which loses about eps / a of absolute accuracy to
# cancellation. Above this bound on eps / a the pre-activation z is recomputed instead
# (one extra product with W over all steps): float32 networks always, float64 ones only with a
# leak below ~2e-3.
_RECOVER_MAX_ERROR = 1e-13


def esn_gradient(net, params, traj, *, backend=None) -> dict:
    r"""Gradient of ``traj.loss`` with respect to every parameter of an ESN.

    Parameters
    ----------
    net : ESN
        The network that produced ``traj`` (no output feedback).
    params : dict
        ``"W"`` (N, N) dense or CSR, with ``W[post, pre]`` (``W = A.T`` of the networkx
        adjacency); ``"W_in"`` (N, n_in); ``"b"`` (N,); ``"W_out"`` (n_out, N); ``"b_out"``
        (n_out,).
    traj : Trajectory
        From :meth:`ESN.trajectory` with these ``params``: ``x_prev``, ``x`` (..., T, N),
        ``u`` (..., T, n_in), ``y_hat``, ``target`` (..., T, n_out), ``counted``, ``free``
        (T,). A leading batch axis is optional.
    backend : {"auto", "numba", "numpy"} or None
        Implementation of the backward loop and of the per-edge sums; None follows
        ``net.backend``. Both compute the same numbers up to rounding.

    Returns
    -------
    dict
        ``"W"``: for a sparse ``W`` a CSR array with exactly its structure (values in storage
        order), for a dense ``W`` an (N, N) array that is zero off the topology's mask;
        ``"W_in"`` (N, n_in), ``"b"`` (N,), ``"W_out"`` (n_out, N), ``"b_out"`` (n_out,).
        Returned in the network's dtype; computed in float64 (a float32 network's states are
        widened first).

    Raises
    ------
    TypeError
        If ``params["W"]`` is sparse but not CSR.
    ValueError
        If the trajectory's first step is marked free-running, or closed-loop steps feed back
        a prediction whose width differs from ``n_in``.

    Notes
    -----
    Cost: the backward loop is one product with ``W^T`` per step, as the forward run is one
    with ``W``; the recurrent gradient is one masked sum of ``T * B`` outer products,
    ``O(T B edges)`` for a sparse ``W`` (:func:`~recur.masked.masked_outer`: a compiled
    per-edge kernel, numpy gathers without numba, or a dense product read at the edges when
    the graph is dense enough for that to be cheaper) and one ``(N, TB) x (TB, N)`` BLAS
    product for a dense one. The equations are in the module docstring. Measured by
    ``benchmarks/bench_bptt.py``: 1-2.5 times the forward run.
    """
    backend = net.backend if backend is None else backend
    compiled = kernels.use_numba(backend, _JIT)
    W = params["W"]
    if sp.issparse(W) and W.format != "csr":
        raise TypeError(f"params['W'] must be a CSR matrix or a dense array, got "
                        f"{W.format.upper()}")
    free = np.asarray(traj.free, dtype=bool)
    counted = np.asarray(traj.counted, dtype=bool)
    if not counted.any():
        raise ValueError("traj.counted marks no step: the loss, and its gradient, are undefined")
    if free[0]:
        raise ValueError("traj.free[0] is True, but the first step has no previous prediction "
                         "to feed back")
    x, x_prev, u, y_hat, target = (_batched(a) for a in (traj.x, traj.x_prev, traj.u,
                                                          traj.y_hat, traj.target))
    n_batch, n_steps, n = x.shape
    n_out = y_hat.shape[-1]
    W_in = np.ascontiguousarray(params["W_in"], dtype=np.float64)
    W_out = np.ascontiguousarray(params["W_out"], dtype=np.float64)
    if free.any() and W_in.shape[1] != n_out:
        raise ValueError(f"closed-loop steps feed the {n_out}-dimensional prediction back, "
                         f"but W_in has {W_in.shape[1]} input column(s)")

    # Direct error dL/dy_hat: the loss averages over sequences, counted steps and channels.
    scale = 2.0 / (n_batch * int(counted.sum()) * n_out)
    err = np.zeros((n_batch, n_steps, n_out))
    err[:, counted] = scale * (y_hat[:, counted] - target[:, counted])
    slope = None
    if not _recovers_slope(net):
        slope = _recomputed_slope(W, W_in, params["b"], x_prev, u, net.leak)

    if compiled:
        gz, v = _backward_numba(W, W_in, W_out, x, x_prev, slope, err, free, net.leak)
    else:
        if slope is None:
            slope = _recovered_slope(x, x_prev, net.leak)
        gz, v = _backward_numpy(W, W_in, W_out, slope, err, free, net.leak)

    # Every sum over steps and sequences is one product over the flattened samples.
    gz_s = gz.reshape(-1, n)
    dtype = np.dtype(net.dtype)
    if sp.issparse(W):
        grad_W = masked_outer(gz_s, x_prev.reshape(-1, n), W,
                              backend="numba" if compiled else "numpy")  # W's structure
        if grad_W.dtype != W.dtype:
            grad_W = with_values(W, grad_W.data.astype(W.dtype))
    else:
        dW = gz_s.T @ x_prev.reshape(-1, n)
        mask = net.topology.mask.toarray()
        grad_W = np.where(mask, dW, 0.0).astype(np.asarray(W).dtype, copy=False)

    # gamma_t = e_t + [free_{t+1}] W_in^T delta_{t+1}; v[:, t] holds W_in^T delta_t on free t.
    gy = err
    if free.any():
        gy = err.copy()
        gy[:, :-1] += v[:, 1:]
    gy_s = gy.reshape(-1, n_out)
    return {
        "W": grad_W,
        "W_in": (gz_s.T @ u.reshape(-1, u.shape[-1])).astype(dtype, copy=False),
        "b": gz_s.sum(axis=0).astype(dtype, copy=False),
        "W_out": (gy_s.T @ x.reshape(-1, n)).astype(dtype, copy=False),
        "b_out": gy_s.sum(axis=0).astype(dtype, copy=False),
    }


def _batched(a):
    """float64, C-contiguous, with a leading batch axis: (T, D) -> (1, T, D)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a[None] if a.ndim == 2 else a


# --- the slope a (1 - tanh^2 z) -------------------------------------------------------------

def _recovers_slope(net) -> bool:
    """Whether tanh z_t can be recovered from the stored states without losing accuracy.

    ``h = (x_t - (1 - a) x_{t-1}) / a`` loses about ``eps / a`` (absolute) to cancellation,
    eps the network dtype's. It is exact for ``a = 1`` and is the very tanh the forward run
    rounded, so it is used unless that loss exceeds ``_RECOVER_MAX_ERROR``.
    """
    eps = float(np.finfo(np.dtype(net.dtype)).eps)
    return eps / float(net.leak) <= _RECOVER_MAX_ERROR


def _recovered_slope(x, x_prev, leak):
    r"""``a (1 - h^2)`` with :math:`h = (x_t - (1-a) x_{t-1}) / a`, shape (B, T, N).

    The operations and their order are those of the compiled loop (``_step_delta``), so the two
    backends use the same slope.
    """
    keep = 1.0 - leak
    h = x - keep * x_prev
    h *= 1.0 / leak
    h *= h
    np.subtract(1.0, h, out=h)
    h *= leak
    return h


def _recomputed_slope(W, W_in, b, x_prev, u, leak):
    """``a (1 - tanh^2 z)`` from ``z = W x_{t-1} + W_in u_t + b`` recomputed in float64."""
    n = x_prev.shape[-1]
    flat = x_prev.reshape(-1, n)
    if sp.issparse(W):
        z = (W.astype(np.float64) @ flat.T).T
    else:
        z = flat @ np.asarray(W, dtype=np.float64).T
    z += u.reshape(-1, u.shape[-1]) @ W_in.T
    z += np.asarray(b, dtype=np.float64)
    h = np.tanh(z).reshape(x_prev.shape)
    h *= h
    np.subtract(1.0, h, out=h)
    h *= leak
    return h


# --- numpy backward loop ------------------------------------------------------------------

def _backward_numpy(W, W_in, W_out, slope, err, free, leak):
    """Reference loop on (B, N) rows.

    Returns delta (B, T, N) and ``W_in^T delta`` (B, T, n_in), the latter filled on free
    steps only.
    """
    n_batch, n_steps, n = slope.shape
    keep = 1.0 - leak
    sparse = sp.issparse(W)
    # Transposed once so each step's W^T delta is a row-wise CSR product.
    WT = W.T.tocsr().astype(np.float64) if sparse else np.asarray(W, dtype=np.float64)
    gz = np.empty_like(slope)
    v = np.zeros((n_batch, n_steps, W_in.shape[1]))
    carry = np.zeros((n_batch, n))
    for t in range(n_steps - 1, -1, -1):
        gx = carry + err[:, t] @ W_out
        delta = slope[:, t] * gx
        gz[:, t] = delta
        if t == 0:
            break
        carry = keep * gx + ((WT @ delta.T).T if sparse else delta @ WT)
        if free[t]:
            vt = delta @ W_in
            v[:, t] = vt
            carry += vt @ W_out
    return gz, v


# --- compiled kernels ---------------------------------------------------------------------
# Plain functions until _JIT.ensure() jits them. Inside the backward loop the batch is held as
# (N, B), so each stored entry of W^T updates a contiguous row of B values (the layout of the
# forward kernels in recur.kernels, whose CSR products it calls); inputs and outputs stay
# (B, T, N) and are read and written in tiles of _TILE units.

_JIT = kernels.LazyJit(globals(), after=[kernels.JIT])
_TILE = 32


@_JIT.register
def _step_delta(x, x_prev, slope, recover, err, W_out, t, keep, leak, carry, G, gz_out):
    """One step's ``delta`` from the carried ``(1-a) g_{t+1} + W^T delta_{t+1} + ...``.

    ``g_t = carry + W_out^T e_t``; ``delta_t = slope_t * g_t`` goes to ``G`` (N, B) and
    ``gz_out[:, t]``, and ``carry`` becomes ``(1 - a) g_t``, the first term of the next
    carry. With ``recover`` the slope is computed from ``x`` and ``x_prev`` with the
    operations of ``_recovered_slope``.
    """
    n_batch = carry.shape[1]
    n = carry.shape[0]
    n_out = W_out.shape[0]
    inv_leak = 1.0 / leak
    for i0 in range(0, n, _TILE):
        i1 = min(i0 + _TILE, n)
        for s in range(n_batch):
            e = err[s, t]
            out = gz_out[s, t]
            for i in range(i0, i1):
                if recover:
                    h = x[s, t, i] - keep * x_prev[s, t, i]
                    h *= inv_leak
                    h *= h
                    d = (1.0 - h) * leak
                else:
                    d = slope[s, t, i]
                gx = carry[i, s]
                for m in range(n_out):
                    gx += e[m] * W_out[m, i]
                carry[i, s] = keep * gx
                out[i] = d * gx
                G[i, s] = d * gx


@_JIT.register
def _feedback_add(W_in, W_out, G, carry, v_t):
    """``v_t = W_in^T G``; ``carry += W_out^T v_t``: the closed-loop path x -> y_hat -> u."""
    n, n_batch = G.shape
    n_in = W_in.shape[1]
    for k in range(n_in):
        for s in range(n_batch):
            v_t[k, s] = 0.0
    for i in range(n):
        for k in range(n_in):
            w = W_in[i, k]
            for s in range(n_batch):
                v_t[k, s] += w * G[i, s]
    for i in range(n):
        for m in range(n_in):
            w = W_out[m, i]
            for s in range(n_batch):
                carry[i, s] += w * v_t[m, s]


@_JIT.register
def _backward_nb(sparse, indptr, indices, data, WT, x, x_prev, slope, recover, err, free,
                 W_in, W_out, keep, leak, gz_out, v_out):
    """The backward loop; ``W^T`` is CSR parts when ``sparse``, else the dense ``WT``.

    gz_out (B, T, N) receives delta; v_out (T, n_in, B) receives ``W_in^T delta`` on free
    steps.
    """
    n_batch, n_steps, n = gz_out.shape
    carry = np.zeros((n, n_batch))
    G = np.empty((n, n_batch))
    tmp = np.empty((n, n_batch))
    single = n_batch == 1
    for t in range(n_steps - 1, -1, -1):
        _step_delta(x, x_prev, slope, recover, err, W_out, t, keep, leak, carry, G, gz_out)
        if t == 0:
            break
        if sparse:
            if single:
                # 1-D contiguous views: a strided (N, 1) column would block vectorisation.
                kernels.csr_matvec_add(indptr, indices, data, G.reshape(n), carry.reshape(n))
            else:
                kernels.csr_matmat_add(indptr, indices, data, G, carry)
        else:
            np.dot(WT, G, tmp)  # BLAS
            for i in range(n):
                for s in range(n_batch):
                    carry[i, s] += tmp[i, s]
        if free[t]:
            _feedback_add(W_in, W_out, G, carry, v_out[t])


def _backward_numba(W, W_in, W_out, x, x_prev, slope, err, free, leak):
    """Compiled loop; returns delta (B, T, N) and ``W_in^T delta`` (B, T, n_in)."""
    _JIT.ensure()
    n_batch, n_steps, n = x.shape
    gz = np.empty((n_batch, n_steps, n))
    v = np.zeros((n_steps, W_in.shape[1], n_batch))
    if sp.issparse(W):
        indptr, indices, data = kernels.csr_parts(W.T, np.float64)
        dense = np.zeros((1, 1))
    else:
        indptr, indices, data = kernels.csr_parts(sp.csr_array((1, 1)), np.float64)
        dense = np.ascontiguousarray(np.asarray(W, dtype=np.float64).T)
    recover = slope is None
    if recover:
        slope = np.zeros((1, 1, 1))
    _backward_nb(sp.issparse(W), indptr, indices, data, dense, x, x_prev, slope, recover, err,
                 free, W_in, W_out, 1.0 - float(leak), float(leak), gz, v)
    return gz, v.transpose(2, 0, 1)
