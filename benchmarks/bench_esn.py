"""Speed of recur's echo-state network against reservoirpy 0.4 on the same matrices.

Both libraries run in this one process on the same weights (recur's ``params["W"]``,
``params["W_in"]``, ``params["b"]`` are handed to ``reservoirpy.nodes.Reservoir``) and the same
standardised Mackey-Glass series. Each workload is timed ``repeats`` times, recur and
reservoirpy alternating, and the best time of each is kept; the ratio is recur's throughput
over reservoirpy's (> 1: recur is faster). BLAS is pinned to one thread (the environment
variables below are set before numpy is imported).

    python benchmarks/bench_esn.py            # full sizes, writes benchmarks/results/bench_esn.md
    python benchmarks/bench_esn.py --quick    # small sizes, a few seconds; prints only
    python benchmarks/bench_esn.py --quick --out /tmp/table.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (first: it pins BLAS to one thread before numpy loads)

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import recur  # noqa: E402
from recur import kernels  # noqa: E402
from recur.tasks import mackey_glass, standardize  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_esn.md"

# One ESN setting for every workload: it generates Mackey-Glass well in closed loop, which
# the float32 accuracy check needs (speed does not depend on it).
LEAK = 0.5
SPECTRAL_RADIUS = 1.0
INPUT_SCALING = 0.5
BIAS_SCALING = 0.2
ALPHA = 1e-6
CONNECTIVITY = 0.1

FULL = {
    "repeats": 5,
    "seq": [(100, 5000), (300, 4000), (1000, 2000), (2000, 1000)],  # (N, steps)
    "f32": (1000, 2000),
    "batch": (1000, 64, 200),  # N, sequences, steps
    "loop": [(300, 2000), (1000, 1000)],
    "nrmse": (1000, 4000, 200),  # N, training steps, generated steps
    "ridge": (2000, 10_000),  # N, states
    "large": (10_000, 10, 10_000, 1000),  # N, edges per unit, steps, steps per chunk
}
QUICK = {
    "repeats": 2,
    "seq": [(100, 1000), (300, 500)],
    "f32": (300, 500),
    "batch": (300, 8, 50),
    "loop": [(300, 300)],
    "nrmse": (300, 1500, 100),
    "ridge": (300, 2000),
    "large": (2000, 10, 500, 250),
}
GOALS = {  # workload key -> minimum ratio
    "seq100": 3.0, "seq1000": 1.3, "f32": 1.7, "batch": 2.5, "loop300": 2.0, "loop1000": 2.0,
}


# --- helpers ------------------------------------------------------------------------------

def paired(run_recur, run_rpy, repeats, before_rpy=None):
    """Best-of-``repeats`` times of recur and reservoirpy, alternating."""
    return harness.alternating([run_recur, run_rpy], repeats, warmup=False, between=before_rpy)


def rate(n, seconds, unit="steps/s"):
    r = n / seconds
    if r >= 1e6:
        return f"{r / 1e6:.2f}M {unit}"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k {unit}"
    return f"{r:.0f} {unit}"


def series(n_steps, seed=0):
    """Standardised Mackey-Glass, (n_steps, 1)."""
    return standardize(mackey_glass(n_steps, rng=seed))[0]


def make_esn(n_units, dtype=np.float64, seed=1):
    G = nx.gnp_random_graph(n_units, CONNECTIVITY, directed=True, seed=seed)
    esn = recur.ESN(recur.Topology(G), leak=LEAK, spectral_radius=SPECTRAL_RADIUS,
                    input_scaling=INPUT_SCALING, bias_scaling=BIAS_SCALING, n_in=1,
                    dtype=dtype, sparse=True)
    return esn, esn.init(seed)


def rpy_reservoir(params):
    from reservoirpy.nodes import Reservoir  # lazily: reservoirpy makes a temp folder

    return Reservoir(W=params["W"], Win=params["W_in"], bias=params["b"], lr=LEAK)


# --- workloads ----------------------------------------------------------------------------

def bench_sequences(cfg, table, checks):
    R = cfg["repeats"]
    rpy_rate = {}
    for n, steps in cfg["seq"]:
        esn, params = make_esn(n)
        u = series(steps)
        res = rpy_reservoir(params)
        esn.run(params, u[:5])  # compile / load numba kernels
        res.run(u[:5])
        t_recur, t_rpy = paired(lambda: esn.run(params, u), lambda: res.run(u),
                                R if n < 2000 else max(2, R - 2), before_rpy=res.reset)
        res.reset()
        checks.append(f"one sequence N={n}: max |recur - reservoirpy| over states = "
                      f"{np.abs(esn.run(params, u)[0] - res.run(u)).max():.1e}")
        rpy_rate[n] = steps / t_rpy
        key = f"seq{n}"
        table.add(f"one sequence, N = {n}, float64 (CSR, {steps} steps)",
                  rate(steps, t_recur), rate(steps, t_rpy), t_rpy / t_recur, GOALS.get(key))
    return rpy_rate


def bench_float32(cfg, table, checks, rpy_rate):
    n, steps = cfg["f32"]
    R = cfg["repeats"]
    esn, params = make_esn(n, np.float32)
    u = series(steps).astype(np.float32)
    res = rpy_reservoir(params)
    esn.run(params, u[:5])
    res.run(u[:5])
    t_recur, t_rpy = paired(lambda: esn.run(params, u), lambda: res.run(u), R,
                            before_rpy=res.reset)
    table.add(f"one sequence, N = {n}, float32 (same float32 matrices in both)",
              rate(steps, t_recur), rate(steps, t_rpy), t_rpy / t_recur, GOALS["f32"])
    if n in rpy_rate:
        table.notes.append(
            f"float32: reservoirpy keeps a float64 state, so scipy converts the float32 W to "
            f"float64 at every step. Against reservoirpy on the float64 matrices "
            f"({rate(1, 1 / rpy_rate[n])}) recur float32 is "
            f"{(steps / t_recur) / rpy_rate[n]:.2f}x.")


def bench_float32_accuracy(cfg, table, checks):
    n, n_train, n_gen = cfg["nrmse"]
    u = series(n_train + n_gen)
    err = {}
    for dtype in (np.float64, np.float32):
        esn, params = make_esn(n, dtype)
        H, h = esn.run(params, u[:n_train])
        readout = recur.Ridge(alpha=ALPHA).fit(H[200:n_train - 1], u[201:n_train])
        y = recur.generate(esn, params, readout, h, n_gen)
        err[dtype] = recur.metrics.nrmse(u[n_train:n_train + n_gen], y)
    ratio = err[np.float32] / err[np.float64]
    table.add(f"float32 accuracy: closed-loop NRMSE over {n_gen} steps, N = {n} (recur column: "
              f"recur float32; reservoirpy column: recur float64; ratio = f32 / f64)",
              f"{err[np.float32]:.2e}", f"{err[np.float64]:.2e}", ratio, 2.0, op="<=")


def bench_batch(cfg, table, checks):
    n, batch, steps = cfg["batch"]
    R = max(2, cfg["repeats"] - 2)
    esn, params = make_esn(n)
    u = series(steps * batch + steps)
    U = np.stack([u[i * steps // 2: i * steps // 2 + steps] for i in range(batch)])
    res = rpy_reservoir(params)
    esn.run(params, U[:, :3])
    res.run(U[:2, :3])
    res.reset()
    t_recur, t_rpy = paired(lambda: esn.run(params, U), lambda: res.run(U), R,
                            before_rpy=res.reset)
    res.reset()
    checks.append(f"batch: max |recur - reservoirpy| over states = "
                  f"{np.abs(esn.run(params, U)[0] - np.asarray(res.run(U))).max():.1e}")
    table.add(f"{batch} sequences at once, N = {n}, float64, per-sequence throughput "
              f"(reservoirpy runs them one by one)", rate(batch * steps, t_recur),
              rate(batch * steps, t_rpy), t_rpy / t_recur, GOALS["batch"])


def _rpy_closed_loop(reservoir, readout, y0, steps):
    out = np.empty((steps, y0.shape[0]))
    y = y0
    for t in range(steps):
        out[t] = y
        y = readout(reservoir(y))
    return out


def _rpy_model_closed_loop(model, y0, steps):
    out = np.empty((steps, y0.shape[0]))
    y = y0
    for t in range(steps):
        out[t] = y
        y = model(y)
    return out


def bench_closed_loop(cfg, table, checks):
    from reservoirpy.nodes import Ridge as RpyRidge

    R = cfg["repeats"]
    for n, steps in cfg["loop"]:
        n_train = 2000
        esn, params = make_esn(n)
        u = series(n_train + steps)
        H, h = esn.run(params, u[:n_train])
        readout = recur.Ridge(alpha=ALPHA).fit(H[200:n_train - 1], u[201:n_train])
        recur.generate(esn, params, readout, h, 3)

        res = rpy_reservoir(params)
        res.run(u[:n_train])
        h_rpy = res.state["out"].copy()
        rpy_readout = RpyRidge(ridge=ALPHA).fit(H[200:n_train - 1], u[201:n_train])
        y0 = rpy_readout(h_rpy)
        model = res >> rpy_readout

        def restart():
            res.state = {"out": h_rpy.copy()}

        # the two idiomatic reservoirpy loops, both timed in every repeat; the faster is kept
        variants = {
            "node calls readout(reservoir(y))":
                lambda: _rpy_closed_loop(res, rpy_readout, y0, steps),
            "Model (reservoir >> readout) calls":
                lambda: _rpy_model_closed_loop(model, y0, steps),
        }
        for fn in variants.values():  # warm up
            restart()
            fn()
        t_recur = []
        t_var = {name: [] for name in variants}
        for _ in range(R):
            t_recur.append(harness.timed(lambda: recur.generate(esn, params, readout, h, steps)))
            for name, fn in variants.items():
                restart()
                t_var[name].append(harness.timed(fn))
        t_recur = min(t_recur)
        best = min(t_var, key=lambda name: min(t_var[name]))
        best_fn = variants[best]
        t_rpy = min(t_var[best])
        restart()
        y_rpy = best_fn()
        y_recur = recur.generate(esn, params, readout, h, steps)
        k = min(100, steps)
        checks.append(f"closed loop N={n}: reservoirpy loop used: {best} "
                      f"({', '.join(f'{k_}: {rate(steps, min(v))}' for k_, v in t_var.items())}); "
                      f"max |recur - reservoirpy| over the first {k} outputs = "
                      f"{np.abs(y_recur[:k] - y_rpy[:k]).max():.1e}")
        table.add(f"closed-loop generation, N = {n}, float64 ({steps} steps)",
                  rate(steps, t_recur), rate(steps, t_rpy), t_rpy / t_recur,
                  GOALS.get(f"loop{n}"))


def _peak_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def bench_ridge(cfg, table, checks):
    from reservoirpy.nodes import Ridge as RpyRidge

    n, n_states = cfg["ridge"]
    R = max(2, cfg["repeats"] - 2)
    esn, params = make_esn(n)
    u = series(n_states + 1)
    X, _ = esn.run(params, u[:n_states])
    y = u[1:n_states + 1]

    def fit_recur():
        return recur.Ridge(alpha=ALPHA).fit(X, y)

    def fit_rpy():
        return RpyRidge(ridge=ALPHA).fit(X, y)

    a, b = fit_recur(), fit_rpy()
    checks.append(f"ridge: max |coef recur - Wout reservoirpy| = "
                  f"{np.abs(a.coef_.T - b.Wout).max():.1e} (max |coef| {np.abs(b.Wout).max():.1e})")
    t_recur, t_rpy = paired(fit_recur, fit_rpy, R)
    table.add(f"ridge fit, N = {n}, {n_states} states (time; ratio = reservoirpy time / recur "
              f"time)", f"{t_recur:.3g} s", f"{t_rpy:.3g} s", t_rpy / t_recur, 1.0)
    m_recur, m_rpy = _peak_bytes(fit_recur), _peak_bytes(fit_rpy)
    table.add(f"ridge fit, N = {n}, {n_states} states (peak memory above the inputs, "
              f"tracemalloc; ratio recur/reservoirpy)", f"{m_recur / 2**20:.0f} MiB",
              f"{m_rpy / 2**20:.0f} MiB", m_recur / m_rpy, 1.0, op="<=")
    table.notes.append(f"ridge inputs: X {X.shape} float64 = {X.nbytes / 2**20:.0f} MiB, "
                       "not counted in the peaks; tracemalloc sees numpy/scipy allocations, "
                       "not OpenBLAS's internal buffers.")


def bench_large(cfg, table, checks):
    n, degree, steps, chunk = cfg["large"]
    G = nx.random_regular_graph(degree, n, seed=0)
    esn = recur.ESN(recur.Topology(G), leak=LEAK, spectral_radius=SPECTRAL_RADIUS,
                    input_scaling=INPUT_SCALING, bias_scaling=BIAS_SCALING, n_in=1)
    params = esn.init(0)
    u = series(steps)
    esn.run(params, u[:3])

    def run_recur():
        x = None
        for start in range(0, steps, chunk):
            _, x = esn.run(params, u[start:start + chunk], x)

    res = rpy_reservoir(params)
    res.run(u[:3])

    def run_rpy():
        for start in range(0, steps, chunk):
            res.run(u[start:start + chunk])

    t_recur, t_rpy = paired(run_recur, run_rpy, 1, before_rpy=res.reset)
    W = params["W"]
    stayed = sp.issparse(W) and W.nnz == G.number_of_edges() * 2
    table.add(f"N = {n}, {degree} edges per unit ({W.nnz} nonzeros, CSR), {steps} steps "
              f"(run in chunks of {chunk}, state carried over)", f"{t_recur:.3g} s",
              f"{t_rpy:.3g} s", t_rpy / t_recur)
    checks.append(f"large: W stayed {type(W).__name__} (scipy sparse: {sp.issparse(W)}, "
                  f"nnz {W.nnz}, as built: {stayed}); recur {rate(steps, t_recur)}")


def densify_thresholds(quick):
    """Time of recur's CSR batch kernel over its dense (BLAS) one, by density: where
    ``kernels.DENSIFY_BATCH_MIN_DENSITY*`` come from (ratio > 1: densifying pays)."""
    sizes = [(300, 16)] if quick else [(100, 16), (300, 4), (300, 64), (1000, 4), (1000, 16),
                                       (1000, 64), (2000, 16), (3000, 64)]
    densities = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
    rng = np.random.default_rng(0)
    saved = kernels.DENSIFY_BATCH_MIN_DENSITY, kernels.DENSIFY_BATCH_MIN_DENSITY_FLOAT32
    kernels.DENSIFY_BATCH_MIN_DENSITY = kernels.DENSIFY_BATCH_MIN_DENSITY_FLOAT32 = 2.0
    print("CSR batch kernel time / dense batch kernel time (> 1: densify), W.toarray() "
          "not counted; BLAS on one thread")
    print("| dtype | N | B | " + " | ".join(f"d = {d}" for d in densities) + " |")
    print("|" + "---|" * (3 + len(densities)))
    try:
        for dtype in (np.float64, np.float32):
            for n, batch in sizes:
                steps = max(3, int((2e7 if quick else 6e8) / (n * n * batch)))
                cells = []
                for density in densities:
                    Wd = np.where(rng.random((n, n)) < density,
                                  rng.uniform(-0.5, 0.5, (n, n)), 0.0).astype(dtype)
                    W = sp.csr_array(Wd)
                    D = rng.normal(size=(batch, steps, n)).astype(dtype)
                    x0 = np.zeros((batch, n), dtype)
                    kernels.run_batch(W, D[:, :1], x0, LEAK)
                    kernels.run_batch(Wd, D[:, :1], x0, LEAK)
                    t_csr, t_dense = paired(lambda: kernels.run_batch(W, D, x0, LEAK),
                                            lambda: kernels.run_batch(Wd, D, x0, LEAK), 3)
                    cells.append(f"{t_csr / t_dense:.2f}")
                print(f"| {np.dtype(dtype).name} | {n} | {batch} | " + " | ".join(cells) + " |",
                      flush=True)
    finally:
        kernels.DENSIFY_BATCH_MIN_DENSITY, kernels.DENSIFY_BATCH_MIN_DENSITY_FLOAT32 = saved
    print(f"current thresholds: float64 {saved[0]}, float32 {saved[1]}")


# --- main ---------------------------------------------------------------------------------

def header(cfg, quick):
    import reservoirpy

    return [
        f"# recur vs reservoirpy: ESN speed ({'quick' if quick else 'full'} mode)",
        "",
        "- " + harness.machine_line(f"reservoirpy {reservoirpy.__version__}"),
        "- " + harness.BLAS_NOTE,
        f"- best of {cfg['repeats']} repeats (fewer for the slowest rows), recur and "
        "reservoirpy alternating in one process; ratio = recur throughput / reservoirpy "
        "throughput (for the memory and error rows: recur / reference).",
        f"- ESN: leak {LEAK}, spectral radius {SPECTRAL_RADIUS}, input scaling "
        f"{INPUT_SCALING}, bias scaling {BIAS_SCALING}; W from "
        f"networkx.gnp_random_graph(N, {CONNECTIVITY}, directed=True), stored CSR; input: "
        "standardised Mackey-Glass (tau 17); ridge alpha " + f"{ALPHA:g}.",
        f"- recur backend: {kernels.resolve_backend('auto')}; load average at start "
        f"{harness.load_average()} (the machine is shared: absolute rates move with it, the same-process "
        "ratios much less)",
        "",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a few seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bench_esn.md "
                             "in full mode, nowhere with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per workload (default 5, 2 with --quick)")
    parser.add_argument("--thresholds", action="store_true",
                        help="only measure where a batch should densify a CSR W (prints a "
                             "table of CSR/dense kernel times)")
    args = parser.parse_args(argv)
    if args.thresholds:
        densify_thresholds(args.quick)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats is not None:
        cfg["repeats"] = max(1, args.repeats)
    out = args.out if args.out is not None else (None if args.quick else RESULTS)

    t0 = time.perf_counter()
    lines = header(cfg, args.quick)
    print("\n".join(lines), flush=True)
    table, checks = harness.Table("reservoirpy"), []
    rpy_rate = bench_sequences(cfg, table, checks)
    bench_float32(cfg, table, checks, rpy_rate)
    bench_float32_accuracy(cfg, table, checks)
    bench_batch(cfg, table, checks)
    bench_closed_loop(cfg, table, checks)
    bench_ridge(cfg, table, checks)
    bench_large(cfg, table, checks)
    elapsed = time.perf_counter() - t0

    body = [table.markdown(), ""]
    body += [f"- {note}" for note in table.notes]
    body += ["", "Checks (same matrices, so the two libraries should agree):", ""]
    body += [f"- {c}" for c in checks]
    body += ["", f"Total time {elapsed:.0f} s, load average at the end {harness.load_average()}. Reproduce: "
             "`python benchmarks/bench_esn.py" + (" --quick" if args.quick else "")
             + (f" --repeats {args.repeats}" if args.repeats is not None else "") + "`", ""]
    text = "\n".join(lines + body)
    print("\n" + "\n".join(body))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
