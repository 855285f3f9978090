"""The credit-assignment spectrum: one network, one self-generated signal, every rule.

A leaky-tanh rate network built from a catalogue topology (small world, 100 units) learns
next-step prediction of a signal it is fed, the series acting as its own teacher. Five ways of
training it carry more and more credit-assignment information (Lillicrap et al. 2020):

- fixed_ridge: an echo-state network, a fixed reservoir and a ridge readout (no credit reaches
  the recurrent weights);
- hebbian_ridge: Oja's rule adapts the recurrent weights from the network's own activity
  (local, no error signal), then a ridge readout;
- weight_perturbation and node_perturbation: one scalar loss change per perturbed trial;
- bptt: backpropagation through time, the exact gradient.

The perturbation rules and BPTT share the optimiser (Adam) so they differ only in the
direction they propose. For each rule the table shows training and held-out NRMSE, the updates
needed to reach NRMSE 0.2, wall time, and the cosine between the rule's first update and the
exact descent direction (how vector-like its credit assignment is). Learning curves go to a
PNG. The same comparison is the ``recur compare`` command.

Run::

    python examples/credit_spectrum.py                         # sine_sum and mackey_glass
    python examples/credit_spectrum.py --task mackey_glass --seeds 0 1 2 3 4
    python examples/credit_spectrum.py --quick                 # CI size, seconds
"""

import argparse
from pathlib import Path

from recur import compare, plotting


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small network, few epochs")
    parser.add_argument("--task", choices=["sine_sum", "mackey_glass", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--topology", default=None, help="catalogue name (default small_world)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figures")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("topology", args.topology),
                                   ("seeds", tuple(args.seeds) if args.seeds else None))
                 if v is not None}
    task_names = ["sine_sum", "mackey_glass"] if args.task == "both" else [args.task]
    results = {}
    for task in task_names:
        cfg = (compare.SpectrumConfig.quick(task=task, **overrides) if args.quick
               else compare.SpectrumConfig(task=task, **overrides))
        rows = compare.credit_spectrum(cfg)
        print(f"\n{task}: {cfg.topology}, {cfg.n_units} units, {cfg.epochs} updates, "
              f"seeds {list(cfg.seeds)} (medians)")
        print(compare.format_table(rows))
        if plotting.have_matplotlib():
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"credit_spectrum_{task}.png"
            compare.plot_curves(rows, path, title=f"credit-assignment spectrum: {task}")
            print(f"figure: {path}")
        results[task] = {"config": cfg, "rows": rows, "summary": compare.summarise(rows)}
    return results


if __name__ == "__main__":
    main()
