"""The evidence vocabulary: what a learning rule asks a network to collect, and what comes back.

A rule names the evidence it needs through ``Rule.requires`` (one request or a tuple of them).
The network, which knows its own dynamics, runs whatever that takes (its perturbed copies, its
free and nudged phases, its backward pass) and returns an :class:`Evidence`. Rules then do
network-agnostic arithmetic on it. Networks and rules both import this module and nothing
else of each other.

Requests are frozen (hashable) dataclasses; an :class:`Evidence` maps each request to its
result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..validation import check_positive

__all__ = [
    "Activity",
    "Spikes",
    "TwoPhase",
    "Perturbed",
    "Gradient",
    "Patterns",
    "WakeSleep",
    "Evidence",
    "ActivityTrace",
    "Perturbations",
    "PatternSet",
    "Phases",
    "SpikeTrains",
    "as_requests",
]


# -- requests ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Activity:
    """Pre- and postsynaptic activity of every weight, one row per time step and sequence."""


@dataclass(frozen=True)
class Spikes:
    """Spike trains (unit, time) of a spiking network, for spike-timing rules."""


@dataclass(frozen=True)
class TwoPhase:
    """States of a free phase and of a nudged (``beta``) or clamped phase.

    Parameters
    ----------
    beta : float
        Nudging strength; ignored when ``clamp``.
    clamp : bool
        Clamp the outputs to their targets instead of nudging them.
    symmetric : bool
        Also run a ``-beta`` phase (symmetric nudging, Laborieux et al. 2021).
    """

    beta: float = 0.1
    clamp: bool = False
    symmetric: bool = False

    def __post_init__(self):
        check_positive(self.beta, "beta")


@dataclass(frozen=True)
class Perturbed:
    """Losses of randomly perturbed copies of the network, and the perturbations' traces.

    Parameters
    ----------
    sigma : float > 0
        Standard deviation of the Gaussian perturbations.
    n_samples : int >= 1
        Number of perturbations ``K`` (pairs, when antithetic), run as one batch.
    where : {"weights", "nodes"}
        Perturb weight values directly, or the input (pre-activation) of every unit at every
        step, output units included.
    antithetic : bool
        Run each perturbation with both signs.
    clean : bool
        Also run the unperturbed network, for an exact reward baseline.
    params : tuple of str or None
        Names of the parameters to perturb (None: every trainable parameter). With
        ``where="weights"`` only these parameters' values are perturbed (the others run
        unperturbed); with ``where="nodes"`` the network injects noise only into the units
        these parameters feed (for an ESN: the recurrent units when any of ``"W"``,
        ``"W_in"``, ``"b"`` is listed, the outputs when ``"W_out"`` or ``"b_out"`` is). Either
        way the eligibility holds only these names. The network checks the names (an unknown
        one raises ``ValueError``).
    """

    sigma: float
    n_samples: int = 16
    where: str = "weights"
    antithetic: bool = True
    clean: bool = True
    params: tuple | None = None

    def __post_init__(self):
        check_positive(self.sigma, "sigma")
        check_positive(self.n_samples, "n_samples", integer=True)
        if self.where not in ("weights", "nodes"):
            raise ValueError(f"where must be 'weights' or 'nodes', got {self.where!r}")
        if self.params is not None:
            if not isinstance(self.params, tuple) or not all(
                    isinstance(n, str) for n in self.params):
                raise TypeError(f"params must be None or a tuple of parameter names, got "
                                f"{self.params!r}")
            if not self.params:
                raise ValueError("params must name at least one parameter (None: all)")
            if len(set(self.params)) != len(self.params):
                raise ValueError(f"params names a parameter twice: {self.params!r}")

    def selected(self, available) -> tuple:
        """The names of ``available`` to perturb, in ``available``'s order.

        Raises ``ValueError`` naming any requested parameter that ``available`` lacks.
        """
        available = tuple(available)
        if self.params is None:
            return available
        unknown = [n for n in self.params if n not in available]
        if unknown:
            raise ValueError(f"cannot perturb unknown parameter(s) {unknown}; the network's "
                             f"parameters are {list(available)}")
        return tuple(n for n in available if n in self.params)


@dataclass(frozen=True)
class Gradient:
    """The exact gradient of the network's loss with respect to every parameter."""


@dataclass(frozen=True)
class Patterns:
    """The patterns a memory network is asked to store (Hopfield storage rules)."""


WAKE_SLEEP_MODES = ("chl", "cd", "mean_field")


@dataclass(frozen=True)
class WakeSleep:
    """Statistics of a stochastic network clamped to data (wake) and running freely (sleep).

    Parameters
    ----------
    mode : {"chl", "cd", "mean_field"}
        ``"chl"``: the sleep phase samples the free-running network at equilibrium (annealed
        Gibbs sampling, Ackley, Hinton & Sejnowski 1985). ``"cd"``: the sleep phase is ``k``
        Gibbs steps started at the data (contrastive divergence, Hinton 2002), or at chains
        kept from the previous update when ``persistent``. ``"mean_field"``: both phases are
        deterministic mean-field fixed points (Peterson & Anderson 1987).
    k : int >= 1
        Gibbs steps (full sweeps) of the sleep phase in ``"cd"`` mode.
    persistent : bool
        Keep the sleep chains in the network state between updates (persistent CD).
    n_chains : int or None
        Sleep chains for ``"chl"`` and persistent ``"cd"`` (None: one per data row).
    """

    mode: str = "chl"
    k: int = 1
    persistent: bool = False
    n_chains: int | None = None

    def __post_init__(self):
        if self.mode not in WAKE_SLEEP_MODES:
            raise ValueError(f"mode must be one of {WAKE_SLEEP_MODES}, got {self.mode!r}")
        check_positive(self.k, "k", integer=True)
        if self.n_chains is not None:
            check_positive(self.n_chains, "n_chains", integer=True)
        if self.persistent and self.mode == "mean_field":
            raise ValueError("persistent chains need a sampled sleep phase (mode 'chl' or "
                             "'cd'), not 'mean_field'")


REQUEST_TYPES = (Activity, Spikes, TwoPhase, Perturbed, Gradient, Patterns, WakeSleep)


def as_requests(requires) -> tuple:
    """Normalise ``None``, one request or a nested tuple of requests to a flat unique tuple."""
    if requires is None:
        return ()
    if isinstance(requires, REQUEST_TYPES):
        return (requires,)
    if type(requires) is tuple and len(requires) == 1 and isinstance(requires[0], REQUEST_TYPES):
        return requires  # what Rule.requests hands back: already flat
    out = []
    for item in requires:
        for req in as_requests(item):
            if req not in out:
                out.append(req)
    return tuple(out)


# -- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivityTrace:
    """Activity on both sides of each weight.

    Attributes
    ----------
    pre : dict of str to ndarray, shape (S, n_pre)
        Presynaptic activity seen by parameter ``name`` at each of ``S`` samples (time steps,
        flattened over sequences); for a bias, a column of ones.
    post : dict of str to ndarray, shape (S, n_post)
        Postsynaptic activity that the same samples produced.
    target : ndarray, shape (S, n_out) or None
        What the output units should have produced (teacher signal), where there is one.
    preactivation : ndarray, shape (S, N) or None
        Net input ``z`` of the recurrent units whose rate is ``f(z)`` (for intrinsic
        plasticity).
    masks : dict of str to bool ndarray
        Connection masks of weight matrices stored dense, so that a rule's update of such a
        matrix stays on the graph (a sparse matrix carries its structure itself).
    moments : dict of str to ndarray
        ``mean over samples of post pre^T`` for parameter ``name``, in the parameter's shape
        (a bias's is the mean of ``post``) and zero off ``masks[name]``, when the network
        computed it along with the samples (a sampler's sufficient statistics, from the same
        pass that drew them). Rules that need only these means use them instead of
        recomputing them from ``pre`` and ``post``; absent names are computed as usual.
    """

    pre: Mapping[str, np.ndarray]
    post: Mapping[str, np.ndarray]
    target: np.ndarray | None = None
    preactivation: np.ndarray | None = None
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    moments: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Perturbations:
    r"""Perturbed runs and the eligibility each perturbation leaves on each parameter.

    For weight perturbation the eligibility of perturbation ``k`` on a parameter is the
    perturbation itself, :math:`\epsilon_k`. For node perturbation it is
    :math:`\sum_t \xi_{k,t} \otimes \mathrm{pre}_t`: the noise injected into each
    postsynaptic unit times the presynaptic activity of the unperturbed run, summed over the
    trial (an eligibility trace). For weights, :math:`L_k - L_0 = \langle \nabla L,
    \epsilon_k \rangle + O(\sigma^2)`; for nodes, :math:`L_k - L_0 \approx \sum_t \langle
    \partial L / \partial z_t, \xi_{k,t} \rangle + \langle \partial L / \partial \hat y_t,
    \zeta_{k,t} \rangle`. In both cases :math:`\mathbb E[(L_k - L_0)\, e_k] = \sigma^2
    \nabla L + O(\sigma^4)`, which is what the perturbation rules rely on.

    Attributes
    ----------
    sigma : float
    eligibility : dict of str to ndarray, shape (K, *value_shape)
        ``value_shape`` is the parameter's shape, or ``(nnz,)`` for a sparse matrix (values in
        storage order).
    losses : ndarray, shape (K,)
        Loss of each perturbed run (the ``+`` runs when antithetic).
    losses_minus : ndarray, shape (K,) or None
        Loss of each mirrored run, when antithetic.
    loss_clean : float or None
        Loss of the unperturbed run, when requested.
    """

    sigma: float
    eligibility: Mapping[str, np.ndarray]
    losses: np.ndarray
    losses_minus: np.ndarray | None = None
    loss_clean: float | None = None


@dataclass(frozen=True)
class PatternSet:
    """Patterns to store in a memory network.

    Attributes
    ----------
    patterns : ndarray, shape (P, N)
        One +-1 pattern per row.
    mask : bool ndarray, shape (N, N)
        Connections the network has (``mask[post, pre]``, symmetric, zero diagonal); a storage
        rule writes nothing outside it except, if its diagonal policy says so, the diagonal.
    """

    patterns: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Phases:
    """Activity of a network in two phases whose difference carries the error (NGRAD rules).

    Each phase is an :class:`ActivityTrace` (pre and post activity per parameter, one row per
    sample). For equilibrium propagation ``free`` is the free fixed point and ``nudged`` the
    fixed point nudged toward the target with strength ``beta`` (``nudged_minus`` the one
    nudged with ``-beta``, when symmetric). For a clamped phase (contrastive Hebbian learning,
    GeneRec, a Boltzmann machine's wake phase) ``nudged`` holds the clamped phase (clamping is
    nudging in the limit of infinite ``beta``) and ``beta`` is None; for a Boltzmann machine
    ``free`` holds the sleep (free-running) statistics.
    """

    free: ActivityTrace
    nudged: ActivityTrace
    nudged_minus: ActivityTrace | None = None
    beta: float | None = None


@dataclass(frozen=True)
class SpikeTrains:
    """Spikes a network emitted, on its simulation grid, for spike-timing rules.

    Attributes
    ----------
    units : int ndarray, shape (S,)
        Unit of each spike.
    steps : int ndarray, shape (S,)
        Time step of each spike (time ``steps * dt``), in ascending order.
    n_units : int
    n_steps : int
        Length of the simulation the spikes come from.
    dt : float
        Time step, in ms.
    trials : int ndarray, shape (S,), or None
        Trial of each spike when several independent trials ran at once (each trial's
        spikes interact only with spikes of the same trial).
    masks : dict of str to bool ndarray
        Connections (``mask[post, pre]``) a rule may change, per weight parameter.
    """

    units: np.ndarray
    steps: np.ndarray
    n_units: int
    n_steps: int
    dt: float
    trials: np.ndarray | None = None
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """What a network collected for a rule.

    Attributes
    ----------
    loss : float
        Loss of the current parameters on the data (before any update).
    results : mapping of request to result
    state : any
        The network state at the end of the data, threaded into the next collection.
    """

    loss: float
    results: Mapping[Any, Any] = field(default_factory=dict)
    state: Any = None

    def __getitem__(self, request):
        try:
            return self.results[request]
        except KeyError:
            raise KeyError(f"no evidence was collected for {request!r}") from None
