r"""Samplers, mean-field iterations and exact enumeration for :class:`~recur.Boltzmann`.

Units are 0/1, the energy is :math:`E(s) = -\tfrac12 s^\top W s - b^\top s` with a symmetric,
zero-diagonal ``W`` (``W[post, pre]``), and :math:`p(s) \propto \exp(-E(s)/T)`. Unit ``i``
given the others is on with probability

.. math::

    p(s_i = 1 \mid s_{\setminus i}) = \sigma\big((W_i s + b_i) / T\big),
    \qquad \sigma(x) = 1 / (1 + e^{-x}).

Everything here is vectorised over chains (rows of a ``(C, N)`` state array):

- :func:`sequential_sweeps`: Gibbs sampling of a general graph, one unit at a time in a random
  order drawn per sweep. All random numbers (orders and uniforms) are drawn up front from the
  caller's generator, so the compiled kernel and the numpy loop consume the same draws and
  give the same samples (the numpy loop visits one unit at a time across all chains, the
  kernel one chain at a time; each chain sees the same sequence of updates).
- :func:`blocked_sweeps`: blocked Gibbs sampling when the free units split into two groups
  with no edges inside either (an RBM): a group is sampled at once given the other with one
  matrix product over all chains.
- :func:`mean_field`: deterministic mean-field fixed points (Peterson & Anderson 1987) by
  sequential (Gauss-Seidel) updates, which never increase the mean-field free energy for a
  symmetric ``W`` and so settle.
- :func:`log_sum_exp_free`: exact :math:`\log \sum_{s_F} e^{-E(s)/T}` over free units ``F``
  given the others, by enumeration of part of ``F`` and analytic summation of an independent
  set of it (units with no edges among them are conditionally independent, and each
  contributes a softplus term).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .. import kernels
from ..validation import ConvergenceError

__all__ = ["sigmoid", "is_binary", "sequential_sweeps", "blocked_sweeps", "rbm_phases",
           "mean_field", "split_enumeration", "log_sum_exp_free"]

_JIT = kernels.LazyJit(globals(), after=[kernels.JIT])

# Rows of enumerated configurations handled at once (bounds temporary memory at about this
# many configurations times the number of units).
_ENUM_CHUNK = 1 << 16


def sigmoid(x):
    """Logistic function (scipy's ``expit``: no overflow warning, exact 0 and 1 at the ends)."""
    return expit(x)


@_JIT.register(signatures=["boolean(float64[:, ::1])"])
def _is_binary_nb(x):
    for v in x.reshape(-1):
        if v != 0.0 and v != 1.0:
            return False
    return True


def is_binary(x, *, backend="auto") -> bool:
    """Whether every entry of the array ``x`` (any shape) is 0 or 1 (NaN and inf are not).

    One compiled pass for a C-contiguous float64 matrix, ``all((x == 0) | (x == 1))``
    otherwise."""
    if type(x) is np.ndarray and kernels.use_numba(backend, _JIT):
        try:
            return _is_binary_nb(x)
        except TypeError:  # not a C-contiguous float64 matrix: numpy decides
            pass
    return bool(np.all((x == 0.0) | (x == 1.0)))


# -- sequential Gibbs ----------------------------------------------------------------------

@_JIT.register
def _sequential_nb(W, b, s, orders, uniforms, inv_temps, record_from, out):
    """Compiled twin of :func:`_sequential_numpy` (same draws, same samples)."""
    n_sweeps, n_free = orders.shape
    C, N = s.shape
    for t in range(n_sweeps):
        beta = inv_temps[t]
        for c in range(C):
            row = s[c]
            for pos in range(n_free):
                i = orders[t, pos]
                field = b[i]
                Wi = W[i]
                for j in range(N):
                    field += Wi[j] * row[j]
                p = 1.0 / (1.0 + np.exp(-field * beta))
                row[i] = 1.0 if uniforms[t, c, pos] < p else 0.0
        if t >= record_from:
            r = t - record_from
            for c in range(C):
                for j in range(N):
                    out[r, c, j] = s[c, j]


def _sequential_numpy(W, b, s, orders, uniforms, inv_temps, record_from, out):
    """One unit at a time, a vector operation across all chains."""
    n_sweeps, n_free = orders.shape
    for t in range(n_sweeps):
        beta = inv_temps[t]
        for pos in range(n_free):
            i = orders[t, pos]
            p = sigmoid((s @ W[i] + b[i]) * beta)
            s[:, i] = uniforms[t, :, pos] < p
        if t >= record_from:
            out[t - record_from] = s


def sequential_sweeps(W, b, s, free, temperatures, n_record, rng, *, backend="auto"):
    """Sequential Gibbs sweeps over the ``free`` units of every chain.

    Parameters
    ----------
    W : ndarray, shape (N, N)
        Symmetric, zero diagonal.
    b : ndarray, shape (N,)
    s : ndarray, shape (C, N)
        Starting 0/1 states; not modified.
    free : ndarray of int
        Units to resample; the others stay clamped at their values in ``s``.
    temperatures : ndarray, shape (n_sweeps,)
        Temperature of each sweep (an annealing schedule).
    n_record : int
        The states after each of the last ``n_record`` sweeps are returned.
    rng : numpy.random.Generator
    backend : {"auto", "numba", "numpy"}

    Returns
    -------
    records : ndarray, shape (n_record, C, N)
    s : ndarray, shape (C, N)
        The final states.
    """
    temperatures = np.asarray(temperatures, dtype=np.float64)
    n_sweeps = temperatures.shape[0]
    s = np.array(s, dtype=np.float64, order="C")
    C, N = s.shape
    free = np.asarray(free, dtype=np.intp)
    orders = rng.permuted(np.tile(free, (n_sweeps, 1)), axis=1) if free.size else \
        np.zeros((n_sweeps, 0), dtype=np.intp)
    uniforms = rng.random((n_sweeps, C, free.size))
    out = np.empty((n_record, C, N))
    inv = 1.0 / temperatures
    W = np.ascontiguousarray(W, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if kernels.use_numba(backend, _JIT):
        _sequential_nb(W, b, s, orders, uniforms, inv, n_sweeps - n_record, out)
    else:
        _sequential_numpy(W, b, s, orders, uniforms, inv, n_sweeps - n_record, out)
    return out, s


# -- blocked Gibbs -------------------------------------------------------------------------

def blocked_sweeps(W, b, s, blocks, temperatures, n_record, rng):
    """Blocked Gibbs sweeps: each block of mutually unconnected units is sampled at once.

    A sweep samples ``blocks[0]`` given the rest, then ``blocks[1]``, ... (for an RBM: the
    hidden units given the visible ones, then the visible ones given the hidden ones). Units
    in no block stay clamped.

    Parameters
    ----------
    W, b, s, temperatures, n_record, rng
        As in :func:`sequential_sweeps`.
    blocks : sequence of int arrays
        Groups of units with no edges inside a group.

    Returns
    -------
    records : ndarray, shape (n_record, C, N)
    s : ndarray, shape (C, N)
    """
    temperatures = np.asarray(temperatures, dtype=np.float64)
    n_sweeps = temperatures.shape[0]
    s = np.array(s, dtype=np.float64)
    out = np.empty((n_record,) + s.shape)
    blocks = [np.asarray(k, dtype=np.intp) for k in blocks if len(k)]
    rows = [W[k] for k in blocks]  # (n_k, N): the fields of block k are s @ W[k].T
    for t in range(n_sweeps):
        beta = 1.0 / temperatures[t]
        for k, Wk in zip(blocks, rows):
            p = sigmoid((s @ Wk.T + b[k]) * beta)
            s[:, k] = rng.random(p.shape) < p
        if t >= n_sweeps - n_record:
            out[t - (n_sweeps - n_record)] = s
    return out, s


# -- one RBM learning step, fused ----------------------------------------------------------

# The compiled step is the numpy twin's sequence of matrix products (BLAS through numba's
# np.dot, over all rows at once), with every elementwise stage (bias, logistic, comparison
# with a uniform) fused into one loop over the product instead of a numpy call each: on a
# small RBM those calls, not the arithmetic, are the cost. kernels.fast_logistic vectorises;
# it matches the twin's formula to a few units in the last place, so samples agree unless a
# uniform falls within rounding of a probability.
@_JIT.register(fastmath=True, inline="always")
def _logistic_rows(A, bias, beta):
    """``A <- sigmoid((A + bias) * beta)`` in place, row by row."""
    for c in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[c, j] = kernels.fast_logistic((A[c, j] + bias[j]) * beta)


@_JIT.register(fastmath=True, inline="always")
def _draw(P, u, t, first, out):
    """``out[c, j] = 1 if u[t, first + c * n + j] < P[c, j] else 0`` (``n`` columns)."""
    n = P.shape[1]
    for c in range(P.shape[0]):
        for j in range(n):
            out[c, j] = 1.0 if u[t, first + c * n + j] < P[c, j] else 0.0


@_JIT.register(fastmath=True, inline="always")
def _place(rows, first, states, b_moment):
    """``rows`` (n, m) into columns ``first ..`` of ``states``; their means into
    ``b_moment``."""
    n, m = rows.shape
    for j in range(m):
        total = 0.0
        for c in range(n):
            states[c, first + j] = rows[c, j]
            total += rows[c, j]
        b_moment[first + j] = total / n


@_JIT.register(fastmath=True, inline="always")
def _write_phase(rows_v, rows_h, ov, oh, states, W_moment, b_moment):
    """``states = [rows_v, rows_h]`` and its moments: the mean of ``v h^T`` into both
    triangles of the visible-hidden block of ``W_moment`` (the rest stays as it is, zero),
    the mean of every unit into ``b_moment``."""
    n, V = rows_v.shape
    H = rows_h.shape[1]
    corr = np.dot(rows_v.T, rows_h)
    for i in range(V):
        for j in range(H):
            W_moment[ov + i, oh + j] = corr[i, j] / n
            W_moment[oh + j, ov + i] = corr[i, j] / n
    _place(rows_v, ov, states, b_moment)
    _place(rows_h, oh, states, b_moment)


@_JIT.register(fastmath=True)
def _rbm_phases_nb(W, b, data, start_v, from_data, u, beta, ov, oh,
                   wake, sleep, end, W_wake, b_wake, W_sleep, b_sleep):
    """Compiled twin of :func:`_rbm_phases_numpy` (same draws, same samples)."""
    P, V = data.shape
    C = start_v.shape[0]
    H = W.shape[0] - V
    W_vh = np.ascontiguousarray(W[ov:ov + V, oh:oh + H])
    W_hv = np.ascontiguousarray(W[oh:oh + H, ov:ov + V])
    b_v, b_h = b[ov:ov + V], b[oh:oh + H]
    # Wake: p(h | data), and how well one pass down reconstructs the data.
    p_h = np.dot(data, W_vh)
    _logistic_rows(p_h, b_h, beta)
    recon = np.dot(p_h, W_hv)
    _logistic_rows(recon, b_v, beta)
    err = 0.0
    for c in range(P):
        for i in range(V):
            d = data[c, i] - recon[c, i]
            err += d * d
    # Sleep: k steps of blocked Gibbs sampling; step t's uniforms are a (C, H) block for
    # the hidden units, then a (C, V) block for the visible ones.
    v = start_v
    h = np.empty((C, H))
    for t in range(u.shape[0]):
        if t == 0 and from_data:
            p = p_h  # CD's first hidden draw: the wake probabilities are p(h | data)
        else:
            p = np.dot(v, W_vh)
            _logistic_rows(p, b_h, beta)
        _draw(p, u, t, 0, h)
        p_v = np.dot(h, W_hv)
        _logistic_rows(p_v, b_v, beta)
        v = np.empty((C, V))
        _draw(p_v, u, t, C * H, v)
    p_end = np.dot(v, W_vh)
    _logistic_rows(p_end, b_h, beta)
    _write_phase(data, p_h, ov, oh, wake, W_wake, b_wake)
    _write_phase(v, p_end, ov, oh, sleep, W_sleep, b_sleep)
    for c in range(end.shape[0]):  # no rows: the caller keeps no chains
        for i in range(V):
            end[c, ov + i] = v[c, i]
        for j in range(H):
            end[c, oh + j] = h[c, j]
    return err / (P * V)


def _logistic(x):
    # The formula the compiled kernel uses (kernels.fast_logistic is it to a few units in
    # the last place; not scipy's expit), so both paths draw the same samples.
    return 1.0 / (1.0 + np.exp(-x))


def _rbm_phases_numpy(W, b, data, start_v, from_data, u, beta, ov, oh,
                      wake, sleep, end, W_wake, b_wake, W_sleep, b_sleep):
    C, V = start_v.shape
    H = W.shape[0] - V
    vs, hs = slice(ov, ov + V), slice(oh, oh + H)
    W_vh, W_hv, b_v, b_h = W[vs, hs], W[hs, vs], b[vs], b[hs]
    p_h = _logistic((data @ W_vh + b_h) * beta)
    wake[:, vs] = data
    wake[:, hs] = p_h
    recon = _logistic((p_h @ W_hv + b_v) * beta)
    v = start_v
    h = np.zeros((C, H))
    for t in range(u.shape[0]):
        u_h = u[t, :C * H].reshape(C, H)
        u_v = u[t, C * H:].reshape(C, V)
        p = p_h if (t == 0 and from_data) else _logistic((v @ W_vh + b_h) * beta)
        h = (u_h < p).astype(np.float64)
        v = (u_v < _logistic((h @ W_hv + b_v) * beta)).astype(np.float64)
    sleep[:, vs] = v
    sleep[:, hs] = _logistic((v @ W_vh + b_h) * beta)
    if end.shape[0]:  # no rows: the caller keeps no chains
        end[:, vs] = v
        end[:, hs] = h
    for rows, mW, mb in ((wake, W_wake, b_wake), (sleep, W_sleep, b_sleep)):
        corr = rows[:, vs].T @ rows[:, hs] / rows.shape[0]
        mW[vs, hs] = corr
        mW[hs, vs] = corr.T
        mb[:] = rows.mean(axis=0)
    return float(np.mean((data - recon) ** 2))


def rbm_phases(W, b, data, start_v, k, temperature, rng, offsets, *, keep_chains=True,
               mask=None, backend="auto"):
    r"""Wake statistics of the data and ``k`` blocked Gibbs steps of an RBM, in one pass.

    The wake phase clamps the visible units to ``data`` and holds the hidden units' exact
    conditional probabilities :math:`p(h_j = 1 \mid v) = \sigma((W v + b_h)_j / T)`; the sleep
    phase runs ``k`` steps (hidden given visible, then visible given hidden) from
    ``start_v`` and records :math:`[v_k, p(h \mid v_k)]`. Both phases' moments (the means of
    :math:`s s^\top` and :math:`s` over their rows) come out of the same pass. This is one
    step of contrastive divergence (``start_v = data``) or persistent CD (``start_v`` = the
    chains) with nothing but the arithmetic: on a small RBM a step is dominated by per-call
    overhead, so the compiled kernel does it in one call. Draws: for each step a ``(C, H)``
    then a ``(C, V)`` block of uniforms, the order of :func:`blocked_sweeps`.

    Parameters
    ----------
    W : ndarray, shape (N, N), float64, C-contiguous
        The full symmetric weight matrix (only its visible-hidden blocks are read, in both
        orientations: it must be symmetric there).
    b : ndarray, shape (N,), float64
    data : ndarray, shape (P, V) of 0/1
    start_v : ndarray, shape (C, V) of 0/1
        Where the sleep chains start; ``data`` itself (the same object) for plain CD, whose
        first hidden draw then reuses the wake probabilities.
    k : int >= 1
    temperature : float > 0
    rng : Generator
    offsets : (int, int)
        First unit of the visible and of the hidden range (each role a contiguous range of
        units; the hidden range runs to the end of the other units not visible).
    keep_chains : bool
        Return the chains' final states (persistent CD needs them; plain CD does not, and
        then ``end`` has no rows).
    mask : bool ndarray, shape (N, N), optional
        The connections, when not every visible-hidden pair is one: the ``"W"`` moments
        are zero off them (None: the whole visible-hidden block).
    backend : {"auto", "numba", "numpy"}

    Returns
    -------
    wake : ndarray, shape (P, N)
    sleep : ndarray, shape (C, N)
        ``[v_k, p(h | v_k)]``.
    end : ndarray, shape (C, N), or (0, N) without ``keep_chains``
        ``[v_k, h_k]``, the chains' states.
    reconstruction : float
        :math:`\mathrm{mean}\,(v - \sigma((p(h \mid v)^\top W_{hv} + b_v)/T))^2` over the data.
    wake_moments, sleep_moments : dict
        ``{"W": (N, N), "b": (N,)}``: the mean of :math:`s s^\top` over the phase's rows on
        the visible-hidden blocks (zero elsewhere: an RBM has no other weights; and off
        ``mask``) and the mean of :math:`s`.
    """
    from_data = start_v is data
    data = np.ascontiguousarray(data, dtype=np.float64)
    start_v = data if from_data else np.ascontiguousarray(start_v, dtype=np.float64)
    N, C, P = W.shape[0], start_v.shape[0], data.shape[0]
    # One draw for all steps; per step a (C, H) then a (C, V) block, as drawn one by one.
    u = rng.random((k, C * N))
    wake, sleep = np.empty((P, N)), np.empty((C, N))
    end = np.empty((C if keep_chains else 0, N))
    wake_moments = {"W": np.zeros((N, N)), "b": np.empty(N)}
    sleep_moments = {"W": np.zeros((N, N)), "b": np.empty(N)}
    W = np.ascontiguousarray(W, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    fn = _rbm_phases_nb if kernels.use_numba(backend, _JIT) else _rbm_phases_numpy
    recon = fn(W, b, data, start_v, from_data, u, 1.0 / temperature, offsets[0], offsets[1],
               wake, sleep, end, wake_moments["W"], wake_moments["b"], sleep_moments["W"],
               sleep_moments["b"])
    if mask is not None:
        wake_moments["W"] *= mask
        sleep_moments["W"] *= mask
    return wake, sleep, end, float(recon), wake_moments, sleep_moments


# -- mean field ----------------------------------------------------------------------------

def mean_field(W, b, m, free, temperatures, *, tol=1e-6, max_sweeps=500):
    r"""Mean-field fixed point :math:`m_i = \sigma((W_i m + b_i)/T)` for the ``free`` units.

    Sweeps update the free units one at a time (in index order) across all chains, following
    ``temperatures`` (an annealing schedule, one sweep each), then continue at the last
    temperature until no unit moves by more than ``tol`` in a sweep.

    Parameters
    ----------
    W, b
        As in :func:`sequential_sweeps`.
    m : ndarray, shape (C, N)
        Starting mean activities; clamped units keep theirs. Not modified.
    free : ndarray of int
    temperatures : ndarray, shape (n_sweeps,), n_sweeps >= 1
    tol : float
    max_sweeps : int
        Sweeps allowed at the last temperature.

    Returns
    -------
    m : ndarray, shape (C, N)

    Raises
    ------
    ConvergenceError
        When the iteration has not settled within ``max_sweeps``.
    """
    m = np.array(m, dtype=np.float64)
    free = np.asarray(free, dtype=np.intp)
    temperatures = np.asarray(temperatures, dtype=np.float64)

    def sweep(beta):
        change = 0.0
        for i in free:
            new = sigmoid((m @ W[i] + b[i]) * beta)
            change = max(change, float(np.max(np.abs(new - m[:, i]))) if new.size else 0.0)
            m[:, i] = new
        return change

    for T in temperatures[:-1]:
        sweep(1.0 / T)
    beta = 1.0 / temperatures[-1]
    for _ in range(max_sweeps):
        if sweep(beta) <= tol:
            return m
    raise ConvergenceError(f"mean-field iteration did not settle within max_sweeps="
                           f"{max_sweeps} sweeps to tol={tol:g}")


# -- exact enumeration ---------------------------------------------------------------------

def _independent_set(adj, units):
    """A maximal independent set of ``units`` in the graph ``adj`` (greedy, min degree)."""
    remaining = set(int(u) for u in units)
    chosen = []
    while remaining:
        idx = np.array(sorted(remaining))
        deg = adj[np.ix_(idx, idx)].sum(axis=1)
        pick = int(idx[np.argmin(deg)])
        chosen.append(pick)
        remaining -= {pick} | set(np.flatnonzero(adj[pick]).tolist())
    return np.array(sorted(chosen), dtype=np.intp)


def split_enumeration(adj, free, groups=()):
    """Split ``free`` units into ``(enumerated, summed)``: ``summed`` has no edges inside.

    The largest of a greedy independent set and the ``groups`` (unit sets known to have no
    edges inside, such as an RBM's hidden layer) restricted to ``free`` is summed
    analytically; the rest is enumerated.
    """
    free = np.asarray(free, dtype=np.intp)
    best = _independent_set(adj, free)
    for g in groups:
        g = np.intersect1d(np.asarray(g, dtype=np.intp), free)
        if g.size > best.size and not adj[np.ix_(g, g)].any():
            best = g
    return np.setdiff1d(free, best), best


def log_sum_exp_free(W, b, temperature, fixed, values, enumerated, summed):
    r""":math:`\log \sum_{s_F} \exp(-E(s)/T)` for each row of clamped values.

    The free units ``F`` are ``enumerated`` (every configuration visited) and ``summed``
    (no edges among them, so given the rest each contributes
    :math:`\log(1 + e^{(W_j x + b_j)/T})`):

    .. math::

        \log \sum_{s_F} e^{-E/T} = \log \sum_{x_A} \exp\Big(\frac{\tfrac12 x^\top W_{XX} x
        + b_X^\top x}{T} + \sum_{j \in B} \operatorname{softplus}\big((W_{jX} x + b_j)/T\big)
        \Big)

    with ``X`` the clamped and enumerated units, ``x`` their values and ``B = summed``.

    Parameters
    ----------
    W, b : ndarray
    temperature : float
    fixed : ndarray of int, shape (k,)
    values : ndarray, shape (P, k)
        Clamped values, one row per configuration asked about.
    enumerated, summed : ndarray of int

    Returns
    -------
    ndarray, shape (P,)
    """
    fixed = np.asarray(fixed, dtype=np.intp)
    enumerated = np.asarray(enumerated, dtype=np.intp)
    summed = np.asarray(summed, dtype=np.intp)
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(values.shape[0] if values.ndim == 2 else 1, fixed.size)
    P = values.shape[0]
    X = np.concatenate([fixed, enumerated])
    W_XX = W[np.ix_(X, X)]
    b_X = b[X]
    W_BX = W[np.ix_(summed, X)]
    b_B = b[summed]
    beta = 1.0 / temperature
    n_enum = 2**enumerated.size
    chunk = max(1, _ENUM_CHUNK // max(P, 1))
    total = np.full(P, -np.inf)
    for start in range(0, n_enum, chunk):
        codes = np.arange(start, min(start + chunk, n_enum), dtype=np.int64)
        a = ((codes[:, None] >> np.arange(enumerated.size)) & 1).astype(np.float64)
        # x: (P, n_a, |X|), clamped values then enumerated ones
        x = np.concatenate([np.broadcast_to(values[:, None, :], (P, a.shape[0], fixed.size)),
                            np.broadcast_to(a[None], (P, a.shape[0], enumerated.size))], axis=2)
        x = x.reshape(-1, X.size)
        term = (0.5 * np.einsum("sx,sx->s", x @ W_XX, x) + x @ b_X) * beta
        if summed.size:
            term = term + np.logaddexp(0.0, (x @ W_BX.T + b_B) * beta).sum(axis=1)
        term = term.reshape(P, -1)
        top = term.max(axis=1)
        part = top + np.log(np.exp(term - top[:, None]).sum(axis=1))
        total = np.logaddexp(total, part)
    return total
