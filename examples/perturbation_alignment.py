"""Node vs weight perturbation in a recurrent network: how well does each see the gradient?

A perturbation rule estimates the gradient from ``K`` perturbed runs and the loss change each
caused. To first order, for Gaussian perturbations of an effective dimension ``D_eff``, the
estimate ``g_hat`` is unbiased with ``E ||g_hat||^2 = ||g||^2 (1 + D_eff / K)``, so its cosine
to the exact gradient ``g`` (BPTT) and its norm ratio are

    cos ~ sqrt(K / (K + D_eff)),        E[norm ratio^2] ~ 1 + D_eff / K.

For weight perturbation ``D_eff`` is the number of perturbed values plus one, known in
advance; read on one parameter ``p`` of several perturbed alike it is
``1 + n_p ||g||^2 / ||g_p||^2``. For node perturbation it is set by the perturbed node-steps:
noise on every unit's input at every step of a trial of ``T`` steps (and on every counted
output) gives ``(N + n_out) T`` of them, fewer effectively, as the node-space gradient is not
spread evenly over them and its contributions from different steps add up coherently. So:

- on long recurrent trials weight perturbation wins, ``(N + n_out) T`` > number of weights
  (Zuege, Klos & Memmesheimer 2021);
- node perturbation wins where its perturbation dimension is smaller: few outputs and one
  sample per trial (Werfel et al. 2005; see ``perturbation_scaling.py``), or short trials.

Part 1 measures the cosine with ``recur.diagnostics.alignment`` (one update of the bare
estimator from the evidence ``ESN.collect`` gathers, against the ESN's exact BPTT gradient, over
repeats) as ``K`` grows on a long trial, fits ``D_eff`` for each rule to the median cosines
(least squares on ``sqrt(K / (K + D))``), and checks it against the norm ratios
(``D ~ K (mean ratio^2 - 1)``) and, for weight perturbation, against the a priori value. Part 2
holds ``K`` fixed and shortens the trial: node perturbation's dimension shrinks with ``T``,
weight perturbation's does not, and the winner changes.

In parts 1 and 2 the rules perturb every parameter the ESN has (``W`` on its edges,
``W_in``, ``b``, ``W_out``, ``b_out``: 451 values; the rules' default ``params=None``) and
update all of them, so the headline cosine is over all
parameters (``--param all``; ``--param W`` reads the recurrent weights alone). Each trial
starts from the state a 300-step teacher-forced warm-up left, on which the readout is fitted
by ridge (so the readout's own gradient is small and the credit to assign is the reservoir's).

Setup of the calibrated reference (REFERENCES.md): N=50 leaky-tanh units, 300 random directed
edges, T=200 steps (next-step prediction of a sum of sines here), antithetic perturbations with
sigma 1e-3, 20 repeats, median. The reference perturbed ``W`` only (300 weights, D_eff 301:
cosines 0.20 / 0.42 / 0.68 at K = 16 / 64 / 256) against node perturbation on ``W``
(D_eff ~ 4,400: 0.0 / 0.12 / 0.28); the table prints the cosine on ``W`` next to those numbers.

Part 3 runs that calibrated setting itself, with the rules' ``params``: weight perturbation of
``W`` alone (``weight_perturbation(..., params=("W",))``: the other parameters run unperturbed,
so ``D_eff = 300 + 1`` whatever share of the gradient they carry), next to the all-parameter
rows read on ``W``; and node perturbation of the output nodes only
(``node_perturbation(..., params=("W_out", "b_out"))``), the "few outputs" regime of Werfel et
al.: one output over the trial, against weight perturbation of every parameter read on the same
readout (``W_out``, ``b_out``), whose estimate there pays for all 451 perturbed values.

Run::

    python examples/perturbation_alignment.py            # full size, 3 seeds, about a minute
    python examples/perturbation_alignment.py --quick    # K up to 64, 1 seed, a few seconds
    python examples/perturbation_alignment.py --param W  # parts 1-2 read on W alone
"""

import argparse
import math
import time
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.optimize import minimize_scalar

import recur as rc
from recur import plotting, tasks
from recur.diagnostics import alignment, alignment_table
from recur import rules
from recur.rules import Gradient

RULES = ("WP", "NP")
# Part 3: rules that perturb some parameters only (name: (where, params)).
RESTRICTED = {"WP-W": ("weights", ("W",)), "NP-out": ("nodes", ("W_out", "b_out"))}
READOUT = ("W_out", "b_out")
# Calibrated medians (REFERENCES.md) for W-only weight perturbation and node perturbation at
# N=50, T=200, 300 edges, keyed by K.
CALIBRATED = {"WP": {16: 0.20, 64: 0.42, 256: 0.68}, "NP": {16: 0.0, 64: 0.12, 256: 0.28}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="K in {4, 16, 64}, 16 repeats, 1 seed; trial lengths 2, 8, 32")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds: network, readout and series (default 0 1 2, or 0)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="draws of the evidence per cell (default 20, or 16 with --quick)")
    parser.add_argument("--steps", type=int, default=None,
                        help="trial length of part 1 (default 200)")
    parser.add_argument("--param", default="all",
                        help="parameter whose update is compared: 'all' (default: every "
                             "parameter the rules update, concatenated) or a name such as W")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for the figure (default: current folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    config = {
        "units": 50,
        "edges": 300,
        "leak": 0.5,
        "spectral_radius": 0.9,
        "steps": args.steps or 200,              # long trial, part 1
        "param": args.param,
        "samples": [4, 16, 64] if quick else [4, 16, 64, 256],
        "trial_lengths": [2, 8, 32] if quick else [2, 4, 8, 16, 32, 64, 128, 256],
        "trial_samples": 64,                     # K of part 2
        "warmup": 300,
        "sigma": 1e-3,
        "repeats": args.repeats or (16 if quick else 20),
        "seeds": args.seeds if args.seeds is not None else ([0] if quick else [0, 1, 2]),
    }
    return config, args.out


def predicted_cosine(K, D):
    """First-order cosine of a K-sample perturbation estimate of dimension D."""
    K = np.asarray(K, dtype=float)
    return np.sqrt(K / (K + D))


def fit_dimension(samples, cosines):
    """D_eff minimising the squared error of ``sqrt(K / (K + D))`` to the measured cosines."""
    K = np.asarray(samples, dtype=float)
    c = np.asarray(cosines, dtype=float)
    ok = np.isfinite(c)
    if not ok.any():
        return math.nan

    def cost(log_d):
        return float(np.sum((predicted_cosine(K[ok], math.exp(log_d)) - c[ok]) ** 2))

    res = minimize_scalar(cost, bounds=(math.log(0.1), math.log(1e7)), method="bounded",
                          options={"xatol": 1e-4})
    return float(math.exp(res.x))


def median_se(values):
    """Standard error of the median of ``values`` (normal approximation)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(1.2533 * np.std(v) / np.sqrt(max(v.size, 1)))


def dimension_from_ratios(K, ratios):
    """D_eff from the norm ratios: ``E[ratio^2] = 1 + D / K`` (first order, unbiased)."""
    r = np.asarray(ratios, dtype=float)
    return float(K * (np.mean(r[np.isfinite(r)] ** 2) - 1.0))


def build(seed, config):
    """Network, parameters (readout fitted by ridge on a warm-up run), the series, and the
    state the warm-up leaves; separate child streams for graph, weights and series."""
    r_graph, r_params, r_series = np.random.default_rng(seed).spawn(3)
    graph = nx.gnm_random_graph(config["units"], config["edges"], directed=True,
                                seed=int(r_graph.integers(2**31)))
    net = rc.ESN(rc.Topology(graph), leak=config["leak"],
                 spectral_radius=config["spectral_radius"], input_scaling=1.0,
                 bias_scaling=0.2, n_in=1, n_out=1)
    params = net.init(r_params)
    w = config["warmup"]
    length = w + max(config["steps"], max(config["trial_lengths"])) + 1
    u, y = tasks.next_step(tasks.sine_sum(length, rng=r_series))
    states, state = net.run(params, u[:w])
    skip = w // 5  # transient of the zero initial state
    readout = rc.Ridge(alpha=1e-6).fit(states[skip:], y[skip:w])
    params = {**params, "W_out": readout.coef_, "b_out": readout.intercept_}
    return net, params, u, y, state


def trial(u, y, steps, config):
    """The trial that follows the warm-up: ``steps`` steps of next-step prediction."""
    w = config["warmup"]
    return u[w:w + steps], y[w:w + steps]


def _size(a):
    return int(a.nnz if hasattr(a, "nnz") else np.size(a))


def gradient_share(net, params, data, state, name):
    """``||g||^2 / ||g_p||^2`` of the exact gradient (1 for "all"): with every parameter
    perturbed alike, weight perturbation's estimate of ``p`` has
    ``D_eff = 1 + n_p ||g||^2 / ||g_p||^2``."""
    grad = net.collect(params, data, Gradient(), state=state)[Gradient()]

    def sq(a):
        return float(np.sum(np.square(a.data if hasattr(a, "nnz") else a)))

    total = sum(sq(g) for g in grad.values())
    return 1.0 if name == "all" else total / sq(grad[name])


def rule(name, K, sigma, params=None):
    make = rules.weight_perturbation if name.startswith("WP") else rules.node_perturbation
    return make(sigma=sigma, n_samples=K, antithetic=True, params=params)


def gradient_sq_norms(net, params, data, state):
    """``||g_p||^2`` of the exact gradient, per parameter."""
    grad = net.collect(params, data, Gradient(), state=state)[Gradient()]
    return {name: float(np.sum(np.square(g.data if hasattr(g, "nnz") else g)))
            for name, g in grad.items()}


def joint_cosines(res, names, sq):
    """Cosine of each repeat's update on ``names`` concatenated, from the per-parameter
    cosines ``c_p`` and norm ratios ``r_p`` of an alignment result and the exact gradient's
    ``||g_p||^2``: ``sum c_p r_p ||g_p||^2 / sqrt(sum r_p^2 ||g_p||^2 * sum ||g_p||^2)``."""
    dot = upd = 0.0
    for name in names:
        c = np.nan_to_num(np.asarray(res[name]["cosine"], dtype=float))
        r = np.nan_to_num(np.asarray(res[name]["norm_ratio"], dtype=float))
        dot = dot + c * r * sq[name]
        upd = upd + r ** 2 * sq[name]
    total = sum(sq[name] for name in names)
    with np.errstate(invalid="ignore", divide="ignore"):
        return dot / np.sqrt(upd * total)


def n_perturbed(name, net, params, steps, param):
    """Nominal perturbation dimension: perturbed values of ``param`` (WP; every parameter for
    "all"; a sparse ``W`` is perturbed on its edges only) or node-steps (NP)."""
    if name == "WP":
        return sum(_size(v) for v in params.values()) if param == "all" else \
            _size(params[param])
    return (net.n_units + net.n_out) * steps


def measure(net, params, data, state, name, K, config, rng):
    """One cell: alignment of the bare estimator over the repeats, read on ``param``."""
    res = alignment(rule(name, K, config["sigma"]), net, params, data,
                    repeats=config["repeats"], rng=rng, state=state)
    row = res[config["param"]]
    return {"result": res, "cosine": row["cosine_median"], "cosines": row["cosine"],
            "ratios": row["norm_ratio"], "cosine_W": res["W"]["cosine_median"],
            "cosines_W": res["W"]["cosine"]}


def part_samples(config):
    """Part 1: cosine vs K on the long trial, per seed and rule."""
    cells = []
    for seed in config["seeds"]:
        net, params, u, y, state = build(seed, config)
        data = trial(u, y, config["steps"], config)
        share = gradient_share(net, params, data, state, config["param"])
        share_W = gradient_share(net, params, data, state, "W")
        sq = gradient_sq_norms(net, params, data, state)
        streams = np.random.default_rng([seed, 1]).spawn(len(RULES) * len(config["samples"]))
        for i, name in enumerate(RULES):
            for j, K in enumerate(config["samples"]):
                cell = measure(net, params, data, state, name, K, config,
                               streams[i * len(config["samples"]) + j])
                out = joint_cosines(cell["result"], READOUT, sq)
                cell.update(cosines_out=out, cosine_out=float(np.nanmedian(out)))
                cells.append({"seed": seed, "rule": name, "K": K, **cell,
                              "nominal": n_perturbed(name, net, params, config["steps"],
                                                     config["param"]),
                              "gradient_share": share, "gradient_share_W": share_W,
                              "n_W": _size(params["W"])})
    return cells


def part_restricted(config):
    """Part 3: cosine vs K on the long trial for the rules that perturb some parameters only,
    read on the parameters they perturb (``W``; ``W_out`` and ``b_out`` together)."""
    cells = []
    for seed in config["seeds"]:
        net, params, u, y, state = build(seed, config)
        data = trial(u, y, config["steps"], config)
        streams = np.random.default_rng([seed, 3]).spawn(len(RESTRICTED)
                                                         * len(config["samples"]))
        for i, (name, (where, names)) in enumerate(RESTRICTED.items()):
            for j, K in enumerate(config["samples"]):
                res = alignment(rule(name, K, config["sigma"], names), net, params, data,
                                repeats=config["repeats"], state=state,
                                rng=streams[i * len(config["samples"]) + j])
                row = res["all"]  # the perturbed parameters, concatenated
                cells.append({"seed": seed, "rule": name, "K": K, "params": names,
                              "cosine": row["cosine_median"], "cosines": row["cosine"],
                              "ratios": row["norm_ratio"],
                              "nominal": (sum(_size(params[n]) for n in names)
                                          if where == "weights"
                                          else net.n_out * config["steps"])})
    return cells


def part_trials(config):
    """Part 2: cosine vs trial length at fixed K, per seed and rule."""
    cells = []
    K = config["trial_samples"]
    for seed in config["seeds"]:
        net, params, u, y, state = build(seed, config)
        streams = np.random.default_rng([seed, 2]).spawn(len(RULES)
                                                         * len(config["trial_lengths"]))
        for j, T in enumerate(config["trial_lengths"]):
            data = trial(u, y, T, config)
            share = gradient_share(net, params, data, state, config["param"])
            for i, name in enumerate(RULES):
                cell = measure(net, params, data, state, name, K, config,
                               streams[i * len(config["trial_lengths"]) + j])
                cells.append({"seed": seed, "rule": name, "T": T, "K": K, **cell,
                              "nominal": n_perturbed(name, net, params, T, config["param"]),
                              "gradient_share": share})
    return cells


def a_priori_dimension(name, cells):
    """First-order D_eff known before measuring: weight perturbation of every parameter,
    read on ``W``: ``1 + n_W ||g||^2 / ||g_W||^2`` (median over seeds). None for NP, whose
    effective dimension depends on how the node-space gradient spreads over node-steps."""
    if name != "WP":
        return None
    return float(np.median([1 + c["nominal"] * c["gradient_share"] for c in cells]))


def summarise(samples_cells, trial_cells, config, restricted_cells=()):
    out = {"samples": {}, "trials": {}}
    Ks = config["samples"]
    for name in RULES:
        mine = [c for c in samples_cells if c["rule"] == name]
        med = [float(np.median([c["cosine"] for c in mine if c["K"] == K])) for K in Ks]
        D_fit = fit_dimension(Ks, med)
        D_prior = a_priori_dimension(name, mine)
        out["samples"][name] = {
            "K": list(Ks), "cosine": med,
            "cosine_W": [float(np.median([c["cosine_W"] for c in mine if c["K"] == K]))
                         for K in Ks],
            "D_prior_W": None if name != "WP" else float(np.median(
                [1 + c["n_W"] * c["gradient_share_W"] for c in mine])),
            "cosine_iqr": [tuple(float(q) for q in np.percentile(np.concatenate(
                [c["cosines"] for c in mine if c["K"] == K]), [25, 75])) for K in Ks],
            # standard error of the median over all draws (1.25 std / sqrt(n), normal case)
            "cosine_se": [median_se(np.concatenate([c["cosines"] for c in mine
                                                    if c["K"] == K])) for K in Ks],
            "D_fit": D_fit,
            "D_ratio": float(np.median([dimension_from_ratios(c["K"], c["ratios"])
                                        for c in mine])),
            "D_prior": D_prior,
            "nominal": mine[0]["nominal"],
            "predicted": [float(predicted_cosine(K, D_fit)) for K in Ks],
            "predicted_prior": None if D_prior is None else
            [float(predicted_cosine(K, D_prior)) for K in Ks],
        }
    K = config["trial_samples"]
    Ts = config["trial_lengths"]
    for name in RULES:
        mine = [c for c in trial_cells if c["rule"] == name]
        med = [float(np.median([c["cosine"] for c in mine if c["T"] == T])) for T in Ts]
        out["trials"][name] = {
            "T": list(Ts), "K": K, "cosine": med,
            "cosine_se": [median_se(np.concatenate([c["cosines"] for c in mine
                                                    if c["T"] == T])) for T in Ts],
            # D_eff at each length from the one K: cos^2 = K / (K + D)
            "D_fit": [fit_dimension([K], [c]) for c in med],
            "D_prior": [a_priori_dimension(name, [c for c in mine if c["T"] == T])
                        for T in Ts],
            "nominal": [next(c["nominal"] for c in mine if c["T"] == T) for T in Ts],
        }
    wp, np_ = out["trials"]["WP"]["cosine"], out["trials"]["NP"]["cosine"]
    out["trials"]["winner"] = ["NP" if b > a else "WP" for a, b in zip(wp, np_)]
    out["restricted"] = summarise_restricted(restricted_cells, samples_cells, config)
    return out


def summarise_restricted(cells, samples_cells, config):
    """Part 3: the restricted rules, and the all-parameter rules read on the same parameters
    (WP-W against WP and NP on ``W``; NP-out against WP and NP on ``W_out``, ``b_out``)."""
    Ks = config["samples"]
    out = {}
    for name in RESTRICTED:
        mine = [c for c in cells if c["rule"] == name]
        med = [float(np.median([c["cosine"] for c in mine if c["K"] == K])) for K in Ks]
        draws = [np.concatenate([c["cosines"] for c in mine if c["K"] == K]) for K in Ks]
        D_fit = fit_dimension(Ks, med)
        nominal = mine[0]["nominal"]
        D_prior = nominal + 1 if name == "WP-W" else None
        out[name] = {
            "K": list(Ks), "cosine": med, "params": mine[0]["params"],
            "cosine_se": [median_se(d) for d in draws],
            "cosine_iqr": [tuple(float(q) for q in np.nanpercentile(d, [25, 75]))
                           for d in draws],
            "D_fit": D_fit,
            "D_ratio": float(np.median([dimension_from_ratios(c["K"], c["ratios"])
                                        for c in mine])),
            "D_prior": D_prior, "nominal": nominal,
            "predicted": [float(predicted_cosine(K, D_fit)) for K in Ks],
            "predicted_prior": None if D_prior is None else
            [float(predicted_cosine(K, D_prior)) for K in Ks],
            "calibrated": ([CALIBRATED["WP"].get(K) for K in Ks] if name == "WP-W"
                           else [None] * len(Ks)),
        }
    for name in RULES:
        mine = [c for c in samples_cells if c["rule"] == name]
        for key, what in (("W", "cosines_W"), ("out", "cosines_out")):
            draws = [np.concatenate([c[what] for c in mine if c["K"] == K]) for K in Ks]
            out[f"{name}-all on {key}"] = {
                "K": list(Ks),
                "cosine": [float(np.median([np.nanmedian(c[what]) for c in mine
                                            if c["K"] == K])) for K in Ks],
                "cosine_se": [median_se(d) for d in draws]}
    return out


def print_tables(summary, samples_cells, config):
    s = summary["samples"]
    param = config["param"]
    what = "all parameters" if param == "all" else param
    print(f"\nPart 1: cosine of the update ({what}) to the exact BPTT gradient vs number of "
          f"perturbations K")
    print(f"N={config['units']} leaky tanh, {config['edges']} edges, T={config['steps']}, "
          f"antithetic, sigma {config['sigma']:g}; median over {config['repeats']} repeats x "
          f"{len(config['seeds'])} seed(s); readout fitted by ridge on a warm-up")
    header = (f"{'rule':<4} {'K':>5} {'cosine':>7} {'[IQR]':>14} {'fit':>6} {'a priori':>8} | "
              f"{'cos(W)':>7} {'a priori':>8} {'calibrated':>10}")
    print(header)
    print("-" * len(header))
    for name in RULES:
        r = s[name]
        prior = r["predicted_prior"] or [None] * len(r["K"])
        for i, K in enumerate(r["K"]):
            lo, hi = r["cosine_iqr"][i]
            cal = CALIBRATED[name].get(K)
            pw = "-" if r["D_prior_W"] is None else f"{predicted_cosine(K, r['D_prior_W']):.3f}"
            print(f"{name:<4} {K:>5} {r['cosine'][i]:>7.3f} {f'[{lo:.2f}, {hi:.2f}]':>14} "
                  f"{r['predicted'][i]:>6.3f} "
                  f"{'-' if prior[i] is None else f'{prior[i]:.3f}':>8} | "
                  f"{r['cosine_W'][i]:>7.3f} {pw:>8} {'-' if cal is None else f'{cal:.2f}':>10}")
    print("prediction cos = sqrt(K / (K + D_eff)); D_eff:")
    for name in RULES:
        r = s[name]
        nominal = (f"{r['nominal']} perturbed values in {what}" if name == "WP" else
                   f"{r['nominal']:,} node-steps perturbed")
        prior = "" if r["D_prior"] is None else f"; a priori {r['D_prior']:,.0f}"
        print(f"  {name}: fitted to the cosines {r['D_fit']:,.0f}; from the norm ratios "
              f"{r['D_ratio']:,.0f}{prior}; {nominal}")
    print(f"  a priori for WP: 1 + n_p ||g||^2 / ||g_p||^2 from the exact gradient; on W "
          f"(n_W = 300) it is {s['WP']['D_prior_W']:,.0f},\n  because these rows perturb every "
          "parameter (W, W_in, b, W_out, b_out) and the others carry much of the gradient\n"
          "  (part 3 perturbs W alone).\n"
          "  calibrated (REFERENCES.md): W-only weight perturbation, D_eff 301; node "
          "perturbation ~4,400, on W")
    t = summary["trials"]
    print(f"\nPart 2: cosine ({what}) vs trial length T at K={t['WP']['K']} (each trial "
          f"starts where a {config['warmup']}-step warm-up left the state)")
    header = (f"{'T':>5} {'WP cos':>7} {'NP cos':>7} {'WP D_eff':>9} {'(a priori)':>10} "
              f"{'NP D_eff':>9} {'NP node-steps':>13} {'winner':>6}")
    print(header)
    print("-" * len(header))
    for i, T in enumerate(t["WP"]["T"]):
        print(f"{T:>5} {t['WP']['cosine'][i]:>7.3f} {t['NP']['cosine'][i]:>7.3f} "
              f"{t['WP']['D_fit'][i]:>9,.0f} {t['WP']['D_prior'][i]:>10,.0f} "
              f"{t['NP']['D_fit'][i]:>9,.0f} {t['NP']['nominal'][i]:>13,} "
              f"{t['winner'][i]:>6}")
    K = max(config["samples"])
    seed = config["seeds"][0]
    pick = {c["rule"]: c["result"] for c in samples_cells if c["K"] == K and c["seed"] == seed}
    print(f"\nPer parameter, seed {seed}, K={K}, T={config['steps']} (b_out is a single "
          "number: its cosine is +-1):")
    print(alignment_table(pick))
    print_restricted(summary["restricted"], config)


def print_restricted(r, config):
    Ks = config["samples"]
    wpw, npo = r["WP-W"], r["NP-out"]
    print(f"\nPart 3: perturbing some parameters only (rules' params=...), T={config['steps']}, "
          f"K perturbations, median over {config['repeats']} repeats x "
          f"{len(config['seeds'])} seed(s)")
    print("(a) weight perturbation of W alone (the calibrated setting) vs every parameter "
          "perturbed, cosine on W")
    header = (f"{'K':>5} {'WP-W':>7} {'sqrt(K/(K+' + str(wpw['D_prior']) + '))':>19} "
              f"{'calibrated':>10} {'WP-all':>7} {'NP-all':>7}")
    print(header)
    print("-" * len(header))
    for i, K in enumerate(Ks):
        cal = wpw["calibrated"][i]
        print(f"{K:>5} {wpw['cosine'][i]:>7.3f} {wpw['predicted_prior'][i]:>19.3f} "
              f"{'-' if cal is None else f'{cal:.2f}':>10} "
              f"{r['WP-all on W']['cosine'][i]:>7.3f} {r['NP-all on W']['cosine'][i]:>7.3f}")
    print(f"  WP-W D_eff: fitted {wpw['D_fit']:,.0f}, from the norm ratios "
          f"{wpw['D_ratio']:,.0f}, a priori {wpw['D_prior']} ({wpw['nominal']} edges + 1)")
    print("(b) node perturbation of the output only (few outputs: NP wins) vs every parameter "
          "perturbed, cosine on (W_out, b_out)")
    header = f"{'K':>5} {'NP-out':>7} {'WP-all':>7} {'NP-all':>7}"
    print(header)
    print("-" * len(header))
    for i, K in enumerate(Ks):
        print(f"{K:>5} {npo['cosine'][i]:>7.3f} {r['WP-all on out']['cosine'][i]:>7.3f} "
              f"{r['NP-all on out']['cosine'][i]:>7.3f}")
    print(f"  NP-out D_eff: fitted {npo['D_fit']:,.1f}, from the norm ratios "
          f"{npo['D_ratio']:,.1f}; {npo['nominal']} output-steps perturbed")


def plot(summary, config, path):
    fig = plotting.new_figure(figsize=(16, 4.5))
    if fig is None:  # no matplotlib: no figure
        return None
    left, right, third = fig.subplots(1, 3)
    colours = {"WP": "tab:red", "NP": "tab:blue"}
    s = summary["samples"]
    grid = np.geomspace(min(config["samples"]) / 1.5, max(config["samples"]) * 1.5, 100)
    for name in RULES:
        r = s[name]
        lo = [c - q[0] for c, q in zip(r["cosine"], r["cosine_iqr"])]
        hi = [q[1] - c for c, q in zip(r["cosine"], r["cosine_iqr"])]
        left.errorbar(r["K"], r["cosine"], yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                      fmt="o", color=colours[name], label=f"{name} measured (median, IQR)")
        left.plot(grid, predicted_cosine(grid, r["D_fit"]), "-", color=colours[name],
                  label=f"{name} sqrt(K/(K+D)), D fitted {r['D_fit']:,.0f}")
        if r["D_prior"] is not None:
            left.plot(grid, predicted_cosine(grid, r["D_prior"]), ":", color=colours[name],
                      label=f"{name} a priori D {r['D_prior']:,.0f}")
        if config["param"] == "W":
            cal = CALIBRATED[name]
            left.plot(list(cal), list(cal.values()), "x", color=colours[name], alpha=0.6,
                      label=f"{name} calibrated (W-only WP)")
    left.set_xscale("log")
    left.set_xlabel("perturbations K")
    what = "all parameters" if config["param"] == "all" else config["param"]
    left.set_ylabel(f"cosine to the BPTT gradient ({what})")
    left.set_title(f"T={config['steps']}", fontsize=9)
    left.legend(fontsize=6)
    t = summary["trials"]
    for name in RULES:
        right.plot(t[name]["T"], t[name]["cosine"], "o-", color=colours[name],
                   label=f"{name} measured")
    Tg = np.array(t["WP"]["T"], dtype=float)
    right.plot(Tg, predicted_cosine(t["WP"]["K"], np.array(t["WP"]["D_prior"])), ":",
               color=colours["WP"], label="WP a priori")
    right.set_xscale("log")
    right.set_xlabel("trial length T (steps)")
    right.set_ylabel(f"cosine to the BPTT gradient ({what})")
    right.set_title(f"K={t['WP']['K']}: node perturbation wins on short trials", fontsize=9)
    right.legend(fontsize=7)
    r = summary["restricted"]
    Ks = r["WP-W"]["K"]
    third.plot(Ks, r["WP-W"]["cosine"], "o-", color="tab:red", label="WP of W only, on W")
    third.plot(grid, predicted_cosine(grid, r["WP-W"]["D_prior"]), ":", color="tab:red",
               label=f"sqrt(K/(K+{r['WP-W']['D_prior']}))")
    cal = CALIBRATED["WP"]
    third.plot(list(cal), list(cal.values()), "x", color="k", label="calibrated (W only)")
    third.plot(Ks, r["WP-all on W"]["cosine"], "s--", color="tab:red", alpha=0.5,
               label="WP of all, on W")
    third.plot(Ks, r["NP-out"]["cosine"], "o-", color="tab:blue",
               label="NP of the output only, on W_out, b_out")
    third.plot(Ks, r["WP-all on out"]["cosine"], "s--", color="tab:blue", alpha=0.5,
               label="WP of all, on W_out, b_out")
    third.set_xscale("log")
    third.set_xlabel("perturbations K")
    third.set_ylabel("cosine on the perturbed parameters")
    third.set_title("perturbing some parameters only (params=...)", fontsize=9)
    third.legend(fontsize=6)
    fig.suptitle("Node vs weight perturbation on an ESN: alignment with the exact gradient")
    return plotting.save_figure(fig, path)


def main(argv=None):
    config, out = parse_args(argv)
    start = time.perf_counter()
    samples_cells = part_samples(config)
    trial_cells = part_trials(config)
    restricted_cells = part_restricted(config)
    summary = summarise(samples_cells, trial_cells, config, restricted_cells)
    print_tables(summary, samples_cells, config)
    figure = plot(summary, config, out / "perturbation_alignment.png")
    seconds = time.perf_counter() - start
    n_cells = len(samples_cells) + len(trial_cells) + len(restricted_cells)
    print(f"\n{n_cells} cells in {seconds:.1f} s"
          + (f"; figure: {figure}" if figure else " (no matplotlib: no figure)"))
    strip = ("result",)
    return {"config": config, "summary": summary,
            "samples_cells": [{k: v for k, v in c.items() if k not in strip}
                              for c in samples_cells],
            "trial_cells": [{k: v for k, v in c.items() if k not in strip}
                            for c in trial_cells],
            "restricted_cells": restricted_cells,
            "figure": figure, "seconds": seconds}


if __name__ == "__main__":
    main()
