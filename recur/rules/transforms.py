"""Transforms: rules that reshape updates (``requires=None``).

Each takes the updates an estimator produced and returns new ones; the ones that keep weights
within bounds (``normalize_rows``, ``heterosynaptic_cap``) are written as the update that moves
the weights onto the bound, so they still compose and are still applied in one place.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..masked import edge_rows, values, with_values
from ..validation import check_positive
from .rule import Rule, tree_map

__all__ = [
    "scale",
    "adam",
    "clip",
    "weight_decay",
    "masked_by",
    "symmetrize",
    "normalize_rows",
    "heterosynaptic_cap",
    "sign",
]


def _names(names):
    """A bare string names one parameter (not a sequence of one-letter names)."""
    return (names,) if isinstance(names, str) else tuple(names)


def _transform(name, hparams, fn, init=None):
    def update(updates, state, params, *, rng=None):
        return fn(updates, params), state

    kw = {"init": init} if init is not None else {}
    return Rule(name=name, hparams=hparams, update=update, requires=None, **kw)


def scale(step):
    """Multiply every update by ``step`` (the learning rate)."""
    if isinstance(step, bool) or not isinstance(step, (int, float, np.number)) \
            or not np.isfinite(step):
        raise TypeError(f"step must be a finite real number, got {step!r}")

    def scaled(updates, params):
        # tree_map's work with the common dense case written out (a learning rate is
        # applied to every update of every epoch).
        return {name: u * step if type(u) is np.ndarray else with_values(u, values(u) * step)
                for name, u in updates.items()}

    return _transform("scale", {"step": step}, scaled)


def adam(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    r"""Adam: scale each update coordinate by running moments of the updates (Kingma & Ba 2015).

    With :math:`d_k` the improvement direction an estimator proposed at step :math:`k`,

    .. math::

        m_k = b_1 m_{k-1} + (1 - b_1) d_k, \quad v_k = b_2 v_{k-1} + (1 - b_2) d_k^2, \quad
        \Delta_k = \eta\, \frac{m_k / (1 - b_1^k)}{\sqrt{v_k / (1 - b_2^k)} + \epsilon}

    It makes step sizes comparable across rules whose estimates differ in scale (a
    perturbation estimate is noisier and larger than the exact gradient), so rules can be
    compared at one learning rate. The moments live in the rule state, one array per
    parameter value array (sparse weights keep their structure).
    """
    check_positive(learning_rate, "learning_rate")
    for value, label in ((b1, "b1"), (b2, "b2")):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{label} must lie in [0, 1), got {value!r}")
    check_positive(eps, "eps")

    def init(params):
        return {"count": 0, "m": {}, "v": {}}

    def update(updates, state, params, *, rng=None):
        count = state["count"] + 1
        m, v = dict(state["m"]), dict(state["v"])
        out = {}
        for name, u in updates.items():
            d = values(u)
            m[name] = b1 * m.get(name, 0.0) + (1.0 - b1) * d
            v[name] = b2 * v.get(name, 0.0) + (1.0 - b2) * d * d
            m_hat = m[name] / (1.0 - b1**count)
            v_hat = v[name] / (1.0 - b2**count)
            out[name] = with_values(u, learning_rate * m_hat / (np.sqrt(v_hat) + eps))
        return out, {"count": count, "m": m, "v": v}

    return Rule(name="adam", hparams={"learning_rate": learning_rate, "b1": b1, "b2": b2,
                                      "eps": eps},
                init=init, update=update, requires=None)


def clip(max_norm):
    r"""Rescale the updates so their global norm :math:`\sqrt{\sum \|u\|^2}` is at most
    ``max_norm``."""
    check_positive(max_norm, "max_norm")

    def fn(updates, params):
        norm = np.sqrt(sum(float(np.sum(values(u) ** 2)) for u in updates.values()))
        if norm <= max_norm:
            return updates
        return tree_map(lambda u: u * (max_norm / norm), updates)

    return _transform("clip", {"max_norm": max_norm}, fn)


def weight_decay(rate):
    """Add ``-rate * p`` to the update of every parameter ``p`` that has one."""
    check_positive(rate, "rate", strict=False)
    return _transform("weight_decay", {"rate": rate},
                      lambda updates, params: tree_map(lambda u, p: u - rate * p, updates,
                                                       params))


def _mask_values(mask, like, name):
    """Boolean array over ``like``'s stored values."""
    if sp.issparse(like):
        if sp.issparse(mask):
            m = sp.csr_array(mask, dtype=bool)
            picked = np.asarray(m[edge_rows(like), like.indices]).ravel()
            return picked.astype(bool)
        m = np.asarray(mask, dtype=bool)
        if m.shape != like.shape:
            raise ValueError(f"mask for {name!r} has shape {m.shape}, parameter has {like.shape}")
        return m[edge_rows(like), like.indices]
    m = np.asarray(mask.toarray() if sp.issparse(mask) else mask, dtype=bool)
    if m.shape != np.shape(like):
        raise ValueError(f"mask for {name!r} has shape {m.shape}, parameter has {np.shape(like)}")
    return m


def masked_by(mask):
    """Keep updates only where ``mask`` is True.

    ``mask`` is a dict ``{name: boolean array (or sparse matrix) of the parameter's shape}``;
    parameters it does not name are left untouched. A collection of names instead keeps
    the updates of those parameters only (the others are frozen).
    """
    if not isinstance(mask, dict):
        keep = set(_names(mask))

        def fn(updates, params):
            return {k: u for k, u in updates.items() if k in keep}

        return _transform("masked_by", {"keep": tuple(sorted(keep))}, fn)

    def fn(updates, params):
        out = dict(updates)
        for name, m in mask.items():
            if name in updates:
                sel = _mask_values(m, updates[name], name)
                out[name] = with_values(updates[name], np.where(sel, values(updates[name]), 0.0))
        return out

    return _transform("masked_by", {"params": tuple(sorted(mask))}, fn)


def _transpose_values(u):
    """Values of ``u.T`` read at ``u``'s own structure (structure must be symmetric)."""
    if not sp.issparse(u):
        return np.asarray(u).T
    t = sp.csr_array(u.T)
    t.sort_indices()
    s = u if u.has_sorted_indices else sp.csr_array(u, copy=True)
    s.sort_indices()
    if not (np.array_equal(t.indptr, s.indptr) and np.array_equal(t.indices, s.indices)):
        raise ValueError("symmetrize needs a symmetric structure (an undirected graph)")
    return t.data


def symmetrize(names=("W",)):
    """Replace each named square update by ``(U + U^T) / 2``, keeping its structure."""
    names = _names(names)

    def fn(updates, params):
        out = dict(updates)
        for name in names:
            if name in updates:
                u = updates[name]
                out[name] = with_values(u, 0.5 * (values(u) + _transpose_values(u)))
        return out

    return _transform("symmetrize", {"names": names}, fn)


def _row_sums(p, fn):
    if sp.issparse(p):
        return np.bincount(edge_rows(p), weights=fn(p.data), minlength=p.shape[0])
    return fn(np.asarray(p)).sum(axis=1)


def normalize_rows(names=("W",), norm=2):
    r"""Keep the norm of every unit's incoming weights (each row of W) where it was.

    The update ``u`` becomes ``W' - W`` with
    :math:`W'_{i\cdot} = (W + u)_{i\cdot}\, \|W_{i\cdot}\| / \|(W + u)_{i\cdot}\|`:
    growth of some weights is paid for by the others (Oja's rule in its explicit form).
    """
    if norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    power = (lambda v: v**2) if norm == 2 else np.abs
    root = np.sqrt if norm == 2 else (lambda v: v)
    names = _names(names)

    def fn(updates, params):
        out = dict(updates)
        for name in names:
            if name not in updates:
                continue
            p, u = params[name], updates[name]
            new = with_values(p, values(p) + values(u))
            before = root(_row_sums(p, power))
            after = root(_row_sums(new, power))
            factor = np.where(after > 0, before / np.where(after > 0, after, 1.0), 1.0)
            row = edge_rows(p) if sp.issparse(p) else (slice(None), None)
            scaled = values(new) * (factor[row] if sp.issparse(p) else factor[:, None])
            out[name] = with_values(u, scaled - values(p))
        return out

    return _transform("normalize_rows", {"names": names, "norm": norm}, fn)


def heterosynaptic_cap(max_in=None, max_out=None, names=("W",)):
    r"""Cap each unit's summed input and output weight (Fiete et al. 2010).

    After the update, a unit whose incoming weights sum to more than ``max_in`` has them
    scaled down to ``max_in``; then a unit whose outgoing weights sum to more than ``max_out``
    has those scaled down. Weights are assumed non-negative (excitatory). The update becomes
    the change that lands the weights on the capped values.
    """
    if max_in is None and max_out is None:
        raise ValueError("heterosynaptic_cap needs max_in, max_out or both")
    for value, label in ((max_in, "max_in"), (max_out, "max_out")):
        if value is not None:
            check_positive(value, label)
    names = _names(names)

    def cap(W):
        W = sp.csr_array(W, copy=True) if sp.issparse(W) else np.array(W, dtype=float)
        if max_in is not None:
            s = _row_sums(W, lambda v: v)
            f = np.where(s > max_in, max_in / np.where(s > 0, s, 1.0), 1.0)
            if sp.issparse(W):
                W.data = W.data * f[edge_rows(W)]
            else:
                W = W * f[:, None]
        if max_out is not None:
            col = np.bincount(W.indices, weights=W.data, minlength=W.shape[1]) if sp.issparse(W) \
                else W.sum(axis=0)
            f = np.where(col > max_out, max_out / np.where(col > 0, col, 1.0), 1.0)
            if sp.issparse(W):
                W.data = W.data * f[W.indices]
            else:
                W = W * f[None, :]
        return W

    def fn(updates, params):
        out = dict(updates)
        for name in names:
            if name in updates:
                p, u = params[name], updates[name]
                capped = cap(with_values(p, values(p) + values(u)))
                out[name] = with_values(u, values(capped) - values(p))
        return out

    return _transform("heterosynaptic_cap", {"max_in": max_in, "max_out": max_out,
                                             "names": names}, fn)


def sign(step):
    r"""Replace every update by a fixed step in its direction: :math:`\Delta = \eta\,
    \operatorname{sign}(u)` (0 where ``u`` is 0).

    The "Manhattan" update Ackley, Hinton & Sejnowski (1985) used for Boltzmann learning
    (:math:`\Delta w_{ij} = \pm 2` by the sign of :math:`p^+_{ij} - p^-_{ij}`): only the
    direction of a noisy estimate is trusted, not its size. Structure (sparse or dense) is
    kept.
    """
    if isinstance(step, bool) or not isinstance(step, (int, float, np.number)) \
            or not np.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a finite number > 0, got {step!r}")
    return _transform("sign", {"step": step},
                      lambda updates, params: tree_map(lambda u: step * np.sign(u), updates))
