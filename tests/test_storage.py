"""Hopfield storage rules: Hebbian, Storkey and pseudo-inverse against closed forms and loops."""

import networkx as nx
import numpy as np
import pytest
from scipy.linalg import hadamard

import recur as rc
from recur import rules as R
from recur import tasks


def _complete(n):
    return rc.Hopfield(rc.Topology(nx.complete_graph(n)))


def _storkey_loops(W0, xi, mask, keep):
    """Storkey 1997 literally: pattern by pattern, h_ij = sum over k != i, j, triple loop."""
    N = W0.shape[0]
    W = W0.copy()
    for x in xi:
        h = np.zeros((N, N))
        for i in range(N):
            for j in range(N):
                h[i, j] = sum(W[i, k] * x[k] for k in range(N) if k != i and k != j)
        new = W.copy()
        for i in range(N):
            for j in range(N):
                if (i == j and not keep) or (i != j and not mask[i, j]):
                    continue
                new[i, j] = W[i, j] + (x[i] * x[j] - x[i] * h[j, i] - h[i, j] * x[j]) / N
        W = new
    return W


# -- Hebbian ------------------------------------------------------------------------------

@pytest.mark.parametrize("P", [1, 3, 8])
def test_hebbian_storage_of_orthogonal_patterns(P):
    """Hadamard rows are orthogonal: W = (1/P) sum xi xi^T off the diagonal, and W xi^mu =
    (N/P - 1) xi^mu, so every pattern is a fixed point with a positive margin."""
    N = 16
    hop = _complete(N)
    xi = hadamard(N)[1:P + 1].astype(float)
    p = hop.store(hop.init(), xi)
    expected = xi.T @ xi / P
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(p["W"], expected, atol=1e-14)
    np.testing.assert_allclose(p["W"] @ xi.T, (N / P - 1.0) * xi.T, atol=1e-12)
    assert hop.fixed_points(p, xi).all()
    assert hop.loss(p, xi) == 0.0
    np.testing.assert_array_equal(hop.recall(p, xi, rng=0), xi)
    np.testing.assert_array_equal(hop.recall(p, xi, mode="sync"), xi)


def test_hebbian_learning_rate_and_store_is_additive():
    hop = _complete(12)
    xi = tasks.random_patterns(3, 12, rng=0)
    once = hop.store(hop.init(), xi, R.hebbian(0.5))
    kept = once["W"].copy()
    twice = hop.store(once, xi, R.hebbian(0.5))
    np.testing.assert_array_equal(once["W"], kept)  # store returns new params
    for rule in (R.storkey(), R.pseudo_inverse()):
        hop.store(once, xi, rule)
        np.testing.assert_array_equal(once["W"], kept)
    np.testing.assert_allclose(twice["W"], 2 * once["W"])
    np.testing.assert_allclose(hop.store(hop.init(), xi)["W"], 2 * once["W"])


# -- Storkey ------------------------------------------------------------------------------

@pytest.mark.parametrize("diagonal", ["zero", "keep"])
@pytest.mark.parametrize("N, P", [(4, 2), (5, 3)])
def test_storkey_matches_triple_loop(diagonal, N, P):
    rng = np.random.default_rng(N * 10 + P)
    hop = _complete(N)
    xi = tasks.random_patterns(P, N, rng=rng)
    p = hop.store(hop.init(), xi, R.storkey(diagonal))
    ref = _storkey_loops(np.zeros((N, N)), xi, hop.mask, diagonal == "keep")
    np.testing.assert_allclose(p["W"], ref, atol=1e-14)
    if diagonal == "zero":
        assert not np.diagonal(p["W"]).any()


def test_storkey_by_hand_first_two_patterns():
    """N=4: the first pattern gives xi xi^T / N (h = 0); the second is corrected by the first.
    Worked out on paper for xi1 = (1, 1, 1, 1), xi2 = (1, -1, 1, -1)."""
    hop = _complete(4)
    x1 = np.ones(4)
    x2 = np.array([1.0, -1.0, 1.0, -1.0])
    p1 = hop.store(hop.init(), x1[None], R.storkey())
    np.testing.assert_allclose(p1["W"], (np.ones((4, 4)) - np.eye(4)) / 4)
    p2 = hop.store(p1, x2[None], R.storkey())
    # After xi1, w_ik = 1/4 off the diagonal. For xi2, h_ij = sum_{k != i,j} xi2_k / 4:
    # h_01 = (x2[2] + x2[3]) / 4 = 0, h_02 = (x2[1] + x2[3]) / 4 = -1/2, h_20 = h_02, ...
    # dw_02 = (1 - 1 * h_20 - h_02 * 1) / 4 = (1 + 1/2 + 1/2) / 4 = 1/2, so w_02 = 3/4;
    # dw_01 = (-1 - 0 - 0) / 4 = -1/4, so w_01 = 0.
    assert p2["W"][0, 2] == pytest.approx(0.75)
    assert p2["W"][0, 1] == pytest.approx(0.0)
    ref = _storkey_loops(np.zeros((4, 4)), np.stack([x1, x2]), hop.mask, False)
    np.testing.assert_allclose(p2["W"], ref, atol=1e-14)


def test_storkey_from_a_nonzero_start_and_on_a_sparse_graph():
    """The incremental sums use the current W, and on a sparse graph only its edges."""
    rng = np.random.default_rng(7)
    G = nx.random_regular_graph(3, 8, seed=1)
    hop = rc.Hopfield(rc.Topology(G), init_scale=0.3)
    start = hop.init(rng)
    xi = tasks.random_patterns(3, 8, rng=rng)
    p = hop.store(start, xi, R.storkey())
    ref = _storkey_loops(start["W"], xi, hop.mask, False)
    np.testing.assert_allclose(p["W"], ref, atol=1e-14)
    assert not p["W"][~hop.mask].any()
    np.testing.assert_array_equal(p["W"], p["W"].T)


def test_storkey_stores_beyond_hebb():
    """N=100, P=20 (alpha 0.2, past Hebb's N/(2 ln N) ~ 11): Storkey keeps (nearly) every
    pattern a fixed point, Hebb loses most of them. Over 4 seeds."""
    N, P = 100, 20
    hop = _complete(N)
    hebb, stork = [], []
    for seed in range(4):
        xi = tasks.random_patterns(P, N, rng=seed)
        hebb.append(hop.fixed_points(hop.store(hop.init(), xi), xi).mean())
        stork.append(hop.fixed_points(hop.store(hop.init(), xi, R.storkey()), xi).mean())
    assert np.mean(stork) >= 0.95
    assert np.mean(hebb) <= 0.8
    assert min(stork) > max(hebb)


def test_storkey_kept_diagonal_inflates_fixed_points():
    """At P=40, N=100 the kept (positive) diagonal turns more patterns into fixed points."""
    N, P = 100, 40
    hop = _complete(N)
    zero, keep = [], []
    for seed in range(4):
        xi = tasks.random_patterns(P, N, rng=seed)
        zero.append(hop.fixed_points(hop.store(hop.init(), xi, R.storkey()), xi).mean())
        pk = hop.store(hop.init(), xi, R.storkey("keep"))
        assert np.diagonal(pk["W"]).mean() > 0.2
        keep.append(hop.fixed_points(pk, xi).mean())
    assert np.mean(keep) > np.mean(zero) + 0.05


# -- pseudo-inverse -----------------------------------------------------------------------

@pytest.mark.parametrize("P", [1, 10, 30])
def test_pseudo_inverse_is_the_projector(P):
    N = 40
    hop = _complete(N)
    xi = tasks.random_patterns(P, N, rng=P)
    keep = hop.store(hop.init(), xi, R.pseudo_inverse("keep"))["W"]
    np.testing.assert_allclose(keep @ xi.T, xi.T, atol=1e-10)
    np.testing.assert_allclose(keep @ keep, keep, atol=1e-10)
    np.testing.assert_allclose(np.trace(keep), P, atol=1e-9)
    zero = hop.store(hop.init(), xi, R.pseudo_inverse())["W"]
    assert not np.diagonal(zero).any()
    d = np.diagonal(keep)
    assert np.all((d >= 0) & (d < 1))
    # zero diagonal: W + diag(d) is the projector, and W xi = (1 - d) xi keeps every sign
    np.testing.assert_allclose(zero + np.diag(d), keep, atol=1e-12)
    np.testing.assert_allclose(zero @ xi.T, (1 - d)[:, None] * xi.T, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_pseudo_inverse_every_pattern_fixed_at_half_load(seed):
    N = 100
    hop = _complete(N)
    xi = tasks.random_patterns(N // 2, N, rng=seed)
    p = hop.store(hop.init(), xi, R.pseudo_inverse())
    assert hop.fixed_points(p, xi).all()
    assert hop.loss(p, xi) == 0.0
    np.testing.assert_array_equal(hop.recall(p, xi, rng=seed), xi)


def test_pseudo_inverse_replaces_the_current_weights():
    hop = _complete(20)
    xi = tasks.random_patterns(5, 20, rng=1)
    other = hop.store(hop.init(), tasks.random_patterns(7, 20, rng=2))
    a = hop.store(other, xi, R.pseudo_inverse())
    b = hop.store(hop.init(), xi, R.pseudo_inverse())
    np.testing.assert_allclose(a["W"], b["W"], atol=1e-12)
    # idempotent under training: storing again changes nothing
    p, hist = rc.train(hop, b, R.pseudo_inverse(), xi, epochs=3, progress=False)
    np.testing.assert_allclose(p["W"], b["W"], atol=1e-12)
    assert hist.loss == [0.0, 0.0, 0.0]


def test_pseudo_inverse_kept_diagonal_kills_basins():
    """At P = N/2 the projector's diagonal (~1/2) lets units hold wrong bits: recall from a
    10%-flipped cue almost never ends at the pattern, while the zero diagonal mostly does."""
    N, P = 100, 50
    hop = _complete(N)
    exact = {"zero": [], "keep": []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        xi = tasks.random_patterns(P, N, rng=rng)
        cues = tasks.corrupt(xi, 0.1, rng=rng)
        for diag in exact:
            p = hop.store(hop.init(), xi, R.pseudo_inverse(diag))
            assert hop.fixed_points(p, xi).all()
            exact[diag].append(np.mean(np.all(hop.recall(p, cues, rng=rng) == xi, axis=1)))
    assert np.mean(exact["zero"]) > 0.3
    assert np.mean(exact["keep"]) < 0.1


def test_pseudo_inverse_masked_on_a_sparse_graph():
    G = nx.random_regular_graph(6, 30, seed=4)
    hop = rc.Hopfield(rc.Topology(G))
    xi = tasks.random_patterns(4, 30, rng=0)
    full = _complete(30).store(_complete(30).init(), xi, R.pseudo_inverse())["W"]
    p = hop.store(hop.init(), xi, R.pseudo_inverse())
    np.testing.assert_allclose(p["W"], np.where(hop.mask, full, 0.0), atol=1e-12)
    assert not p["W"][~hop.mask].any()
    np.testing.assert_array_equal(p["W"], p["W"].T)


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [R.storkey, R.pseudo_inverse])
def test_diagonal_policy_is_validated(make):
    with pytest.raises(ValueError, match="diagonal"):
        make(diagonal="ones")
    assert make().hparams == {"diagonal": "zero"}
    assert make("keep").hparams == {"diagonal": "keep"}


def test_pseudo_inverse_rejects_too_many_patterns():
    hop = _complete(10)
    with pytest.raises(ValueError, match=r"patterns.*10 patterns in 10 units.*P < N"):
        hop.store(hop.init(), tasks.random_patterns(10, 10, rng=0), R.pseudo_inverse())
    with pytest.raises(ValueError, match=r"patterns.*12 patterns in 10 units"):
        hop.store(hop.init(), tasks.random_patterns(12, 10, rng=0), R.pseudo_inverse())


def test_pseudo_inverse_rejects_dependent_patterns():
    hop = _complete(10)
    xi = tasks.random_patterns(3, 10, rng=0)
    with pytest.raises(ValueError, match="patterns.*linearly dependent"):
        hop.store(hop.init(), np.vstack([xi, -xi[:1]]), R.pseudo_inverse())


def test_storage_rules_need_pattern_evidence():
    ev = R.Evidence(loss=0.0, results={R.Patterns(): np.ones((2, 4))})
    for rule in (R.storkey(), R.pseudo_inverse()):
        assert rule.requests == (R.Patterns(),)
        with pytest.raises(TypeError, match="PatternSet"):
            rule.update(ev, None, {"W": np.zeros((4, 4))})
        with pytest.raises(KeyError, match="Patterns"):
            rule.update(R.Evidence(loss=0.0), None, {"W": np.zeros((4, 4))})
        wrong = R.Evidence(loss=0.0, results={
            R.Patterns(): R.PatternSet(np.ones((2, 5)), np.ones((5, 5), bool))})
        with pytest.raises(ValueError, match=r"patterns must have shape \(P, 4\)"):
            rule.update(wrong, None, {"W": np.zeros((4, 4))})
