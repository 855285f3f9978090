"""Sweep results in SQLite: one row per finished cell, committed as it arrives.

The file is recur's own: it carries SQLite's ``application_id`` :data:`APPLICATION_ID` and a
``meta`` table naming the format and schema version. Opening a file checks both (and runs
``PRAGMA quick_check``) *before* anything is written, so a foreign SQLite database, a
corrupted store or a file that is not SQLite at all raises :class:`StoreError` and is left
byte-for-byte as it was.

Only one process writes: the sweep's main process (worker processes and Dask workers return
their results to it). The journal is in WAL mode, so readers (``recur report`` while a sweep
runs) never block the writer, and every cell is its own transaction: a sweep killed at any
moment leaves every committed cell intact and no partial row. ``UNIQUE(spec_hash, cell_id)``
makes a cell's row unique, so a restarted sweep cannot duplicate one.

Schema of ``results`` (one row per cell):

=============== ======= ===============================================================
column          type    meaning
=============== ======= ===============================================================
spec_hash       TEXT    SHA-256 of the resolved spec (``Spec.spec_hash``)
cell_id         TEXT    the cell's id within the spec
topology        TEXT    topology label
task, rule      TEXT    task name; rule name or ``-``
axes            TEXT    JSON object: the grid point
seed_index      INTEGER seed number within the cell
entropy         TEXT    decimal root entropy of the cell's SeedSequence
spawn_key       TEXT    JSON list: the SeedSequence's spawn key
params          TEXT    JSON: the cell's full payload (recipe, network, task, rule)
recur_version   TEXT    version of recur in the process that ran the cell
host            TEXT    ``hostname:pid`` of that process
started         REAL    Unix time the cell started, s
wall_time       REAL    s
status          TEXT    ``ok`` or ``error``
metrics         TEXT    JSON object of floats (NaN stored as null)
error           TEXT    traceback of a failed cell, else NULL
=============== ======= ===============================================================
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

__all__ = ["ResultStore", "StoreError", "APPLICATION_ID", "SCHEMA_VERSION"]

#: SQLite application_id of a recur results file: the bytes "RCUR".
APPLICATION_ID = int.from_bytes(b"RCUR", "big")
SCHEMA_VERSION = 1
FORMAT = "recur.sweep results"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE specs (
    spec_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    spec_hash TEXT NOT NULL REFERENCES specs(spec_hash),
    cell_id TEXT NOT NULL,
    topology TEXT NOT NULL,
    task TEXT NOT NULL,
    rule TEXT NOT NULL,
    axes TEXT NOT NULL,
    seed_index INTEGER NOT NULL,
    entropy TEXT NOT NULL,
    spawn_key TEXT NOT NULL,
    params TEXT NOT NULL,
    recur_version TEXT NOT NULL,
    host TEXT,
    started REAL,
    wall_time REAL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    metrics TEXT NOT NULL,
    error TEXT,
    UNIQUE (spec_hash, cell_id)
);
"""
_TABLES = {"meta", "specs", "results"}
_COLUMNS = ("spec_hash", "cell_id", "topology", "task", "rule", "axes", "seed_index",
            "entropy", "spawn_key", "params", "recur_version", "host", "started",
            "wall_time", "status", "metrics", "error")


class StoreError(RuntimeError):
    """A file that is not a usable recur results store (it is left untouched)."""


def _json_metrics(metrics: dict) -> str:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in metrics.items()}
    return json.dumps(clean, sort_keys=True, allow_nan=False)


class ResultStore:
    """A recur results file.

    Parameters
    ----------
    path : str or Path
        The SQLite file. A missing or empty file is created as a new store (unless
        ``readonly``); an existing one must be a recur store.
    readonly : bool
        Open for reading only (reports, monitoring a running sweep).
    synchronous : {"FULL", "NORMAL"}
        SQLite's sync level. ``FULL`` (default) syncs every commit to disk, so a result
        survives even a power cut; ``NORMAL`` survives a killed process but not an OS crash.

    Raises
    ------
    StoreError
        For a file that is not SQLite, a foreign SQLite database (another application id,
        or tables without recur's metadata), a store of another schema version, or a
        corrupted store. The file is not modified.
    """

    def __init__(self, path, *, readonly: bool = False, synchronous: str = "FULL"):
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = Path(path)
        self.readonly = readonly
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and readonly:
            raise StoreError(f"{self.path}: no such results file")
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a regular file")
        if exists:
            self._conn = self._open_existing()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            if not exists:
                self._create()
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={synchronous}")
        except BaseException:
            # Never leave a half-opened connection behind (a locked or full disk).
            self._conn.close()
            raise

    # -- opening -------------------------------------------------------------------------
    def _open_existing(self):
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if self.readonly else 'rw'}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            self._check(conn)
        except StoreError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a readable SQLite database ({exc}); "
                             "refusing to touch it") from None
        return conn

    def _check(self, conn):
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id != APPLICATION_ID:
            what = "an SQLite database of another application" if (app_id or tables) else \
                "an SQLite database without recur's application id"
            raise StoreError(f"{self.path}: {what} (application_id {app_id}, tables "
                             f"{sorted(tables) or 'none'}); refusing to touch it")
        if not _TABLES <= tables:
            raise StoreError(f"{self.path}: recur's application id but tables "
                             f"{sorted(tables)}: a damaged store; refusing to touch it")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise StoreError(f"{self.path}: meta.format is {meta.get('format')!r}, not "
                             f"{FORMAT!r}; refusing to touch it")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreError(f"{self.path}: schema version {meta.get('schema_version')}, this "
                             f"recur reads version {SCHEMA_VERSION}")
        columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(results)"))
        missing = [c for c in _COLUMNS if c not in columns]
        if missing:
            raise StoreError(f"{self.path}: results table lacks {missing}; a damaged store")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise StoreError(f"{self.path}: corrupted ({'; '.join(r[0] for r in check[:5])})")

    def _create(self):
        with self._conn:
            self._conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self._conn.executescript(_SCHEMA)
            from .._version import __version__

            self._conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("format", FORMAT), ("schema_version", str(SCHEMA_VERSION)),
                ("created_by", f"recur {__version__}"), ("created", repr(time.time()))])

    # -- writing -------------------------------------------------------------------------
    def add_spec(self, spec) -> None:
        """Record a spec (once per spec hash)."""
        self._writable()
        from .spec import canonical_json

        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO specs VALUES (?, ?, ?, ?, ?, ?)",
                (spec.spec_hash, spec.name, spec.source, canonical_json(spec.canonical()),
                 spec.text, time.time()))

    def add(self, cell, result: dict) -> bool:
        """Commit one cell's result; returns False if the cell already had a row.

        Parameters
        ----------
        cell : recur.sweep.spec.Cell
        result : dict
            As returned by :func:`recur.sweep.cells.execute`.
        """
        self._writable()
        from .spec import canonical_json

        payload = cell.payload
        row = (payload_spec_hash(cell), cell.cell_id, cell.topology, cell.task, cell.rule,
               canonical_json(cell.axes), cell.seed_index, str(cell.entropy),
               json.dumps(list(cell.spawn_key)), canonical_json(payload),
               result["recur_version"], result.get("host"), result.get("started"),
               result.get("wall_time"), result["status"], _json_metrics(result["metrics"]),
               result.get("error"))
        with self._conn:
            cur = self._conn.execute(
                f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES "
                f"({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (spec_hash, cell_id) "
                "DO NOTHING", row)
        return cur.rowcount == 1

    def delete_errors(self, spec_hash: str) -> int:
        """Remove the error rows of a spec (so that a rerun retries them); returns how many."""
        self._writable()
        with self._conn:
            cur = self._conn.execute("DELETE FROM results WHERE spec_hash = ? AND "
                                     "status = 'error'", (spec_hash,))
        return cur.rowcount

    def _writable(self):
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")

    # -- reading -------------------------------------------------------------------------
    def done(self, spec_hash: str) -> set:
        """Ids of the cells of a spec that have a row (ok or error)."""
        return {r[0] for r in self._conn.execute(
            "SELECT cell_id FROM results WHERE spec_hash = ?", (spec_hash,))}

    def count(self, spec_hash: str | None = None, status: str | None = None) -> int:
        """Rows in the store, optionally of one spec and of one status."""
        sql, args = "SELECT COUNT(*) FROM results WHERE 1=1", []
        if spec_hash is not None:
            sql, args = sql + " AND spec_hash = ?", args + [spec_hash]
        if status is not None:
            sql, args = sql + " AND status = ?", args + [status]
        return self._conn.execute(sql, args).fetchone()[0]

    def specs(self) -> list[dict]:
        """Specs in the store, oldest first: ``spec_hash``, ``name``, ``source``, ``spec``
        (the resolved spec as data), ``created``."""
        rows = self._conn.execute("SELECT spec_hash, name, source, spec, created FROM specs "
                                  "ORDER BY created, spec_hash").fetchall()
        return [{"spec_hash": h, "name": n, "source": s, "spec": json.loads(j), "created": c}
                for h, n, s, j, c in rows]

    def records(self, spec_hash: str | None = None) -> list[dict]:
        """Rows as dicts (JSON columns decoded; null metrics become NaN), in insertion
        order."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM results"
        args = ()
        if spec_hash is not None:
            sql, args = sql + " WHERE spec_hash = ?", (spec_hash,)
        out = []
        for row in self._conn.execute(sql + " ORDER BY id", args):
            r = dict(zip(_COLUMNS, row))
            for key in ("axes", "spawn_key", "params"):
                r[key] = json.loads(r[key])
            r["metrics"] = {k: float("nan") if v is None else v
                            for k, v in json.loads(r["metrics"]).items()}
            r["entropy"] = int(r["entropy"])
            out.append(r)
        return out

    def close(self):
        """Close the connection (a context manager does it on exit)."""
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def payload_spec_hash(cell) -> str:
    """The spec hash a cell belongs to (set by the runner on its payload)."""
    try:
        return cell.payload["spec_hash"]
    except KeyError:
        raise ValueError("cell payload lacks 'spec_hash'; make cells with Spec.cells()") \
            from None
