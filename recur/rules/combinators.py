"""Composition of rules: ``chain`` (an estimator followed by transforms), ``add`` (sum of
estimators), ``partition`` (a different rule for each parameter)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .rule import Rule, tree_add

__all__ = ["chain", "add", "partition"]


def _check_rules(rules, what):
    if not rules:
        raise ValueError(f"{what} needs at least one rule")
    for r in rules:
        if not isinstance(r, Rule):
            raise TypeError(f"{what} takes Rule objects, got {type(r).__name__}")


def _streams(rng, n):
    """One generator shared, in turn, by the ``n`` members of a combination.

    Members draw one after another from the same stream: independent draws, reproducible for
    a seed, and without :meth:`~numpy.random.Generator.spawn`, which costs more than a small
    network's whole update.
    """
    return [np.random.default_rng(rng)] * n


def chain(*rules):
    """Run an estimator, then each transform on its updates, in order.

    ``chain(node_perturbation(...), clip(1.0), scale(0.05))``. At most one estimator, and it
    comes first; a chain of transforms only is itself a transform.
    """
    _check_rules(rules, "chain")
    estimators = [r for r in rules if not r.is_transform]
    if len(estimators) > 1 or (estimators and rules[0].is_transform):
        raise ValueError("chain takes at most one estimator, in first position; combine "
                         "estimators with add(...) and chain the sum")

    def init(params):
        return tuple(r.init(params) for r in rules)

    def update(x, state, params, *, rng=None):
        new_state = []
        for r, s, g in zip(rules, state, _streams(rng, len(rules))):
            x, s = r.update(x, s, params, rng=g)
            new_state.append(s)
        return x, tuple(new_state)

    return Rule(name="chain(" + ", ".join(r.name for r in rules) + ")",
                hparams={"rules": tuple((r.name, dict(r.hparams)) for r in rules)},
                init=init, update=update,
                requires=estimators[0].requires if estimators else None)


def add(*rules):
    """Sum of the updates of several estimators (each sees the same evidence)."""
    _check_rules(rules, "add")
    if any(r.is_transform for r in rules):
        raise ValueError("add sums estimators; apply transforms with chain")

    def init(params):
        return tuple(r.init(params) for r in rules)

    def update(evidence, state, params, *, rng=None):
        total, new_state = {}, []
        for r, s, g in zip(rules, state, _streams(rng, len(rules))):
            u, s = r.update(evidence, s, params, rng=g)
            total = tree_add(total, u)
            new_state.append(s)
        return total, tuple(new_state)

    return Rule(name="add(" + ", ".join(r.name for r in rules) + ")",
                hparams={"rules": tuple((r.name, dict(r.hparams)) for r in rules)},
                init=init, update=update,
                requires=tuple(req for r in rules for req in r.requests))


def partition(rules):
    """A different rule for each parameter: ``partition({"W": hebbian(), "W_out": bptt()})``.

    Keys are parameter names or tuples of names. Each rule sees the parameters of its part
    only and its updates are kept for those only.
    """
    if not isinstance(rules, Mapping) or not rules:
        raise TypeError("partition takes a non-empty dict of parameter name(s) to Rule")
    parts = []
    for key, rule in rules.items():
        names = (key,) if isinstance(key, str) else tuple(key)
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError(f"partition keys must be parameter names, got {key!r}")
        parts.append((names, rule))
    _check_rules([r for _, r in parts], "partition")
    owners = [n for names, _ in parts for n in names]
    if len(owners) != len(set(owners)):
        raise ValueError("partition names a parameter in more than one part")
    kinds = {r.is_transform for _, r in parts}
    if len(kinds) > 1:
        raise ValueError("partition mixes estimators and transforms; partition each kind "
                         "separately and chain them")

    def init(params):
        unknown = sorted(set(owners) - set(params))
        if unknown:
            raise KeyError(f"partition names parameters the network does not have: {unknown}; "
                           f"it has {sorted(params)}")
        return tuple(r.init({n: params[n] for n in names}) for names, r in parts)

    def update(x, state, params, *, rng=None):
        total, new_state = {}, []
        for (names, r), s, g in zip(parts, state, _streams(rng, len(parts))):
            sub = {n: params[n] for n in names}
            arg = {n: x[n] for n in names if n in x} if kinds == {True} else x
            u, s = r.update(arg, s, sub, rng=g)
            total.update({n: u[n] for n in names if n in u})
            new_state.append(s)
        return total, tuple(new_state)

    return Rule(name="partition(" + ", ".join(f"{'+'.join(n)}: {r.name}" for n, r in parts) + ")",
                hparams={"parts": tuple(("+".join(n), r.name, dict(r.hparams)) for n, r in parts)},
                init=init, update=update,
                requires=None if kinds == {True} else tuple(q for _, r in parts for q in r.requests))
