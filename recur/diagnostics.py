r"""How vector-like is a rule's credit assignment? Its update held against the exact gradient.

:func:`alignment` asks a network for the evidence a rule needs together with the exact
gradient (:class:`~recur.rules.Gradient`, backpropagation through time on an ESN), lets the
rule make one update from a fresh state, and compares it with the steepest-descent direction
:math:`-\nabla L`, per parameter and over all the parameters the rule changed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from .masked import edge_rows
from .rules.evidence import Gradient
from .rules.rule import Rule
from .validation import check_positive

__all__ = ["alignment", "alignment_table"]

ALL = "all"
_STATS = ("mean", "std", "median")


def _flat(a, like) -> np.ndarray:
    """Values of ``a`` on the storage of parameter ``like``, as a flat float64 vector.

    A sparse parameter is read at its own edges (in storage order) whatever form ``a`` takes
    (CSR of the same structure, CSR of another, or dense), so an update and a gradient are
    always compared entry for entry.
    """
    if sp.issparse(like):
        if sp.issparse(a):
            a = sp.csr_array(a)
            if (a.nnz == like.nnz and np.array_equal(a.indptr, like.indptr)
                    and np.array_equal(a.indices, like.indices)):
                return np.asarray(a.data, dtype=np.float64)
            return np.asarray(a[edge_rows(like), like.indices], dtype=np.float64).ravel()
        a = np.asarray(a)
        return np.asarray(a[edge_rows(like), like.indices], dtype=np.float64).ravel()
    a = a.toarray() if sp.issparse(a) else np.asarray(a)
    if a.shape != np.shape(like):
        raise ValueError(f"array of shape {a.shape} does not match the parameter's "
                         f"{np.shape(like)}")
    return a.astype(np.float64, copy=False).ravel()


def _compare(update, descent):
    """Cosine, norm ratio and a flag ("" when both are defined) for two flat vectors."""
    nu, nd = float(np.linalg.norm(update)), float(np.linalg.norm(descent))
    if not (np.isfinite(nu) and np.isfinite(nd)):
        return math.nan, math.nan, "not_finite"
    if nd == 0.0:
        return math.nan, math.nan, "zero_gradient"
    if nu == 0.0:
        return math.nan, 0.0, "zero_update"
    return float(np.dot(update, descent) / (nu * nd)), nu / nd, ""


def _summary(cosines, ratios, flags, size):
    cos, rat = np.asarray(cosines, dtype=float), np.asarray(ratios, dtype=float)
    out = {"cosine": cos, "norm_ratio": rat, "size": int(size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan slices give nan, quietly
        for key, arr in (("cosine", cos), ("norm_ratio", rat)):
            out[f"{key}_mean"] = float(np.nanmean(arr))
            out[f"{key}_std"] = float(np.nanstd(arr))
            out[f"{key}_median"] = float(np.nanmedian(arr))
    counts = {f: flags.count(f) for f in sorted(set(flags)) if f}
    out["n_valid"] = int(np.isfinite(cos).sum())
    out["flags"] = counts
    out["flag"] = ", ".join(f"{f} in {n}/{len(flags)} repeats" for f, n in counts.items())
    return out


def alignment(rule, net, params, data, *, repeats=10, rng=None, state=None) -> dict:
    r"""Cosine and norm ratio of a rule's update to the exact descent direction.

    For each of ``repeats`` independent draws, the network collects the rule's evidence and
    the exact gradient in one call, ``net.collect(params, data, rule.requests +
    (Gradient(),), rng=...)``; the rule makes one update :math:`\Delta` from a fresh state
    ``rule.init(params)``, and it is compared, for each parameter ``p`` it updated, with the
    steepest-descent direction :math:`d = -\nabla_p L`:

    .. math::

        \cos_p = \frac{\langle \Delta_p, d_p \rangle}{\|\Delta_p\|\, \|d_p\|}, \qquad
        \rho_p = \frac{\|\Delta_p\|}{\|d_p\|}

    (inner products and norms over the parameter's entries; a sparse ``W`` over its edges).
    The entry ``"all"`` does the same on all updated parameters concatenated. BPTT against
    itself gives :math:`\cos = \rho = 1`; an unbiased estimator with a finite number of
    samples gives :math:`\cos < 1` that grows with its number of samples, and the spread over
    repeats is its estimator variance. For a perturbation estimator with ``K`` samples of
    dimension :math:`D` (Gaussian, first order),

    .. math::

        \mathbb E\,\|\hat g\|^2 \approx \|g\|^2 \left(1 + \frac{D + 1}{K}\right)
        \quad\Rightarrow\quad \cos \approx \sqrt{\frac{K}{K + D + 1}}.

    The norm ratio includes whatever scale the rule carries (a chained ``scale(eta)``
    gives :math:`\rho = \eta` for BPTT), so pass the bare estimator to read the direction
    and its variance, the chain to read the step actually taken.

    Parameters
    ----------
    rule : Rule
        An estimator, possibly chained with transforms (not a transform alone).
    net : network
        Anything whose ``collect`` provides the rule's evidence and :class:`Gradient`.
    params : dict
    data : objective or (inputs, targets)
    repeats : int >= 1
        Independent draws of the evidence and of the rule's randomness.
    rng : None, int or Generator
    state : array, optional
        Initial network state, passed to ``collect``.

    Returns
    -------
    dict
        One entry per parameter the rule updated, and ``"all"``. Each is a dict with
        ``cosine`` and ``norm_ratio`` (arrays over repeats), their ``_mean``, ``_std`` and
        ``_median`` (over the repeats where they are defined), ``size`` (entries compared),
        ``n_valid`` (repeats with a defined cosine), ``flags`` (``{reason: count}``) and
        ``flag`` (the same as text, "" when every repeat was defined). The reasons are
        ``"zero_update"`` (the rule left the parameter unchanged: cosine nan, ratio 0),
        ``"zero_gradient"`` (the exact gradient is zero: both nan) and ``"not_finite"``.

    Raises
    ------
    TypeError
        When ``rule`` is not a Rule.
    ValueError
        When ``rule`` is a transform, or a parameter is named ``"all"``.
    KeyError
        When the rule updates a parameter the network has no gradient for.
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a recur Rule, got {type(rule).__name__}")
    if rule.is_transform:
        raise ValueError(f"{rule.name} is a transform: it has no evidence to estimate from; "
                         "chain it after an estimator")
    check_positive(repeats, "repeats", integer=True)
    if ALL in params:
        raise ValueError(f"a parameter named {ALL!r} would clash with the summary entry")
    rng = np.random.default_rng(rng)
    request = Gradient()
    requests = tuple(rule.requests) + (request,)
    draws = []  # (updates, descent) per repeat, flat per parameter
    names = []  # every parameter some repeat updated, in the parameters' order
    for g_collect, g_update in (rng.spawn(2) for _ in range(repeats)):
        evidence = net.collect(params, data, requests, state=state, rng=g_collect)
        grad = evidence[request]
        updates, _ = rule.update(evidence, rule.init(params), params, rng=g_update)
        unknown = sorted(set(updates) - set(params))
        if unknown:
            raise KeyError(f"the rule updates {unknown}, which the parameters do not hold")
        missing = sorted(set(updates) - set(grad))
        if missing:
            raise KeyError(f"the rule updates {missing}, for which {type(net).__name__} gave "
                           "no gradient")
        names += [n for n in params if n in updates and n not in names]
        descent = {n: -_flat(grad[n], params[n]) for n in grad if n in params}
        draws.append(({n: _flat(u, params[n]) for n, u in updates.items()}, descent))
    names = [n for n in params if n in names]
    rows = [*names, ALL]
    cos, rat, flags = ({n: [] for n in rows} for _ in range(3))
    for updates, descent in draws:
        # A parameter this draw left alone counts as a zero update (flagged).
        flat_u = [updates.get(n, np.zeros_like(descent[n])) for n in names]
        flat_d = [descent[n] for n in names]
        for name, u, d in zip(rows, [*flat_u, np.concatenate(flat_u or [[]])],
                              [*flat_d, np.concatenate(flat_d or [[]])]):
            c, r, f = _compare(u, d)
            if name == ALL and not names:
                f = "zero_update"
            cos[name].append(c)
            rat[name].append(r)
            flags[name].append(f)
    sizes = {n: draws[0][1][n].size for n in names}
    return {name: _summary(cos[name], rat[name], flags[name],
                           sizes[name] if name != ALL else sum(sizes.values()))
            for name in rows}


def _is_single(results):
    return isinstance(results, Mapping) and ALL in results and isinstance(results[ALL], Mapping) \
        and "cosine" in results[ALL]


def alignment_table(results, *, title=None) -> str:
    """A text table of :func:`alignment` results.

    Parameters
    ----------
    results : dict
        One :func:`alignment` result, or a dict ``{label: result}`` (one block of rows per
        label, e.g. per rule).
    title : str, optional

    Returns
    -------
    str
        One row per parameter (and ``all``): entries compared, median cosine, mean +- std
        over repeats, median norm ratio, and the flags.
    """
    blocks = {"": results} if _is_single(results) else dict(results)
    for label, res in blocks.items():
        if not _is_single(res):
            raise TypeError(f"alignment_table takes alignment() results; {label!r} is not one")
    width = max([len("rule")] + [len(str(k)) for k in blocks])
    header = (f"{'rule':<{width}}  {'param':<8} {'size':>7} {'cos median':>10} "
              f"{'cos mean +- std':>17} {'ratio median':>12}  flags")
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for label, res in blocks.items():
        for name, row in res.items():
            mean_std = f"{row['cosine_mean']:.3f} +- {row['cosine_std']:.3f}"
            lines.append(f"{str(label):<{width}}  {name:<8} {row['size']:>7d} "
                         f"{row['cosine_median']:>10.3f} {mean_std:>17} "
                         f"{row['norm_ratio_median']:>12.3g}  {row['flag']}")
    return "\n".join(lines)
