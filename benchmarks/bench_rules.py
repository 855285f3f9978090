"""Speed of the learning-rule evidence: batched perturbations, masked Hebbian sums, BPTT.

Every number is a ratio of two ways of computing the same thing, timed in this one process,
alternating, best of ``repeats`` (the machine may be shared: only ratios within one run are
meaningful). BLAS is pinned to one thread (the environment variables below are set before
numpy is imported), so every workload here is single-threaded.

Rows:

- node perturbation, ``K`` antithetic pairs: :func:`recur.networks.esn_perturbation.
  esn_perturbations` (one batched run of all ``2K`` perturbed copies, losses and eligibility
  traces) against a Python loop over the perturbations that calls ``net.run`` on each
  perturbed copy (the noise enters as extra inputs through an identity block of ``W_in``) and
  computes the same losses and traces (``recur.masked.masked_outer`` per perturbation).
- weight perturbation: the batched run with per-run values on ``W``'s edges against (a) a
  loop of ``net.run`` over the ``2K`` perturbed parameter sets and (b) one batched run with
  ``2K`` dense copies of ``W`` (``np.matmul`` per step, the obvious vectorisation).
- a Hebbian-style masked outer product ``recur.masked.masked_outer(post, pre, W)`` on a
  10,000-unit sparse network at three numbers of edges per unit: time per edge and sample
  should stay flat (cost linear in edges).
- one exact gradient (BPTT, ``net.collect(params, data, Gradient())``) against the forward
  run it differentiates (``net.trajectory``).

    python benchmarks/bench_rules.py            # full sizes, writes the results file
                                                # benchmarks/results/bench_rules.md
    python benchmarks/bench_rules.py --quick    # small sizes, a few seconds; prints only
    python benchmarks/bench_rules.py --quick --out /tmp/table.md
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
import scipy.sparse as sp  # noqa: E402

import recur  # noqa: E402
from recur import kernels, tasks  # noqa: E402
from recur.masked import masked_outer, with_values  # noqa: E402
from recur.networks.esn_perturbation import esn_perturbations  # noqa: E402
from recur.rules import evidence as ev  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_rules.md"

LEAK = 0.5
SPECTRAL_RADIUS = 0.9
SIGMA = 1e-3

FULL = {
    "repeats": 5,
    "perturb": (200, 200, 64, 10),        # N, T, K (pairs), edges per unit
    "hebbian": (10_000, (5, 10, 20), 200),  # N, edges per unit, samples
    "bptt": (200, 200, 10),                # N, T, edges per unit
}
QUICK = {
    "repeats": 2,
    "perturb": (60, 60, 16, 6),
    "hebbian": (2_000, (5, 10, 20), 50),
    "bptt": (60, 60, 6),
}
GOALS = {"node": 3.0}


# --- helpers ------------------------------------------------------------------------------

alternating = harness.alternating


def ms(seconds):
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def make_esn(n_units, degree, seed=0, n_in=1):
    """An ESN on a random directed graph with ``degree`` edges per unit on average."""
    G = nx.gnm_random_graph(n_units, degree * n_units, directed=True, seed=seed)
    net = recur.ESN(recur.Topology(G), leak=LEAK, spectral_radius=SPECTRAL_RADIUS,
                    input_scaling=0.5, bias_scaling=0.2, n_in=n_in, n_out=n_in, sparse=True)
    return net, net.init(seed)


def next_step_data(n_steps, seed=0, washout=20):
    u, y = tasks.next_step(tasks.sine_sum(n_steps + 1, rng=seed))
    return tasks.TeacherForced(u, y, washout=min(washout, n_steps // 4))


def mse(y, target, counted):
    err = (y - target)[..., counted, :]
    return float(np.mean(err.astype(np.float64) ** 2))


# --- node perturbation --------------------------------------------------------------------

def node_loop(net, params, data, clean, K, rng):
    """The loop version of esn_perturbations(where="nodes", antithetic=True): one net.run per
    perturbed copy, the node noise entering as extra inputs through an identity block."""
    n = net.n_units
    T = data.inputs.shape[0]
    counted = clean.counted
    big = recur.ESN(net.topology, leak=net.leak, spectral_radius=None, n_in=net.n_in + n,
                    n_out=net.n_out, sparse=True)
    W_in_aug = sp.hstack([sp.csr_array(params["W_in"]), sp.identity(n, format="csr")],
                         format="csr")
    p_aug = {**params, "W_in": W_in_aug}
    W = params["W"]
    # The same draws as esn_perturbations makes with this rng (time-major, one stream each).
    g_xi, g_zeta = rng.spawn(2)
    xi_all = g_xi.standard_normal((T, n, 1, K)) * SIGMA
    zeta_all = g_zeta.standard_normal((T, net.n_out, 1, K)) * SIGMA
    losses = np.empty((2, K))
    elig = {"W": np.empty((K, W.nnz)), "W_in": np.empty((K, n, net.n_in)), "b": np.empty((K, n)),
            "W_out": np.empty((K, net.n_out, n)), "b_out": np.empty((K, net.n_out))}
    for k in range(K):
        xi = xi_all[:, :, 0, k]
        zeta = zeta_all[:, :, 0, k] * counted[:, None]
        for j, sign in enumerate((1.0, -1.0)):
            states, _ = big.run(p_aug, np.hstack([data.inputs, sign * xi]))
            y = states @ params["W_out"].T + params["b_out"] + sign * zeta
            losses[j, k] = mse(y, data.targets, counted)
        elig["W"][k] = masked_outer(xi, clean.x_prev, W).data
        elig["W_in"][k] = xi.T @ clean.u
        elig["b"][k] = xi.sum(0)
        elig["W_out"][k] = zeta.T @ clean.x
        elig["b_out"][k] = zeta.sum(0)
    return losses, elig


def bench_node(cfg, table, checks):
    n, T, K, degree = cfg["perturb"]
    net, params = make_esn(n, degree)
    data = next_step_data(T)
    clean = net.trajectory(params, data)
    req = ev.Perturbed(sigma=SIGMA, n_samples=K, where="nodes", antithetic=True)

    def batched():
        return esn_perturbations(net, params, data, req, rng=1, clean=clean)

    def loop():
        return node_loop(net, params, data, clean, K, np.random.default_rng(1))

    def draws():  # the normal draws alone, which both versions pay
        g = np.random.default_rng(1)
        g.standard_normal((T, n, 1, K))
        g.standard_normal((T, net.n_out, 1, K))

    t_batch, t_loop, t_draw = alternating([batched, loop, draws], cfg["repeats"])
    res = batched()
    losses, elig = loop()
    rel = max(np.max(np.abs(res.eligibility[k] - elig[k])) / np.max(np.abs(elig[k]))
              for k in elig)
    dl = max(np.max(np.abs(res.losses - losses[0])), np.max(np.abs(res.losses_minus - losses[1])))
    checks.append(f"node perturbation, batched vs loop on the same noise: max |loss difference| "
                  f"{dl:.1e} (loss {clean.loss:.2e}), max relative eligibility difference "
                  f"{rel:.1e}")
    table.add(f"node perturbation, K = {K} antithetic pairs ({2 * K} runs), N = {n}, T = {T}, "
              f"{degree} edges/unit: losses + eligibility traces, batched vs loop of net.run",
              ms(t_batch), ms(t_loop), t_loop / t_batch, GOALS["node"])
    table.notes.append(f"node perturbation: drawing the {K * T * n:,} normal numbers alone takes "
                       f"{ms(t_draw)} in both versions; without it the ratio is "
                       f"{(t_loop - t_draw) / max(t_batch - t_draw, 1e-9):.1f}.")


# --- weight perturbation ------------------------------------------------------------------

def weight_sets(params, K, rng):
    """The ``2K`` antithetic parameter sets esn_perturbations draws with this rng (one child
    stream per parameter), as per-run arrays (R, ...)."""
    out = {}
    names = ("W", "W_in", "b", "W_out", "b_out")
    for name, g in zip(names, np.random.default_rng(rng).spawn(len(names))):
        base = params[name].data if name == "W" else params[name]
        eps = g.standard_normal((K,) + base.shape) * SIGMA
        out[name] = base[None] + np.concatenate([eps, -eps])
    return out


def weight_loop(net, params, data, counted, sets):
    losses = []
    for r in range(sets["W"].shape[0]):
        p = {"W": with_values(params["W"], sets["W"][r]), "W_in": sets["W_in"][r],
             "b": sets["b"][r], "W_out": sets["W_out"][r], "b_out": sets["b_out"][r]}
        states, _ = net.run(p, data.inputs)
        losses.append(mse(net.output(p, states), data.targets, counted))
    return np.array(losses)


def weight_dense_copies(net, params, data, counted, sets):
    """All runs in one batch with a dense copy of W per run: np.matmul per step."""
    W = params["W"]
    R = sets["W"].shape[0]
    n = net.n_units
    rows = np.repeat(np.arange(n), np.diff(W.indptr))
    Wd = np.zeros((R, n, n))
    Wd[:, rows, W.indices] = sets["W"]
    drive = np.einsum("ti,rni->rtn", data.inputs, sets["W_in"]) + sets["b"][:, None, :]
    x = np.zeros((R, n, 1))
    states = np.empty((R, data.inputs.shape[0], n))
    for t in range(data.inputs.shape[0]):
        pre = np.matmul(Wd, x)[..., 0] + drive[:, t]
        x = ((1 - LEAK) * x[..., 0] + LEAK * np.tanh(pre))[..., None]
        states[:, t] = x[..., 0]
    y = np.einsum("rtn,rmn->rtm", states, sets["W_out"]) + sets["b_out"][:, None, :]
    err = (y - data.targets[None])[:, counted]
    return np.mean(err**2, axis=(1, 2))


def bench_weight(cfg, table, checks):
    n, T, K, degree = cfg["perturb"]
    net, params = make_esn(n, degree)
    data = next_step_data(T)
    clean = net.trajectory(params, data)
    req = ev.Perturbed(sigma=SIGMA, n_samples=K, where="weights", antithetic=True)
    sets = weight_sets(params, K, 1)

    def batched():
        return esn_perturbations(net, params, data, req, rng=1, clean=clean)

    def loop():
        return weight_loop(net, params, data, clean.counted, sets)

    def dense():
        return weight_dense_copies(net, params, data, clean.counted, sets)

    t_batch, t_loop, t_dense = alternating([batched, loop, dense], cfg["repeats"])
    a, b, res = loop(), dense(), batched()
    c = np.concatenate([res.losses, res.losses_minus])
    checks.append(f"weight perturbation on the same perturbed parameter sets: max |loss "
                  f"difference| batched vs loop {np.max(np.abs(c - a)):.1e}, dense copies vs "
                  f"loop {np.max(np.abs(a - b)):.1e} (loss {clean.loss:.2e})")
    label = (f"weight perturbation, K = {K} antithetic pairs ({2 * K} runs), N = {n}, T = {T}, "
             f"{params['W'].nnz} edges")
    table.add(label + ": batched on edge values vs loop of net.run", ms(t_batch), ms(t_loop),
              t_loop / t_batch)
    table.add(label + f": batched on edge values vs {2 * K} dense copies of W (np.matmul)",
              ms(t_batch), ms(t_dense), t_dense / t_batch)


# --- Hebbian masked outer product ---------------------------------------------------------

def bench_hebbian(cfg, table, checks):
    n, degrees, samples = cfg["hebbian"]
    rng = np.random.default_rng(3)
    post = rng.standard_normal((samples, n))
    pre = rng.standard_normal((samples, n))
    per_edge = {}
    for degree in degrees:
        G = nx.gnm_random_graph(n, degree * n, directed=True, seed=degree)
        W = recur.weights.normal(recur.Topology(G).mask, 1.0, rng=degree)
        t, = alternating([lambda: masked_outer(post, pre, W)], max(2, cfg["repeats"] - 2))
        per_edge[degree] = t / (W.nnz * samples)
        table.add(f"masked outer product (Hebbian update), N = {n}, {W.nnz / n:.0f} edges/unit "
                  f"({W.nnz:,} edges), {samples} samples: time (reference column: per edge "
                  f"and sample)", ms(t), f"{per_edge[degree] * 1e9:.2f} ns",
                  per_edge[degree] / per_edge[degrees[0]], 1.5, op="<=")
    checks.append("masked outer: ratio column = time per edge-sample relative to the sparsest "
                  "graph (1.0 = exactly linear in edges); cost is O(samples x edges), never "
                  "O(N^2)")


# --- BPTT ---------------------------------------------------------------------------------

def bench_bptt(cfg, table, checks):
    n, T, degree = cfg["bptt"]
    net, params = make_esn(n, degree)
    data = next_step_data(T)
    req = ev.Gradient()
    t_grad, t_fwd = alternating([lambda: net.collect(params, data, req),
                                 lambda: net.trajectory(params, data)], cfg["repeats"])
    table.add(f"exact gradient (BPTT: forward run + backward pass) vs the forward run alone, "
              f"N = {n}, T = {T}, {params['W'].nnz} edges (ratio = gradient / forward time)",
              ms(t_grad), ms(t_fwd), t_grad / t_fwd)


# --- main ---------------------------------------------------------------------------------

def header(cfg, quick):
    return [
        f"# recur: speed of learning-rule evidence ({'quick' if quick else 'full'} mode)",
        "",
        "- " + harness.machine_line() + f"; backend {kernels.resolve_backend('auto')}",
        "- " + harness.BLAS_NOTE,
        f"- best of {cfg['repeats']} repeats, the compared versions alternating in one "
        "process; ratio = reference time / recur time (> 1: recur faster), except where the "
        "row says otherwise. Only ratios are meaningful: the machine may be shared.",
        f"- ESN: leak {LEAK}, spectral radius {SPECTRAL_RADIUS}, one input, one output, "
        f"perturbation sigma {SIGMA:g}; input: sine_sum, next-step targets, washout 20; W "
        "stored CSR.",
        "",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a few seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bench_rules.md "
                             "in full mode, nowhere with --quick)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else RESULTS)

    t0 = time.perf_counter()
    lines = header(cfg, args.quick)
    print("\n".join(lines), flush=True)
    table, checks = harness.Table(), []
    bench_node(cfg, table, checks)
    bench_weight(cfg, table, checks)
    bench_hebbian(cfg, table, checks)
    bench_bptt(cfg, table, checks)
    elapsed = time.perf_counter() - t0
    command = "python benchmarks/bench_rules.py" + (" --quick" if args.quick else "")
    return harness.finish(lines, table, checks, elapsed, command, out)


if __name__ == "__main__":
    sys.exit(main())
