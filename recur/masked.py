"""Sums of outer products kept on a connection mask.

Every learning signal for a weight matrix in recur has the form

    dW[i, j] = sum_s post[s, i] * pre[s, j]        for each connection (i, j) of the graph

summed over samples ``s`` (time steps, sequences, perturbations). On a sparse graph only the
existing connections are computed, so the cost is O(samples x edges), never O(N^2), and the
result cannot write off the graph.

:func:`masked_outer` computes these sums in one of three ways, which give the same numbers up
to rounding:

- compiled (numba installed, float32/float64 data): a per-edge kernel that transposes a chunk
  of samples to rows of units, so each edge is one dot product of two contiguous rows; about
  0.15-0.6 ns per edge and sample on one core (up to ~1.5 on graphs of 10,000 units with
  few edges per unit, whose activities no longer fit in the cache);
- numpy: gathers of the two activities at every edge, ~4-30 ns per edge and sample;
- on a graph dense enough, with samples enough (``_DENSE_SUMS_*``: from 2% of the entries
  with numpy, from ~50% with the compiled kernel): one BLAS product ``post.T @ pre`` read at
  the edges, ~0.05-0.15 ns per sample and ``N^2`` entry, still ``O(samples x edges)``.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

from . import kernels

__all__ = ["masked_outer", "edge_rows", "with_values", "values"]

# Samples processed together when gathering per-edge products, to bound temporary memory
# at about this many floats.
_GATHER_BUDGET = 1 << 22

# Samples per pass of the compiled per-edge sums: at most _EDGE_SAMPLES, fewer when the
# transposed chunk of ``pre`` (n_pre x samples floats, the rows gathered at random) would pass
# _EDGE_BUFFER_BYTES, but not below _EDGE_SAMPLES_MIN. Measured on one busy core of an AMD
# EPYC: N = 1000 at density 0.1, 500 and 8000 samples: 0.2-0.35 ns per entry and sample at
# 256-1024, about twice that at 64, where the per-entry loop overhead dominates; N = 10,000
# with 5-20 edges per unit: 0.4-1.7 ns at 32-128, 2x that at 200-512 (a 16-40 MB buffer
# gathered from beyond the cache); N = 2000-4000: best at 64-256.
_EDGE_SAMPLES = 512
_EDGE_SAMPLES_MIN = 64
_EDGE_BUFFER_BYTES = 1 << 22

# The kernel's transposition buffers are kept between calls, one set per thread, up to this
# size: fresh pages cost more than the sums themselves on small problems (N = 2000, 50
# samples: ~420 page faults, ~1 ms, against 0.3 ms of work on a virtual machine).
_SCRATCH_MAX_BYTES = 1 << 26
_scratch = threading.local()

# A CSR like's per-edge sums are cheaper as one dense BLAS product read at the edges once the
# graph is dense enough and there are samples enough to pay for writing and reading the
# N x N temporary (capped at _DENSE_SUMS_MAX_ENTRIES, 128 MB in float64). Measured on one busy
# core of an AMD EPYC, N = 200-3000, 1-2000 samples (ns per edge and sample):
# - numpy: the gathers cost 4-20 (more with few samples), BLAS 0.05-0.15 per sample and N^2
#   entry plus a few per entry; dense wins from density 2% with >= 64 samples, 10% with 16,
#   30% with 4, hence density >= max(2%, 1 / samples). At density >= 2% the dense product is
#   still O(samples x edges) (N^2 <= 50 edges).
# - compiled: the kernel costs 0.15-0.25 at any density; with >= 128 samples dense wins
#   (1.1-1.8x) from density 0.5 in float64 and from 0.2 in float32 (BLAS is twice as fast
#   there; the kernel accumulates in float64 at the same speed).
_DENSE_SUMS_MAX_ENTRIES = 4000 * 4000
_DENSE_SUMS_MIN_DENSITY = 0.02
_DENSE_SUMS_COMPILED_MIN_DENSITY = 0.5
_DENSE_SUMS_COMPILED_MIN_DENSITY_FLOAT32 = 0.2
_DENSE_SUMS_COMPILED_MIN_SAMPLES = 128


def edge_rows(W) -> np.ndarray:
    """Row (postsynaptic) index of every stored entry of a CSR matrix, in storage order."""
    return np.repeat(np.arange(W.shape[0], dtype=np.intp), np.diff(W.indptr))


def values(a) -> np.ndarray:
    """The array of weight values: ``a.data`` for a sparse matrix, ``a`` otherwise."""
    if type(a) is np.ndarray:  # the common case, before the slower sparse test
        return a
    return a.data if sp.issparse(a) else np.asarray(a)


def with_values(like, data):
    """A copy of ``like`` (a CSR matrix or an ndarray) holding ``data`` as its values."""
    if type(like) is np.ndarray and type(data) is np.ndarray and data.shape == like.shape:
        return data
    if sp.issparse(like):
        out = sp.csr_array((np.asarray(data), like.indices, like.indptr), shape=like.shape)
        out.has_sorted_indices = like.has_sorted_indices
        return out
    return np.asarray(data).reshape(like.shape)


def masked_outer(post, pre, like, *, backend="auto"):
    """``sum_s post[s, :, None] * pre[s, None, :]`` on the structure of ``like``.

    Parameters
    ----------
    post : array, shape (S, n_post) or (n_post,)
    pre : array, shape (S, n_pre) or (n_pre,)
    like : CSR matrix (scipy sparse) or ndarray, shape (n_post, n_pre)
        Structure of the result. A dense ``like`` gives the full outer-product sum (use a
        dense mask multiply afterwards if it must be restricted).
    backend : {"auto", "numba", "numpy"}
        For a CSR ``like``: the compiled per-edge kernel (``"auto"``: when numba is
        installed) or numpy. Both give the same numbers up to rounding; the compiled one runs
        for float32 and float64 data (accumulating in float64), numpy for any other dtype.

    Returns
    -------
    same kind as ``like``: CSR with ``like``'s exact structure (one value per stored entry, in
    storage order, duplicates included), or a dense (n_post, n_pre); in the dtype
    ``np.result_type(post, pre)``.

    Raises
    ------
    TypeError
        If ``like`` is sparse but not CSR.
    ValueError
        If the shapes do not match, or ``backend`` is not one of the above.
    ImportError
        If ``backend="numba"`` and numba is not installed.
    """
    kernels.resolve_backend(backend)  # a bad name is an error whichever path runs
    post = np.atleast_2d(post)
    pre = np.atleast_2d(pre)
    if post.shape[0] != pre.shape[0]:
        raise ValueError(f"post and pre must have the same number of samples, got "
                         f"{post.shape[0]} and {pre.shape[0]}")
    if post.shape[1] != like.shape[0] or pre.shape[1] != like.shape[1]:
        raise ValueError(f"post {post.shape} and pre {pre.shape} do not match a weight "
                         f"matrix of shape {like.shape}")
    if not sp.issparse(like):
        return post.T @ pre
    if like.format != "csr":
        raise TypeError(f"like must be a CSR matrix or a dense array, got "
                        f"{like.format.upper()}")
    dtype = np.result_type(post, pre)
    n_samples = post.shape[0]
    if n_samples == 0 or like.nnz == 0:
        return with_values(like, np.zeros(like.nnz, dtype=dtype))
    compiled = dtype in (np.float32, np.float64) and kernels.use_numba(backend, _JIT)
    if _dense_sums_pay(like, n_samples, dtype, compiled):
        out = (post.T @ pre)[edge_rows(like), like.indices].astype(dtype, copy=False)
    elif compiled:
        out = _edge_sums(like, np.ascontiguousarray(post, dtype=dtype),
                         np.ascontiguousarray(pre, dtype=dtype)).astype(dtype, copy=False)
    else:
        out = _gathered_sums(post, pre, like, dtype)
    return with_values(like, out)


def _dense_sums_pay(like, n_samples, dtype, compiled) -> bool:
    """Whether the per-edge sums are cheaper as one dense product (see the constants)."""
    entries = like.shape[0] * like.shape[1]
    if entries > _DENSE_SUMS_MAX_ENTRIES:
        return False
    density = like.nnz / entries
    if compiled:
        least = (_DENSE_SUMS_COMPILED_MIN_DENSITY_FLOAT32 if dtype == np.float32
                 else _DENSE_SUMS_COMPILED_MIN_DENSITY)
        return n_samples >= _DENSE_SUMS_COMPILED_MIN_SAMPLES and density >= least
    return density >= max(_DENSE_SUMS_MIN_DENSITY, 1.0 / n_samples)


def _gathered_sums(post, pre, like, dtype):
    """The numpy per-edge sums: gathers at the edges, a bounded number of samples at a time."""
    rows = edge_rows(like)
    cols = like.indices
    out = np.zeros(like.nnz, dtype=dtype)
    step = max(1, _GATHER_BUDGET // max(1, like.nnz))
    for start in range(0, post.shape[0], step):
        p, q = post[start:start + step], pre[start:start + step]
        out += np.einsum("se,se->e", p[:, rows], q[:, cols])
    return out


# --- the compiled per-edge sums -----------------------------------------------------------

_JIT = kernels.LazyJit(globals(), after=[kernels.JIT])

# The chunk of samples is transposed in tiles of _TILE units.
_TILE = 32


@_JIT.register
def _to_units(a, s0, s1, buf):
    """``buf[i, c] = a[s0 + c, i]`` for ``c < s1 - s0``, in tiles of units."""
    n = a.shape[1]
    for i0 in range(0, n, _TILE):
        i1 = min(i0 + _TILE, n)
        for s in range(s0, s1):
            row = a[s]
            c = s - s0
            for i in range(i0, i1):
                buf[i, c] = row[i]


# Reassociation lets LLVM vectorise the dot products; they then sum in another order than
# numpy's, so the backends agree to rounding.
@_JIT.register(fastmath={"reassoc", "contract"})
def _edge_sums_nb(indptr, indices, post, pre, width, pbuf, qbuf, out):
    """``out[k] = sum_s post[s, i] pre[s, j]`` for every stored entry ``k = (i, j)``.

    ``post`` (S, n_post), ``pre`` (S, n_pre), ``S >= 1``; ``indices`` unsigned. Samples are
    taken ``width`` at a time: the chunk of both arrays is transposed into the float64
    buffers ``pbuf`` (n_post, >= width) and ``qbuf`` (n_pre, >= width) so each entry is a
    dot product of two contiguous rows, and the rows of ``qbuf`` being gathered stay in
    cache. Four entries of a row share each load of the ``post`` row.
    """
    n_samples = post.shape[0]
    n_rows = indptr.shape[0] - 1
    for k in range(out.shape[0]):
        out[k] = 0.0
    for s0 in range(0, n_samples, width):
        s1 = min(s0 + width, n_samples)
        m = s1 - s0
        _to_units(post, s0, s1, pbuf)
        _to_units(pre, s0, s1, qbuf)
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


def _edge_sums(like, post, pre):
    """Per-edge sums in float64, in ``like``'s storage order (compiled kernel, S >= 1)."""
    fit = _EDGE_BUFFER_BYTES // (8 * max(1, pre.shape[1]))
    width = min(_EDGE_SAMPLES, max(_EDGE_SAMPLES_MIN, fit), post.shape[0])
    # Rows padded off a power-of-two stride: the transposition writes a column of up to
    # _TILE rows at once, and rows 4 KiB apart would all land in the same L1 cache sets.
    both = _scratch_array(post.shape[1] + pre.shape[1], width + 8)
    pbuf, qbuf = both[:post.shape[1]], both[post.shape[1]:]
    out = np.empty(like.nnz)
    _edge_sums_nb(np.asarray(like.indptr, dtype=np.int64),
                  kernels.unsigned_indices(like.indices), post, pre, width, pbuf, qbuf, out)
    return out


def _scratch_array(rows, cols):
    """An uninitialised float64 (rows, cols) C array, this thread's kept buffer if it fits."""
    size = rows * cols
    if 8 * size > _SCRATCH_MAX_BYTES:
        return np.empty((rows, cols))
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.size < size:
        buf = _scratch.buf = np.empty(size)
    return buf[:size].reshape(rows, cols)
