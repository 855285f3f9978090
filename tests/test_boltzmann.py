"""Boltzmann machine: exact enumeration, Gibbs samplers against it, phases, bad input."""

import itertools

import networkx as nx
import numpy as np
import pytest
from scipy.special import logsumexp

import recur as rc
from recur import kernels
from recur import rules as R


def _general(T=1.0, backend="auto", **kw):
    """8 units, 4 visible, a random graph with visible-visible and hidden-hidden edges."""
    G = nx.gnp_random_graph(8, 0.5, seed=2)
    return rc.Boltzmann(rc.Topology(G), visible=[0, 1, 2, 3], temperature=T, backend=backend,
                        **kw)


def _rbm(n_v=4, n_h=3, T=1.0, **kw):
    return rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(n_v, n_h, seed=0)),
                        temperature=T, **kw)


def _params(net, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    p = rc.Boltzmann(net.topology, visible=[net.topology.nodelist[i]
                                            for i in net.visible_units],
                     init_scale=scale).init(rng)
    p["b"] = rng.normal(0.0, 0.7, net.n_units)
    return p


def _exact(net, p):
    """Every state, its probability, and the exact moments."""
    S = np.array(list(itertools.product([0.0, 1.0], repeat=net.n_units)))
    logw = -net.energy(p, S) / net.temperature
    w = np.exp(logw - logsumexp(logw))
    return S, logw, w


def _moments(S, w):
    return (w[:, None] * S).sum(0), np.einsum("s,si,sj->ij", w, S, S)


# -- exact enumeration ---------------------------------------------------------------------

@pytest.mark.parametrize("make", [_general, _rbm,
                                  lambda T=1.0: rc.Boltzmann(rc.Topology(nx.complete_graph(5)),
                                                             visible=range(5), temperature=T)])
@pytest.mark.parametrize("T", [0.6, 1.0, 2.5])
def test_enumeration_matches_brute_force(make, T):
    net = make(T=T)
    p = _params(net, seed=3)
    S, logw, w = _exact(net, p)
    assert net.log_partition(p) == pytest.approx(logsumexp(logw), abs=1e-10)
    vis = net.visible_units
    V = np.array(list(itertools.product([0.0, 1.0], repeat=vis.size)))
    brute = np.array([logsumexp(logw[(S[:, vis] == v).all(1)]) for v in V]) - logsumexp(logw)
    np.testing.assert_allclose(net.visible_log_probs(p, V), brute, atol=1e-10)
    assert np.exp(net.visible_log_probs(p, V)).sum() == pytest.approx(1.0, abs=1e-12)


def test_rbm_enumerates_only_the_smaller_layer():
    assert _rbm(16, 16).enumerated_units() == 16
    assert _rbm(4, 20).enumerated_units() == 4
    assert _rbm(20, 6).enumerated_units() == 6
    # the hidden sum given the visible units is analytic for an RBM
    assert _rbm(16, 16).enumerated_units(conditional=True) == 0


def test_bas_4x4_log_likelihood_is_exact_and_fast():
    data = rc.tasks.bars_and_stripes(4)
    net = _rbm(16, 16)
    p = net.init(0)
    p["W"] = p["W"] * 50  # weights of a few tenths
    p["b"] = np.random.default_rng(1).normal(0, 0.3, net.n_units)
    import time
    t = time.perf_counter()
    ll = rc.metrics.log_likelihood(net, p, data)
    assert time.perf_counter() - t < 1.0
    # cross-check log Z summing the other layer: W -> W^T swaps the roles of the layers
    flipped = _rbm(16, 16)
    n = 16
    perm = np.r_[np.arange(n, 2 * n), np.arange(n)]
    q = {"W": p["W"][np.ix_(perm, perm)], "b": p["b"][perm]}
    assert flipped.log_partition(q) == pytest.approx(net.log_partition(p), rel=1e-12)
    assert ll <= -np.log(len(data)) + 1e-9


def test_kl_divergence_and_log_likelihood():
    net = _general()
    p = _params(net, seed=4)
    data = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 1, 1]], dtype=float)
    lp = net.visible_log_probs(p, data)
    assert rc.metrics.log_likelihood(net, p, data) == pytest.approx(lp.mean())
    q = np.array([2 / 3, 1 / 3])
    expected = np.sum(q * (np.log(q) - lp[[0, 2]]))
    assert rc.metrics.kl_divergence(net, p, data) == pytest.approx(expected)


# -- sampling ------------------------------------------------------------------------------

def _check_moments(samples, mean, corr, n_chains):
    """Sampled means and pairwise products within 5 standard errors of the exact ones.

    Each chain contributes one (time-averaged) value, so chains are the independent units:
    the standard error is at most sqrt(p (1 - p) / n_chains)."""
    chain_mean = samples.mean(axis=1)
    chain_corr = np.einsum("ctu,ctv->cuv", samples, samples) / samples.shape[1]
    for got, want in ((chain_mean.mean(0), mean), (chain_corr.mean(0), corr)):
        se = np.sqrt(np.maximum(want * (1 - want), 0.01) / n_chains)
        assert np.all(np.abs(got - want) < 5 * se), np.max(np.abs(got - want) / se)


@pytest.mark.parametrize("make", [_general, _rbm])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gibbs_moments_match_exact_enumeration(make, seed):
    net = make(T=0.8, burn_in=30, sample_sweeps=4)
    p = _params(net, seed=seed)
    S, _, w = _exact(net, p)
    samples, _ = net.sample(p, 1500, rng=seed)
    _check_moments(samples, *_moments(S, w), 1500)


@pytest.mark.parametrize("seed", [0, 1])
def test_clamped_sampling_matches_exact_conditional(seed):
    net = _general(T=1.3, burn_in=30, sample_sweeps=4)
    p = _params(net, seed=seed + 10)
    S, _, w = _exact(net, p)
    v = np.array([1.0, 0.0, 1.0, 1.0])
    sel = (S[:, net.visible_units] == v).all(1)
    Sc, wc = S[sel], w[sel] / w[sel].sum()
    samples, _ = net.sample(p, visible=np.tile(v, (1500, 1)), rng=seed)
    assert np.all(samples[:, :, net.visible_units] == v)
    _check_moments(samples, *_moments(Sc, wc), 1500)


def test_blocked_and_sequential_samplers_agree_on_an_rbm():
    blocked = _rbm(5, 4, T=1.0, burn_in=30, sample_sweeps=4)
    sequential = _rbm(5, 4, T=1.0, burn_in=30, sample_sweeps=4, sampler="sequential")
    assert blocked.uses_blocked_sampler and not sequential.uses_blocked_sampler
    for seed in (5, 6, 7):
        p = _params(blocked, seed=seed)
        a, _ = blocked.sample(p, 2000, rng=seed)
        b, _ = sequential.sample(p, 2000, rng=seed + 100)
        ma, mb = a.mean(axis=1), b.mean(axis=1)
        se = np.sqrt(ma.var(0) / 2000 + mb.var(0) / 2000)
        assert np.all(np.abs(ma.mean(0) - mb.mean(0)) < 5 * se + 1e-3)


def test_temperature_divides_the_energy():
    hot = _general(T=2.0)
    cold = _general(T=1.0)
    p = _params(hot, seed=6)
    half = {"W": p["W"] / 2, "b": p["b"] / 2}
    V = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    np.testing.assert_allclose(hot.visible_log_probs(p, V), cold.visible_log_probs(half, V),
                               atol=1e-12)
    # sampling at temperature T samples exp(-E/T)
    a, _ = hot.run(p, 40, state=np.zeros((2000, 8)), rng=0)
    b, _ = cold.run(p, 40, state=np.zeros((2000, 8)), temperature=2.0, rng=0)
    np.testing.assert_array_equal(a, b)
    S, _, w = _exact(hot, p)
    mean, _ = _moments(S, w)
    got = a[:, 20:].mean(axis=(0, 1))
    assert np.all(np.abs(got - mean) < 5 * np.sqrt(mean * (1 - mean) / 2000) + 1e-3)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
def test_numba_and_numpy_sequential_samplers_give_the_same_samples():
    p = _params(_general(), seed=7)
    a, sa = _general(backend="numba").sample(p, 50, rng=3)
    b, sb = _general(backend="numpy").sample(p, 50, rng=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("k,persistent", [(1, False), (3, False), (2, True)])
def test_fused_rbm_step_numba_and_numpy_agree(k, persistent):
    from recur.networks import boltzmann_sampling as bs

    rng = np.random.default_rng(k)
    V, H = 7, 5
    W = np.zeros((V + H, V + H))
    W[V:, :V] = rng.normal(0.0, 1.0, (H, V))
    W[:V, V:] = W[V:, :V].T
    b = rng.normal(0.0, 0.5, V + H)
    data = (rng.random((9, V)) < 0.5).astype(float)
    start = (rng.random((6, V)) < 0.5).astype(float) if persistent else data
    a = bs.rbm_phases(W, b, data, start, k, 1.3, np.random.default_rng(4), (0, V),
                      backend="numba")
    c = bs.rbm_phases(W, b, data, start, k, 1.3, np.random.default_rng(4), (0, V),
                      backend="numpy")
    for x, y in zip(a[:3], c[:3]):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    assert abs(a[3] - c[3]) < 1e-12
    mask = W != 0
    for rows, ma, mc in ((a[0], a[4], c[4]), (a[1], a[5], c[5])):
        for key in ("W", "b"):
            np.testing.assert_allclose(ma[key], mc[key], rtol=1e-12, atol=1e-14)
        # The moments are the means of the rows the same pass returned, on the graph.
        np.testing.assert_allclose(ma["W"], np.where(mask, rows.T @ rows / len(rows), 0.0),
                                   atol=1e-13)
        np.testing.assert_allclose(ma["b"], rows.mean(axis=0), atol=1e-13)


@pytest.mark.parametrize("k,persistent", [(1, False), (2, False), (2, True)])
def test_fused_rbm_step_equals_the_general_blocked_path(k, persistent):
    # The same RBM with its node order interleaved (visible and hidden units not contiguous)
    # takes the general path; both must draw the same samples and report the same loss.
    n_v, n_h = 6, 4
    G = rc.graphs.bipartite_graph(n_v, n_h, seed=0)
    fused = rc.Boltzmann(rc.Topology(G), loss_kind="reconstruction")
    vis = [v for v in G if G.nodes[v].get("role") == "visible"]
    hid = [h for h in G if h not in vis]
    order = [x for pair in itertools.zip_longest(vis, hid) for x in pair if x is not None]
    general = rc.Boltzmann(rc.Topology(G, nodelist=order), loss_kind="reconstruction")
    assert not isinstance(general._cache["vs"], slice)
    p = _params(fused, seed=3, scale=0.8)
    perm = [fused.topology.index(x) for x in order]  # general's unit i is fused's perm[i]
    q = {"W": p["W"][np.ix_(perm, perm)], "b": p["b"][perm]}
    data = (np.random.default_rng(1).random((8, n_v)) < 0.5).astype(float)
    req = R.WakeSleep(mode="cd", k=k, persistent=persistent, n_chains=5 if persistent else None)
    chains = (np.random.default_rng(2).random((5, n_v + n_h)) < 0.5).astype(float)
    ea = fused.collect(p, data, req, rng=7, state=chains if persistent else None)
    eb = general.collect(q, data, req, rng=7, state=chains[:, perm] if persistent else None)
    for phase in ("nudged", "free"):
        ta, tb = getattr(ea[req], phase), getattr(eb[req], phase)
        np.testing.assert_allclose(ta.post["W"][:, perm], tb.post["W"], atol=1e-12)
    assert abs(ea.loss - eb.loss) < 1e-12
    assert abs(ea.loss - fused.loss(p, data)) < 1e-12
    if persistent:
        np.testing.assert_array_equal(ea.state[:, perm], eb.state)


def test_run_and_step_shapes():
    net = _general()
    p = _params(net)
    states, last = net.run(p, 5, rng=0)
    assert states.shape == (5, 8) and last.shape == (8,)
    states, last = net.run(p, 5, state=np.zeros((3, 8)), rng=0)
    assert states.shape == (3, 5, 8) and last.shape == (3, 8)
    one = net.step(p, np.zeros(8), visible=np.ones(4), rng=0)
    assert one.shape == (8,) and np.all(one[net.visible_units] == 1)
    assert set(np.unique(states)) <= {0.0, 1.0}


def test_mean_field_is_a_fixed_point():
    net = _general(T=1.5)
    p = _params(net, seed=8)
    m = net.mean_field(p, n_chains=1)
    np.testing.assert_allclose(m, 1 / (1 + np.exp(-(m @ p["W"].T + p["b"]) / 1.5)), atol=1e-5)
    v = np.array([[1.0, 0, 0, 1], [0, 1, 1, 0]])
    mc = net.mean_field(p, v)
    np.testing.assert_array_equal(mc[:, net.visible_units], v)
    h = net.hidden_units
    want = 1 / (1 + np.exp(-(mc @ p["W"].T + p["b"]) / 1.5))
    np.testing.assert_allclose(mc[:, h], want[:, h], atol=1e-5)


# -- parameters, collect -------------------------------------------------------------------

def test_init_is_symmetric_on_the_graph_and_deterministic():
    net = _general(init_scale=0.5)
    p, q = net.init(3), net.init(np.random.default_rng(3))
    np.testing.assert_array_equal(p["W"], q["W"])
    np.testing.assert_array_equal(p["W"], p["W"].T)
    assert not p["W"][~net.mask].any() and not np.diag(p["W"]).any()
    bad = {**p, "W": p["W"] + np.triu(np.ones((8, 8)))}
    fixed = net.constrain(bad)["W"]
    np.testing.assert_array_equal(fixed, fixed.T)
    assert not fixed[~net.mask].any()
    assert net.constrain(p) is p


def test_roles_come_from_the_topology():
    net = _rbm(4, 3)
    np.testing.assert_array_equal(net.visible_units, [0, 1, 2, 3])
    np.testing.assert_array_equal(net.hidden_units, [4, 5, 6])
    assert net.is_rbm
    assert not _general().is_rbm


@pytest.mark.parametrize("mode,kw", [("chl", {}), ("cd", {"k": 2}),
                                     ("cd", {"persistent": True, "n_chains": 5}),
                                     ("mean_field", {})])
@pytest.mark.parametrize("make", [_general, _rbm])
def test_collect_returns_wake_and_sleep_phases(make, mode, kw):
    net = make(burn_in=2, sample_sweeps=3)
    p = _params(net, scale=0.3)
    data = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], dtype=float)
    before = {k: v.copy() for k, v in p.items()}
    data_before = data.copy()
    req = R.WakeSleep(mode=mode, **kw)
    e1 = net.collect(p, data, req, rng=4)
    e2 = net.collect(p, data, req, rng=4)
    phases = e1[req]
    for trace in (phases.nudged, phases.free):
        s = trace.post["W"]
        assert s.shape[1] == net.n_units and np.all((s >= 0) & (s <= 1))
        np.testing.assert_array_equal(trace.pre["W"], s)
        assert trace.pre["b"].shape == (s.shape[0], 1)
    wake = phases.nudged.post["W"].reshape(-1, len(data), net.n_units)  # (sweeps, P, N)
    np.testing.assert_array_equal(wake[:, :, net.visible_units],
                                  np.broadcast_to(data, wake[:, :, net.visible_units].shape))
    np.testing.assert_array_equal(phases.free.post["W"], e2[req].free.post["W"])
    assert e1.loss == e2.loss == pytest.approx(net.loss(p, data))
    if kw.get("persistent"):
        assert e1.state.shape == (5, net.n_units)
        e3 = net.collect(p, data, req, state=e1.state, rng=5)
        assert e3.state.shape == (5, net.n_units)
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])
    np.testing.assert_array_equal(data, data_before)


def test_loss_is_the_exact_nll_on_small_networks():
    net = _rbm(4, 3)
    p = _params(net)
    data = np.array([[1, 0, 1, 0], [0, 1, 1, 1]], dtype=float)
    assert net.loss(p, data) == pytest.approx(-rc.metrics.log_likelihood(net, p, data))
    big = _rbm(16, 16)
    rec = big.loss(big.init(0), rc.tasks.bars_and_stripes(4))
    assert 0.2 < rec < 0.3  # reconstruction error near 1/4 at tiny weights


# -- bad input -----------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    G = nx.path_graph(4)
    with pytest.raises(ValueError, match="visible"):
        rc.Boltzmann(rc.Topology(G))
    with pytest.raises(ValueError, match="not in the graph"):
        rc.Boltzmann(rc.Topology(G), visible=[7])
    for T in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            rc.Boltzmann(rc.Topology(G), visible=[0], temperature=T)
    with pytest.raises(ValueError, match="anneal temperature"):
        rc.Boltzmann(rc.Topology(G), visible=[0], anneal=((2, 0.0),))
    with pytest.raises(ValueError, match="anneal"):
        rc.Boltzmann(rc.Topology(G), visible=[0], anneal=((2, 1.0, 3),))
    with pytest.raises(ValueError, match="clamp_noise"):
        rc.Boltzmann(rc.Topology(G), visible=[0], clamp_noise=(1.5, 0))
    with pytest.raises(ValueError, match="blocked"):
        rc.Boltzmann(rc.Topology(nx.complete_graph(4)), visible=[0, 1], sampler="blocked")
    big = rc.Boltzmann(rc.Topology(nx.complete_graph(23)), visible=range(3))
    with pytest.raises(ValueError, match="max_units=20"):
        big.log_partition(big.init(0))
    with pytest.raises(ValueError, match="max_units=20"):
        rc.metrics.log_likelihood(big, big.init(0), np.zeros((1, 3)))
    net = _rbm(4, 3)
    p = net.init(0)
    with pytest.raises(ValueError, match="0/1"):
        net.collect(p, np.full((2, 4), 0.5), R.WakeSleep())
    with pytest.raises(ValueError, match="4 columns"):
        net.collect(p, np.zeros((2, 5)), R.WakeSleep())
    with pytest.raises(NotImplementedError, match="Activity"):
        net.collect(p, np.zeros((2, 4)), R.Activity())
    with pytest.raises(ValueError, match="shape"):
        net.collect({"W": np.zeros((3, 3)), "b": np.zeros(7)}, np.zeros((2, 4)),
                    R.WakeSleep())
    with pytest.raises(ValueError, match="temperature"):
        net.run(p, 3, temperature=0.0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_is_binary_refuses_anything_but_zero_and_one(backend):
    from recur.networks import boltzmann_sampling as bs

    if backend == "numba" and not kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    x = (np.random.default_rng(0).random((5, 6)) < 0.5).astype(float)
    assert bs.is_binary(x, backend=backend) and bs.is_binary(x.T, backend=backend)
    for bad in (0.5, -1.0, 2.0, np.nan, np.inf, -0.0 + 1e-300):
        y = x.copy()
        y[4, 5] = bad
        assert not bs.is_binary(y, backend=backend)
    net = _rbm(6, 3)
    with pytest.raises(ValueError, match="0/1"):
        net.collect(net.init(0), np.where(x == 1, 1.0, 0.5), R.WakeSleep(mode="cd"))


def test_plain_cd_keeps_no_chains():
    from recur.networks import boltzmann_sampling as bs

    net = _rbm(6, 3)
    p = _params(net, seed=1)
    data = (np.random.default_rng(0).random((4, 6)) < 0.5).astype(float)
    kept = bs.rbm_phases(p["W"], p["b"], data, data, 2, 1.0, np.random.default_rng(3), (0, 6))
    lean = bs.rbm_phases(p["W"], p["b"], data, data, 2, 1.0, np.random.default_rng(3), (0, 6),
                         keep_chains=False)
    assert kept[2].shape == (4, 9) and lean[2].shape == (0, 9)
    for a, b in zip(kept[:2], lean[:2]):
        np.testing.assert_array_equal(a, b)
    assert net.collect(p, data, R.WakeSleep(mode="cd"), rng=0).state is None
