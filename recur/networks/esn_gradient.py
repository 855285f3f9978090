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
from ..masked import edge_rows, masked_outer, with_values

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
    ``O(T B edges)`` for a sparse ``W`` (a compiled per-edge kernel; without numba
    :func:`~recur.masked.masked_outer`, or a dense product read at the edges when the graph
    is dense enough for that to be cheaper) and one ``(N, TB) x (TB, N)`` BLAS product for a
    dense one. The equations are in the module docstring. Measured by
    ``benchmarks/bench_bptt.py``: 1-2.5 times the forward run.
    """
    backend = kernels.resolve_backend(net.backend if backend is None else backend)
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

    if backend == "numba":
        gz, v = _backward_numba(W, W_in, W_out, x, x_prev, slope, err, free, net.leak)
    else:
        if slope is None:
            slope = _recovered_slope(x, x_prev, net.leak)
        gz, v = _backward_numpy(W, W_in, W_out, slope, err, free, net.leak)

    # Every sum over steps and sequences is one product over the flattened samples.
    gz_s = gz.reshape(-1, n)
    dtype = np.dtype(net.dtype)
    if sp.issparse(W):
        if backend == "numba":
            dW = _edge_sums_numba(W, gz, x_prev)
        elif _dense_sums_pay(W):
            dW = (gz_s.T @ x_prev.reshape(-1, n))[edge_rows(W), W.indices]
        else:
            dW = masked_outer(gz_s, x_prev.reshape(-1, n), W).data
        grad_W = with_values(W, dW.astype(W.dtype, copy=False))
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


# Without numba, a CSR W's per-edge sums are cheaper as one dense BLAS product read at the
# edges once the graph is this dense: masked_outer's gathers cost ~15-30 ns per sample and
# edge, BLAS ~0.05-0.15 ns per sample and N^2 entry (measured on one busy core of an AMD
# EPYC, N = 200-2000). At density >= 2% the dense product is still O(T x edges)
# (N^2 <= 50 edges); the unit cap bounds its N x N temporary (128 MB).
_DENSE_SUMS_MIN_DENSITY = 0.02
_DENSE_SUMS_MAX_UNITS = 4000


def _dense_sums_pay(W) -> bool:
    n = W.shape[0]
    return n <= _DENSE_SUMS_MAX_UNITS and W.nnz >= _DENSE_SUMS_MIN_DENSITY * n * W.shape[1]


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
# Plain functions until _compiled() jits them. Inside the backward loop the batch is held as
# (N, B), so each stored entry of W^T updates a contiguous row of B values (the layout of the
# forward kernels in recur.kernels); inputs and outputs stay (B, T, N) and are read and
# written in tiles of _TILE units.

_TILE = 32


def _csr_matmat_add(indptr, indices, data, X, out):
    """``out += A @ X`` for CSR parts of A and X (N, B); four stored entries per pass.

    Positions are unsigned so numba emits no negative-index wraparound per stored entry.
    """
    n_batch = out.shape[1]
    u1 = np.uint64(1)
    u2 = np.uint64(2)
    u3 = np.uint64(3)
    u4 = np.uint64(4)
    for i in range(out.shape[0]):
        o = out[i]
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        stop = k + ((end - k) // u4) * u4
        while k < stop:
            w0 = data[k]
            w1 = data[k + u1]
            w2 = data[k + u2]
            w3 = data[k + u3]
            x0 = X[indices[k]]
            x1 = X[indices[k + u1]]
            x2 = X[indices[k + u2]]
            x3 = X[indices[k + u3]]
            for s in range(n_batch):
                o[s] += (w0 * x0[s] + w1 * x1[s]) + (w2 * x2[s] + w3 * x3[s])
            k += u4
        while k < end:
            w = data[k]
            xr = X[indices[k]]
            for s in range(n_batch):
                o[s] += w * xr[s]
            k += u1


def _csr_matvec_add(indptr, indices, data, x, out):
    """``out += A @ x`` for one vector; four partial sums per row break the add chain."""
    u1 = np.uint64(1)
    u2 = np.uint64(2)
    u3 = np.uint64(3)
    u4 = np.uint64(4)
    for i in range(out.shape[0]):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        stop = k + ((end - k) // u4) * u4
        s0 = out[i]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        while k < stop:
            s0 += data[k] * x[indices[k]]
            s1 += data[k + u1] * x[indices[k + u1]]
            s2 += data[k + u2] * x[indices[k + u2]]
            s3 += data[k + u3] * x[indices[k + u3]]
            k += u4
        while k < end:
            s0 += data[k] * x[indices[k]]
            k += u1
        out[i] = (s0 + s1) + (s2 + s3)


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
                _csr_matvec_add(indptr, indices, data, G.reshape(n), carry.reshape(n))
            else:
                _csr_matmat_add(indptr, indices, data, G, carry)
        else:
            np.dot(WT, G, tmp)  # BLAS
            for i in range(n):
                for s in range(n_batch):
                    carry[i, s] += tmp[i, s]
        if free[t]:
            _feedback_add(W_in, W_out, G, carry, v_out[t])


def _to_units(a, t0, t1, buf):
    """``buf[i, c] = a[s, t, i]`` for samples ``c = s * (t1 - t0) + t - t0``, in tiles."""
    n_batch, _, n = a.shape
    width = t1 - t0
    for i0 in range(0, n, _TILE):
        i1 = min(i0 + _TILE, n)
        for s in range(n_batch):
            for t in range(t0, t1):
                row = a[s, t]
                c = s * width + t - t0
                for i in range(i0, i1):
                    buf[i, c] = row[i]


def _edge_sums_nb(indptr, indices, post, pre, chunk, out):
    """``out[k] = sum_{s,t} post[s, t, i] pre[s, t, j]`` for every stored entry ``k = (i, j)``.

    Time is taken ``chunk`` steps at a time: the chunk of both arrays is transposed to
    (N, samples) so each entry is a dot product of two contiguous rows, and the rows of ``pre``
    being gathered stay in cache. Four entries of a row share each load of the ``post`` row.
    """
    n_batch, n_steps, n = post.shape
    n_rows = indptr.shape[0] - 1
    width = min(chunk, n_steps)
    # Rows padded off a power-of-two stride: the transposition writes a column of up to
    # _TILE rows at once, and rows 4 KiB apart would all land in the same L1 cache sets.
    stride = n_batch * width + 8
    pbuf = np.empty((n, stride))
    qbuf = np.empty((n, stride))
    for k in range(out.shape[0]):
        out[k] = 0.0
    for t0 in range(0, n_steps, width):
        t1 = min(t0 + width, n_steps)
        m = n_batch * (t1 - t0)
        _to_units(post, t0, t1, pbuf)
        _to_units(pre, t0, t1, qbuf)
        for i in range(n_rows):
            g = pbuf[i, :m]
            k = indptr[i]
            end = indptr[i + 1]
            stop = k + ((end - k) // 4) * 4
            while k < stop:
                h0 = qbuf[indices[k], :m]
                h1 = qbuf[indices[k + 1], :m]
                h2 = qbuf[indices[k + 2], :m]
                h3 = qbuf[indices[k + 3], :m]
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                a3 = 0.0
                for c in range(m):
                    gc = g[c]
                    a0 += gc * h0[c]
                    a1 += gc * h1[c]
                    a2 += gc * h2[c]
                    a3 += gc * h3[c]
                out[k] += a0
                out[k + 1] += a1
                out[k + 2] += a2
                out[k + 3] += a3
                k += 4
            while k < end:
                h = qbuf[indices[k], :m]
                acc = 0.0
                for c in range(m):
                    acc += g[c] * h[c]
                out[k] += acc
                k += 1


_JITTED = ("_csr_matmat_add", "_csr_matvec_add", "_step_delta", "_feedback_add",
           "_backward_nb", "_to_units")
_COMPILED = False


def _compiled():
    """Import numba and jit the kernels (on first use; cached on disk by numba)."""
    global _COMPILED
    if _COMPILED:
        return
    import numba

    g = globals()
    for name in _JITTED:
        g[name] = numba.njit(cache=True, nogil=True, error_model="numpy")(g[name])
    # Reassociation lets LLVM vectorise the dot products; they then sum in another order than
    # numpy's, so the backends agree to rounding.
    g["_edge_sums_nb"] = numba.njit(cache=True, nogil=True, error_model="numpy",
                                    fastmath={"reassoc", "contract"})(g["_edge_sums_nb"])
    _COMPILED = True


def _unsigned(indices):
    """CSR column indices as uint64: no wraparound checks in the compiled loops."""
    return indices.astype(np.uint64)


def _backward_numba(W, W_in, W_out, x, x_prev, slope, err, free, leak):
    """Compiled loop; returns delta (B, T, N) and ``W_in^T delta`` (B, T, n_in)."""
    _compiled()
    n_batch, n_steps, n = x.shape
    gz = np.empty((n_batch, n_steps, n))
    v = np.zeros((n_steps, W_in.shape[1], n_batch))
    if sp.issparse(W):
        WT = W.T.tocsr()
        indptr, indices = WT.indptr.astype(np.int64), _unsigned(WT.indices)
        data = WT.data.astype(np.float64)
        dense = np.zeros((1, 1))
    else:
        indptr = np.zeros(1, dtype=np.int64)
        indices = np.zeros(1, dtype=np.uint64)
        data = np.zeros(1)
        dense = np.ascontiguousarray(np.asarray(W, dtype=np.float64).T)
    recover = slope is None
    if recover:
        slope = np.zeros((1, 1, 1))
    _backward_nb(sp.issparse(W), indptr, indices, data, dense, x, x_prev, slope, recover, err,
                 free, W_in, W_out, 1.0 - float(leak), float(leak), gz, v)
    return gz, v.transpose(2, 0, 1)


# Samples per pass of the per-edge sums. Measured on one busy core of an AMD EPYC (N = 1000
# at density 0.1, 500 and 8000 samples): 0.2-0.35 ns per entry and sample at 256-1024, about
# twice that at 64, where the per-entry loop overhead dominates, and at 2048, where the
# gathered rows of the chunk leave the cache.
_EDGE_SAMPLES = 512


def _edge_sums_numba(W, post, pre):
    """Per-edge sums ``sum_{s,t} post[s,t,i] pre[s,t,j]`` in W's storage order."""
    _compiled()
    n_batch, n_steps, _ = post.shape
    chunk = max(1, _EDGE_SAMPLES // n_batch)
    out = np.empty(W.nnz)
    _edge_sums_nb(W.indptr.astype(np.int64), _unsigned(W.indices), post, pre, chunk, out)
    return out
