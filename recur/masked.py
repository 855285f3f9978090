"""Sums of outer products kept on a connection mask.

Every learning signal for a weight matrix in recur has the form

    dW[i, j] = sum_s post[s, i] * pre[s, j]        for each connection (i, j) of the graph

summed over samples ``s`` (time steps, sequences, perturbations). On a sparse graph only the
existing connections are computed, so the cost is O(samples x edges), never O(N^2), and the
result cannot write off the graph.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["masked_outer", "edge_rows", "with_values", "values"]

# Samples processed together when gathering per-edge products, to bound temporary memory
# at about this many floats.
_GATHER_BUDGET = 1 << 22


def edge_rows(W) -> np.ndarray:
    """Row (postsynaptic) index of every stored entry of a CSR matrix, in storage order."""
    return np.repeat(np.arange(W.shape[0], dtype=np.intp), np.diff(W.indptr))


def values(a) -> np.ndarray:
    """The array of weight values: ``a.data`` for a sparse matrix, ``a`` otherwise."""
    return a.data if sp.issparse(a) else np.asarray(a)


def with_values(like, data):
    """A copy of ``like`` (a CSR matrix or an ndarray) holding ``data`` as its values."""
    if sp.issparse(like):
        out = sp.csr_array((np.asarray(data), like.indices, like.indptr), shape=like.shape)
        out.has_sorted_indices = like.has_sorted_indices
        return out
    return np.asarray(data).reshape(like.shape)


def masked_outer(post, pre, like):
    """``sum_s post[s, :, None] * pre[s, None, :]`` on the structure of ``like``.

    Parameters
    ----------
    post : array, shape (S, n_post) or (n_post,)
    pre : array, shape (S, n_pre) or (n_pre,)
    like : scipy sparse matrix (CSR) or ndarray, shape (n_post, n_pre)
        Structure of the result. A dense ``like`` gives the full outer-product sum (use a
        dense mask multiply afterwards if it must be restricted).

    Returns
    -------
    same kind as ``like``: CSR with ``like``'s exact structure, or a dense (n_post, n_pre)
    """
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
    rows = edge_rows(like)
    cols = like.indices
    out = np.zeros(like.nnz, dtype=np.result_type(post, pre))
    step = max(1, _GATHER_BUDGET // max(1, like.nnz))
    for start in range(0, post.shape[0], step):
        p, q = post[start:start + step], pre[start:start + step]
        out += np.einsum("se,se->e", p[:, rows], q[:, cols])
    return with_values(like, out)
