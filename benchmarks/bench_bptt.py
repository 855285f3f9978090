"""Cost of one exact BPTT gradient of an ESN against the forward run it differentiates.

For each workload the forward cost is ``net.trajectory(params, data)`` and the gradient cost
is ``net.collect(params, data, Gradient())`` (which runs that same trajectory, then the
backward pass) minus the forward cost. The goal is a ratio gradient / forward of at most 5.
Forward and gradient are timed alternately ``repeats`` times (each timing over enough calls
to last ``MIN_TIMING_S``) and the best of each is kept, so a busy machine inflates both
rather than the ratio. BLAS is pinned to one thread (the environment variables below are set
before numpy is imported).

    python benchmarks/bench_bptt.py                    # full sizes, prints a markdown table
    python benchmarks/bench_bptt.py --quick            # small sizes, a few seconds
    python benchmarks/bench_bptt.py --backend numpy    # the numpy fallback instead of numba
    python benchmarks/bench_bptt.py --out table.md     # also write the table to a file
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402,F401  (first: it pins BLAS to one thread before numpy loads)

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

import recur as rc  # noqa: E402
from recur import kernels, tasks  # noqa: E402
from recur.rules import Gradient  # noqa: E402

GOAL = 5.0
LEAK = 0.5
SPECTRAL_RADIUS = 0.9
WASHOUT = 50

# (graph kind, N, edges per unit or edge probability, steps, batch, objective); a mask
# denser than ESN's SPARSE_MAX_DENSITY gets a dense W.
FULL = {
    "repeats": 5,
    "workloads": [
        ("sparse", 200, 10, 500, 1, "next-step"),
        ("sparse", 200, 10, 500, 16, "next-step"),
        ("gnp", 1000, 0.1, 500, 1, "next-step"),
        ("gnp", 1000, 0.1, 500, 16, "next-step"),
        ("gnp", 1000, 0.1, 500, 16, "closed-loop"),
        ("sparse", 10_000, 10, 500, 1, "next-step"),
        ("gnp", 500, 0.5, 500, 1, "next-step"),  # dense enough for a dense W
        ("gnp", 500, 0.5, 500, 16, "next-step"),
    ],
}
QUICK = {
    "repeats": 3,
    "workloads": [
        ("sparse", 200, 10, 200, 1, "next-step"),
        ("sparse", 200, 10, 200, 8, "next-step"),
        ("gnp", 500, 0.1, 200, 1, "next-step"),
        ("gnp", 500, 0.1, 200, 8, "closed-loop"),
        ("gnp", 300, 0.5, 200, 8, "next-step"),
    ],
}


def graph(kind, n, param, seed=0):
    """A directed random graph: ``param`` edges per unit ("sparse") or edge probability."""
    if kind == "sparse":
        return nx.gnm_random_graph(n, int(param) * n, directed=True, seed=seed)
    return nx.gnp_random_graph(n, param, directed=True, seed=seed)


def describe(kind, n, param, steps, batch, objective):
    wiring = f"{int(param)} edges/unit" if kind == "sparse" else f"p={param}"
    return f"N={n}, {wiring}, T={steps}, B={batch}, {objective}"


def make_data(steps, batch, objective, rng):
    """Next-step prediction of a sum of sines (washout ``WASHOUT``), or a closed loop whose
    last fifth of the steps runs on the network's own predictions."""
    series = tasks.sine_sum(batch * (steps + 1) + 1, rng=rng)
    win = tasks.windows(series, steps + 1, batch)
    if objective == "closed-loop":
        horizon = max(1, steps // 5)
        return tasks.ClosedLoop(win if batch > 1 else win[0], warmup=steps - horizon + 1,
                                horizon=horizon)
    if batch == 1:
        win = win[0]
    return tasks.TeacherForced(win[..., :-1, :], win[..., 1:, :], washout=WASHOUT)


# A timing runs a workload this long at least, so small workloads are timed over several
# calls and a scheduler hiccup on a busy machine does not decide the ratio.
MIN_TIMING_S = 0.1


def calls_per_timing(fn):
    """Calls per timing so one timing lasts at least ``MIN_TIMING_S`` (timeit's autorange)."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    return max(1, int(np.ceil(MIN_TIMING_S / once)))


def per_call(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def measure(workload, repeats, backend):
    kind, n, param, steps, batch, objective = workload
    rng = np.random.default_rng(0)
    net = rc.ESN(rc.Topology(graph(kind, n, param)), leak=LEAK,
                 spectral_radius=SPECTRAL_RADIUS, bias_scaling=0.2, n_in=1, n_out=1,
                 backend=backend)
    params = net.init(rng)
    data = make_data(steps, batch, objective, rng)
    request = Gradient()
    net.collect(params, data, request)  # compile / warm caches outside the timing
    number = calls_per_timing(lambda: net.collect(params, data, request))
    forward, total = [], []
    for _ in range(repeats):
        forward.append(per_call(lambda: net.trajectory(params, data), number))
        total.append(per_call(lambda: net.collect(params, data, request), number))
    fwd = min(forward)
    grad = max(min(total) - fwd, 0.0)
    return {"workload": describe(*workload), "forward_s": fwd, "gradient_s": grad,
            "ratio": grad / fwd, "goal": GOAL, "W": "CSR" if net.is_sparse else "dense"}


def table(rows, backend):
    lines = [
        f"BPTT gradient vs forward run, backend={backend} "
        f"(numba {'installed' if kernels.HAVE_NUMBA else 'missing'}), one BLAS thread, "
        f"{platform.machine()} {platform.python_version()}, best of the repeats",
        "",
        "| workload | forward s | gradient s | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "ok" if r["ratio"] <= r["goal"] else "MISSED"
        lines.append(f"| {r['workload']} ({r['W']} W) | {r['forward_s']:.4f} | "
                     f"{r['gradient_s']:.4f} | {r['ratio']:.2f} | <= {r['goal']:g} ({mark}) |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--backend", default="auto", choices=kernels.BACKENDS)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    repeats = args.repeats or config["repeats"]
    backend = kernels.resolve_backend(args.backend)
    rows = [measure(w, repeats, backend) for w in config["workloads"]]
    text = table(rows, backend)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return rows


if __name__ == "__main__":
    main()
