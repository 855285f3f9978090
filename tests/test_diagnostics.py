"""diagnostics.alignment: a rule's update held against the exact gradient."""

import math

import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur import rules as R
from recur import tasks
from recur.diagnostics import alignment, alignment_table


def _linear(seed=0, n_in=10, n_out=10, samples=30):
    rng = np.random.default_rng(seed)
    net = rc.Linear(n_in, n_out)
    x = rng.normal(size=(samples, n_in))
    return net, net.init(rng), (x, x @ rng.normal(size=(n_out, n_in)).T)


def _esn(seed=0):
    topo = rc.Topology(nx.gnm_random_graph(30, 150, directed=True, seed=seed))
    esn = rc.ESN(topo, leak=0.5, spectral_radius=0.9, n_in=1, bias_scaling=0.1)
    u, y = tasks.next_step(tasks.sine_sum(81, rng=seed))
    return esn, esn.init(seed), (u, y)


def _random_direction():
    """A rule whose update ignores the gradient: a fresh Gaussian direction each draw."""
    def update(evidence, state, params, *, rng=None):
        rng = np.random.default_rng(rng)
        return {k: rng.normal(size=np.shape(v)) for k, v in params.items()}, state

    return R.Rule(name="random", update=update, requires=R.Gradient())


def _zero_rule():
    def update(evidence, state, params, *, rng=None):
        return {k: np.zeros(np.shape(v)) for k, v in params.items()}, state

    return R.Rule(name="zero", update=update, requires=R.Gradient())


@pytest.mark.parametrize("make", [_linear, _esn])
def test_bptt_is_aligned_with_itself(make):
    net, params, data = make()
    res = alignment(R.bptt(), net, params, data, repeats=3, rng=0)
    assert set(res) == set(params) | {"all"}
    for name, row in res.items():
        np.testing.assert_allclose(row["cosine"], 1.0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(row["norm_ratio"], 1.0, atol=1e-12, err_msg=name)
        assert row["flag"] == "" and row["n_valid"] == 3
    assert res["all"]["size"] == sum(row["size"] for n, row in res.items() if n != "all")


def test_scaled_gradient_has_the_scale_as_norm_ratio():
    net, params, data = _esn(1)
    rule = R.chain(R.bptt(), R.masked_by(["W", "W_out"]), R.scale(0.3))
    res = alignment(rule, net, params, data, repeats=2, rng=0)
    assert set(res) == {"W", "W_out", "all"}  # only the parameters the rule updated
    assert res["W"]["size"] == 150
    for row in res.values():
        assert row["cosine_median"] == pytest.approx(1.0, abs=1e-12)
        assert row["norm_ratio_median"] == pytest.approx(0.3, rel=1e-12)


def test_random_direction_is_orthogonal_on_average():
    # cos of a random direction in D dims: mean 0, spread 1/sqrt(D), over repeats and seeds.
    net, params, data = _linear(2, n_in=10, n_out=10)
    means, stds = [], []
    for seed in range(4):
        row = alignment(_random_direction(), net, params, data, repeats=50, rng=seed)["W"]
        means.append(row["cosine_mean"])
        stds.append(row["cosine_std"])
    D = 100
    assert abs(np.mean(means)) < 3 / math.sqrt(D * 200)
    assert np.median(stds) == pytest.approx(1 / math.sqrt(D), rel=0.3)


def test_gradient_with_noise_has_predicted_cosine():
    # u = g + noise with |noise| = |g|: cosine 1/sqrt(2), ratio sqrt(2).
    net, params, data = _linear(3)
    grad_req = R.Gradient()

    def update(evidence, state, params, *, rng=None):
        g = -evidence[grad_req]["W"]
        n = np.random.default_rng(rng).normal(size=g.shape)
        n -= np.vdot(n, g) / np.vdot(g, g) * g
        return {"W": g + n * np.linalg.norm(g) / np.linalg.norm(n)}, state

    res = alignment(R.Rule("noisy", update=update, requires=grad_req), net, params, data,
                    repeats=5, rng=0)
    np.testing.assert_allclose(res["W"]["cosine"], 1 / math.sqrt(2), rtol=1e-10)
    np.testing.assert_allclose(res["W"]["norm_ratio"], math.sqrt(2), rtol=1e-10)


def test_zero_update_gives_nan_and_a_flag():
    net, params, data = _linear(4)
    res = alignment(_zero_rule(), net, params, data, repeats=3, rng=0)
    for row in res.values():
        assert np.isnan(row["cosine"]).all() and math.isnan(row["cosine_median"])
        assert row["norm_ratio_median"] == 0.0
        assert row["flags"] == {"zero_update": 3} and "zero_update" in row["flag"]
        assert row["n_valid"] == 0


def test_zero_gradient_gives_nan_and_a_flag():
    # The student already is the teacher: the exact gradient vanishes.
    rng = np.random.default_rng(5)
    net = rc.Linear(6, 2)
    params = net.init(rng)
    x = rng.normal(size=(10, 6))
    res = alignment(R.bptt(), net, params, (x, x @ params["W"].T), repeats=2, rng=0)
    row = res["W"]
    assert math.isnan(row["cosine_mean"]) and math.isnan(row["norm_ratio_median"])
    assert row["flags"] == {"zero_gradient": 2}


def test_table_and_bad_arguments():
    net, params, data = _linear(6)
    res = alignment(R.bptt(), net, params, data, repeats=2, rng=0)
    table = alignment_table({"bptt": res, "zero": alignment(_zero_rule(), net, params, data,
                                                             repeats=2)})
    assert "bptt" in table and "zero_update" in table and table.count("\n") >= 5
    assert "all" in alignment_table(res, title="one rule")
    with pytest.raises(TypeError):
        alignment_table({"x": {"not": "a result"}})
    with pytest.raises(ValueError, match="transform"):
        alignment(R.scale(0.1), net, params, data)
    with pytest.raises(TypeError):
        alignment(lambda e: e, net, params, data)
    with pytest.raises(ValueError):
        alignment(R.bptt(), net, params, data, repeats=0)


def test_same_rng_same_result():
    net, params, data = _linear(7)
    a = alignment(_random_direction(), net, params, data, repeats=4, rng=3)
    b = alignment(_random_direction(), net, params, data, repeats=4, rng=3)
    np.testing.assert_array_equal(a["all"]["cosine"], b["all"]["cosine"])


@pytest.mark.parametrize("where", ["weights", "nodes"])
def test_perturbation_variance_matches_its_dimension(where):
    # One sample, M outputs, N inputs (Werfel et al.): antithetic estimates on a quadratic loss
    # are exactly unbiased with E[ratio^2] = 1 + D_eff / K, D_eff = MN + 1 for weight and
    # M + 1 for node perturbation.
    rng = np.random.default_rng(8)
    N, M, K = 8, 3, 4
    net = rc.Linear(N, M)
    x = rng.normal(size=(1, N))
    data = (x, x @ rng.normal(size=(M, N)).T)
    make = R.weight_perturbation if where == "weights" else R.node_perturbation
    res = alignment(make(sigma=1e-3, n_samples=K), net, net.init(rng), data, repeats=400,
                    rng=9)["W"]
    d_eff = M * N + 1 if where == "weights" else M + 1
    assert np.mean(res["norm_ratio"] ** 2) == pytest.approx(1 + d_eff / K, rel=0.15)
    assert 0 < res["cosine_median"] < 1
