import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc


def test_directed_edge_orientation_post_pre():
    topo = rc.Topology(nx.DiGraph([("u", "v")]))
    i, j = topo.index("v"), topo.index("u")
    m = topo.mask.toarray()
    assert m[i, j] and not m[j, i]


def test_orientation_reaches_dynamics():
    # u -> v: perturbing u changes v's next state, perturbing v leaves u alone.
    G = nx.DiGraph([(0, 1)])
    esn = rc.ESN(rc.Topology(G), leak=1.0, spectral_radius=None, n_in=1, input_scaling=0.0)
    params = esn.init(0)
    params = {**params, "W": sp.csr_array(np.array([[0.0, 0.0], [1.0, 0.0]]))}
    base = esn.step(params, np.zeros(2), np.zeros(1))
    kick_u = esn.step(params, np.array([1.0, 0.0]), np.zeros(1))
    kick_v = esn.step(params, np.array([0.0, 1.0]), np.zeros(1))
    assert kick_u[1] != base[1]
    assert kick_v[0] == base[0]


def test_undirected_graph_has_both_directions():
    topo = rc.Topology(nx.path_graph(4))
    m = topo.mask.toarray()
    assert (m == m.T).all() and topo.n_edges == 6


def test_any_hashable_labels_self_loops_isolated_nodes():
    G = nx.DiGraph()
    G.add_nodes_from([("a", 1), frozenset({2}), 3.5, "iso"])
    G.add_edge(("a", 1), frozenset({2}))
    G.add_edge(3.5, 3.5)
    topo = rc.Topology(G)
    assert topo.n_units == 4
    m = topo.mask.toarray()
    assert m[topo.index(3.5), topo.index(3.5)]
    iso = topo.index("iso")
    assert not m[iso].any() and not m[:, iso].any()


def test_nodelist_fixes_order():
    G = nx.DiGraph([(0, 1), (1, 2)])
    topo = rc.Topology(G, nodelist=[2, 1, 0])
    assert topo.nodelist == (2, 1, 0)
    m = topo.mask.toarray()
    assert m[topo.index(1), topo.index(0)] and m[0, 1]  # 1 -> 2 is row 0, column 1


def test_nodelist_must_cover_graph():
    with pytest.raises(ValueError, match="nodelist"):
        rc.Topology(nx.path_graph(3), nodelist=[0, 1])
    with pytest.raises(ValueError, match="nodelist"):
        rc.Topology(nx.path_graph(3), nodelist=[0, 1, 1])


def test_weight_attribute_and_multigraph():
    G = nx.MultiDiGraph()
    G.add_edge("a", "b", weight=2.0)
    G.add_edge("a", "b", weight=0.5)
    G.add_edge("b", "a", weight=-1.0)
    topo = rc.Topology(G)
    A = topo.adjacency("weight").toarray()
    assert A[topo.index("b"), topo.index("a")] == pytest.approx(2.5)
    assert A[topo.index("a"), topo.index("b")] == pytest.approx(-1.0)
    assert topo.adjacency().toarray()[topo.index("b"), topo.index("a")] == 2  # two edges
    assert topo.mask.dtype == bool


def test_roles_from_attributes_and_argument():
    G = nx.DiGraph()
    G.add_node("i", role="input")
    G.add_node("o", role=["output", "visible"])
    G.add_node("h", pool=1)
    G.add_node("g", pool=0)
    G.add_edges_from([("i", "h"), ("h", "o")])
    topo = rc.Topology(G, roles={"hidden": ["h", "g"]})
    assert topo.roles["input"].tolist() == [topo.index("i")]
    assert topo.roles["visible"].tolist() == topo.roles["output"].tolist() == [topo.index("o")]
    assert sorted(topo.roles["hidden"].tolist()) == sorted([topo.index("h"), topo.index("g")])
    assert list(topo.pools) == [0, 1]
    with pytest.raises(ValueError, match="not in the graph"):
        rc.Topology(G, roles={"input": ["nope"]})


def test_bad_graphs():
    with pytest.raises(ValueError, match="empty"):
        rc.Topology(nx.DiGraph())
    with pytest.raises(TypeError, match="networkx graph"):
        rc.Topology(np.eye(3))


def test_sparse_mask_for_large_sparse_graph():
    G = nx.random_regular_graph(10, 10_000, seed=1)
    topo = rc.Topology(G)
    assert sp.issparse(topo.mask) and topo.mask.nnz == 100_000
    assert (topo.in_degree() == 10).all()
