"""Hebbian rules (hebbian, anti_hebbian, oja, bcm, covariance, intrinsic_plasticity) and the
exploratory Hebbian readout.

Reference tests build tiny evidence by hand and compute the expected update with explicit
loops, independently of the implementation; statistical tests run over seeds with explicit
tolerances.
"""

import tracemalloc

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import metrics, tasks
from recur import rules as R
from recur.readouts import ExploratoryHebbian, NotFittedError, Readout

ACT = R.Activity()

# Three units, two samples, chosen by hand.
POST = np.array([[0.5, -1.0, 2.0],
                 [1.5, 0.25, -0.5]])
PRE = np.array([[1.0, 2.0, -1.0],
                [-0.5, 1.0, 3.0]])
# W[post, pre] on the edges 1->0, 0->1, 2->1, 2->2 (networkx (u, v) is W[v, u]).
EDGES = [(0, 1), (1, 0), (1, 2), (2, 2)]
W_VALUES = [0.3, -0.7, 1.1, 0.4]


def _sparse_W():
    rows, cols = zip(*EDGES)
    return sp.csr_array((np.array(W_VALUES), (np.array(rows), np.array(cols))), shape=(3, 3))


def _dense_W():
    return _sparse_W().toarray()


def _evidence(pre, post, target=None, preactivation=None):
    trace = R.ActivityTrace(pre=pre, post=post, target=target, preactivation=preactivation)
    return R.Evidence(loss=0.0, results={ACT: trace})


def _W_evidence(post=POST, pre=PRE):
    return _evidence({"W": pre}, {"W": post})


def _on_edges(dense, W):
    """Entries of a dense expected matrix on W's edges, in W's storage order."""
    rows = np.repeat(np.arange(W.shape[0]), np.diff(W.indptr))
    return dense[rows, W.indices]


def _as_dense(u, W):
    if sp.issparse(u):
        assert np.array_equal(u.indptr, W.indptr) and np.array_equal(u.indices, W.indices)
        return u.toarray()
    return np.asarray(u)


def _run(rule, evidence, params, state="init"):
    state = rule.init(params) if state == "init" else state
    return rule.update(evidence, state, params, rng=0)


# -- hand-computed references ---------------------------------------------------------------

def _expected_hebb(post, pre, eta):
    S, n_post = post.shape
    out = np.zeros((n_post, pre.shape[1]))
    for i in range(n_post):
        for j in range(pre.shape[1]):
            total = 0.0
            for s in range(S):
                total += post[s, i] * pre[s, j]
            out[i, j] = eta * total / S
    return out


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_hebbian_and_anti_hebbian_reference(kind):
    W = _sparse_W() if kind == "sparse" else _dense_W()
    expected = _expected_hebb(POST, PRE, 0.1)
    u, _ = _run(R.hebbian(0.1), _W_evidence(), {"W": W})
    v, _ = _run(R.anti_hebbian(0.1), _W_evidence(), {"W": W})
    if kind == "sparse":
        ref = _sparse_W()
        np.testing.assert_allclose(u["W"].data, _on_edges(expected, ref), rtol=1e-12)
        np.testing.assert_allclose(v["W"].data, -_on_edges(expected, ref), rtol=1e-12)
    else:
        np.testing.assert_allclose(u["W"], expected, rtol=1e-12)
        np.testing.assert_allclose(v["W"], -expected, rtol=1e-12)
    # Normalised by the number of samples: repeating the data changes nothing.
    twice, _ = _run(R.hebbian(0.1), _W_evidence(np.vstack([POST, POST]), np.vstack([PRE, PRE])),
                    {"W": W})
    np.testing.assert_allclose(_as_dense(twice["W"], W), _as_dense(u["W"], W), rtol=1e-12)


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_oja_reference(kind):
    W = _sparse_W() if kind == "sparse" else _dense_W()
    Wd = _dense_W()
    eta = 0.2
    expected = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            if kind == "sparse" and (i, j) not in EDGES:
                continue
            expected[i, j] = eta / 2 * sum(POST[s, i] * (PRE[s, j] - POST[s, i] * Wd[i, j])
                                           for s in range(2))
    u, _ = _run(R.oja(eta), _W_evidence(), {"W": W})
    np.testing.assert_allclose(_as_dense(u["W"], W), expected, rtol=1e-12, atol=1e-15)


def test_bcm_reference():
    eta, tau, theta0 = 0.3, 2.0, 0.5
    W = _sparse_W()
    theta = np.full(3, theta0)
    expected = np.zeros((3, 3))
    for s in range(2):
        for i in range(3):
            phi = POST[s, i] * (POST[s, i] - theta[i])
            for j in range(3):
                expected[i, j] += eta / 2 * phi * PRE[s, j]
        for i in range(3):
            theta[i] = theta[i] + (POST[s, i] ** 2 - theta[i]) / tau
    rule = R.bcm(eta, tau=tau, theta_init=theta0)
    u, state = _run(rule, _W_evidence(), {"W": W})
    np.testing.assert_allclose(u["W"].toarray(), expected * (_dense_W() != 0), rtol=1e-12)
    np.testing.assert_allclose(state["W"], theta, rtol=1e-12)
    # The next update starts from the threshold the state carries.
    u2, state2 = rule.update(_W_evidence(), state, {"W": W}, rng=0)
    th = theta.copy()
    exp2 = np.zeros((3, 3))
    for s in range(2):
        for i in range(3):
            exp2[i] += eta / 2 * POST[s, i] * (POST[s, i] - th[i]) * PRE[s]
            th[i] += (POST[s, i] ** 2 - th[i]) / tau
    np.testing.assert_allclose(u2["W"].toarray(), exp2 * (_dense_W() != 0), rtol=1e-12)
    np.testing.assert_allclose(state2["W"], th, rtol=1e-12)


def test_bcm_default_threshold_starts_at_first_mean_square():
    u, state = _run(R.bcm(1.0, tau=1e9), _W_evidence(), {"W": _dense_W()})
    mean_sq = [(POST[0, i] ** 2 + POST[1, i] ** 2) / 2 for i in range(3)]
    np.testing.assert_allclose(state["W"], mean_sq, rtol=1e-6)


def test_covariance_batch_reference():
    eta = 0.5
    post_mean = [(POST[0, i] + POST[1, i]) / 2 for i in range(3)]
    pre_mean = [(PRE[0, j] + PRE[1, j]) / 2 for j in range(3)]
    expected = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            expected[i, j] = eta / 2 * sum((POST[s, i] - post_mean[i]) * (PRE[s, j] - pre_mean[j])
                                           for s in range(2))
    u, state = _run(R.covariance(eta), _W_evidence(), {"W": _dense_W()})
    np.testing.assert_allclose(u["W"], expected, rtol=1e-12, atol=1e-15)
    assert state is None
    us, _ = _run(R.covariance(eta), _W_evidence(), {"W": _sparse_W()})
    np.testing.assert_allclose(us["W"].toarray(), expected * (_dense_W() != 0), atol=1e-15)


def test_covariance_running_reference():
    eta, tau = 0.5, 4.0
    rule = R.covariance(eta, average="running", tau=tau)
    state = rule.init({"W": _dense_W()})
    # First evidence: the averages start at its means.
    m_post = POST.mean(axis=0).copy()
    m_pre = PRE.mean(axis=0).copy()
    second_post, second_pre = POST[::-1] * 2.0, PRE[::-1] - 1.0
    for post, pre in ((POST, PRE), (second_post, second_pre)):
        expected = np.zeros((3, 3))
        for s in range(2):
            for i in range(3):
                for j in range(3):
                    expected[i, j] += eta / 2 * (post[s, i] - m_post[i]) * (pre[s, j] - m_pre[j])
            m_post = m_post + (post[s] - m_post) / tau
            m_pre = m_pre + (pre[s] - m_pre) / tau
        u, state = rule.update(_W_evidence(post, pre), state, {"W": _dense_W()}, rng=0)
        np.testing.assert_allclose(u["W"], expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state["W"][0], m_post, rtol=1e-12)
        np.testing.assert_allclose(state["W"][1], m_pre, rtol=1e-12)


def test_intrinsic_plasticity_reference():
    eta, mu, sigma = 0.01, 0.1, 0.3
    W = _sparse_W()
    W_in = np.array([[1.0], [-2.0], [0.5]])
    b = np.array([0.2, -0.1, 0.3])
    Z = np.array([[0.4, -1.2, 0.9],
                  [2.0, 0.1, -0.6]])
    d_gain, d_bias = np.zeros(3), np.zeros(3)
    for i in range(3):
        for s in range(2):
            y = np.tanh(Z[s, i])
            db = -eta * (-mu / sigma**2 + y / sigma**2 * (2 * sigma**2 + 1 - y**2 + mu * y))
            x = Z[s, i] - b[i]  # synaptic input without the bias, gain a = 1
            d_bias[i] += db / 2
            d_gain[i] += (eta / 1.0 + db * x) / 2
    params = {"W": W, "W_in": W_in, "b": b, "W_out": np.ones((1, 3))}
    ev = _evidence({"W": PRE, "W_in": PRE[:, :1], "W_out": POST}, {"W": POST, "W_in": POST,
                                                                    "W_out": POST[:, :1]},
                   preactivation=Z)
    u, _ = _run(R.intrinsic_plasticity(eta, mu=mu, sigma=sigma), ev, params)
    assert set(u) == {"W", "W_in", "b"}
    Wd = _dense_W()
    np.testing.assert_allclose(_as_dense(u["W"], W), d_gain[:, None] * Wd, rtol=1e-12)
    np.testing.assert_allclose(u["W_in"], d_gain[:, None] * W_in, rtol=1e-12)
    np.testing.assert_allclose(u["b"], d_bias, rtol=1e-12)
    only_b, _ = _run(R.intrinsic_plasticity(eta, mu=mu, sigma=sigma, params=("b",)), ev, params)
    assert set(only_b) == {"b"}


# -- which parameters -----------------------------------------------------------------------

def _esn_like_evidence(rng, S=7, N=5, n_in=2, n_out=1):
    x_prev, x = rng.normal(size=(S, N)), rng.normal(size=(S, N))
    u, y = rng.normal(size=(S, n_in)), rng.normal(size=(S, n_out))
    return _evidence({"W": x_prev, "W_in": u, "W_out": x}, {"W": x, "W_in": x, "W_out": y},
                     preactivation=rng.normal(size=(S, N)))


def _esn_like_params(rng, N=5, n_in=2, n_out=1):
    return {"W": sp.random_array((N, N), density=0.4, format="csr", rng=rng),
            "W_in": rng.normal(size=(N, n_in)), "b": rng.normal(size=N),
            "W_out": rng.normal(size=(n_out, N)), "b_out": np.zeros(n_out)}


ACTIVITY_RULES = {
    "hebbian": lambda **kw: R.hebbian(0.1, **kw),
    "anti_hebbian": lambda **kw: R.anti_hebbian(0.1, **kw),
    "oja": lambda **kw: R.oja(0.1, **kw),
    "bcm": lambda **kw: R.bcm(0.1, tau=10.0, **kw),
    "covariance": lambda **kw: R.covariance(0.1, **kw),
    "covariance_running": lambda **kw: R.covariance(0.1, average="running", tau=5.0, **kw),
}


@pytest.mark.parametrize("name", sorted(ACTIVITY_RULES))
def test_default_and_restricted_parameters(name):
    rng = np.random.default_rng(0)
    params, ev = _esn_like_params(rng), _esn_like_evidence(rng)
    rule = ACTIVITY_RULES[name]()
    assert rule.requires == ACT
    u, _ = _run(rule, ev, params)
    assert set(u) == {"W", "W_in", "W_out"}
    only, _ = _run(ACTIVITY_RULES[name](params=("W",)), ev, params)
    assert set(only) == {"W"}
    np.testing.assert_allclose(only["W"].data, u["W"].data, rtol=1e-12)
    masked, _ = _run(R.chain(rule, R.masked_by(("W_out",))), ev, params)
    assert set(masked) == {"W_out"}
    part = R.partition({"W_in": ACTIVITY_RULES[name]()})
    parted, _ = _run(part, ev, params)
    assert set(parted) == {"W_in"}
    np.testing.assert_allclose(parted["W_in"], u["W_in"], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVITY_RULES) + ["intrinsic_plasticity"])
def test_sparse_structure_preserved_and_applicable(name):
    rng = np.random.default_rng(1)
    params, ev = _esn_like_params(rng), _esn_like_evidence(rng)
    rule = (R.intrinsic_plasticity(0.01) if name == "intrinsic_plasticity"
            else ACTIVITY_RULES[name]())
    u, _ = _run(rule, ev, params)
    W = params["W"]
    assert sp.issparse(u["W"])
    assert np.array_equal(u["W"].indptr, W.indptr) and np.array_equal(u["W"].indices, W.indices)
    new = R.apply_updates(params, u)
    assert np.array_equal(new["W"].indices, W.indices)
    assert np.all(np.isfinite(new["W"].data))


def test_update_on_large_sparse_graph_costs_edges():
    # 5,000 units, 10 edges each: a dense N x N float64 would take 200 MB.
    N, k, S = 5000, 10, 16
    rng = np.random.default_rng(2)
    rows = np.repeat(np.arange(N), k)
    cols = rng.integers(0, N, N * k)
    W = sp.csr_array((rng.normal(size=N * k) * 0.1, (rows, cols)), shape=(N, N))
    W.sum_duplicates()
    W.sort_indices()
    params = {"W": W, "b": np.zeros(N)}
    x_prev, x = np.tanh(rng.normal(size=(S, N))), np.tanh(rng.normal(size=(S, N)))
    ev = _evidence({"W": x_prev}, {"W": x}, preactivation=rng.normal(size=(S, N)))
    rules = [R.hebbian(0.1), R.anti_hebbian(0.1), R.oja(0.1), R.bcm(0.1),
             R.covariance(0.1), R.covariance(0.1, average="running"),
             R.intrinsic_plasticity(0.01)]
    for rule in rules:
        tracemalloc.start()
        try:
            u, _ = _run(rule, ev, params)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 60e6, f"{rule.name} allocated {peak / 1e6:.0f} MB"
        assert sp.issparse(u["W"]) and u["W"].nnz == W.nnz
        assert np.array_equal(u["W"].indices, W.indices)


# -- behaviour when iterated -----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_oja_converges_to_principal_component(seed):
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    cov = rot @ np.diag([1.0, 0.2]) @ rot.T
    L = np.linalg.cholesky(cov)
    w = rng.normal(size=(3, 2)) * 0.3  # three linear units reading the same input
    rule = R.oja(0.05)
    for _ in range(400):
        X = rng.normal(size=(64, 2)) @ L.T
        Y = X @ w.T
        u, _ = rule.update(_evidence({"W": X}, {"W": Y}), None, {"W": w}, rng=None)
        w = R.apply_updates({"W": w}, u)["W"]
    evals, evecs = np.linalg.eigh(cov)
    pc = evecs[:, np.argmax(evals)]
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, atol=0.05)
    assert np.all(np.abs(w @ pc) / np.linalg.norm(w, axis=1) > 0.99)


@pytest.mark.parametrize("seed", range(3))
def test_bcm_threshold_moves_toward_mean_square_post(seed):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.3, 2.0, 4)
    tau = 200.0
    rule = R.bcm(1e-3, tau=tau, theta_init=0.0)
    params = {"W": rng.normal(size=(4, 3))}
    state = rule.init(params)
    target = scale**2  # <post^2> of N(0, scale^2)
    gaps = []
    for _ in range(30):
        post = rng.normal(size=(100, 4)) * scale
        _, state = rule.update(_evidence({"W": rng.normal(size=(100, 3))}, {"W": post}), state,
                               params, rng=None)
        gaps.append(np.abs(state["W"] - target) / target)
    gaps = np.array(gaps)
    assert np.all(gaps[5] < gaps[0])
    assert np.all(gaps[-1] < 0.25)  # ~3000 samples = 15 time constants, sampling noise only
    assert np.mean(gaps[-1]) < 0.15


def _rate_stats(esn, params, data, mu, sigma):
    z = esn.collect(params, data, ACT)[ACT].preactivation
    r = np.tanh(z)
    return {"mean": abs(r.mean() - mu), "std": abs(r.std() - sigma),
            "unit_mean": np.mean(np.abs(r.mean(axis=0) - mu)),
            "unit_std": np.mean(np.abs(r.std(axis=0) - sigma))}


@pytest.mark.parametrize("mu,sigma", [(0.1, 0.15), (-0.1, 0.35)])
def test_intrinsic_plasticity_moves_rates_toward_target(mu, sigma):
    # An ESN driven by a signal, trained with recur.train over a stream of chunks.
    results = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        topo = rc.Topology(nx.gnp_random_graph(100, 0.1, directed=True, seed=seed))
        esn = rc.ESN(topo, leak=0.5, spectral_radius=0.9, input_scaling=1.0, bias_scaling=0.5,
                     n_in=1)
        params = esn.init(rng)
        u, y = tasks.next_step(tasks.sine_sum(2001, rng=rng))
        chunks = [tasks.TeacherForced(u[i:i + 500], y[i:i + 500]) for i in range(0, 2000, 500)]
        held_out = tasks.TeacherForced(u, y, washout=100)
        before = _rate_stats(esn, params, held_out, mu, sigma)
        rule = R.intrinsic_plasticity(0.005, mu=mu, sigma=sigma)
        trained, _ = rc.train(esn, params, rule, chunks, epochs=80, rng=seed, progress=False)
        after = _rate_stats(esn, trained, held_out, mu, sigma)
        results.append((before, after))
    # Intrinsic plasticity shapes each unit's own distribution: per-unit means and stds move
    # toward mu and sigma (the pooled std also counts the spread of the means).
    for before, after in results:
        assert after["mean"] < 0.03
        assert after["unit_mean"] < 0.4 * before["unit_mean"]
        assert after["unit_std"] < 0.8 * before["unit_std"]


def test_train_threads_state_through_chunks():
    rng = np.random.default_rng(4)
    topo = rc.Topology(nx.gnp_random_graph(30, 0.2, directed=True, seed=4))
    esn = rc.ESN(topo, leak=0.5, n_in=1)
    params = esn.init(rng)
    u, y = tasks.next_step(tasks.sine_sum(301, rng=rng))
    chunks = [tasks.TeacherForced(u[i:i + 100], y[i:i + 100]) for i in range(0, 300, 100)]
    seen = []

    def probe(epoch, params, evidence, updates):
        trace = evidence[ACT]
        seen.append((trace.pre["W"][0].copy(), evidence.state.copy()))
        return {"first_state_norm": float(np.linalg.norm(trace.pre["W"][0]))}

    rule = R.chain(R.hebbian(), R.scale(1e-4))
    _, hist = rc.train(esn, params, rule, chunks, epochs=6, rng=0, progress=False,
                       callbacks=[probe])
    assert len(hist.probes["first_state_norm"]) == 6
    starts = [s for s, _ in seen]
    ends = [e for _, e in seen]
    # Each chunk starts where the previous one ended; the stream restarts every 3 epochs.
    for k in (1, 2, 4, 5):
        np.testing.assert_allclose(starts[k], ends[k - 1], rtol=1e-12, atol=1e-12)
    for k in (0, 3):
        np.testing.assert_array_equal(starts[k], np.zeros(esn.n_units))
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.allclose(ends[a], ends[b])


# -- validation -----------------------------------------------------------------------------

def test_hyperparameters_are_validated():
    for make in (R.hebbian, R.anti_hebbian, R.oja, R.bcm, R.covariance,
                 R.intrinsic_plasticity):
        with pytest.raises(ValueError, match="learning_rate"):
            make(0.0)
        with pytest.raises(ValueError, match="learning_rate"):
            make(-1.0)
        with pytest.raises(TypeError, match="learning_rate"):
            make(float("nan"))
        with pytest.raises(TypeError, match="learning_rate"):
            make(True)
        with pytest.raises(TypeError, match="params"):
            make(params=[1, 2])
        with pytest.raises(TypeError, match="params"):
            make(params=())
    with pytest.raises(ValueError, match="tau"):
        R.bcm(tau=0.5)
    with pytest.raises(ValueError, match="theta_init"):
        R.bcm(theta_init=-1.0)
    with pytest.raises(ValueError, match="average"):
        R.covariance(average="ema")
    with pytest.raises(ValueError, match="tau"):
        R.covariance(average="running", tau=0.0)
    with pytest.raises(ValueError, match="sigma"):
        R.intrinsic_plasticity(sigma=0.0)
    with pytest.raises(ValueError, match="mu"):
        R.intrinsic_plasticity(mu=1.0)
    with pytest.raises(ValueError, match="W_out"):
        R.intrinsic_plasticity(params=("W_out",))
    assert R.hebbian(params="W").hparams["params"] == ("W",)


def test_bad_evidence_is_reported():
    params = {"W": _dense_W()}
    with pytest.raises(ValueError, match="'W_in'"):
        _run(R.hebbian(params=("W_in",)), _W_evidence(), params)
    with pytest.raises(KeyError, match="'W'"):
        _run(R.hebbian(params=("W",)), _W_evidence(), {"V": _dense_W()})
    with pytest.raises(ValueError, match="no weight matrix"):
        _run(R.oja(), _W_evidence(), {"V": _dense_W()})
    with pytest.raises(ValueError, match="do not match"):
        _run(R.hebbian(), _W_evidence(POST[:, :2], PRE), params)
    with pytest.raises(ValueError, match="samples"):
        _run(R.hebbian(), _W_evidence(POST[:1], PRE), params)
    with pytest.raises(ValueError, match="preactivation"):
        _run(R.intrinsic_plasticity(), _W_evidence(), {"W": _dense_W(), "b": np.zeros(3)})
    with pytest.raises(KeyError, match="no evidence"):
        _run(R.hebbian(), R.Evidence(loss=0.0), params)


# -- exploratory Hebbian readout -------------------------------------------------------------

def test_exploratory_hebbian_reference():
    # Independent re-implementation of the EH rule, fed the same noise sequence.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = np.column_stack([np.sin(np.arange(40) / 3), np.cos(np.arange(40) / 5)])
    eta, nu, tau, decay = 0.05, 0.4, 4.0, 20.0
    readout = ExploratoryHebbian(learning_rate=eta, noise=nu, tau=tau, decay=decay,
                                 fit_intercept=True, rng=7).fit(X, Y)
    xi = np.random.default_rng(7).uniform(-nu, nu, size=Y.shape)
    W, b = np.zeros((2, 3)), np.zeros(2)
    alpha = 1 - 1 / tau
    z_bar = p_bar = None
    emitted, rewarded = [], 0
    for t in range(40):
        z = [sum(W[k, j] * X[t, j] for j in range(3)) + b[k] + xi[t, k] for k in range(2)]
        z = np.array(z)
        emitted.append(z)
        perf = -((z[0] - Y[t, 0]) ** 2 + (z[1] - Y[t, 1]) ** 2)
        if t == 0:
            z_bar, p_bar = z, perf
            continue
        z_bar = alpha * z_bar + (1 - alpha) * z
        p_bar = alpha * p_bar + (1 - alpha) * perf
        if perf > p_bar:
            rewarded += 1
            for k in range(2):
                for j in range(3):
                    W[k, j] += eta / (1 + t / decay) * (z[k] - z_bar[k]) * X[t, j]
                b[k] += eta / (1 + t / decay) * (z[k] - z_bar[k])
    np.testing.assert_allclose(readout.coef_, W, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(readout.intercept_, b, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(readout.last_output_, np.array(emitted), rtol=1e-10)
    assert readout.n_rewarded_ == rewarded and 0 < rewarded < 39
    np.testing.assert_allclose(readout.predict(X), X @ W.T + b, rtol=1e-10)


def test_exploratory_hebbian_estimator_contract():
    kw = {"learning_rate": 0.01, "noise": 0.3, "tau": 5.0, "decay": None,
          "fit_intercept": True, "rng": 3}
    r = ExploratoryHebbian(**kw)
    assert r.get_params() == kw
    assert not any(name.endswith("_") for name in vars(r))
    with pytest.raises(NotFittedError):
        r.predict(np.zeros(4))
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(300, 4)), rng.normal(size=(300, 2))
    X0 = X.copy()
    a = ExploratoryHebbian(**kw).fit(X, Y)
    np.testing.assert_array_equal(X, X0)
    b = ExploratoryHebbian(**kw).fit(X[:50] * 3, Y[:50]).fit(X, Y)  # fit resets, rng too
    np.testing.assert_array_equal(a.coef_, b.coef_)
    chunked = ExploratoryHebbian(**kw)
    for start in range(0, 300, 70):
        chunked.partial_fit(X[start:start + 70], Y[start:start + 70])
    np.testing.assert_allclose(chunked.coef_, a.coef_, rtol=1e-12, atol=1e-15)
    assert a.coef_.shape == (2, 4) and a.predict(X[0]).shape == (2,)
    one = ExploratoryHebbian(**kw).partial_fit(X[0], Y[0])
    assert one.last_output_.shape == (2,)
    for bad, err in (({"learning_rate": 0.0}, ValueError), ({"noise": -1.0}, ValueError),
                     ({"tau": 1.0}, ValueError), ({"decay": 0.0}, ValueError),
                     ({"rng": "seed"}, TypeError)):
        with pytest.raises(err):
            ExploratoryHebbian(**{**kw, **bad}).fit(X, Y)


class _FixedReadout(Readout):
    def __init__(self, coef):
        self.coef_ = coef
        self.intercept_ = np.zeros(coef.shape[0])
        self.n_features_in_ = coef.shape[1]


def test_exploratory_hebbian_learns_periodic_signal_in_closed_loop():
    # Hoerzer et al. 2014: a chaotic network with output feedback learns to generate a periodic
    # signal from a scalar reward. After learning in the loop, the readout runs freely (noise
    # and learning off) and is compared with a fixed random readout of the same norm.
    n, period, steps = 200, 200, 16000
    t = np.arange(steps + period)
    phase = 2 * np.pi * t / period
    target = ((np.sin(phase) + 0.5 * np.sin(2 * phase)) / 1.5)[:, None]
    errors, ratios = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        topo = rc.Topology(nx.gnp_random_graph(n, 0.1, directed=True, seed=seed))
        esn = rc.ESN(topo, leak=0.1, spectral_radius=1.5, n_in=0, n_out=1, feedback=True,
                     feedback_scaling=1.5)
        params = esn.init(rng)
        x0 = rng.uniform(-0.5, 0.5, n)
        readout = ExploratoryHebbian(learning_rate=0.01, noise=0.5, tau=5.0, decay=4000,
                                     rng=seed)
        _, x = rc.generate(esn, params, readout, x0, steps, target=target[:steps],
                           return_state=True)
        free = rc.generate(esn, params, readout, x, period)
        random = _FixedReadout(rng.normal(0.0, np.linalg.norm(readout.coef_) / np.sqrt(n),
                                          readout.coef_.shape))
        baseline = rc.generate(esn, params, random, x, period)
        errors.append(metrics.nrmse(target[steps:], free))
        ratios.append(errors[-1] / metrics.nrmse(target[steps:], baseline))
    assert np.median(errors) < 0.7, errors
    assert np.median(ratios) < 0.7, ratios
    assert sum(r < 1.0 for r in ratios) >= 2, ratios
