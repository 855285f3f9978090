"""Equilibrium propagation approaches the exact gradient as beta -> 0; symmetric nudging sooner.

On random sparse energy networks (tanh units, a G(n, p) graph, 3 input and 2 output units,
random biases, a batch of random input/target pairs), the EP estimate

    one-sided:  (1/beta) (s s^T at +beta  -  s s^T at 0)
    symmetric:  (1/(2 beta)) (s s^T at +beta  -  s s^T at -beta)

is compared with the exact descent direction (recurrent backpropagation through the free
fixed point) by its cosine and norm ratio, for several beta. Scellier & Bengio (2017) show
the one-sided estimate has an O(beta) bias; Laborieux et al. (2021) that the symmetric one
cancels it to O(beta^2): 1 - cosine should fall ~100x (one-sided) and ~10^4x (symmetric) per
factor 10 in beta (REFERENCES.md: calibrated 0.9999 one-sided and 0.9999997 symmetric at
beta 0.1 on 10 networks).

The phases settle to a tolerance of 1e-12, so that what is measured is the estimator's bias
and not the settling error.

Run::

    python examples/ep_gradient_alignment.py            # 10 networks, beta 0.1, 0.01, 0.001
    python examples/ep_gradient_alignment.py --quick    # 3 networks, 2 betas: seconds
"""

import argparse
import time

import networkx as nx
import numpy as np

import recur as rc
from recur import rules

CALIBRATED = {(0.1, False): 0.9999, (0.1, True): 0.9999997}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 networks, 2 betas")
    parser.add_argument("--networks", type=int, default=None, help="default 10 (3 quick)")
    parser.add_argument("--units", type=int, default=12)
    parser.add_argument("--p", type=float, default=0.35, help="edge probability")
    parser.add_argument("--betas", type=float, nargs="+", default=None)
    return parser.parse_args(argv)


def random_energy_net(seed, n, p):
    """A G(n, p) graph with units 0-2 as inputs and the last two as outputs; random params."""
    G = nx.gnp_random_graph(n, p, seed=seed)
    topo = rc.Topology(G, roles={"input": [0, 1, 2], "output": [n - 2, n - 1]})
    net = rc.EnergyNet(topo, activation="tanh", tol=1e-12, max_iter=100_000)
    rng = np.random.default_rng(seed)
    params = net.init(rng)
    params["b"] = rng.normal(0.0, 0.2, net.n_units)
    data = (rng.uniform(-1.0, 1.0, (8, 3)), rng.uniform(-0.5, 0.5, (8, 2)))
    return net, params, data


def measure(n_networks, betas, n, p):
    """{(beta, symmetric): array (n_networks, 2) of (cosine, norm ratio)}."""
    out = {}
    for seed in range(n_networks):
        net, params, data = random_energy_net(seed, n, p)
        for beta in betas:
            for symmetric in (False, True):
                rule = rules.equilibrium_propagation(beta, symmetric=symmetric)
                a = rc.diagnostics.alignment(rule, net, params, data, repeats=1)["all"]
                out.setdefault((beta, symmetric), []).append((a["cosine_mean"],
                                                              a["norm_ratio_mean"]))
    return {k: np.array(v) for k, v in out.items()}


def print_table(results, betas):
    print(f"{'beta':>7} {'nudging':>10} {'cos median':>13} {'cos min':>13} "
          f"{'1-cos median':>13} {'ratio median':>13} {'calibrated':>11}")
    for beta in betas:
        for symmetric in (False, True):
            r = results[(beta, symmetric)]
            cal = CALIBRATED.get((beta, symmetric))
            print(f"{beta:>7g} {'symmetric' if symmetric else 'one-sided':>10} "
                  f"{np.median(r[:, 0]):>13.8f} {r[:, 0].min():>13.8f} "
                  f"{np.median(1 - r[:, 0]):>13.2e} {np.median(r[:, 1]):>13.4f} "
                  f"{'' if cal is None else cal:>11}")
    for a, b in zip(betas, betas[1:]):
        for symmetric in (False, True):
            shrink = (1 - results[(a, symmetric)][:, 0]) / (1 - results[(b, symmetric)][:, 0])
            print(f"1 - cos shrinks {np.median(shrink):.3g}x (median over networks) from beta "
                  f"{a:g} to {b:g}, {'symmetric' if symmetric else 'one-sided'}")


def main(argv=None):
    args = parse_args(argv)
    n_networks = args.networks or (3 if args.quick else 10)
    betas = args.betas or ([0.1, 0.01] if args.quick else [0.1, 0.01, 0.001])
    started = time.perf_counter()
    results = measure(n_networks, betas, args.units, args.p)
    print(f"EP against the exact gradient: {n_networks} random G({args.units}, {args.p}) tanh "
          "energy networks, 3 inputs, 2 outputs, batch 8, settled to 1e-12")
    print_table(results, betas)
    print(f"{time.perf_counter() - started:.1f} s")
    return results


if __name__ == "__main__":
    main()
