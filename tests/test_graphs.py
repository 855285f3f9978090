"""Structure, randomness and argument checks of the generators in recur.graphs."""

import random

import networkx as nx
import numpy as np
import pytest

from recur import graphs
from recur.graphs import (
    bipartite_graph,
    directed_scale_free_graph,
    layered_graph,
    modular_graph,
    ring_graph,
    synfire_chain_graph,
)

SEEDS = range(20)

# One random call per generator, used by the seed-handling tests.
RANDOM_GENERATORS = {
    "layered": lambda seed: layered_graph([20, 30, 10], p=0.3, seed=seed),
    "synfire": lambda seed: synfire_chain_graph(5, 20, p_forward=0.5, p_recurrent=0.2, seed=seed),
    "modular": lambda seed: modular_graph(120, 3, 0.3, 0.05, seed=seed),
    "bipartite": lambda seed: bipartite_graph(30, 20, p=0.4, seed=seed),
    "scale_free": lambda seed: directed_scale_free_graph(200, seed=seed),
}


def edge_set(G):
    return set(G.edges())


def pair_density(edges, pairs):
    """Fraction of the candidate ordered pairs that are edges."""
    return len(edges & pairs) / len(pairs)


# -- layered ---------------------------------------------------------------------------------
def test_layered_edges_only_between_successive_layers():
    sizes = [15, 25, 10, 5]
    for seed in SEEDS:
        G = layered_graph(sizes, p=0.4, seed=seed)
        assert isinstance(G, nx.DiGraph)
        assert all(G.nodes[v]["layer"] == G.nodes[u]["layer"] + 1 for u, v in G.edges())


def test_layered_complete_and_undirected():
    sizes = [3, 4, 2]
    G = layered_graph(sizes)
    assert G.number_of_edges() == 3 * 4 + 4 * 2
    U = layered_graph(sizes, directed=False)
    assert type(U) is nx.Graph
    assert U.number_of_edges() == 3 * 4 + 4 * 2
    assert all(abs(U.nodes[u]["layer"] - U.nodes[v]["layer"]) == 1 for u, v in U.edges())


def test_layered_attributes():
    G = layered_graph([2, 3, 3, 1])
    assert list(G) == list(range(9))
    layers = [G.nodes[i]["layer"] for i in G]
    assert layers == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert [G.nodes[i]["pool"] for i in G] == layers
    roles = [G.nodes[i]["role"] for i in G]
    assert roles == ["input"] * 2 + ["hidden"] * 6 + ["output"]


def test_layered_density_matches_p():
    sizes, p = [40, 60], 0.25
    densities = [layered_graph(sizes, p=p, seed=s).number_of_edges() / (40 * 60) for s in SEEDS]
    # 2400 pairs per draw: the sd of one density is ~0.009, of the mean over 20 draws ~0.002.
    assert abs(np.mean(densities) - p) < 0.01


# -- synfire chain ---------------------------------------------------------------------------
def test_synfire_full_forward_structure():
    G = synfire_chain_graph(10, 100, p_forward=1.0)
    assert isinstance(G, nx.DiGraph)
    assert list(G) == list(range(1000))
    assert G.number_of_edges() == 9 * 100 * 100
    assert all(G.nodes[v]["pool"] == G.nodes[u]["pool"] + 1 for u, v in G.edges())
    assert [G.nodes[i]["pool"] for i in (0, 99, 100, 999)] == [0, 0, 1, 9]


def test_synfire_edges_forward_or_within_pool_only():
    for seed in SEEDS:
        G = synfire_chain_graph(6, 15, p_forward=0.5, p_recurrent=0.3, seed=seed)
        assert nx.number_of_selfloops(G) == 0
        for u, v in G.edges():
            step = G.nodes[v]["pool"] - G.nodes[u]["pool"]
            assert step in (0, 1)


def test_synfire_densities_match_probabilities():
    n_pools, size, p_forward, p_recurrent = 5, 30, 0.4, 0.1
    forward, within = [], []
    for seed in SEEDS:
        G = synfire_chain_graph(n_pools, size, p_forward, p_recurrent, seed=seed)
        pool = nx.get_node_attributes(G, "pool")
        n_forward = sum(pool[v] == pool[u] + 1 for u, v in G.edges())
        forward.append(n_forward / ((n_pools - 1) * size * size))
        within.append((G.number_of_edges() - n_forward) / (n_pools * size * (size - 1)))
    assert abs(np.mean(forward) - p_forward) < 0.01
    assert abs(np.mean(within) - p_recurrent) < 0.01


def test_synfire_no_recurrence_by_default():
    G = synfire_chain_graph(4, 10, p_forward=0.7, seed=1)
    assert all(G.nodes[v]["pool"] == G.nodes[u]["pool"] + 1 for u, v in G.edges())


# -- modular ---------------------------------------------------------------------------------
@pytest.mark.parametrize("directed", [False, True])
def test_modular_densities_within_and_between(directed):
    n, n_modules, p_in, p_out = 90, 3, 0.3, 0.05
    within, between = [], []
    for seed in SEEDS:
        G = modular_graph(n, n_modules, p_in, p_out, directed=directed, seed=seed)
        assert G.is_directed() == directed
        assert nx.number_of_selfloops(G) == 0
        pool = nx.get_node_attributes(G, "pool")
        same = sum(pool[u] == pool[v] for u, v in G.edges())
        # Candidate pairs: ordered pairs if directed, unordered if not.
        factor = 1 if directed else 2
        within_pairs = n_modules * 30 * 29 / factor
        between_pairs = (n * (n - 1) - n_modules * 30 * 29) / factor
        within.append(same / within_pairs)
        between.append((G.number_of_edges() - same) / between_pairs)
    assert abs(np.mean(within) - p_in) < 0.02
    assert abs(np.mean(between) - p_out) < 0.01


def test_modular_module_sizes_near_equal():
    G = modular_graph(103, 4, 0.5, 0.0, seed=0)
    pools = [G.nodes[i]["pool"] for i in G]
    sizes = np.bincount(pools)
    assert sizes.tolist() == [26, 26, 26, 25]
    assert pools == sorted(pools)  # modules are contiguous node ranges
    # With p_out = 0 every edge stays inside its module.
    assert all(G.nodes[u]["pool"] == G.nodes[v]["pool"] for u, v in G.edges())


def test_modular_extremes():
    G = modular_graph(12, 3, 1.0, 0.0, seed=0)
    assert G.number_of_edges() == 3 * (4 * 3 // 2)
    D = modular_graph(12, 3, 1.0, 1.0, directed=True, seed=0)
    assert D.number_of_edges() == 12 * 11
    assert modular_graph(12, 1, 0.0, 1.0, seed=0).number_of_edges() == 0


def test_modular_large_graph_is_sparse_and_complete():
    G = modular_graph(10_000, 10, 0.01, 0.0005, seed=0)
    assert G.number_of_nodes() == 10_000
    expected = 10 * 1000 * 999 / 2 * 0.01 + (10_000 * 9_999 - 10 * 1000 * 999) / 2 * 0.0005
    assert abs(G.number_of_edges() - expected) < 0.05 * expected


# -- bipartite -------------------------------------------------------------------------------
def test_bipartite_structure_and_roles():
    G = bipartite_graph(6, 4)
    assert type(G) is nx.Graph
    assert G.number_of_edges() == 24
    assert [G.nodes[i]["role"] for i in G] == ["visible"] * 6 + ["hidden"] * 4
    assert [G.nodes[i]["bipartite"] for i in G] == [0] * 6 + [1] * 4
    assert nx.is_bipartite(G)


def test_bipartite_no_within_group_edges():
    for seed in SEEDS:
        G = bipartite_graph(25, 15, p=0.5, seed=seed)
        assert all(G.nodes[u]["role"] != G.nodes[v]["role"] for u, v in G.edges())


def test_bipartite_density_matches_p():
    densities = [bipartite_graph(40, 30, p=0.3, seed=s).number_of_edges() / 1200 for s in SEEDS]
    assert abs(np.mean(densities) - 0.3) < 0.01


# -- ring ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, k", [(2, 1), (10, 1), (10, 3), (7, 6)])
def test_directed_ring_degrees_and_edges(n, k):
    G = ring_graph(n, k)
    assert isinstance(G, nx.DiGraph)
    assert all(d == k for _, d in G.in_degree())
    assert all(d == k for _, d in G.out_degree())
    assert edge_set(G) == {(i, (i + j) % n) for i in range(n) for j in range(1, k + 1)}


def test_directed_ring_k1_is_one_cycle():
    G = ring_graph(50)
    assert nx.is_isomorphic(G, nx.cycle_graph(50, create_using=nx.DiGraph))


@pytest.mark.parametrize("n, k", [(3, 1), (10, 2), (9, 4)])
def test_undirected_ring_degrees(n, k):
    G = ring_graph(n, k, directed=False)
    assert type(G) is nx.Graph
    assert all(d == 2 * k for _, d in G.degree())
    assert nx.number_of_selfloops(G) == 0


# -- directed scale-free ---------------------------------------------------------------------
def test_directed_scale_free_is_simple_and_heavy_tailed():
    for seed in range(5):
        G = directed_scale_free_graph(1000, seed=seed)
        assert type(G) is nx.DiGraph
        assert list(G) == list(range(1000))
        assert nx.number_of_selfloops(G) == 0
        in_degrees = np.array([d for _, d in G.in_degree()])
        # Preferential attachment concentrates inputs on hubs; a G(n, p) graph of the same
        # density has a maximum in-degree within a few times its mean.
        assert in_degrees.max() > 10 * in_degrees.mean()


# -- randomness ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(RANDOM_GENERATORS))
def test_same_seed_same_graph(name):
    make = RANDOM_GENERATORS[name]
    assert edge_set(make(7)) == edge_set(make(7))
    assert edge_set(make(np.random.default_rng(7))) == edge_set(make(np.random.default_rng(7)))


@pytest.mark.parametrize("name", sorted(RANDOM_GENERATORS))
def test_different_seeds_different_graphs(name):
    make = RANDOM_GENERATORS[name]
    assert len({frozenset(edge_set(make(seed))) for seed in range(5)}) > 1


@pytest.mark.parametrize("name", sorted(RANDOM_GENERATORS))
def test_global_random_state_untouched(name):
    numpy_state = np.random.get_state()[1].copy()
    python_state = random.getstate()
    RANDOM_GENERATORS[name](None)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert random.getstate() == python_state


def test_generator_seed_advances():
    rng = np.random.default_rng(3)
    first = edge_set(bipartite_graph(20, 20, p=0.5, seed=rng))
    second = edge_set(bipartite_graph(20, 20, p=0.5, seed=rng))
    assert first != second


def test_every_public_generator_is_named_graph():
    for name in graphs.__all__:
        assert name.endswith("_graph") and callable(getattr(graphs, name))


# -- argument validation ---------------------------------------------------------------------
@pytest.mark.parametrize("call, error, words", [
    (lambda: layered_graph([3]), ValueError, "sizes"),
    (lambda: layered_graph("34"), TypeError, "sizes"),
    (lambda: layered_graph([3, -1]), ValueError, "sizes[1]"),
    (lambda: layered_graph([3, 0]), ValueError, "sizes[1]"),
    (lambda: layered_graph([3, 2.5]), TypeError, "sizes[1]"),
    (lambda: layered_graph([3, 2], p=1.5), ValueError, "p must"),
    (lambda: layered_graph([3, 2], directed="yes"), TypeError, "directed"),
    (lambda: synfire_chain_graph(-1, 10, 1.0), ValueError, "n_pools"),
    (lambda: synfire_chain_graph(3, 0, 1.0), ValueError, "pool_size"),
    (lambda: synfire_chain_graph(3, 10, -0.1), ValueError, "p_forward"),
    (lambda: synfire_chain_graph(3, 10, 1.0, p_recurrent=2), ValueError, "p_recurrent"),
    (lambda: synfire_chain_graph(3, 10, "1"), TypeError, "p_forward"),
    (lambda: synfire_chain_graph(3, 10, 1.0, seed="x"), TypeError, "seed"),
    (lambda: synfire_chain_graph(3, 10, 1.0, seed=-5), ValueError, "seed"),
    (lambda: modular_graph(10, 11, 0.5, 0.1), ValueError, "n_modules"),
    (lambda: modular_graph(0, 1, 0.5, 0.1), ValueError, "n must"),
    (lambda: modular_graph(10, 2, float("nan"), 0.1), TypeError, "p_in"),
    (lambda: modular_graph(10, 2, 0.5, 1.1), ValueError, "p_out"),
    (lambda: modular_graph(10, 2, 0.5, 0.1, directed=1), TypeError, "directed"),
    (lambda: bipartite_graph(0, 3), ValueError, "n_visible"),
    (lambda: bipartite_graph(3, -2), ValueError, "n_hidden"),
    (lambda: bipartite_graph(3, 2, p=True), TypeError, "p must"),
    (lambda: ring_graph(5, 5), ValueError, "k must"),
    (lambda: ring_graph(4, 2, directed=False), ValueError, "k must"),
    (lambda: ring_graph(5, 0), ValueError, "k must"),
    (lambda: ring_graph(5.0), TypeError, "n must"),
    (lambda: directed_scale_free_graph(2), ValueError, "n must"),
    (lambda: directed_scale_free_graph(50, alpha=0.5, beta=0.5, gamma=0.5), ValueError, "alpha"),
    (lambda: directed_scale_free_graph(50, gamma=0.0), ValueError, "gamma"),
    (lambda: directed_scale_free_graph(50, delta_in=-1.0), ValueError, "delta_in"),
])
def test_bad_arguments_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
