"""Step loops of the leaky-tanh rate network, compiled with numba when it is installed.

The update, for one sequence, is

    x[t] = (1 - leak) * x[t-1] + leak * tanh(W @ x[t-1] + drive[t])

where ``drive[t] = W_in @ u[t] + W_fb @ y[t] + b`` is computed for the whole sequence at once
before the loop. Python-level step loops cost ~8 us of interpreter overhead per step, which
dominates small reservoirs; the compiled loops cost well under a microsecond. Every compiled
kernel has a numpy twin that computes the same numbers, used when numba is missing and checked
against the compiled one in the tests.

``W`` is either a dense ``(N, N)`` array or CSR parts ``(indptr, indices, data)``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:  # numba is an optional extra ("recur[fast]")
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "resolve_backend", "run_sequence", "run_batch", "closed_loop"]

BACKENDS = ("auto", "numba", "numpy")


def resolve_backend(backend):
    """Map ``"auto"`` to ``"numba"`` when numba is importable, else ``"numpy"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "numba" if HAVE_NUMBA else "numpy"
    if backend == "numba" and not HAVE_NUMBA:
        raise ImportError("backend='numba' needs numba: pip install 'recur[fast]'")
    return backend


# --- numpy reference loops ----------------------------------------------------------------

def _run_numpy(W, drive, x0, leak, out):
    x = x0
    keep = 1.0 - leak
    for t in range(drive.shape[-2]):
        pre = W @ x if x.ndim == 1 else (W @ x.T).T
        x = keep * x + leak * np.tanh(pre + drive[..., t, :])
        out[..., t, :] = x
    return x


def _closed_loop_numpy(W, W_y, b, coef, intercept, x0, leak, steps, y_out):
    x = x0
    keep = 1.0 - leak
    y = coef @ x + intercept
    for t in range(steps):
        y_out[t] = y
        x = keep * x + leak * np.tanh(W @ x + W_y @ y + b)
        y = coef @ x + intercept
    return x


# --- compiled loops -----------------------------------------------------------------------

if HAVE_NUMBA:
    _jit = numba.njit(cache=True, fastmath=False, nogil=True)

    @_jit
    def _run_dense_nb(W, drive, x0, leak, out):
        n = x0.shape[0]
        x = x0.copy()
        keep = 1.0 - leak
        for t in range(drive.shape[0]):
            pre = W @ x
            for i in range(n):
                x[i] = keep * x[i] + leak * np.tanh(pre[i] + drive[t, i])
                out[t, i] = x[i]
        return x

    @_jit
    def _run_csr_nb(indptr, indices, data, drive, x0, leak, out):
        n = x0.shape[0]
        x = x0.copy()
        pre = np.empty_like(x)
        keep = 1.0 - leak
        for t in range(drive.shape[0]):
            for i in range(n):
                acc = drive[t, i]
                for k in range(indptr[i], indptr[i + 1]):
                    acc += data[k] * x[indices[k]]
                pre[i] = acc
            for i in range(n):
                x[i] = keep * x[i] + leak * np.tanh(pre[i])
                out[t, i] = x[i]
        return x

    @_jit
    def _run_csr_batch_nb(indptr, indices, data, drive, x0, leak, out):
        # drive (B, T, N); the batch is the innermost loop so each weight is read once per
        # step for all sequences.
        n_batch, n_steps, n = drive.shape
        x = x0.T.copy()  # (N, B): contiguous rows of the batch per unit
        pre = np.empty((n, n_batch), dtype=x.dtype)
        keep = 1.0 - leak
        for t in range(n_steps):
            for i in range(n):
                for s in range(n_batch):
                    pre[i, s] = drive[s, t, i]
                for k in range(indptr[i], indptr[i + 1]):
                    w = data[k]
                    j = indices[k]
                    for s in range(n_batch):
                        pre[i, s] += w * x[j, s]
            for i in range(n):
                for s in range(n_batch):
                    v = keep * x[i, s] + leak * np.tanh(pre[i, s])
                    x[i, s] = v
                    out[s, t, i] = v
        return x.T.copy()

    @_jit
    def _closed_loop_dense_nb(W, W_y, b, coef, intercept, x0, leak, steps, y_out):
        x = x0.copy()
        keep = 1.0 - leak
        y = coef @ x + intercept
        for t in range(steps):
            y_out[t] = y
            pre = W @ x + W_y @ y + b
            for i in range(x.shape[0]):
                x[i] = keep * x[i] + leak * np.tanh(pre[i])
            y = coef @ x + intercept
        return x

    @_jit
    def _closed_loop_csr_nb(indptr, indices, data, W_y, b, coef, intercept, x0, leak, steps,
                            y_out):
        n = x0.shape[0]
        x = x0.copy()
        pre = np.empty_like(x)
        keep = 1.0 - leak
        y = coef @ x + intercept
        for t in range(steps):
            y_out[t] = y
            drive = W_y @ y + b
            for i in range(n):
                acc = drive[i]
                for k in range(indptr[i], indptr[i + 1]):
                    acc += data[k] * x[indices[k]]
                pre[i] = acc
            for i in range(n):
                x[i] = keep * x[i] + leak * np.tanh(pre[i])
            y = coef @ x + intercept
        return x


# --- dispatch -----------------------------------------------------------------------------

def run_sequence(W, drive, x0, leak, backend="auto"):
    """Run one sequence. ``drive`` (T, N), ``x0`` (N,); returns states (T, N) and x[T-1]."""
    backend = resolve_backend(backend)
    out = np.empty_like(drive)
    leak = drive.dtype.type(leak)
    if backend == "numba":
        if sp.issparse(W):
            x = _run_csr_nb(W.indptr, W.indices, W.data, drive, x0, leak, out)
        else:
            x = _run_dense_nb(np.ascontiguousarray(W), drive, x0, leak, out)
    else:
        x = _run_numpy(W, drive, x0, leak, out)
    return out, x


# A sparse W with a batch runs faster densified through BLAS while the dense copy stays small;
# the sizes where this pays were measured by benchmarks/bench_esn.py.
DENSIFY_BATCH_MAX_UNITS = 2000
DENSIFY_BATCH_MIN_DENSITY = 0.02


def run_batch(W, drive, x0, leak, backend="auto"):
    """Run a batch. ``drive`` (B, T, N), ``x0`` (B, N); returns states (B, T, N), x[:, T-1]."""
    backend = resolve_backend(backend)
    out = np.empty_like(drive)
    leak = drive.dtype.type(leak)
    n = drive.shape[-1]
    if sp.issparse(W):
        density = W.nnz / float(n * n)
        if n <= DENSIFY_BATCH_MAX_UNITS and density >= DENSIFY_BATCH_MIN_DENSITY:
            W = W.toarray()
        elif backend == "numba":
            x = _run_csr_batch_nb(W.indptr, W.indices, W.data, drive, x0, leak, out)
            return out, x
    # Dense batches are one matrix product per step: BLAS does the work, so the loop over
    # time stays in Python.
    x = _run_numpy(W, drive, x0, leak, out)
    return out, x


def closed_loop(W, W_y, b, coef, intercept, x0, leak, steps, backend="auto"):
    """Autonomous generation with a linear readout fed back through ``W_y``.

    ``y[t] = coef @ x[t] + intercept`` is recorded, then
    ``x[t+1] = (1 - leak) x[t] + leak tanh(W x[t] + W_y y[t] + b)``.

    Shapes: W (N, N), W_y (N, M), b (N,), coef (M, N), intercept (M,), x0 (N,).
    Returns y (steps, M) and the final state.
    """
    backend = resolve_backend(backend)
    dtype = x0.dtype
    y_out = np.empty((steps, coef.shape[0]), dtype=dtype)
    leak = dtype.type(leak)
    W_y, b, coef, intercept = (np.ascontiguousarray(a, dtype=dtype) for a in (W_y, b, coef, intercept))
    if backend == "numba":
        if sp.issparse(W):
            x = _closed_loop_csr_nb(W.indptr, W.indices, W.data, W_y, b, coef, intercept, x0,
                                    leak, steps, y_out)
        else:
            x = _closed_loop_dense_nb(np.ascontiguousarray(W), W_y, b, coef, intercept, x0,
                                      leak, steps, y_out)
    else:
        x = _closed_loop_numpy(W, W_y, b, coef, intercept, x0, leak, steps, y_out)
    return y_out, x
