"""The invariant every energy-based network shares: a dense symmetric ``W`` on its graph.

Hopfield memories, Boltzmann machines and energy networks have an energy only when the
coupling of ``i`` to ``j`` is the coupling of ``j`` to ``i``. Their ``params`` are ``{"W": (N,
N) dense, "b": (N,)}`` with ``W = W.T`` and ``W`` zero wherever the network has no connection
(``allowed[post, pre]`` False; the diagonal too, unless a storage rule's policy keeps it).
:func:`check_symmetric_params` refuses anything else with the reason; :func:`symmetrized`
restores the invariant after an update (what each network's ``constrain`` does, and what
:func:`recur.train` calls after every update).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import kernels
from ..validation import DivergenceError

__all__ = ["check_symmetric_params", "invariant_holds", "symmetrized",
           "symmetric_on_graph"]

_JIT = kernels.LazyJit(globals(), after=[kernels.JIT])

#: Largest asymmetry tolerated, relative to the largest weight (rounding in a user's own
#: symmetrisation must not be an error; anything larger is a different network).
SYMMETRY_RTOL = 1e-10


# The network's mask may be read-only (Hopfield keeps it so): both kinds are accepted.
@_JIT.register(signatures=lambda t: [
    t.boolean(t.float64[:, ::1], t.float64[::1], t.Array(t.boolean, 2, "C", readonly=ro))
    for ro in (False, True)])
def _invariant_holds_nb(W, b, allowed):
    """True when ``W`` (N, N) is symmetric, zero where not ``allowed`` and finite, and ``b``
    (N,) finite, in one pass that stops at the first violation (NaN fails every
    comparison)."""
    N = allowed.shape[0]
    if W.shape[0] != N or W.shape[1] != N or b.shape[0] != N:
        return False
    for i in range(N):
        if not np.isfinite(b[i]):
            return False
        for j in range(i, N):
            w = W[i, j]
            if allowed[i, j]:
                if not (w == W[j, i] and np.isfinite(w)):
                    return False
            elif w != 0.0 or W[j, i] != 0.0:
                return False
    return True


def invariant_holds(W, b, allowed) -> bool:
    """Whether ``W`` (N, N) = ``W.T``, zero where ``allowed`` (N, N) is False, and ``W`` and
    ``b`` (N,) are finite, answered quickly for the common case: C-contiguous float64 arrays
    (what ``constrain`` returns). False means "look closer", not "violated": the caller's
    full check (:func:`check_symmetric_params`) says what, if anything, is wrong."""
    if type(W) is not np.ndarray or type(b) is not np.ndarray:
        return False
    if kernels.use_numba("auto", _JIT):
        try:
            return _invariant_holds_nb(W, b, allowed)
        except TypeError:  # not C-contiguous float64 arrays: the full check decides
            return False
    N = allowed.shape[0]
    if not (W.dtype == np.float64 and b.dtype == np.float64 and W.shape == (N, N)
            and b.shape == (N,)):
        return False
    return bool(np.isfinite(W).all() and np.isfinite(b).all()
                and np.array_equal(W, np.where(allowed, W.T, 0.0)))


def check_symmetric_params(params, allowed, kind) -> None:
    """Raise unless ``params`` is ``{"W": (N, N) symmetric, zero where not allowed, "b": (N,)}``.

    Parameters
    ----------
    params : dict
    allowed : bool ndarray, shape (N, N)
        Where ``W`` may be nonzero (symmetric; the diagonal as the network's policy says).
    kind : str
        The network, for messages ("a Hopfield network").

    Raises
    ------
    TypeError
        ``params`` not a dict, or a sparse ``W``.
    ValueError
        A missing key, a wrong shape, a non-symmetric ``W`` or weights where there is no
        connection.
    DivergenceError
        NaN or inf in a parameter.
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    if invariant_holds(params.get("W"), params.get("b"), allowed):
        return
    N = allowed.shape[0]
    for key, shape in (("W", (N, N)), ("b", (N,))):
        if key not in params:
            raise ValueError(f"params is missing {key!r}")
        arr = params[key]
        if sp.issparse(arr):
            raise TypeError(f"params[{key!r}] must be a dense array")
        if not np.issubdtype(np.asarray(arr).dtype, np.number):
            raise TypeError(f"params[{key!r}] must be an array of numbers, got dtype "
                            f"{np.asarray(arr).dtype}")
        if tuple(np.shape(arr)) != shape:
            raise ValueError(f"params[{key!r}] must have shape {shape}, got "
                             f"{tuple(np.shape(arr))}")
        if not np.isfinite(arr).all():
            raise DivergenceError(f"params[{key!r}] contains NaN or inf")
    W = np.asarray(params["W"], dtype=np.float64)
    # The common case (exactly what constrain produces) costs one comparison.
    if np.array_equal(W, np.where(allowed, W.T, 0.0)):
        return
    asym = float(np.abs(W - W.T).max(initial=0.0))
    if asym > SYMMETRY_RTOL * max(1.0, float(np.abs(W).max(initial=0.0))):
        raise ValueError(f"params['W'] must be symmetric: W must be symmetric for an energy "
                         f"network ({kind}); max |W - W.T| = {asym:.3g}; "
                         "net.constrain(params) symmetrises it")
    stray = int(np.count_nonzero(W[~allowed]))
    if stray:
        where = "off the graph" if allowed.diagonal().all() else \
            "off the graph or on the diagonal"
        raise ValueError(f"params['W'] has {stray} nonzero weights {where}; {kind} has "
                         "weights only on its connections (net.constrain(params) masks them)")


def symmetrized(params, allowed):
    r"""``params`` with :math:`W \leftarrow \tfrac12 (W + W^\top)` where ``allowed`` and 0
    elsewhere; ``params`` itself when that changes nothing."""
    if invariant_holds(params.get("W"), params.get("b"), allowed):
        return params
    W = np.asarray(params["W"], dtype=np.float64)
    fixed = np.where(allowed, 0.5 * (W + W.T), 0.0)
    if np.array_equal(fixed, W):
        return params
    return {**params, "W": fixed}


def symmetric_on_graph(allowed, draw):
    """A symmetric ``W`` (N, N) with ``W[i, j] = W[j, i] = draw(i, j)`` on each connection
    ``i < j`` of ``allowed`` and 0 elsewhere (diagonal included).

    Parameters
    ----------
    allowed : bool ndarray, shape (N, N)
        Symmetric connection mask.
    draw : callable ``(i, j) -> ndarray of len(i)``
        Values of the upper-triangle connections, given their row and column indices (in
        row-major order), e.g. ``lambda i, j: rng.normal(0.0, s, i.size)``.
    """
    N = allowed.shape[0]
    i, j = np.nonzero(np.triu(allowed, 1))
    W = np.zeros((N, N))
    W[i, j] = draw(i, j)
    return W + W.T
