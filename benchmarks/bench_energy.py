"""Speed of the energy-based networks: Hopfield recall and RBM learning.

Every number is a ratio of two ways of doing the same work, timed in this one process,
alternating, best of ``repeats`` (the machine may be shared: only ratios within one run are
meaningful). BLAS is pinned to one thread before numpy is imported, so every workload here is
single-threaded, the references included.

Rows:

- synchronous Hopfield recall of ``B`` probes on ``N`` units (a random symmetric ``W`` on the
  complete graph, so that the probes keep changing for the sweeps timed): floating-point rate
  of ``Hopfield.recall(mode="sync")``, counting ``2 B N^2`` per sweep, against the rate of one
  float64 matrix product of the same shape (``np.dot``, ``(B, N) @ (N, N)``) measured here.
  Goal: at least half the matrix-multiply rate.
- asynchronous recall: time per single-unit update of ``Hopfield.recall(mode="async")`` over
  ``B`` probes against a per-unit Python loop (one field ``W[i] @ s`` and one sign per unit
  and probe, units in a random order). Goal: at least 10x faster.
- RBM learning on bars-and-stripes 4x4 (30 patterns, 16 visible, 16 hidden units): time per
  CD-1 epoch of ``recur.train`` (full batch, ``rules.chain(rules.boltzmann("cd", k=1),
  rules.scale(0.1))``) against scikit-learn's ``BernoulliRBM(n_components=16,
  learning_rate=0.1, batch_size=30)`` per iteration of ``fit`` (one full-batch update per
  epoch in both; scikit-learn's is persistent CD-1). Goal: no slower. A second row reports
  scikit-learn at its default ``batch_size=10`` (three updates per epoch), for context, and
  a third the floor: recur's compiled CD step and the same update in a bare Python loop,
  without the general path (what the epoch costs when per-call overhead is gone).
  scikit-learn is needed only here (``pip install scikit-learn``); the RBM rows are skipped
  without it.

    python benchmarks/bench_energy.py            # full sizes, writes the results file
                                                 # benchmarks/results/bench_energy.md
    python benchmarks/bench_energy.py --quick    # small sizes, a few seconds; prints only
    python benchmarks/bench_energy.py --quick --out /tmp/table.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (first: it pins BLAS to one thread before numpy loads)

import argparse  # noqa: E402
import time  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

import recur  # noqa: E402
from recur import rules, tasks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_energy.md"

FULL = {
    "repeats": 5,
    "sync": (1000, 64, 10),      # N, probes, sweeps
    "async": (1000, 64, 2, 200),  # N, probes, sweeps; units of the Python-loop reference
    "rbm_epochs": 2000,
}
QUICK = {
    "repeats": 2,
    "sync": (200, 16, 5),
    "async": (200, 16, 2, 100),
    "rbm_epochs": 100,
}


def header(cfg, quick):
    return [
        "# Energy-based networks: speed",
        "",
        harness.machine_line(*_sklearn_version()),
        "",
        harness.BLAS_NOTE,
        "",
        f"Mode: {'quick' if quick else 'full'}; best of {cfg['repeats']} alternating repeats.",
        "",
    ]


def _sklearn_version():
    try:
        import sklearn

        return (f"scikit-learn {sklearn.__version__}",)
    except ImportError:
        return ()


def _random_hopfield(N, rng):
    net = recur.Hopfield(recur.Topology(nx.complete_graph(N)))
    W = rng.normal(0.0, 1.0 / np.sqrt(N), (N, N))
    W = 0.5 * (W + W.T)
    np.fill_diagonal(W, 0.0)
    return net, {"W": W, "b": np.zeros(N)}


def bench_sync(cfg, table, checks):
    N, B, sweeps = cfg["sync"]
    rng = np.random.default_rng(0)
    net, params = _random_hopfield(N, rng)
    probes = np.where(rng.random((B, N)) < 0.5, -1.0, 1.0)
    W = params["W"]

    def ours():
        return net.recall(params, probes, mode="sync", max_sweeps=sweeps, return_sweeps=True)

    done = ours()[1]
    ran = int(np.max(done))

    def gemm():
        np.dot(probes, W)

    t_ours, t_gemm = harness.alternating([ours, gemm], cfg["repeats"])
    flops = 2.0 * B * N * N
    rate_ours = flops * ran / t_ours / 1e9
    rate_gemm = flops / t_gemm / 1e9
    table.add(f"Hopfield sync recall, {B} probes, N={N}, {ran} sweeps (GFLOP/s)",
              f"{rate_ours:.2f}", f"{rate_gemm:.2f} (np.dot, same shape)",
              rate_ours / rate_gemm, goal=0.5)
    checks.append(f"sync recall ran {ran} sweeps of the {sweeps} allowed (probes still "
                  "changing, so every sweep is a full matrix product)")


def _python_async(W, b, s, order):
    """Per-unit reference: one field and one sign per unit, in ``order``."""
    for i in order:
        h = W[i] @ s + b[i]
        if h > 0:
            s[i] = 1.0
        elif h < 0:
            s[i] = -1.0


def bench_async(cfg, table, checks):
    N, B, sweeps, n_ref = cfg["async"]
    rng = np.random.default_rng(1)
    net, params = _random_hopfield(N, rng)
    probes = np.where(rng.random((B, N)) < 0.5, -1.0, 1.0)
    W, b = params["W"], params["b"]
    order = rng.permutation(N)[:n_ref]
    state = probes[0].copy()

    def ours():
        return net.recall(params, probes, mode="async", max_sweeps=sweeps, rng=3,
                          return_sweeps=True)

    # return_sweeps: the last sweep that changed each probe; a probe that settled ran one
    # more sweep to find out (and then stopped), one that did not ran them all.
    changed = ours()[1]
    ran = int(np.minimum(changed + 1, sweeps).sum())

    def loop():
        _python_async(W, b, state, order)

    t_ours, t_loop = harness.alternating([ours, loop], cfg["repeats"])
    per_ours = t_ours / (N * ran)
    per_loop = t_loop / n_ref
    table.add(f"Hopfield async recall, {B} probes, N={N}, {sweeps} sweeps (per unit update)",
              f"{per_ours * 1e9:.0f} ns", f"{per_loop * 1e9:.0f} ns (Python loop)",
              per_loop / per_ours, goal=10)
    checks.append(f"async recall ran {ran} probe-sweeps of the {B * sweeps} allowed; time per "
                  "unit update counts only those")


def bench_rbm(cfg, table, checks):
    try:
        from sklearn.neural_network import BernoulliRBM
    except ImportError:
        table.notes.append("RBM rows skipped: scikit-learn is not installed")
        return
    E = cfg["rbm_epochs"]
    data = tasks.bars_and_stripes(4)
    X = data.astype(np.float64)
    net = recur.Boltzmann(recur.Topology(recur.graphs.bipartite_graph(16, 16)))
    rule = rules.chain(rules.boltzmann("cd", k=1), rules.scale(0.1))
    p0 = net.init(np.random.default_rng(0))

    def ours():
        recur.train(net, p0, rule, data, epochs=E, rng=1, progress=False)

    def sk_full():
        BernoulliRBM(n_components=16, learning_rate=0.1, batch_size=30, n_iter=E,
                     random_state=0).fit(X)

    def sk_default():
        BernoulliRBM(n_components=16, learning_rate=0.1, n_iter=E, random_state=0).fit(X)

    from recur.networks import boltzmann_sampling as bs


    def floor():
        # The same compiled CD step and the same update, with none of the general path
        # (validation, evidence objects, rule composition, constraint, loss bookkeeping):
        # what an epoch costs without per-call overhead.
        W, b, g = p0["W"].copy(), p0["b"].copy(), np.random.default_rng(1)
        for _ in range(E):
            _, _, _, _, wake, sleep = bs.rbm_phases(W, b, X, X, 1, 1.0, g, (0, 16))
            W = W + 0.1 * (wake["W"] - sleep["W"])
            b = b + 0.1 * (wake["b"] - sleep["b"])

    t_ours, t_full, t_default, t_floor = harness.alternating(
        [ours, sk_full, sk_default, floor], cfg["repeats"])
    table.add("RBM CD-1 epoch, BAS 4x4, full batch", f"{t_ours / E * 1e6:.0f} us",
              f"{t_full / E * 1e6:.0f} us (BernoulliRBM, batch 30)", t_full / t_ours, goal=1)
    table.add("RBM epoch vs scikit-learn's default batch 10 (3 updates per epoch)",
              f"{t_ours / E * 1e6:.0f} us", f"{t_default / E * 1e6:.0f} us (BernoulliRBM, "
              "batch 10)", t_default / t_ours)
    table.add("RBM epoch: the same compiled step and update in a bare loop (floor)",
              f"{t_floor / E * 1e6:.0f} us", f"{t_full / E * 1e6:.0f} us (BernoulliRBM, "
              "batch 30)", t_full / t_floor)
    checks.append(f"{E} epochs per timing; recur's time includes everything recur.train does "
                  "per epoch (collect, rule, constraint, finiteness checks, loss)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a few seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bench_energy.md"
                             " in full mode, nowhere with --quick)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else RESULTS)

    t0 = time.perf_counter()
    lines = header(cfg, args.quick)
    print("\n".join(lines), flush=True)
    table, checks = harness.Table(), []
    bench_sync(cfg, table, checks)
    bench_async(cfg, table, checks)
    bench_rbm(cfg, table, checks)
    elapsed = time.perf_counter() - t0
    command = "python benchmarks/bench_energy.py" + (" --quick" if args.quick else "")
    return harness.finish(lines, table, checks, elapsed, command, out)


if __name__ == "__main__":
    sys.exit(main())
