"""The exact reference every rule is measured against: backpropagation through time."""

from __future__ import annotations

from .evidence import Gradient
from .rule import Rule, tree_map

__all__ = ["bptt"]


def bptt():
    r"""Exact gradient descent direction, :math:`-\nabla_\theta L`.

    The network computes the gradient by its own backward pass (for the ESN, backpropagation
    through time over the teacher-forced or closed-loop trajectory, written out in numpy and
    checked against finite differences), so this rule is just the sign flip that makes it an
    improvement direction. Chain it with :func:`~recur.rules.scale` for a learning rate.

    Returns
    -------
    Rule
        ``requires = Gradient()``.
    """
    request = Gradient()

    def update(evidence, state, params, *, rng=None):
        return tree_map(lambda g: -g, dict(evidence[request])), state

    return Rule(name="bptt", hparams={}, update=update, requires=request)
