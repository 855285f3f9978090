"""Perturbation learning on a spiking network: node perturbation, weight perturbation, STDP.

A spike-timing task on leaky integrate-and-fire units (``recur.SpikingNet``): ``n_in`` input
units replay a fixed spike pattern (each fires once, at a time drawn once per seed, as
imposed spikes), and ``n_out`` output units, connected all-to-all from the inputs, should
each fire once at its target time (20, 32, 44 ms). The loss of a trial is the mean over the
outputs of the squared van Rossum distance to the target train (``SpikeTarget``, tau = 5 ms:
a spike off by Delta costs ``1 - exp(-|Delta| / tau)``, a missing or extra spike 1/2). Every
unit also receives a fluctuating background current (mean 7 mV, std 2 mV of the free
membrane), so each trial is a different noise realisation and what can be learned is the
noise-averaged loss.

Three rules train the same network from the same start, through ``recur.train`` unchanged:

- **node perturbation** (``rules.node_perturbation``; Fiete & Seung 2006): Gaussian white
  current noise on every output unit at every step of K = 16 antithetic pairs of perturbed
  copies; each weight is credited with the noise its postsynaptic unit received times the
  presynaptic synaptic-current trace (``SpikingNet.perturbations``);
- **weight perturbation** (``rules.weight_perturbation``): Gaussian noise on every weight,
  K = 16 antithetic pairs;
- **STDP alone** (``rules.stdp``): no error signal; causal pairs potentiate whatever the
  target.

All perturbed copies of a trial share its background noise (common random numbers), so a
loss difference is due to the perturbation only.

Reported per seed: the evaluated loss before and after training (``eval_trials`` noise
realisations, the same for every rule), the updates until the running training loss
(10-update mean) first reaches half the initial loss, wall time, and the alignment (cosine)
of one update of each rule (at the initial weights, ``n_alignment`` independent draws) with
a reference descent direction: central finite differences of the noise-averaged loss with
common random numbers (``SpikingNet.finite_difference_gradient``, step 2 mV, ``fd_trials``
realisations). The reference is itself noisy, and we measure how noisy: two independent FD
estimates have cosine rho; if their errors are independent and of equal size, each has
cosine about sqrt(rho) to the true gradient and their mean, the reference, about
sqrt(2 rho / (1 + rho)). A rule's cosine to the reference is then an underestimate of its
cosine to the truth by about that factor (the ``corrected`` column divides by it; an
estimate, not a measurement).

Measured (``python examples/spiking_perturbation.py``: seeds 0-2, 40 inputs, 3 outputs, 150
updates of 4 trials, learning rate 200 for both perturbation rules; ~3 min on one busy
core, most of it the finite-difference reference), ranges over seeds:

====================  ===========  ===========  ===========
                      node pert.   weight pert. STDP alone
====================  ===========  ===========  ===========
loss before           0.72-0.83    0.72-0.83    0.72-0.83
loss after            0.086-0.125  0.085-0.121  1.03-1.04
updates to half       17-25        15-19        never
wall time, s          7-10         4-7          0.6-1.1
cosine to FD ref.     0.41-0.51    0.21-0.28    -0.37 - -0.08
|update| / |g_FD|     1.4-2.0      3.4-5.4      17-21
====================  ===========  ===========  ===========

- The reference is good here: two independent FD estimates (256 trials each, 2 mV steps)
  agree to a cosine of 0.89-0.98, so the reference's own cosine to the true gradient is
  about 0.97-0.99 and the cosines above are within a few percent of the cosines to the
  truth. With fewer trials it is not: at 48-64 trials (``--quick``) the two FD estimates
  agree to 0.1-0.9 depending on the seed (the loss of one realisation is piecewise
  constant in the weights, and a moved spike can cascade, so the differences are
  heavy-tailed).
- Node perturbation's single update is better aligned than weight perturbation's (it
  explores the 3 outputs x 600 steps of current noise, weight perturbation 120 weights,
  each with 16 antithetic pairs). Both learn the task to the same floor (the background
  noise keeps the loss above 0). At one shared learning rate weight perturbation's update
  is longer (its noise inflates the norm), and its projection on the gradient (cosine x
  norm ratio, 0.75-1.5 against 0.6-1.0) is too, so it reaches half the loss no later; this
  compares the rules at one step size, not at their best ones (a per-rule learning-rate
  sweep would). Node perturbation costs more per update here (a current per trial and
  step).
- STDP alone has no error signal: it potentiates whichever inputs precede the outputs'
  spikes, adds spikes at the wrong times, and the loss rises on every seed. Its update is
  not aligned with the descent direction (negative cosines on all seeds).

``--quick`` (2 outputs, 40 updates of 2 trials, 8 pairs; seeds 0-5, ~4 s per seed): node
perturbation takes the loss from 0.59-0.80 to 0.09-0.27, weight perturbation to
0.11-0.45, STDP ends at 0.65-0.83 (tests/test_spiking_perturbation.py checks seeds 0-2).

Run::

    python examples/spiking_perturbation.py               # 3 seeds, ~3 min
    python examples/spiking_perturbation.py --quick       # CI size, seconds
    python examples/spiking_perturbation.py --out figs    # also the learning curves

References
----------
I. R. Fiete & H. S. Seung, "Gradient learning in spiking neural networks by dynamic
perturbation of conductances", Phys. Rev. Lett. 97:048104 (2006). J. Werfel, X. Xie &
H. S. Seung, Neural Comput. 17:2699 (2005). P. Zuege, C. Klos & R.-M. Memmesheimer,
"Weight versus node perturbation learning in temporally extended tasks", bioRxiv
2021.10.04.463055 (2021). M. C. W. van Rossum, Neural Comput. 13:751 (2001).
"""

import argparse
import time
from dataclasses import asdict, dataclass

import networkx as nx
import numpy as np

import recur as rc
from recur import plotting, rules
from recur import SpikingNet
from recur.tasks import SpikeDrive, SpikeTarget

RULES = ("node_perturbation", "weight_perturbation", "stdp")


@dataclass(frozen=True)
class Config:
    """Sizes and constants of one run (ms, mV)."""

    n_in: int = 40
    n_out: int = 3
    duration: float = 60.0          # ms per trial
    dt: float = 0.1
    tau_syn: float = 2.0            # ms, exponential synaptic current
    noise_mean: float = 7.0         # mV, mean free membrane above rest (threshold: 15 mV)
    noise_std: float = 2.0          # mV, its fluctuation
    w_init: tuple = (0.0, 8.0)      # mV, uniform initial weights
    w_min: float = -20.0
    w_max: float = 30.0
    first_target: float = 20.0      # ms; output m should fire at first_target + m * spacing
    target_spacing: float = 12.0
    tau_loss: float = 5.0           # ms, van Rossum kernel
    trials: int = 4                 # noise realisations per update
    epochs: int = 150
    n_samples: int = 16             # antithetic pairs per update
    np_sigma: float = 40.0          # mV, current noise per step (membrane ~ sigma * 0.07)
    wp_sigma: float = 1.0           # mV, weight noise
    learning_rate: float = 200.0
    stdp_a: float = 0.02            # mV per pair (a_minus = 1.05 a_plus)
    stdp_tau: float = 20.0          # ms
    eval_trials: int = 128
    fd_trials: int = 256
    fd_step: float = 2.0            # mV
    n_alignment: int = 4            # independent updates per rule for the alignment


QUICK = Config(n_out=2, epochs=40, trials=2, n_samples=8, eval_trials=48, fd_trials=48,
               n_alignment=2)


def build(config, seed):
    """The network, the task's data and the initial weights of one seed."""
    rng = np.random.default_rng(seed)
    g_pattern, g_weights = rng.spawn(2)
    n_in, n_out = config.n_in, config.n_out
    G = nx.DiGraph()
    G.add_nodes_from(range(n_in + n_out))
    G.add_edges_from((i, n_in + m) for i in range(n_in) for m in range(n_out))
    lo, hi = config.w_init
    net = SpikingNet(rc.Topology(G), dt=config.dt, tau_syn=config.tau_syn,
                     noise_mean=config.noise_mean, noise_std=config.noise_std,
                     weight=lambda r, n: r.uniform(lo, hi, n), w_min=config.w_min,
                     w_max=config.w_max)
    last = config.first_target + (n_out - 1) * config.target_spacing
    times = g_pattern.uniform(5.0, last, n_in)
    pattern = SpikeDrive(units=np.arange(n_in), steps=np.rint(times / config.dt).astype(int),
                         n_units=n_in + n_out, dt=config.dt)
    target = SpikeTarget(units=np.arange(n_in, n_in + n_out),
                         times=[[config.first_target + m * config.target_spacing]
                                for m in range(n_out)], tau=config.tau_loss)
    data = {"duration": config.duration, "drive": pattern, "trials": config.trials,
            "loss": target}
    return net, data, net.init(g_weights)


def make_rule(name, config):
    if name == "node_perturbation":
        est = rules.node_perturbation(sigma=config.np_sigma, n_samples=config.n_samples)
    elif name == "weight_perturbation":
        est = rules.weight_perturbation(sigma=config.wp_sigma, n_samples=config.n_samples)
    else:
        # STDP has no learning rate to share: its amplitudes set the step.
        return rules.stdp(a_plus=config.stdp_a, a_minus=1.05 * config.stdp_a,
                          tau_plus=config.stdp_tau, tau_minus=config.stdp_tau,
                          w_max=config.w_max)
    return rules.chain(est, rules.scale(config.learning_rate))


def _cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def alignment(net, params, data, config, seed):
    """Cosine of each rule's update with the finite-difference descent direction."""
    rng = np.random.default_rng([seed, 1])
    g_fd1, g_fd2, g_rules = rng.spawn(3)
    fd_data = dict(data, trials=config.fd_trials)
    started = time.perf_counter()
    fd1 = net.finite_difference_gradient(params, fd_data, step=config.fd_step, rng=g_fd1)
    fd2 = net.finite_difference_gradient(params, fd_data, step=config.fd_step, rng=g_fd2)
    fd_time = time.perf_counter() - started
    rho = _cos(fd1, fd2)
    descent = -(fd1 + fd2) / 2
    # Cosine of the two-estimate mean to the truth, if the estimates' errors are
    # independent and of equal size (rho = c^2 for one estimate).
    ref_quality = float(np.sqrt(max(2 * rho / (1 + rho), 0.0))) if rho > -1 else float("nan")
    out = {"fd_self_cosine": rho, "reference_quality": ref_quality, "fd_time": fd_time,
           "fd_norm": float(np.linalg.norm(descent)), "rules": {}}
    for name in RULES:
        rule = make_rule(name, config)
        cosines, ratios = [], []
        for g in g_rules.spawn(config.n_alignment):
            evidence = net.collect(params, data, rule.requests, rng=g)
            updates, _ = rule.update(evidence, rule.init(params), params, rng=g)
            step = updates["W"].data
            if name != "stdp":
                step = step / config.learning_rate  # the estimator's own direction
            cosines.append(_cos(step, descent))
            ratios.append(float(np.linalg.norm(step) / np.linalg.norm(descent)))
        out["rules"][name] = {"cosine": np.array(cosines), "norm_ratio": np.array(ratios)}
    return out


def _running(x, width=10):
    x = np.asarray(x, float)
    c = np.cumsum(np.insert(x, 0, 0.0))
    n = np.minimum(np.arange(1, x.size + 1), width)
    return (c[1:] - c[np.arange(1, x.size + 1) - n]) / n


def train_all(net, params, data, config, seed):
    """Train with each rule from the same start; evaluate on the same noise."""
    eval_data = dict(data, trials=config.eval_trials)
    def eval_rng():
        # A fresh generator of one seed: every evaluation sees the same noise.
        return np.random.default_rng([seed, 2])

    before = net.loss(params, eval_data, rng=eval_rng())
    out = {"before": before, "rules": {}}
    for name in RULES:
        rule = make_rule(name, config)
        learned, hist = rc.train(net, params, rule, data, epochs=config.epochs,
                                 rng=np.random.default_rng([seed, 3]), progress=False)
        smooth = _running(hist.loss)
        hit = np.flatnonzero(smooth <= before / 2)
        out["rules"][name] = {"after": net.loss(learned, eval_data, rng=eval_rng()),
                              "loss": np.asarray(hist.loss), "smooth": smooth,
                              "updates_to_half": int(hit[0]) + 1 if hit.size else None,
                              "wall_time": hist.wall_time, "params": learned}
    return out


def run(config, seed):
    net, data, params = build(config, seed)
    return {"seed": seed, "params": params, "alignment": alignment(net, params, data, config,
                                                                   seed),
            "training": train_all(net, params, data, config, seed)}


def print_tables(results, config):
    print(f"\nSpike-timing task: {config.n_in} inputs -> {config.n_out} outputs, "
          f"{config.epochs} updates of {config.trials} trials; loss = mean van Rossum "
          f"D^2 (tau {config.tau_loss} ms), evaluated on {config.eval_trials} trials")
    print(f"{'seed':>4} {'rule':<20} {'before':>7} {'after':>7} {'to half':>8} "
          f"{'wall s':>7}")
    for r in results:
        tr = r["training"]
        for name in RULES:
            x = tr["rules"][name]
            hit = "-" if x["updates_to_half"] is None else str(x["updates_to_half"])
            print(f"{r['seed']:>4} {name:<20} {tr['before']:7.3f} {x['after']:7.3f} "
                  f"{hit:>8} {x['wall_time']:7.2f}")
    print(f"\nAlignment of one update with the finite-difference descent direction "
          f"({config.fd_trials} trials, step {config.fd_step} mV), mean +- sd over "
          f"{config.n_alignment} updates")
    print(f"{'seed':>4} {'FD self-cos':>11} {'ref~truth':>9} {'rule':<20} {'cosine':>14} "
          f"{'corrected':>9} {'|update|/|g|':>12}")
    for r in results:
        a = r["alignment"]
        for name in RULES:
            x = a["rules"][name]
            c = x["cosine"]
            corrected = c.mean() / a["reference_quality"] if a["reference_quality"] > 0 \
                else float("nan")
            print(f"{r['seed']:>4} {a['fd_self_cosine']:11.2f} {a['reference_quality']:9.2f} "
                  f"{name:<20} {c.mean():6.2f} +- {c.std():4.2f} {corrected:9.2f} "
                  f"{x['norm_ratio'].mean():12.2f}")


def plot(results, config, out):
    fig = plotting.new_figure(figsize=(6.5, 4))
    if fig is None:
        return []
    ax = fig.add_subplot(1, 1, 1)
    colors = {"node_perturbation": "C0", "weight_perturbation": "C1", "stdp": "C2"}
    for name in RULES:
        curves = np.array([r["training"]["rules"][name]["smooth"] for r in results])
        x = np.arange(1, curves.shape[1] + 1)
        for c in curves:
            ax.plot(x, c, color=colors[name], alpha=0.25, lw=0.8)
        ax.plot(x, curves.mean(axis=0), color=colors[name], lw=2, label=name)
    before = np.mean([r["training"]["before"] for r in results])
    ax.axhline(before / 2, color="k", ls=":", lw=1, label="half the initial loss")
    ax.set_xlabel("update")
    ax.set_ylabel("task loss (10-update running mean)")
    ax.set_title("spike-timing task: learning curves")
    ax.legend(frameon=False)
    return [plotting.save_figure(fig, f"{out}/spiking_perturbation_learning.png")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: seconds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override the number of updates")
    parser.add_argument("--out", help="folder for the figure")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    if args.epochs is not None:
        config = Config(**{**asdict(config), "epochs": args.epochs})
    results = [run(config, seed) for seed in args.seeds]
    print_tables(results, config)
    figures = plot(results, config, args.out) if args.out else []
    return {"config": asdict(config), "results": results, "figures": figures}


if __name__ == "__main__":
    main()
