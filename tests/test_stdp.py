"""rules.stdp: pair-based STDP against hand-computed pairs and a brute-force pair sum."""

import numpy as np
import pytest
import scipy.sparse as sp

from recur import kernels
from recur import rules as R
from recur.rules import Evidence, Spikes, SpikeTrains, apply_updates

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]


def _evidence(units, steps, n_units, n_steps, dt=1.0, trials=None, masks=None):
    order = np.argsort(steps, kind="stable")
    units, steps = np.asarray(units)[order], np.asarray(steps)[order]
    if trials is not None:
        trials = np.asarray(trials)[order]
    st = SpikeTrains(units=units, steps=steps, n_units=n_units, n_steps=n_steps, dt=dt,
                     trials=trials, masks=masks or {})
    return Evidence(loss=0.0, results={Spikes(): st})


def _update(rule, W, ev, state=None):
    params = {"W": W}
    state = rule.init(params) if state is None else state
    return rule.update(ev, state, params)


def _brute_force(units, steps, trials, mask, dt, a_plus, a_minus, tau_plus, tau_minus):
    """Every pair of the same trial, one at a time (O(spikes^2))."""
    n = mask.shape[0]
    dW = np.zeros((n, n))
    trials = np.zeros(len(units), int) if trials is None else trials
    for post_u, post_t, post_b in zip(units, steps, trials):
        for pre_u, pre_t, pre_b in zip(units, steps, trials):
            if post_b != pre_b or not mask[post_u, pre_u]:
                continue
            lag = (post_t - pre_t) * dt
            if lag > 0:
                dW[post_u, pre_u] += a_plus * np.exp(-lag / tau_plus)
            else:
                dW[post_u, pre_u] -= a_minus * np.exp(lag / tau_minus)
    return dW


def _random_spikes(rng, n_units, n_steps, rate, n_trials=1):
    spikes = rng.random((n_trials, n_steps, n_units)) < rate
    b, t, u = np.nonzero(spikes)
    return u, t, b


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_pairs(backend):
    # unit 0 fires at 1.0 and 3.0 ms, unit 1 at 2.0 ms (dt = 0.5 ms); edges 0 -> 1 and 1 -> 0.
    a_plus, a_minus, tau_plus, tau_minus = 0.8, 0.3, 5.0, 10.0
    W = sp.csr_array(np.array([[0.0, 0.2], [0.4, 0.0]]))
    ev = _evidence([0, 1, 0], [2, 4, 6], n_units=2, n_steps=8, dt=0.5)
    u, _ = _update(R.stdp(a_plus, a_minus, tau_plus, tau_minus, backend=backend), W, ev)
    # W[1, 0] (0 -> 1): pre 1.0 -> post 2.0 potentiates; pre 3.0 after post 2.0 depresses.
    expect_10 = a_plus * np.exp(-1.0 / tau_plus) - a_minus * np.exp(-1.0 / tau_minus)
    # W[0, 1] (1 -> 0): post 3.0 after pre 2.0 potentiates; post 1.0 before pre 2.0 depresses.
    expect_01 = a_plus * np.exp(-1.0 / tau_plus) - a_minus * np.exp(-1.0 / tau_minus)
    np.testing.assert_allclose(u["W"].toarray(), [[0.0, expect_01], [expect_10, 0.0]],
                               rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_step_pair_depresses_by_a_minus(backend):
    W = np.array([[0.0, 1.0], [1.0, 0.0]])
    ev = _evidence([0, 1], [3, 3], n_units=2, n_steps=5)
    u, _ = _update(R.stdp(1.0, 0.25, 10.0, 10.0, backend=backend), W, ev)
    np.testing.assert_allclose(u["W"], [[-0.25, -0.25], [-0.25, -0.25]], rtol=1e-12)


def test_window_shape_recovered_from_isolated_pairs():
    # One pre/post pair per trial at lags -30 .. 30 steps; trials do not interact, so
    # W[1, 0] sums the window over all lags and each single-trial run reads one lag.
    a_plus, a_minus, tau_plus, tau_minus, dt = 0.01, 0.012, 17.0, 34.0, 0.5
    rule = R.stdp(a_plus, a_minus, tau_plus, tau_minus)
    W = sp.csr_array(np.array([[0.0, 0.0], [0.5, 0.0]]))
    lags = np.arange(-30, 31)
    measured = []
    for lag in lags:
        t_pre = 40
        ev = _evidence([0, 1], [t_pre, t_pre + lag], n_units=2, n_steps=100, dt=dt)
        u, _ = _update(rule, W, ev)
        measured.append(u["W"].data[0])
    ms = lags * dt
    window = np.where(ms > 0, a_plus * np.exp(-ms / tau_plus),
                      -a_minus * np.exp(ms / tau_minus))
    np.testing.assert_allclose(measured, window, rtol=1e-12, atol=1e-15)
    # Recover the time constants from the log-slope of each side.
    pos, neg = ms > 0, ms < 0
    slope_plus = np.polyfit(ms[pos], np.log(np.array(measured)[pos]), 1)[0]
    slope_minus = np.polyfit(ms[neg], np.log(-np.array(measured)[neg]), 1)[0]
    assert slope_plus == pytest.approx(-1.0 / tau_plus, rel=1e-9)
    assert slope_minus == pytest.approx(1.0 / tau_minus, rel=1e-9)
    # The same pairs as trials of one run: the sum of the window.
    trials = np.repeat(np.arange(lags.size), 2)
    units = np.tile([0, 1], lags.size)
    steps = np.stack([np.full(lags.size, 40), 40 + lags], axis=1).ravel()
    ev = _evidence(units, steps, n_units=2, n_steps=100, dt=dt, trials=trials)
    u, _ = _update(rule, W, ev)
    assert u["W"].data[0] == pytest.approx(window.sum(), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparse", [True, False])
def test_matches_brute_force_pair_sum(sparse, backend):
    rng = np.random.default_rng(5)
    n, T, n_trials, dt = 12, 60, 3, 0.25
    mask = rng.random((n, n)) < 0.4
    W = rng.random((n, n)) * mask
    units, steps, trials = _random_spikes(rng, n, T, 0.08, n_trials)
    hp = (0.7, 0.45, 3.0, 5.0)
    rule = R.stdp(*hp, backend=backend)
    if sparse:
        Ws = sp.csr_array(W)
        Ws.sort_indices()
        u, _ = _update(rule, Ws, _evidence(units, steps, n, T, dt, trials))
        got = u["W"]
        assert np.array_equal(got.indptr, Ws.indptr) and np.array_equal(got.indices, Ws.indices)
        got = got.toarray()
        mask = Ws.toarray() != 0
    else:
        u, _ = _update(rule, W, _evidence(units, steps, n, T, dt, trials, {"W": mask}))
        got = u["W"]
        assert np.all(got[~mask] == 0.0)
    expect = _brute_force(units, steps, trials, mask, dt, *hp)
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12)


def test_dense_without_mask_updates_every_entry():
    rng = np.random.default_rng(1)
    n, T = 5, 30
    units, steps, _ = _random_spikes(rng, n, T, 0.2)
    u, _ = _update(R.stdp(0.5, 0.5, 2.0, 2.0), np.zeros((n, n)), _evidence(units, steps, n, T))
    expect = _brute_force(units, steps, None, np.ones((n, n), bool), 1.0, 0.5, 0.5, 2.0, 2.0)
    np.testing.assert_allclose(u["W"], expect, rtol=1e-10, atol=1e-12)


@needs_numba
def test_backends_agree_on_updates_and_traces():
    rng = np.random.default_rng(8)
    n, T, n_trials = 50, 400, 4
    W = sp.csr_array(rng.random((n, n)) * (rng.random((n, n)) < 0.2))
    units, steps, trials = _random_spikes(rng, n, T, 0.03, n_trials)
    ev = _evidence(units, steps, n, T, 0.1, trials)
    out = {}
    for backend in ("numpy", "numba"):
        rule = R.stdp(0.01, 0.012, 17.0, 34.0, backend=backend)
        u, state = _update(rule, W, ev)
        # a second chunk starting from the carried traces
        u2, state = _update(rule, W, ev, state)
        out[backend] = (u["W"].data, u2["W"].data, state["W"]["pre"], state["W"]["post"])
    for a, b in zip(out["numpy"], out["numba"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_trials_interact_only_with_themselves():
    rng = np.random.default_rng(2)
    n, T = 8, 40
    W = sp.csr_array(rng.random((n, n)) * (rng.random((n, n)) < 0.5))
    rule = R.stdp(1.0, 1.1, 4.0, 4.0)
    units, steps, trials = _random_spikes(rng, n, T, 0.1, n_trials=2)
    together, _ = _update(rule, W, _evidence(units, steps, n, T, trials=trials))
    apart = sum(_update(rule, W, _evidence(units[trials == b], steps[trials == b], n, T))[0][
        "W"].data for b in range(2))
    np.testing.assert_allclose(together["W"].data, apart, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cuts", [(1,), (17, 18, 40), (5, 33, 59)])
def test_chunked_run_gives_the_one_run_update(cuts, backend):
    rng = np.random.default_rng(3)
    n, T, n_trials = 10, 60, 2
    W = sp.csr_array(rng.random((n, n)) * (rng.random((n, n)) < 0.5))
    rule = R.stdp(0.6, 0.5, 6.0, 9.0, backend=backend)
    units, steps, trials = _random_spikes(rng, n, T, 0.1, n_trials)
    whole, _ = _update(rule, W, _evidence(units, steps, n, T, 0.5, trials))
    edges = (0, *cuts, T)
    total = np.zeros(W.nnz)
    state = rule.init({"W": W})
    for t0, t1 in zip(edges[:-1], edges[1:]):
        sel = (steps >= t0) & (steps < t1)
        # The last trial may be silent in a chunk: the trial count comes from the state.
        ev = _evidence(units[sel], steps[sel] - t0, n, t1 - t0, 0.5, trials[sel])
        u, state = _update(rule, W, ev, state)
        total += u["W"].data
    np.testing.assert_allclose(total, whole["W"].data, rtol=1e-10, atol=1e-12)


def test_chunked_through_train_matches_one_run():
    """recur.train threads the rule state across chunks of a stream."""
    from recur.loop import train

    rng = np.random.default_rng(4)
    n, T = 6, 80
    units, steps, _ = _random_spikes(rng, n, T, 0.15)
    W = sp.csr_array(np.ones((n, n)) - np.eye(n))

    class Replay:
        """A stand-in network that replays fixed spikes, chunk by chunk."""

        def collect(self, params, data, requires, *, state=None, rng=None):
            t0, t1 = data
            sel = (steps >= t0) & (steps < t1)
            return _evidence(units[sel], steps[sel] - t0, n, t1 - t0)

        def constrain(self, params):
            return params

        def loss(self, params, data, state=None):
            return 0.0

    rule = R.stdp(0.01, 0.01, 5.0, 5.0)
    chunks = [(0, 30), (30, 55), (55, 80)]
    p, _ = train(Replay(), {"W": W}, rule, chunks, epochs=3, progress=False)
    whole, _ = _update(rule, W, _evidence(units, steps, n, T))
    np.testing.assert_allclose(p["W"].data - W.data, whole["W"].data, rtol=1e-10, atol=1e-13)


def test_bounds_and_graph_kept_with_caps():
    rng = np.random.default_rng(6)
    n, T, w_max = 20, 50, 0.3
    mask = (rng.random((n, n)) < 0.3) & ~np.eye(n, dtype=bool)
    for sparse in (True, False):
        W = rng.random((n, n)) * 0.2 * mask
        W = sp.csr_array(W) if sparse else W
        rule = R.chain(R.stdp(0.05, 0.04, 5.0, 5.0, w_max=w_max),
                       R.heterosynaptic_cap(max_in=0.6, max_out=0.6))
        params, state = {"W": W}, None
        state = rule.init(params)
        for _ in range(15):
            units, steps, _ = _random_spikes(rng, n, T, 0.2)
            ev = _evidence(units, steps, n, T, masks={"W": mask})
            u, state = rule.update(ev, state, params)
            params = apply_updates(params, u)
            dense = params["W"].toarray() if sparse else params["W"]
            assert dense.min() >= 0.0 and dense.max() <= w_max + 1e-12
            assert np.all(dense[~mask] == 0.0)
            assert dense.sum(axis=1).max() <= 0.6 + 1e-9
            assert dense.sum(axis=0).max() <= 0.6 + 1e-9
        if sparse:
            assert np.array_equal(params["W"].indices, W.indices)


def test_w_max_lands_on_bounds():
    W = sp.csr_array(np.array([[0.0, 0.95], [0.02, 0.0]]))
    # unit 1 drives unit 0 (potentiate W[0, 1]); unit 0 fires after unit 1 many times
    ev = _evidence([1, 0, 1, 0, 1, 0], [0, 1, 10, 11, 20, 21], 2, 30)
    u, _ = _update(R.stdp(1.0, 1.0, 5.0, 5.0, w_max=1.0), W, ev)
    new = (W + u["W"]).toarray()
    assert new[0, 1] == pytest.approx(1.0)
    assert new[1, 0] == pytest.approx(0.0)


def test_bad_input():
    with pytest.raises(ValueError, match="a_plus"):
        R.stdp(-1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="tau_minus"):
        R.stdp(1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="w_max"):
        R.stdp(1.0, 1.0, 1.0, 1.0, w_max=-2.0)
    with pytest.raises(TypeError, match="params"):
        R.stdp(1.0, 1.0, 1.0, 1.0, params=[1])
    with pytest.raises(ValueError, match="backend"):
        R.stdp(1.0, 1.0, 1.0, 1.0, backend="gpu")
    rule = R.stdp(1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="square"):
        rule.init({"W": np.zeros((3, 2))})
    W = np.zeros((3, 3))
    with pytest.raises(ValueError, match="units must lie"):
        _update(rule, W, _evidence([5], [0], 3, 4))
    with pytest.raises(ValueError, match="steps must lie"):
        _update(rule, W, _evidence([0], [4], 3, 4))
    with pytest.raises(ValueError, match="spike trains come from 4"):
        _update(rule, W, _evidence([0], [1], 4, 4))
    with pytest.raises(TypeError, match="SpikeTrains"):
        rule.update(Evidence(0.0, {Spikes(): "raster"}), rule.init({"W": W}), {"W": W})
    _, state = _update(rule, W, _evidence([0], [3], 3, 4, dt=1.0))
    with pytest.raises(ValueError, match="time step changed"):
        _update(rule, W, _evidence([0], [1], 3, 4, dt=0.5), state)
    assert rule.requires == Spikes()
    assert rule.hparams["tau_plus"] == 1.0


def test_on_a_spiking_net_raster():
    """A binary SpikingNet relays unit 0's imposed spikes to unit 1 one step later; the
    update is the all-to-all sum over the four pairs."""
    import networkx as nx

    import recur as rc
    from recur.networks.spiking import SpikeDrive

    G = nx.DiGraph([(0, 1)])
    net = rc.SpikingNet(rc.Topology(G), model="binary", dt=1.0, theta=1.0, delay=1.0,
                        weight=1.0)
    params = net.init(0)
    drive = SpikeDrive(units=np.array([0, 0]), steps=np.array([2, 10]), n_units=2, dt=1.0)
    evidence = net.collect(params, {"duration": 20.0, "drive": drive}, Spikes(), rng=0)
    a_plus, a_minus, tau_plus, tau_minus = 0.1, 0.12, 4.0, 6.0
    rule = R.stdp(a_plus, a_minus, tau_plus, tau_minus)
    u, _ = rule.update(evidence, rule.init(params), params)
    # post 3 <- pre 2 (+1 ms), post 3 vs pre 10 (-7 ms), post 11 <- pre 2 (+9), 11 <- 10 (+1)
    expect = (2 * a_plus * np.exp(-1 / tau_plus) + a_plus * np.exp(-9 / tau_plus)
              - a_minus * np.exp(-7 / tau_minus))
    assert u["W"].nnz == 1
    assert u["W"].data[0] == pytest.approx(expect, rel=1e-12)


def test_a_trial_silent_in_the_first_chunk_still_chunks_like_one_run():
    # Trial 2 fires only in the second chunk: the first chunk's raster shows 2 trials, the
    # second 3; the carried traces grow with zeros for the trial that had not fired yet.
    n, dt = 4, 1.0
    W = sp.csr_array(np.ones((n, n)) - np.eye(n))
    rule = R.stdp(0.5, 0.4, 5.0, 7.0)
    units = np.array([0, 1, 2, 3, 0, 1, 2])
    steps = np.array([1, 2, 3, 12, 13, 14, 15])
    trials = np.array([0, 1, 0, 1, 2, 2, 0])
    whole, _ = _update(rule, W, _evidence(units, steps, n, 20, dt, trials))
    state = rule.init({"W": W})
    total = np.zeros(W.nnz)
    for t0, t1 in ((0, 10), (10, 20)):
        sel = (steps >= t0) & (steps < t1)
        u, state = _update(rule, W, _evidence(units[sel], steps[sel] - t0, n, t1 - t0, dt,
                                              trials[sel]), state)
        total += u["W"].data
    np.testing.assert_allclose(total, whole["W"].data, rtol=1e-12, atol=1e-14)
