"""Weight initialisers on a connection mask, and spectral-radius scaling.

Convention: ``W[i, j]`` is the weight from unit ``j`` onto unit ``i`` (``W[post, pre]``), and a
weight exists only where the mask (``Topology.mask``) is True. A sparse mask gives a sparse
``scipy.sparse.csr_array`` with exactly the mask's structure; a dense boolean array gives a dense
ndarray that is zero off the mask.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

from .validation import check_in_interval, check_positive

__all__ = [
    "normal",
    "uniform",
    "bernoulli",
    "symmetric",
    "dale",
    "input_weights",
    "spectral_radius",
    "scale_spectral_radius",
]

# Below this size a dense eigendecomposition is fast and exact; above it ARPACK is used.
DENSE_EIG_MAX = 400
# ARPACK can stall when several eigenvalues share the largest modulus (random matrices fill a
# disc); up to this size a dense eigendecomposition is an affordable fallback.
DENSE_FALLBACK_MAX = 3000


def _mask_structure(mask):
    """Return (is_sparse, mask as csr_array or bool ndarray)."""
    if hasattr(mask, "mask") and hasattr(mask, "n_units"):  # a Topology
        mask = mask.mask
    if sp.issparse(mask):
        m = sp.csr_array(mask, dtype=bool)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"mask must be square, got shape {m.shape}")
        m.eliminate_zeros()
        m.sort_indices()
        return True, m
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"mask must be a square 2-D array, got shape {m.shape}")
    return False, m.astype(bool)


def _on_mask(mask, draw, dtype):
    is_sparse, m = _mask_structure(mask)
    if is_sparse:
        out = sp.csr_array((draw(m.nnz).astype(dtype), m.indices.copy(), m.indptr.copy()),
                           shape=m.shape)
        out.has_sorted_indices = True
        return out
    W = np.zeros(m.shape, dtype=dtype)
    W[m] = draw(int(m.sum()))
    return W


def normal(mask, scale=1.0, *, rng=None, dtype=np.float64):
    """Gaussian weights on a mask: ``W[i, j] ~ N(0, scale**2)`` where ``mask[i, j]``.

    Parameters
    ----------
    mask : Topology, scipy sparse matrix or bool ndarray, shape (N, N)
        ``mask[post, pre]``; a sparse mask gives a CSR result with the same structure.
    scale : float
        Standard deviation.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    W : scipy.sparse.csr_array or ndarray, shape (N, N)
    """
    check_positive(scale, "scale", strict=False)
    rng = np.random.default_rng(rng)
    return _on_mask(mask, lambda n: rng.normal(0.0, scale, n), dtype)


def uniform(mask, low=-1.0, high=1.0, *, rng=None, dtype=np.float64):
    """Uniform weights on a mask: ``W[i, j] ~ U[low, high)`` where ``mask[i, j]``.

    Parameters and return as in :func:`normal`.
    """
    if not low < high:
        raise ValueError(f"low must be < high, got low={low!r}, high={high!r}")
    rng = np.random.default_rng(rng)
    return _on_mask(mask, lambda n: rng.uniform(low, high, n), dtype)


def bernoulli(mask, values=(-1.0, 1.0), p=0.5, *, rng=None, dtype=np.float64):
    """Two-valued weights on a mask: ``values[1]`` with probability ``p``, else ``values[0]``.

    Parameters and return as in :func:`normal`.
    """
    check_in_interval(p, "p", 0.0, 1.0, low_open=False)
    lo, hi = values
    rng = np.random.default_rng(rng)
    return _on_mask(mask, lambda n: np.where(rng.random(n) < p, hi, lo), dtype)


def symmetric(W):
    """Mirror the upper triangle onto the lower one: ``S[i, j] = S[j, i] = W[min, max]``.

    The structure of ``W`` must be symmetric (an undirected graph), so the result stays on the
    graph. Diagonal entries are kept.

    Parameters
    ----------
    W : scipy sparse matrix or ndarray, shape (N, N)

    Returns
    -------
    S : same kind as ``W``, symmetric
    """
    if sp.issparse(W):
        W = sp.csr_array(W)
        pattern = W.copy()
        pattern.data = np.ones_like(pattern.data)
        if (pattern != pattern.T).nnz:
            raise ValueError("W must have a symmetric structure (an undirected graph) to be "
                             "made symmetric without adding connections")
        upper = sp.triu(W, k=0, format="csr")
        strict = sp.triu(W, k=1, format="csr")
        out = sp.csr_array(upper + strict.T)
        out.sort_indices()
        return out
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square, got shape {W.shape}")
    nz = W != 0
    if np.any(nz != nz.T):
        raise ValueError("W must have a symmetric structure (an undirected graph) to be "
                         "made symmetric without adding connections")
    upper = np.triu(W)
    return upper + np.triu(W, 1).T


def dale(W, excitatory_fraction=0.8, *, rng=None):
    """Impose Dale's law: every presynaptic unit (column) is excitatory or inhibitory.

    ``W'[i, j] = +|W[i, j]|`` for excitatory ``j`` and ``-|W[i, j]|`` for inhibitory ``j``.

    Parameters
    ----------
    W : scipy sparse matrix or ndarray, shape (N, N)
    excitatory_fraction : float in [0, 1]
    rng : None, int or numpy.random.Generator

    Returns
    -------
    W_dale : same kind as ``W``
    excitatory : ndarray of bool, shape (N,)
        Which columns are excitatory.
    """
    check_in_interval(excitatory_fraction, "excitatory_fraction", 0.0, 1.0, low_open=False)
    rng = np.random.default_rng(rng)
    n = W.shape[1]
    excitatory = np.zeros(n, dtype=bool)
    excitatory[rng.permutation(n)[: int(round(excitatory_fraction * n))]] = True
    sign = np.where(excitatory, 1.0, -1.0)
    if sp.issparse(W):
        out = sp.csr_array(W, copy=True)
        out.data = np.abs(out.data) * sign[out.indices]
        return out, excitatory
    return np.abs(np.asarray(W)) * sign[None, :], excitatory


def input_weights(n_units, n_in, scaling=1.0, *, density=1.0, distribution="uniform",
                  rng=None, dtype=np.float64):
    """Dense input (or feedback) weights, shape ``(n_units, n_in)``.

    ``W_in[i, k]`` is the weight from input channel ``k`` onto unit ``i``. Entries are
    ``U[-scaling, scaling)`` (``"uniform"``), ``N(0, scaling**2)`` (``"normal"``) or
    ``+-scaling`` (``"bernoulli"``), each kept with probability ``density``.
    """
    check_positive(n_units, "n_units", integer=True)
    check_positive(n_in, "n_in", strict=False, integer=True)
    check_positive(scaling, "scaling", strict=False)
    check_in_interval(density, "density", 0.0, 1.0)
    rng = np.random.default_rng(rng)
    shape = (n_units, n_in)
    if distribution == "uniform":
        W = rng.uniform(-scaling, scaling, shape)
    elif distribution == "normal":
        W = rng.normal(0.0, scaling, shape)
    elif distribution == "bernoulli":
        W = np.where(rng.random(shape) < 0.5, -scaling, scaling)
    else:
        raise ValueError("distribution must be 'uniform', 'normal' or 'bernoulli', "
                         f"got {distribution!r}")
    if density < 1.0:
        W = W * (rng.random(shape) < density)
    return W.astype(dtype, copy=False)


def spectral_radius(W):
    """Largest eigenvalue modulus of a square matrix, dense or sparse.

    The eigenvalues of ``W`` are those of its strongly connected components (the diagonal
    blocks of its block-triangular form), so each component is solved on its own: a simple
    cycle by its closed form ``|prod w|^(1/length)``, a small one densely, a large sparse one by
    ARPACK (:func:`scipy.sparse.linalg.eigs`), with a dense fallback when ARPACK does not
    converge and the component is small enough. Acyclic parts contribute zero.
    """
    n = W.shape[0]
    if W.ndim != 2 or W.shape[1] != n:
        raise ValueError(f"W must be square, got shape {W.shape}")
    if not sp.issparse(W) and n <= DENSE_FALLBACK_MAX:
        return _dense_radius(np.asarray(W))
    A = sp.csr_array(W, dtype=np.float64)
    A.eliminate_zeros()
    n_comp, labels = connected_components(A, directed=True, connection="strong")
    radius = float(np.max(np.abs(A.diagonal()))) if A.nnz else 0.0  # one-unit components
    sizes = np.bincount(labels, minlength=n_comp)
    for comp in np.flatnonzero(sizes > 1):
        idx = np.flatnonzero(labels == comp)
        radius = max(radius, _component_radius(A[idx][:, idx]))
    return radius


def _dense_radius(M):
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(M, dtype=np.float64)))))


def _component_radius(C):
    """Spectral radius of one strongly connected component (a csr_array)."""
    m = C.shape[0]
    if C.nnz == m:
        # Strongly connected with one entry per row: a simple cycle, whose eigenvalues all
        # share the modulus |prod w|^(1/m). Iterative solvers cannot separate them.
        return float(np.exp(np.mean(np.log(np.abs(C.data)))))
    if m <= DENSE_EIG_MAX:
        return _dense_radius(C.toarray())
    try:
        vals = spla.eigs(C, k=1, which="LM", return_eigenvectors=False,
                         maxiter=max(300, 2 * m), ncv=min(m - 1, 40),
                         v0=np.ones(m) / np.sqrt(m))
        return float(np.abs(vals).max())
    except spla.ArpackNoConvergence as exc:
        if m <= DENSE_FALLBACK_MAX:
            return _dense_radius(C.toarray())
        raise ValueError(
            f"ARPACK did not converge on the spectral radius of a {m}-unit strongly connected "
            "component (several eigenvalues share the largest modulus); scale W by another norm"
        ) from exc


def scale_spectral_radius(W, rho):
    """Rescale ``W`` so that its spectral radius is ``rho``: ``W' = W * rho / rho(W)``.

    Parameters
    ----------
    W : scipy sparse matrix or ndarray, shape (N, N)
    rho : float > 0

    Returns
    -------
    W_scaled : same kind as ``W`` (a sparse ``W`` stays sparse with the same structure)

    Raises
    ------
    ValueError
        If ``W`` has no nonzero weight, or its spectral radius is zero: a nilpotent matrix,
        such as the weights of a directed acyclic graph (a feed-forward chain), has only zero
        eigenvalues and no scale can give it a spectral radius.
    """
    check_positive(rho, "spectral_radius")
    nnz = W.count_nonzero() if sp.issparse(W) else int(np.count_nonzero(W))
    if nnz == 0:
        raise ValueError("W has no nonzero weights (a graph with no edges): its spectral "
                         "radius is 0 and cannot be scaled")
    nilpotent_msg = (
        "W has spectral radius 0 (nilpotent): this happens for a directed acyclic graph "
        "such as a feed-forward or synfire chain, where activity leaves the network after "
        "a finite number of steps. Scale its weights directly instead of by spectral radius."
    )
    # Iterative eigensolvers return noise, not zero, on a nilpotent matrix (its eigenvalues are
    # ill-conditioned), so acyclicity is checked on the structure first: with no directed cycle
    # and no self-loop, every eigenvalue is exactly zero.
    if not _has_cycle(W):
        raise ValueError(nilpotent_msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        current = spectral_radius(W)
    scale_ref = np.abs(W.data).max() if sp.issparse(W) else np.abs(W).max()
    # Eigenvalues of a nilpotent matrix come back as roundoff of order eps * ||W||.
    if not np.isfinite(current) or current <= 1e-8 * scale_ref * W.shape[0] ** 0.5:
        raise ValueError(nilpotent_msg)
    return W * (rho / current)


def _has_cycle(W):
    """True when the nonzero pattern of ``W`` contains a directed cycle or a self-loop."""
    pattern = sp.csr_array(W) if sp.issparse(W) else sp.csr_array(np.asarray(W))
    pattern.eliminate_zeros()
    if pattern.diagonal().any():
        return True
    n_components, _ = connected_components(pattern, directed=True, connection="strong")
    return n_components < pattern.shape[0]
