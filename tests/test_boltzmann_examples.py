"""The Boltzmann examples in their --quick mode: do their numbers mean something?"""

import numpy as np
import pytest

from example_loader import load_example


@pytest.fixture(scope="module")
def rbm(tmp_path_factory):
    out = tmp_path_factory.mktemp("rbm_bars_and_stripes")
    return load_example("rbm_bars_and_stripes").main(["--quick", "--out", str(out)])


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    out = tmp_path_factory.mktemp("boltzmann_encoder")
    return load_example("boltzmann_encoder").main(["--quick", "--out", str(out)])


def test_rbm_covers_methods_and_seeds(rbm):
    config = rbm["config"]
    assert {r["method"] for r in rbm["records"]} == {"CD-1", "CD-10", "PCD"}
    assert len(rbm["records"]) == 3 * len(config["seeds"]) * len(config["sizes"])


def test_rbm_learns_towards_the_optimum(rbm):
    for r in rbm["records"]:
        start = r["curve"][0][1]
        # a model with tiny weights gives each of 2^9 images about the same probability
        assert start == pytest.approx(-9 * np.log(2), abs=0.05)
        assert r["log_likelihood"] > start + 0.8
        assert r["log_likelihood"] <= r["optimum"] + 1e-9
        epochs, ll = np.array(r["curve"]).T
        assert epochs[-1] == rbm["config"]["epochs"]
        assert ll[-1] > ll[len(ll) // 2]  # still climbing


def test_rbm_figure(rbm):
    if rbm["figure"] is not None:
        assert rbm["figure"].exists()


def test_encoder_finds_distinct_codes(encoder):
    results = encoder["results"]
    assert len(results) == encoder["config"]["seeds"]
    assert encoder["found"] >= len(results) // 2
    for r in results:
        codes = {tuple(c) for c in r["codes"]}
        assert r["found"] == (len(codes) == 4)
        if r["found"]:
            assert r["cycles"] % encoder["config"]["check_every"] == 0


def test_encoder_weights_stay_on_the_graph(encoder):
    module = load_example("boltzmann_encoder")
    net = module.make_network()
    for r in encoder["results"]:
        W = r["params"]["W"]
        np.testing.assert_array_equal(W, W.T)
        assert not W[~net.mask].any()
        # no V1-V2 edge: the groups talk only through the hidden units
        assert not W[:4, 4:8].any()
