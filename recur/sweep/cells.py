"""What one grid cell computes: the registry of network kinds and tasks a sweep can name.

A sweep spec names a network kind (a key of :data:`NETWORKS`) and one or more tasks (keys of
:data:`TASKS`); every task says which network kind it runs on, which parameters it takes
(with types, ranges and defaults, :class:`Param`), which rules it accepts, and which metrics
it returns. Names resolve here and nowhere else: a spec cannot import or evaluate anything.

One cell is described by a *payload*, a plain JSON-able dict made by
:meth:`recur.sweep.spec.Spec.cells`, and run by :func:`execute`, the function that local
worker processes and Dask workers call. :func:`execute` never raises for a failing cell: it
returns ``status = "error"`` with the traceback, so the sweep goes on.

Random streams. A cell's only source of randomness is ``numpy.random.SeedSequence(entropy,
spawn_key=spawn_key)`` from its payload; it is split into four independent children, used in
this order by every cell kind: the graph, the network's parameters, the task's data, and
anything else the task draws (cues, recall orders, perturbations). The same payload gives the
same numbers in any process, on any worker, whatever other cells run.
"""

from __future__ import annotations

import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

__all__ = ["Param", "NetworkKind", "TaskKind", "NETWORKS", "TASKS", "CellContext", "execute",
           "STREAMS"]

#: The four child streams of a cell's SeedSequence, in spawn order.
STREAMS = ("graph", "network", "data", "extra")

_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One parameter a network kind, task or rule takes in a spec.

    Parameters
    ----------
    kind : {int, float, bool, str}
        Python type; an integer given for a float parameter is converted to float, so
        ``leak = 1`` and ``leak = 1.0`` are the same spec.
    default : object
        Value when the spec does not set it.
    low, high : float or None
        Bounds; ``low_open``/``high_open`` make them strict.
    choices : tuple of str or None
        The only values a ``str`` parameter may take (specs carry names, never code).
    steps : bool
        The parameter counts time steps (or epochs x steps): checked against the sweep's
        step limit, summed over the parameters so marked.
    doc : str
        One line for error messages and listings.
    """

    kind: type
    default: object = _REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    steps: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        """True when a spec must set this parameter (it has no default)."""
        return self.default is _REQUIRED

    def check(self, value):
        """Return ``(value, None)`` converted, or ``(None, message)`` when it is not valid."""
        if self.kind is bool:
            if not isinstance(value, bool):
                return None, f"must be true or false, got {_show(value)}"
            return value, None
        if self.kind is str:
            if not isinstance(value, str):
                return None, f"must be a string, got {_show(value)}"
            if self.choices is not None and value not in self.choices:
                return None, (f"must be one of {', '.join(map(repr, self.choices))}, got "
                              f"{_show(value)}{_code_hint(value)}")
            return value, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"must be a number ({self.kind.__name__}), got {_show(value)}"
        if self.kind is int:
            if not isinstance(value, int):
                return None, f"must be an integer, got {_show(value)}"
        else:
            value = float(value)
            if not math.isfinite(value):
                return None, f"must be finite, got {value!r}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return None, f"must be {'>' if self.low_open else '>='} {self.low}, got {value!r}"
        if self.high is not None and (value > self.high
                                      or (self.high_open and value == self.high)):
            return None, f"must be {'<' if self.high_open else '<='} {self.high}, got {value!r}"
        return value, None


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _code_hint(value: str) -> str:
    markers = ("(", "import", "lambda", "__", "eval", "exec", ";", "os.", "sys.")
    if any(m in value for m in markers):
        return " (specs are data: strings are names from fixed lists and nothing is evaluated)"
    return ""


@dataclass(frozen=True)
class NetworkKind:
    """A network a sweep can build on each topology, with the parameters a spec may set."""

    name: str
    params: Mapping[str, Param]
    doc: str = ""


@dataclass(frozen=True)
class TaskKind:
    """What a cell computes on one network.

    Attributes
    ----------
    name : str
    network : str
        The :data:`NETWORKS` key this task runs on.
    params : mapping of str to Param
    metrics : tuple of str
        Keys of the dict :attr:`function` returns.
    function : callable
        ``function(ctx: CellContext) -> dict[str, float]``.
    rules : mapping of str to (mapping of str to Param), or None
        Rules the task accepts, each with its parameters; None when the task takes no rule.
    network_params : tuple of str or None
        Network parameters the task honours (None: all); setting another one is an error.
    catalogue_only : tuple of str or None
        When not None, topologies must be catalogue names and only these recipe parameters
        may be overridden (the task builds its graph through an API that takes no recipe).
    check : callable or None
        ``check(task_params, n_units) -> list of (key, message)``: constraints across
        parameters, run when the spec is loaded.
    """

    name: str
    network: str
    params: Mapping[str, Param]
    metrics: tuple
    function: Callable
    rules: Mapping[str, Mapping[str, Param]] | None = None
    network_params: tuple | None = None
    catalogue_only: tuple | None = None
    check: Callable | None = None
    doc: str = ""


# -- what a cell function sees ----------------------------------------------------------------
@dataclass
class CellContext:
    """The inputs of one cell, rebuilt from its payload inside the worker.

    Attributes
    ----------
    payload : dict
        As made by the spec (see the module docstring).
    rngs : dict of str to numpy.random.Generator
        One generator per entry of :data:`STREAMS`.
    """

    payload: dict
    rngs: dict = field(default_factory=dict)

    @property
    def network(self) -> dict:
        """The network kind's parameters of this cell."""
        return self.payload["network"]["params"]

    @property
    def task(self) -> dict:
        """The task's parameters of this cell."""
        return self.payload["task"]["params"]

    @property
    def rule(self) -> str | None:
        """Name of the rule this cell trains with (None for a task without rules)."""
        return self.payload["rule"]["name"]

    @property
    def rule_params(self) -> dict:
        """The rule's parameters of this cell."""
        return self.payload["rule"]["params"]

    @property
    def topology_spec(self) -> dict:
        """The cell's topology: its recipe and the overrides of its parameters."""
        return self.payload["topology"]

    def graph(self):
        """The cell's networkx graph, drawn from the ``graph`` stream."""
        from .. import catalogue

        topo = self.topology_spec
        # The recipe was validated with the catalogue's own checks when the spec was loaded.
        return catalogue.build_recipe_graph(topo["recipe"], self.rngs["graph"],
                                            **topo["overrides"])

    def topology(self):
        """The cell's Topology, built from its recipe with the cell's graph stream."""
        from ..topology import Topology

        return Topology(self.graph())

    def seed_sequence(self) -> np.random.SeedSequence:
        """A fresh copy of the cell's root ``SeedSequence`` (before the four streams)."""
        seed = self.payload["seed"]
        return np.random.SeedSequence(int(seed["entropy"]), spawn_key=tuple(seed["spawn_key"]))


# -- ESN cells -------------------------------------------------------------------------------
def _esn(ctx: CellContext, n_in: int = 1):
    from ..networks import ESN

    esn = ESN(ctx.topology(), n_in=n_in, n_out=1, **ctx.network)
    return esn, esn.init(ctx.rngs["network"])


def _memory_capacity(ctx: CellContext) -> dict:
    r"""Short-term memory capacity of a driven reservoir (Jaeger 2002).

    The reservoir is driven by i.i.d. :math:`u_t \sim U[-1, 1]` for ``washout + steps``
    steps; :func:`recur.metrics.memory_capacity` fits one ridge readout per delay
    :math:`k = 1..K` on the first half of the remaining states and scores
    :math:`\sum_k r^2(u_{t-k}, \hat u_{t-k})` on the second half.
    """
    from .. import metrics

    p = ctx.task
    esn, params = _esn(ctx)
    u = ctx.rngs["data"].uniform(-1.0, 1.0, (p["washout"] + p["steps"], 1))
    states, _ = esn.run(params, u)
    w = p["washout"]
    mc = metrics.memory_capacity(states[w:], u[w:], p["max_delay"], alpha=p["alpha"])
    return {"memory_capacity": mc, "memory_capacity_per_unit": mc / esn.n_units}


def _check_memory(p, n_units):
    if p["steps"] < 3 * p["max_delay"] + 20:
        return [("steps", f"must be at least 3 * max_delay + 20 = {3 * p['max_delay'] + 20} "
                          f"for memory_capacity, got {p['steps']}")]
    return []


def _narma(ctx: CellContext) -> dict:
    r"""NARMA-``order`` one-step prediction with a ridge readout (Atiya & Parlos 2000).

    The reservoir reads :math:`u_t \sim U[0, 0.5]` and a ridge readout of :math:`x_t` is fit
    to :math:`y_{t+1}` (:func:`recur.tasks.narma`) on ``train_steps`` steps after the
    washout; the NRMSE is measured on the next ``test_steps``.
    """
    from .. import metrics, tasks
    from ..readouts import Ridge

    p = ctx.task
    esn, params = _esn(ctx)
    w, n_train, n_test = p["washout"], p["train_steps"], p["test_steps"]
    u, y = tasks.narma(w + n_train + n_test, order=p["order"], rng=ctx.rngs["data"])
    states, _ = esn.run(params, u)
    fit = slice(w, w + n_train)
    test = slice(w + n_train, None)
    readout = Ridge(alpha=p["alpha"]).fit(states[fit], y[fit])
    return {"nrmse": metrics.nrmse(y[test], readout.predict(states[test])),
            "train_nrmse": metrics.nrmse(y[fit], readout.predict(states[fit]))}


# -- Hopfield capacity -------------------------------------------------------------------------
def _storage_rule(name, params):
    from .. import rules

    if name == "hebbian":
        return rules.hebbian()
    return getattr(rules, name)(diagonal=params["diagonal"])


def _hopfield_capacity(ctx: CellContext) -> dict:
    r"""Store :math:`P = \max(1, \mathrm{round}(\alpha N))` random :math:`\pm1` patterns in one
    shot, then measure the fraction that are fixed points and the recall from cues with a
    fraction ``flip`` of their bits flipped (overlap :math:`m = \frac1N s\cdot\xi`, and the
    fraction of cues recalled exactly).
    """
    from .. import metrics, tasks
    from ..networks import Hopfield

    p = ctx.task
    hop = Hopfield(ctx.topology(), **ctx.network)
    n = hop.n_units
    n_patterns = max(1, int(round(p["load"] * n)))
    xi = tasks.random_patterns(n_patterns, n, rng=ctx.rngs["data"])
    params = hop.store(hop.init(ctx.rngs["network"]), xi, _storage_rule(ctx.rule,
                                                                         ctx.rule_params))
    g_cues, g_recall = ctx.rngs["extra"].spawn(2)
    cues = tasks.corrupt(xi, p["flip"], rng=g_cues)
    out, sweeps = hop.recall(params, cues, mode=p["mode"], max_sweeps=p["max_sweeps"],
                             rng=g_recall, return_sweeps=True)
    return {"fixed": float(hop.fixed_points(params, xi).mean()),
            "overlap": float(np.mean(metrics.overlap(out, xi))),
            "exact": float(np.mean(np.all(out == xi, axis=1))),
            "sweeps": float(np.mean(sweeps)),
            "n_patterns": float(n_patterns)}


# -- credit-assignment spectrum ------------------------------------------------------------------
_CREDIT_RATE = {"bptt": "bptt_rate", "node_perturbation": "np_rate",
                "weight_perturbation": "wp_rate", "hebbian_ridge": "hebbian_rate"}


def _credit_spectrum(ctx: CellContext) -> dict:
    """One rule of :func:`recur.compare.credit_spectrum` on one seed.

    ``recur.compare`` gives every rule its own stream, fixed by the rule's place in
    ``compare.RULES``, so a cell running one rule gets the numbers that rule gets in a full
    comparison with the same seed. The seed is the cell's ``SeedSequence``.
    """
    from .. import compare

    p, rp = ctx.task, ctx.rule_params
    recipe = ctx.topology_spec["recipe"]
    n_units = ctx.topology_spec["overrides"].get("n", recipe["params"]["n"])
    kwargs = dict(task=p["signal"], topology=recipe["name"], n_units=n_units,
                  train_steps=p["train_steps"], test_steps=p["test_steps"],
                  washout=p["washout"], epochs=p["epochs"], target_nrmse=p["target_nrmse"],
                  ridge_alpha=p["ridge_alpha"], alignment_repeats=p["alignment_repeats"],
                  seeds=(ctx.seed_sequence(),), **ctx.network)
    if ctx.rule in _CREDIT_RATE:
        kwargs[_CREDIT_RATE[ctx.rule]] = rp["learning_rate"]
    if ctx.rule in ("node_perturbation", "weight_perturbation"):
        kwargs.update(perturbation_sigma=rp["sigma"], n_samples=rp["n_samples"])
    (row,) = compare.credit_spectrum(compare.SpectrumConfig(**kwargs), rules=(ctx.rule,),
                                     progress=False)
    updates = row["updates_to_target"]
    return {"train_nrmse": float(row["train_nrmse"]), "test_nrmse": float(row["test_nrmse"]),
            "updates_to_target": float("nan") if updates is None else float(updates),
            "reached": float(updates is not None), "cosine": float(row["cosine"]),
            "rule_seconds": float(row["wall_time"])}


_ENERGY_RATE = {"equilibrium_propagation": "ep_rate", "symmetric_ep": "ep_rate",
                "contrastive_hebbian": "chl_rate", "generec": "generec_rate",
                "node_perturbation": "np_rate", "bptt": "bptt_rate"}


def _energy_spectrum(ctx: CellContext) -> dict:
    """One rule of :func:`recur.compare.energy_spectrum` on one seed.

    As for the ESN spectrum, every rule has its own stream fixed by its place in
    ``compare.ENERGY_RULES``, so one rule per cell reproduces that rule's row of a full
    comparison with the same seed. A rule whose phases do not settle gives NaN metrics (the
    comparison records it as a row, not an error).
    """
    from .. import compare

    p, rp = ctx.task, ctx.rule_params
    recipe = ctx.topology_spec["recipe"]
    n_hidden = ctx.topology_spec["overrides"].get("n", recipe["params"]["n"])
    kwargs = dict(task=p["signal"], topology=recipe["name"], n_hidden=n_hidden,
                  window=p["window"], train_samples=p["train_samples"],
                  test_samples=p["test_samples"], epochs=p["epochs"],
                  target_nrmse=p["target_nrmse"], beta=p["beta"],
                  alignment_repeats=p["alignment_repeats"], seeds=(ctx.seed_sequence(),),
                  **ctx.network)
    kwargs[_ENERGY_RATE[ctx.rule]] = rp["learning_rate"]
    if ctx.rule == "node_perturbation":
        kwargs.update(perturbation_sigma=rp["sigma"], n_samples=rp["n_samples"])
    (row,) = compare.energy_spectrum(compare.EnergySpectrumConfig(**kwargs), rules=(ctx.rule,),
                                     progress=False)
    updates = row["updates_to_target"]
    return {"train_nrmse": float(row["train_nrmse"]), "test_nrmse": float(row["test_nrmse"]),
            "updates_to_target": float("nan") if updates is None else float(updates),
            "reached": float(updates is not None), "cosine": float(row["cosine"]),
            "settled": float("error" not in row), "rule_seconds": float(row["wall_time"])}


# -- Boltzmann machines ---------------------------------------------------------------------------
def _bars_and_stripes(ctx: CellContext) -> dict:
    r"""A Boltzmann machine learns the bars-and-stripes patterns of a ``rows`` x ``rows`` grid
    (its visible units, from the topology's ``visible`` role, e.g. the ``bipartite`` recipe
    with ``n_visible = rows**2``) by contrastive divergence, full batch; the exact
    log-likelihood per pattern (nats) at the end, its optimum :math:`-\log P`, and the KL
    divergence from the data."""
    from .. import metrics, tasks
    from .. import rules as R
    from ..loop import train
    from ..networks import Boltzmann

    p, rp = ctx.task, ctx.rule_params
    net = Boltzmann(ctx.topology(), **ctx.network)
    if net.n_visible != p["rows"] ** 2:
        raise ValueError(f"bars_and_stripes with rows = {p['rows']} needs {p['rows'] ** 2} "
                         f"visible units; the topology has {net.n_visible}")
    data = tasks.bars_and_stripes(p["rows"])
    rule = R.chain(R.boltzmann("cd", k=rp["k"], persistent=rp["persistent"]),
                   R.scale(rp["learning_rate"]))
    params, _ = train(net, net.init(ctx.rngs["network"]), rule, data, epochs=p["epochs"],
                      rng=ctx.rngs["extra"], progress=False)
    return {"log_likelihood": float(metrics.log_likelihood(net, params, data)),
            "optimum": float(-np.log(len(data))),
            "kl": float(metrics.kl_divergence(net, params, data))}


# -- synfire chains ---------------------------------------------------------------------------
def _synfire_propagation(ctx: CellContext) -> dict:
    r"""Pulse packets down a chain: ``trials`` packets of ``a`` spikes with spread ``sigma``
    (ms) imposed on the first pool of a topology with pools (e.g. the ``synfire_chain``
    recipe), each on a network whose membranes already sit in the background noise; the
    fraction that reaches the last pool (half of it firing in the packet), and the spike
    count and spread there (Diesmann, Gewaltig & Aertsen 1999)."""
    from .. import metrics, tasks
    from ..networks import SpikingNet

    p = ctx.task
    topo = ctx.topology()
    if len(topo.pools) < 2:
        raise ValueError("synfire_propagation needs a topology with at least two pools (node "
                         "attribute 'pool'), e.g. the synfire_chain recipe")
    net = SpikingNet(topo, **ctx.network)
    params = net.init(ctx.rngs["network"])
    g_packet, g_state = ctx.rngs["data"].spawn(2)
    pools = list(topo.pools.values())
    if p["a"] > pools[0].size:
        raise ValueError(f"a = {p['a']} spikes cannot come from the first pool's "
                         f"{pools[0].size} units")
    t0 = p["t0"]
    drive = tasks.pulse_packet(p["a"], p["sigma"], pools[0], t0=t0,
                               n_units=net.n_units, dt=net.dt, trials=p["trials"],
                               rng=g_packet)
    state = net.initial_state(p["trials"], rng=g_state, stationary=True)
    duration = t0 + p["ms_per_pool"] * len(pools)
    raster, _ = net.run(params, duration, drive, trials=p["trials"], state=state,
                        rng=ctx.rngs["extra"])
    m = metrics.packet_measures(raster, pools, t0=t0, n_trials=p["trials"])
    reached = metrics.propagation_success(m)
    last_sigma = np.asarray(m["sigma"])[:, -1]
    return {"propagation": float(np.mean(reached)),
            "final_a": float(np.mean(np.asarray(m["a"])[:, -1])),
            "final_sigma": float(np.nanmedian(last_sigma)) if np.isfinite(last_sigma).any()
            else float("nan"),
            "spikes": float(raster.units.size) / p["trials"]}


def _check_synfire_growth(p, n_units):
    if p["w_init"] > p["w_max"]:
        return [("w_init", f"initial weights up to {p['w_init']} exceed w_max = {p['w_max']}")]
    return []


def _synfire_growth(ctx: CellContext) -> dict:
    r"""Synfire chains grow from spontaneous activity (Fiete, Senn, Wang & Hahnloser 2010).

    LIF units on the topology (any directed graph, e.g. the ``erdos_renyi`` recipe; ``tau_m``
    5 ms, ``tau_syn`` 1 ms, delay 1 ms, refractory 2 ms, step 0.5 ms, threshold 15 mV above
    rest) receive nothing but a background current and sparse spontaneous spikes, and learn
    from the activity they generate: pair-based STDP bounded in ``[0, w_max]``, then caps of
    ``cap * w_max`` on each unit's summed input and output weight. Reported: the chain index
    of the learned weights (the weight on the heaviest one-to-one successor map) before and
    after, with its shuffled-weight control and z-score after; the chains of strong links
    (``W > w_max / 2``); the firing rate at the first and last chunk; and the longest
    spontaneous sequence along the learned chains in ``test_ms`` of activity afterwards."""
    from .. import rules as R
    from .. import tasks
    from ..chains import chain_index, chain_successors, find_chains, sequence_lengths
    from ..loop import train
    from ..networks import SpikingNet

    p, rp = ctx.task, ctx.rule_params
    dt, w_init, w_max = 0.5, p["w_init"], p["w_max"]
    net = SpikingNet(ctx.topology(), model="lif", dt=dt, tau_m=5.0, tau_syn=1.0, delay=1.0,
                     t_ref=2.0, noise_mean=p["noise_mean"], noise_std=p["noise_std"],
                     weight=lambda g, n: g.uniform(0.0, w_init, n), w_min=0.0, w_max=w_max)
    params = net.init(ctx.rngs["network"])
    g_chunks, g_test = ctx.rngs["data"].spawn(2)
    data = [{"duration": p["chunk_ms"], "trials": p["trials"],
             "drive": tasks.spontaneous(net.n_units, p["chunk_ms"], p["spontaneous_hz"],
                                        dt=dt, trials=p["trials"], rng=g)}
            for g in g_chunks.spawn(p["epochs"])]
    cap = p["cap"] * w_max
    rule = R.chain(R.stdp(rp["a_plus"], rp["a_minus_ratio"] * rp["a_plus"], rp["tau_plus"],
                          rp["tau_minus"], w_max=w_max),
                   R.heterosynaptic_cap(max_in=cap, max_out=cap))
    g_train, g_index = ctx.rngs["extra"].spawn(2)
    learned, history = train(net, params, rule, data, epochs=p["epochs"], rng=g_train,
                             progress=False)
    g_before, g_after = g_index.spawn(2)
    before = chain_index(params["W"], n_shuffles=p["n_shuffles"], rng=g_before)
    after = chain_index(learned["W"], n_shuffles=p["n_shuffles"], rng=g_after)
    _, lengths = find_chains(learned["W"], 0.5 * w_max)
    g_drive, g_noise = g_test.spawn(2)
    drive = tasks.spontaneous(net.n_units, p["test_ms"], p["spontaneous_hz"], dt=dt,
                              trials=p["trials"], rng=g_drive)
    raster, _ = net.run(learned, p["test_ms"], drive, trials=p["trials"], rng=g_noise)
    sequences = sequence_lengths(raster, chain_successors(learned["W"], 0.5 * w_max),
                                 max_lag=max(1, int(round(p["max_lag_ms"] / dt))))
    return {"chain_index_before": before.index, "chain_index": after.index,
            "control": after.control_mean, "z": after.z,
            "n_chains": float(lengths.size),
            "longest_chain": float(lengths.max()) if lengths.size else 0.0,
            "units_in_chains": float(lengths.sum()),
            "rate_before": float(history.loss[0]), "rate_after": float(history.loss[-1]),
            "longest_sequence": float(sequences.max()) if sequences.size else 0.0}


def _check_spike_timing(p, n_units):
    problems = []
    if not p["w_min"] <= p["w_init_low"] <= p["w_init_high"] <= p["w_max"]:
        problems.append(("w_init_low", "needs w_min <= w_init_low <= w_init_high <= w_max, got "
                         f"{p['w_min']}, {p['w_init_low']}, {p['w_init_high']}, {p['w_max']}"))
    if p["first_target"] <= 5.0:
        problems.append(("first_target", "must come after the inputs start firing (5 ms), "
                         f"got {p['first_target']}"))
    return problems


def _spike_timing(ctx: CellContext) -> dict:
    r"""A spike-timing task learned by node perturbation, weight perturbation or STDP.

    LIF units on the topology (step 0.1 ms, ``tau_syn`` 2 ms; any graph whose units carry the
    roles ``input`` and ``output``, e.g. the ``layered`` recipe): each input unit fires once
    per trial at a time drawn once per cell (imposed spikes), and output unit ``m`` should
    fire once at ``first_target + m * target_spacing`` ms. The loss of a trial is the mean
    squared van Rossum distance of the outputs to their targets (``tau_loss``); every unit
    receives a fluctuating background current, so each trial is a new noise realisation.
    The perturbation rules step ``learning_rate`` times their estimate; STDP steps by its
    own amplitudes. Reported: the loss before and after training on the same
    ``eval_trials`` noise realisations, the relative improvement, whether and at which
    update the running (10-update) training loss first reached half the initial loss (NaN
    when it did not: count ``reached_half`` before reading a median of it), and the rule's
    wall time (as in ``examples/spiking_perturbation.py``; input spikes fall in
    ``[5 ms, last target]``)."""
    from .. import rules as R
    from ..loop import train
    from ..networks import SpikingNet
    from ..tasks import SpikeDrive, SpikeTarget

    p, rp = ctx.task, ctx.rule_params
    topo = ctx.topology()
    inputs, outputs = topo.roles.get("input"), topo.roles.get("output")
    if inputs is None or outputs is None or not len(inputs) or not len(outputs):
        raise ValueError("spike_timing needs a topology with 'input' and 'output' units "
                         "(node attribute 'role'), e.g. the layered recipe")
    dt, lo, hi = 0.1, p["w_init_low"], p["w_init_high"]
    net = SpikingNet(topo, dt=dt, tau_syn=2.0, noise_mean=p["noise_mean"],
                     noise_std=p["noise_std"], weight=lambda g, n: g.uniform(lo, hi, n),
                     w_min=p["w_min"], w_max=p["w_max"])
    params = net.init(ctx.rngs["network"])
    n_out = len(outputs)
    last = p["first_target"] + (n_out - 1) * p["target_spacing"]
    times = ctx.rngs["data"].uniform(5.0, last, len(inputs))
    pattern = SpikeDrive(units=np.asarray(inputs), steps=np.rint(times / dt).astype(int),
                         n_units=net.n_units, dt=dt)
    target = SpikeTarget(units=np.asarray(outputs),
                         times=[[p["first_target"] + m * p["target_spacing"]]
                                for m in range(n_out)], tau=p["tau_loss"])
    duration = last + p["target_spacing"] + 4.0 * p["tau_loss"]
    data = {"duration": duration, "drive": pattern, "trials": p["trials"], "loss": target}
    if ctx.rule == "stdp":
        rule = R.stdp(a_plus=rp["a_plus"], a_minus=rp["a_minus_ratio"] * rp["a_plus"],
                      tau_plus=rp["tau"], tau_minus=rp["tau"], w_max=p["w_max"])
    else:
        make = R.node_perturbation if ctx.rule == "node_perturbation" else \
            R.weight_perturbation
        rule = R.chain(make(sigma=rp["sigma"], n_samples=rp["n_samples"]),
                       R.scale(rp["learning_rate"]))
    g_train, g_eval = ctx.rngs["extra"].spawn(2)
    eval_data = dict(data, trials=p["eval_trials"])
    eval_seed = g_eval.integers(2**62)
    # The same noise realisations before and after: the difference is the learning.
    before = net.loss(params, eval_data, rng=np.random.default_rng(eval_seed))
    learned, history = train(net, params, rule, data, epochs=p["epochs"], rng=g_train,
                             progress=False)
    after = net.loss(learned, eval_data, rng=np.random.default_rng(eval_seed))
    # Running mean of the last (up to) 10 training losses, from cumulative sums.
    total = np.concatenate([[0.0], np.cumsum(history.loss)])
    end = np.arange(1, total.size)
    start = np.maximum(end - 10, 0)
    running = (total[end] - total[start]) / (end - start)
    hit = np.flatnonzero(running <= before / 2)
    return {"loss_before": float(before), "loss_after": float(after),
            "improvement": float(1.0 - after / before) if before > 0 else float("nan"),
            "reached_half": float(hit.size > 0),
            "updates_to_half": float(hit[0] + 1) if hit.size else float("nan"),
            "rule_seconds": float(history.wall_time)}


# -- diagnostic cells ----------------------------------------------------------------------------
def _empty(ctx: CellContext) -> dict:
    """Nothing but one draw from the data stream: the runner's per-cell overhead."""
    return {"draw": float(ctx.rngs["data"].random())}


def _sleep(ctx: CellContext) -> dict:
    """Wait ``seconds`` (a cell that takes time without using a CPU), then one draw."""
    time.sleep(ctx.task["seconds"])
    return {"draw": float(ctx.rngs["data"].random())}


def _spin(ctx: CellContext) -> dict:
    """A CPU-bound cell in plain Python (no BLAS threads): ``iterations`` of an LCG."""
    x = int(ctx.rngs["data"].integers(1, 2**31))
    for _ in range(ctx.task["iterations"]):
        x = (1103515245 * x + 12345) % 2147483648
    return {"draw": x / 2147483648.0}


def _fail(ctx: CellContext) -> dict:
    """Always raises: how a sweep records a failing cell and goes on."""
    raise RuntimeError(f"the 'fail' cell raises on purpose ({ctx.task['message']})")


# -- the registries --------------------------------------------------------------------------
def _frozen(d):
    return MappingProxyType(dict(d))


_ESN_PARAMS = _frozen({
    "leak": Param(float, 1.0, 0.0, 1.0, low_open=True, doc="leak rate a in (0, 1]"),
    "spectral_radius": Param(float, 0.9, 0.0, low_open=True, doc="spectral radius of W"),
    "input_scaling": Param(float, 1.0, 0.0, doc="W_in ~ U[-s, s)"),
    "bias_scaling": Param(float, 0.0, 0.0, doc="b ~ U[-s, s)"),
    "weight_distribution": Param(str, "normal", choices=("normal", "uniform"),
                                 doc="raw recurrent weights before scaling"),
})
# No "backend" parameter: numba and numpy kernels give the same numbers, so the kernel is not
# part of what a cell is (nor of its seed); workers use numba when it is installed.

NETWORKS: Mapping[str, NetworkKind] = _frozen({
    "esn": NetworkKind("esn", _ESN_PARAMS, "recur.ESN: leaky-tanh reservoir, one input"),
    "hopfield": NetworkKind("hopfield", _frozen({}),
                            "recur.Hopfield: +-1 units, symmetric W on an undirected graph"),
    "energy": NetworkKind("energy", _frozen({
        "activation": Param(str, "hard_sigmoid", choices=("hard_sigmoid", "tanh"),
                            doc="unit nonlinearity"),
        "init_scale": Param(float, 0.3, 0.0, doc="scale of the initial couplings"),
        "tol": Param(float, 1e-6, 0.0, 1e-2, low_open=True, doc="settling tolerance"),
    }), "recur.EnergyNet: continuous units settling to a fixed point, symmetric W"),
    "spiking": NetworkKind("spiking", _frozen({
        "weight": Param(float, 4.86, 0.0, doc="synaptic current jump, mV"),
        "noise_mean": Param(float, 7.43, doc="mean background drive of the membrane, mV"),
        "noise_std": Param(float, 3.13, 0.0, doc="background fluctuation of the membrane, mV"),
        "delay": Param(float, 1.0, 0.1, doc="synaptic delay, ms (at least the 0.1 ms step)"),
    }), "recur.SpikingNet: LIF units (Diesmann et al. parameters), delays, background noise"),
    "boltzmann": NetworkKind("boltzmann", _frozen({
        "temperature": Param(float, 1.0, 0.0, low_open=True, doc="temperature T"),
        "init_scale": Param(float, 0.01, 0.0, doc="initial weights N(0, init_scale^2)"),
    }), "recur.Boltzmann: stochastic 0/1 units, visible and hidden roles from the topology"),
    "none": NetworkKind("none", _frozen({}), "no network: diagnostic cells"),
})

_STEPS = dict(kind=int, low=1, steps=True)
_DIAGONAL = _frozen({"diagonal": Param(str, "zero", choices=("zero", "keep"),
                                       doc="diagonal policy of the storage rule")})
_PERTURBATION = _frozen({
    "learning_rate": Param(float, 1e-2, 0.0, low_open=True, doc="Adam step size"),
    "sigma": Param(float, 1e-3, 0.0, low_open=True, doc="perturbation size"),
    "n_samples": Param(int, 32, 1, 4096, doc="perturbations per update"),
})

_ADAM_RATE = Param(float, 3e-2, 0.0, low_open=True, doc="Adam step size")

TASKS: Mapping[str, TaskKind] = _frozen({
    "memory_capacity": TaskKind(
        "memory_capacity", "esn", _frozen({
            "steps": Param(default=2000, doc="driven steps after the washout", **_STEPS),
            "washout": Param(int, 100, 0, steps=True, doc="discarded first steps"),
            "max_delay": Param(int, 100, 1, doc="largest delay K"),
            "alpha": Param(float, 1e-8, 0.0, doc="ridge penalty"),
        }), ("memory_capacity", "memory_capacity_per_unit"), _memory_capacity,
        check=_check_memory,
        doc="sum over delays of the recall r^2 of i.i.d. input (recur.metrics)"),
    "narma": TaskKind(
        "narma", "esn", _frozen({
            "order": Param(int, 10, 1, 10, doc="NARMA order (10: NARMA-10)"),
            "train_steps": Param(default=2000, doc="steps the readout is fit on", **_STEPS),
            "test_steps": Param(default=1000, doc="steps the NRMSE is measured on",
                                **_STEPS),
            "washout": Param(int, 100, 0, steps=True, doc="discarded first steps"),
            "alpha": Param(float, 1e-6, 0.0, doc="ridge penalty"),
        }), ("nrmse", "train_nrmse"), _narma,
        doc="one-step NARMA prediction, ridge readout, NRMSE on held-out steps"),
    "hopfield_capacity": TaskKind(
        "hopfield_capacity", "hopfield", _frozen({
            "load": Param(float, 0.1, 0.0, low_open=True, doc="patterns per unit, P/N"),
            "flip": Param(float, 0.1, 0.0, 1.0, doc="fraction of bits flipped in a cue"),
            "mode": Param(str, "async", choices=("async", "sync"), doc="recall dynamics"),
            "max_sweeps": Param(int, 100, 1, 10_000, doc="recall sweeps at most"),
        }), ("fixed", "overlap", "exact", "sweeps", "n_patterns"), _hopfield_capacity,
        rules=_frozen({"hebbian": _frozen({}), "storkey": _DIAGONAL,
                       "pseudo_inverse": _DIAGONAL}),
        doc="one-shot storage, fixed points and recall from corrupted cues"),
    "credit_spectrum": TaskKind(
        "credit_spectrum", "esn", _frozen({
            "signal": Param(str, "sine_sum", choices=("sine_sum", "mackey_glass"),
                            doc="the series the network predicts one step ahead"),
            "train_steps": Param(default=400, doc="training sequence length", **_STEPS),
            "test_steps": Param(default=400, doc="test sequence length", **_STEPS),
            "washout": Param(int, 50, 0, doc="uncounted first steps"),
            "epochs": Param(int, 300, 1, 100_000, doc="updates per rule"),
            "target_nrmse": Param(float, 0.2, 0.0, low_open=True,
                                  doc="training NRMSE counted as reached"),
            "ridge_alpha": Param(float, 1e-6, 0.0, doc="ridge penalty of the ridge rules"),
            "alignment_repeats": Param(int, 5, 1, 1000, doc="estimates behind the cosine"),
        }), ("train_nrmse", "test_nrmse", "updates_to_target", "reached", "cosine",
             "rule_seconds"), _credit_spectrum,
        rules=_frozen({
            "fixed_ridge": _frozen({}),
            "hebbian_ridge": _frozen({"learning_rate": Param(float, 1e-3, 0.0, low_open=True,
                                                             doc="Oja step size")}),
            "weight_perturbation": _PERTURBATION,
            "node_perturbation": _PERTURBATION,
            "bptt": _frozen({"learning_rate": Param(float, 3e-2, 0.0, low_open=True,
                                                    doc="Adam step size")}),
        }),
        network_params=("leak", "spectral_radius"), catalogue_only=("n",),
        doc="recur.compare.credit_spectrum, one rule and one seed per cell"),
    "energy_spectrum": TaskKind(
        "energy_spectrum", "energy", _frozen({
            "signal": Param(str, "sine_sum", choices=("sine_sum", "mackey_glass"),
                            doc="the series whose next value the network predicts"),
            "window": Param(int, 5, 1, 1000, doc="input units: the last values seen"),
            "train_samples": Param(default=100, doc="training windows", **_STEPS),
            "test_samples": Param(default=100, doc="held-out windows", **_STEPS),
            "epochs": Param(int, 300, 1, 100_000, doc="updates per rule"),
            "target_nrmse": Param(float, 0.3, 0.0, low_open=True,
                                  doc="training NRMSE counted as reached"),
            "beta": Param(float, 0.1, 0.0, low_open=True, doc="nudging strength of EP"),
            "alignment_repeats": Param(int, 3, 1, 1000, doc="estimates behind the cosine"),
        }), ("train_nrmse", "test_nrmse", "updates_to_target", "reached", "cosine", "settled",
             "rule_seconds"), _energy_spectrum,
        rules=_frozen({
            "equilibrium_propagation": _frozen({"learning_rate": _ADAM_RATE}),
            "symmetric_ep": _frozen({"learning_rate": _ADAM_RATE}),
            "contrastive_hebbian": _frozen({"learning_rate": _ADAM_RATE}),
            "generec": _frozen({"learning_rate": _ADAM_RATE}),
            "node_perturbation": _PERTURBATION,
            "bptt": _frozen({"learning_rate": _ADAM_RATE}),
        }),
        catalogue_only=("n",),
        doc="recur.compare.energy_spectrum (EnergyNet, NGRAD rules), one rule and one seed "
            "per cell; the topology wires the hidden units"),
    "bars_and_stripes": TaskKind(
        "bars_and_stripes", "boltzmann", _frozen({
            "rows": Param(int, 3, 2, 4, doc="grid side: the data are its bars and stripes"),
            "epochs": Param(int, 2000, 1, 1_000_000, doc="full-batch updates"),
        }), ("log_likelihood", "optimum", "kl"), _bars_and_stripes,
        rules=_frozen({"cd": _frozen({
            "k": Param(int, 1, 1, 1000, doc="Gibbs steps per update (CD-k)"),
            "persistent": Param(bool, False, doc="persistent chains (PCD)"),
            "learning_rate": Param(float, 0.1, 0.0, low_open=True, doc="step size"),
        })}),
        doc="exact log-likelihood of bars and stripes after CD-k or PCD learning"),
    "synfire_propagation": TaskKind(
        "synfire_propagation", "spiking", _frozen({
            "a": Param(int, 85, 1, 100_000, doc="spikes in the packet (at most a pool)"),
            "sigma": Param(float, 1.0, 0.0, 50.0, doc="temporal spread of the packet, ms"),
            "trials": Param(int, 20, 1, 10_000, doc="packets, simulated as one batch"),
            "t0": Param(float, 15.0, 0.0, 1000.0, doc="packet centre, ms"),
            "ms_per_pool": Param(float, 6.0, 1.0, 100.0, doc="simulated time per pool"),
        }), ("propagation", "final_a", "final_sigma", "spikes"), _synfire_propagation,
        doc="pulse packets down a chain of pools: how often they reach the last pool"),
    "synfire_growth": TaskKind(
        "synfire_growth", "spiking", _frozen({
            "epochs": Param(int, 40, 1, 100_000, doc="training chunks of spontaneous activity"),
            "chunk_ms": Param(float, 250.0, 1.0, 100_000.0, doc="duration of one chunk, ms"),
            "trials": Param(int, 16, 1, 1000, doc="independent copies run per chunk"),
            "spontaneous_hz": Param(float, 5.0, 0.0, 1000.0,
                                    doc="imposed spontaneous spikes per unit, Hz"),
            "noise_mean": Param(float, 10.0, doc="mean background drive of the membrane, mV"),
            "noise_std": Param(float, 2.0, 0.0, doc="background fluctuation of the membrane, mV"),
            "w_init": Param(float, 5.0, 0.0, doc="initial weights uniform in [0, w_init], mV"),
            "w_max": Param(float, 50.0, 0.0, low_open=True, doc="STDP's upper bound, mV"),
            "cap": Param(float, 1.0, 0.0, low_open=True,
                         doc="summed input and output weight caps, in units of w_max"),
            "test_ms": Param(float, 500.0, 1.0, 100_000.0,
                             doc="spontaneous activity read for sequences after learning"),
            "max_lag_ms": Param(float, 5.0, 0.5, 1000.0,
                                doc="a successor's spike this soon continues a sequence"),
            "n_shuffles": Param(int, 20, 2, 10_000, doc="shuffled controls of the chain index"),
        }), ("chain_index_before", "chain_index", "control", "z", "n_chains", "longest_chain",
             "units_in_chains", "rate_before", "rate_after", "longest_sequence"),
        _synfire_growth,
        rules=_frozen({"stdp": _frozen({
            "a_plus": Param(float, 2.0, 0.0, low_open=True, doc="potentiation per pair, mV"),
            "a_minus_ratio": Param(float, 1.1, 0.0, doc="depression = ratio x potentiation"),
            "tau_plus": Param(float, 10.0, 0.0, low_open=True, doc="potentiation window, ms"),
            "tau_minus": Param(float, 10.0, 0.0, low_open=True, doc="depression window, ms"),
        })}),
        network_params=(), check=_check_synfire_growth,
        doc="STDP and heterosynaptic caps on spontaneous activity: do synfire chains grow?"),
    "spike_timing": TaskKind(
        "spike_timing", "spiking", _frozen({
            "first_target": Param(float, 20.0, 0.0, 10_000.0, doc="target of output 0, ms"),
            "target_spacing": Param(float, 12.0, 0.0, 10_000.0,
                                    doc="target of output m: first_target + m x spacing"),
            "tau_loss": Param(float, 5.0, 0.0, 1000.0, low_open=True,
                              doc="van Rossum kernel of the loss, ms"),
            "noise_mean": Param(float, 7.0, doc="mean background drive of the membrane, mV"),
            "noise_std": Param(float, 2.0, 0.0, doc="background fluctuation of the membrane, mV"),
            "w_init_low": Param(float, 0.0, doc="initial weights uniform from, mV"),
            "w_init_high": Param(float, 8.0, doc="initial weights uniform to, mV"),
            "w_min": Param(float, -20.0, doc="lower weight bound, mV"),
            "w_max": Param(float, 30.0, doc="upper weight bound, mV"),
            "trials": Param(int, 2, 1, 1000, doc="noise realisations per update"),
            "epochs": Param(int, 40, 1, 100_000, doc="updates"),
            "eval_trials": Param(int, 48, 1, 100_000,
                                 doc="noise realisations of the loss before and after"),
        }), ("loss_before", "loss_after", "improvement", "reached_half", "updates_to_half",
             "rule_seconds"),
        _spike_timing,
        rules=_frozen({
            "node_perturbation": _frozen({
                "sigma": Param(float, 40.0, 0.0, low_open=True,
                               doc="current noise per step, mV"),
                "n_samples": Param(int, 8, 1, 4096, doc="antithetic pairs per update"),
                "learning_rate": Param(float, 200.0, 0.0, low_open=True, doc="step size"),
            }),
            "weight_perturbation": _frozen({
                "sigma": Param(float, 1.0, 0.0, low_open=True, doc="weight noise, mV"),
                "n_samples": Param(int, 8, 1, 4096, doc="antithetic pairs per update"),
                "learning_rate": Param(float, 200.0, 0.0, low_open=True, doc="step size"),
            }),
            "stdp": _frozen({
                "a_plus": Param(float, 0.02, 0.0, low_open=True, doc="potentiation per pair, mV"),
                "a_minus_ratio": Param(float, 1.05, 0.0, doc="depression = ratio x potentiation"),
                "tau": Param(float, 20.0, 0.0, low_open=True, doc="STDP window, ms"),
            }),
        }),
        network_params=(), check=_check_spike_timing,
        doc="spike-timing targets on output units: perturbation learning against STDP"),
    "empty": TaskKind("empty", "none", _frozen({}), ("draw",), _empty,
                      doc="does nothing: the runner's overhead"),
    "sleep": TaskKind("sleep", "none", _frozen({
        "seconds": Param(float, 0.1, 0.0, 60.0, doc="time to wait"),
    }), ("draw",), _sleep, doc="waits, for progress and kill tests"),
    "spin": TaskKind("spin", "none", _frozen({
        "iterations": Param(int, 100_000, 0, 10**9, doc="loop iterations"),
    }), ("draw",), _spin, doc="CPU-bound plain Python loop, for scaling tests"),
    "fail": TaskKind("fail", "none", _frozen({
        "message": Param(str, "test", choices=("test",), doc="fixed text"),
    }), ("draw",), _fail, doc="always raises, for error-recording tests"),
})


# -- running one cell --------------------------------------------------------------------------
def _version() -> str:
    from .._version import __version__

    return __version__


def execute(payload: dict) -> dict:
    """Run one cell; never raises for an error inside the cell.

    Parameters
    ----------
    payload : dict
        A cell payload (:attr:`recur.sweep.spec.Cell.payload`).

    Returns
    -------
    dict
        ``cell_id``, ``status`` (``"ok"`` or ``"error"``), ``metrics`` (dict of float; only
        the spec's metrics when it names them), ``error`` (traceback text or None),
        ``started`` (Unix time, s), ``wall_time`` (s), ``recur_version`` and ``host`` of the
        process that ran it.
    """
    started = time.time()
    t0 = time.perf_counter()
    metrics, error = {}, None
    try:
        task = TASKS[payload["task"]["name"]]
        ctx = CellContext(payload)
        children = ctx.seed_sequence().spawn(len(STREAMS))
        ctx.rngs = {name: np.random.default_rng(s) for name, s in zip(STREAMS, children)}
        result = task.function(ctx)
        keep = payload.get("metrics")
        metrics = {k: float(v) for k, v in result.items() if keep is None or k in keep}
        status = "ok"
    except Exception:  # a failing cell is a result, not the end of the sweep
        status = "error"
        error = traceback.format_exc(limit=20)
    return {"cell_id": payload["cell_id"], "status": status, "metrics": metrics,
            "error": error, "started": started, "wall_time": time.perf_counter() - t0,
            "recur_version": _version(), "host": f"{platform.node()}:{os.getpid()}"}
