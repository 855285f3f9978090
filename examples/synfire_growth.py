"""Synfire chains grow from spontaneous activity: STDP plus heterosynaptic caps.

A random recurrent network of leaky integrate-and-fire units (``recur.SpikingNet``) receives
no input but noise: a fluctuating background current and sparse spontaneous spikes
(``tasks.spontaneous``). Its weights learn from the activity the network generates itself,
with pair-based STDP (``rules.stdp``, bounded in ``[0, w_max]``) followed by caps on each
unit's summed input and output weight (``rules.heterosynaptic_cap``), the two ingredients of
Fiete, Senn, Wang & Hahnloser (2010). Causal pairs (``j`` fires, then ``i`` fires because of
it) potentiate ``W[i, j]``; the caps make the units compete, so each ends up with about
``max_out / w_max`` strong successors and ``max_in / w_max`` strong predecessors. With both
caps at ``w_max`` the strong links form a one-to-one successor map: feed-forward chains.

Reported, before and after learning:

- the chain index (fraction of the weight on the heaviest one-to-one successor map,
  ``recur.chains.chain_index``) against controls with the weights shuffled over the same
  graph, and its z-score;
- the chains of strong links (``W > w_max / 2``): how many, and their lengths;
- the lengths of the spike sequences that run along the learned chains in spontaneous
  activity (each spike followed by a spike of its successor within ``max_lag``), with the
  maximum-likelihood exponent of a power law fitted to their tail;
- ``--out``: the weight matrix before and after, both sorted by the learned order (a chain is
  the band just below the diagonal), and the sequence-length distribution.

Time in ms, weights are jumps of the synaptic current in mV (``recur.networks.spiking.
psp_peak``: a weight of 50 gives a PSP of about 6.7 mV with ``tau_m = 5``, ``tau_syn = 1``;
the threshold is 15 mV above rest, the free membrane sits at 10 +- 2 mV). ``W[post, pre]``,
``W = A.T`` of the networkx graph.

Measured (``python examples/synfire_growth.py --seeds 0 1 2``, N = 150, 300 chunks of
250 ms x 16 trials, ~15 s per seed on one busy core):

- chain index before 0.092-0.095, at its control (z = -0.3 to 0.7); after 0.84-0.89
  against shuffled controls of 0.50-0.51 +- 0.02 (z = 15-21);
- 10-13 chains of strong links covering 147-149 of the 150 units, the longest 27-50 units;
- the mean rate rises from 11 Hz to 44-47 Hz as the chains start to carry activity;
- spontaneous sequences along the chains up to 27-62 spikes long (before learning, on the
  same successor map, chance gives at most 5), with a broad tail: the power-law exponent
  fitted from length 2 (``tail_exponent``, Clauset et al.'s approximation) is 1.8-1.9. The
  distribution is bounded by the chain lengths of so small a network, and steeper than the
  exponent near 1 that Fiete et al. report for their larger networks.

``--quick`` (N = 60, 40 chunks, w_max = 50) runs in a few seconds per seed; for seeds 0-5
the chain index rises to 0.51-0.60 against controls of 0.36-0.39 (z = 8.6-12.7), with
chains up to 5-8 units (tests/test_synfire_growth.py checks seeds 0 and 1).

Run::

    python examples/synfire_growth.py               # N = 150, ~15 s per seed
    python examples/synfire_growth.py --quick       # N = 60: seconds
    python examples/synfire_growth.py --out figs    # also write the figures

References
----------
Fiete, Senn, Wang & Hahnloser, "Spike-time-dependent plasticity and heterosynaptic
competition organize networks to produce long scale-free sequences of neural activity",
Neuron 65:563-576 (2010). Song, Miller & Abbott, Nat. Neurosci. 3:919 (2000).
"""

import argparse
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import networkx as nx
import numpy as np

import recur as rc
from recur import plotting, rules, tasks
from recur.chains import (chain_index, chain_order, chain_successors, find_chains,
                          sequence_lengths, tail_exponent)


@dataclass(frozen=True)
class Config:
    """Sizes and constants of one run (ms, mV, Hz)."""

    n_units: int = 150
    p_connect: float = 0.12          # directed Erdos-Renyi edge probability
    epochs: int = 300                # training chunks
    chunk_ms: float = 250.0          # duration of one chunk
    trials: int = 16                 # independent copies of the network per chunk
    dt: float = 0.5
    tau_m: float = 5.0
    tau_syn: float = 1.0
    delay: float = 1.0
    t_ref: float = 2.0
    noise_mean: float = 10.0         # free membrane 10 +- 2 mV above rest (threshold: 15)
    noise_std: float = 2.0
    spontaneous_hz: float = 5.0      # imposed spontaneous spikes per unit
    w_init: float = 5.0              # initial weights uniform in [0, w_init]
    w_max: float = 70.0              # a PSP of ~9 mV: one strong input nearly always fires
    cap: float = 1.0                 # max_in = max_out = cap * w_max
    a_plus: float = 0.5
    a_minus_ratio: float = 1.1       # a_minus = ratio * a_plus: uncorrelated pairs depress
    tau_plus: float = 10.0
    tau_minus: float = 10.0
    test_ms: float = 1000.0          # spontaneous activity analysed before and after
    max_lag_ms: float = 5.0          # a successor's spike this soon continues a sequence
    n_shuffles: int = 30


# CI size. A smaller w_max (PSP ~6.7 mV) keeps the rate of the small, fast-learning network
# moderate; with w_max = 70 its rate climbs to ~30 Hz and the chains come out less clean.
QUICK = Config(n_units=60, p_connect=0.2, epochs=40, a_plus=2.0, w_max=50.0, test_ms=500.0,
               n_shuffles=20)


def build(config, rng):
    """The network and its initial weights."""
    g_graph, g_init = rng.spawn(2)
    G = nx.gnp_random_graph(config.n_units, config.p_connect,
                            seed=int(g_graph.integers(2**31)), directed=True)
    w_init = config.w_init
    net = rc.SpikingNet(rc.Topology(G), model="lif", dt=config.dt, tau_m=config.tau_m,
                        tau_syn=config.tau_syn, delay=config.delay, t_ref=config.t_ref,
                        noise_mean=config.noise_mean, noise_std=config.noise_std,
                        weight=lambda g, n: g.uniform(0.0, w_init, n),
                        w_min=0.0, w_max=config.w_max)
    return net, net.init(g_init)


def rule_for(config):
    """STDP bounded to [0, w_max], then the caps on each unit's summed input and output."""
    cap = config.cap * config.w_max
    return rules.chain(
        rules.stdp(config.a_plus, config.a_minus_ratio * config.a_plus, config.tau_plus,
                   config.tau_minus, w_max=config.w_max),
        rules.heterosynaptic_cap(max_in=cap, max_out=cap))


def spontaneous_chunks(config, n, rng):
    """``n`` chunks of noise-only drive, one fresh draw each."""
    return [{"duration": config.chunk_ms, "trials": config.trials,
             "drive": tasks.spontaneous(config.n_units, config.chunk_ms, config.spontaneous_hz,
                                        dt=config.dt, trials=config.trials, rng=g)}
            for g in rng.spawn(n)]


def activity(net, params, config, rng):
    """Spontaneous activity (raster) of ``params`` for ``test_ms`` in ``trials`` copies."""
    g_drive, g_noise = rng.spawn(2)
    drive = tasks.spontaneous(config.n_units, config.test_ms, config.spontaneous_hz,
                              dt=config.dt, trials=config.trials, rng=g_drive)
    raster, _ = net.run(params, config.test_ms, drive, trials=config.trials, rng=g_noise)
    return raster


def grow(config, seed):
    """Train one network from spontaneous activity; return the measurements."""
    rng = np.random.default_rng(seed)
    g_build, g_data, g_train, g_index, g_act = rng.spawn(5)
    net, params = build(config, g_build)
    data = spontaneous_chunks(config, config.epochs, g_data)
    started = time.perf_counter()
    learned, history = rc.train(net, params, rule_for(config), data, epochs=config.epochs,
                                rng=g_train, progress=False)
    seconds = time.perf_counter() - started
    g_before, g_after = g_index.spawn(2)
    before = chain_index(params["W"], n_shuffles=config.n_shuffles, rng=g_before)
    after = chain_index(learned["W"], n_shuffles=config.n_shuffles, rng=g_after)
    threshold = 0.5 * config.w_max
    chains, lengths = find_chains(learned["W"], threshold)
    successors = chain_successors(learned["W"], threshold)
    max_lag = max(1, int(round(config.max_lag_ms / config.dt)))
    g1, g2 = g_act.spawn(2)
    raster_before = activity(net, params, config, g1)
    raster_after = activity(net, learned, config, g2)
    # The learned successor map read on the activity before learning: sequences by chance.
    seq_before = sequence_lengths(raster_before, successors, max_lag=max_lag)
    seq_after = sequence_lengths(raster_after, successors, max_lag=max_lag)
    alpha, n_tail = tail_exponent(seq_after, x_min=2)
    return {
        "seed": seed, "params": params, "learned": learned, "before": before, "after": after,
        "chains": chains, "chain_lengths": lengths, "successors": successors,
        "sequences_before": seq_before, "sequences_after": seq_after,
        "tail_exponent": alpha, "n_tail": n_tail,
        "rate_hz": (history.loss[0], history.loss[-1]), "train_seconds": seconds,
        "strong_links": int((learned["W"].data > threshold).sum()),
    }


def _row(r):
    b, a = r["before"], r["after"]
    lengths = r["chain_lengths"]
    seq = r["sequences_after"]
    return (f"{r['seed']:>4} {b.index:7.3f} {b.control_mean:7.3f} {b.z:6.1f} "
            f"{a.index:7.3f} {a.control_mean:7.3f}+-{a.control_std:5.3f} {a.z:6.1f} "
            f"{lengths.size:6d} {int(lengths.max()) if lengths.size else 0:5d} "
            f"{int(lengths.sum()):5d} {r['sequences_before'].size:7d} {seq.size:7d} "
            f"{int(seq.max()) if seq.size else 0:5d} {r['tail_exponent']:6.2f} "
            f"{r['rate_hz'][0]:6.1f} {r['rate_hz'][1]:6.1f} {r['train_seconds']:6.1f}")


def print_tables(results, config):
    print(f"synfire growth: N = {config.n_units}, p = {config.p_connect}, "
          f"{config.epochs} x {config.chunk_ms:g} ms x {config.trials} trials of spontaneous "
          f"activity; STDP a+ = {config.a_plus}, a- = {config.a_minus_ratio} a+, "
          f"tau = {config.tau_plus:g}/{config.tau_minus:g} ms; caps in/out = "
          f"{config.cap:g} w_max = {config.cap * config.w_max:g}")
    print("chain index: fraction of the weight on the heaviest one-to-one successor map; "
          "control: weights shuffled over the same graph")
    print("seed  before control    z    after  control          z  chains  max  units "
          "seq_pre seq_post  max  alpha rate0  rate1  secs")
    for r in results:
        print(_row(r))
    for r in results:
        seq = r["sequences_after"]
        if seq.size:
            counts = np.bincount(seq)
            shown = ", ".join(f"{k}:{counts[k]}" for k in range(2, counts.size) if counts[k])
            print(f"seed {r['seed']}: sequence lengths after learning (length:count) {shown}")
        print(f"seed {r['seed']}: chain lengths {r['chain_lengths'].tolist()}")


def plot(result, config, out):
    fig = plotting.new_figure(figsize=(12, 4))
    if fig is None:
        print("matplotlib is not installed: no figures")
        return []
    order = chain_order(result["learned"]["W"], 0.5 * config.w_max)
    axes = fig.subplots(1, 3)
    for ax, key, title in ((axes[0], "params", "W before (learned order)"),
                           (axes[1], "learned", "W after (learned order)")):
        W = result[key]["W"].toarray()[np.ix_(order, order)]
        im = ax.imshow(W, cmap="Greys", vmin=0, vmax=config.w_max, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("pre (sorted)")
        ax.set_ylabel("post (sorted)")
    fig.colorbar(im, ax=axes[1], shrink=0.8, label="weight (mV jump)")
    ax = axes[2]
    for key, label in (("sequences_before", "before"), ("sequences_after", "after")):
        seq = result[key]
        if seq.size:
            counts = np.bincount(seq)[2:]
            x = np.arange(2, 2 + counts.size)
            keep = counts > 0
            ax.loglog(x[keep], counts[keep] / seq.size, "o-", label=label)
    ax.minorticks_off()
    longest = max([3] + [int(result[k].max()) for k in ("sequences_before", "sequences_after")
                         if result[k].size])
    ticks = [k for k in (2, 3, 5, 10, 20, 50, 100, 200) if k <= longest]
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.set_xlabel("sequence length (spikes)")
    ax.set_ylabel("fraction of sequences")
    ax.set_title("sequences along the chains")
    ax.legend()
    path = plotting.save_figure(fig, Path(out) / f"synfire_growth_seed{result['seed']}.png")
    return [path]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: N = 60, seconds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--units", type=int, help="override the number of units")
    parser.add_argument("--epochs", type=int, help="override the number of training chunks")
    parser.add_argument("--cap", type=float, help="override the caps, in units of w_max")
    parser.add_argument("--w-max", type=float, help="override w_max (mV jump)")
    parser.add_argument("--out", help="folder for the figures")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    if args.units is not None:
        config = replace(config, n_units=args.units)
    if args.epochs is not None:
        config = replace(config, epochs=args.epochs)
    if args.cap is not None:
        config = replace(config, cap=args.cap)
    if args.w_max is not None:
        config = replace(config, w_max=args.w_max)
    results = [grow(config, seed) for seed in args.seeds]
    print_tables(results, config)
    figures = []
    if args.out:
        for r in results:
            figures += plot(r, config, args.out)
    return {"config": asdict(config), "results": results, "figures": figures}


if __name__ == "__main__":
    main()
