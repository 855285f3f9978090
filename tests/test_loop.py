import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur import metrics, tasks


class _PlainReadout:
    """A readout that is not a recur Readout: forces the generic Python loop."""

    def __init__(self, inner):
        self.inner = inner

    def predict(self, x):
        return self.inner.predict(x)


def _trained(seed, n=100, sparse=None, train=1500):
    rng = np.random.default_rng(seed)
    topo = rc.Topology(nx.gnp_random_graph(n, 0.1, directed=True, seed=seed))
    esn = rc.ESN(topo, leak=0.3, spectral_radius=1.1, input_scaling=0.5, bias_scaling=0.2,
                 n_in=1, sparse=sparse)
    params = esn.init(rng)
    u, y = tasks.next_step(tasks.squash(tasks.mackey_glass(train + 400, rng=rng)))
    H, h = esn.run(params, u[:train])
    readout = rc.Ridge(alpha=1e-7).fit(H[100:], y[100:train])
    return esn, params, readout, h, u[train:]


def test_first_value_is_readout_at_state():
    esn, params, readout, h, _ = _trained(0)
    y = rc.generate(esn, params, readout, h, 5)
    np.testing.assert_allclose(y[0], readout.predict(h))


@pytest.mark.parametrize("sparse", [True, False])
def test_fast_path_equals_step_loop(sparse):
    esn, params, readout, h, _ = _trained(1, sparse=sparse)
    fast, s_fast = rc.generate(esn, params, readout, h, 60, return_state=True)
    slow, s_slow = rc.generate(esn, params, _PlainReadout(readout), h, 60, return_state=True)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s_fast, s_slow, rtol=1e-10, atol=1e-12)


def test_generation_continues_from_returned_state():
    esn, params, readout, h, _ = _trained(2)
    whole = rc.generate(esn, params, readout, h, 50)
    a, s = rc.generate(esn, params, readout, h, 20, return_state=True)
    # The next chunk starts from the state after the last fed-back prediction.
    b = rc.generate(esn, params, readout, s, 30)
    np.testing.assert_allclose(np.vstack([a, b])[:50], whole, atol=1e-12)


def test_closed_loop_continues_mackey_glass():
    # Over seeds, a small ESN continues the series far better than holding the last value.
    errs, hold = [], []
    for seed in range(3):
        esn, params, readout, h, future = _trained(seed, n=150)
        y = rc.generate(esn, params, readout, h, 100)
        errs.append(metrics.nrmse(future[:100], y))
        hold.append(metrics.nrmse(future[:100], np.repeat(future[:1] * 0 + y[:1], 100, 0)))
    assert np.median(errs) < 0.1
    assert np.median(errs) < 0.2 * np.median(hold)


def test_force_learns_sine_in_closed_loop():
    # Sussillo & Abbott: a chaotic network with output feedback learns a periodic signal by
    # RLS on the readout while its own output is fed back, then reproduces it with learning off.
    passed = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n = 200
        topo = rc.Topology(nx.gnp_random_graph(n, 0.1, directed=True, seed=seed))
        esn = rc.ESN(topo, leak=0.1, spectral_radius=1.5, n_in=0, n_out=1, feedback=True,
                     feedback_scaling=2.0)
        params = esn.init(rng)
        period = 60
        t = np.arange(3600)
        target = (np.sin(2 * np.pi * t / period) + 0.5 * np.sin(4 * np.pi * t / period))[:, None] / 1.5
        x0 = rng.uniform(-0.5, 0.5, n)
        readout = rc.Force(alpha=0.1)
        _, x = rc.generate(esn, params, readout, x0, 3000, target=target[:3000], learn_every=2,
                           return_state=True)
        test = rc.generate(esn, params, readout, x, 600)
        passed += metrics.nrmse(target[3000:3600], test) < 0.2
    assert passed >= 2


def test_bad_arguments():
    esn, params, readout, h, _ = _trained(3)
    with pytest.raises(ValueError, match="steps must be > 0"):
        rc.generate(esn, params, readout, h, 0)
    with pytest.raises(rc.NotFittedError):
        rc.generate(esn, params, rc.Ridge(), h, 5)
    with pytest.raises(ValueError, match="state must have"):
        rc.generate(esn, params, readout, h[:5], 5)
    wide = rc.ESN(esn.topology, n_in=2)
    with pytest.raises(ValueError, match="n_in=2"):
        rc.generate(wide, wide.init(0), readout, h, 5)
    with pytest.raises(ValueError, match="feedback=True"):
        rc.generate(esn, params, readout, h, 5, inputs=np.zeros((5, 1)))


def test_generate_checks_the_readout_and_inputs_against_the_network():
    esn, params, readout, h, _ = _trained(4, n=60)
    wide = rc.Ridge().fit(np.hstack([h, h])[None, :], np.zeros((1, 1)))
    with pytest.raises(ValueError, match="features"):
        rc.generate(esn, params, wide, h, 5)
    with pytest.raises(rc.NotFittedError):
        rc.generate(esn, params, rc.Ridge(), np.stack([h, h]), 5)
    with pytest.raises(ValueError, match="u must have shape"):
        esn.step(params, h, np.zeros(3))
