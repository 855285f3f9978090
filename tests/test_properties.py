"""Property-based checks (hypothesis) of the conventions everything else relies on."""

import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import recur as rc

edges = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), min_size=1, max_size=40)


@given(edges)
@settings(max_examples=40, deadline=None)
def test_mask_is_the_transposed_edge_set(edge_list):
    G = nx.DiGraph(edge_list)
    topo = rc.Topology(G)
    mask = topo.mask.toarray()
    expected = {(topo.index(v), topo.index(u)) for u, v in edge_list}
    assert {tuple(ij) for ij in np.argwhere(mask)} == expected


@given(edges, st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_initial_weights_never_leave_the_graph(edge_list, seed):
    topo = rc.Topology(nx.DiGraph(edge_list))
    for sparse in (True, False):
        W = rc.ESN(topo, spectral_radius=None, sparse=sparse).init(seed)["W"]
        dense = W.toarray() if hasattr(W, "toarray") else W
        assert not dense[~topo.mask.toarray()].any()


@given(st.lists(st.integers(1, 60), min_size=1, max_size=6), st.integers(0, 1000))
@settings(max_examples=30, deadline=None)
def test_ridge_chunks_equal_one_fit(chunks, seed):
    rng = np.random.default_rng(seed)
    T = sum(chunks)
    X, Y = rng.normal(size=(T, 4)), rng.normal(size=(T, 2))
    whole = rc.Ridge(alpha=0.1).fit(X, Y)
    part = rc.Ridge(alpha=0.1)
    start = 0
    for n in chunks:
        part.partial_fit(X[start:start + n], Y[start:start + n])
        start += n
    np.testing.assert_allclose(part.coef_, whole.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(part.intercept_, whole.intercept_, rtol=1e-9, atol=1e-12)
