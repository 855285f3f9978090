"""Hopfield network: energy descent, recall kernels against reference loops, capacity, graphs,
training and bad input."""

import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur import kernels, tasks
from recur import rules as R
from recur.metrics import overlap
from recur.networks import hopfield_recall as hr


def _complete(n, **kw):
    return rc.Hopfield(rc.Topology(nx.complete_graph(n)), **kw)


def _random_params(N, rng, *, diag=0.0, bias=0.5, ties=False):
    """Symmetric Gaussian W (or a small-integer W, with many exact ties) and a bias."""
    if ties:
        A = rng.integers(-1, 2, (N, N)).astype(float)
    else:
        A = rng.normal(size=(N, N))
    W = np.triu(A, 1)
    W = W + W.T
    np.fill_diagonal(W, diag * np.abs(rng.normal(size=N)))
    b = np.zeros(N) if ties else bias * rng.normal(size=N)
    return {"W": W, "b": b}


def _energy(W, b, s):
    return -0.5 * s @ W @ s - b @ s


def _sync_reference(W, b, S, max_sweeps):
    """Probe by probe, sweep by sweep, fresh fields; ties keep the state."""
    tol = hr.tie_tolerance(W, b)
    out = []
    for s in S:
        s = s.copy()
        for _ in range(max_sweeps):
            h = np.array([W[i] @ s + b[i] for i in range(len(s))])
            new = np.where(h > tol, 1.0, np.where(h < -tol, -1.0, s))
            if np.array_equal(new, s):
                break
            s = new
        out.append(s)
    return np.array(out)


def _probes(B, N, rng):
    return np.where(rng.random((B, N)) < 0.5, 1.0, -1.0)


# -- energy -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["gauss", "gauss_diag", "ties"])
def test_energy_never_increases_per_unit_update(seed, kind):
    """Every single-unit asynchronous update (per-unit reference loop) lowers or keeps E."""
    rng = np.random.default_rng(seed)
    N = 24
    p = _random_params(N, rng, diag=1.0 if kind == "gauss_diag" else 0.0, ties=kind == "ties")
    W, b = p["W"], p["b"]
    tol = hr.tie_tolerance(W, b)
    for s in _probes(8, N, rng):
        E = _energy(W, b, s)
        for sweep in range(30):
            flips = 0
            for i in rng.permutation(N):
                h = W[i] @ s + b[i]
                new = 1.0 if h > tol[i] else (-1.0 if h < -tol[i] else s[i])
                if new != s[i]:
                    s[i] = new
                    flips += 1
                    E_new = _energy(W, b, s)
                    assert E_new < E + 1e-9
                    E = E_new
            if flips == 0:
                break
        assert flips == 0  # settled: a fixed point within the budget


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_energy_never_increases_sweepwise(backend):
    if backend == "numba" and not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(11)
    N = 60
    hop = _complete(N, backend=backend)
    for trial in range(5):
        p = _random_params(N, rng, diag=float(trial % 2))
        probes = _probes(16, N, rng)
        states, end = hop.run(p, 15, probes, mode="async", rng=rng)
        E = np.column_stack([hop.energy(p, probes)] +
                            [hop.energy(p, states[:, t]) for t in range(15)])
        assert np.all(np.diff(E, axis=1) <= 1e-9)
        assert np.all(hop.energy(p, hop.recall(p, probes, rng=rng)) <= hop.energy(p, probes)
                      + 1e-9)


def test_energy_formula_and_shapes():
    rng = np.random.default_rng(0)
    hop = _complete(7)
    p = _random_params(7, rng)
    S = _probes(5, 7, rng)
    E = hop.energy(p, S)
    assert E.shape == (5,)
    np.testing.assert_allclose(E, [_energy(p["W"], p["b"], s) for s in S])
    assert isinstance(hop.energy(p, S[0]), float)
    assert hop.energy(p, S[0]) == pytest.approx(E[0])


# -- recall against references ------------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
def test_async_sweep_matches_per_unit_reference(ties):
    """Given the same visiting orders, both backends make exactly the reference's updates."""
    rng = np.random.default_rng(3)
    N, B = 40, 12
    p = _random_params(N, rng, ties=ties)
    W, b = p["W"], p["b"]
    S0 = _probes(B, N, rng)
    backends = ["numpy"] + (["numba"] if kernels.HAVE_NUMBA else [])
    for _ in range(4):
        orders = np.array([rng.permutation(N) for _ in range(B)])
        ref = S0.copy()
        ref_flips = [hr.reference_async_sweep(W, b, s, o) for s, o in zip(ref, orders)]
        for backend in backends:
            S = S0.copy()
            H = hr.fields(W, b, S)
            flips = hr.async_sweep(W, b, S, H, orders, backend=backend)
            np.testing.assert_array_equal(S, ref)
            np.testing.assert_array_equal(flips, ref_flips)
            np.testing.assert_allclose(H, hr.fields(W, b, S), atol=1e-10)
        S0 = ref


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("seed", range(3))
def test_async_kernel_equals_numpy_fallback(seed):
    N = 80
    xi = tasks.random_patterns(12, N, rng=seed)
    cues = tasks.corrupt(xi, 0.2, rng=seed)
    nb, npy = _complete(N, backend="numba"), _complete(N, backend="numpy")
    p = npy.store(npy.init(), xi)
    a, sa = nb.recall(p, cues, rng=seed, return_sweeps=True)
    b, sb = npy.recall(p, cues, rng=seed, return_sweeps=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    assert np.all(sa < 100)
    ra, ea = nb.run(p, 3, cues, mode="async", rng=seed)
    rb, eb = npy.run(p, 3, cues, mode="async", rng=seed)
    np.testing.assert_array_equal(ra, rb)


@pytest.mark.parametrize("seed", range(3))
def test_sync_recall_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    N = 30
    hop = _complete(N)
    for p in (_random_params(N, rng), _random_params(N, rng, ties=True),
              hop.store(hop.init(), tasks.random_patterns(6, N, rng=rng))):
        probes = _probes(10, N, rng)
        p0 = probes.copy()
        for max_sweeps in (1, 3, 50):
            np.testing.assert_array_equal(hop.recall(p, probes, mode="sync",
                                                     max_sweeps=max_sweeps),
                                          _sync_reference(p["W"], p["b"], probes, max_sweeps))
        np.testing.assert_array_equal(probes, p0)


def test_async_reaches_fixed_points_and_counts_sweeps():
    rng = np.random.default_rng(5)
    N = 50
    hop = _complete(N)
    p = _random_params(N, rng)
    out, sweeps = hop.recall(p, _probes(20, N, rng), rng=rng, return_sweeps=True)
    assert np.all(sweeps < 100)
    assert hop.fixed_points(p, out).all()
    # a fixed point takes no sweep, and recall leaves it alone
    again, s2 = hop.recall(p, out, rng=rng, return_sweeps=True)
    np.testing.assert_array_equal(again, out)
    assert not s2.any()


def test_sync_two_cycle_stops_at_max_sweeps():
    """W = -J (antiferromagnet on 2 units): from (1, 1) sync flips both forever."""
    hop = rc.Hopfield(rc.Topology(nx.complete_graph(2)))
    p = {"W": np.array([[0.0, -1.0], [-1.0, 0.0]]), "b": np.zeros(2)}
    out, sweeps = hop.recall(p, np.ones(2), mode="sync", max_sweeps=7, return_sweeps=True)
    assert sweeps == 7
    np.testing.assert_array_equal(out, -np.ones(2))
    # async settles in one sweep to an antiparallel state
    out, sweeps = hop.recall(p, np.ones(2), rng=0, return_sweeps=True)
    assert sweeps == 1 and out.sum() == 0


def test_recall_shapes_determinism_and_no_mutation():
    hop = _complete(20)
    xi = tasks.random_patterns(3, 20, rng=0)
    p = hop.store(hop.init(), xi)
    W0 = p["W"].copy()
    cues = tasks.corrupt(xi, 0.2, rng=1)
    c0 = cues.copy()
    for mode in ("async", "sync"):
        out = hop.recall(p, cues, mode=mode, rng=2)
        assert out.shape == cues.shape
        assert set(np.unique(out)) <= {-1.0, 1.0}
        np.testing.assert_array_equal(out, hop.recall(p, cues, mode=mode, rng=2))
        single = hop.recall(p, cues[0], mode=mode, rng=2)
        assert single.shape == (20,)
    np.testing.assert_array_equal(cues, c0)
    np.testing.assert_array_equal(p["W"], W0)


def test_step_run_and_initial_state():
    hop = _complete(10)
    p = hop.store(hop.init(), tasks.random_patterns(2, 10, rng=0))
    s = hop.initial_state()
    assert s.shape == (10,) and np.all(s == 1)
    assert hop.initial_state(batch=4).shape == (4, 10)
    probes = _probes(3, 10, np.random.default_rng(0))
    before = probes.copy()
    for mode in ("sync", "async"):
        states, end = hop.run(p, 5, probes, mode=mode, rng=0)
        assert states.shape == (3, 5, 10)
        np.testing.assert_array_equal(end, states[:, -1])
        np.testing.assert_array_equal(probes, before)
    one = hop.step(p, s)
    assert one.shape == (10,)
    np.testing.assert_array_equal(one, hop.recall(p, s, mode="sync", max_sweeps=1))
    states, end = hop.run(p, 4, s, mode="async", rng=1)
    assert states.shape == (4, 10)


# -- capacity (statistics over seeds) -----------------------------------------------------

def _cue_overlap(hop, rule, P, seed):
    rng = np.random.default_rng(seed)
    xi = tasks.random_patterns(P, hop.n_units, rng=rng)
    p = hop.store(hop.init(), xi, rule)
    cues = tasks.corrupt(xi, 0.1, rng=rng)
    return float(np.mean(overlap(hop.recall(p, cues, rng=rng), xi)))


def test_hebbian_capacity_from_ten_percent_cues():
    """N=100: at alpha 0.05 a 10%-flipped cue is cleaned up (overlap > 0.95); at alpha 0.3,
    twice past alpha_c ~ 0.138, recall fails (overlap well below the cue's 0.8)."""
    hop = _complete(100)
    low = [_cue_overlap(hop, R.hebbian(), 5, s) for s in range(4)]
    high = [_cue_overlap(hop, R.hebbian(), 30, s) for s in range(4)]
    assert min(low) > 0.95
    assert max(high) < 0.75


def test_overlap_falls_with_load_for_every_rule():
    hop = _complete(100)
    for rule, loads in ((R.hebbian(), (5, 15, 30)), (R.storkey(), (10, 35, 60)),
                        (R.pseudo_inverse(), (20, 50, 80))):
        m = [np.mean([_cue_overlap(hop, rule, P, s) for s in range(3)]) for P in loads]
        assert m[0] > 0.97, (rule.name, m)
        assert m[0] > m[1] > m[2], (rule.name, m)


# -- graphs -------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [R.hebbian(), R.storkey(), R.pseudo_inverse(),
                                  R.storkey("keep"), R.pseudo_inverse("keep")],
                         ids=["hebbian", "storkey", "pinv", "storkey_keep", "pinv_keep"])
def test_sparse_graph_weights_stay_on_graph_and_symmetric(rule):
    G = nx.random_regular_graph(8, 60, seed=2)
    hop = rc.Hopfield(rc.Topology(G))
    xi = tasks.random_patterns(6, 60, rng=0)
    p = hop.store(hop.init(), xi, rule)
    hop.check_params(p)
    off = ~hop.mask
    np.fill_diagonal(off, False)
    assert not p["W"][off].any()
    np.testing.assert_array_equal(p["W"], p["W"].T)
    if rule.hparams.get("diagonal", "zero") == "zero":
        assert not np.diagonal(p["W"]).any()
    # each unit sees only its 8 neighbours
    assert np.all(np.count_nonzero(p["W"] - np.diag(np.diagonal(p["W"])), axis=1) <= 8)


def test_directed_graph_needs_a_symmetric_mask():
    with pytest.raises(ValueError, match="topology must have symmetric connections.*0 -> 1"):
        rc.Hopfield(rc.Topology(nx.DiGraph([(0, 1), (1, 2), (2, 1)])))
    with pytest.raises(ValueError, match="'b' -> 'a' has no reverse"):
        rc.Hopfield(rc.Topology(nx.DiGraph([("a", "c"), ("c", "a"), ("b", "a")])))
    ok = rc.Hopfield(rc.Topology(nx.DiGraph([(0, 1), (1, 0), (1, 2), (2, 1)])))
    m = ok.mask
    np.testing.assert_array_equal(m, m.T)
    assert m.sum() == 4


def test_self_loops_are_not_connections():
    G = nx.complete_graph(4)
    G.add_edge(0, 0)
    hop = rc.Hopfield(rc.Topology(G))
    assert not np.diagonal(hop.mask).any()


def test_init_scale_draws_symmetric_weights_on_the_graph():
    G = nx.random_regular_graph(4, 20, seed=0)
    hop = rc.Hopfield(rc.Topology(G), init_scale=0.5)
    p = hop.init(0)
    hop.check_params(p)
    assert p["W"][hop.mask].std() == pytest.approx(0.5, rel=0.3)
    np.testing.assert_array_equal(p["W"], hop.init(0)["W"])
    assert not _complete(5).init(0)["W"].any()


# -- training loop ------------------------------------------------------------------------

def test_train_with_hebbian_keeps_invariants():
    G = nx.random_regular_graph(10, 80, seed=1)
    hop = rc.Hopfield(rc.Topology(G))
    xi = tasks.random_patterns(4, 80, rng=3)
    p0 = hop.init()
    p, hist = rc.train(hop, p0, R.hebbian(), xi, epochs=1, progress=False)
    hop.check_params(p)
    assert not p0["W"].any()  # not mutated
    np.testing.assert_allclose(p["W"], hop.store(hop.init(), xi)["W"])
    assert hist.loss == [1.0]  # the empty network holds no bit
    assert hist.final_loss < 0.1


def test_train_with_storkey_refines_and_keeps_invariants():
    hop = _complete(40)
    xi = tasks.random_patterns(10, 40, rng=0)
    p, hist = rc.train(hop, hop.init(), R.storkey(), xi, epochs=3, progress=False)
    hop.check_params(p)
    assert not np.diagonal(p["W"]).any()
    assert hist.final_loss <= hist.loss[1] <= hist.loss[0] == 1.0


def test_collect_serves_activity_and_patterns():
    hop = _complete(6)
    xi = tasks.random_patterns(3, 6, rng=0)
    p = hop.init()
    e = hop.collect(p, xi, (R.Activity(), R.Patterns()), state="s")
    assert e.state == "s"
    trace = e[R.Activity()]
    np.testing.assert_array_equal(trace.pre["W"], xi)
    np.testing.assert_array_equal(trace.post["W"], xi)
    assert not np.diagonal(trace.masks["W"]).any()
    ps = e[R.Patterns()]
    np.testing.assert_array_equal(ps.patterns, xi)
    assert e.loss == 1.0
    with pytest.raises(NotImplementedError, match="Gradient"):
        hop.collect(p, xi, R.Gradient())


def test_loss_is_fraction_of_unheld_bits():
    hop = _complete(30)
    xi = tasks.random_patterns(12, 30, rng=0)
    p = hop.store(hop.init(), xi)
    H = xi @ p["W"].T + p["b"]
    # a zero field (up to rounding) counts as not held
    assert hop.loss(p, xi) == pytest.approx(np.mean(xi * H <= 1e-9))
    assert 0.0 < hop.loss(p, xi) < 0.5


# -- bad input ----------------------------------------------------------------------------

def test_bad_patterns_are_rejected():
    hop = _complete(8)
    p = hop.init()
    with pytest.raises(ValueError, match="patterns must hold \\+1/-1"):
        hop.store(p, np.zeros((2, 8)))
    with pytest.raises(ValueError, match="patterns must have length 8"):
        hop.store(p, np.ones((2, 7)))
    with pytest.raises(ValueError, match="patterns must have length 8"):
        hop.collect(p, np.ones((2, 9)), R.Patterns())
    with pytest.raises(ValueError, match="probes must hold \\+1/-1"):
        hop.recall(p, np.full(8, 0.5))
    with pytest.raises(ValueError, match="probes must have length 8"):
        hop.recall(p, np.ones(3))
    with pytest.raises(ValueError, match="mode must be one of"):
        hop.recall(p, np.ones(8), mode="parallel")
    with pytest.raises(ValueError, match="max_sweeps must be > 0"):
        hop.recall(p, np.ones(8), max_sweeps=0)
    with pytest.raises(TypeError, match="rule must be a recur Rule"):
        hop.store(p, np.ones((1, 8)), rule="hebbian")
    with pytest.raises(ValueError, match="transform"):
        hop.store(p, np.ones((1, 8)), rule=R.scale(2.0))


def test_bad_params_are_rejected():
    G = nx.cycle_graph(6)
    hop = rc.Hopfield(rc.Topology(G))
    W = np.zeros((6, 6))
    W[0, 1] = 1.0
    with pytest.raises(ValueError, match="params\\['W'\\] must be symmetric"):
        hop.recall({"W": W, "b": np.zeros(6)}, np.ones(6))
    W = np.zeros((6, 6))
    W[0, 3] = W[3, 0] = 1.0  # 0 and 3 are not neighbours on the cycle
    with pytest.raises(ValueError, match="off the graph"):
        hop.check_params({"W": W, "b": np.zeros(6)})
    with pytest.raises(ValueError, match="shape"):
        hop.check_params({"W": np.zeros((5, 5)), "b": np.zeros(6)})
    with pytest.raises(ValueError, match="missing 'b'"):
        hop.check_params({"W": np.zeros((6, 6))})
    with pytest.raises(rc.DivergenceError):
        hop.check_params({"W": np.full((6, 6), np.nan), "b": np.zeros(6)})
    with pytest.raises(TypeError, match="topology"):
        rc.Hopfield(nx.complete_graph(3))
    with pytest.raises(ValueError, match="init_scale"):
        rc.Hopfield(rc.Topology(G), init_scale=-1.0)


def test_constrain_symmetrises_and_masks():
    hop = rc.Hopfield(rc.Topology(nx.cycle_graph(5)))
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 5))
    c = hop.constrain({"W": W, "b": np.zeros(5)})
    hop.check_params(c)
    np.testing.assert_array_equal(np.diagonal(c["W"]), np.diagonal(W))
    assert c["W"][0, 1] == pytest.approx(0.5 * (W[0, 1] + W[1, 0]))
