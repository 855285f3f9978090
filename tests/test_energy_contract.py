"""Contract checks for the energy-based networks (Hopfield, Boltzmann, EnergyNet).

Each case is a network, data it learns from and a rule that trains it. Every case must give
the same parameters and the same evidence for the same seed, leave its inputs untouched, keep
``W`` symmetric, zero on the diagonal and zero off the graph after training, and refuse a
non-symmetric ``W``.
"""

import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur import rules as R
from recur import tasks


def _sparse_graph(n, seed):
    return nx.random_regular_graph(4, n, seed=seed)


def _hopfield():
    net = rc.Hopfield(rc.Topology(_sparse_graph(24, 1)))
    data = tasks.random_patterns(3, 24, rng=0)
    return net, data, R.hebbian()


def _hopfield_storkey():
    net = rc.Hopfield(rc.Topology(_sparse_graph(24, 2)))
    return net, tasks.random_patterns(3, 24, rng=1), R.storkey()


def _boltzmann_general():
    G = nx.gnp_random_graph(9, 0.5, seed=4)
    net = rc.Boltzmann(rc.Topology(G), visible=[0, 1, 2, 3, 4], burn_in=2, sample_sweeps=3)
    data = tasks.bars_and_stripes(2)[:, :4]
    data = np.hstack([data, data[:, :1]])
    return net, data, R.chain(R.boltzmann("chl"), R.scale(0.1))


def _rbm():
    net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(9, 5)))
    return net, tasks.bars_and_stripes(3), R.chain(R.boltzmann("cd", k=1), R.scale(0.1))


def _rbm_persistent():
    net = rc.Boltzmann(rc.Topology(rc.graphs.bipartite_graph(9, 5)))
    rule = R.chain(R.boltzmann("cd", k=2, persistent=True, n_chains=7), R.scale(0.1))
    return net, tasks.bars_and_stripes(3), rule


def _energy(rule):
    def make():
        G = nx.Graph()
        inputs = [("x", i) for i in range(3)]
        hidden = [("h", i) for i in range(6)]
        outputs = [("y", i) for i in range(2)]
        G.add_nodes_from(inputs, role="input")
        G.add_nodes_from(hidden)
        G.add_nodes_from(outputs, role="output")
        G.add_edges_from((a, b) for a in inputs for b in hidden)
        G.add_edges_from((a, b) for a in hidden for b in outputs)
        G.add_edges_from(nx.cycle_graph(hidden).edges)
        net = rc.EnergyNet(rc.Topology(G))
        rng = np.random.default_rng(0)
        x = rng.uniform(0.0, 1.0, (8, 3))
        y = rng.uniform(0.2, 0.8, (8, 2))
        return net, (x, y), R.chain(rule, R.scale(0.05))
    return make


CASES = {
    "hopfield-hebbian": _hopfield,
    "hopfield-storkey": _hopfield_storkey,
    "boltzmann-general": _boltzmann_general,
    "rbm-cd": _rbm,
    "rbm-pcd": _rbm_persistent,
    "energy-ep": _energy(R.equilibrium_propagation(0.1)),
    "energy-chl": _energy(R.contrastive_hebbian()),
    "energy-generec": _energy(R.generec()),
    "energy-node-perturbation": _energy(R.node_perturbation(1e-3, n_samples=4)),
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]()


def _copy(tree):
    if isinstance(tree, dict):
        return {k: np.array(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(np.array(v) for v in tree)
    return np.array(tree)


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    elif isinstance(a, tuple):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_params_and_evidence(case):
    net, data, rule = case
    _assert_same(net.init(5), net.init(np.random.default_rng(5)))
    params = net.init(3)
    a = net.collect(params, data, rule.requests, rng=11)
    b = net.collect(params, data, rule.requests, rng=11)
    assert a.loss == b.loss
    ua, _ = rule.update(a, rule.init(params), params, rng=2)
    ub, _ = rule.update(b, rule.init(params), params, rng=2)
    _assert_same(ua, ub)


def test_training_is_reproducible_and_leaves_inputs_untouched(case):
    net, data, rule = case
    params = net.init(3)
    params_before, data_before = _copy(params), _copy(data)
    a, _ = rc.train(net, params, rule, data, epochs=3, rng=7, progress=False)
    b, _ = rc.train(net, params, rule, data, epochs=3, rng=7, progress=False)
    _assert_same(a, b)
    _assert_same(params, params_before)
    _assert_same(data, data_before)


def test_invariants_hold_after_training(case):
    net, data, rule = case
    params, _ = rc.train(net, net.init(3), rule, data, epochs=4, rng=1, progress=False)
    W = np.asarray(params["W"])
    mask = net.topology.mask.toarray()
    mask = mask | mask.T
    np.testing.assert_array_equal(W, W.T)
    assert np.all(W[~mask] == 0.0)
    net.check_params(params)


def test_a_non_symmetric_w_is_refused(case):
    net, data, rule = case
    params = net.init(3)
    W = np.array(params["W"])
    i, j = np.argwhere(W != 0.0)[0] if np.any(W != 0.0) else np.argwhere(
        net.topology.mask.toarray())[0]
    W[i, j] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        net.check_params({**params, "W": W})


def test_symmetric_check_tolerates_rounding_only_and_names_the_problem():
    from recur.networks.symmetric import check_symmetric_params, symmetrized

    allowed = np.ones((4, 4), dtype=bool)
    np.fill_diagonal(allowed, False)
    allowed[0, 3] = allowed[3, 0] = False
    rng = np.random.default_rng(0)
    W = np.where(allowed, rng.normal(size=(4, 4)), 0.0)
    W = W + W.T
    params = {"W": W, "b": np.zeros(4)}
    check_symmetric_params(params, allowed, "a test network")
    rounding = W.copy()
    rounding[1, 2] += 1e-14
    check_symmetric_params({**params, "W": rounding}, allowed, "a test network")
    skew = W.copy()
    skew[1, 2] += 1e-3
    with pytest.raises(ValueError, match="symmetric.*a test network"):
        check_symmetric_params({**params, "W": skew}, allowed, "a test network")
    stray = W.copy()
    stray[0, 3] = stray[3, 0] = 0.5
    with pytest.raises(ValueError, match="2 nonzero weights off the graph or on the diagonal"):
        check_symmetric_params({**params, "W": stray}, allowed, "a test network")
    fixed = symmetrized({**params, "W": skew + stray - W}, allowed)["W"]
    np.testing.assert_array_equal(fixed, fixed.T)
    assert np.all(fixed[~allowed] == 0.0)
    assert symmetrized(params, allowed) is params


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_quick_invariant_check_agrees_with_the_full_one(backend, monkeypatch):
    """The one-pass check that lets valid parameters through without the full validation
    answers True exactly when the invariant holds (both backends)."""
    from recur import kernels
    from recur.networks import symmetric

    if backend == "numba" and not kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    if backend == "numpy":
        monkeypatch.setattr(kernels, "use_numba", lambda *a, **k: False)
    rng = np.random.default_rng(4)
    allowed = rng.random((6, 6)) < 0.5
    allowed = allowed | allowed.T
    np.fill_diagonal(allowed, False)
    W = np.where(allowed, rng.normal(size=(6, 6)), 0.0)
    W = np.where(allowed, W + W.T, 0.0)
    b = rng.normal(size=6)
    assert symmetric.invariant_holds(W, b, allowed)
    i, j = np.argwhere(allowed)[0]
    k, m = np.argwhere(~allowed & ~np.eye(6, dtype=bool))[0]
    broken = []
    for change in ("skew", "stray", "diagonal", "nan_w", "inf_w", "inf_b", "nan_b"):
        V, c = W.copy(), b.copy()
        if change == "skew":
            V[i, j] += 1e-3
        elif change == "stray":
            V[k, m] = V[m, k] = 0.5
        elif change == "diagonal":
            V[2, 2] = 1.0
        elif change == "nan_w":
            V[i, j] = V[j, i] = np.nan
        elif change == "inf_w":
            V[i, j] = V[j, i] = np.inf
        elif change == "inf_b":
            c[3] = np.inf
        else:
            c[0] = np.nan
        broken.append((change, V, c))
    for change, V, c in broken:
        assert not symmetric.invariant_holds(V, c, allowed), change
        with pytest.raises((ValueError, FloatingPointError)):
            symmetric.check_symmetric_params({"W": V, "b": c}, allowed, "a test network")
    # Other dtypes, shapes and array-likes are not taken by the quick check; the full one
    # decides. A read-only mask (Hopfield's) is.
    assert not symmetric.invariant_holds(W.astype(np.float32), b, allowed)
    assert not symmetric.invariant_holds(W.astype(bool), b, allowed)
    assert not symmetric.invariant_holds(W, b[:, None], allowed)
    assert not symmetric.invariant_holds(W.tolist(), b, allowed)
    frozen = allowed.copy()
    frozen.flags.writeable = False
    assert symmetric.invariant_holds(W, b, frozen)
    symmetric.check_symmetric_params({"W": W.tolist(), "b": list(b)}, allowed, "a test network")
