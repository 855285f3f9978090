"""The linear student y = W x: exact gradient, perturbation evidence, activity, protocol."""

import numpy as np
import pytest

import recur as rc
from recur import rules as R
from recur import tasks


def _problem(seed, n_in=4, n_out=3, samples=7):
    rng = np.random.default_rng(seed)
    net = rc.Linear(n_in, n_out)
    params = net.init(rng)
    x = rng.normal(size=(samples, n_in))
    y = x @ rng.normal(size=(n_out, n_in)).T + 0.1 * rng.normal(size=(samples, n_out))
    return net, params, (x, y)


def _loss_at(net, params, data, W):
    return net.loss({**params, "W": W}, data)


def test_init_shapes_and_seed():
    net = rc.Linear(5, 2)
    a, b = net.init(3), net.init(np.random.default_rng(3))
    assert a.keys() == {"W"} and a["W"].shape == (2, 5)
    np.testing.assert_array_equal(a["W"], b["W"])
    assert not rc.Linear(5, 2, init_scale=0.0).init(1)["W"].any()


def test_loss_is_mean_squared_error_over_samples_and_outputs():
    net, params, (x, y) = _problem(0)
    assert np.isclose(net.loss(params, (x, y)), np.mean((x @ params["W"].T - y) ** 2))
    # washout drops leading samples; a batch (B, S, n) is B*S samples
    tf = tasks.TeacherForced(x, y, washout=2)
    assert np.isclose(net.loss(params, tf), np.mean((x[2:] @ params["W"].T - y[2:]) ** 2))
    xb, yb = np.stack([x, 2 * x]), np.stack([y, y])
    assert np.isclose(net.loss(params, (xb, yb)),
                      np.mean((np.concatenate([x, 2 * x]) @ params["W"].T
                               - np.concatenate([y, y])) ** 2))


@pytest.mark.parametrize("washout", [0, 3])
def test_gradient_matches_finite_differences(washout):
    net, params, (x, y) = _problem(1)
    data = tasks.TeacherForced(x, y, washout=washout)
    grad = net.collect(params, data, R.Gradient())[R.Gradient()]["W"]
    W, h = params["W"], 1e-6
    fd = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        d = np.zeros_like(W)
        d[idx] = h
        up, down = _loss_at(net, params, data, W + d), _loss_at(net, params, data, W - d)
        fd[idx] = (up - down) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_weight_perturbation_first_order_and_shapes():
    net, params, data = _problem(2)
    sigma, K = 1e-4, 32
    ev = net.collect(params, data, (R.Perturbed(sigma, K, "weights"), R.Gradient()), rng=5)
    p = ev[R.Perturbed(sigma, K, "weights")]
    grad = ev[R.Gradient()]["W"]
    assert p.eligibility["W"].shape == (K, 3, 4)
    assert p.losses.shape == p.losses_minus.shape == (K,)
    assert p.loss_clean == pytest.approx(ev.loss) and p.sigma == sigma
    first = np.einsum("kmn,mn->k", p.eligibility["W"], grad)
    # L_k - L_0 = <grad, eps_k> + O(sigma^2): the remainder is second order.
    np.testing.assert_allclose(p.losses - p.loss_clean, first, atol=50 * sigma**2)
    assert np.abs(first).mean() > 100 * sigma**2  # the test is not vacuous
    # The loss is quadratic, so the antithetic difference is exactly first order.
    np.testing.assert_allclose(0.5 * (p.losses - p.losses_minus), first, rtol=1e-6,
                               atol=1e-13)
    # eligibility is eps itself: its spread is sigma
    assert np.std(p.eligibility["W"]) == pytest.approx(sigma, rel=0.2)


def test_node_perturbation_first_order_one_sample():
    # With one sample, e_k = xi_k x^T, so <grad, e_k> = <dL/dy, xi_k> |x|^2.
    net, params, (x, y) = _problem(3, samples=1)
    sigma, K = 1e-4, 32
    req = R.Perturbed(sigma, K, "nodes", antithetic=True)
    ev = net.collect(params, (x, y), (req, R.Gradient()), rng=6)
    p, grad = ev[req], ev[R.Gradient()]["W"]
    assert p.eligibility["W"].shape == (K, 3, 4)
    first = np.einsum("kmn,mn->k", p.eligibility["W"], grad) / np.sum(x**2)
    np.testing.assert_allclose(p.losses - p.loss_clean, first, atol=10 * sigma**2)
    np.testing.assert_allclose(0.5 * (p.losses - p.losses_minus), first, rtol=1e-6,
                               atol=1e-13)


@pytest.mark.parametrize("where", ["nodes", "weights"])
def test_perturbation_estimate_is_unbiased(where):
    # E[(L_k - L_0) e_k] / sigma^2 = grad: with many samples the estimate lines up with it.
    net, params, data = _problem(4, samples=5)
    sigma, K = 1e-3, 20000
    req = R.Perturbed(sigma, K, where, antithetic=True)
    ev = net.collect(params, data, (req, R.Gradient()), rng=7)
    p, grad = ev[req], ev[R.Gradient()]["W"]
    est = np.einsum("k,kmn->mn", 0.5 * (p.losses - p.losses_minus), p.eligibility["W"])
    est /= K * sigma**2
    cos = np.vdot(est, grad) / np.linalg.norm(est) / np.linalg.norm(grad)
    assert cos > 0.99
    assert np.linalg.norm(est) / np.linalg.norm(grad) == pytest.approx(1.0, abs=0.05)


def test_not_antithetic_no_clean():
    net, params, data = _problem(5)
    req = R.Perturbed(1e-3, 4, "nodes", antithetic=False, clean=False)
    p = net.collect(params, data, req, rng=0)[req]
    assert p.losses_minus is None and p.loss_clean is None and p.losses.shape == (4,)


def test_same_rng_same_perturbations():
    net, params, data = _problem(6)
    req = R.Perturbed(1e-3, 8, "weights")
    a = net.collect(params, data, req, rng=11)[req]
    b = net.collect(params, data, req, rng=np.random.default_rng(11))[req]
    np.testing.assert_array_equal(a.eligibility["W"], b.eligibility["W"])
    np.testing.assert_array_equal(a.losses, b.losses)


def test_activity():
    net, params, (x, y) = _problem(7)
    act = net.collect(params, (x, y), R.Activity())[R.Activity()]
    np.testing.assert_array_equal(act.pre["W"], x)
    np.testing.assert_allclose(act.post["W"], x @ params["W"].T)
    np.testing.assert_array_equal(act.target, y)


def test_no_in_place_mutation_and_constrain():
    net, params, data = _problem(8)
    before = params["W"].copy()
    net.collect(params, data, (R.Gradient(), R.Perturbed(1e-3, 4, "weights")), rng=0)
    np.testing.assert_array_equal(params["W"], before)
    assert net.constrain(params) is params


def test_bad_input():
    net, params, (x, y) = _problem(9)
    with pytest.raises(ValueError, match="input channel"):
        net.loss(params, (x[:, :2], y))
    with pytest.raises(ValueError, match="target channel"):
        net.loss(params, (x, y[:, :1]))
    with pytest.raises(ValueError, match="shape"):
        net.loss({"W": params["W"].T}, (x, y))
    with pytest.raises(TypeError, match="pairs"):
        net.loss(params, tasks.ClosedLoop(np.zeros((10, 4)), warmup=5, horizon=3))
    with pytest.raises(NotImplementedError):
        net.collect(params, (x, y), R.TwoPhase())
    with pytest.raises(rc.DivergenceError):
        net.loss({"W": np.full_like(params["W"], np.nan)}, (x, y))


def test_gradient_descent_with_train_reaches_least_squares():
    net, params, (x, y) = _problem(10, samples=40)
    p, hist = rc.train(net, params, R.chain(R.bptt(), R.scale(0.2)), (x, y), epochs=400,
                       progress=False)
    W_ls = np.linalg.lstsq(x, y, rcond=None)[0].T
    np.testing.assert_allclose(p["W"], W_ls, atol=1e-6)
    assert hist.final_loss < hist.loss[0]


@pytest.mark.parametrize("where", ["nodes", "weights"])
def test_perturbing_some_parameters(where):
    # The only parameter is W: params=("W",) is the unrestricted request (same draws and
    # eligibility keys), any other name is refused with the network's parameters listed.
    net, params, data = _problem(8)
    full = R.Perturbed(1e-3, 6, where)
    sub = R.Perturbed(1e-3, 6, where, params=("W",))
    a, b = net.collect(params, data, full, rng=3)[full], net.collect(params, data, sub, rng=3)[sub]
    assert set(b.eligibility) == {"W"}
    np.testing.assert_array_equal(a.eligibility["W"], b.eligibility["W"])
    np.testing.assert_array_equal(a.losses, b.losses)
    bad = R.Perturbed(1e-3, 6, where, params=("W", "W_out"))
    with pytest.raises(ValueError, match=r"'W_out'.*\['W'\]"):
        net.collect(params, data, bad, rng=0)
    rule = (R.weight_perturbation if where == "weights" else R.node_perturbation)(
        1e-3, n_samples=4, params=("W",))
    assert rule.hparams["params"] == ("W",)
    direction, _ = rule.update(net.collect(params, data, rule.requests, rng=0),
                               rule.init(params), params)
    assert set(direction) == {"W"}
