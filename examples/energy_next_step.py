"""NGRAD rules on an energy network: next-value prediction of a self-generated signal.

An EnergyNet (continuous Hopfield-style units with symmetric couplings that settle to a fixed
point) holds a window of a signal's recent values on its input units; its output unit should
settle to the next value. The hidden units are wired by a catalogue topology (small world by
default) and every hidden unit also meets every input and the output. The signal is its own
teacher: no labels beyond the series itself.

Rules, from the least to the most credit-assignment machinery:

- node_perturbation: noise in every settling unit's drive, one scalar loss change per trial;
- generec: outputs clamped to the target; (post+ - post-) x pre- (O'Reilly 1996);
- contrastive_hebbian: clamped-phase minus free-phase correlations (Movellan 1991);
- equilibrium_propagation: the outputs nudged by beta toward the target; (1/beta) times the
  change in correlations (Scellier & Bengio 2017), and its symmetric +-beta version
  (Laborieux et al. 2021);
- bptt: the exact gradient through the fixed point (recurrent backpropagation).

Each rule runs through Adam so that they differ only in the direction they propose. The table
shows training and held-out NRMSE, the updates needed to reach the target NRMSE, wall time,
and the cosine between the rule's first update and the exact descent direction; learning
curves go to a PNG. The same comparison is ``recur compare --network energy``.

Run::

    python examples/energy_next_step.py                       # sine_sum, 3 seeds
    python examples/energy_next_step.py --task mackey_glass --seeds 0 1 2 3 4
    python examples/energy_next_step.py --quick               # CI size, seconds
"""

import argparse
from pathlib import Path

from recur import compare, plotting


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small network, few epochs")
    parser.add_argument("--task", choices=["sine_sum", "mackey_glass"], default="sine_sum")
    parser.add_argument("--rules", nargs="+", choices=compare.ENERGY_RULES,
                        default=list(compare.ENERGY_RULES))
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--topology", default=None, help="catalogue name (default small_world)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figure")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("topology", args.topology),
                                   ("seeds", tuple(args.seeds) if args.seeds else None))
                 if v is not None}
    make = compare.EnergySpectrumConfig.quick if args.quick else compare.EnergySpectrumConfig
    cfg = make(task=args.task, **overrides)
    rows = compare.energy_spectrum(cfg, rules=tuple(args.rules))
    print(f"{cfg.task}: EnergyNet, {cfg.window} inputs, {cfg.n_hidden} hidden units "
          f"({cfg.topology}), 1 output, {cfg.activation}; {cfg.epochs} updates, beta "
          f"{cfg.beta:g}, seeds {list(cfg.seeds)}; medians, target NRMSE {cfg.target_nrmse:g}")
    print(compare.format_table(rows))
    if plotting.have_matplotlib():
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"energy_next_step_{cfg.task}.png"
        compare.plot_curves(rows, path, title=f"NGRAD rules on an EnergyNet: {cfg.task}")
        print(f"figure: {path}")
    return {"config": cfg, "rows": rows, "summary": compare.summarise(rows)}


if __name__ == "__main__":
    main()
