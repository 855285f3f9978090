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
    Patterns,
    PatternSet,
    Perturbations,
    Perturbed,
    Phases,
    Spikes,
    SpikeTrains,
    TwoPhase,
    WakeSleep,
)
from .boltzmann_learning import boltzmann
from .hebbian import anti_hebbian, bcm, covariance, hebbian, intrinsic_plasticity, oja
from .ngrad import contrastive_hebbian, equilibrium_propagation, generec
from .perturbation import node_perturbation, weight_perturbation
from .reference import bptt
from .stdp import stdp
from .rule import Rule, apply_updates
from .storage import pseudo_inverse, storkey
from .transforms import (
    adam,
    clip,
    heterosynaptic_cap,
    masked_by,
    normalize_rows,
    scale,
    sign,
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
    "sign",
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
    "Patterns",
    "WakeSleep",
    "Evidence",
    "PatternSet",
    "Phases",
    "SpikeTrains",
    "ActivityTrace",
    "Perturbations",
    "bptt",
    "stdp",
    "weight_perturbation",
    "node_perturbation",
    "hebbian",
    "anti_hebbian",
    "oja",
    "bcm",
    "covariance",
    "intrinsic_plasticity",
    "storkey",
    "pseudo_inverse",
    "boltzmann",
    "equilibrium_propagation",
    "contrastive_hebbian",
    "generec",
]
