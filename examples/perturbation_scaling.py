"""How much slower than gradient descent is learning from a scalar reward? Werfel et al. (2005).

Online linear teacher-student: a student ``y = W x`` (``recur.Linear``, N inputs, M outputs)
learns a teacher ``y* = W* x`` from one sample ``x ~ N(0, I_N)`` per update, starting at
``W = 0``. For each method we count the updates until the relative weight error
``||W - W*|| / ||W*||`` first falls to 1%, at the best step size of a log grid, and report the
ratio to gradient descent. Werfel, Xie & Seung (2005) predict, at the optimal step sizes,

    GD  eta* = 1/(N+2)                  steps ~ (N+2) ln(1/err^2)
    NP  eta* = 1/((M+2)(N+2))           (M+2) times the GD steps
    WP  eta* = 1/((MN+2)(N+2))          (MN+2) times the GD steps

(node perturbation is slower by about the number of outputs, weight perturbation by the number
of weights). The grid is centred on those optima. Step sizes are quoted in Werfel's units, for
the loss ``||e||^2 / 2``; recur's loss is the mean over outputs, ``||e||^2 / M``, whose gradient
is ``2/M`` times larger, so the learning rate handed to ``rules.scale`` is ``eta * M / 2``.

Methods, all recur rule objects on the ``Linear`` network:

- GD: ``rules.bptt()`` (on Linear the Gradient evidence is the exact gradient of the sample);
- NP: ``rules.node_perturbation`` (noise on each output);
- WP: ``rules.weight_perturbation`` (noise on each weight);

with perturbation sigma 1e-3 and ``n_samples=1, antithetic=False`` with the clean (unperturbed)
loss as the baseline: the original single-perturbation setting, one perturbed and one clean
evaluation per update, improvement ``-(L_1 - L_0) e_1 / sigma^2``.

Each seed fixes one teacher and one sample stream, shared by every method and step size (a
paired design); the number of steps is the median over seeds at each step size, and the best
step size is the one with the smallest median. Step sizes are tried from the predicted optimum
outwards, and a run is stopped (counted as never arriving) once it has taken twice as many
steps as the best run of its seed and method so far: it cannot be the best.

Run::

    python examples/perturbation_scaling.py            # N in {10, 20}, M in {1, 5}: ~6 CPU-minutes
    python examples/perturbation_scaling.py --quick    # N=10, M in {1, 2}, < 20 s
    python examples/perturbation_scaling.py --inputs 10 --outputs 1 2 5 --seeds 0 1 2
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np

import recur as rc
from recur import plotting, rules, tasks

METHODS = ("GD", "NP", "WP")
# Calibrated ratios to GD (REFERENCES.md, "Perturbation learning"), keyed by (N, M).
CALIBRATED = {
    (10, 1): {"NP": (2.5, 3.1), "WP": (10.0, 12.0)},
    (10, 5): {"NP": (7.5, 7.5), "WP": (49.0, 56.0)},
    (20, 5): {"NP": (7.4, 7.7), "WP": (103.0, 106.0)},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=10, M in {1, 2}, 10 seeds (3 for WP), 3 step sizes")
    parser.add_argument("--inputs", type=int, nargs="+", default=None,
                        help="input dimensions N (default 10 20, or 10 with --quick)")
    parser.add_argument("--outputs", type=int, nargs="+", default=None,
                        help="output dimensions M (default 1 5, or 1 2 with --quick)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default 0..14, or 0..9 with --quick)")
    parser.add_argument("--wp-seeds", type=int, default=None,
                        help="weight perturbation runs on the first this many seeds only "
                             "(default 7, or 3 with --quick): its runs are the long ones, and "
                             "its ratio to GD, about MN+2, needs less precision than NP's")
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for the figure (default: current folder)")
    args = parser.parse_args(argv)
    quick = args.quick
    config = {
        "inputs": args.inputs or ([10] if quick else [10, 20]),
        "outputs": args.outputs or ([1, 2] if quick else [1, 5]),
        "seeds": args.seeds if args.seeds is not None else (list(range(10)) if quick
                                                             else list(range(15))),
        "wp_seeds": args.wp_seeds or (3 if quick else 7),
        # Step sizes as multiples of the predicted optimum, a log grid with sqrt(2) spacing.
        "grid": [0.71, 1.0, 1.41] if quick else [0.35, 0.5, 0.71, 1.0, 1.41, 2.0],
        "sigma": 1e-3,
        "threshold": 0.01,
        # A run that has not reached the threshold after this many times the predicted number
        # of steps at the optimum is stopped (counted as never).
        "max_factor": 4.0,
    }
    return config, args.out


def optimal_eta(method, N, M):
    """Werfel et al.'s optimal step size, in units of the loss ||e||^2 / 2."""
    return {"GD": 1.0 / (N + 2), "NP": 1.0 / ((M + 2) * (N + 2)),
            "WP": 1.0 / ((M * N + 2) * (N + 2))}[method]


def predicted_steps(method, N, M, threshold):
    """Steps to the threshold at the optimal step size: there the squared weight error
    shrinks on average by the factor ``1 - eta*`` per step, from 1 to ``threshold**2``."""
    return math.log(1.0 / threshold**2) / -math.log1p(-optimal_eta(method, N, M))


def estimator(method, sigma):
    """The recur rule object of a method (the bare estimator; the step size is separate)."""
    if method == "GD":
        return rules.bptt()
    make = rules.node_perturbation if method == "NP" else rules.weight_perturbation
    return make(sigma=sigma, n_samples=1, antithetic=False, baseline="clean")


class SampleStream:
    """One seed's samples ``x_t ~ N(0, I_N)`` with the teacher's targets, as recur
    objectives shared by every run of the seed (a paired design). Samples are drawn in
    blocks; each objective is built the first time a run reaches its step."""

    def __init__(self, teacher, rng, block=1024):
        self.teacher, self.rng, self.block = teacher, rng, block
        self.x = np.empty((0, 1, teacher.shape[1]))
        self.data = []

    def __getitem__(self, t):
        if t < len(self.data):
            return self.data[t]
        while t >= len(self.x):
            more = self.rng.standard_normal((self.block, 1, self.teacher.shape[1]))
            self.x = np.concatenate([self.x, more])
        for i in range(len(self.data), t + 1):
            self.data.append(tasks.TeacherForced(self.x[i], self.x[i] @ self.teacher.T))
        return self.data[t]


def steps_to_threshold(net, estimator_rule, learning_rate, teacher, stream, *, threshold,
                       max_steps, rng):
    """Online learning, one sample per update, until ``||W - W*|| / ||W*|| <= threshold``.

    Returns the number of updates taken, or ``inf`` if the run diverged or did not get there
    within ``max_steps``.

    This is the loop of :func:`recur.train` written out: ``collect``, the rule's ``update``,
    ``apply_updates``. ``train`` runs a fixed number of epochs, while a learning time must
    stop at the first step under the threshold (the runs at a poor step size would otherwise
    cost their whole budget), and per-step bookkeeping (generator spawning, the history) is a
    large part of a step that costs tens of microseconds. The step size is a ``rules.scale``
    transform applied after the estimator, as ``chain(estimator, scale(lr))`` would.
    """
    step = rules.scale(learning_rate)
    requests = estimator_rule.requests
    params = net.init()  # init_scale=0: W = 0, relative error 1
    state = estimator_rule.init(params)
    norm_star = np.linalg.norm(teacher)
    for t in range(int(max_steps)):
        evidence = net.collect(params, stream[t], requests, rng=rng)
        updates, state = estimator_rule.update(evidence, state, params, rng=rng)
        updates, _ = step.update(updates, None, params)
        params = rules.apply_updates(params, updates)
        err = np.linalg.norm(params["W"] - teacher) / norm_star
        if err <= threshold:
            return t + 1
        if not err < 1e3:  # diverged (or NaN)
            return math.inf
    return math.inf


def run_config(N, M, config):
    """All seeds, methods and step sizes for one (N, M); returns the per-run records."""
    net = rc.Linear(N, M, init_scale=0.0)
    records = []
    for seed in config["seeds"]:
        r_teacher, r_samples, r_noise = np.random.default_rng(seed).spawn(3)
        teacher = r_teacher.standard_normal((M, N)) / math.sqrt(N)
        stream = SampleStream(teacher, r_samples)
        noise = r_noise.spawn(len(METHODS) * len(config["grid"]))
        for i, method in enumerate(METHODS):
            if method == "WP" and seed not in config["seeds"][:config["wp_seeds"]]:
                continue
            rule = estimator(method, config["sigma"])
            budget = config["max_factor"] * predicted_steps(method, N, M, config["threshold"])
            # Step sizes from the predicted optimum outwards; a run that takes more than
            # twice the best run so far (same seed and method) cannot be the best one and is
            # stopped there, and counted as never reaching the threshold.
            best = math.inf
            order = sorted(range(len(config["grid"])),
                           key=lambda j: abs(math.log(config["grid"][j])))
            for j in order:
                factor = config["grid"][j]
                eta = factor * optimal_eta(method, N, M)
                steps = steps_to_threshold(net, rule, eta * M / 2.0, teacher, stream,
                                           threshold=config["threshold"],
                                           max_steps=min(budget, 2 * best),
                                           rng=noise[i * len(config["grid"]) + j])
                best = min(best, steps)
                records.append({"N": N, "M": M, "seed": seed, "method": method,
                                "factor": factor, "eta": eta, "steps": steps})
    return records


def seeds_of(method, config):
    """The seeds a method runs on (weight perturbation: the first ``wp_seeds``)."""
    return config["seeds"][:config["wp_seeds"]] if method == "WP" else config["seeds"]


def summarise(records, config):
    """Best median steps per method and the ratios to GD, per (N, M)."""
    rows = []
    for N in config["inputs"]:
        for M in config["outputs"]:
            row = {"N": N, "M": M, "predicted_NP": M + 2, "predicted_WP": M * N + 2,
                   "calibrated": CALIBRATED.get((N, M))}
            for method in METHODS:
                medians = {f: float(np.median([r["steps"] for r in records
                                               if (r["N"], r["M"], r["method"], r["factor"])
                                               == (N, M, method, f)]))
                           for f in config["grid"]}
                best = min(medians, key=medians.get)
                row[method] = {"steps": medians[best], "factor": best,
                               "eta": best * optimal_eta(method, N, M), "by_factor": medians,
                               "at_grid_edge": best in (config["grid"][0], config["grid"][-1])}
                # Each seed's best over the grid, for the spread of the ratio.
                row[method]["per_seed"] = {
                    s: min(r["steps"] for r in records
                           if (r["N"], r["M"], r["method"], r["seed"]) == (N, M, method, s))
                    for s in seeds_of(method, config)}
            for method in ("NP", "WP"):
                row[f"ratio_{method}"] = row[method]["steps"] / row["GD"]["steps"]
                per_seed = [v / row["GD"]["per_seed"][s]
                            for s, v in row[method]["per_seed"].items()]
                row[f"ratio_{method}_range"] = (float(min(per_seed)), float(max(per_seed)))
            rows.append(row)
    return rows


def print_table(rows, config):
    print(f"\nWerfel, Xie & Seung (2005): online linear teacher-student, steps to "
          f"{config['threshold']:.0%} relative weight error at the best step size")
    print(f"perturbation sigma {config['sigma']:g}, n_samples=1, not antithetic, clean-loss "
          f"baseline; median over {len(config['seeds'])} seeds "
          f"({len(seeds_of('WP', config))} for WP); step-size grid "
          f"{config['grid']} x Werfel's optimum")
    header = (f"{'N':>3} {'M':>2} {'GD':>7} {'NP':>8} {'WP':>9} | {'NP/GD':>6} {'M+2':>4} "
              f"{'calibrated':>10} | {'WP/GD':>6} {'MN+2':>5} {'calibrated':>11}")
    print(header)
    print("-" * len(header))

    def band(row, method):
        cal = row["calibrated"]
        if not cal:
            return "-"
        lo, hi = cal[method]
        return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"

    for r in rows:
        flags = "".join("*" for m in METHODS if r[m]["at_grid_edge"])
        print(f"{r['N']:>3} {r['M']:>2} {r['GD']['steps']:>7.0f} {r['NP']['steps']:>8.0f} "
              f"{r['WP']['steps']:>9.0f} | {r['ratio_NP']:>6.2f} {r['predicted_NP']:>4} "
              f"{band(r, 'NP'):>10} | {r['ratio_WP']:>6.1f} {r['predicted_WP']:>5} "
              f"{band(r, 'WP'):>11} {flags}")
    if any(r[m]["at_grid_edge"] for r in rows for m in METHODS):
        print("* a best step size sits at the edge of the grid: widen it to be sure")
    print("best step size / Werfel's optimum: " + "; ".join(
        f"N={r['N']},M={r['M']}: " + " ".join(f"{m} {r[m]['factor']:g}" for m in METHODS)
        for r in rows))


def plot(records, rows, config, path):
    """Left: median steps against step size per method; right: measured ratios against
    M+2 and MN+2."""
    fig = plotting.new_figure(figsize=(11, 4.5))
    if fig is None:  # no matplotlib: no figure
        return None
    left, right = fig.subplots(1, 2)
    colours = {"GD": "tab:green", "NP": "tab:blue", "WP": "tab:red"}
    styles = ["-", "--", ":", "-."]
    for k, row in enumerate(rows):
        for method in METHODS:
            f = np.array(config["grid"])
            s = np.array([row[method]["by_factor"][x] for x in config["grid"]])
            f, s = f[np.isfinite(s)], s[np.isfinite(s)]
            left.plot(f, s, styles[k % len(styles)], marker="o", ms=3, color=colours[method],
                      label=f"{method} N={row['N']} M={row['M']}")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("step size / predicted optimum")
    left.set_ylabel(f"steps to {config['threshold']:.0%} weight error (median)")
    left.legend(fontsize=6, ncol=2)
    for method, key, marker in (("NP", "predicted_NP", "o"), ("WP", "predicted_WP", "s")):
        pred = np.array([r[key] for r in rows], dtype=float)
        meas = np.array([r[f"ratio_{method}"] for r in rows])
        lo = meas - np.array([r[f"ratio_{method}_range"][0] for r in rows])
        hi = np.array([r[f"ratio_{method}_range"][1] for r in rows]) - meas
        right.errorbar(pred, meas, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt=marker,
                       color=colours[method],
                       label=f"{method}/GD (bars: range of per-seed best ratios)")
        for r in rows:
            if r["calibrated"]:
                a, b = r["calibrated"][method]
                right.plot([r[key] * 1.06] * 2, [a, b + 1e-9], color="grey", lw=4, alpha=0.5)
    span = np.array([2.0, max(r["predicted_WP"] for r in rows) * 1.5])
    right.plot(span, span, "k--", lw=0.8, label="ratio = M+2 (NP), MN+2 (WP)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("predicted ratio")
    right.set_ylabel("measured steps ratio to GD")
    right.set_title("grey: calibrated bands", fontsize=8)
    right.legend(fontsize=7)
    fig.suptitle("Perturbation learning vs gradient descent, online linear teacher-student")
    return plotting.save_figure(fig, path)


def main(argv=None):
    config, out = parse_args(argv)
    start = time.perf_counter()
    records = []
    for N in config["inputs"]:
        for M in config["outputs"]:
            records += run_config(N, M, config)
    rows = summarise(records, config)
    print_table(rows, config)
    figure = plot(records, rows, config, out / "perturbation_scaling.png")
    seconds = time.perf_counter() - start
    print(f"\n{len(records)} runs in {seconds:.1f} s"
          + (f"; figure: {figure}" if figure else " (no matplotlib: no figure)"))
    return {"config": config, "records": records, "rows": rows, "figure": figure,
            "seconds": seconds}


if __name__ == "__main__":
    main()
