"""Running a sweep: in this process, on local worker processes, or on a Dask cluster.

Whatever runs the cells, this process is the only one that writes the results file: every
cell's result comes back here and is committed on arrival (:class:`~recur.sweep.store.ResultStore`).
Cells already in the store for the same spec hash are skipped, so a sweep that was killed
resumes where it stopped. At most a few cells per worker are in flight at a time, so a grid of
any size keeps the memory of this process flat.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .cells import execute
from .spec import Cell, Spec, load_spec
from .store import ResultStore

__all__ = ["SweepResult", "run_sweep", "run_cell", "Progress"]


@dataclass(frozen=True)
class SweepResult:
    """What a call to :func:`run_sweep` did.

    Attributes
    ----------
    store : Path
    spec_hash : str
    total : int
        Cells in the spec.
    skipped : int
        Cells already in the store when the sweep started.
    ran : int
        Cells run and committed by this call.
    ok, errors : int
        Rows of the spec in the store at the end, by status.
    seconds : float
        Wall time of this call.
    """

    store: Path
    spec_hash: str
    total: int
    skipped: int
    ran: int
    ok: int
    errors: int
    seconds: float


class Progress:
    """A progress bar over cells with the time left: tqdm when installed, else one line
    rewritten at most once a second on ``stream``; silent when ``enabled`` is False."""

    def __init__(self, total: int, *, initial: int = 0, enabled: bool | None = None,
                 stream=None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.total, self.done, self.initial = total, initial, initial
        self.errors = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, initial=initial, unit="cell", desc="sweep",
                                 file=self.stream, dynamic_ncols=True)

    def update(self, status: str):
        """Count one finished cell (``status`` "ok" or "error") and redraw the bar."""
        self.done += 1
        self.errors += status == "error"
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
            if self.errors:
                self._bar.set_postfix(errors=self.errors, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last >= 1.0 or self.done == self.total:
            self._last = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        """The progress line: cells done, errors, elapsed and estimated time left."""
        elapsed = time.perf_counter() - self.start
        ran = self.done - self.initial
        left = self.total - self.done
        eta = f"{elapsed / ran * left:.0f} s left" if ran else "time left unknown"
        errors = f", {self.errors} errors" if self.errors else ""
        return (f"sweep: {self.done}/{self.total} cells ({100 * self.done / max(self.total, 1):.0f}"
                f"%), {elapsed:.0f} s, {eta}{errors}   ")

    def close(self):
        """End the progress display."""
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# -- worker processes ----------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (killed but not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: existence is all we can tell


def _watch_sweep(sweep_pid: int):
    """Exit this worker once the sweep process is gone (killed, even with SIGKILL).

    The sweep process is watched by pid rather than through the worker's parent: forkserver
    workers are children of the fork server, which outlives a killed sweep for as long as
    its workers do.
    """
    def watch():
        while _alive(sweep_pid):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="recur-sweep-watchdog").start()


def _worker_init(sweep_pid: int):
    _watch_sweep(sweep_pid)
    try:  # one BLAS thread per worker: the workers are the parallelism
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _context():
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # Workers fork from a server that has imported recur once, instead of each importing it
    # (numpy, scipy, networkx) again. The list replaces the default (which preloads only
    # __main__; workers still set up __main__ themselves) and takes effect when this
    # process first starts its fork server.
    ctx.set_forkserver_preload(["recur.sweep.cells", "recur.networks", "recur.readouts"])
    return ctx


# -- running ------------------------------------------------------------------------------------
def run_cell(spec: Spec | str | Path, cell_id: str) -> dict:
    """Run one cell of a spec alone, in this process, and return its result.

    The cell draws from its own ``SeedSequence`` (recorded in the store), so the metrics equal
    those of the same cell in any sweep of the spec.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    return execute(spec.cell(cell_id).payload)


def run_sweep(spec: Spec | str | Path, *, store=None, workers: int | None = None,
              scheduler: str | None = None, progress: bool | None = None,
              retry_errors: bool = False, in_flight: int | None = None) -> SweepResult:
    """Run every cell of a spec that the store does not hold yet.

    Parameters
    ----------
    spec : Spec or path
    store : path, optional
        The SQLite results file (default :meth:`Spec.default_store`: beside the spec).
    workers : int, optional
        Local worker processes (default: the number of CPUs); 1 runs the cells in this
        process. Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``): the cells run on that
        cluster (``pip install "recur[distributed]"``). Its workers need recur installed.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    retry_errors : bool
        Delete the spec's error rows first, so those cells run again.
    in_flight : int, optional
        Cells submitted ahead of the results (default 4 per worker).

    Returns
    -------
    SweepResult
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if in_flight is not None and (isinstance(in_flight, bool) or not isinstance(in_flight, int)
                                  or in_flight < 1):
        raise ValueError(f"in_flight must be a positive integer, got {in_flight!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be an address string, got {type(scheduler).__name__}")
    workers = workers or os.cpu_count() or 1
    path = Path(store) if store is not None else spec.default_store()
    started = time.perf_counter()
    with ResultStore(path) as results:
        results.add_spec(spec)
        if retry_errors:
            results.delete_errors(spec.spec_hash)
        done = results.done(spec.spec_hash)
        todo = (c for c in spec.cells() if c.cell_id not in done)
        bar = Progress(spec.n_cells, initial=len(done), enabled=progress)
        ran = 0

        def commit(cell, result):
            nonlocal ran
            ran += results.add(cell, result)
            bar.update(result["status"])

        try:
            if scheduler is not None:
                _run_dask(todo, commit, scheduler, in_flight)
            elif workers == 1:
                for cell in todo:
                    commit(cell, execute(cell.payload))
            else:
                _run_local(todo, commit, workers, in_flight or 4 * workers)
        finally:
            bar.close()
        ok = results.count(spec.spec_hash, "ok")
        errors = results.count(spec.spec_hash, "error")
    return SweepResult(path, spec.spec_hash, spec.n_cells, len(done), ran, ok, errors,
                       time.perf_counter() - started)


def _crash_result(cell: Cell, message: str) -> dict:
    from .._version import __version__

    return {"cell_id": cell.cell_id, "status": "error", "metrics": {}, "error": message,
            "started": time.time(), "wall_time": 0.0, "recur_version": __version__,
            "host": None}


def _run_local(todo, commit, workers: int, in_flight: int):
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_worker_init,
                               initargs=(os.getpid(),))
    pending: dict = {}
    healthy = True  # a result came back since the pool was (re)started
    try:
        while True:
            broken = False
            lost = []
            for cell in todo:
                try:
                    pending[pool.submit(execute, cell.payload)] = cell
                except BrokenProcessPool:
                    # The cell was taken from todo but never ran: it is recorded with the
                    # others that were in flight when the pool broke.
                    broken = True
                    lost.append(cell)
                    break
                if len(pending) >= in_flight:
                    break
            if not pending and not broken:
                return
            finished = wait(pending, return_when=FIRST_COMPLETED)[0] if pending else set()
            for future in finished:
                cell = pending.pop(future)
                try:
                    result = future.result()
                    healthy = True
                except BrokenProcessPool:
                    broken = True
                    lost.append(cell)
                    continue
                commit(cell, result)
            if broken:
                if not healthy:
                    raise RuntimeError("the worker processes die before returning any result "
                                       "(cannot start them?); try --workers 1")
                # A worker died (out of memory, a signal): which cell killed it cannot be
                # told, so every cell in flight is recorded as failed and the pool replaced.
                for cell in lost + list(pending.values()):
                    commit(cell, _crash_result(cell, "a worker process died while this cell "
                                                     "was in flight (out of memory or "
                                                     "killed?)"))
                pending.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(workers, mp_context=_context(),
                                           initializer=_worker_init, initargs=(os.getpid(),))
                healthy = False
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(todo, commit, address: str, in_flight: int | None):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError("a --scheduler address needs Dask distributed: "
                          "pip install 'recur[distributed]'") from None
    with Client(address, set_as_default=False) as client:
        if in_flight is None:
            in_flight = 4 * max(1, sum(client.nthreads().values()))
        pending = {}

        def submit(cell):
            future = client.submit(execute, cell.payload, pure=False,
                                   key=f"recur-cell-{cell.cell_id}-{time.time_ns()}")
            pending[future.key] = cell
            return future

        first = []
        for cell in todo:
            first.append(submit(cell))
            if len(first) >= in_flight:
                break
        queue = as_completed(first, loop=client.loop)
        for future in queue:
            cell = pending.pop(future.key)
            try:
                result = future.result()
            except Exception as exc:  # the worker was lost: record it, go on
                result = _crash_result(cell, f"the Dask task failed: {exc!r}")
            commit(cell, result)
            future.release()
            nxt = next(todo, None)
            if nxt is not None:
                queue.add(submit(nxt))
