"""Contract checks every network kind must pass, parametrized over the kinds recur has."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc


def _topo():
    return rc.Topology(nx.gnp_random_graph(30, 0.2, directed=True, seed=3))


NETWORKS = {
    "esn-sparse": lambda: rc.ESN(_topo(), leak=0.5, n_in=2, bias_scaling=0.1, sparse=True),
    "esn-dense": lambda: rc.ESN(_topo(), leak=0.5, n_in=2, sparse=False),
    "esn-numpy": lambda: rc.ESN(_topo(), leak=0.5, n_in=2, backend="numpy"),
    "esn-float32": lambda: rc.ESN(_topo(), leak=0.5, n_in=2, dtype=np.float32),
    "esn-feedback": lambda: rc.ESN(_topo(), leak=0.5, n_in=2, n_out=1, feedback=True),
}


def _drive(net, T, batch=None, seed=0):
    rng = np.random.default_rng(seed)
    lead = (T,) if batch is None else (batch, T)
    kw = {"inputs": rng.normal(size=lead + (net.n_in,))} if net.n_in else {}
    if net.feedback:
        kw["feedback"] = rng.normal(size=lead + (net.n_out,))
    return kw


def _arrays(params):
    return {k: (v.toarray() if sp.issparse(v) else np.array(v)) for k, v in params.items()}


@pytest.fixture(params=sorted(NETWORKS))
def net(request):
    return NETWORKS[request.param]()


def test_same_seed_same_params(net):
    a, b = _arrays(net.init(5)), _arrays(net.init(np.random.default_rng(5)))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_no_in_place_mutation(net):
    params = net.init(0)
    before = _arrays(params)
    kw = _drive(net, 25)
    kw_before = {k: v.copy() for k, v in kw.items()}
    state = np.full(net.n_units, 0.1, dtype=net.dtype)
    state_before = state.copy()
    net.run(params, state=state, **kw)
    np.testing.assert_array_equal(state, state_before)
    for k, v in _arrays(params).items():
        np.testing.assert_array_equal(v, before[k])
    for k, v in kw.items():
        np.testing.assert_array_equal(v, kw_before[k])


def test_shapes(net):
    params = net.init(0)
    states, last = net.run(params, **_drive(net, 12))
    assert states.shape == (12, net.n_units) and last.shape == (net.n_units,)
    states, last = net.run(params, **_drive(net, 12, batch=3))
    assert states.shape == (3, 12, net.n_units) and last.shape == (3, net.n_units)
    assert states.dtype == np.dtype(net.dtype)


def test_chunked_run_equals_one_run(net):
    params = net.init(1)
    kw = _drive(net, 40, batch=2)
    full, last = net.run(params, **kw)
    first = {k: v[:, :17] for k, v in kw.items()}
    rest = {k: v[:, 17:] for k, v in kw.items()}
    a, s = net.run(params, **first)
    b, s = net.run(params, state=s, **rest)
    tol = 1e-5 if net.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(np.concatenate([a, b], axis=1), full, atol=tol)
    np.testing.assert_allclose(s, last, atol=tol)


def test_weights_stay_on_graph(net):
    W = net.init(2)["W"]
    dense = W.toarray() if sp.issparse(W) else W
    assert not dense[~net.topology.mask.toarray()].any()
