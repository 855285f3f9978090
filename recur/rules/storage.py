r"""Storage rules of Hopfield memories beyond the Hebbian outer product.

Both rules require :class:`~recur.rules.evidence.Patterns` and read the
:class:`~recur.rules.evidence.PatternSet` a memory network collected: the patterns
:math:`\xi^\mu` (rows of a (P, N) array of +-1) and the network's connection mask
(``mask[post, pre]``, symmetric, zero diagonal). Conventions:

- ``W[i, j]`` is the weight from unit ``j`` onto unit ``i`` (``W[post, pre]``; a networkx edge
  ``(u, v)`` is ``W[v, u]``, ``W = A.T``). The rules update ``params["W"]`` only.
- Each rule returns the *update* that turns the current ``W`` into the stored one, so that
  :meth:`recur.Hopfield.store` and :func:`recur.train` apply it with
  :func:`~recur.rules.apply_updates` like any other update. The update is zero off the graph.
- Diagonal policy, explicit: ``diagonal="zero"`` (default) leaves a zero diagonal (the update
  cancels any diagonal the current ``W`` has); ``diagonal="keep"`` keeps the diagonal the rule
  produces. Self-couplings make more states fixed points (a unit with a large enough
  positive :math:`W_{ii}` holds whatever state it is in, the wrong bits of a corrupted cue
  included), so a kept diagonal inflates the count of fixed points while the basins that
  should pull a cue back to its pattern shrink (Storkey 1997, REFERENCES.md "Hopfield
  networks"). Measured at N = 200 (``examples/hopfield_capacity.py``, 3 seeds): Storkey at
  P = 100 holds 96% of the patterns with the kept diagonal against 53% with a zero one, yet
  recall from a 10%-flipped cue ends exactly at the pattern no more often (12% vs 13%), and
  from 25%-flipped cues at P = 61 less often (13% vs 21%): the cues barely move. The
  pseudo-inverse's kept diagonal (about P/N) at P = N/2 = 50 of N = 100 drops exact recall
  from 10%-flipped cues from about 56% to 0%.

The plain Hebbian rule (:func:`~recur.rules.hebbian`) is the third storage rule: a Hopfield
network serves it ``pre = post = patterns``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .evidence import PatternSet, Patterns
from .rule import Rule

__all__ = ["storkey", "pseudo_inverse"]

_PATTERNS = Patterns()
_DIAGONALS = ("zero", "keep")


def _check_diagonal(diagonal):
    if diagonal not in _DIAGONALS:
        raise ValueError(f"diagonal must be one of {_DIAGONALS}, got {diagonal!r}")
    return diagonal


def _pattern_set(evidence, params, rule):
    """Validated (patterns (P, N) float64, mask (N, N) bool, W (N, N) float64)."""
    found = evidence[_PATTERNS]
    if not isinstance(found, PatternSet):
        raise TypeError(f"{rule} needs a PatternSet as its Patterns evidence, got "
                        f"{type(found).__name__}")
    if "W" not in params:
        raise KeyError(f"{rule} updates params['W'], which params does not hold (it has "
                       f"{sorted(params)})")
    W = np.asarray(params["W"], dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"{rule} needs a square dense params['W'], got shape {W.shape}")
    N = W.shape[0]
    xi = np.asarray(found.patterns, dtype=np.float64)
    xi = xi.reshape(1, -1) if xi.ndim == 1 else xi
    if xi.ndim != 2 or xi.shape[1] != N:
        raise ValueError(f"patterns must have shape (P, {N}) to be stored in {N} units, got "
                         f"{np.shape(found.patterns)}")
    if xi.shape[0] == 0:
        raise ValueError("patterns has no rows")
    if not np.all(np.abs(xi) == 1.0):
        raise ValueError("patterns must hold +1/-1 values only")
    mask = np.asarray(found.mask, dtype=bool)
    if mask.shape != (N, N):
        raise ValueError(f"the pattern set's mask has shape {mask.shape}, W has {W.shape}")
    return xi, mask, W


def _write_mask(mask, diagonal):
    """Entries a rule may write: the graph, plus the diagonal when it is kept."""
    allowed = mask.copy()
    np.fill_diagonal(allowed, diagonal == "keep")
    return allowed


def storkey(diagonal="zero"):
    r"""Storkey's incremental storage rule: local, and beyond the Hebbian capacity.

    The patterns are learned one after another, starting from the current ``W``:

    .. math::

        h^\mu_{ij} = \sum_{k \ne i, j} w_{ik}\, \xi^\mu_k, \qquad
        w_{ij} \leftarrow w_{ij} + \frac1N\left(\xi^\mu_i \xi^\mu_j
            - \xi^\mu_i h^\mu_{ji} - h^\mu_{ij} \xi^\mu_j\right)

    Each pattern costs :math:`O(N^2)`: with :math:`\tilde g_i = \sum_{k \ne i} w_{ik}\xi_k`
    (one matrix-vector product), :math:`h_{ij} = \tilde g_i - w_{ij}\xi_j`, so for
    :math:`i \ne j` the step is
    :math:`\frac1N(\xi_i\xi_j - \xi_i\tilde g_j - \tilde g_i\xi_j + w_{ij} + w_{ji})` and on
    the diagonal :math:`\frac1N(1 - 2\xi_i\tilde g_i)`.

    Parameters
    ----------
    diagonal : {"zero", "keep"}
        ``"zero"``: the diagonal stays zero (it never enters the off-diagonal learning, since
        the sums exclude :math:`k = i, j`). ``"keep"``: accumulate the diagonal step above
        too; more states become fixed points, but basins shrink (see the module notes).

    Returns
    -------
    Rule
        ``requires = Patterns()``; stateless. The update is the summed change of ``W`` over
        the patterns, zero off the graph, symmetric when ``W`` is.

    Notes
    -----
    On a sparse graph the sums run over the existing connections (``W`` is zero elsewhere)
    and each step is masked to the graph; the factor stays :math:`1/N`. Storing the same
    patterns again (more epochs of :func:`recur.train`) keeps refining ``W``: the rule is
    incremental, not a fixed point of the pattern set. With a zero diagonal the Hebbian
    rule stores about :math:`N/(2\ln N)` patterns exactly, Storkey's about
    :math:`N/\sqrt{2\ln N}` (61 at N = 200).

    References
    ----------
    .. [1] A. J. Storkey, "Increasing the capacity of a Hopfield network without sacrificing
       functionality", ICANN 1997, LNCS 1327:451-456 (1997).
    .. [2] A. J. Storkey & R. Valabregue, "The basins of attraction of a new Hopfield
       learning rule", Neural Networks 12:869-876 (1999).
    """
    diagonal = _check_diagonal(diagonal)

    def update(evidence, state, params, *, rng=None):
        xi, mask, W0 = _pattern_set(evidence, params, "storkey")
        N = W0.shape[0]
        allowed = _write_mask(mask, diagonal)
        W = np.where(allowed, W0, 0.0)
        for x in xi:
            d = np.diagonal(W)
            g = W @ x - d * x  # sum over k != i of w_ik x_k
            A = np.outer(x, g)
            # Each term symmetric by construction (a + b == b + a exactly), so a symmetric W
            # stays exactly symmetric.
            step = np.outer(x, x) - (A + A.T) + (W + W.T)
            np.fill_diagonal(step, 1.0 - 2.0 * x * g)
            W = W + np.where(allowed, step, 0.0) / N
        return {"W": W - W0}, state

    return Rule(name="storkey", hparams={"diagonal": diagonal}, update=update,
                requires=_PATTERNS)


def pseudo_inverse(diagonal="zero"):
    r"""Projection (pseudo-inverse) storage: every pattern becomes a fixed point.

    .. math::

        W = \Xi^\top (\Xi\, \Xi^\top)^{-1}\, \Xi

    with :math:`\Xi` the (P, N) pattern matrix: the orthogonal projector onto the span of the
    patterns, so :math:`W\xi^\mu = \xi^\mu` for every stored pattern (Personnaz, Guyon &
    Dreyfus's :math:`\frac1N \Xi^\top C^{-1} \Xi` with :math:`C = \frac1N \Xi\Xi^\top` is the
    same matrix). The current ``W`` is replaced: the update is the new ``W`` minus the
    current one.

    Parameters
    ----------
    diagonal : {"zero", "keep"}
        ``"keep"``: ``W`` is the projector itself (:math:`W^2 = W`). ``"zero"`` (default):
        its diagonal :math:`d_i = W_{ii} \in [0, 1)` is removed, which keeps every pattern a
        fixed point (:math:`(W\xi)_i = (1 - d_i)\xi_i`, same sign) and gives the patterns
        basins of attraction; ``W + diag(d)`` is then the projector.

    Returns
    -------
    Rule
        ``requires = Patterns()``; stateless.

    Raises
    ------
    ValueError
        (At update time.) ``P >= N``: more patterns than the projector can hold apart
        (at ``P = N`` independent patterns span everything and ``W`` is the identity); or
        linearly dependent patterns (:math:`\Xi\Xi^\top` singular).

    Notes
    -----
    On a sparse graph the projector is masked to the graph (entries off the graph are
    dropped). It is then no longer an exact projection and the patterns are not guaranteed
    fixed points; the masked matrix is the natural local approximation of it. Costs
    :math:`O(P^2 N + P N^2)`.

    References
    ----------
    .. [1] L. Personnaz, I. Guyon & G. Dreyfus, "Information storage and retrieval in
       spin-glass like neural networks", J. Physique Lett. 46:L359-L365 (1985).
    .. [2] I. Kanter & H. Sompolinsky, "Associative recall of memory without errors",
       Phys. Rev. A 35:380-392 (1987).
    """
    diagonal = _check_diagonal(diagonal)

    def update(evidence, state, params, *, rng=None):
        xi, mask, W0 = _pattern_set(evidence, params, "pseudo_inverse")
        P, N = xi.shape
        if P >= N:
            raise ValueError(f"patterns: pseudo_inverse cannot store {P} patterns in {N} "
                             f"units; it needs fewer patterns than units (P < N = {N})")
        rank = np.linalg.matrix_rank(xi)
        if rank < P:
            raise ValueError(f"patterns: the {P} patterns are linearly dependent (rank "
                             f"{rank}); pseudo_inverse needs independent patterns")
        gram = scipy.linalg.cho_factor(xi @ xi.T)
        W = xi.T @ scipy.linalg.cho_solve(gram, xi)
        W = 0.5 * (W + W.T)  # exact symmetry, despite the rounding of the solve
        W = np.where(_write_mask(mask, diagonal), W, 0.0)
        return {"W": W - W0}, state

    return Rule(name="pseudo_inverse", hparams={"diagonal": diagonal}, update=update,
                requires=_PATTERNS)
