import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import weights as W


@pytest.fixture
def topo():
    return rc.Topology(nx.gnp_random_graph(60, 0.1, directed=True, seed=4))


@pytest.mark.parametrize("init", [W.normal, W.uniform, W.bernoulli])
def test_initialisers_stay_on_mask(topo, init):
    for mask in (topo.mask, topo.mask.toarray()):
        w = init(mask, rng=1)
        dense = w.toarray() if sp.issparse(w) else w
        assert sp.issparse(w) == sp.issparse(mask)
        assert not dense[~topo.mask.toarray()].any()
        np.testing.assert_array_equal(dense, (init(mask, rng=1).toarray() if sp.issparse(w)
                                              else init(mask, rng=1)))


def test_initialiser_distributions():
    topo = rc.Topology(nx.complete_graph(200, create_using=nx.DiGraph))
    vals = W.uniform(topo, -0.5, 0.5, rng=0).data
    assert vals.min() >= -0.5 and vals.max() < 0.5 and abs(vals.mean()) < 0.01
    vals = W.normal(topo, 2.0, rng=0).data
    assert abs(vals.std() - 2.0) < 0.05
    vals = W.bernoulli(topo, values=(-1.0, 1.0), p=0.25, rng=0).data
    assert set(np.unique(vals)) == {-1.0, 1.0} and abs((vals > 0).mean() - 0.25) < 0.01


@pytest.mark.parametrize("n,density", [(50, 0.2), (800, 0.02)])
@pytest.mark.parametrize("sparse", [True, False])
def test_scale_spectral_radius(n, density, sparse):
    topo = rc.Topology(nx.gnp_random_graph(n, density, directed=True, seed=n))
    w = W.normal(topo.mask if sparse else topo.mask.toarray(), rng=2)
    scaled = W.scale_spectral_radius(w, 1.25)
    dense = scaled.toarray() if sp.issparse(scaled) else scaled
    assert abs(np.abs(np.linalg.eigvals(dense)).max() - 1.25) < 1e-6
    assert sp.issparse(scaled) == sparse


def test_nilpotent_graph_cannot_be_scaled():
    dag = rc.Topology(nx.gn_graph(300, seed=2))  # a random tree: acyclic
    with pytest.raises(ValueError, match="nilpotent"):
        W.scale_spectral_radius(W.normal(dag, rng=0), 0.9)
    chain = rc.Topology(rc.graphs.synfire_chain_graph(5, 10, 1.0, seed=0))
    with pytest.raises(ValueError, match="acyclic"):
        W.scale_spectral_radius(W.normal(chain, rng=0), 0.9)


def test_no_edges_cannot_be_scaled():
    empty = rc.Topology(nx.empty_graph(5, create_using=nx.DiGraph))
    with pytest.raises(ValueError, match="no nonzero"):
        W.scale_spectral_radius(W.normal(empty, rng=0), 0.9)
    with pytest.raises(ValueError, match="spectral_radius"):
        rc.ESN(empty, spectral_radius=0.9).init(0)
    with pytest.raises(ValueError, match="spectral_radius"):
        W.scale_spectral_radius(W.normal(rc.Topology(nx.cycle_graph(4)), rng=0), -1.0)


def test_symmetric_keeps_structure():
    topo = rc.Topology(nx.random_regular_graph(4, 30, seed=1))
    w = W.normal(topo, rng=0)
    s = W.symmetric(w)
    np.testing.assert_array_equal(s.toarray(), s.toarray().T)
    assert ((s.toarray() != 0) == topo.mask.toarray()).all()
    sd = W.symmetric(w.toarray())
    np.testing.assert_allclose(sd, s.toarray())
    with pytest.raises(ValueError, match="symmetric structure"):
        W.symmetric(W.normal(rc.Topology(nx.DiGraph([(0, 1)])), rng=0))


def test_dale_signs_by_column():
    topo = rc.Topology(nx.gnp_random_graph(100, 0.2, directed=True, seed=1))
    w, exc = W.dale(W.normal(topo, rng=0), 0.8, rng=1)
    assert exc.sum() == 80
    d = w.toarray()
    assert (d[:, exc] >= 0).all() and (d[:, ~exc] <= 0).all()
    assert ((d != 0) == topo.mask.toarray()).all()


def test_input_weights():
    w = W.input_weights(50, 3, 0.5, density=0.5, rng=0)
    assert w.shape == (50, 3) and np.abs(w).max() <= 0.5
    assert 0.3 < (w != 0).mean() < 0.7
    with pytest.raises(ValueError, match="distribution"):
        W.input_weights(5, 1, distribution="cauchy")


def test_spectral_radius_of_cycles_and_components():
    # A weighted ring's eigenvalues all share the modulus |prod w|^(1/n): exact, where ARPACK
    # cannot converge and dense solvers lose accuracy for long rings.
    ring = W.normal(rc.Topology(rc.graphs.ring_graph(50)), rng=0)
    expected = np.exp(np.mean(np.log(np.abs(ring.data))))
    assert W.spectral_radius(ring) == pytest.approx(expected, rel=1e-12)
    assert W.spectral_radius(ring) == pytest.approx(
        np.abs(np.linalg.eigvals(ring.toarray())).max(), rel=1e-8)
    long_ring = W.scale_spectral_radius(W.normal(rc.Topology(rc.graphs.ring_graph(3000)), rng=1), 0.9)
    assert np.exp(np.mean(np.log(np.abs(long_ring.data)))) == pytest.approx(0.9, rel=1e-12)
    # Two disjoint components plus an acyclic tail: the radius is the larger component's.
    G = nx.disjoint_union(nx.gnp_random_graph(500, 0.02, directed=True, seed=1),
                          nx.cycle_graph(30, create_using=nx.DiGraph))
    G.add_edges_from((i, 600 + i) for i in range(20))
    w = W.normal(rc.Topology(G), rng=3)
    assert W.spectral_radius(w) == pytest.approx(np.abs(np.linalg.eigvals(w.toarray())).max(),
                                                 rel=1e-8)
