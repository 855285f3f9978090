"""Reports: medians and interquartile ranges against numpy on hand-made rows, grouping by
the axes asked for, CSV/JSON that read back, and PNG plots."""

import argparse
import csv
import io
import json
import math

import numpy as np
import pytest

from recur import plotting
from recur.sweep import ResultStore, parse_spec, report, run_sweep, summarise
from recur.sweep.cli import add_commands
from recur.sweep.report import default_by, format_table, to_csv, to_json


def record(topology, n, seed, value, status="ok", rule="-"):
    return {"topology": topology, "task": "t", "rule": rule, "axes": {"topology.n": n},
            "seed_index": seed, "status": status,
            "metrics": {"m": value} if status == "ok" else {}}


@pytest.fixture
def records():
    rng = np.random.default_rng(0)
    out = []
    for topo in ("ring", "er"):
        for n in (10, 20, 40):
            for seed in range(5):
                out.append(record(topo, n, seed, float(rng.normal(n, 3))))
    out.append(record("ring", 10, 5, 0.0, status="error"))
    return out


def test_median_and_iqr_per_group_match_numpy(records):
    rows = summarise(records)
    assert default_by(records) == ["topology", "topology.n"]
    assert len(rows) == 6
    for r in rows:
        values = [x["metrics"]["m"] for x in records if x["topology"] == r["topology"]
                  and x["axes"]["topology.n"] == r["topology.n"] and x["status"] == "ok"]
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        assert (r["m"], r["m_q25"], r["m_q75"]) == (q50, q25, q75)
        assert r["n"] == 5
    ring10 = next(r for r in rows if r["topology"] == "ring" and r["topology.n"] == 10)
    assert ring10["errors"] == 1
    # labels in the order first seen, numbers in numeric order
    assert [(r["topology"], r["topology.n"]) for r in rows] == \
        [("ring", 10), ("ring", 20), ("ring", 40), ("er", 10), ("er", 20), ("er", 40)]


def test_grouping_by_fewer_factors_pools_the_rest(records):
    rows = summarise(records, by=["topology.n"])
    assert [r["topology.n"] for r in rows] == [10, 20, 40]
    for r in rows:
        values = [x["metrics"]["m"] for x in records if x["axes"]["topology.n"] == r["topology.n"]
                  and x["status"] == "ok"]
        assert r["n"] == 10 and r["m"] == np.median(values)
    with pytest.raises(ValueError, match="the factors are topology, task, rule, topology.n"):
        summarise(records, by=["colour"])
    with pytest.raises(ValueError, match="no row has metrics"):
        summarise(records, metrics=["nope"])


def test_non_finite_values_are_left_out_of_the_statistics():
    rows = summarise([record("a", 1, 0, 1.0), record("a", 1, 1, math.nan),
                      record("a", 1, 2, 3.0)])
    assert rows[0]["m"] == 2.0 and rows[0]["n"] == 3
    empty = summarise([record("a", 1, 0, math.nan)])
    assert math.isnan(empty[0]["m"])
    assert "-" in format_table(empty).splitlines()[-1]


def test_csv_and_json_read_back(records):
    rows = summarise(records)
    back = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(back) == len(rows)
    assert [float(b["m"]) for b in back] == [r["m"] for r in rows]
    assert json.loads(to_json(rows)) == rows
    table = format_table(rows)
    assert table.splitlines()[0].split()[:4] == ["topology", "topology.n", "n", "errors"]
    assert len(table.splitlines()) == 2 + len(rows)


@pytest.mark.skipif(not plotting.have_matplotlib(), reason="needs matplotlib")
def test_plots_one_png_per_metric_and_numeric_axis(records, tmp_path):
    from recur.sweep.report import plot

    paths = plot(records, tmp_path)
    assert [p.name for p in paths] == ["m_vs_topology.n.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot(records, tmp_path, by=["topology"]) == []  # no numeric axis


SPEC = """
[sweep]
name = "report test"
network = "none"
seeds = 3
entropy = 4
[topologies]
a = { catalogue = "ring", params = { n = 4 } }
b = { catalogue = "ring", params = { n = 6 } }
[tasks.sleep]
[grid]
"task.seconds" = [0.0, 0.001]
"""


def test_report_of_a_store_and_the_cli(tmp_path, capsys):
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(SPEC)
    out = run_sweep(spec_path, workers=1, progress=False)
    text = report(out.store)
    assert "report test" in text and len(text.splitlines()) == 2 + 1 + 4
    by_topology = json.loads(report(out.store, fmt="json", by="topology"))
    assert [r["topology"] for r in by_topology] == ["a", "b"]
    assert all(r["n"] == 6 for r in by_topology)
    with ResultStore(out.store, readonly=True) as s:
        draws = [r["metrics"]["draw"] for r in s.records() if r["topology"] == "a"]
    assert by_topology[0]["draw"] == pytest.approx(np.median(draws), rel=0, abs=0)

    parser = argparse.ArgumentParser(prog="recur")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(out.store), "--format", "csv", "--by",
                              "topology,task.seconds", "--out", str(tmp_path / "figs")])
    assert args.func(args) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.splitlines()[0].startswith("spec,topology,task.seconds,n,errors,draw")
    assert (tmp_path / "figs" / "summary.csv").exists()
    if plotting.have_matplotlib():
        assert (tmp_path / "figs" / "draw_vs_task.seconds.png").exists()
    args = parser.parse_args(["report", str(out.store), "--by", "colour"])
    assert args.func(args) == 2
    assert "colour" in capsys.readouterr().err


def test_report_refuses_a_file_that_is_not_a_store(tmp_path):
    from recur.sweep import StoreError

    path = tmp_path / "x.sqlite"
    path.write_text("hello")
    with pytest.raises(StoreError):
        report(path)
    with pytest.raises(ValueError, match="fmt"):
        report(path, fmt="xml")


def test_two_specs_in_one_store_are_reported_apart(tmp_path):
    store = tmp_path / "shared.sqlite"
    for entropy in (1, 2):
        spec = parse_spec(SPEC.replace("entropy = 4", f"entropy = {entropy}"),
                          folder=tmp_path)
        run_sweep(spec, store=store, workers=1, progress=False)
    rows = json.loads(report(store, fmt="json"))
    assert len({r["spec"] for r in rows}) == 2
    only = json.loads(report(store, fmt="json", spec=rows[0]["spec"]))
    assert {r["spec"] for r in only} == {rows[0]["spec"]}
