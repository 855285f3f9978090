import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur import metrics


def test_nrmse_and_rmse():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(1000, 2))
    assert metrics.nrmse(y, y) == 0
    assert metrics.nrmse(y, np.broadcast_to(y.mean(0), y.shape)) == pytest.approx(1.0)
    assert metrics.rmse(y, y + 0.5) == pytest.approx(0.5)
    assert metrics.nrmse(y[:, 0], y[:, 0] + 0.1) == pytest.approx(0.1 / y[:, 0].std())
    with pytest.raises(ValueError, match="same shape"):
        metrics.nrmse(y, y[:10])
    with pytest.raises(ValueError, match="constant"):
        metrics.nrmse(np.ones(5), np.zeros(5))


def test_valid_time():
    t = np.arange(200.0)
    truth = np.sin(t / 5)[:, None]
    scale = np.sqrt(np.mean((truth - truth.mean()) ** 2))
    pred = truth.copy()
    pred[120:] += 0.5 * scale  # normalised error 0.5 from step 120 on
    assert metrics.valid_time(truth, pred) == 120
    assert metrics.valid_time(truth, pred, threshold=0.6) == 200
    assert metrics.valid_time(truth, pred, lyapunov_time=40) == pytest.approx(3.0)
    pred[50] = np.nan
    assert metrics.valid_time(truth, pred) == 50


def _cycle_reservoir(n, r, rng):
    """Linear-regime cycle reservoir (Rodan & Tino 2011): tiny inputs keep tanh linear."""
    esn = rc.ESN(rc.Topology(rc.graphs.ring_graph(n)), leak=1.0, spectral_radius=None,
                 n_in=1, sparse=False)
    params = esn.init(rng)
    params["W"] = np.where(params["W"] != 0, r, 0.0)
    params["W_in"] = 1e-4 * np.sign(rng.normal(size=(n, 1)))
    return esn, params


def test_memory_capacity_bounds_over_seeds():
    n = 20
    cycle, random_net = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        u = rng.uniform(-1, 1, (4000, 1))
        esn, params = _cycle_reservoir(n, 0.7, rng)
        H, _ = esn.run(params, u)
        cycle.append(metrics.memory_capacity(H[100:], u[100:], 2 * n, alpha=1e-14))
        net = rc.ESN(rc.Topology(nx.gnp_random_graph(n, 0.3, directed=True, seed=seed)),
                     leak=1.0, spectral_radius=0.9, input_scaling=0.5, n_in=1)
        H, _ = net.run(net.init(rng), u)
        mc, per_delay = metrics.memory_capacity(H[100:], u[100:], 2 * n, return_per_delay=True)
        random_net.append(mc)
        assert per_delay.shape == (2 * n,) and per_delay.min() >= 0 and per_delay.max() <= 1 + 1e-9
        # Memory fades: the first delays are recalled better than the last.
        assert per_delay[:3].mean() > per_delay[-5:].mean()
    assert min(cycle) > 0.85 * n and max(cycle) <= n + 0.5
    assert max(random_net) <= n + 0.5 and min(random_net) > 3
    # States unrelated to the input remember nothing.
    rng = np.random.default_rng(9)
    assert metrics.memory_capacity(rng.normal(size=(3000, n)), rng.uniform(-1, 1, 3000), 10) < 0.5


def test_memory_capacity_bad_input():
    with pytest.raises(ValueError, match="too few"):
        metrics.memory_capacity(np.zeros((50, 3)), np.zeros(50), 40)
    with pytest.raises(ValueError, match="same length"):
        metrics.memory_capacity(np.zeros((50, 3)), np.zeros(40), 4)
