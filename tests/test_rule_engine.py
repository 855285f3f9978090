"""The rule engine's mechanics: applying updates, composition, transforms, the train loop."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import rules as R
from recur import tasks
from recur.masked import masked_outer


def _net(n=20, seed=0, **kw):
    topo = rc.Topology(nx.gnp_random_graph(n, 0.2, directed=True, seed=seed))
    return rc.ESN(topo, leak=0.5, n_in=1, n_out=1, **kw)


def _data(seed=0, T=120):
    u, y = tasks.next_step(tasks.sine_sum(T + 1, rng=seed))
    return tasks.TeacherForced(u, y, washout=10)


def constant_rule(value, names=("W", "W_out")):
    """An estimator that proposes ``value`` for every stored weight of the named params."""

    def update(evidence, state, params, *, rng=None):
        out = {}
        for n in (n for n in names if n in params):
            p = params[n]
            out[n] = (sp.csr_array((np.full(p.nnz, value), p.indices, p.indptr), shape=p.shape)
                      if sp.issparse(p) else np.full(np.shape(p), value))
        return out, (state or 0) + 1

    return R.Rule(name="constant", hparams={"value": value}, init=lambda p: 0, update=update,
                  requires=R.Activity())


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a)


# -- apply_updates ---------------------------------------------------------------------------

def test_apply_updates_adds_without_mutating():
    net = _net()
    params = net.init(0)
    before = {k: _dense(v).copy() for k, v in params.items()}
    updates, _ = constant_rule(0.5).update(None, None, params)
    new = R.apply_updates(params, updates)
    for k, v in params.items():
        np.testing.assert_array_equal(_dense(v), before[k])
    np.testing.assert_allclose(new["W"].data, params["W"].data + 0.5)
    np.testing.assert_allclose(new["W_out"], params["W_out"] + 0.5)
    assert new["W_in"] is params["W_in"]


def test_apply_updates_refuses_off_graph_and_unknown():
    params = _net().init(0)
    off = sp.csr_array(np.ones(params["W"].shape))
    with pytest.raises(ValueError, match="off the graph"):
        R.apply_updates(params, {"W": off})
    with pytest.raises(KeyError, match="does not have"):
        R.apply_updates(params, {"W_typo": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        R.apply_updates(params, {"W_out": np.zeros(3)})


def test_masked_outer_matches_dense_outer_on_mask():
    rng = np.random.default_rng(0)
    W = _net(30).init(0)["W"]
    post, pre = rng.normal(size=(50, 30)), rng.normal(size=(50, 30))
    got = masked_outer(post, pre, W)
    expect = np.einsum("si,sj->ij", post, pre) * (W.toarray() != 0)
    np.testing.assert_allclose(got.toarray(), expect, atol=1e-12)
    assert np.array_equal(got.indices, W.indices) and np.array_equal(got.indptr, W.indptr)


# -- composition -----------------------------------------------------------------------------

def test_chain_runs_transforms_in_order():
    params = _net().init(0)
    r = R.chain(constant_rule(1.0), R.scale(0.1), R.clip(1e-3))
    u, state = r.update(None, r.init(params), params, rng=0)
    norm = np.sqrt(sum(np.sum(v.data**2 if sp.issparse(v) else v**2) for v in u.values()))
    assert norm == pytest.approx(1e-3)
    assert state[0] == 1  # the estimator's own state advanced
    assert r.requires == R.Activity()
    with pytest.raises(ValueError, match="at most one estimator"):
        R.chain(R.scale(1.0), constant_rule(1.0))
    with pytest.raises(ValueError, match="at most one estimator"):
        R.chain(constant_rule(1.0), constant_rule(2.0))
    assert R.chain(R.scale(2.0), R.clip(1.0)).is_transform


def test_add_sums_estimators():
    params = _net().init(0)
    r = R.add(constant_rule(1.0), constant_rule(2.0, names=("W_out",)))
    u, _ = r.update(None, r.init(params), params, rng=0)
    np.testing.assert_allclose(u["W"].data, 1.0)
    np.testing.assert_allclose(u["W_out"], 3.0)
    with pytest.raises(ValueError, match="transforms"):
        R.add(constant_rule(1.0), R.scale(2.0))


def test_partition_routes_and_validates():
    params = _net().init(0)
    r = R.partition({"W": constant_rule(1.0), ("W_out", "b_out"): constant_rule(-1.0)})
    u, _ = r.update(None, r.init(params), params, rng=0)
    assert set(u) == {"W", "W_out"}
    np.testing.assert_allclose(u["W_out"], -1.0)
    bad = R.partition({"W_typo": constant_rule(1.0)})
    with pytest.raises(KeyError, match="W_typo"):
        bad.init(params)
    with pytest.raises(ValueError, match="more than one part"):
        R.partition({"W": constant_rule(1.0), ("W", "b"): constant_rule(2.0)})
    with pytest.raises(TypeError):
        R.partition([constant_rule(1.0)])


# -- transforms ------------------------------------------------------------------------------

def test_scale_clip_weight_decay_masked_by():
    params = _net().init(0)
    u = {"W_out": np.full((1, 20), 2.0), "W": constant_rule(1.0).update(None, 0, params)[0]["W"]}
    assert R.scale(0.5).update(u, None, params)[0]["W_out"][0, 0] == 1.0
    small = {"W_out": np.full((1, 20), 1e-4)}
    assert R.clip(1.0).update(small, None, params)[0] is small  # below the cap: untouched
    decayed = R.weight_decay(0.1).update(u, None, params)[0]
    np.testing.assert_allclose(decayed["W_out"], 2.0 - 0.1 * params["W_out"])
    mask = np.zeros((20, 20), dtype=bool)
    mask[:5] = True
    kept = R.masked_by({"W": mask}).update(u, None, params)[0]["W"].toarray()
    assert not kept[5:].any() and kept[:5][params["W"].toarray()[:5] != 0].all()
    only = R.masked_by(["W_out"]).update(u, None, params)[0]
    assert set(only) == {"W_out"}


def test_symmetrize_keeps_structure():
    topo = rc.Topology(nx.random_regular_graph(4, 20, seed=0))
    W = rc.weights.normal(topo, rng=0)
    u = {"W": W}
    s = R.symmetrize().update(u, None, {"W": W})[0]["W"]
    np.testing.assert_allclose(s.toarray(), s.toarray().T)
    np.testing.assert_allclose(s.toarray(), (W.toarray() + W.toarray().T) / 2)
    directed = rc.weights.normal(rc.Topology(nx.DiGraph([(0, 1), (1, 2)])), rng=0)
    with pytest.raises(ValueError, match="symmetric structure"):
        R.symmetrize().update({"W": directed}, None, {"W": directed})


@pytest.mark.parametrize("sparse", [True, False])
def test_normalize_rows_keeps_row_norms(sparse):
    net = _net(25, sparse=sparse)
    params = net.init(1)
    rng = np.random.default_rng(0)
    W = params["W"]
    if sp.issparse(W):
        u = {"W": sp.csr_array((rng.normal(size=W.nnz), W.indices, W.indptr), shape=W.shape)}
    else:
        u = {"W": rng.normal(size=W.shape) * (W != 0)}
    out = R.normalize_rows().update(u, None, params)[0]
    new = _dense(R.apply_updates(params, out)["W"])
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), np.linalg.norm(_dense(W), axis=1))


def test_heterosynaptic_cap_bounds_in_and_out_sums():
    topo = rc.Topology(nx.gnp_random_graph(30, 0.3, directed=True, seed=2))
    W = rc.weights.uniform(topo, 0.0, 1.0, rng=0)
    params = {"W": W}
    u = {"W": rc.masked.with_values(W, np.full(W.nnz, 0.5))}
    out = R.heterosynaptic_cap(max_in=2.0, max_out=3.0).update(u, None, params)[0]
    new = R.apply_updates(params, out)["W"].toarray()
    assert new.sum(axis=1).max() <= 2.0 + 1e-9
    assert new.sum(axis=0).max() <= 3.0 + 1e-9
    assert (new >= 0).all()
    with pytest.raises(ValueError, match="max_in"):
        R.heterosynaptic_cap()


# -- the train loop --------------------------------------------------------------------------

def test_train_records_and_calls_back():
    net, data = _net(), _data()
    seen = []

    def probe(epoch, params, evidence, updates):
        seen.append(epoch)
        return {"w_out_norm": float(np.linalg.norm(params["W_out"]))}

    params, hist = rc.train(net, net.init(0), R.chain(constant_rule(0.0), R.scale(1.0)), data,
                            epochs=4, rng=0, progress=False, callbacks=[probe])
    assert seen == [0, 1, 2, 3] and len(hist.loss) == 4 and len(hist.probes["w_out_norm"]) == 4
    assert hist.loss[0] == pytest.approx(hist.final_loss)  # a zero update changes nothing
    assert hist.rule.startswith("chain(constant") and hist.wall_time > 0


def test_train_threads_state_through_chunks():
    net = _net()
    series = tasks.sine_sum(401, rng=1)
    u, y = tasks.next_step(series)
    chunks = [tasks.TeacherForced(u[i:i + 100], y[i:i + 100]) for i in range(0, 400, 100)]
    starts = []

    def probe(epoch, params, evidence, updates):
        starts.append(evidence.state.copy())

    rc.train(net, net.init(0), constant_rule(0.0), chunks, epochs=4, progress=False,
             callbacks=[probe])
    whole, _ = net.run(net.init(0), u)
    # The state after chunk k is the state of one uninterrupted run at step 100 (k + 1).
    for k in range(4):
        np.testing.assert_allclose(starts[k], whole[100 * (k + 1) - 1], atol=1e-12)


def test_train_errors_name_rule_and_epoch():
    net, data = _net(), _data()
    params = net.init(0)
    with pytest.raises(ValueError, match="epochs"):
        rc.train(net, params, constant_rule(0.0), data, epochs=0)
    with pytest.raises(ValueError, match="transform"):
        rc.train(net, params, R.scale(1.0), data, epochs=1)
    two_phase = R.Rule(name="needs_phases", update=lambda *a, **k: ({}, None),
                       requires=R.TwoPhase(beta=0.1))
    with pytest.raises(NotImplementedError, match="needs_phases.*ESN.*TwoPhase"):
        rc.train(net, params, two_phase, data, epochs=1, progress=False)
    with pytest.raises(rc.DivergenceError, match="exploding.*epoch 2"):
        exploding = R.Rule(name="exploding", requires=R.Activity(), init=lambda p: 0,
                           update=lambda ev, s, p, rng=None: ({"W_out": np.full((1, 20), 1e308 if s >= 2 else 0.0)}, s + 1))
        rc.train(net, params, R.chain(exploding, R.scale(10.0)), data, epochs=5, progress=False)


def test_adam_matches_its_equations_and_keeps_structure():
    params = _net().init(0)
    rng = np.random.default_rng(0)
    W = params["W"]
    rule = R.adam(learning_rate=0.1, b1=0.5, b2=0.9, eps=1e-8)
    state = rule.init(params)
    m = v = 0.0
    for k in range(1, 4):
        d = rng.normal(size=W.nnz)
        u, state = rule.update({"W": rc.masked.with_values(W, d)}, state, params)
        m = 0.5 * m + 0.5 * d
        v = 0.9 * v + 0.1 * d * d
        expect = 0.1 * (m / (1 - 0.5**k)) / (np.sqrt(v / (1 - 0.9**k)) + 1e-8)
        np.testing.assert_allclose(u["W"].data, expect, rtol=1e-12)
        assert np.array_equal(u["W"].indices, W.indices)
    # The first step moves every coordinate by about the learning rate, whatever its scale.
    u, _ = rule.update({"W_out": np.array([[1e-3, -1e3]])}, rule.init(params), params)
    np.testing.assert_allclose(np.abs(u["W_out"]), 0.1, rtol=1e-4)
    with pytest.raises(ValueError, match="b1"):
        R.adam(b1=1.0)


def test_train_stops_when_the_loss_runs_away():
    net, data = _net(), _data()
    params = net.init(0)
    with pytest.raises(rc.DivergenceError, match="loss grew"):
        rc.train(net, params, R.chain(R.bptt(), R.scale(-50.0)), data, epochs=30,
                 progress=False, max_loss_growth=100.0)


def test_data_of_the_wrong_shape():
    net = _net()
    params = net.init(0)
    with pytest.raises(ValueError, match="same steps"):
        tasks.TeacherForced(np.zeros((10, 1)), np.zeros((9, 1)))
    with pytest.raises(ValueError, match="input channel"):
        rc.train(net, params, R.bptt(), (np.zeros((10, 2)), np.zeros((10, 1))), epochs=1)
    with pytest.raises(ValueError, match="target channel"):
        rc.train(net, params, R.bptt(), (np.zeros((10, 1)), np.zeros((10, 3))), epochs=1)
    with pytest.raises(TypeError, match="objective"):
        rc.train(net, params, R.bptt(), np.zeros((10, 1)), epochs=1)
    with pytest.raises(ValueError, match="warmup"):
        tasks.ClosedLoop(np.zeros((10, 1)), warmup=8, horizon=5)
    with pytest.raises(ValueError, match="sigma"):
        R.node_perturbation(sigma=0.0)


def test_dense_W_updates_stay_on_the_graph_before_transforms():
    # A dense W must train exactly like a sparse one: a Hebbian update reaches the transforms
    # already restricted to the graph, so normalize_rows keeps every row norm.
    for sparse in (True, False):
        net = _net(sparse=sparse)
        params = net.init(0)
        rule = R.chain(R.hebbian(0.5, params=("W",)), R.normalize_rows())
        ev = net.collect(params, _data(), rule.requests)
        u, _ = rule.update(ev, rule.init(params), params)
        new = _dense(R.apply_updates(params, u)["W"])
        off = ~net.topology.mask.toarray()
        assert not _dense(u["W"])[off].any()
        np.testing.assert_allclose(np.linalg.norm(new, axis=1),
                                   np.linalg.norm(_dense(params["W"]), axis=1), rtol=1e-12)


def test_transform_names_accept_a_bare_string():
    params = _net().init(0)
    u = {"W_out": np.ones((1, 20)), "b_out": np.ones(1)}
    assert set(R.masked_by("W_out").update(u, None, params)[0]) == {"W_out"}
    with pytest.raises(TypeError, match="step"):
        R.scale("a")
