"""The topology-sweep example in its --quick mode: every cell runs and its numbers mean
something (memory capacity bounded by N and growing with N)."""

import numpy as np
import pytest

from example_loader import load_example


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("topology_sweep")
    return load_example("topology_sweep").main(["--quick", "--out", str(out)]), out


def test_every_cell_ran(quick):
    result, out = quick
    spec, outcome = result["spec"], result["outcome"]
    assert outcome.total == spec.n_cells == 5 * 2 * 2 * 2
    assert outcome.ok == outcome.total and outcome.errors == 0
    assert {r["topology"] for r in result["records"]} == set(spec.topologies)
    assert (out / "topology_sweep_quick.sqlite").exists()
    assert "memory_capacity [IQR]" in result["table"]


def test_memory_capacity_is_bounded_by_n_and_grows_with_it(quick):
    result, _ = quick
    mc = [r for r in result["rows"] if r["task"] == "memory_capacity"]
    for r in mc:
        assert 0 < r["memory_capacity_q75"] <= r["topology.n"]
    # over the topologies, doubling N adds memory (median of the per-topology gains)
    gains = []
    for topo in {r["topology"] for r in mc}:
        by_n = {r["topology.n"]: r["memory_capacity"] for r in mc if r["topology"] == topo}
        gains.append(by_n[40] - by_n[20])
    assert np.median(gains) > 0


def test_narma_readout_beats_the_mean(quick):
    result, _ = quick
    narma = [r["nrmse"] for r in result["rows"] if r["task"] == "narma"]
    assert len(narma) == 10 and np.median(narma) < 1.0


def test_rerunning_the_example_skips_what_is_stored(quick, tmp_path):
    result, out = quick
    again = load_example("topology_sweep").main(["--quick", "--out", str(out)])
    assert again["outcome"].skipped == again["outcome"].total
    assert again["outcome"].ran == 0
    assert again["rows"] == result["rows"]
