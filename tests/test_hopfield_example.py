"""The Hopfield capacity example in its --quick mode: do its numbers mean something?"""

import math

import numpy as np
import pytest

from example_loader import load_example


@pytest.fixture(scope="module")
def module():
    return load_example("hopfield_capacity")


@pytest.fixture(scope="module")
def quick(module, tmp_path_factory):
    out = tmp_path_factory.mktemp("hopfield_capacity")
    return module.main(["--quick", "--out", str(out)])


def _curve(result, topology, rule, what):
    s = result["summary"]
    loads = [P for P in result["config"]["loads"] if (topology, rule, P) in s]
    return loads, np.array([s[(topology, rule, P)][what] for P in loads])


def test_covers_every_topology_rule_load_and_seed(quick, module):
    config = quick["config"]
    n_loads, n_seeds = len(config["loads"]), config["seeds"]
    by_topo = {}
    for r in quick["records"]:
        by_topo.setdefault(r["topology"], set()).add((r["rule"], r["P"], r["seed"]))
        assert 0.0 <= r["fixed"] <= 1.0 and -1.0 <= r["overlap"] <= 1.0
    assert set(by_topo) == {"complete", "random_regular", "small_world"}
    assert len(by_topo["complete"]) == len(module.RULES) * n_loads * n_seeds
    for sparse in ("random_regular", "small_world"):
        assert len(by_topo[sparse]) == (len(module.RULES) - 1) * n_loads * n_seeds


def test_hebbian_overlap_falls_with_load(quick):
    loads, m = _curve(quick, "complete", "hebbian", "overlap")
    assert m[0] > 0.97
    assert np.all(np.diff(m) < 0.01)
    # past alpha_c ~ 0.138 a 10%-flipped cue (overlap 0.8) is not cleaned up
    assert m[np.array(loads) / quick["config"]["n_units"] > 0.25].max() < 0.8


def test_pseudo_inverse_holds_every_pattern_below_n(quick):
    loads, fixed = _curve(quick, "complete", "pseudo_inverse", "fixed")
    assert max(loads) < quick["config"]["n_units"]
    np.testing.assert_array_equal(fixed, 1.0)


def test_storkey_holds_more_than_hebb(quick):
    _, hebb = _curve(quick, "complete", "hebbian", "fixed")
    _, stork = _curve(quick, "complete", "storkey", "fixed")
    assert np.all(stork >= hebb)
    assert np.any(stork > hebb + 0.3)


def test_sparse_graphs_saturate_earlier(quick):
    loads, full = _curve(quick, "complete", "hebbian", "overlap")
    for sparse in ("random_regular", "small_world"):
        _, m = _curve(quick, sparse, "hebbian", "overlap")
        assert np.all(m <= full + 0.02)
        assert np.any(m < full - 0.1)


def test_reference_capacities(quick):
    n = quick["config"]["n_units"]
    ref = quick["references"]
    assert ref["N/(2 ln N) (Hebb, most exact)"] == pytest.approx(n / (2 * math.log(n)))
    assert ref["N/sqrt(2 ln N) (Storkey)"] == pytest.approx(n / math.sqrt(2 * math.log(n)))
    assert ref["alpha_c N (Hebb, AGS)"] == pytest.approx(0.138 * n)


def test_calibration_check_flags_deviations(module):
    summary = {("complete", rule, P): {"fixed": value, "overlap": value}
               for rule, P, _, value in module.CALIBRATED}
    rows = module.compare_calibrated(summary, 200)
    assert len(rows) == len(module.CALIBRATED) and all(r["ok"] for r in rows)
    summary[("complete", "hebbian", 40)]["overlap"] = 0.2
    rows = module.compare_calibrated(summary, 200)
    assert [r["ok"] for r in rows].count(False) == 1
    assert module.compare_calibrated(summary, 60) == []


def test_figure(quick):
    if quick["figure"] is not None:
        assert quick["figure"].exists()
