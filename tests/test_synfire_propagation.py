"""Pulse-packet propagation: the binary chain against its mean-field map, LIF chains at CI
size, and the example in its --quick mode."""

import numpy as np
import pytest

import recur as rc
from recur import graphs, metrics, tasks
from recur.networks.spiking import SpikingNet

from example_loader import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("synfire_propagation")


BIN = {"pool_size": 100, "p": 0.5, "theta": 20}


def test_map_separatrix_and_fixed_points():
    a_star = metrics.synfire_separatrix(**BIN)
    assert a_star == pytest.approx(36.97, abs=0.01)
    assert metrics.synfire_map(a_star, **BIN) == pytest.approx(a_star, abs=1e-6)
    # bistable: below a* the map shrinks a volley, above it the volley grows to ~w
    assert metrics.synfire_map(a_star - 2, **BIN) < a_star - 2
    assert metrics.synfire_map(a_star + 2, **BIN) > a_star + 2
    assert metrics.synfire_map(99.0, **BIN) == pytest.approx(99.0, abs=1.0)
    assert metrics.synfire_map(19.0, **BIN) == 0.0
    # a map with too high a threshold has no separatrix
    assert np.isnan(metrics.synfire_separatrix(100, 0.1, 20))
    # A tolerance below the float spacing still ends (the bisection is capped); none is refused.
    assert metrics.synfire_separatrix(100, 0.5, 20, tol=1e-300) == pytest.approx(36.97, abs=0.01)
    with pytest.raises(ValueError, match="tol"):
        metrics.synfire_separatrix(100, 0.5, 20, tol=0)


def test_binary_one_step_matches_the_mean_field_map(example):
    """Averaged over graphs and volleys, a_1 = w P[Bin(a_0, c) >= theta] exactly."""
    a_values = [28, 37, 45]
    seeds = np.random.SeedSequence(1).spawn(12)
    a1 = np.stack([example.binary_chain_counts(a_values, n_pools=2, trials=40, seed=s,
                                               **BIN)[..., 1].mean(axis=1) for s in seeds])
    mean = a1.mean(axis=0)
    se = a1.std(axis=0, ddof=1) / np.sqrt(len(seeds))
    expected = metrics.synfire_map(np.array(a_values, float), **BIN)
    assert np.all(np.abs(mean - expected) < 4 * se + 0.3), (mean, expected, se)


@pytest.mark.slow
def test_binary_chain_is_bistable_and_splits_at_the_separatrix(example):
    a_values = list(range(26, 50, 2))
    seeds = np.random.SeedSequence(2).spawn(5)
    counts = np.stack([example.binary_chain_counts(a_values, n_pools=10, trials=40, seed=s,
                                                   **BIN) for s in seeds])
    last = counts[..., -1]                                # (seeds, a, trials)
    # bistable: every volley ends silent or near the full pool, never in between
    assert np.all((last == 0) | (last >= 80))
    success = last >= 50
    assert success[:, :2].mean() == 0.0                   # a_0 <= 28 dies
    assert success[:, -2:].mean() == 1.0                  # a_0 >= 46 propagates
    a50 = example.fifty_percent_point(a_values, success.sum(axis=(0, 2)), 40 * len(seeds))
    assert a50 == pytest.approx(metrics.synfire_separatrix(**BIN), abs=1.0)


def _small_chain():
    topo = rc.Topology(graphs.synfire_chain_graph(5, 50, 1.0))
    # twice Diesmann's weight: 50 inputs give a unit the drive 100 give it in his chain
    return SpikingNet(topo, weight=2 * 4.86), topo


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_lif_chain_propagates_a_strong_packet_and_not_a_weak_one(seed):
    net, topo = _small_chain()
    params = net.init(0)
    rng = np.random.default_rng(seed)
    out = {}
    for a in (45, 12):
        g1, g2, g3 = rng.spawn(3)
        drive = tasks.pulse_packet(a, 1.0, topo.pools[0], t0=10.0, n_units=250, trials=10,
                                   rng=g1)
        raster, _ = net.run(params, 35.0, drive, trials=10, rng=g2,
                            state=net.initial_state(10, rng=g3, stationary=True))
        m = metrics.packet_measures(raster, topo.pools, t0=10.0)
        out[a] = (metrics.propagation_success(m), m)
    strong, m = out[45]
    assert strong.mean() >= 0.9
    # the volley synchronises on its way: the spread shrinks below the initial 1 ms
    assert np.nanmedian(m.sigma[strong, -1]) < 0.7
    assert out[12][0].mean() <= 0.1


@pytest.mark.slow
def test_example_quick_reproduces_the_calibrated_shape(example, tmp_path):
    result = example.main(["--quick", "--out", str(tmp_path)])
    got = result["measured"]
    assert got["a=85 reaches the last pool"] == 1.0
    assert got["a=40 reaches the last pool"] == 0.0
    assert got["a=48 reaches the last pool"] <= 0.6
    assert got["a=85 final sigma (ms)"] < 0.6
    assert got["binary separatrix a*"] == pytest.approx(36.97, abs=0.01)
    assert got["binary simulated 50% point"] == pytest.approx(36.97, abs=1.5)
    grid = result["lif"]["grid"]
    # the portrait: big tight packets propagate, small ones die
    assert grid[(90, 0.5)]["p_success"] == 1.0 and grid[(30, 2.0)]["p_success"] == 0.0
    if result["figure"] is not None:
        assert result["figure"].exists()
