"""The ``recur`` command."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ._version import __version__

__all__ = ["main"]


def _demo(args) -> int:
    from . import ESN, Ridge, Topology, generate, metrics, plotting, tasks

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    topo = Topology.load("small_world", rng=rng, n=args.units, k=10, p=0.1)
    esn = ESN(topo, leak=0.3, spectral_radius=1.25, input_scaling=0.5, bias_scaling=0.5,
              n_in=1, weight_distribution="uniform")
    params = esn.init(rng)
    train, washout = 3000, 100
    # tanh(x - 1) puts Mackey-Glass inside the units' working range (Jaeger & Haas 2004).
    series = tasks.squash(tasks.mackey_glass(train + args.steps + 1, rng=rng))
    u, y = tasks.next_step(series)
    states, last = esn.run(params, u[:train])
    readout = Ridge(alpha=1e-8).fit(states[washout:], y[washout:train])
    fit_error = metrics.nrmse(y[washout:train], readout.predict(states[washout:]))
    generated = generate(esn, params, readout, last, args.steps)
    truth = u[train:train + args.steps]
    elapsed = time.perf_counter() - started

    print(f"recur {__version__} demo: echo-state network on Mackey-Glass (tau = 17)")
    print(f"  topology        small_world: {topo.n_units} units, {topo.n_edges} connections")
    print("  network         leak 0.3, spectral radius 1.25, ridge alpha 1e-8")
    print(f"  teacher forced  {train} steps, NRMSE {fit_error:.2e} (one step ahead)")
    print(f"  closed loop     {args.steps} steps, NRMSE {metrics.nrmse(truth, generated):.2e}, "
          f"valid time {metrics.valid_time(truth, generated):.0f} steps")
    print(f"  wall time       {elapsed:.1f} s")
    if args.out and plotting.have_matplotlib():
        plotting.plot_generation(truth, generated, args.out,
                                 title=f"ESN on a {topo.n_units}-unit small world, closed loop")
        print(f"  figure          {args.out}")
    elif args.out:
        print("  figure          skipped (pip install 'recur[plot]' for matplotlib)")
    return 0


def _compare(args) -> int:
    from . import compare, plotting

    energy = args.network == "energy"
    if energy:
        make = compare.EnergySpectrumConfig.quick if args.quick else \
            compare.EnergySpectrumConfig
    else:
        make = compare.SpectrumConfig.quick if args.quick else compare.SpectrumConfig
    overrides = {"task": args.task}
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.topology:
        overrides["topology"] = args.topology
    cfg = make(**overrides)
    if energy:
        rows = compare.energy_spectrum(cfg, rules=tuple(args.rules))
        print(f"credit-assignment spectrum on an EnergyNet: {cfg.task}, {cfg.window} inputs, "
              f"{cfg.n_hidden} hidden units ({cfg.topology}), {cfg.epochs} updates, seeds "
              f"{list(cfg.seeds)}; medians over seeds")
    else:
        rows = compare.credit_spectrum(cfg, rules=tuple(args.rules))
        print(f"credit-assignment spectrum: {cfg.task} on {cfg.topology} ({cfg.n_units} "
              f"units), {cfg.epochs} updates, seeds {list(cfg.seeds)}; medians over seeds")
    print(compare.format_table(rows))
    if args.out and plotting.have_matplotlib():
        compare.plot_curves(rows, args.out, title=f"credit-assignment spectrum: {cfg.task}")
        print(f"figure: {args.out}")
    return 0


def _topologies(args) -> int:
    from . import catalogue

    rows = catalogue.describe()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['n_units']:>5} units  {r['generator']}")
        if args.verbose:
            print(f"{'':<{width}}  {r['description']}")
            print(f"{'':<{width}}  {r['reference']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recur",
        description="Reservoir and recurrent networks that learn from signals they generate "
                    "themselves.")
    parser.add_argument("--version", action="version", version=f"recur {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train an ESN on Mackey-Glass and generate it in "
                                       "closed loop")
    demo.add_argument("--units", type=int, default=500, help="reservoir size (default 500)")
    demo.add_argument("--steps", type=int, default=500,
                      help="closed-loop steps to generate (default 500)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--out", default="recur-demo.png",
                      help="PNG of truth vs generation ('' for none; default recur-demo.png)")
    demo.set_defaults(func=_demo)

    comp = sub.add_parser("compare", help="train one network with every learning rule and "
                                          "compare them with the exact gradient")
    comp.add_argument("--network", choices=["esn", "energy"], default="esn",
                      help="a leaky-tanh rate network (esn, default) or an EnergyNet (energy)")
    comp.add_argument("--task", choices=["sine_sum", "mackey_glass"], default="sine_sum")
    comp.add_argument("--rules", nargs="+", default=None,
                      help="rules to run (default, esn: all of fixed_ridge hebbian_ridge "
                           "weight_perturbation node_perturbation bptt; energy: all of "
                           "equilibrium_propagation symmetric_ep contrastive_hebbian generec "
                           "node_perturbation bptt)")
    comp.add_argument("--seeds", type=int, nargs="+", default=None)
    comp.add_argument("--epochs", type=int, default=None)
    comp.add_argument("--topology", default=None, help="catalogue name (default small_world)")
    comp.add_argument("--quick", action="store_true", help="small network, few epochs")
    comp.add_argument("--out", default="recur-compare.png",
                      help="PNG of the learning curves ('' for none)")
    comp.set_defaults(func=_compare)

    topo = sub.add_parser("topologies", help="list the topology catalogue")
    topo.add_argument("-v", "--verbose", action="store_true",
                      help="also print descriptions and references")
    topo.set_defaults(func=_topologies)
    from .sweep.cli import add_commands

    add_commands(sub)
    return parser


def main(argv=None) -> int:
    """Run the ``recur`` command with ``argv`` (default: the process arguments); returns the
    exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo" and (args.units < 20 or args.steps < 1):
        parser.error("demo needs --units >= 20 and --steps >= 1")
    if args.command == "compare":
        from .compare import ENERGY_RULES
        from .compare import RULES as ESN_RULES

        RULES = ENERGY_RULES if args.network == "energy" else ESN_RULES
        args.rules = args.rules or list(RULES)
        unknown = sorted(set(args.rules) - set(RULES))
        if unknown:
            parser.error(f"unknown rules {unknown}; choose from {list(RULES)}")
        if args.epochs is not None and args.epochs < 1:
            parser.error("--epochs must be at least 1")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
