"""The SQLite results store: rows round-trip, a cell is stored once, and files that are not
recur stores are detected and left exactly as they were."""

import hashlib
import math
import sqlite3

import pytest

from recur.sweep import ResultStore, StoreError, parse_spec
from recur.sweep.cells import execute
from recur.sweep.store import APPLICATION_ID

SPEC = """
[sweep]
name = "store test"
network = "none"
seeds = 3
entropy = 11
[topologies]
t = { catalogue = "ring", params = { n = 4 } }
[tasks.empty]
[tasks.fail]
"""


@pytest.fixture
def spec(tmp_path):
    return parse_spec(SPEC, folder=tmp_path)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_round_trip_with_their_provenance(tmp_path, spec):
    cells = list(spec.cells())
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_spec(spec)
        for cell in cells:
            assert store.add(cell, execute(cell.payload))
        rows = store.records(spec.spec_hash)
        assert store.count(spec.spec_hash, "ok") == 3
        assert store.count(spec.spec_hash, "error") == 3
        assert store.done(spec.spec_hash) == {c.cell_id for c in cells}
        (s,) = store.specs()
    assert s["spec_hash"] == spec.spec_hash and s["spec"]["entropy"] == 11
    by_id = {r["cell_id"]: r for r in rows}
    for cell in cells:
        r = by_id[cell.cell_id]
        assert r["spec_hash"] == spec.spec_hash
        assert r["entropy"] == 11 and tuple(r["spawn_key"]) == cell.spawn_key
        assert r["params"] == cell.payload and r["seed_index"] == cell.seed_index
        assert r["recur_version"] and r["wall_time"] >= 0
        if cell.task == "fail":
            assert r["status"] == "error" and "raises on purpose" in r["error"]
            assert r["metrics"] == {}
        else:
            assert r["status"] == "ok" and r["error"] is None
            assert 0.0 <= r["metrics"]["draw"] < 1.0


def test_a_cell_is_stored_once(tmp_path, spec):
    cell = next(spec.cells())
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_spec(spec)
        assert store.add(cell, execute(cell.payload)) is True
        assert store.add(cell, execute(cell.payload)) is False
        assert store.count() == 1
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO results (spec_hash, cell_id, topology, task, rule, axes, "
                     "seed_index, entropy, spawn_key, params, recur_version, status, metrics)"
                     " SELECT spec_hash, cell_id, topology, task, rule, axes, seed_index, "
                     "entropy, spawn_key, params, recur_version, status, metrics FROM results")
    conn.close()


def test_nan_metrics_survive_as_nan(tmp_path, spec):
    cell = next(spec.cells())
    result = {**execute(cell.payload), "metrics": {"a": math.nan, "b": 1.5}}
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_spec(spec)
        store.add(cell, result)
        (row,) = store.records()
    assert math.isnan(row["metrics"]["a"]) and row["metrics"]["b"] == 1.5


def test_new_store_is_wal_with_recur_identity(tmp_path):
    ResultStore(tmp_path / "r.sqlite").close()
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_foreign_sqlite_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (x)")
    conn.execute("INSERT INTO results VALUES (1)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreError, match="another application|application id"):
        ResultStore(path)
    assert digest(path) == before
    assert not (tmp_path / "other.sqlite-wal").exists()


def test_other_application_id_is_refused(tmp_path):
    path = tmp_path / "x.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id=12345")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreError, match="12345"):
        ResultStore(path)
    assert digest(path) == before


def test_a_file_that_is_not_sqlite_is_refused_and_untouched(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = digest(path)
    with pytest.raises(StoreError, match="refusing to touch it"):
        ResultStore(path)
    assert digest(path) == before


def test_a_damaged_store_is_detected(tmp_path, spec):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.add_spec(spec)
        for cell in spec.cells():
            store.add(cell, execute(cell.payload))
    # Overwrite the middle of the file (the pages after the header) with junk.
    data = bytearray(path.read_bytes())
    assert len(data) > 4096
    data[1024:len(data) - 100] = b"\xa5" * (len(data) - 1124)
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(StoreError):
        ResultStore(path)
    assert digest(path) == before


def test_a_store_without_its_metadata_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = 'something else' WHERE key = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="meta.format"):
        ResultStore(path)


def test_readonly_store_refuses_writes_and_missing_files(tmp_path, spec):
    with pytest.raises(StoreError, match="no such results file"):
        ResultStore(tmp_path / "missing.sqlite", readonly=True)
    ResultStore(tmp_path / "r.sqlite").close()
    with ResultStore(tmp_path / "r.sqlite", readonly=True) as store:
        with pytest.raises(StoreError, match="read-only"):
            store.add_spec(spec)


def test_delete_errors_only_removes_error_rows(tmp_path, spec):
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.add_spec(spec)
        for cell in spec.cells():
            store.add(cell, execute(cell.payload))
        assert store.delete_errors(spec.spec_hash) == 3
        assert store.count(spec.spec_hash) == store.count(spec.spec_hash, "ok") == 3
