"""The Rule object and the one place where updates are applied.

A rule computes a change; it never applies it (optax's shape). Estimators turn evidence into an
improvement direction, a dict ``{name: delta}`` with the structure of the parameters it touches;
transforms reshape such a dict; :func:`apply_updates` adds it to the parameters, returning new
ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import scipy.sparse as sp

from ..masked import values, with_values
from .evidence import as_requests

__all__ = ["Rule", "apply_updates", "tree_map", "tree_add", "tree_vdot"]


def _no_state(params):
    """The state of a rule that keeps none."""
    return None


@dataclass(frozen=True, eq=False)
class Rule:
    """A learning rule or a transform of updates.

    Attributes
    ----------
    name : str
        Short name, logged with every result (``"node_perturbation"``).
    hparams : mapping
        Hyperparameters as given, logged with every result.
    init : callable ``params -> state``
        The rule's own state (running baselines, traces, sliding thresholds).
    update : callable ``(evidence_or_updates, state, params, *, rng) -> (updates, state)``
        For an estimator the first argument is an :class:`~recur.rules.evidence.Evidence`;
        for a transform it is the updates to reshape.
    requires : request, tuple of requests, or None
        Evidence an estimator needs; ``None`` marks a transform.
    """

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    init: Callable = _no_state
    update: Callable = None
    requires: Any = None

    @property
    def is_transform(self) -> bool:
        return self.requires is None

    @property
    def requests(self) -> tuple:
        """``requires`` as a flat tuple."""
        return as_requests(self.requires)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{self.name}({args})"


def apply_updates(params, updates):
    """Return ``params + updates``, leaving both untouched.

    A sparse weight matrix must receive an update with exactly its structure (the rules in
    recur produce those), so an update can never create a connection the graph lacks.

    Parameters
    ----------
    params : dict of str to array
    updates : dict of str to array
        Keys must be a subset of ``params``'s.
    """
    new = dict(params)
    for name, delta in updates.items():
        p = params.get(name)
        if p is None:
            unknown = sorted(set(updates) - set(params))
            raise KeyError(f"updates name parameters the network does not have: {unknown}")
        if type(p) is np.ndarray and type(delta) is np.ndarray and p.dtype == delta.dtype:
            if delta.shape != p.shape:
                raise ValueError(f"update of {name!r} has shape {delta.shape}, parameter has "
                                 f"{p.shape}")
            new[name] = p + delta
            continue
        if sp.issparse(p):
            if not sp.issparse(delta) or delta.nnz != p.nnz or not (
                np.array_equal(delta.indptr, p.indptr) and np.array_equal(delta.indices, p.indices)
            ):
                raise ValueError(f"the update of sparse parameter {name!r} must have its exact "
                                 "structure (an update may not write off the graph)")
            new[name] = with_values(p, (p.data + delta.data).astype(p.dtype, copy=False))
        else:
            d = np.asarray(delta)
            if d.shape != np.shape(p):
                raise ValueError(f"update of {name!r} has shape {d.shape}, parameter has "
                                 f"{np.shape(p)}")
            new[name] = (p + d).astype(np.asarray(p).dtype, copy=False)
    return new


def tree_map(fn, updates, *rest):
    """Apply ``fn`` to the value arrays of every update (and matching entries of ``rest``)."""
    out = {}
    for name, u in updates.items():
        args = [values(r[name]) for r in rest] if rest else ()
        if type(u) is np.ndarray:
            # A dense update keeps its shape (the common case, without the sparse checks).
            r = fn(u, *args)
            out[name] = r if type(r) is np.ndarray and r.shape == u.shape else \
                np.reshape(r, u.shape)
        else:
            out[name] = with_values(u, fn(values(u), *args))
    return out


def tree_add(a, b):
    """Sum of two update dicts; keys in only one of them are kept as they are."""
    out = dict(a)
    for name, u in b.items():
        out[name] = with_values(u, values(out[name]) + values(u)) if name in out else u
    return out


def tree_vdot(a, b) -> float:
    """Inner product of two update dicts over their shared keys."""
    return float(sum(np.vdot(values(a[k]), values(b[k])) for k in a if k in b))
