"""The ``recur sweep`` and ``recur report`` commands (wired into ``recur.cli`` by
:func:`add_commands`)."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib

__all__ = ["add_commands", "parse_set"]


def parse_set(items) -> dict:
    """``--set KEY=VALUE`` options as a nested dict; KEY and VALUE are TOML
    (``sweep.seeds=2``, ``'grid."topology.n"=[40, 80]'``), so nothing is evaluated."""
    merged: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            parsed = tomllib.loads(f"{key.strip()} = {value.strip()}")
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"--set {item!r} is not a TOML key and value: {exc}") from None
        _merge_into(merged, parsed)
    return merged


def _merge_into(base: dict, extra: dict):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge_into(base[k], v)
        else:
            base[k] = v


def _limits(args):
    from .spec import Limits

    defaults = Limits()
    return Limits(max_units=args.max_units or defaults.max_units,
                  max_steps=args.max_steps or defaults.max_steps,
                  max_cells=args.max_cells or defaults.max_cells)


def _sweep(args) -> int:
    from .runner import run_sweep
    from .spec import SpecError, load_spec
    from .store import ResultStore, StoreError

    try:
        spec = load_spec(args.spec, limits=_limits(args), overrides=parse_set(args.set))
    except (SpecError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    store = args.store or spec.default_store()
    if args.list:
        print(f"{spec.name}: {spec.n_cells} cells, spec {spec.spec_hash[:12]}, store {store}")
        for cell in spec.cells():
            axes = " ".join(f"{k}={v}" for k, v in cell.axes.items())
            print(f"{cell.cell_id}  {cell.topology:<16} {cell.task:<18} {cell.rule:<20} "
                  f"seed {cell.seed_index:<3} {axes}")
        return 0
    if args.only:
        from .cells import execute

        try:
            cell = spec.cell(args.only)
        except KeyError as exc:
            print(exc.args[0], file=sys.stderr)
            return 2
        result = execute(cell.payload)
        print(json.dumps({"cell_id": cell.cell_id, "topology": cell.topology,
                          "task": cell.task, "rule": cell.rule, "axes": cell.axes,
                          "seed_index": cell.seed_index, "entropy": str(cell.entropy),
                          "spawn_key": list(cell.spawn_key), "status": result["status"],
                          "metrics": result["metrics"], "error": result["error"]},
                         indent=1, default=str))
        try:
            with ResultStore(store, readonly=True) as results:
                stored = [r for r in results.records(spec.spec_hash)
                          if r["cell_id"] == cell.cell_id]
        except StoreError:
            stored = []
        if stored:
            same = _same(stored[0]["metrics"], result["metrics"])
            print(f"stored result in {store}: {'identical' if same else 'DIFFERENT'}")
            return 0 if same else 1
        return 0 if result["status"] == "ok" else 1
    try:
        outcome = run_sweep(spec, store=store, workers=args.workers, scheduler=args.scheduler,
                            progress=None if args.progress is None else args.progress,
                            retry_errors=args.retry_errors)
    except StoreError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{spec.name}: {outcome.total} cells ({outcome.skipped} already stored, "
          f"{outcome.ran} run now) in {outcome.seconds:.1f} s; {outcome.ok} ok, "
          f"{outcome.errors} errors; results in {outcome.store}")
    if outcome.errors:
        print("  cells that raised are kept with their error; rerun them with "
              "--retry-errors, or one alone with --only CELL_ID", file=sys.stderr)
    return 0


def _same(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(x == y or (x != x and y != y) for x, y in ((a[k], b[k]) for k in a))


def _report(args) -> int:
    from .report import report
    from .store import StoreError

    try:
        text = report(args.store, by=args.by, fmt=args.format, out=args.out, spec=args.spec,
                      metrics=args.metrics)
    except (StoreError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(text)
    return 0


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_commands(subparsers) -> None:
    """Add ``sweep`` and ``report`` to the ``recur`` command's subparsers."""
    sweep = subparsers.add_parser(
        "sweep", help="run a grid of topologies x tasks x rules x seeds from a TOML spec",
        description="Run every cell of a sweep spec not yet in its results file (SQLite, "
                    "beside the spec by default). A killed sweep resumes where it stopped.")
    sweep.add_argument("spec", help="the TOML spec (see examples/sweeps/)")
    sweep.add_argument("--workers", type=_positive, default=None,
                       help="local worker processes (default: number of CPUs; 1 runs in "
                            "this process)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on a Dask cluster, e.g. tcp://host:8786 (needs "
                            "recur[distributed])")
    sweep.add_argument("--store", default=None, metavar="FILE",
                       help="results file (default: the spec's store, or SPEC.sqlite)")
    sweep.add_argument("--only", default=None, metavar="CELL_ID",
                       help="run one cell alone, print it and compare with the stored result")
    sweep.add_argument("--list", action="store_true", help="list the cells and exit")
    sweep.add_argument("--retry-errors", action="store_true",
                       help="run again the cells that raised")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a spec value (TOML), e.g. sweep.seeds=2; repeatable")
    sweep.add_argument("--max-units", type=_positive, default=None,
                       help="largest network a cell may build (default 10000)")
    sweep.add_argument("--max-steps", type=_positive, default=None,
                       help="most time steps of one cell (default 1000000)")
    sweep.add_argument("--max-cells", type=_positive, default=None,
                       help="most cells in the grid (default 100000)")
    bar = sweep.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="never show it (default: only on a terminal)")
    sweep.set_defaults(func=_sweep)

    rep = subparsers.add_parser(
        "report", help="summarise a sweep's results file: tables, CSV/JSON, PNG plots",
        description="Median and interquartile range over seeds per group of cells.")
    rep.add_argument("store", help="a results file written by recur sweep")
    rep.add_argument("--format", choices=("table", "csv", "json"), default="table")
    rep.add_argument("--by", default=None, metavar="AXES",
                     help="comma-separated factors to group by, e.g. topology,topology.n "
                          "(default: every factor that varies)")
    rep.add_argument("--metrics", nargs="+", default=None, help="metrics to report")
    rep.add_argument("--spec", default=None, metavar="HASH",
                     help="only the spec whose hash starts with HASH")
    rep.add_argument("--out", default=None, metavar="DIR",
                     help="write PNG plots (metric against each numeric axis) and the "
                          "summary here")
    rep.set_defaults(func=_report)
