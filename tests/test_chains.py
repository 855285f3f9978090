"""recur.chains: chains in weight matrices and sequences in rasters, on hand-built cases."""

import numpy as np
import pytest
import scipy.sparse as sp

from recur.chains import (chain_index, chain_order, chain_successors, find_chains,
                          sequence_lengths, tail_exponent)
from recur.rules import SpikeTrains


def _planted_chain(n, rng, background=0.05, p=0.3):
    """A random graph with weak random weights plus a chain through a random permutation."""
    perm = rng.permutation(n)
    mask = rng.random((n, n)) < p
    mask[perm[1:], perm[:-1]] = True
    np.fill_diagonal(mask, False)
    W = background * rng.random((n, n)) * mask
    W[perm[1:], perm[:-1]] = 1.0
    return W, mask, perm


def _sequential_greedy(W, threshold=0.0):
    """Reference: heaviest link first, in one Python pass, ties by row-major order."""
    n = W.shape[0]
    post, pre = np.nonzero((W > threshold) & ~np.eye(n, dtype=bool))
    w = W[post, pre]
    order = np.lexsort((np.arange(w.size), -w))
    succ = np.full(n, -1)
    taken = np.zeros(n, bool)
    for k in order:
        if succ[pre[k]] < 0 and not taken[post[k]]:
            succ[pre[k]] = post[k]
            taken[post[k]] = True
    return succ


@pytest.mark.parametrize("method", ["greedy", "optimal"])
@pytest.mark.parametrize("sparse", [False, True])
def test_planted_chain_is_found(method, sparse):
    rng = np.random.default_rng(0)
    n = 40
    W, mask, perm = _planted_chain(n, rng)
    M = sp.csr_array(W * mask) if sparse else W
    chains, lengths = find_chains(M, 0.5, mask=None if sparse else mask, method=method)
    assert lengths.tolist() == [n]
    np.testing.assert_array_equal(chains[0], perm)
    order = chain_order(M, 0.5, mask=None if sparse else mask, method=method)
    np.testing.assert_array_equal(order, perm)
    sorted_W = W[np.ix_(order, order)]
    np.testing.assert_array_equal(np.diag(sorted_W, -1), 1.0)


def test_permutation_has_index_one_and_beats_its_controls():
    rng = np.random.default_rng(1)
    n = 30
    perm = rng.permutation(n)
    W = np.zeros((n, n))
    W[perm[1:], perm[:-1]] = rng.uniform(0.5, 1.0, n - 1)
    result = chain_index(W, n_shuffles=20, rng=2)
    assert result.index == pytest.approx(1.0)
    # Shuffled over the complete graph, 29 weights rarely form a full matching.
    assert result.control_mean < 0.95 and result.z > 3
    assert result.controls.shape == (20,)


@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("method", ["greedy", "optimal"])
def test_chain_of_groups_has_index_one_over_width(m, method):
    """Groups of m units, all-to-all from each group to the next: index exactly 1/m."""
    n_groups = 6
    n = n_groups * m
    W = np.zeros((n, n))
    for k in range(n_groups - 1):
        W[(k + 1) * m:(k + 2) * m, k * m:(k + 1) * m] = 1.0
    result = chain_index(W, n_shuffles=5, method=method, rng=0)
    assert result.index == pytest.approx(1.0 / m)


def test_random_weights_are_at_chance():
    """The index of i.i.d. weights is one more draw of its control: z is not large."""
    zs = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 40
        mask = (rng.random((n, n)) < 0.2) & ~np.eye(n, dtype=bool)
        W = rng.random((n, n)) * mask
        zs.append(chain_index(sp.csr_array(W), n_shuffles=20, rng=seed + 100).z)
    zs = np.array(zs)
    assert np.mean(np.abs(zs) > 3) <= 1 / 12
    assert abs(zs.mean()) < 1.5


def test_planted_chain_index_is_far_above_controls_over_seeds():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        W, mask, _ = _planted_chain(50, rng, background=0.2)
        result = chain_index(W, mask=mask, n_shuffles=20, rng=seed)
        assert result.z > 5
        assert result.index > result.control_mean + 0.1


def test_greedy_matches_sequential_reference_and_optimal_bounds_it():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = 25
        W = rng.random((n, n)) * (rng.random((n, n)) < 0.4)
        greedy = chain_successors(W, method="greedy")
        np.testing.assert_array_equal(greedy, _sequential_greedy(W))
        optimal = chain_successors(W, method="optimal")

        def gain(succ):
            j = np.flatnonzero(succ >= 0)
            return W[succ[j], j].sum()

        assert gain(optimal) >= gain(greedy) - 1e-12
        assert gain(greedy) >= 0.5 * gain(optimal)
        for succ in (greedy, optimal):
            targets = succ[succ >= 0]
            assert np.unique(targets).size == targets.size  # one predecessor each
            assert not np.any(succ == np.arange(n))


def test_threshold_drops_weak_links_and_a_ring_is_cut_at_its_weakest_link():
    n = 5
    W = np.zeros((n, n))
    ring = [0, 1, 2, 3, 4]
    weights = [0.9, 0.8, 0.6, 0.95, 0.85]  # link k: ring[k] -> ring[k + 1]
    for k, w in enumerate(weights):
        W[ring[(k + 1) % n], ring[k]] = w
    chains, lengths = find_chains(W, 0.1)
    assert lengths.tolist() == [5]
    np.testing.assert_array_equal(chains[0], [3, 4, 0, 1, 2])  # 2 -> 3 (0.6) is cut
    chains, lengths = find_chains(W, 0.82)  # drops 1 -> 2 (0.8) and 2 -> 3 (0.6)
    assert lengths.tolist() == [4]
    np.testing.assert_array_equal(chains[0], [3, 4, 0, 1])
    np.testing.assert_array_equal(chain_successors(W, 0.82), [1, -1, -1, 4, 0])


def test_sequence_lengths_hand_computed():
    succ = np.array([1, 2, 3, -1, -1])  # chain 0 -> 1 -> 2 -> 3; unit 4 on no chain
    units = [0, 1, 2, 3, 1, 2, 4, 0, 1]
    steps = [0, 1, 2, 10, 20, 22, 30, 40, 41]
    trials = [0, 0, 0, 0, 0, 0, 0, 0, 1]  # the last pair is split across trials
    raster = SpikeTrains(units=np.array(units), steps=np.array(steps), n_units=5, n_steps=50,
                         dt=0.1, trials=np.array(trials))
    assert sequence_lengths(raster, succ, max_lag=1, min_length=1).tolist() == [
        3, 1, 1, 1, 1, 1, 1]
    assert sequence_lengths(raster, succ, max_lag=2).tolist() == [3, 2]
    assert sequence_lengths(raster, succ, max_lag=2, min_length=3).tolist() == [3]
    # Two spikes of unit 0 both reach unit 1's spike: it continues the later one only.
    raster = SpikeTrains(units=np.array([0, 0, 1, 2]), steps=np.array([0, 1, 2, 3]),
                         n_units=5, n_steps=5, dt=1.0)
    assert sorted(sequence_lengths(raster, succ, max_lag=2, min_length=1).tolist()) == [1, 3]


def test_sequence_lengths_follow_a_planted_wave():
    n = 30
    succ = np.append(np.arange(1, n), -1)
    units = np.arange(n)
    raster = SpikeTrains(units=units, steps=2 * units, n_units=n, n_steps=2 * n, dt=0.5)
    assert sequence_lengths(raster, succ, max_lag=2).tolist() == [n]
    assert sequence_lengths(raster, succ, max_lag=1).size == 0


def test_tail_exponent_recovers_a_power_law():
    for seed, alpha in ((0, 2.0), (1, 2.5), (2, 3.0)):
        x = np.random.default_rng(seed).zipf(alpha, 300_000)
        est, n_tail = tail_exponent(x, x_min=6)
        assert est == pytest.approx(alpha, abs=max(0.06, 4 * (est - 1) / np.sqrt(n_tail)))
    assert np.isnan(tail_exponent([1, 1, 1], x_min=2)[0])


def test_bad_input():
    W = np.ones((3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        chain_index(-W)
    with pytest.raises(ValueError, match="square"):
        chain_index(np.ones((3, 2)))
    with pytest.raises(ValueError, match="method"):
        chain_successors(W, method="best")
    with pytest.raises(ValueError, match="n_shuffles"):
        chain_index(W, n_shuffles=1)
    with pytest.raises(ValueError, match="threshold"):
        find_chains(W, -1.0)
    raster = SpikeTrains(units=np.array([0]), steps=np.array([0]), n_units=3, n_steps=2, dt=1.0)
    with pytest.raises(ValueError, match="successors"):
        sequence_lengths(raster, np.array([1, 2]))
    with pytest.raises(ValueError, match="successors must lie"):
        sequence_lengths(raster, np.array([1, 2, 5]))
    with pytest.raises(TypeError, match="SpikeTrains"):
        sequence_lengths(np.zeros((3, 3)), np.array([1, 2, -1]))


def test_greedy_finishing_pass_gives_the_same_matching(monkeypatch):
    """A path of ever lighter links takes one round per link; the sequential finish agrees."""
    import recur.chains as chains_module

    rng = np.random.default_rng(7)
    n = 40
    W = rng.random((n, n)) * (rng.random((n, n)) < 0.3)
    W[np.arange(1, n), np.arange(n - 1)] = 2.0 + np.linspace(1.0, 0.0, n - 1)
    expect = _sequential_greedy(W)
    np.testing.assert_array_equal(chain_successors(W), expect)
    monkeypatch.setattr(chains_module, "_GREEDY_ROUNDS", 1)
    np.testing.assert_array_equal(chain_successors(W), expect)
