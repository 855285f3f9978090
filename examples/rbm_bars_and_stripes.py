"""Restricted Boltzmann machines on bars and stripes, scored by their exact log-likelihood.

Bars and stripes (BAS) of a ``r x r`` grid: every image whose on-pixels fill whole rows, or
whole columns (``2^(r+1) - 2`` distinct images, MacKay 2003). An RBM with ``n_hidden`` hidden
units is trained on all of them by full-batch contrastive divergence (Hinton 2002):

- CD-1 and CD-10: the sleep phase is 1 or 10 blocked Gibbs sweeps started at the data;
- PCD: 1 sweep of persistent chains (Tieleman 2008), one chain per pattern.

The model is small enough to score exactly: ``log p(v)`` is summed over one layer
analytically and enumerated over the other (``2^min(n_v, n_h)`` configurations), so the mean
log-likelihood per pattern, in nats, is exact. The best any model can do is ``-log(#images)``
(-2.64 for 3x3, -3.40 for 4x4). Calibrated bands (REFERENCES.md): n_hidden 8 (3x3) / 16 (4x4),
learning rate 0.1, 5000 epochs: 3x3 CD-1 -3.26, CD-10 -2.90; 4x4 CD-1 -5.05, CD-10 -3.69.

Each method is ``rules.chain(rules.boltzmann("cd", k=..., persistent=...), rules.scale(lr))``
on ``recur.Boltzmann(Topology(graphs.bipartite_graph(n_v, n_h)))``. The loop is
``collect -> update -> apply_updates -> constrain`` written out, so that the persistent chains
(the network state in the evidence) carry over from epoch to epoch and the exact
log-likelihood can be scored every ``--eval-every`` epochs.

Run::

    python examples/rbm_bars_and_stripes.py            # 3x3 and 4x4, 5000 epochs, 3 seeds
    python examples/rbm_bars_and_stripes.py --quick    # 3x3, 1500 epochs, 2 seeds: seconds
"""

import argparse
import time
from pathlib import Path

import numpy as np

import recur as rc
from recur import metrics, plotting, rules, tasks

METHODS = {"CD-1": dict(mode="cd", k=1), "CD-10": dict(mode="cd", k=10),
           "PCD": dict(mode="cd", k=1, persistent=True)}
HIDDEN = {3: 8, 4: 16}
CALIBRATED = {(3, "CD-1"): -3.26, (3, "CD-10"): -2.90, (4, "CD-1"): -5.05, (4, "CD-10"): -3.69}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3x3 only, 1500 epochs, 2 seeds")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="grid sizes r (default 3 4, or 3 with --quick)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="full-batch epochs (default 5000, or 1500 with --quick)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default 0 1 2, or 0 1 with --quick)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--eval-every", type=int, default=None,
                        help="epochs between exact log-likelihood evaluations")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for the figure (default: current folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    epochs = args.epochs or (1500 if quick else 5000)
    return {
        "sizes": args.sizes or ([3] if quick else [3, 4]),
        "epochs": epochs,
        "seeds": args.seeds if args.seeds is not None else ([0, 1] if quick else [0, 1, 2]),
        "learning_rate": args.learning_rate,
        "eval_every": args.eval_every or max(1, epochs // 50),
        "methods": args.methods,
    }, args.out


def fit(net, params, rule, data, epochs, eval_every, rng):
    """Train, threading the network state (persistent chains) through every epoch.

    Returns the final params and the exact log-likelihood curve ``[(epoch, nats), ...]``.
    """
    state = rule.init(params)
    chains = None
    curve = [(0, metrics.log_likelihood(net, params, data))]
    for epoch in range(1, epochs + 1):
        g_collect, g_update = rng.spawn(2)
        evidence = net.collect(params, data, rule.requests, state=chains, rng=g_collect)
        chains = evidence.state
        updates, state = rule.update(evidence, state, params, rng=g_update)
        params = net.constrain(rules.apply_updates(params, updates))
        if epoch % eval_every == 0 or epoch == epochs:
            curve.append((epoch, metrics.log_likelihood(net, params, data)))
    return params, curve


def run(config):
    records = []
    for r in config["sizes"]:
        data = tasks.bars_and_stripes(r)
        n_hidden = HIDDEN.get(r, 2 * r * r)
        net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(r * r, n_hidden)))
        for method in config["methods"]:
            rule = rules.chain(rules.boltzmann(**METHODS[method]),
                               rules.scale(config["learning_rate"]))
            for seed in config["seeds"]:
                r_init, r_train = np.random.default_rng(seed).spawn(2)
                started = time.perf_counter()
                params, curve = fit(net, net.init(r_init), rule, data, config["epochs"],
                                    config["eval_every"], r_train)
                records.append({"size": r, "n_hidden": n_hidden, "method": method,
                                "seed": seed, "log_likelihood": curve[-1][1], "curve": curve,
                                "optimum": -float(np.log(len(data))),
                                "seconds": time.perf_counter() - started})
    return records


def summarise(records, config):
    rows = []
    for r in config["sizes"]:
        for method in config["methods"]:
            mine = [x for x in records if x["size"] == r and x["method"] == method]
            ll = np.array([x["log_likelihood"] for x in mine])
            rows.append({"size": r, "method": method, "n_hidden": mine[0]["n_hidden"],
                         "median": float(np.median(ll)), "min": float(ll.min()),
                         "max": float(ll.max()), "optimum": mine[0]["optimum"],
                         "calibrated": CALIBRATED.get((r, method)),
                         "seconds_per_epoch": float(np.mean([x["seconds"] for x in mine]))
                         / config["epochs"]})
    return rows


def print_table(rows, config):
    print(f"\nRBM on bars and stripes: exact log-likelihood per pattern (nats), "
          f"{config['epochs']} full-batch epochs, lr {config['learning_rate']:g}, median "
          f"[min, max] over seeds {config['seeds']}")
    header = f"{'grid':>5} {'n_h':>4} {'method':>6} {'median':>8} {'range':>17} " \
             f"{'calibrated':>10} {'optimum':>8} {'ms/epoch':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        cal = f"{row['calibrated']:.2f}" if row["calibrated"] is not None else "-"
        print(f"{row['size']}x{row['size']:<3} {row['n_hidden']:>4} {row['method']:>6} "
              f"{row['median']:>8.2f} [{row['min']:>6.2f}, {row['max']:>6.2f}] {cal:>10} "
              f"{row['optimum']:>8.2f} {1e3 * row['seconds_per_epoch']:>9.3f}")


def plot(records, config, path):
    fig = plotting.new_figure(figsize=(5 * len(config["sizes"]), 4))
    if fig is None:
        return None
    axes = np.atleast_1d(fig.subplots(1, len(config["sizes"])))
    colours = {"CD-1": "tab:blue", "CD-10": "tab:green", "PCD": "tab:red"}
    for ax, r in zip(axes, config["sizes"]):
        for x in records:
            if x["size"] != r:
                continue
            e, ll = np.array(x["curve"]).T
            ax.plot(e, ll, color=colours[x["method"]], lw=1,
                    label=x["method"] if x["seed"] == config["seeds"][0] else None)
        ax.axhline(-np.log(len(tasks.bars_and_stripes(r))), color="k", ls="--", lw=0.8,
                   label="optimum")
        ax.set_title(f"BAS {r}x{r}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("exact log-likelihood per pattern (nats)")
        ax.legend(fontsize=7)
    return plotting.save_figure(fig, path)


def main(argv=None):
    config, out = parse_args(argv)
    started = time.perf_counter()
    records = run(config)
    rows = summarise(records, config)
    print_table(rows, config)
    figure = plot(records, config, out / "rbm_bars_and_stripes.png")
    seconds = time.perf_counter() - started
    print(f"\n{len(records)} runs in {seconds:.1f} s"
          + (f"; figure: {figure}" if figure else " (no matplotlib: no figure)"))
    return {"config": config, "records": records, "rows": rows, "figure": figure,
            "seconds": seconds}


if __name__ == "__main__":
    main()
