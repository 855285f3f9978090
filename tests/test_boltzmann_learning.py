"""Boltzmann learning: the rule is the exact gradient on exact phases, and it learns."""

import itertools

import networkx as nx
import numpy as np
import pytest
from scipy.special import logsumexp

import recur as rc
from recur import metrics
from recur import rules as R
from recur.rules.evidence import ActivityTrace, Evidence, Phases
from recur.rules.transforms import sign


def _general(T=1.0, **kw):
    G = nx.gnp_random_graph(7, 0.6, seed=5)
    return rc.Boltzmann(rc.Topology(G), visible=[0, 1, 2, 3], temperature=T, **kw)


def _weighted_trace(states, weights, mask):
    """A trace whose plain sample means are the ``weights``-weighted moments of ``states``:
    rows ``sqrt(w S) s`` give ``mean_s (.)(.)^T = sum_s w_s s s^T``; the bias rows pair
    ``w S s`` with a presynaptic 1."""
    S = len(weights)
    root = np.sqrt(weights * S)[:, None] * states
    return ActivityTrace(pre={"W": root, "b": np.ones((S, 1))},
                         post={"W": root, "b": (weights * S)[:, None] * states},
                         masks={"W": mask})


def _exact_evidence(net, params, data):
    """Wake and sleep statistics computed exactly, by enumeration, in a WakeSleep Phases."""
    N, T = net.n_units, net.temperature
    S = np.array(list(itertools.product([0.0, 1.0], repeat=N)))
    logw = -net.energy(params, S) / T
    vis = net.visible_units
    sleep_w = np.exp(logw - logsumexp(logw))
    wake_w = np.zeros(len(S))
    for v in data:
        sel = (S[:, vis] == v).all(1)
        wake_w[sel] += np.exp(logw[sel] - logsumexp(logw[sel])) / len(data)
    req = R.WakeSleep()
    phases = Phases(free=_weighted_trace(S, sleep_w, net.mask),
                    nudged=_weighted_trace(S, wake_w, net.mask))
    return req, Evidence(loss=0.0, results={req: phases})


@pytest.mark.parametrize("T", [1.0, 1.7])
def test_exact_phases_give_T_times_the_log_likelihood_gradient(T):
    net = _general(T=T, init_scale=0.8)
    params = net.init(1)
    params["b"] = np.random.default_rng(2).normal(0, 0.5, net.n_units)
    data = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0], [1, 0, 1, 1]], dtype=float)
    req, evidence = _exact_evidence(net, params, data)
    updates, _ = R.boltzmann().update(evidence, None, params)

    def ll(p):
        return metrics.log_likelihood(net, p, data)

    eps = 1e-5
    for i, j in zip(*np.nonzero(np.triu(net.mask))):
        plus, minus = {**params, "W": params["W"].copy()}, {**params, "W": params["W"].copy()}
        for q, sgn in ((plus, 1), (minus, -1)):
            q["W"][i, j] += sgn * eps
            q["W"][j, i] += sgn * eps
        grad = (ll(plus) - ll(minus)) / (2 * eps)
        assert updates["W"][i, j] == pytest.approx(T * grad, abs=1e-7)
        assert updates["W"][j, i] == updates["W"][i, j]
    for i in range(net.n_units):
        plus, minus = {**params, "b": params["b"].copy()}, {**params, "b": params["b"].copy()}
        plus["b"][i] += eps
        minus["b"][i] -= eps
        grad = (ll(plus) - ll(minus)) / (2 * eps)
        assert updates["b"][i] == pytest.approx(T * grad, abs=1e-7)
    assert not updates["W"][~net.mask].any() and not np.diag(updates["W"]).any()


def test_rbm_wake_phase_is_exact():
    """An RBM's wake statistics use p(h | v) exactly: with exact sleep moments the rule is
    the exact gradient."""
    net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(4, 3)), init_scale=0.8)
    params = net.init(0)
    data = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=float)
    req = R.WakeSleep(mode="cd")
    wake = net.collect(params, data, req, rng=0)[req].nudged
    _, exact = _exact_evidence(net, params, data)
    exact_wake = exact[R.WakeSleep()].nudged
    mean = wake.post["W"].T @ wake.pre["W"] / len(data)
    want = exact_wake.post["W"].T @ exact_wake.pre["W"] / exact_wake.pre["W"].shape[0]
    np.testing.assert_allclose(np.where(net.mask, mean, 0), np.where(net.mask, want, 0),
                               atol=1e-12)


def _fit(net, params, rule, data, epochs, rng):
    """Train threading the network state (persistent chains) through every epoch."""
    rng = np.random.default_rng(rng)
    state, chains = rule.init(params), None
    for _ in range(epochs):
        g1, g2 = rng.spawn(2)
        evidence = net.collect(params, data, rule.requests, state=chains, rng=g1)
        chains = evidence.state
        updates, state = rule.update(evidence, state, params, rng=g2)
        params = net.constrain(R.apply_updates(params, updates))
    return params


@pytest.mark.parametrize("kw", [dict(mode="cd", k=1), dict(mode="cd", k=5),
                                dict(mode="cd", k=1, persistent=True)])
def test_contrastive_divergence_raises_the_exact_log_likelihood_on_bas(kw):
    data = rc.tasks.bars_and_stripes(3)
    net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(9, 8)))
    rule = R.chain(R.boltzmann(**kw), R.scale(0.5))
    for seed in range(3):
        p0 = net.init(seed)
        before = metrics.log_likelihood(net, p0, data)
        after = metrics.log_likelihood(net, _fit(net, p0, rule, data, 400, seed), data)
        # from -9 log 2 = -6.24 towards the optimum -log 14 = -2.64
        assert after > before + 1.0
        assert after <= -np.log(len(data)) + 1e-9


def test_train_runs_cd_and_reports_the_exact_nll():
    data = rc.tasks.bars_and_stripes(3)
    net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(9, 8)))
    p0 = net.init(0)
    params, hist = rc.train(net, p0, R.chain(R.boltzmann("cd"), R.scale(0.5)), data,
                            epochs=500, rng=0, progress=False)
    assert hist.loss[0] == pytest.approx(-metrics.log_likelihood(net, p0, data))
    assert hist.final_loss == pytest.approx(-metrics.log_likelihood(net, params, data))
    assert hist.final_loss < hist.loss[0] - 1.0


def test_chl_lowers_the_kl_on_a_small_general_graph():
    # three visible units that are all equal, through two hidden units and direct edges
    net = _general(burn_in=5, sample_sweeps=5)
    assert not net.is_rbm
    data = np.repeat(np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]], float), 4, axis=0)
    rule = R.chain(R.boltzmann("chl"), R.scale(0.3))
    for seed in range(3):
        p0 = net.init(seed)
        before = metrics.kl_divergence(net, p0, data)
        after = metrics.kl_divergence(net, _fit(net, p0, rule, data, 150, seed), data)
        assert after < 0.5 * before


def test_mean_field_learning_matches_the_data_moments():
    """Fully visible network, mean-field phases: learning stops where the mean-field
    marginals equal the data means (and the KL has fallen)."""
    G = nx.complete_graph(4)
    net = rc.Boltzmann(rc.Topology(G), visible=range(4))
    rng = np.random.default_rng(0)
    data = (rng.random((200, 4)) < np.array([0.8, 0.3, 0.6, 0.2])).astype(float)
    rule = R.chain(R.boltzmann("mean_field"), R.scale(0.5))
    p0 = net.init(0)
    p = _fit(net, p0, rule, data, 300, 0)
    m = net.mean_field(p)[0]
    np.testing.assert_allclose(m, data.mean(0), atol=0.02)
    # the biases alone would reach KL 0; mean-field learning gets there only partly (its
    # second moments are factorised), but it must move downhill
    assert metrics.kl_divergence(net, p, data) < 0.8 * metrics.kl_divergence(net, p0, data)


def test_sign_transform_takes_fixed_steps():
    u = {"W": np.array([[0.0, -0.3], [2.0, 0.0]]), "b": np.array([1e-9, -5.0])}
    out, _ = sign(2.0).update(u, None, None)
    np.testing.assert_array_equal(out["W"], [[0.0, -2.0], [2.0, 0.0]])
    np.testing.assert_array_equal(out["b"], [2.0, -2.0])
    with pytest.raises(ValueError, match="step"):
        sign(0.0)


def test_rule_arguments_are_checked():
    with pytest.raises(ValueError, match="mode"):
        R.boltzmann(mode="gibbs")
    with pytest.raises(ValueError, match="k"):
        R.boltzmann(mode="cd", k=0)
    with pytest.raises(ValueError, match="persistent"):
        R.boltzmann(mode="mean_field", persistent=True)
    with pytest.raises(ValueError, match="n_chains"):
        R.boltzmann(n_chains=0)
    rule = R.boltzmann("cd", k=3, persistent=True, n_chains=7)
    assert rule.hparams == {"mode": "cd", "k": 3, "persistent": True, "n_chains": 7}
    assert rule.requests == (R.WakeSleep("cd", 3, True, 7),)


def test_update_is_symmetric_and_on_the_graph():
    net = _general(burn_in=2, sample_sweeps=2)
    p = net.init(0)
    data = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=float)
    rule = R.boltzmann("chl")
    e = net.collect(p, data, rule.requests, rng=1)
    u, _ = rule.update(e, None, p)
    np.testing.assert_allclose(u["W"], u["W"].T)
    assert not u["W"][~net.mask].any() and not np.diag(u["W"]).any()
    assert u["b"].shape == (net.n_units,)


class _Recording:
    """A Boltzmann machine that records the state each collect received."""

    def __init__(self, net):
        self.net, self.seen = net, []

    def __getattr__(self, name):
        return getattr(self.net, name)

    def collect(self, params, data, requires, *, state=None, rng=None):
        self.seen.append(state)
        evidence = self.net.collect(params, data, requires, state=state, rng=rng)
        self.seen.append(evidence.state)
        return evidence


def test_train_threads_persistent_chains_across_epochs():
    net = _Recording(rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(4, 3))))
    data = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=float)
    rule = R.chain(R.boltzmann("cd", persistent=True), R.scale(0.1))
    rc.train(net, net.init(0), rule, data, epochs=3, rng=0, progress=False)
    # epoch 2 starts from the chains epoch 1 ended with
    assert net.seen[2] is net.seen[1]


def test_sequential_cd_on_an_rbm_starts_from_binary_states(monkeypatch):
    # With the sequential sampler on an RBM, the CD chain must start from 0/1 states: the
    # wake phase's hidden columns hold probabilities p(h | v), which a Gibbs sweep must not
    # read as states.
    from recur.networks import boltzmann_sampling as bs

    starts = []
    real = bs.sequential_sweeps

    def recording(W, b, s, *args, **kwargs):
        starts.append(np.array(s))
        return real(W, b, s, *args, **kwargs)

    monkeypatch.setattr(bs, "sequential_sweeps", recording)
    net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(5, 4, seed=0)),
                       sampler="sequential", init_scale=0.8)
    data = (np.random.default_rng(0).random((50, 5)) < 0.5).astype(float)
    req = R.WakeSleep(mode="cd", k=1)
    for seed in range(3):
        net.collect(net.init(seed), data, req, rng=seed)
    assert starts and all(np.all((s == 0.0) | (s == 1.0)) for s in starts)


def _without_moments(evidence):
    """The same evidence with the traces' moments dropped (the rule recomputes them)."""
    out = {}
    for req, ph in evidence.results.items():
        out[req] = Phases(free=ActivityTrace(pre=ph.free.pre, post=ph.free.post,
                                             masks=ph.free.masks),
                          nudged=ActivityTrace(pre=ph.nudged.pre, post=ph.nudged.post,
                                               masks=ph.nudged.masks))
    return Evidence(loss=evidence.loss, results=out, state=evidence.state)


@pytest.mark.parametrize("mode,kw", [("cd", {"k": 1}), ("cd", {"k": 2, "persistent": True}),
                                     ("chl", {}), ("mean_field", {})])
@pytest.mark.parametrize("graph", ["rbm", "sparse_rbm", "general"])
def test_moments_from_the_network_give_the_update_of_its_samples(graph, mode, kw):
    """Every collection carries the phases' moments (the fused RBM step computes them in the
    pass that draws the samples); the rule's update from them equals its update from the
    samples themselves, and is zero off the graph (an RBM with missing visible-hidden
    edges too)."""
    if graph != "general":
        p = 1.0 if graph == "rbm" else 0.5
        G = rc.graphs.bipartite_graph(5, 4, p=p, seed=1)
        net = rc.Boltzmann(rc.Topology(G), init_scale=0.7, burn_in=2, sample_sweeps=2)
        assert net._cache["fused"] and net._cache["complete"] == (graph == "rbm")
        data = (np.random.default_rng(0).random((6, 5)) < 0.5).astype(float)
    else:
        net = _general(burn_in=2, sample_sweeps=2, init_scale=0.7)
        data = (np.random.default_rng(0).random((6, 4)) < 0.5).astype(float)
    params = net.init(1)
    rule = R.boltzmann(mode, **kw)
    evidence = net.collect(params, data, rule.requests, rng=2)
    for phase in (evidence[rule.requests[0]].free, evidence[rule.requests[0]].nudged):
        rows = phase.post["W"]
        np.testing.assert_allclose(phase.moments["W"],
                                   np.where(net.mask, rows.T @ rows / len(rows), 0.0),
                                   atol=1e-13)
        np.testing.assert_allclose(phase.moments["b"], rows.mean(axis=0), atol=1e-13)
    fast, _ = rule.update(evidence, None, params)
    slow, _ = rule.update(_without_moments(evidence), None, params)
    for name in ("W", "b"):
        np.testing.assert_allclose(fast[name], slow[name], atol=1e-13)
    assert not fast["W"][~net.mask].any() and np.any(fast["W"][net.mask])


def test_moments_of_the_wrong_shape_are_refused():
    net = _general()
    params = net.init(0)
    data = np.array([[1.0, 0.0, 1.0, 0.0]])
    rule = R.boltzmann("cd")
    evidence = net.collect(params, data, rule.requests, rng=0)
    phases = evidence[rule.requests[0]]
    bad = ActivityTrace(pre=phases.free.pre, post=phases.free.post, masks=phases.free.masks,
                        moments={"W": np.zeros((3, 3)), "b": phases.free.moments["b"]})
    broken = Evidence(loss=0.0, results={rule.requests[0]: Phases(free=bad,
                                                                   nudged=phases.nudged)})
    with pytest.raises(ValueError, match="'W' moments have shapes"):
        rule.update(broken, None, params)
