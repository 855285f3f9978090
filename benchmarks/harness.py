"""What every benchmark script shares: one BLAS thread, alternating best-of timings, the
machine description, and the results table.

Import this module before numpy: it pins BLAS to one thread through environment variables,
which only take effect if they are set before numpy loads its BLAS (two-thread OpenBLAS on a
busy 2-core machine runs many times slower and makes ratios meaningless).
"""

from __future__ import annotations

import os

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _name in BLAS_ENV:
    os.environ[_name] = "1"

import datetime  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402

BLAS_NOTE = ("BLAS pinned to one thread: " + ", ".join(f"{v}=1" for v in BLAS_ENV[:3])
             + " set before numpy is imported; every workload here is single-threaded.")


def timed(fn):
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternating(fns, repeats, *, warmup=True, between=None):
    """Best-of-``repeats`` time of each function, called in turn so that load on a shared
    machine hits all of them alike. ``between`` (optional) runs untimed before each call of
    every function after the first (e.g. to reset a stateful reference)."""
    if warmup:
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            if between is not None and i > 0:
                between()
            times[i].append(timed(fn))
    return [min(t) for t in times]


def load_average():
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def machine_line(*extra_versions):
    """Date, CPU, cores, load and library versions, for a results file's header."""
    import recur

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    versions = [f"Python {platform.python_version()}", f"numpy {np.__version__}",
                f"scipy {scipy.__version__}", *extra_versions, f"recur {recur.__version__}"]
    try:
        import numba

        versions.insert(3, f"numba {numba.__version__}")
    except ImportError:
        pass
    return (f"{datetime.datetime.now().isoformat(timespec='seconds')}, {cpu}, "
            f"{os.cpu_count()} cores, load average {load_average()}; " + ", ".join(versions))


class Table:
    """Rows of ``workload | recur | reference | ratio | goal | met?``, echoed as they come."""

    def __init__(self, reference="reference"):
        self.reference = reference
        self.rows = []
        self.notes = []

    def add(self, workload, ours, reference, ratio, goal=None, op=">="):
        if goal is None:
            goal_s, met = "report", ""
        else:
            goal_s = f"{op} {goal:g}x" if op == ">=" else f"{op} {goal:g}"
            met = "yes" if (ratio >= goal if op == ">=" else ratio <= goal) else "**no**"
        row = (workload, ours, reference, f"{ratio:.2f}", goal_s, met)
        self.rows.append(row)
        print("  " + " | ".join(row), flush=True)

    def markdown(self):
        head = ("workload", "recur", self.reference, "ratio", "goal", "met?")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def finish(header, table, checks, elapsed, command, out, *, checks_title="Checks:"):
    """Print the table, notes and checks under ``header`` (lines already printed), and write
    the whole to ``out`` (a path, or None for nowhere); returns the exit status 0."""
    body = [table.markdown(), ""]
    body += [f"- {note}" for note in table.notes]
    body += ["", checks_title, ""]
    body += [f"- {c}" for c in checks]
    body += ["", f"Total time {elapsed:.0f} s, load average at the end {load_average()}. "
             f"Reproduce: `{command}`", ""]
    print("\n" + "\n".join(body))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(list(header) + body))
        print(f"wrote {out}")
    return 0
