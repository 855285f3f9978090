r"""Speed of the spiking networks against Brian2: the Diesmann chain and a large random network.

Two workloads, each simulated by ``recur.SpikingNet`` and by the same model written in Brian2,
timed in one run, alternating, best of ``repeats`` (the machine may be shared: only ratios
within one run are meaningful). BLAS is pinned to one thread before numpy is imported.

1. The Diesmann chain: ``graphs.synfire_chain_graph(10, 100, 1.0)`` with ``SpikingNet``'s
   defaults (LIF, Diesmann, Gewaltig & Aertsen's parameters, the calibrated background noise;
   ``dt = 0.1`` ms, delay 1 ms), 100 ms, a pulse packet of ``a = 85`` spikes with
   ``sigma = 1`` ms imposed on pool 0 at ``t0 = 15`` ms.
2. A random network of 10,000 LIF units, each receiving exactly 100 synapses from distinct
   random other units (1,000,000 edges), the same defaults and weight (4.86 mV: each unit
   fires about 6 Hz, against 3.5 Hz for an isolated unit), 1 s at ``dt = 0.1`` ms.

Both start from the stationary membrane distribution of the background drive
(``SpikingNet.initial_state(stationary=True)``); Brian2 gets the very same initial
membranes, packet spikes and weights, so the two runs differ only in their noise draws.

The Brian2 model, in potentials relative to rest (mV)::

    dv/dt = (-v + I + mu) / tau_m : volt (unless refractory)    # method="exact"
    dI/dt = -I / tau_s            : volt
    v += noise_scale * randn() * int(not_refractory)  # run_regularly, after the state update
    threshold "v >= theta", reset "v = v_reset", refractory t_ref + dt
    Synapses: w : volt, on_pre "I_post += w", delay 1 ms

with ``noise_scale = sigma_V sqrt(1 - exp(-2 dt / tau_m))``: together the exact linear
propagator and the added Gaussian are the exact Ornstein-Uhlenbeck step that recur takes
(``tau_m dv/dt = -v + I + mu + sigma_V sqrt(2 tau_m) xi``), so the two simulators integrate
the same equations with the same scheme. The refractory period is one step longer in
Brian2's terms because the two count it differently: recur (like NEST) holds the membrane at
reset for the ``t_ref / dt`` steps after the spike step, Brian2 counts from the spike step
itself. (Brian2's ``exact`` method refuses the noise term ``xi`` and its stochastic
methods are Euler-type, whose synaptic decay over a 0.1 ms step with ``tau_s = 0.325`` ms
would be 0.69 instead of 0.74: a different PSP.) Imposed packet
spikes are delivered by a ``SpikeGeneratorGroup`` one step early through a synapse that
sets the membrane far above threshold, so the unit fires (and is reset, and is refractory)
on the same step as in recur; the one difference is that recur fires a packet spike even in
a unit that is refractory at that step, Brian2 only when the refractory period ends (for a
unit firing 3.5 Hz, about 0.4% of packet spikes, each late by at most 1.1 ms).

Brian2 runs with its numpy target and with its default compiled target (Cython, runtime
mode), each in a worker process of its own (its code-generation target is a global
preference). Brian2 times are those of ``Network.run`` after a warm-up run: code generation
and compilation are excluded (the first run's time, which includes them or the load of
Cython modules cached by earlier runs, is reported separately), and so is the construction
of the network; between timed runs the network is restored to its stored initial state
(untimed). recur times are those of ``SpikingNet.run`` (drive, state, weights and the step
loop), with numba (``backend="auto"``) and with the numpy backend, also after a warm-up.
Both record every spike.

Checks. Without background noise both simulators are deterministic, and on a small chain
with a suprathreshold drive, strong weights and imposed packets they must give the same
spikes, exactly (this pins down the equations, the refractory period, the delays, the order
of operations within a step and the imposed spikes). With noise: the spike counts per pool
on the Diesmann chain, over ``check_trials`` trials in each simulator (independent
packets, the same packets and initial membranes in both), must agree within sampling noise: for each pool ``z = (mean_recur - mean_brian2) /
sqrt(s_recur^2 / n + s_brian2^2 / n)`` (sample standard deviations over trials), and
``max |z|`` over the 10 pools must stay below 3.29 (two-sided 0.1% per pool, a 1% family
error over 10 pools by Bonferroni). On the random network the per-trial mean rate over
``rate_trials`` trials is compared the same way (one z, the same limit). Each workload also
reports the time of a one-step run: Brian2 spends a fixed ~0.1-0.2 s preparing every
``Network.run`` call, a large part of a 100 ms simulation; the notes give the stepping time
without it.

Brian2 is not a dependency of recur: ``pip install brian2`` into the interpreter that runs
this script, or point ``--brian2-python`` (or the environment variable
``RECUR_BRIAN2_PYTHON``) at another interpreter that has it (it needs numpy and brian2 only,
not recur: Brian2 2.9 does not import under numpy 2.4, and Brian2 2.10 needs Python 3.12).
Without one the Brian2 rows say "skipped".

    python benchmarks/bench_spiking.py            # full sizes (a few minutes), writes
                                                  # benchmarks/results/bench_spiking.md
    python benchmarks/bench_spiking.py --quick    # small sizes, Brian2 numpy target only
    python benchmarks/bench_spiking.py --brian2-python /opt/brian2-py312/bin/python
"""

from __future__ import annotations

import os
import sys

# The Brian2 worker (this file run with --brian2-worker) needs only numpy and brian2: it may
# run under another interpreter that has neither recur nor scipy, so it is defined, and
# dispatched to, before anything else is imported.
WORKER_FLAG = "--brian2-worker"


def _worker_build(spec, b2):
    """Brian2 objects for one workload ``spec`` (a dict of arrays from the parent)."""
    u = b2
    dt = float(spec["dt"])
    N, B = int(spec["n_units"]), int(spec["trials"])
    u.defaultclock.dt = dt * u.ms
    ns = {"tau_m": float(spec["tau_m"]) * u.ms, "tau_s": float(spec["tau_syn"]) * u.ms,
          "mu": float(spec["noise_mean"]) * u.mV, "theta": float(spec["theta"]) * u.mV,
          "v_reset": float(spec["reset"]) * u.mV, "noise_scale": float(spec["noise_scale"])
          * u.mV, "v_force": (float(spec["theta"]) + 100.0) * u.mV}
    eqs = """
    dv/dt = (-v + I + mu) / tau_m : volt (unless refractory)
    dI/dt = -I / tau_s : volt
    """
    G = u.NeuronGroup(B * N, eqs, threshold="v >= theta", reset="v = v_reset",
                      refractory=float(spec["refractory"]) * u.ms, method="exact", namespace=ns,
                      name="lif")
    G.run_regularly("v += noise_scale * randn() * int(not_refractory)", when="groups",
                    order=1, name="background")
    G.v = np.asarray(spec["v0"], float).reshape(-1) * u.mV
    G.I = 0 * u.mV
    pre, post = np.asarray(spec["pre"], np.int64), np.asarray(spec["post"], np.int64)
    offs = np.repeat(np.arange(B, dtype=np.int64) * N, pre.size)
    S = u.Synapses(G, G, model="w : volt", on_pre="I_post += w",
                   delay=float(spec["delay"]) * u.ms, namespace=ns, name="recurrent")
    S.connect(i=np.tile(pre, B) + offs, j=np.tile(post, B) + offs)
    if not (np.array_equal(np.asarray(S.i[:]), np.tile(pre, B) + offs)
            and np.array_equal(np.asarray(S.j[:]), np.tile(post, B) + offs)):
        raise RuntimeError("Brian2 reordered the synapses; cannot assign per-edge weights")
    S.w = np.tile(np.asarray(spec["weight"], float), B) * u.mV
    objects = [G, S]
    f_units = np.asarray(spec["forced_units"], np.int64)
    if f_units.size:
        f_trials = np.asarray(spec["forced_trials"], np.int64)
        f_steps = np.asarray(spec["forced_steps"], np.int64)
        if f_steps.min() < 1:
            raise ValueError("imposed spikes must lie after step 0 (delivered one step early)")
        gen = u.SpikeGeneratorGroup(f_units.size, np.arange(f_units.size),
                                    (f_steps - 1) * dt * u.ms, name="packet")
        kick = u.Synapses(gen, G, on_pre="v_post = v_force", namespace=ns, name="impose")
        kick.connect(i=np.arange(f_units.size), j=f_trials * N + f_units)
        objects += [gen, kick]
    mon = u.SpikeMonitor(G, name="spikes")
    net = u.Network(*objects, mon)
    net.store("init")
    return {"net": net, "mon": mon, "duration": float(spec["n_steps"]) * dt * u.ms,
            "dt": dt, "N": N, "n_synapses": int(len(S))}


def _worker_main(argv):
    """Serve JSON-line commands on stdin (build, run, spikes, quit) for one Brian2 target."""
    import json
    import time
    import traceback

    # Brian2 and the compilers it calls may print: keep the protocol's stdout clean by
    # sending file descriptor 1 to stderr and answering on a duplicate of the original.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    global np
    import numpy as np
    import brian2 as b2

    target = argv[0]
    b2.prefs.codegen.target = target
    b2.prefs.logging.console_log_level = "ERROR"
    built = {}

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    reply({"brian2": b2.__version__, "numpy": np.__version__, "target": target,
           "python": sys.version.split()[0]})
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "quit":
                reply({"ok": True})
                break
            if cmd == "build":
                t0 = time.perf_counter()
                with np.load(msg["path"]) as f:
                    spec = {k: f[k] for k in f.files}
                built[msg["name"]] = _worker_build(spec, b2)
                reply({"build_s": time.perf_counter() - t0,
                       "n_synapses": built[msg["name"]]["n_synapses"]})
            elif cmd == "run":
                w = built[msg["name"]]
                w["net"].restore("init")
                b2.seed(int(msg.get("seed", 0)))
                # n_steps (optional): a shorter run, to measure the per-run preparation.
                duration = w["duration"] if "n_steps" not in msg else \
                    int(msg["n_steps"]) * w["dt"] * b2.ms
                t0 = time.perf_counter()
                w["net"].run(duration, report=None)
                seconds = time.perf_counter() - t0
                reply({"seconds": seconds, "n_spikes": int(w["mon"].num_spikes)})
            elif cmd == "spikes":
                w = built[msg["name"]]
                idx = np.asarray(w["mon"].i[:], np.int64)
                steps = np.rint(np.asarray(w["mon"].t[:] / b2.ms) / w["dt"]).astype(np.int64)
                reply({"trials": (idx // w["N"]).tolist(), "units": (idx % w["N"]).tolist(),
                       "steps": steps.tolist()})
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception:  # reported to the parent, which decides
            reply({"error": traceback.format_exc()})
    return 0


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == WORKER_FLAG:
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = "1"
    sys.exit(_worker_main(sys.argv[2:]))

from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (first: it pins BLAS to one thread before numpy loads)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

import recur  # noqa: E402
from recur import graphs, kernels, metrics, tasks  # noqa: E402
from recur.networks import spiking as spiking_mod  # noqa: E402
from recur.networks.spiking import SpikingNet, pool_summary  # noqa: E402
from recur.rules import evidence as ev  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_spiking.md"

#: Two-sided 0.1% point of the standard normal: 1% family-wise over 10 pools (Bonferroni).
Z_CRIT = 3.29
T0 = 15.0        # ms, centre of the pulse packet
PACKET = (85, 1.0)  # a spikes, sigma ms

FULL = {
    "repeats": {"chain": 10, "random": 4},
    "chain": (10, 100, 100.0),       # pools, pool size, ms
    "random": (10000, 100, 1000.0),  # units, synapses per unit, ms
    "check_trials": 80,
    "rate_trials": 6,
    "one_step_repeats": 5,
    "targets": ("numpy", "cython"),
}
QUICK = {
    "repeats": {"chain": 2, "random": 2},
    "chain": (10, 100, 100.0),
    "random": (1000, 100, 100.0),
    "check_trials": 8,
    "rate_trials": 3,
    "one_step_repeats": 2,
    "targets": ("numpy",),           # Cython compilation alone can take longer than quick
}


# -- the workloads ---------------------------------------------------------------------------

def random_in_degree_graph(n_units, k_in, rng=None):
    """A directed graph in which every unit receives exactly ``k_in`` edges from distinct
    other units (no self-loops), drawn uniformly.

    Returns
    -------
    networkx.DiGraph
        Nodes ``0 .. n_units - 1``; edge ``u -> v`` means u drives v.
    """
    rng = np.random.default_rng(rng)
    if not 0 < k_in < n_units:
        raise ValueError(f"k_in must lie in [1, n_units - 1] = [1, {n_units - 1}], got {k_in}")
    pre = np.empty((n_units, k_in), np.intp)
    for i in range(n_units):
        # Draw among the n - 1 others: skip i by shifting the draws at or above it.
        s = rng.choice(n_units - 1, size=k_in, replace=False)
        pre[i] = np.where(s >= i, s + 1, s)
    G = nx.DiGraph()
    G.add_nodes_from(range(n_units))
    G.add_edges_from(zip(pre.ravel().tolist(), np.repeat(np.arange(n_units), k_in).tolist()))
    return G


def brian2_spec(net, params, *, v0, n_steps, drive=None, trials=1):
    """Everything the Brian2 worker needs, as plain arrays (written to an ``.npz``).

    Potentials are relative to rest (mV); ``v0`` is (trials, N). Edges come from the CSR of
    ``W[post, pre]``; every edge must share one delay (the workloads here do).
    """
    W = params["W"]
    steps = net.delay_steps
    if steps.size and np.unique(steps).size != 1:
        raise ValueError("the Brian2 model here takes one delay for every edge")
    # Exact Ornstein-Uhlenbeck increment over one step for a free-membrane sd of noise_std.
    noise_scale = net.noise_std * math.sqrt(-math.expm1(-2.0 * net.dt / net.tau_m))
    if drive is None or drive.n_events == 0:
        f_units = f_steps = f_trials = np.zeros(0, np.int64)
    else:
        f_units, f_steps = drive.units, drive.steps
        f_trials = np.zeros_like(f_units) if drive.trials is None else drive.trials
    return {
        "dt": net.dt, "n_units": net.n_units, "trials": trials, "n_steps": n_steps,
        "tau_m": net.tau_m, "tau_syn": net.tau_syn, "noise_mean": net.noise_mean,
        "noise_scale": noise_scale, "theta": net.v_threshold - net.v_rest,
        "reset": net.v_reset - net.v_rest,
        # recur (like NEST) holds the membrane at reset for the n_ref steps after the spike
        # step, so the earliest next spike comes n_ref + 1 steps later; Brian2's refractory
        # period counts from the spike step itself (a unit may fire again exactly t_ref
        # later): one step more in Brian2 is the same model.
        "refractory": (net.refractory_steps + 1) * net.dt,
        "delay": (int(steps[0]) if steps.size else 1) * net.dt,
        "pre": W.indices.astype(np.int64),
        "post": np.repeat(np.arange(W.shape[0]), np.diff(W.indptr)).astype(np.int64),
        "weight": np.asarray(W.data, float), "v0": np.asarray(v0, float) - net.v_rest,
        "forced_units": np.asarray(f_units, np.int64), "forced_steps": np.asarray(f_steps,
                                                                                  np.int64),
        "forced_trials": np.asarray(f_trials, np.int64),
    }


def count_agreement(counts_a, counts_b):
    r"""Per-pool z statistics of two sets of spike counts, (trials, pools) each.

    .. math::

        z_k = \frac{\bar a_k - \bar b_k}{\sqrt{s_{a,k}^2 / n_a + s_{b,k}^2 / n_b}}

    with sample standard deviations (``ddof=1``); a pool with no spread in either set gets
    ``z = 0`` when the means agree and ``inf`` otherwise.

    Returns
    -------
    dict
        ``mean_a``, ``mean_b``, ``sd_a``, ``sd_b`` and ``z``, each of shape (pools,), and
        ``max_abs_z``.
    """
    a = np.asarray(counts_a, float)
    b = np.asarray(counts_b, float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"counts must be (trials, pools) with the same pools, got {a.shape} "
                         f"and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("need at least two trials on each side for a spread")
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = a.std(0, ddof=1), b.std(0, ddof=1)
    se = np.sqrt(sa ** 2 / a.shape[0] + sb ** 2 / b.shape[0])
    diff = ma - mb
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0),
                     np.where(diff == 0, 0.0, np.inf))
    return {"mean_a": ma, "mean_b": mb, "sd_a": sa, "sd_b": sb, "z": z,
            "max_abs_z": float(np.max(np.abs(z)))}


# -- the Brian2 workers ----------------------------------------------------------------------

class Brian2Worker:
    """A Brian2 process for one code-generation target, driven by JSON lines."""

    def __init__(self, python, target, log):
        self.target = target
        self.proc = subprocess.Popen([python, str(Path(__file__).resolve()), WORKER_FLAG,
                                      target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True)
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Brian2 {self.target} worker exited (code "
                               f"{self.proc.wait()}); see its log")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"Brian2 {self.target} worker: {reply['error']}")
        return reply

    def call(self, cmd, **kwargs):
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_workers(python, targets, log_path):
    """One worker per target: (workers, version line, None), or ({}, None, reason) when the
    interpreter cannot run Brian2."""
    workers = {}
    try:
        with open(log_path, "w") as log:
            for target in targets:
                workers[target] = Brian2Worker(python, target, log)
    except (OSError, RuntimeError) as exc:
        for w in workers.values():
            w.close()
        tail = log_path.read_text().strip().splitlines() if log_path.exists() else []
        return {}, None, f"Brian2 does not run in {python}: " + (tail[-1] if tail else str(exc))
    hello = next(iter(workers.values())).hello
    return workers, (f"Brian2 {hello['brian2']} (Python {hello['python']}, numpy "
                     f"{hello['numpy']}, {python})"), None


# -- timing ----------------------------------------------------------------------------------

def alternate(fns, repeats):
    """Best-of-``repeats`` seconds of each function, called in turn after one warm-up call
    each. Each function returns the seconds it took (a Brian2 worker measures its own
    ``Network.run``); the warm-up results are returned too."""
    first = [fn() for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(fn())
    return [min(t) for t in times], first


def backend_label(backend):
    return "numba" if kernels.use_numba(backend, spiking_mod.spiking_kernels._JIT) else "numpy"


def skip_row(table, workload, ours, reason):
    row = (workload, ours, f"skipped ({reason})", "", "", "")
    table.rows.append(row)
    print("  " + " | ".join(row), flush=True)


def fmt_s(seconds):
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def time_workload(name, label, net, params, run_kwargs, spec, workers, cfg, table, notes,
                  tmp):
    """Time recur (both backends) and each Brian2 worker on one workload; add the rows."""
    nets = {"auto": SpikingNet(**{**_fields(net), "backend": "auto"})}
    labels = {"auto": backend_label("auto")}
    if labels["auto"] != "numpy":   # without numba, "auto" is the numpy backend already
        nets["numpy"] = SpikingNet(**{**_fields(net), "backend": "numpy"})
        labels["numpy"] = "numpy"
    fns, names = [], []
    n_spikes = {}
    for backend, n in nets.items():
        def run(n=n, backend=backend):
            t0 = time.perf_counter()
            raster, _ = n.run(params, **run_kwargs)
            seconds = time.perf_counter() - t0
            n_spikes[f"recur {labels[backend]}"] = raster.units.size
            return seconds
        fns.append(run)
        names.append(f"recur {labels[backend]}")
    live = {}
    if workers:
        path = Path(tmp) / f"{name}.npz"
        np.savez(path, **spec)
        for target, w in workers.items():
            info = w.call("build", name=name, path=str(path))
            notes.append(f"{label}: Brian2 {target} built the network ({info['n_synapses']:,} "
                         f"synapses) in {info['build_s']:.1f} s (not timed)")
            live[target] = w

            def run(w=w, target=target):
                r = w.call("run", name=name, seed=1)
                n_spikes[f"Brian2 {target}"] = r["n_spikes"]
                return r["seconds"]
            fns.append(run)
            names.append(f"Brian2 {target}")
    best, first = alternate(fns, cfg["repeats"][name])
    t = dict(zip(names, best))
    warm = dict(zip(names, first))
    # What one call costs whatever its length: a run of a single step, best of a few.
    one_step = {}
    for backend, n in nets.items():
        def tiny(n=n):
            return harness.timed(lambda: n.run(params, **{**run_kwargs, "duration": None,
                                                          "n_steps": 1, "drive": None}))
        one_step[f"recur {labels[backend]}"] = min(tiny() for _ in
                                                   range(cfg["one_step_repeats"]))
    for target, w in live.items():
        one_step[f"Brian2 {target}"] = min(w.call("run", name=name, n_steps=1)["seconds"]
                                           for _ in range(cfg["one_step_repeats"]))
    notes.append(f"{label}: a run of one step (the fixed cost of a call) takes " + ", ".join(
        f"{k} {one_step[k] * 1e3:.1f} ms" for k in names) + "; without it the stepping "
        "alone: " + ", ".join(f"{k} {fmt_s(max(t[k] - one_step[k], 0.0))}" for k in names))
    ours = f"recur {labels['auto']}"
    ours_np = "recur numpy"
    for target in ("numpy", "cython"):
        ref = f"Brian2 {target}"
        goal = 1 if target == "numpy" else None
        rows = [(ours, labels["auto"])]
        if labels["auto"] != "numpy":
            rows.append((ours_np, "numpy"))
        for key, lab in rows:
            wl = f"{label}: recur ({lab} backend) vs Brian2 {target} target"
            if ref in t:
                table.add(wl, fmt_s(t[key]), fmt_s(t[ref]), t[ref] / t[key], goal=goal)
            else:
                reason = ("not run in quick mode (Cython compilation)"
                          if target == "cython" and workers and target not in live
                          else "no Brian2")
                skip_row(table, wl, fmt_s(t[key]), reason)
    for key in names:
        if key.startswith("Brian2"):
            notes.append(f"{label}: {key} first run (code generation"
                         f"{', compilation or loading cached modules' if 'cython' in key else ''}"
                         f"; not in the table) {fmt_s(warm[key])}, timed runs best "
                         f"{fmt_s(t[key])}")
    notes.append(f"{label}: spikes in the timed run: " + ", ".join(
        f"{k} {v:,}" for k, v in sorted(n_spikes.items())))
    return t, n_spikes


def _fields(net):
    """Constructor arguments of a SpikingNet (to rebuild it with another backend)."""
    import dataclasses

    return {f.name: getattr(net, f.name) for f in dataclasses.fields(net) if f.init}


# -- the workloads, run ----------------------------------------------------------------------

def chain_workload(cfg, workers, table, notes, checks, tmp):
    n_pools, pool_size, duration = cfg["chain"]
    topo = recur.Topology(graphs.synfire_chain_graph(n_pools, pool_size, 1.0))
    net = SpikingNet(topo)
    params = net.init(0)
    rng = np.random.default_rng(20261207)
    g_packet, g_state, g_check = rng.spawn(3)
    a, sigma = PACKET
    drive = tasks.pulse_packet(a, sigma, topo.pools[0], t0=T0, n_units=net.n_units, dt=net.dt,
                               rng=g_packet)
    state = net.initial_state(None, rng=g_state, stationary=True)
    n_steps = net.n_steps_for(duration)
    label = (f"Diesmann chain {n_pools} x {pool_size} LIF, {duration:g} ms, packet a={a}, "
             f"sigma={sigma:g} ms")
    spec = brian2_spec(net, params, v0=state["v"], n_steps=n_steps, drive=drive)
    time_workload("chain", label, net, params,
                  # An integer seed: every timed run draws the same noise (a Generator
                  # would be consumed), so all runs of both backends give the same spikes.
                  {"duration": duration, "drive": drive, "state": state, "rng": 11},
                  spec, workers, cfg, table, notes, tmp)
    check_chain(net, params, topo, cfg, workers, checks, tmp, g_check)


def check_chain(net, params, topo, cfg, workers, checks, tmp, rng):
    """Spike counts per pool, recur against Brian2, over trials (the report's check)."""
    n_pools, pool_size, duration = cfg["chain"]
    B = cfg["check_trials"]
    g_packet, g_state, g_noise = rng.spawn(3)
    a, sigma = PACKET
    drive = tasks.pulse_packet(a, sigma, topo.pools[0], t0=T0, n_units=net.n_units, dt=net.dt,
                               trials=B, rng=g_packet)
    state = net.initial_state(B, rng=g_state, stationary=True)
    n_steps = net.n_steps_for(duration)
    raster, _ = net.run(params, duration, drive, trials=B, state=state, rng=g_noise)
    ours = pool_summary(raster, topo.pools, n_trials=B)["counts"]
    head = (f"spike counts per pool, Diesmann chain, {B} trials of {duration:g} ms in each "
            f"simulator (a={a}, sigma={sigma:g} ms packets at {T0:g} ms)")
    if not workers:
        checks.append(f"{head}: recur only (no Brian2): mean per pool "
                      + ", ".join(f"{m:.1f}" for m in ours.mean(0)))
        return None
    target = "cython" if "cython" in workers else "numpy"
    w = workers[target]
    spec = brian2_spec(net, params, v0=state["v"], n_steps=n_steps, drive=drive, trials=B)
    path = Path(tmp) / "chain_check.npz"
    np.savez(path, **spec)
    w.call("build", name="chain_check", path=str(path))
    w.call("run", name="chain_check", seed=2)
    sp = w.call("spikes", name="chain_check")
    theirs_raster = ev.SpikeTrains(units=np.asarray(sp["units"], np.intp),
                                   steps=np.asarray(sp["steps"], np.intp),
                                   n_units=net.n_units, n_steps=n_steps, dt=net.dt,
                                   trials=np.asarray(sp["trials"], np.intp))
    theirs = pool_summary(theirs_raster, topo.pools, n_trials=B)["counts"]
    res = count_agreement(ours, theirs)
    ok = res["max_abs_z"] < Z_CRIT
    lines = [f"{head}, Brian2 {target} target: max |z| over pools {res['max_abs_z']:.2f} "
             f"(limit {Z_CRIT}): {'agree' if ok else '**DISAGREE**'}", "",
             "  | pool | recur mean (sd) | Brian2 mean (sd) | z |", "  |---|---|---|---|"]
    for k in range(len(res["z"])):
        lines.append(f"  | {k} | {res['mean_a'][k]:.1f} ({res['sd_a'][k]:.1f}) | "
                     f"{res['mean_b'][k]:.1f} ({res['sd_b'][k]:.1f}) | {res['z'][k]:+.2f} |")
    packet = []
    for who, r in (("recur", raster), ("Brian2", theirs_raster)):
        m = metrics.packet_measures(r, topo.pools, t0=T0, n_trials=B)
        ok_k = metrics.propagation_success(m)
        final = m.sigma[ok_k, -1]
        packet.append(f"{who}: reached the last pool in {int(ok_k.sum())}/{B} trials, final "
                      f"spread {np.nanmean(final) if final.size else float('nan'):.2f} ms, "
                      f"final count {np.mean(m.a[:, -1]):.1f}")
    lines += ["", "  Packet measures (metrics.packet_measures): " + "; ".join(packet) + "."]
    checks.append("\n".join(lines))
    print("\n".join(lines), flush=True)
    return res


def random_workload(cfg, workers, table, notes, checks, tmp):
    n_units, k_in, duration = cfg["random"]
    t0 = time.perf_counter()
    G = random_in_degree_graph(n_units, k_in, rng=7)
    topo = recur.Topology(G)
    net = SpikingNet(topo)
    params = net.init(0)
    notes.append(f"random network: networkx graph, Topology and init took "
                 f"{time.perf_counter() - t0:.1f} s (not timed)")
    rng = np.random.default_rng(20261208)
    g_state, = rng.spawn(1)
    state = net.initial_state(None, rng=g_state, stationary=True)
    n_steps = net.n_steps_for(duration)
    label = (f"random LIF network, {n_units:,} units x {k_in} synapses, {duration:g} ms")
    spec = brian2_spec(net, params, v0=state["v"], n_steps=n_steps)
    _, n_spikes = time_workload("random", label, net, params,
                                {"duration": duration, "state": state, "rng": 12}, spec,
                                workers, cfg, table, notes, tmp)
    # The floor both simulators share: one normal number per unit and step.
    g = np.random.default_rng(0)

    def draw():
        for k in range(0, n_steps, 256):   # each block dropped at once: 20 MB, not 800 MB
            g.standard_normal((min(256, n_steps - k), n_units))
    t_draw = harness.timed(draw)
    notes.append(f"{label}: drawing the {n_steps * n_units:.2g} normal numbers of the "
                 f"background noise alone (numpy Generator.standard_normal, blocks of 256 "
                 f"steps) takes {fmt_s(t_draw)}")
    seconds = duration * 1e-3
    rates = ", ".join(f"{k} {v / n_units / seconds:.2f} Hz" for k, v in
                      sorted(n_spikes.items()))
    checks.append(f"random network: mean rate per unit in the timed run ({rates}); an isolated "
                  f"unit with this background fires 3.5 Hz (recur's calibration), so the "
                  "recurrent input raises it, and no simulator goes silent or explodes")
    # The rate over several independent trials in each simulator (their own initial
    # membranes, shared by the two), against the trial-to-trial spread.
    B = cfg["rate_trials"]
    g_rate_state, g_rate_noise = np.random.default_rng(20261209).spawn(2)
    st_b = net.initial_state(B, rng=g_rate_state, stationary=True)
    raster, _ = net.run(params, duration, trials=B, state=st_b, rng=g_rate_noise)
    ours = np.bincount(raster.trials, minlength=B)
    text = (f"random network, mean rate per unit over {B} trials (independent initial "
            f"membranes, the same in both simulators, and independent noise): recur "
            + _mean_sd(ours / n_units / seconds))
    if workers:
        target = "cython" if "cython" in workers else "numpy"
        spec = brian2_spec(net, params, v0=st_b["v"], n_steps=n_steps, trials=B)
        path = Path(tmp) / "random_rates.npz"
        np.savez(path, **spec)
        w = workers[target]
        w.call("build", name="random_rates", path=str(path))
        w.call("run", name="random_rates", seed=3)
        theirs = np.bincount(np.asarray(w.call("spikes", name="random_rates")["trials"],
                                        np.intp), minlength=B)
        res = count_agreement(ours[:, None], theirs[:, None])
        ok = res["max_abs_z"] < Z_CRIT
        text += (f", Brian2 {target} " + _mean_sd(theirs / n_units / seconds)
                 + f"; z = {res['z'][0]:+.2f} (limit {Z_CRIT}): "
                 + ("agree" if ok else "**DISAGREE**"))
    checks.append(text)
    print(text, flush=True)


def _mean_sd(x):
    return f"{np.mean(x):.3f} Hz (sd {np.std(x, ddof=1):.3f})"


def exact_case(n_steps=1000):
    """The noise-free run both simulators must agree on spike for spike: a 3 x 6 chain with a
    mean drive above threshold (every unit fires regularly, period 10 ln 16 = 27.7 ms from
    rest), strong weights (the kicks move the spike times) and imposed packets, two trials.

    Returns ``(raster, spec)``: recur's spikes and the Brian2 model's specification."""
    topo = recur.Topology(graphs.synfire_chain_graph(3, 6, 1.0))
    net = SpikingNet(topo, noise_mean=16.0, noise_std=0.0, weight=20.0)
    params = net.init(0)
    state = net.initial_state(2, rng=1, stationary=True)
    drive = tasks.pulse_packet(5, 1.0, topo.pools[0], t0=10.0, n_units=net.n_units,
                               dt=net.dt, trials=2, rng=2)
    raster, _ = net.run(params, n_steps=n_steps, drive=drive, trials=2, state=state)
    spec = brian2_spec(net, params, v0=state["v"], n_steps=n_steps, drive=drive, trials=2)
    return raster, spec


def exactness_check(workers, checks, tmp):
    """Without background noise both simulators are deterministic: the same spikes, exactly.

    A 3 x 6 chain with a mean drive above threshold (every unit fires regularly), strong
    weights (the kicks move the spike times) and imposed packets, two trials, 100 ms.
    """
    if not workers:
        return
    raster, spec = exact_case()
    path = Path(tmp) / "exact.npz"
    np.savez(path, **spec)
    ours = set(zip(raster.trials.tolist(), raster.units.tolist(), raster.steps.tolist()))
    for target, w in workers.items():
        w.call("build", name="exact", path=str(path))
        w.call("run", name="exact")
        sp_ = w.call("spikes", name="exact")
        theirs = set(zip(sp_["trials"], sp_["units"], sp_["steps"]))
        same = ours == theirs
        text = (f"noise-free 3 x 6 chain (drive above threshold, weight 20 mV, packets, 2 "
                f"trials, 100 ms), Brian2 {target} target: "
                + (f"identical spikes ({len(ours)} of them)" if same else
                   f"**spikes differ**: {len(ours - theirs)} only in recur, "
                   f"{len(theirs - ours)} only in Brian2, of {len(ours)}"))
        checks.append(text)
        print(text, flush=True)


# -- main ------------------------------------------------------------------------------------

def header(cfg, quick, brian2_line):
    return [
        "# Spiking networks: recur against Brian2",
        "",
        "- " + harness.machine_line(*([brian2_line] if brian2_line else [])),
        "- " + harness.BLAS_NOTE,
        f"- Mode: {'quick' if quick else 'full'}; best of {cfg['repeats']['chain']} (chain) and "
        f"{cfg['repeats']['random']} (random network) alternating repeats after one warm-up "
        "run each; ratio = Brian2 time / recur time (> 1: recur faster). "
        "Brian2 times exclude code generation and compilation (warm-up run) and network "
        "construction; recur times exclude numba compilation (warm-up) and graph "
        "construction. Only ratios are meaningful: the machine may be shared.",
        "- Model (both): LIF, tau_m 10 ms, exponential synaptic current tau_s 0.325 ms, "
        "threshold -55 mV, reset -70 mV, refractory 1 ms, delay 1 ms, weight 4.86 mV (current "
        "jump), background white noise (mean 7.43 mV, sd 3.13 mV of the free membrane), "
        "exact integration, dt 0.1 ms; identical weights, initial membranes and packet "
        "spikes, independent noise. See the script's docstring for the Brian2 equations.",
        "",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few repeats, Brian2's numpy target only")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the report here (default: benchmarks/results/"
                             "bench_spiking.md in full mode, nowhere with --quick)")
    parser.add_argument("--brian2-python", default=os.environ.get("RECUR_BRIAN2_PYTHON",
                                                                  sys.executable),
                        help="interpreter with brian2 installed (default: $RECUR_BRIAN2_PYTHON"
                             " or this one)")
    parser.add_argument("--no-brian2", action="store_true", help="recur rows only")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else RESULTS)

    t_start = time.perf_counter()
    table = harness.Table(reference="Brian2")
    notes, checks = [], []
    with tempfile.TemporaryDirectory(prefix="bench_spiking_") as tmp:
        log_path = Path(tmp) / "brian2.log"
        if args.no_brian2:
            workers, brian2_line, reason = {}, None, "--no-brian2"
        else:
            workers, brian2_line, reason = start_workers(args.brian2_python, cfg["targets"],
                                                         log_path)
        lines = header(cfg, args.quick, brian2_line)
        print("\n".join(lines), flush=True)
        if reason:
            notes.append(f"Brian2 rows skipped: {reason}")
        elif "cython" not in workers:
            notes.append("Brian2 Cython target not run in quick mode (its first compilation "
                         "can take longer than the whole quick run)")
        try:
            exactness_check(workers, checks, tmp)
            chain_workload(cfg, workers, table, notes, checks, tmp)
            random_workload(cfg, workers, table, notes, checks, tmp)
        except Exception:
            if log_path.exists() and log_path.stat().st_size:
                print("Brian2 worker log (tail):\n" + "\n".join(
                    log_path.read_text().splitlines()[-30:]), file=sys.stderr)
            raise
        finally:
            for w in workers.values():
                w.close()
    elapsed = time.perf_counter() - t_start

    body = [table.markdown(), ""]
    body += [f"- {n}" for n in notes]
    body += ["", "Checks:", ""]
    body += [f"- {c}" for c in checks]
    body += ["", f"Total time {elapsed:.0f} s. Reproduce: `python benchmarks/bench_spiking.py"
             + (" --quick" if args.quick else "") + "` (with brian2 importable, or "
             "`--brian2-python PATH`)", ""]
    text = "\n".join(lines + body)
    print("\n" + "\n".join(body))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
