import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc


def _esn(topo, **kw):
    kw = {"leak": 0.4, "spectral_radius": 0.9, "input_scaling": 0.7, "bias_scaling": 0.2,
          "n_in": 2, **kw}
    return rc.ESN(topo, **kw)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_states_equal_reservoirpy(small_topology, sparse, backend):
    from reservoirpy.nodes import Reservoir

    esn = _esn(small_topology, sparse=sparse, backend=backend)
    params = esn.init(3)
    u = np.random.default_rng(0).normal(size=(150, 2))
    states, last = esn.run(params, u)
    W = params["W"]
    res = Reservoir(W=W if sparse else np.asarray(W), Win=params["W_in"], bias=params["b"],
                    lr=esn.leak)
    ref = res.run(u)
    np.testing.assert_allclose(states, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(last, ref[-1], rtol=1e-10, atol=1e-12)


def test_sparse_graph_keeps_sparse_W(small_topology):
    esn = _esn(small_topology)
    params = esn.init(0)
    assert sp.issparse(params["W"]) and params["W"].nnz == small_topology.n_edges
    dense = _esn(rc.Topology(nx.complete_graph(10))).init(0)["W"]
    assert isinstance(dense, np.ndarray)


def test_large_sparse_reservoir_runs_without_densifying():
    topo = rc.Topology(nx.random_regular_graph(10, 10_000, seed=0))
    esn = rc.ESN(topo, leak=0.5, spectral_radius=0.9, n_in=1)
    params = esn.init(0)
    states, _ = esn.run(params, np.ones((20, 1)))
    assert sp.issparse(params["W"]) and params["W"].nnz == 100_000
    assert states.shape == (20, 10_000)


@pytest.mark.parametrize("sparse", [True, False])
def test_batch_equals_sequences(small_topology, sparse):
    esn = _esn(small_topology, sparse=sparse)
    params = esn.init(1)
    u = np.random.default_rng(2).normal(size=(5, 60, 2))
    x0 = np.random.default_rng(3).uniform(-0.5, 0.5, size=(5, 40))
    batch, last = esn.run(params, u, x0)
    assert batch.shape == (5, 60, 40) and last.shape == (5, 40)
    for i in range(5):
        one, _ = esn.run(params, u[i], x0[i])
        np.testing.assert_allclose(batch[i], one, rtol=1e-12, atol=1e-12)


def test_step_matches_run(small_topology):
    esn = _esn(small_topology)
    params = esn.init(4)
    u = np.random.default_rng(5).normal(size=(10, 2))
    states, _ = esn.run(params, u)
    x = esn.initial_state()
    for t in range(10):
        x = esn.step(params, x, u[t])
    np.testing.assert_allclose(x, states[-1], atol=1e-13)


def test_feedback_network(small_topology):
    esn = rc.ESN(small_topology, leak=0.5, n_in=0, n_out=2, feedback=True)
    params = esn.init(0)
    assert params["W_fb"].shape == (40, 2) and params["W_in"].shape == (40, 0)
    fb = np.random.default_rng(1).normal(size=(30, 2))
    states, _ = esn.run(params, feedback=fb)
    x = esn.initial_state()
    for t in range(30):
        x = esn.step(params, x, feedback=fb[t])
    np.testing.assert_allclose(x, states[-1], atol=1e-13)
    with pytest.raises(ValueError, match="feedback is required"):
        esn.run(params)


def test_float32_runs_in_float32(small_topology):
    esn = _esn(small_topology, dtype=np.float32)
    params = esn.init(0)
    assert params["W"].dtype == np.float32 and params["W_in"].dtype == np.float32
    u = np.random.default_rng(0).normal(size=(50, 2))
    states, _ = esn.run(params, u)
    assert states.dtype == np.float32
    ref, _ = _esn(small_topology).run(_esn(small_topology).init(0), u)
    np.testing.assert_allclose(states, ref, atol=1e-4)


def test_different_seeds_differ(small_topology):
    esn = _esn(small_topology)
    assert not np.allclose(esn.init(11)["W_in"], esn.init(12)["W_in"])


def test_bad_hyperparameters(small_topology):
    for leak in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="leak"):
            rc.ESN(small_topology, leak=leak)
    with pytest.raises(TypeError, match="topology"):
        rc.ESN(nx.path_graph(3))
    with pytest.raises(ValueError, match="n_in"):
        rc.ESN(small_topology, n_in=0)
    with pytest.raises(ValueError, match="spectral_radius"):
        rc.ESN(small_topology, spectral_radius=0.0)
    with pytest.raises(ValueError, match="backend"):
        rc.ESN(small_topology, backend="cuda")


def test_bad_inputs(small_topology):
    esn = _esn(small_topology)
    params = esn.init(0)
    with pytest.raises(ValueError, match="inputs must have 2 or 3 dimensions"):
        esn.run(params, np.zeros(10))
    with pytest.raises(ValueError, match="2 channel"):
        esn.run(params, np.zeros((10, 3)))
    bad = np.zeros((10, 2))
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        esn.run(params, bad)
    with pytest.raises(ValueError, match="state must have shape"):
        esn.run(params, np.zeros((10, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="missing 'b'"):
        esn.run({k: v for k, v in params.items() if k != "b"}, np.zeros((10, 2)))


def test_divergence_names_the_step(small_topology):
    esn = _esn(small_topology)
    params = esn.init(0)
    u = np.zeros((20, 2))
    u[12] = 1e308  # finite input whose drive overflows to inf
    with pytest.raises(rc.DivergenceError, match="step 12"):
        esn.run({**params, "W_in": params["W_in"] * 1e10}, u)
