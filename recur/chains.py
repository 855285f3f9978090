r"""Feed-forward chains in a weight matrix and in spike activity.

A synfire chain in its sparsest form is a permutation: every unit drives one successor
strongly, and following successors walks the chain. This module finds that structure in a
learned weight matrix and measures it against chance:

- :func:`chain_successors`: a matching of units to successors (each unit has at most one
  successor and at most one predecessor), chosen to carry as much weight as possible;
- :func:`chain_index`: the fraction of the total weight that lies on that matching, against
  the same measure on controls whose weights are shuffled over the same graph;
- :func:`find_chains` and :func:`chain_order`: the chains the matching's strong links make,
  and the order of units along them (to plot ``W`` sorted so a chain is the sub-diagonal);
- :func:`sequence_lengths`: lengths of the spike sequences that travel along the chains in a
  raster (e.g. spontaneous activity), and :func:`tail_exponent` for their distribution.

``W[i, j]`` is the weight from unit ``j`` onto unit ``i`` (``W[post, pre]``); a networkx edge
``j -> i`` is ``W[i, j]``, so ``W = A.T``. Weights are excitatory (non-negative).

References
----------
.. [1] Fiete, Senn, Wang & Hahnloser, "Spike-time-dependent plasticity and heterosynaptic
   competition organize networks to produce long scale-free sequences of neural activity",
   Neuron 65:563 (2010).
.. [2] Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM Review
   51:661 (2009).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .rules.evidence import SpikeTrains
from .validation import as_float_array, check_positive

__all__ = [
    "ChainIndex",
    "chain_successors",
    "chain_index",
    "find_chains",
    "chain_order",
    "sequence_lengths",
    "tail_exponent",
]

_METHODS = ("greedy", "optimal")
# linear_sum_assignment works on a dense N x N cost matrix in O(N^3).
_OPTIMAL_MAX_UNITS = 3000
# Rounds of locally dominant links before the greedy matching finishes sequentially.
_GREEDY_ROUNDS = 64


@dataclass(frozen=True)
class ChainIndex:
    """A chain index and its shuffled controls.

    Attributes
    ----------
    index : float
        Fraction of the total weight on the best chain matching, in [0, 1].
    control_mean, control_std : float
        Mean and standard deviation of the index over the shuffled controls.
    z : float
        ``(index - control_mean) / control_std`` (inf when the controls do not vary and the
        index exceeds them).
    controls : ndarray, shape (n_shuffles,)
        Index of each control.
    """

    index: float
    control_mean: float
    control_std: float
    z: float
    controls: np.ndarray


def _edges(W, mask=None, *, name="W"):
    """Off-diagonal connections of ``W`` as (post, pre, weight) arrays.

    The graph is the stored structure of a sparse ``W``, ``mask`` for a dense one (all
    off-diagonal entries when there is no mask). Self-connections are not links of a chain.
    """
    if sp.issparse(W):
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(f"{name} must be a square matrix, got shape {W.shape}")
        C = sp.coo_array(W, copy=True)
        C.sum_duplicates()  # duplicate stored entries of one link are one weight
        post, pre = np.asarray(C.row, dtype=np.intp), np.asarray(C.col, dtype=np.intp)
        w = as_float_array(C.data, name)
    else:
        W = as_float_array(W, name, ndim=2)
        if W.shape[0] != W.shape[1]:
            raise ValueError(f"{name} must be a square matrix, got shape {W.shape}")
        if mask is None:
            keep = np.ones(W.shape, dtype=bool)
        else:
            keep = np.asarray(mask.toarray() if sp.issparse(mask) else mask, dtype=bool)
            if keep.shape != W.shape:
                raise ValueError(f"mask has shape {keep.shape}, {name} has {W.shape}")
        post, pre = np.nonzero(keep)
        w = W[post, pre]
    if w.size and w.min() < 0:
        raise ValueError(f"{name} must be non-negative (excitatory weights), its smallest "
                         f"weight is {w.min():.3g}")
    off = post != pre
    return post[off], pre[off], w[off], W.shape[0]


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def _greedy_matching(post, pre, w, n):
    """Greedy maximum-weight matching: take links heaviest first while both ends are free.

    Computed in rounds of locally dominant links (the heaviest remaining link of its pre unit
    and of its post unit), which gives the same matching as the sequential greedy pass with
    ties broken by storage order; each round takes at least the heaviest remaining link.
    """
    succ = np.full(n, -1, dtype=np.intp)
    order = np.lexsort((np.arange(w.size), -w))
    post, pre = post[order], pre[order]
    rounds = 0
    while post.size:
        rounds += 1
        if rounds > _GREEDY_ROUNDS:
            # Long runs of links each heavier than the next need one round per link; the
            # rest is finished in one sequential pass (the same matching).
            _greedy_pass(post.tolist(), pre.tolist(), succ)
            break
        _, first_pre = np.unique(pre, return_index=True)
        _, first_post = np.unique(post, return_index=True)
        top = np.zeros(post.size, dtype=bool)
        top[first_pre] = True
        dominant = np.zeros(post.size, dtype=bool)
        dominant[first_post] = True
        dominant &= top
        succ[pre[dominant]] = post[dominant]
        used_pre = np.zeros(n, dtype=bool)
        used_post = np.zeros(n, dtype=bool)
        used_pre[pre[dominant]] = True
        used_post[post[dominant]] = True
        alive = ~(used_pre[pre] | used_post[post]) & (succ[pre] < 0)
        post, pre = post[alive], pre[alive]
    return succ


def _greedy_pass(post, pre, succ):
    """The sequential greedy matching over links already sorted heaviest first."""
    taken = set(int(i) for i in succ[succ >= 0])
    for i, j in zip(post, pre):
        if succ[j] < 0 and i not in taken:
            succ[j] = i
            taken.add(i)


def _optimal_matching(post, pre, w, n):
    from scipy.optimize import linear_sum_assignment

    if n > _OPTIMAL_MAX_UNITS:
        raise ValueError(f"method='optimal' works on dense n x n matrices, up to "
                         f"{_OPTIMAL_MAX_UNITS} units; got {n} (use method='greedy')")
    gain = np.zeros((n, n))
    np.maximum.at(gain, (pre, post), w)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    succ = np.full(n, -1, dtype=np.intp)
    # Pairs the assignment was forced to make through missing or zero links are no links.
    real = gain[rows, cols] > 0
    succ[rows[real]] = cols[real]
    return succ


def chain_successors(W, threshold=0.0, *, mask=None, method="greedy"):
    r"""The successor of every unit on the heaviest chain-like (one-to-one) structure of ``W``.

    A matching :math:`\pi` of presynaptic to postsynaptic units (each unit has at most one
    successor and at most one predecessor, no unit its own successor), over the links with
    :math:`W_{ij} > \theta`, chosen to make :math:`\sum_j W_{\pi(j) j}` large. Following
    successors walks the chains; a permutation matrix is exactly one such structure.

    Parameters
    ----------
    W : ndarray or sparse matrix, shape (N, N)
        Non-negative weights, ``W[post, pre]`` (``W = A.T`` of a networkx graph).
    threshold : float >= 0
        Only links heavier than this count (:math:`\theta`).
    mask : bool array (N, N), optional
        The graph of a dense ``W`` (default: every off-diagonal entry).
    method : {"greedy", "optimal"}
        ``"greedy"``: heaviest links first (within a factor 2 of the optimum, O(E log E),
        sparse-friendly). ``"optimal"``: the maximum-weight assignment
        (``scipy.optimize.linear_sum_assignment``, O(N^3), N <= 3000).

    Returns
    -------
    successors : int ndarray, shape (N,)
        ``successors[j]`` is the unit ``j`` drives along its chain, -1 for none.
    """
    _check_method(method)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number, got {threshold!r}")
    check_positive(threshold, "threshold", strict=False)
    post, pre, w, n = _edges(W, mask)
    strong = w > threshold
    post, pre, w = post[strong], pre[strong], w[strong]
    if method == "greedy":
        return _greedy_matching(post, pre, w, n)
    return _optimal_matching(post, pre, w, n)


def _matched_fraction(post, pre, w, n, method):
    total = w.sum()
    if total <= 0:
        return 0.0
    nz = w > 0
    post, pre, w = post[nz], pre[nz], w[nz]
    succ = (_greedy_matching if method == "greedy" else _optimal_matching)(post, pre, w, n)
    return float(w[succ[pre] == post].sum() / total)


def chain_index(W, *, mask=None, n_shuffles=20, method="greedy", rng=None) -> ChainIndex:
    r"""How much of the weight lies on a feed-forward, permutation-like structure.

    .. math::

        C(W) = \frac{\sum_j W_{\pi(j)\, j}}{\sum_{i \ne j} W_{ij}}

    where :math:`\pi` is the heaviest one-to-one successor map (:func:`chain_successors`):
    1 for a weighted permutation (a chain of single units, or a ring), about ``1/m`` for a
    chain of groups of ``m`` units wired all-to-all between groups, and for unstructured
    weights what chance gives. The controls are the same measure on ``W`` with its weights
    permuted at random over the same graph (the same multiset of weights on the same links);
    the z-score compares ``C(W)`` with them.

    Parameters
    ----------
    W : ndarray or sparse matrix, shape (N, N)
        Non-negative weights, ``W[post, pre]``.
    mask : bool array (N, N), optional
        The graph of a dense ``W``: the controls shuffle weights over its off-diagonal links
        (default: every off-diagonal entry). A sparse ``W``'s graph is its stored structure.
    n_shuffles : int >= 2
        Number of shuffled controls.
    method : {"greedy", "optimal"}
        See :func:`chain_successors`.
    rng : None, int or Generator

    Returns
    -------
    ChainIndex

    Notes
    -----
    Self-connections are left out of both sums. Shuffling over the network's graph, not over
    the links that ended up nonzero, matters: after learning, most weights may be zero, and a
    shuffle among the surviving links alone would keep the chain.
    """
    _check_method(method)
    check_positive(n_shuffles, "n_shuffles", integer=True)
    if n_shuffles < 2:
        raise ValueError(f"n_shuffles must be >= 2 (a spread needs two controls), got "
                         f"{n_shuffles}")
    rng = np.random.default_rng(rng)
    post, pre, w, n = _edges(W, mask)
    index = _matched_fraction(post, pre, w, n, method)
    controls = np.array([_matched_fraction(post, pre, rng.permutation(w), n, method)
                         for _ in range(n_shuffles)])
    mean, std = float(controls.mean()), float(controls.std(ddof=1))
    if std > 0:
        z = (index - mean) / std
    else:
        z = 0.0 if index == mean else float(np.sign(index - mean) * np.inf)
    return ChainIndex(index=index, control_mean=mean, control_std=std, z=float(z),
                      controls=controls)


def _paths(succ, weight_of_link):
    """Split a successor map (in- and out-degree <= 1) into simple paths.

    A cycle is cut at its weakest link. Returns a list of int arrays.
    """
    n = succ.size
    pred = np.full(n, -1, dtype=np.intp)
    has = succ >= 0
    pred[succ[has]] = np.flatnonzero(has)
    succ = succ.copy()
    # Cut every cycle at its weakest link: walk from each unvisited unit on a cycle.
    seen = np.zeros(n, dtype=bool)
    for start in np.flatnonzero((pred >= 0) & has):
        if seen[start]:
            continue
        cycle, u = [], start
        while u >= 0 and not seen[u]:
            seen[u] = True
            cycle.append(u)
            u = succ[u]
        if u == start:  # closed loop
            links = np.array(cycle)
            weakest = links[np.argmin(weight_of_link(links, succ[links]))]
            pred[succ[weakest]] = -1
            succ[weakest] = -1
    chains = []
    for head in np.flatnonzero((pred < 0) & (succ >= 0)):
        path, u = [head], succ[head]
        while u >= 0:
            path.append(u)
            u = succ[u]
        chains.append(np.array(path, dtype=np.intp))
    return chains


def _link_weights(W):
    if sp.issparse(W):
        Wc = sp.csr_array(W)

        def weight(pre, post):
            return np.asarray(Wc[post, pre]).ravel()
    else:
        Wd = np.asarray(W, dtype=float)

        def weight(pre, post):
            return Wd[post, pre]
    return weight


def find_chains(W, threshold, *, mask=None, method="greedy", min_length=2):
    r"""The chains of strong links in ``W``: unit sequences and their lengths.

    The strong links (:math:`W_{ij} > \theta`) are matched one-to-one
    (:func:`chain_successors`); following successors from each unit without a predecessor
    gives one chain. A closed loop (a ring) is cut at its weakest link.

    Parameters
    ----------
    W : ndarray or sparse matrix, shape (N, N)
        Non-negative weights, ``W[post, pre]``.
    threshold : float >= 0
        :math:`\theta`: a link weaker than this is not part of a chain (e.g. half of
        ``w_max``).
    mask, method
        See :func:`chain_successors`.
    min_length : int >= 1
        Shortest chain (in units) to report.

    Returns
    -------
    chains : list of int ndarray
        Units in the order activity travels along each chain, longest chain first.
    lengths : int ndarray
        Number of units in each chain.
    """
    check_positive(min_length, "min_length", integer=True)
    succ = chain_successors(W, threshold, mask=mask, method=method)
    chains = [c for c in _paths(succ, _link_weights(W)) if c.size >= min_length]
    chains.sort(key=lambda c: (-c.size, int(c[0])))
    return chains, np.array([c.size for c in chains], dtype=np.intp)


def chain_order(W, threshold=0.0, *, mask=None, method="greedy"):
    """A permutation of the units that lays the chains of ``W`` end to end.

    Chains from :func:`find_chains` (longest first), each in the order activity travels,
    then every unit on no chain. ``W[np.ix_(order, order)]`` shows a chain as a run of
    entries just below the diagonal (``W[post, pre]`` with ``post`` next after ``pre``).

    Returns
    -------
    order : int ndarray, shape (N,)
    """
    chains, _ = find_chains(W, threshold, mask=mask, method=method, min_length=2)
    n = W.shape[0]
    on = np.concatenate(chains) if chains else np.zeros(0, dtype=np.intp)
    rest = np.setdiff1d(np.arange(n), on)
    return np.concatenate([on, rest]).astype(np.intp)


def sequence_lengths(raster, successors, *, max_lag=1, min_length=2):
    r"""Lengths of the spike sequences that travel along the chains of a successor map.

    A spike of unit ``j`` at step ``t`` is continued by the first spike of its successor
    ``successors[j]`` at a step in ``t + 1 .. t + max_lag`` (same trial). A spike that
    continues several earlier spikes of its predecessor continues the latest of them only,
    so every spike belongs to one sequence. A sequence is a maximal run of continued spikes;
    its length is its number of spikes (units along the chain).

    Parameters
    ----------
    raster : SpikeTrains
        Spikes (unit, step, trial).
    successors : int array, shape (n_units,)
        From :func:`chain_successors` (-1: no successor).
    max_lag : int >= 1
        Longest delay, in steps, from a spike to the spike it causes.
    min_length : int >= 1
        Shortest sequence to report (1 counts lone spikes too).

    Returns
    -------
    lengths : int ndarray
        One entry per sequence, in the order of their first spikes.
    """
    if not isinstance(raster, SpikeTrains):
        raise TypeError(f"raster must be SpikeTrains, got {type(raster).__name__}")
    check_positive(max_lag, "max_lag", integer=True)
    check_positive(min_length, "min_length", integer=True)
    n = int(raster.n_units)
    succ = np.asarray(successors)
    if succ.shape != (n,) or not np.issubdtype(succ.dtype, np.integer):
        raise ValueError(f"successors must be an integer array of shape ({n},), got "
                         f"{succ.dtype} {succ.shape}")
    if succ.size and (succ.min() < -1 or succ.max() >= n):
        raise ValueError(f"successors must lie in [-1, {n}), got [{succ.min()}, {succ.max()}]")
    units = np.asarray(raster.units, dtype=np.int64)
    steps = np.asarray(raster.steps, dtype=np.int64)
    trials = (np.zeros_like(units) if raster.trials is None
              else np.asarray(raster.trials, dtype=np.int64))
    span = int(raster.n_steps) + max_lag + 1
    code = np.unique((trials * span + steps) * n + units)
    if code.size == 0:
        return np.zeros(0, dtype=np.intp)
    unit, rest = code % n, code // n
    step, trial = rest % span, rest // span
    nxt = np.full(code.size, -1, dtype=np.intp)
    s = succ[unit]
    has = s >= 0
    for lag in range(max_lag, 0, -1):  # shorter lags overwrite: the first continuation wins
        want = (trial * span + step + lag) * n + s
        pos = np.searchsorted(code, want)
        pos = np.minimum(pos, code.size - 1)
        found = has & (code[pos] == want)
        nxt[found] = pos[found]
    # A spike continued by several predecessor spikes keeps the latest (largest index:
    # codes are sorted by trial, then step).
    linked = np.flatnonzero(nxt >= 0)
    latest = np.full(code.size, -1, dtype=np.intp)
    np.maximum.at(latest, nxt[linked], linked)
    keep = latest[nxt[linked]] == linked
    nxt[linked[~keep]] = -1
    has_pred = np.zeros(code.size, dtype=bool)
    has_pred[nxt[nxt >= 0]] = True
    cur = np.flatnonzero(~has_pred)
    lengths = np.ones(cur.size, dtype=np.intp)
    alive = np.arange(cur.size)
    while alive.size:
        cur_next = nxt[cur[alive]]
        go = cur_next >= 0
        alive = alive[go]
        cur[alive] = cur_next[go]
        lengths[alive] += 1
    return lengths[lengths >= min_length]


def tail_exponent(lengths, x_min=2):
    r"""Maximum-likelihood exponent of a discrete power law fitted to the tail of ``lengths``.

    .. math::

        \hat\alpha = 1 + n \Big[\sum_{x_i \ge x_\mathrm{min}}
            \ln \frac{x_i}{x_\mathrm{min} - 1/2}\Big]^{-1}

    the approximation of Clauset, Shalizi & Newman (2009, eq. 3.7) for
    :math:`P(x) \propto x^{-\alpha}`, :math:`x \ge x_\mathrm{min}`; its standard error is
    :math:`(\hat\alpha - 1)/\sqrt n`.

    Returns
    -------
    alpha : float
        NaN when fewer than two lengths reach ``x_min``.
    n_tail : int
        Number of lengths in the tail.
    """
    check_positive(x_min, "x_min")
    x = np.asarray(lengths, dtype=float)
    x = x[x >= x_min]
    if x.size < 2:
        return float("nan"), int(x.size)
    return float(1.0 + x.size / np.log(x / (x_min - 0.5)).sum()), int(x.size)
