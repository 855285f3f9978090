"""Does the reservoir's wiring matter? Mackey-Glass in closed loop on catalogue topologies.

The task of ``esn_mackey_glass.py`` (teacher-force on the squashed Mackey-Glass series, fit a
ridge readout to the next value, then let the network generate on its own) is run on several
topologies from the catalogue (``topologies/*.toml``), all at the same number of units and
with the same recipe: leak 0.3, weights uniform in [-0.5, 0.5] on the graph's edges, rescaled
to spectral radius 1.25, input and bias uniform in [-0.5, 0.5], ridge alpha 1e-8.

The closed-loop NRMSE is taken over the first 500 generated steps; the generation goes on to
2000 steps so that the valid time (steps until the error first exceeds 0.4 std) is measured
rather than capped: most reservoirs here stay on the true trajectory for 500-1300 steps.

Each seed fixes one Mackey-Glass series and one weight stream shared by every topology, so
the topologies are compared on the same data (a paired design) and differ only in wiring.

Run::

    python examples/esn_topologies.py             # N=500, 5 seeds, about 2 minutes
    python examples/esn_topologies.py --quick     # N=100, 2 seeds, a few seconds
    python examples/esn_topologies.py --topologies erdos_renyi ring --units 300
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import recur as rc
from recur import metrics, plotting, tasks

# "complete" is the dense reservoir of the minimal recipe (without self-loops): the reference.
TOPOLOGIES = ["complete", "erdos_renyi", "modular", "random_regular", "small_world", "ring",
              "scale_free"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=100, 1000 training steps, 2 seeds, 400 generated steps")
    parser.add_argument("--topologies", nargs="+", default=TOPOLOGIES,
                        help=f"catalogue names (default: {' '.join(TOPOLOGIES)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to run (default 0..4, or 0 1 with --quick)")
    parser.add_argument("--units", type=int, default=None,
                        help="units in every topology (default 500, or 100 with --quick)")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for the figure (default: current folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    config = {
        "topologies": list(args.topologies),
        "units": args.units or (100 if quick else 500),
        "seeds": args.seeds if args.seeds is not None else ([0, 1] if quick else list(range(5))),
        "train_steps": 1000 if quick else 3000,
        "washout": 100,
        "nrmse_steps": 200 if quick else 500,
        "generate_steps": 400 if quick else 2000,
        "leak": 0.3,
        "spectral_radius": 1.25,
        "alpha": 1e-8,
    }
    return config, args.out


def progress(cells):
    """A tqdm bar over the (topology, seed) cells when tqdm is installed and stdout is a
    terminal; the plain iterable otherwise, so logs and tests stay clean."""
    try:
        from tqdm import tqdm
    except ImportError:
        return cells
    return tqdm(cells, desc="topology x seed", unit="cell", disable=not sys.stdout.isatty(),
                leave=False)


def streams(seed):
    """Fresh generators for a seed's series, weights and graph.

    Made anew for every cell, so every topology sees the same series and the same weight
    draws; separate streams, so the graph generator's draws do not shift the weights.
    """
    return np.random.default_rng(seed).spawn(3)


def series_for(seed, config):
    """The squashed Mackey-Glass series of a seed."""
    r_series, _, _ = streams(seed)
    n = config["train_steps"] + config["generate_steps"] + 1
    return tasks.squash(tasks.mackey_glass(n, rng=r_series))


def run_cell(name, seed, series, config):
    """Build one topology, train on the seed's series, generate; returns the scores."""
    _, r_weights, r_graph = streams(seed)
    topology = rc.Topology.load(name, rng=r_graph, n=config["units"])
    esn = rc.ESN(topology, leak=config["leak"], spectral_radius=config["spectral_radius"],
                 input_scaling=0.5, bias_scaling=0.5, weight_distribution="uniform")
    params = esn.init(r_weights)

    T, w, steps = config["train_steps"], config["washout"], config["generate_steps"]
    u, y = tasks.next_step(series)
    states, last_state = esn.run(params, u[:T])
    readout = rc.Ridge(alpha=config["alpha"]).fit(states[w:], y[w:T])
    generated = rc.generate(esn, params, readout, last_state, steps=steps)
    truth = u[T:T + steps]
    n = config["nrmse_steps"]
    return {
        "edges": topology.n_edges,
        "nrmse": metrics.nrmse(truth[:n], generated[:n]),
        "valid_time": metrics.valid_time(truth, generated),
    }


def summarise(cells, config):
    """Median and interquartile range per topology, in the order asked for."""
    rows = []
    for name in config["topologies"]:
        mine = [c for c in cells if c["topology"] == name]
        row = {"topology": name, "edges": float(np.median([c["edges"] for c in mine]))}
        for key in ("nrmse", "valid_time"):
            q25, q50, q75 = np.percentile([c[key] for c in mine], [25, 50, 75])
            row[key] = float(q50)
            row[f"{key}_iqr"] = (float(q25), float(q75))
        rows.append(row)
    return rows


def print_table(rows, config):
    steps, n = config["generate_steps"], config["nrmse_steps"]
    print(f"\nMackey-Glass closed loop on catalogue topologies: N={config['units']}, "
          f"{len(config['seeds'])} seeds, {config['train_steps']} teacher-forced steps, "
          f"{steps} generated")
    print(f"median [interquartile range]; NRMSE over the first {n} generated steps; valid "
          f"time = steps until the error first exceeds 0.4 std ({steps} = never)")
    header = (f"{'topology':<15} {'edges':>7} {f'NRMSE({n})':>11} {'[IQR]':>21} "
              f"{'valid time':>10} {'[IQR]':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        lo, hi = r["nrmse_iqr"]
        vlo, vhi = r["valid_time_iqr"]
        print(f"{r['topology']:<15} {r['edges']:>7.0f} {r['nrmse']:>11.2e} "
              f"{f'[{lo:.1e}, {hi:.1e}]':>21} {r['valid_time']:>10.0f} "
              f"{f'[{vlo:.0f}, {vhi:.0f}]':>12}")


def plot(cells, config, path):
    """Box and strip plot per topology: log10 NRMSE and valid time."""
    names = config["topologies"]
    fig = plotting.new_figure(figsize=(max(6, 1.3 * len(names)), 6.5))
    if fig is None:  # no matplotlib: no figure
        return None
    top, bottom = fig.subplots(2, 1, sharex=True)
    jitter = np.random.default_rng(0)  # only spreads the dots; no result depends on it
    for ax, key, label in ((top, "nrmse", f"NRMSE over {config['nrmse_steps']} steps"),
                           (bottom, "valid_time", "valid time (steps)")):
        values = [[c[key] for c in cells if c["topology"] == name] for name in names]
        ax.boxplot(values, widths=0.5, showfliers=False)
        for i, v in enumerate(values, start=1):
            ax.plot(i + jitter.uniform(-0.12, 0.12, len(v)), v, "o", color="tab:blue",
                    alpha=0.7, ms=4)
        ax.set_ylabel(label)
    top.set_yscale("log")
    bottom.axhline(config["generate_steps"], color="grey", ls=":", lw=0.8)
    bottom.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    top.set_title(f"Mackey-Glass closed loop, N={config['units']}, "
                  f"{len(config['seeds'])} seeds per topology")
    return plotting.save_figure(fig, path)


def main(argv=None):
    config, out = parse_args(argv)
    start = time.perf_counter()
    series = {seed: series_for(seed, config) for seed in config["seeds"]}
    cells = []
    for name, seed in progress([(n, s) for n in config["topologies"] for s in config["seeds"]]):
        cells.append({"topology": name, "seed": seed,
                      **run_cell(name, seed, series[seed], config)})
    rows = summarise(cells, config)
    print_table(rows, config)
    figure = plot(cells, config, out / "esn_topologies.png")
    seconds = time.perf_counter() - start
    print(f"\n{len(cells)} cells in {seconds:.1f} s"
          + (f"; figure: {figure}" if figure else " (no matplotlib: no figure)"))
    return {"config": config, "cells": cells, "rows": rows, "figure": figure,
            "seconds": seconds}


if __name__ == "__main__":
    main()
