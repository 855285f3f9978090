"""Overhead and scaling of the sweep runner (recur.sweep).

Rows:

- per-cell overhead of the runner: a grid of ``empty`` cells (one random draw each) run in
  this process, each committed to SQLite as it finishes; wall time per cell. Goal: < 20 ms.
- parallel speed-up: a grid of CPU-bound ``spin`` cells (a plain-Python loop, so no BLAS
  threads) on 1 and on 2 local worker processes, both including the start of the pool.
  Goal: 2 workers at least 1.7x faster than 1 (on a machine whose 2 cores are free).
- scale: a grid of 10,000 ``empty`` cells on 2 workers: every cell stored exactly once (no
  duplicate, no missing row), and the resident memory of this process before and after
  (goal: flat).

Unlike the other benchmarks these are wall times of whole runs, not alternating best-of
ratios: a sweep is a long run and what it costs is what a user waits for. A loaded machine
makes the speed-up row pessimistic; the machine line records the load.

    python benchmarks/bench_sweep.py            # full sizes, writes benchmarks/results/bench_sweep.md
    python benchmarks/bench_sweep.py --quick    # small sizes, seconds; prints only
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (first: it pins BLAS to one thread before numpy loads)

import argparse  # noqa: E402
import resource  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from recur import sweep  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_sweep.md"

FULL = {"empty_cells": 500, "spin_cells": 40, "spin_iterations": 4_000_000,
        "scale_cells": 10_000}
QUICK = {"empty_cells": 40, "spin_cells": 4, "spin_iterations": 200_000, "scale_cells": 200}


def _spec(folder: Path, name: str, task: str, cells: int, **params) -> Path:
    """A spec of ``cells`` cells of one diagnostic task (cells = seeds on one topology)."""
    lines = ["[sweep]", f'name = "{name}"', 'network = "none"', f"seeds = {cells}",
             "entropy = 7", "[topologies]", 't = { catalogue = "ring", params = { n = 4 } }',
             f"[tasks.{task}]"]
    lines += [f"{k} = {v}" for k, v in params.items()]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rss_mb() -> float:
    """Current resident memory of this process, in MB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rows(store: Path) -> tuple[int, int]:
    """(rows, distinct cell ids) in a results file, read directly with sqlite3."""
    db = sqlite3.connect(store)
    try:
        return db.execute("SELECT COUNT(*), COUNT(DISTINCT cell_id) FROM results").fetchone()
    finally:
        db.close()


def bench_overhead(cfg, folder, table, checks):
    n = cfg["empty_cells"]
    spec = _spec(folder, "empty", "empty", n)
    started = time.perf_counter()
    result = sweep.run_sweep(spec, workers=1, progress=False)
    per_cell = (time.perf_counter() - started) / n
    table.add(f"runner overhead, {n} empty cells in-process, one SQLite commit each",
              f"{per_cell * 1e3:.1f} ms/cell", "20 ms/cell (goal)", per_cell * 1e3, goal=20,
              op="<=")
    checks.append(f"overhead run stored {result.ok} ok rows of {n}")


def bench_speedup(cfg, folder, table, checks):
    n, iters = cfg["spin_cells"], cfg["spin_iterations"]
    times = {}
    for workers in (1, 2):
        spec = _spec(folder, f"spin{workers}", "spin", n, iterations=iters)
        started = time.perf_counter()
        sweep.run_sweep(spec, workers=workers, progress=False)
        times[workers] = time.perf_counter() - started
    table.add(f"{n} CPU-bound cells ({iters:,} loop iterations each), 2 workers vs 1",
              f"{times[2]:.1f} s", f"{times[1]:.1f} s (1 worker)", times[1] / times[2],
              goal=1.7)


def bench_scale(cfg, folder, table, checks):
    n = cfg["scale_cells"]
    spec = _spec(folder, "scale", "empty", n)
    before = _rss_mb()
    started = time.perf_counter()
    result = sweep.run_sweep(spec, workers=2, progress=False)
    elapsed = time.perf_counter() - started
    after = _rss_mb()
    rows, distinct = _rows(result.store)
    table.add(f"{n:,} empty cells on 2 workers: memory of the sweep process",
              f"{after:.0f} MB after", f"{before:.0f} MB before", after / before)
    checks.append(f"scale run: {rows} rows, {distinct} distinct cells of {n} "
                  f"({'consistent' if rows == distinct == n else 'INCONSISTENT'}); "
                  f"{elapsed:.1f} s, {elapsed / n * 1e3:.2f} ms per cell")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grids (seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bench_sweep.md "
                             "in full mode, nowhere with --quick)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    t0 = time.perf_counter()
    lines = ["# Sweep runner: overhead and scaling", "", harness.machine_line(), "",
             f"Mode: {'quick' if args.quick else 'full'}; wall times of whole runs.", ""]
    print("\n".join(lines), flush=True)
    table, checks = harness.Table(reference="reference"), []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_overhead(cfg, folder, table, checks)
        bench_speedup(cfg, folder, table, checks)
        bench_scale(cfg, folder, table, checks)
    elapsed = time.perf_counter() - t0
    command = "python benchmarks/bench_sweep.py" + (" --quick" if args.quick else "")
    return harness.finish(lines, table, checks, elapsed, command, out)


if __name__ == "__main__":
    sys.exit(main())
