"""Mackey-Glass in closed loop: the minimal echo-state recipe.

An echo-state network is teacher-forced on the chaotic Mackey-Glass series (tau = 17), a ridge
readout learns to predict the next value from the reservoir state, and then the network runs
on its own: each prediction is fed back as the next input. How long the generated trajectory
stays on the true one measures how well the network has captured the dynamics.

Recipe (Lukoševičius, "A practical guide to applying echo state networks", 2012, and his
minimal ESN), the "minimal recipe" row of REFERENCES.md:

- N = 1000 units, fully connected: every ``W[post, pre]`` exists, self-connections included
- leak 0.3, W uniform in [-0.5, 0.5] then rescaled to spectral radius 1.25
- W_in and the bias uniform in [-0.5, 0.5]
- the series squashed into tanh's range by tanh(x - 1) (Jaeger & Haas 2004)
- 3000 teacher-forced steps, the first 100 discarded as washout, ridge alpha 1e-8
- 500 steps of closed-loop generation

Published figures to hold the numbers against:

- Jaeger & Haas, Science 304:78 (2004): 84-step NRMSE 10^-4.2, with their full recipe
  (sparse reservoir, output feedback, noise during training, 100 trials);
- the calibrated band of the minimal recipe: 84-step error / std ~ 10^-2.6 and 500-step
  NRMSE ~ 3e-3 (median of 3 seeds).

Run::

    python examples/esn_mackey_glass.py              # full size, 5 seeds, ~15 s
    python examples/esn_mackey_glass.py --quick      # N=200, 2 seeds, a few seconds
    python examples/esn_mackey_glass.py --seeds 0 1 2 --units 500 --out figures/
"""

import argparse
import math
import time
from pathlib import Path

import networkx as nx
import numpy as np

import recur as rc
from recur import metrics, plotting, tasks

# What the literature reports, for the printed comparison.
PUBLISHED = {
    "jaeger_haas_2004_log10_nrmse_84": -4.2,
    "minimal_recipe_log10_error_84": -2.6,
    "minimal_recipe_nrmse_500": 3e-3,
}
HORIZON = 84  # Jaeger & Haas's prediction horizon, in steps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=200, 1500 training steps, 2 seeds, 200 generated steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to run (default 0..4, or 0 1 with --quick)")
    parser.add_argument("--units", type=int, default=None,
                        help="reservoir size N (default 1000, or 200 with --quick)")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for the figure (default: current folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    config = {
        "units": args.units or (200 if quick else 1000),
        "seeds": args.seeds if args.seeds is not None else ([0, 1] if quick else list(range(5))),
        "train_steps": 1500 if quick else 3000,
        "washout": 100,
        "generate_steps": 200 if quick else 500,
        "leak": 0.3,
        "spectral_radius": 1.25,
        "alpha": 1e-8,
    }
    if config["generate_steps"] < HORIZON:
        parser.error(f"need at least {HORIZON} generated steps")
    return config, args.out


def dense_topology(n_units):
    """Every unit connected to every unit, itself included: the wiring of a dense random W.

    A complete digraph plus self-loops has N^2 edges; for N = 1000 networkx needs a few
    seconds to build it, so it is built once and shared by all seeds (the topology holds no
    weights, so seeds differ only in the weights drawn on it).
    """
    G = nx.complete_graph(n_units, create_using=nx.DiGraph)
    G.add_edges_from((i, i) for i in range(n_units))
    return rc.Topology(G)


def run_seed(topology, config, seed):
    """Train on one Mackey-Glass series and generate; returns the truth, the generation and
    the scores."""
    # Separate child streams, so changing the network (N, scalings) leaves the series alone.
    r_series, r_weights = np.random.default_rng(seed).spawn(2)
    T, steps = config["train_steps"], config["generate_steps"]
    series = tasks.squash(tasks.mackey_glass(T + steps + 1, rng=r_series))
    u, y = tasks.next_step(series)  # the series is its own teacher: y[t] = u[t + 1]

    esn = rc.ESN(topology, leak=config["leak"], spectral_radius=config["spectral_radius"],
                 input_scaling=0.5, bias_scaling=0.5, weight_distribution="uniform")
    params = esn.init(r_weights)
    states, last_state = esn.run(params, u[:T])
    w = config["washout"]  # the first states still remember the zero initial state
    readout = rc.Ridge(alpha=config["alpha"]).fit(states[w:], y[w:T])

    # generated[0] predicts u[T], the first value the network has not seen: step 1.
    generated = rc.generate(esn, params, readout, last_state, steps=steps)
    truth = u[T:T + steps]
    # The scale is the signal's own spread (as in Jaeger & Haas), not that of the test window,
    # so the 84-step error means the same whatever the number of generated steps.
    scale = float(series.std())
    error_84 = abs(float(generated[HORIZON - 1, 0] - truth[HORIZON - 1, 0])) / scale
    # A forecaster that has learnt nothing: repeat the last value seen.
    persistence = np.repeat(u[T - 1:T], steps, axis=0)
    scores = {
        "seed": seed,
        "error_84": error_84,
        "log10_error_84": math.log10(error_84) if error_84 > 0 else -math.inf,
        "nrmse": metrics.nrmse(truth, generated),
        "valid_time": metrics.valid_time(truth, generated),
        "baseline_error_84": abs(float(persistence[HORIZON - 1, 0] - truth[HORIZON - 1, 0])) / scale,
        "baseline_nrmse": metrics.nrmse(truth, persistence),
    }
    return truth[:, 0], generated[:, 0], scale, scores


def print_table(config, per_seed, median):
    steps = config["generate_steps"]
    print(f"\nMackey-Glass (tau=17) closed loop, N={config['units']}, "
          f"{config['train_steps']} teacher-forced steps, {steps} generated")
    header = (f"{'seed':>6} {'84-step err/std':>16} {'log10':>7} "
              f"{f'NRMSE({steps})':>12} {'valid time':>11} {'persistence NRMSE':>18}")
    print(header)
    print("-" * len(header))
    for s in per_seed:
        print(f"{s['seed']:>6} {s['error_84']:>16.2e} {s['log10_error_84']:>7.2f} "
              f"{s['nrmse']:>12.2e} {s['valid_time']:>11.0f} {s['baseline_nrmse']:>18.2f}")
    print("-" * len(header))
    print(f"{'median':>6} {median['error_84']:>16.2e} {median['log10_error_84']:>7.2f} "
          f"{median['nrmse']:>12.2e} {median['valid_time']:>11.0f} "
          f"{median['baseline_nrmse']:>18.2f}")
    print("\npublished:")
    print(f"  Jaeger & Haas 2004, full recipe:     84-step NRMSE 10^"
          f"{PUBLISHED['jaeger_haas_2004_log10_nrmse_84']}")
    print(f"  minimal recipe (median of 3 seeds):  84-step error/std ~ 10^"
          f"{PUBLISHED['minimal_recipe_log10_error_84']}, 500-step NRMSE ~ "
          f"{PUBLISHED['minimal_recipe_nrmse_500']:.0e}")
    print(f"  (valid time: steps until the error first exceeds 0.4 std; {steps} = never)")


def plot(runs, config, path):
    """Truth against generation for the first seed, and every seed's error on a log scale."""
    fig = plotting.new_figure(figsize=(9, 6))
    if fig is None:  # no matplotlib: no figure
        return None
    top, bottom = fig.subplots(2, 1, sharex=True)
    t = np.arange(1, config["generate_steps"] + 1)
    truth, generated, _, scores = runs[0]
    top.plot(t, truth, color="black", lw=2, label="truth")
    top.plot(t, generated, color="tab:orange", lw=1, ls="--", label="closed-loop generation")
    top.set_ylabel("tanh(x - 1)")
    top.set_title(f"Mackey-Glass, N={config['units']}, seed {scores['seed']}")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    for truth, generated, scale, scores in runs:
        err = np.maximum(np.abs(generated - truth) / scale, 1e-12)  # log axis needs > 0
        bottom.semilogy(t, err, lw=1, label=f"seed {scores['seed']}")
    bottom.axvline(HORIZON, color="grey", lw=0.8)
    bottom.axhline(10 ** PUBLISHED["minimal_recipe_log10_error_84"], color="grey", ls=":",
                   label="minimal recipe, 84 steps")
    bottom.plot([HORIZON], [10 ** PUBLISHED["jaeger_haas_2004_log10_nrmse_84"]], "k*",
                ms=10, label="Jaeger & Haas 2004")
    bottom.set_xlabel("closed-loop step")
    bottom.set_ylabel("|error| / std")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return plotting.save_figure(fig, path)


def main(argv=None):
    config, out = parse_args(argv)
    start = time.perf_counter()
    topology = dense_topology(config["units"])
    runs = [run_seed(topology, config, seed) for seed in config["seeds"]]
    per_seed = [scores for *_, scores in runs]
    median = {key: float(np.median([s[key] for s in per_seed]))
              for key in per_seed[0] if key != "seed"}
    print_table(config, per_seed, median)
    figure = plot(runs, config, out / "esn_mackey_glass.png")
    seconds = time.perf_counter() - start
    print(f"\n{len(per_seed)} seeds in {seconds:.1f} s"
          + (f"; figure: {figure}" if figure else " (no matplotlib: no figure)"))
    return {"config": config, "per_seed": per_seed, "median": median,
            "published": PUBLISHED, "figure": figure, "seconds": seconds}


if __name__ == "__main__":
    main()
