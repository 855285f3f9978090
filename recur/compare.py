"""The credit-assignment spectrum on one network: every rule, the same self-generated signal.

One rate network, built from a catalogue topology, learns next-step prediction of a signal it
is fed (the series is its own teacher) with rules that carry more and more credit-assignment
information: a fixed reservoir with a ridge readout (the echo-state baseline: no credit reaches
the recurrent weights), a Hebbian-adapted reservoir with a ridge readout (local, no error),
weight perturbation and node perturbation (one scalar reward per trial), and backpropagation
through time (the exact gradient). Each is scored by its final loss, the number of updates it
needed to reach a target loss, its wall time, and the cosine of its update to the exact
gradient at the start (Lillicrap et al. 2020, "Backpropagation and the brain").

The same comparison runs on an energy network (:func:`energy_spectrum`): an
:class:`~recur.EnergyNet` whose hidden units are wired by a catalogue topology predicts the
next value of a signal from a window of its recent values, trained by the NGRAD rules
(equilibrium propagation, one-sided and symmetric; contrastive Hebbian learning; GeneRec),
node perturbation and the exact gradient through the fixed point.

Used by ``examples/credit_spectrum.py``, ``examples/energy_next_step.py`` and the
``recur compare`` command (``--network esn|energy``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import metrics, tasks
from . import rules as R
from .diagnostics import alignment
from .loop import train
from .networks import ESN, EnergyNet
from .readouts import Ridge
from .topology import Topology
from .validation import ConvergenceError, check_positive

__all__ = ["SpectrumConfig", "credit_spectrum", "EnergySpectrumConfig", "energy_spectrum",
           "window_data", "format_table", "plot_curves", "summarise", "RULES", "ENERGY_RULES"]

RULES = ("fixed_ridge", "hebbian_ridge", "weight_perturbation", "node_perturbation", "bptt")
ENERGY_RULES = ("equilibrium_propagation", "symmetric_ep", "contrastive_hebbian", "generec",
                "node_perturbation", "bptt")


@dataclass(frozen=True)
class SpectrumConfig:
    """Settings of one credit-spectrum comparison (defaults: the full-size run).

    The learning rates were chosen on a log grid per rule at the default size (see
    ``examples/credit_spectrum.py --help``).
    """

    task: str = "sine_sum"
    topology: str = "small_world"
    n_units: int = 100
    train_steps: int = 400
    test_steps: int = 400
    washout: int = 50
    epochs: int = 300
    seeds: tuple = (0, 1, 2)
    target_nrmse: float = 0.2
    leak: float = 0.5
    spectral_radius: float = 0.9
    bptt_rate: float = 3e-2
    np_rate: float = 1e-2
    wp_rate: float = 1e-2
    hebbian_rate: float = 1e-3
    perturbation_sigma: float = 1e-3
    n_samples: int = 32
    ridge_alpha: float = 1e-6
    alignment_repeats: int = 5

    @classmethod
    def quick(cls, **overrides):
        """A CI-sized run: a few seconds."""
        base = dict(n_units=40, train_steps=200, test_steps=200, washout=30, epochs=40,
                    seeds=(0, 1), n_samples=16, alignment_repeats=2)
        base.update(overrides)
        return cls(**base)


def _signal(task, n_steps, rng):
    if task == "sine_sum":
        return tasks.sine_sum(n_steps, rng=rng)
    if task == "mackey_glass":
        z, _, _ = tasks.standardize(tasks.mackey_glass(n_steps, rng=rng))
        return 0.5 * z
    raise ValueError(f"task must be 'sine_sum' or 'mackey_glass', got {task!r}")


def _estimator(name, cfg):
    if name == "bptt":
        return R.bptt(), cfg.bptt_rate
    if name == "node_perturbation":
        return R.node_perturbation(cfg.perturbation_sigma, n_samples=cfg.n_samples), cfg.np_rate
    if name == "weight_perturbation":
        return R.weight_perturbation(cfg.perturbation_sigma, n_samples=cfg.n_samples), cfg.wp_rate
    raise ValueError(name)


def _ridge_readout(net, params, data, alpha):
    """Set the built-in readout to the ridge solution on the teacher-forced states."""
    traj = net.trajectory(params, data)
    sel = traj.counted
    ridge = Ridge(alpha=alpha).fit(traj.x[sel], data.targets[sel])
    return {**params, "W_out": ridge.coef_.astype(params["W_out"].dtype),
            "b_out": ridge.intercept_.astype(params["b_out"].dtype)}


def _one_seed(cfg, seed, rule_names):
    rng = np.random.default_rng(seed)
    topo = Topology.load(cfg.topology, rng=rng, n=cfg.n_units)
    net = ESN(topo, leak=cfg.leak, spectral_radius=cfg.spectral_radius, input_scaling=0.5,
              bias_scaling=0.1, n_in=1, n_out=1)
    params0 = net.init(rng)
    series = _signal(cfg.task, cfg.train_steps + cfg.test_steps + 1, rng)
    u, y = tasks.next_step(series)
    n = cfg.train_steps
    train_data = tasks.TeacherForced(u[:n], y[:n], washout=cfg.washout)
    test_data = tasks.TeacherForced(u[n:], y[n:], washout=cfg.washout)
    variance = float(np.var(y[:n]))
    target_loss = cfg.target_nrmse**2 * variance
    # One stream per rule, fixed by its place in RULES: a rule draws the same numbers
    # whichever other rules run beside it.
    streams = dict(zip(RULES, rng.spawn(len(RULES))))
    rows = []
    for name in rule_names:
        stream_train, stream_align = streams[name].spawn(2)
        started = time.perf_counter()
        cosine = float("nan")
        if name == "fixed_ridge":
            params = _ridge_readout(net, params0, train_data, cfg.ridge_alpha)
            curve = [net.loss(params, train_data)]
            updates = 1  # one least-squares solve
        elif name == "hebbian_ridge":
            # Oja's rule on the recurrent weights, driven by the network's own states; the
            # readout is then fitted by ridge, as for the fixed reservoir.
            rule = R.partition({"W": R.chain(R.oja(), R.scale(cfg.hebbian_rate))})
            adapted, hist = train(net, params0, rule, train_data, epochs=cfg.epochs,
                                  rng=stream_train, progress=False)
            params = _ridge_readout(net, adapted, train_data, cfg.ridge_alpha)
            curve = [net.loss(params, train_data)]
            updates = cfg.epochs + 1  # Hebbian epochs, then one solve
            cosine = alignment(R.oja(params=("W",)), net, params0, train_data, repeats=1,
                               rng=stream_align)["all"]["cosine_median"]
        else:
            est, rate = _estimator(name, cfg)
            # Adam gives every rule the same step-size control, so the rules differ only in
            # the direction they propose.
            params, hist = train(net, params0, R.chain(est, R.adam(rate)), train_data,
                                 epochs=cfg.epochs, rng=stream_train, progress=False)
            curve = list(hist.loss) + [hist.final_loss]
            updates = hist.updates_to(target_loss)
            cosine = alignment(est, net, params0, train_data, repeats=cfg.alignment_repeats,
                               rng=stream_align)["all"]["cosine_median"]
        wall = time.perf_counter() - started
        test_pred = net.trajectory(params, test_data)
        rows.append({
            "rule": name,
            "seed": seed,
            "train_loss": curve[-1],
            "train_nrmse": float(np.sqrt(curve[-1] / variance)),
            "test_nrmse": metrics.nrmse(test_data.targets[cfg.washout:],
                                        test_pred.y_hat[cfg.washout:]),
            "updates_to_target": updates if min(curve) <= target_loss else None,
            "wall_time": wall,
            "cosine": cosine,
            "curve": np.sqrt(np.asarray(curve) / variance),
        })
    return rows


def credit_spectrum(config=None, rules=RULES, *, progress=True):
    """Run every rule on every seed; returns one row (dict) per (rule, seed).

    Row keys: ``rule``, ``seed``, ``train_loss``, ``train_nrmse``, ``test_nrmse``,
    ``updates_to_target`` (None if never reached), ``wall_time`` (s), ``cosine`` (median
    alignment of the rule's update with the exact descent direction at the initial
    parameters), ``curve`` (training NRMSE per epoch).
    """
    cfg = config or SpectrumConfig()
    rules = (rules,) if isinstance(rules, str) else tuple(rules)
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; choose from {RULES}")
    rows = []
    for seed in _seed_iterator(list(cfg.seeds), progress):
        rows.extend(_one_seed(cfg, seed, rules))
    return rows


# -- the same spectrum on an energy network ------------------------------------------------

@dataclass(frozen=True)
class EnergySpectrumConfig:
    """Settings of the credit spectrum on an :class:`~recur.EnergyNet` (defaults: full size).

    The network sees a window of the last ``window`` values of the signal (input units,
    clamped) and its one output unit should settle to the next value; ``n_hidden`` hidden
    units are wired by the catalogue ``topology``, every hidden unit connects to every input
    and to the output, and the inputs connect to the output. The signal is rescaled into [0.2, 0.8], inside the range of the
    hard-sigmoid units. Every rule runs through Adam at its own rate (chosen on a log grid at
    the default size), so the rules differ only in the direction they propose.
    """

    task: str = "sine_sum"
    topology: str = "small_world"
    n_hidden: int = 30
    window: int = 5
    train_samples: int = 100
    test_samples: int = 100
    epochs: int = 300
    seeds: tuple = (0, 1, 2)
    target_nrmse: float = 0.3
    activation: str = "hard_sigmoid"
    init_scale: float = 0.3
    tol: float = 1e-6
    beta: float = 0.1
    ep_rate: float = 3e-2
    chl_rate: float = 3e-2
    generec_rate: float = 3e-2
    np_rate: float = 1e-2
    bptt_rate: float = 3e-2
    perturbation_sigma: float = 1e-3
    n_samples: int = 16
    alignment_repeats: int = 3

    @classmethod
    def quick(cls, **overrides):
        """A CI-sized run: a few seconds."""
        base = dict(n_hidden=12, window=4, train_samples=60, test_samples=60, epochs=30,
                    seeds=(0, 1), n_samples=8, alignment_repeats=1)
        base.update(overrides)
        return cls(**base)


def window_data(series, window):
    """``(x, y)`` pairs for next-value prediction: ``x[t] = series[t : t + window]`` and
    ``y[t] = series[t + window]``; shapes (T - window, window) and (T - window, 1)."""
    check_positive(window, "window", integer=True)
    series = np.asarray(series, dtype=np.float64).reshape(-1)
    if series.size <= window:
        raise ValueError(f"series of length {series.size} is too short for window {window}")
    idx = np.arange(series.size - window)[:, None] + np.arange(window)
    return series[idx], series[window:, None]


def energy_topology(cfg, rng):
    """Inputs and one output around a catalogue graph of hidden units (all undirected): every
    hidden unit meets every input and the output, and the inputs meet the output."""
    import networkx as nx

    hidden = Topology.load(cfg.topology, rng=rng, n=cfg.n_hidden)
    G = nx.Graph()
    names = {node: ("h", i) for i, node in enumerate(hidden.nodelist)}
    G.add_nodes_from(names.values())
    G.add_edges_from((names[u], names[v]) for u, v in hidden.graph.edges() if u != v)
    inputs = [("x", k) for k in range(cfg.window)]
    G.add_nodes_from(inputs, role="input")
    G.add_node(("y", 0), role="output")
    G.add_edges_from((i, h) for i in inputs for h in names.values())
    G.add_edges_from((("y", 0), h) for h in names.values())
    # The inputs also meet the output directly: the linear part of the prediction needs no
    # hidden unit.
    G.add_edges_from((i, ("y", 0)) for i in inputs)
    return Topology(G)


def _energy_estimator(name, cfg):
    if name == "equilibrium_propagation":
        return R.equilibrium_propagation(cfg.beta), cfg.ep_rate
    if name == "symmetric_ep":
        return R.equilibrium_propagation(cfg.beta, symmetric=True), cfg.ep_rate
    if name == "contrastive_hebbian":
        return R.contrastive_hebbian(), cfg.chl_rate
    if name == "generec":
        return R.generec(), cfg.generec_rate
    if name == "node_perturbation":
        return (R.node_perturbation(cfg.perturbation_sigma, n_samples=cfg.n_samples),
                cfg.np_rate)
    if name == "bptt":
        return R.bptt(), cfg.bptt_rate
    raise ValueError(f"unknown energy rule {name!r}; choose from {ENERGY_RULES}")


def _energy_one_seed(cfg, seed, rule_names):
    rng = np.random.default_rng(seed)
    net = EnergyNet(energy_topology(cfg, rng), activation=cfg.activation,
                    init_scale=cfg.init_scale, tol=cfg.tol)
    params0 = net.init(rng)
    n = cfg.train_samples + cfg.test_samples + cfg.window
    z, _, _ = tasks.standardize(_signal(cfg.task, n, rng))
    series = 0.5 + 0.3 * np.clip(z / 2.5, -1.0, 1.0)
    x, y = window_data(series, cfg.window)
    train_data = (x[:cfg.train_samples], y[:cfg.train_samples])
    test_data = (x[cfg.train_samples:], y[cfg.train_samples:])
    variance = float(np.var(train_data[1]))
    target_loss = cfg.target_nrmse**2 * variance
    streams = dict(zip(ENERGY_RULES, rng.spawn(len(ENERGY_RULES))))
    rows = []
    for name in rule_names:
        stream_train, stream_align = streams[name].spawn(2)
        est, rate = _energy_estimator(name, cfg)
        started = time.perf_counter()
        cosine = float("nan")
        try:
            cosine = alignment(est, net, params0, train_data, repeats=cfg.alignment_repeats,
                               rng=stream_align)["all"]["cosine_median"]
            started = time.perf_counter()
            params, hist = train(net, params0, R.chain(est, R.adam(rate)), train_data,
                                 epochs=cfg.epochs, rng=stream_train, progress=False)
            wall = time.perf_counter() - started
            test_loss = net.loss(params, test_data)
        except ConvergenceError as exc:
            # A phase with no fixed point is a result of the rule, not a crash of the
            # comparison: the row says so and carries no numbers.
            rows.append({"rule": name, "seed": seed, "train_loss": float("nan"),
                         "train_nrmse": float("nan"), "test_nrmse": float("nan"),
                         "updates_to_target": None, "wall_time": time.perf_counter() - started,
                         "cosine": cosine, "curve": np.array([float("nan")]),
                         "error": str(exc)})
            continue
        curve = list(hist.loss) + [hist.final_loss]
        rows.append({
            "rule": name,
            "seed": seed,
            "train_loss": curve[-1],
            "train_nrmse": float(np.sqrt(curve[-1] / variance)),
            "test_nrmse": float(np.sqrt(test_loss / np.var(test_data[1]))),
            "updates_to_target": hist.updates_to(target_loss),
            "wall_time": wall,
            "cosine": cosine,
            "curve": np.sqrt(np.asarray(curve) / variance),
        })
    return rows


def energy_spectrum(config=None, rules=ENERGY_RULES, *, progress=True):
    """Run every rule on every seed on an :class:`~recur.EnergyNet`; one row per (rule, seed),
    with the keys of :func:`credit_spectrum` (``curve``: training NRMSE per update)."""
    cfg = config or EnergySpectrumConfig()
    rules = (rules,) if isinstance(rules, str) else tuple(rules)
    unknown = set(rules) - set(ENERGY_RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; choose from {ENERGY_RULES}")
    rows = []
    for seed in _seed_iterator(list(cfg.seeds), progress):
        rows.extend(_energy_one_seed(cfg, seed, rules))
    return rows


def _seed_iterator(seeds, progress):
    if progress:
        try:
            from tqdm.auto import tqdm

            return tqdm(seeds, desc="seeds", disable=None, leave=False)
        except ImportError:
            pass
    return seeds


def summarise(rows):
    """Median over seeds per rule."""
    out = []
    for name in dict.fromkeys(r["rule"] for r in rows):
        sel = [r for r in rows if r["rule"] == name]
        reached = [r["updates_to_target"] for r in sel if r["updates_to_target"] is not None]
        out.append({
            "rule": name,
            "train_nrmse": float(np.median([r["train_nrmse"] for r in sel])),
            "test_nrmse": float(np.median([r["test_nrmse"] for r in sel])),
            "updates_to_target": float(np.median(reached)) if len(reached) == len(sel) else None,
            "reached": f"{len(reached)}/{len(sel)}",
            "wall_time": float(np.median([r["wall_time"] for r in sel])),
            "cosine": float(np.nanmedian([r["cosine"] for r in sel]))
            if not all(np.isnan(r["cosine"]) for r in sel) else float("nan"),
        })
    return out


def format_table(rows, cfg=None):
    """A plain-text table of the medians over seeds."""
    lines = [f"{'rule':<22}{'train NRMSE':>12}{'test NRMSE':>12}{'updates':>10}{'reached':>9}"
             f"{'wall s':>9}{'cosine':>9}"]
    for s in summarise(rows):
        upd = "-" if s["updates_to_target"] is None else f"{s['updates_to_target']:.0f}"
        lines.append(f"{s['rule']:<22}{s['train_nrmse']:>12.3g}{s['test_nrmse']:>12.3g}"
                     f"{upd:>10}{s['reached']:>9}{s['wall_time']:>9.2f}{s['cosine']:>9.3f}")
    return "\n".join(lines)


def plot_curves(rows, path, *, title="credit-assignment spectrum"):
    """Learning curves (training NRMSE per update), median over seeds, one line per rule."""
    from .plotting import new_figure, save_figure

    fig = new_figure(figsize=(7, 4.5))
    if fig is None:
        return None
    ax = fig.subplots()
    for i, name in enumerate(dict.fromkeys(r["rule"] for r in rows)):
        curves = [r["curve"] for r in rows if r["rule"] == name
                  and np.isfinite(r["curve"]).any()]  # a run that failed has no curve
        if not curves:
            continue
        length = min(len(c) for c in curves)
        med = np.median(np.stack([c[:length] for c in curves]), axis=0)
        if length == 1:  # a one-shot ridge fit: a level, not a curve
            ax.axhline(med[0], color=f"C{i}", ls=("--", ":")[i % 2], lw=1.4, label=name)
        else:
            ax.plot(np.arange(length), med, color=f"C{i}", lw=1.5, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel("training NRMSE (next step)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
