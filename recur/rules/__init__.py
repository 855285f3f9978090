"""Learning rules as small ``(init, update)`` objects, their evidence, and their composition.

Estimators turn evidence a network collected into an improvement direction; transforms reshape
updates; ``chain``, ``add`` and ``partition`` compose them; :func:`apply_updates` is the one
place updates meet parameters.
"""

from .combinators import add, chain, partition
from .evidence import (
    Activity,
    ActivityTrace,
    Evidence,
    Gradient,
    Perturbations,
    Perturbed,
    Spikes,
    TwoPhase,
)
from .hebbian import anti_hebbian, bcm, covariance, hebbian, intrinsic_plasticity, oja
from .perturbation import node_perturbation, weight_perturbation
from .reference import bptt
from .rule import Rule, apply_updates
from .transforms import (
    adam,
    clip,
    heterosynaptic_cap,
    masked_by,
    normalize_rows,
    scale,
    symmetrize,
    weight_decay,
)

__all__ = [
    "Rule",
    "apply_updates",
    "chain",
    "add",
    "partition",
    "scale",
    "adam",
    "clip",
    "weight_decay",
    "masked_by",
    "symmetrize",
    "normalize_rows",
    "heterosynaptic_cap",
    "Activity",
    "Spikes",
    "TwoPhase",
    "Perturbed",
    "Gradient",
    "Evidence",
    "ActivityTrace",
    "Perturbations",
    "bptt",
    "weight_perturbation",
    "node_perturbation",
    "hebbian",
    "anti_hebbian",
    "oja",
    "bcm",
    "covariance",
    "intrinsic_plasticity",
]
