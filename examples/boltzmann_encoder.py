"""The 4-2-4 encoder of Ackley, Hinton & Sejnowski (1985): a Boltzmann machine finds a code.

Two groups of 4 visible units, V1 and V2, talk to each other only through 2 hidden units. Each
group is fully connected inside, the two hidden units are connected to each other and to every
visible unit, and there is no V1-V2 edge. The four training patterns switch on unit ``i`` of
V1 and unit ``i`` of V2. To reproduce them the network must give each pattern its own code on
the 2 hidden units: all 4 codes of 2 binary units. AHS report that 250 of 250 runs found such
a code.

The setup follows AHS (REFERENCES.md, "Boltzmann machines"): each phase anneals
``2@20, 2@15, 2@12, 4@10`` (sweeps@temperature), then collects statistics over 10 sweeps at
T=10; the wake phase clamps the visible units noisily (an on-unit is clamped off with
probability 0.15, an off-unit on with 0.05); each learning cycle every weight moves by a fixed
step ``2 sign(p+ - p-)`` (``rules.sign(2)``), and a small weight decay keeps the fixed-step
rule from blowing the weights up:

    net  = recur.Boltzmann(topology, temperature=10, anneal=((2, 20), (2, 15), (2, 12)),
                           burn_in=4, sample_sweeps=10, clamp_noise=(0.15, 0.05))
    rule = rules.chain(rules.boltzmann("chl"), rules.sign(2.0), rules.weight_decay(decay))

Statistics of a cycle come from ``--presentations`` annealings of each pattern in the wake
phase and as many free-running annealings in the sleep phase. Every ``--check-every`` cycles
the hidden code of each pattern is read (visible units clamped exactly, the majority state of
each hidden unit over several annealings); a run succeeds at the first check where the 4
patterns have 4 distinct codes. Calibrated: 20/20 seeds, median ~170 learning cycles.

Run::

    python examples/boltzmann_encoder.py            # 20 seeds, up to 1000 cycles each
    python examples/boltzmann_encoder.py --quick    # 4 seeds, up to 400 cycles: seconds
"""

import argparse
import time
from pathlib import Path

import networkx as nx
import numpy as np

import recur as rc
from recur import plotting, rules

CALIBRATED = {"found": (20, 20), "median_cycles": 170}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds, at most 400 cycles")
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds (default 20, or 4 with --quick)")
    parser.add_argument("--max-cycles", type=int, default=None,
                        help="learning cycles before a run counts as failed (default 1000, "
                             "or 400 with --quick)")
    parser.add_argument("--presentations", type=int, default=5,
                        help="annealings per pattern per phase and cycle (default 5)")
    parser.add_argument("--decay", type=float, default=0.005,
                        help="weight decay per cycle, as a fraction of each weight")
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for the figure (default: current folder)")
    args = parser.parse_args(argv)
    return {
        "seeds": args.seeds or (4 if args.quick else 20),
        "max_cycles": args.max_cycles or (400 if args.quick else 1000),
        "presentations": args.presentations,
        "decay": args.decay,
        "check_every": args.check_every,
    }, args.out


def encoder_graph(n=4, n_hidden=2):
    """V1 (0..n-1) and V2 (n..2n-1) cliques, hidden units joined to each other and to all
    visible units; no V1-V2 edge."""
    G = nx.Graph()
    v1, v2 = list(range(n)), list(range(n, 2 * n))
    hidden = list(range(2 * n, 2 * n + n_hidden))
    G.add_nodes_from(v1 + v2, role="visible")
    G.add_nodes_from(hidden, role="hidden")
    for group in (v1, v2, hidden):
        G.add_edges_from((a, b) for i, a in enumerate(group) for b in group[i + 1:])
    G.add_edges_from((v, h) for v in v1 + v2 for h in hidden)
    return G


def make_network():
    return rc.Boltzmann(rc.Topology(encoder_graph()), temperature=10.0,
                        anneal=((2, 20.0), (2, 15.0), (2, 12.0)), burn_in=4, sample_sweeps=10,
                        clamp_noise=(0.15, 0.05), init_scale=0.0)


def patterns(n=4):
    eye = np.eye(n)
    return np.hstack([eye, eye])


def hidden_codes(net, params, data, rng, repeats=5):
    """Majority hidden state of each pattern (visible clamped exactly), shape (P, n_hidden)."""
    clamp = np.repeat(data, repeats, axis=0)
    samples, _ = net.sample(params, visible=clamp, rng=rng)
    mean = samples[:, :, net.hidden_units].mean(axis=1).reshape(len(data), repeats, -1)
    return (mean.mean(axis=1) > 0.5).astype(int)


def run_seed(net, seed, config):
    data = patterns()
    rule = rules.chain(rules.boltzmann("chl", n_chains=config["presentations"] * len(data)),
                       rules.sign(2.0), rules.weight_decay(config["decay"]))
    rng = np.random.default_rng(seed)
    params = net.init(rng)
    clamp = np.repeat(data, config["presentations"], axis=0)
    state = rule.init(params)
    for cycle in range(1, config["max_cycles"] + 1):
        g_collect, g_update, g_check = rng.spawn(3)
        evidence = net.collect(params, clamp, rule.requests, rng=g_collect)
        updates, state = rule.update(evidence, state, params, rng=g_update)
        params = net.constrain(rules.apply_updates(params, updates))
        if cycle % config["check_every"] == 0:
            codes = hidden_codes(net, params, data, g_check)
            if len({tuple(c) for c in codes}) == len(data):
                return {"seed": seed, "found": True, "cycles": cycle, "codes": codes,
                        "params": params}
    return {"seed": seed, "found": False, "cycles": None, "codes": codes, "params": params}


def plot(results, config, path):
    fig = plotting.new_figure(figsize=(5, 3.5))
    if fig is None:
        return None
    ax = fig.subplots()
    cycles = sorted(r["cycles"] for r in results if r["found"])
    ax.step(cycles, np.arange(1, len(cycles) + 1) / len(results), where="post")
    ax.set_xlim(0, config["max_cycles"])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("learning cycles")
    ax.set_ylabel("fraction of seeds with 4 distinct codes")
    ax.set_title("4-2-4 encoder (AHS 1985: 250/250)")
    return plotting.save_figure(fig, path)


def main(argv=None):
    config, out = parse_args(argv)
    started = time.perf_counter()
    net = make_network()
    results = [run_seed(net, seed, config) for seed in range(config["seeds"])]
    found = [r for r in results if r["found"]]
    median = float(np.median([r["cycles"] for r in found])) if found else float("nan")
    print(f"\n4-2-4 encoder, anneal 2@20 2@15 2@12 4@10, 10 sweeps of statistics at T=10, "
          f"noisy clamping, step 2 sign(p+ - p-), decay {config['decay']:g}, "
          f"{config['presentations']} annealings per pattern and phase")
    print(f"found 4 distinct hidden codes: {len(found)}/{len(results)} seeds "
          f"(AHS: 250/250; calibrated: {CALIBRATED['found'][0]}/{CALIBRATED['found'][1]}); "
          f"median learning cycles {median:.0f} (calibrated ~{CALIBRATED['median_cycles']}; "
          f"checked every {config['check_every']})")
    for r in results:
        codes = " ".join("".join(map(str, c)) for c in r["codes"])
        print(f"  seed {r['seed']:>2}: {'found' if r['found'] else 'not found':>9} "
              f"{'' if r['cycles'] is None else r['cycles']:>5}  codes {codes}")
    figure = plot(results, config, out / "boltzmann_encoder.png")
    seconds = time.perf_counter() - started
    print(f"\n{len(results)} runs in {seconds:.1f} s"
          + (f"; figure: {figure}" if figure else " (no matplotlib: no figure)"))
    return {"config": config, "results": results, "found": len(found),
            "median_cycles": median, "figure": figure, "seconds": seconds}


if __name__ == "__main__":
    main()
