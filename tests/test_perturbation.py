"""Weight and node perturbation on the ESN: the batched perturbed runs, their first-order and
statistical properties, and the rules built on them.

Gradients are checked against central finite differences of ``net.loss`` (an independent code
path). Statistical claims hold over several seeds with explicit tolerances; none is tied to one
seed's numbers.
"""

import importlib.util
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import rules as R
from recur import tasks
from recur.masked import masked_outer, values, with_values
from recur.networks import esn_perturbation as esn_pert
from recur.networks.esn_perturbation import PARAMETER_NAMES, esn_perturbations
from recur.rules import evidence as ev
from recur.rules.perturbation import perturbation_direction
from recur.tasks.objectives import as_objective

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ------------------------------------------------------------------------------

def small_net(seed, *, n=10, steps=30, closed=False, batch=False, sparse=True, backend="auto",
              dtype=np.float64):
    """An ESN on a ring plus random edges (always cyclic) with next-step or closed-loop data."""
    rng = np.random.default_rng(seed)
    G = nx.cycle_graph(n, create_using=nx.DiGraph)
    G.add_edges_from(nx.gnm_random_graph(n, 2 * n, directed=True, seed=seed).edges())
    net = rc.ESN(rc.Topology(G), leak=0.6, spectral_radius=0.9, input_scaling=0.8,
                 bias_scaling=0.3, sparse=sparse, backend=backend, dtype=dtype)
    params = net.init(rng)
    s = tasks.sine_sum(steps + 30, rng=rng)
    if closed:
        series = np.stack([s, s[::-1]]) if batch else s
        data = tasks.ClosedLoop(series, warmup=steps - 8, horizon=9)
    else:
        u, y = tasks.next_step(s[:steps + 1])
        if batch:
            u, y = np.stack([u, -u]), np.stack([y, -y])
        data = tasks.TeacherForced(u, y, washout=5)
    return net, params, data


def edge_mask(net, params):
    """Boolean mask over the values of every parameter: W's edges (dense W) or all."""
    W = params["W"]
    out = {name: np.ones(np.shape(values(params[name])), dtype=bool) for name in PARAMETER_NAMES}
    if not sp.issparse(W):
        out["W"] = net.topology.mask.toarray()
    return out


def fd_gradient(net, params, data, h=1e-6):
    """Central finite differences of net.loss over every value (on the graph for W)."""
    masks = edge_mask(net, params)
    grad = {}
    for name in PARAMETER_NAMES:
        v = np.array(values(params[name]), dtype=np.float64)
        g = np.zeros_like(v)
        for idx in zip(*np.nonzero(masks[name])):
            for sign in (1.0, -1.0):
                w = v.copy()
                w[idx] += sign * h
                q = {**params, name: with_values(params[name], w)}
                g[idx] += sign * net.loss(q, data)
        grad[name] = g / (2 * h)
    return grad


def flat(d, net=None, params=None):
    """Concatenate the values of every parameter (on the graph for a dense W)."""
    parts = []
    for name in PARAMETER_NAMES:
        v = np.asarray(values(d[name]))
        if name == "W" and params is not None and not sp.issparse(params["W"]):
            v = v[net.topology.mask.toarray()]
        parts.append(v.ravel())
    return np.concatenate(parts)


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def perturbed_params(params, eligibility, k, sign):
    q = {}
    for name in PARAMETER_NAMES:
        e = eligibility[name][k]
        q[name] = with_values(params[name], np.asarray(values(params[name])) + sign * e)
    return q


def node_noise(net, data, traj, request, rng):
    """The noise esn_perturbations draws for this rng: time-major, one child stream each for
    the units (T, N, B, K) and the outputs (T, M, B, K), output noise only on counted steps."""
    T = traj.counted.size
    B = 1 if np.ndim(traj.x) == 2 else traj.x.shape[0]
    g_xi, g_zeta = np.random.default_rng(rng).spawn(2)
    K, sigma = request.n_samples, request.sigma
    xi = g_xi.standard_normal((T, net.n_units, B, K)) * sigma
    zeta = g_zeta.standard_normal((T, net.n_out, B, K)) * sigma
    return xi, zeta * traj.counted[:, None, None, None]


def reference_node_loss(net, params, data, traj, xi, zeta):
    """Loss of one noisy run, step by step in plain numpy: xi (T, N, B) on the
    pre-activations, zeta (T, M, B) on the outputs (which closed-loop steps feed back)."""
    objective = as_objective(data)
    u_all = objective.inputs if objective.inputs.ndim == 3 else objective.inputs[None]
    target = traj.target if traj.target.ndim == 3 else traj.target[None]
    W = params["W"]
    sq = 0.0
    for b in range(u_all.shape[0]):
        x = np.zeros(net.n_units)
        y = None
        for t in range(traj.counted.size):
            u_t = u_all[b, t] if t < u_all.shape[1] else y
            z = W @ x + params["W_in"] @ u_t + params["b"] + xi[t, :, b]
            x = (1 - net.leak) * x + net.leak * np.tanh(z)
            y = params["W_out"] @ x + params["b_out"] + zeta[t, :, b]
            if traj.counted[t]:
                sq += np.sum((y - target[b, t]) ** 2)
    return sq / (u_all.shape[0] * traj.counted.sum() * net.n_out)


def as_batch(a):
    return a if a.ndim == 3 else a[None]


# --- the batched runs are exactly the perturbed runs --------------------------------------

CASES = [dict(), dict(closed=True), dict(batch=True), dict(closed=True, batch=True),
         dict(sparse=False)]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c) or "forced")
def test_weight_batch_equals_separate_runs(backend, case):
    # One batched run on per-run edge values gives the losses of K separate runs with the
    # perturbed weights (each run through net.loss).
    net, params, data = small_net(0, backend=backend, **case)
    req = ev.Perturbed(sigma=0.05, n_samples=4, where="weights", antithetic=True)
    res = esn_perturbations(net, params, data, req, rng=1)
    for sign, losses in ((1.0, res.losses), (-1.0, res.losses_minus)):
        expected = [net.loss(perturbed_params(params, res.eligibility, k, sign), data)
                    for k in range(4)]
        np.testing.assert_allclose(losses, expected, rtol=1e-11)
    assert res.loss_clean == pytest.approx(net.loss(params, data), rel=1e-14)
    if sp.issparse(params["W"]):
        assert res.eligibility["W"].shape == (4, params["W"].nnz)
    else:  # dense W: perturbed on the graph only
        assert res.eligibility["W"].shape == (4, net.n_units, net.n_units)
        assert not res.eligibility["W"][:, ~net.topology.mask.toarray()].any()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c) or "forced")
def test_node_batch_equals_reference_loop(backend, case):
    # The batched noisy runs and traces equal a plain step-by-step loop over the same noise.
    net, params, data = small_net(1, backend=backend, **case)
    traj = net.trajectory(params, data)
    K = 3
    req = ev.Perturbed(sigma=0.05, n_samples=K, where="nodes", antithetic=True)
    res = esn_perturbations(net, params, data, req, rng=7, clean=traj)
    xi, zeta = node_noise(net, data, traj, req, 7)
    for sign, losses in ((1.0, res.losses), (-1.0, res.losses_minus)):
        expected = [reference_node_loss(net, params, data, traj, sign * xi[..., k],
                                        sign * zeta[..., k]) for k in range(K)]
        np.testing.assert_allclose(losses, expected, rtol=1e-10)
    xp, x, u = (as_batch(a) for a in (traj.x_prev, traj.x, traj.u))
    for k in range(K):
        post = xi[..., k].transpose(2, 0, 1).reshape(-1, net.n_units)   # (B*T, N)
        out = zeta[..., k].transpose(2, 0, 1).reshape(-1, net.n_out)
        pre_x, pre_u = xp.reshape(-1, net.n_units), u.reshape(-1, u.shape[-1])
        W_trace = masked_outer(post, pre_x, params["W"])
        if not sp.issparse(params["W"]):  # a dense `like` gives the full outer product
            W_trace = np.where(net.topology.mask.toarray(), W_trace, 0.0)
        np.testing.assert_allclose(values(res.eligibility["W"][k]), values(W_trace),
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(res.eligibility["W_in"][k], post.T @ pre_u, rtol=1e-10)
        np.testing.assert_allclose(res.eligibility["b"][k], post.sum(0), rtol=1e-10)
        np.testing.assert_allclose(res.eligibility["W_out"][k],
                                   out.T @ x.reshape(-1, net.n_units), rtol=1e-10,
                                   atol=1e-14)
        np.testing.assert_allclose(res.eligibility["b_out"][k], out.sum(0), rtol=1e-10,
                                   atol=1e-14)


@pytest.mark.parametrize("where", ["weights", "nodes"])
def test_backends_and_chunking_agree(where, monkeypatch):
    # numba and numpy give the same numbers for the same rng, and the noise does not depend
    # on how the steps are cut into chunks.
    req = ev.Perturbed(sigma=0.02, n_samples=5, where=where, antithetic=False)
    results = []
    for backend in ("numba", "numpy"):
        net, params, data = small_net(2, backend=backend, closed=True, batch=True)
        results.append(esn_perturbations(net, params, data, req, rng=3))
    monkeypatch.setattr(esn_pert, "_CHUNK_BUDGET", 50)  # a few steps per chunk
    results.append(esn_perturbations(net, params, data, req, rng=3))
    for other in results[1:]:
        np.testing.assert_allclose(other.losses, results[0].losses, rtol=1e-10)
        for name in PARAMETER_NAMES:
            np.testing.assert_allclose(other.eligibility[name], results[0].eligibility[name],
                                       rtol=1e-9, atol=1e-15)


@pytest.mark.slow  # compiles the float32 kernels: ~15 s the first time, cached on disk after
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_float32_network(backend):
    net, params, data = small_net(3, dtype=np.float32, backend=backend)
    req = ev.Perturbed(sigma=0.05, n_samples=3, where="weights", antithetic=False)
    res = esn_perturbations(net, params, data, req, rng=0)
    expected = [net.loss(perturbed_params(params, res.eligibility, k, 1.0), data)
                for k in range(3)]
    np.testing.assert_allclose(res.losses, expected, rtol=1e-4)
    res = esn_perturbations(net, params, data, ev.Perturbed(0.05, 3, where="nodes"), rng=0)
    assert np.all(np.isfinite(res.losses)) and res.eligibility["W"].shape == (3, params["W"].nnz)


def test_divergence_is_reported():
    net, params, data = small_net(4)
    req = ev.Perturbed(sigma=1e200, n_samples=2, where="weights")
    with pytest.raises(rc.DivergenceError, match="sigma"):
        esn_perturbations(net, params, data, req, rng=0)


# --- first order: the loss changes by the perturbation's projection on the gradient --------

@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("dense", [False, True])
def test_weight_first_order(closed, dense):
    # L(theta + eps) - L(theta - eps) = 2 <grad, eps> + O(sigma^3) and
    # L(theta + eps) - L(theta) = <grad, eps> + O(sigma^2).
    net, params, data = small_net(5, closed=closed, sparse=not dense)
    g = flat(fd_gradient(net, params, data), net, params)
    sigma = 1e-5
    res = esn_perturbations(net, params, data,
                            ev.Perturbed(sigma, 8, where="weights", antithetic=True, clean=True),
                            rng=11)
    proj = np.array([flat({n: res.eligibility[n][k] for n in PARAMETER_NAMES}, net, params) @ g
                     for k in range(8)])
    central = 0.5 * (res.losses - res.losses_minus)
    one_sided = res.losses - res.loss_clean
    scale = np.abs(proj).max()
    np.testing.assert_allclose(central, proj, atol=1e-4 * scale)
    np.testing.assert_allclose(one_sided, proj, atol=1e-2 * scale)


@pytest.mark.parametrize("closed", [False, True])
def test_node_first_order(closed):
    # With delta_t = dL/dz_t and gamma_t = dL/dy_t (finite differences through a noisy run):
    # the loss change is sum_t <delta_t, xi_t> + <gamma_t, zeta_t> to first order, and the
    # traces' contraction with them is the gradient: sum_t delta_t x_{t-1}^T = dL/dW, ...
    net, params, data = small_net(6, n=8, steps=24, closed=closed)
    traj = net.trajectory(params, data)
    T, N, M = traj.counted.size, net.n_units, net.n_out
    h = 1e-6
    zero_xi, zero_zeta = np.zeros((T, N, 1)), np.zeros((T, M, 1))
    delta = np.zeros((T, N))
    gamma = np.zeros((T, M))
    for t in range(T):
        for i in range(N):
            d = zero_xi.copy()
            d[t, i] = h
            delta[t, i] = (reference_node_loss(net, params, data, traj, d, zero_zeta)
                           - reference_node_loss(net, params, data, traj, -d, zero_zeta)) / (2 * h)
        for m in range(M):
            d = zero_zeta.copy()
            d[t, m] = h
            gamma[t, m] = (reference_node_loss(net, params, data, traj, zero_xi, d)
                           - reference_node_loss(net, params, data, traj, zero_xi, -d)) / (2 * h)
    grad = fd_gradient(net, params, data)
    via_nodes = {"W": values(masked_outer(delta, traj.x_prev, params["W"])),
                 "W_in": delta.T @ traj.u, "b": delta.sum(0),
                 "W_out": gamma.T @ traj.x, "b_out": gamma.sum(0)}
    scale = np.abs(flat(grad)).max()
    for name in PARAMETER_NAMES:
        np.testing.assert_allclose(via_nodes[name], grad[name], atol=1e-6 * scale)

    sigma = 1e-6
    req = ev.Perturbed(sigma, 6, where="nodes", antithetic=True, clean=True)
    res = esn_perturbations(net, params, data, req, rng=5, clean=traj)
    xi, zeta = node_noise(net, data, traj, req, 5)
    proj = np.einsum("tn,tnk->k", delta, xi[:, :, 0]) + np.einsum("tm,tmk->k", gamma,
                                                                    zeta[:, :, 0])
    central = 0.5 * (res.losses - res.losses_minus)
    np.testing.assert_allclose(central, proj, atol=1e-4 * np.abs(proj).max())


# --- statistics: unbiased, and what antithetic pairs buy --------------------------------------

def _estimate(rule, net, params, data, rng):
    evidence = net.collect(params, data, rule.requests, rng=rng)
    direction, _ = rule.update(evidence, rule.init(params), params)
    return -flat(direction, net, params)  # the gradient estimate


@pytest.mark.parametrize("kind, K", [("weights", 2000), ("nodes", 4000)])
def test_estimators_align_with_gradient(kind, K):
    # The mean over K perturbations points along the exact gradient (next-step prediction):
    # cosine ~ sqrt(K / (K + D_eff)) > 0.95 on every seed, with antithetic pairs and with the
    # clean baseline. Measured D_eff: ~60 for weights (the number of perturbed values), 15-100
    # for nodes; cosines 0.98-0.998.
    make = R.weight_perturbation if kind == "weights" else R.node_perturbation
    for seed in range(3):
        net, params, data = small_net(seed)
        g = flat(fd_gradient(net, params, data))
        for antithetic in (True, False):
            rule = make(1e-3, n_samples=K, antithetic=antithetic)
            est = _estimate(rule, net, params, data, rng=100 + seed)
            assert cosine(est, g) > 0.95, (seed, antithetic)
            assert est @ g / (g @ g) == pytest.approx(1.0, abs=0.1), (seed, antithetic)


def test_weight_estimator_aligns_in_closed_loop():
    for seed in range(3):
        net, params, data = small_net(seed, closed=True)
        g = flat(fd_gradient(net, params, data))
        est = _estimate(R.weight_perturbation(1e-3, n_samples=2000), net, params, data, rng=seed)
        assert cosine(est, g) > 0.95, seed


@pytest.mark.parametrize("where", ["weights", "nodes"])
@pytest.mark.parametrize("closed", [False, True])
def test_estimators_are_unbiased(where, closed):
    # Each perturbation's estimate g_k = a_k e_k / sigma^2 projects on the exact gradient with
    # mean 1: |mean(p_k) - 1| within 4 standard errors, on every seed. This holds even where
    # the cosine converges slowly: node perturbation in closed loop can have D_eff ~ 10^4-10^5
    # (a small parameter gradient made of large node-space terms that cancel over the free
    # run), so a cosine of 0.95 would need K ~ 10^6 there.
    K, sigma = 3000, 1e-3
    for seed in range(3):
        net, params, data = small_net(seed, closed=closed)
        g = flat(fd_gradient(net, params, data))
        for antithetic in (True, False):
            req = ev.Perturbed(sigma, K, where=where, antithetic=antithetic, clean=True)
            res = esn_perturbations(net, params, data, req, rng=200 + seed)
            adv = (0.5 * (res.losses - res.losses_minus) if antithetic
                   else res.losses - res.loss_clean)
            e = np.stack([flat({n: res.eligibility[n][k] for n in PARAMETER_NAMES}, net, params)
                          for k in range(K)])
            p = adv * (e @ g) / (sigma**2 * (g @ g))
            se = p.std() / np.sqrt(K)
            assert abs(p.mean() - 1.0) < 4 * se, (seed, antithetic, p.mean(), se)


def _mse_over_draws(rule, net, params, data, g, repeats=20):
    ests = np.array([_estimate(rule, net, params, data, rng=r) for r in range(repeats)])
    return float(np.mean(np.sum((ests - g) ** 2, axis=1)))


@pytest.mark.parametrize("kind", ["weights", "nodes"])
def test_antithetic_pairs_versus_one_sided_at_equal_runs(kind):
    # K antithetic pairs (2K runs) against 2K one-sided samples with the exact clean baseline
    # (2K + 1 runs). Pairs cancel the even (curvature) terms of the loss change, so near a
    # minimum (readout at its least-squares optimum) they have far lower variance; far from
    # it, in the small-sigma limit, both advantages are <g, e>, and 2K samples have about half
    # the variance of K pairs. Measured ratios (seeds 0-10): 8-4000 near, 0.42-0.76 far.
    make = R.weight_perturbation if kind == "weights" else R.node_perturbation
    K, sigma = 8, 1e-2
    for seed in range(3):
        net, params, data = small_net(seed)
        traj = net.trajectory(params, data)
        fit = rc.Ridge(alpha=1e-8).fit(traj.x[traj.counted], traj.target[traj.counted])
        near = {**params, "W_out": fit.coef_, "b_out": fit.intercept_}
        for p, where in ((near, "near"), (params, "far")):
            g = flat(fd_gradient(net, p, data))
            pairs = _mse_over_draws(make(sigma, n_samples=K, antithetic=True), net, p, data, g)
            single = _mse_over_draws(make(sigma, n_samples=2 * K, antithetic=False,
                                          baseline="clean"), net, p, data, g)
            if where == "near":
                assert single > 3 * pairs, (seed, single / pairs)
            else:
                assert 0.3 < single / pairs < 0.9, (seed, single / pairs)


def test_running_baseline_state():
    # One-sided estimates with a running average of past perturbed losses as the baseline.
    rule = R.node_perturbation(0.1, n_samples=3, antithetic=False, baseline="running",
                               baseline_decay=0.75)
    assert rule.requests[0].clean is False  # no clean run needed
    params = {"W": np.zeros((2, 2))}
    state = rule.init(params)
    assert state == {"baseline": None, "n_updates": 0}

    def evidence(losses):
        e = np.arange(12, dtype=float).reshape(3, 2, 2)
        res = ev.Perturbations(sigma=0.1, eligibility={"W": e}, losses=np.array(losses))
        return ev.Evidence(loss=0.0, results={rule.requests[0]: res})

    first = [1.0, 2.0, 6.0]
    upd, state = rule.update(evidence(first), state, params)
    # first update: each loss against the mean of the other two (leave-one-out)
    loo = np.array([4.0, 3.5, 1.5])
    adv = np.array(first) - loo
    expected = -np.tensordot(adv, np.arange(12.0).reshape(3, 2, 2), axes=1) / (3 * 0.01)
    np.testing.assert_allclose(upd["W"], expected)
    assert state == {"baseline": pytest.approx(3.0), "n_updates": 1}
    second = [2.0, 2.0, 5.0]
    upd, state = rule.update(evidence(second), state, params)
    adv = np.array(second) - 3.0
    expected = -np.tensordot(adv, np.arange(12.0).reshape(3, 2, 2), axes=1) / (3 * 0.01)
    np.testing.assert_allclose(upd["W"], expected)
    assert state["baseline"] == pytest.approx(0.75 * 3.0 + 0.25 * 3.0)
    upd, state = rule.update(evidence([7.0, 7.0, 7.0]), state, params)
    assert state["baseline"] == pytest.approx(0.75 * 3.0 + 0.25 * 7.0)
    assert state["n_updates"] == 3


def test_running_baseline_in_training():
    # The state threads through recur.train, and the baseline tracks the perturbed losses.
    net, params, data = small_net(7)
    # A one-sided estimate from 4 samples is noisy: at step 0.05 about half of the random
    # streams blow this network up within 5 updates; at 0.005 none of 20 did.
    rule = R.chain(R.weight_perturbation(1e-3, n_samples=4, antithetic=False,
                                         baseline="running"), R.scale(0.005))
    _, hist = rc.train(net, params, rule, data, epochs=5, rng=0, progress=False)
    assert len(hist.loss) == 5 and np.isfinite(hist.final_loss)
    # The chain's state is (estimator state, scale state); after one update the running
    # baseline is the mean perturbed loss, close to the clean loss at this sigma.
    state = rule.init(params)
    evidence = net.collect(params, data, rule.requests, rng=0)
    _, state = rule.update(evidence, state, params)
    assert state[0]["n_updates"] == 1
    assert state[0]["baseline"] == pytest.approx(hist.loss[0], rel=1e-2)


# --- training -----------------------------------------------------------------------------

def _train_setup(seed, n=40):
    rng = np.random.default_rng(seed)
    topo = rc.Topology(nx.watts_strogatz_graph(n, 4, 0.2, seed=seed))
    net = rc.ESN(topo, leak=0.5, spectral_radius=0.9, input_scaling=0.5, bias_scaling=0.2)
    params = net.init(rng)
    u, y = tasks.next_step(tasks.sine_sum(201, rng=rng))
    return net, params, tasks.TeacherForced(u, y, washout=20)


@pytest.mark.parametrize("estimator", [R.node_perturbation, R.weight_perturbation])
def test_training_reduces_next_step_loss(estimator):
    # Over seeds, 40 updates of K = 16 antithetic pairs cut the next-step loss of a 40-unit
    # ESN (all parameters trained). Measured: final/initial 0.12-0.34 at this step size.
    ratios = []
    for seed in range(3):
        net, params, data = _train_setup(seed)
        rule = R.chain(estimator(1e-3, n_samples=16), R.scale(0.05))
        trained, hist = rc.train(net, params, rule, data, epochs=40, rng=seed, progress=False)
        ratios.append(hist.final_loss / hist.loss[0])
        assert sp.issparse(trained["W"]) and trained["W"].nnz == params["W"].nnz
    assert max(ratios) < 0.6, ratios
    assert np.median(ratios) < 0.4, ratios


# --- the update's structure ---------------------------------------------------------------

@pytest.mark.parametrize("make", [R.weight_perturbation, R.node_perturbation])
def test_sparse_update_keeps_structure(make):
    net, params, data = small_net(8)
    rule = make(1e-3, n_samples=4)
    evidence = net.collect(params, data, rule.requests, rng=0)
    upd, _ = rule.update(evidence, rule.init(params), params)
    W, dW = params["W"], upd["W"]
    assert isinstance(dW, sp.csr_array)
    assert np.array_equal(dW.indptr, W.indptr) and np.array_equal(dW.indices, W.indices)
    assert set(upd) == set(PARAMETER_NAMES)
    for name in PARAMETER_NAMES:
        assert np.shape(upd[name]) == np.shape(params[name])
        assert values(upd[name]).dtype == values(params[name]).dtype
    new = R.apply_updates(params, upd)
    assert new["W"].nnz == W.nnz

    dense_net, dense_params, dense_data = small_net(8, sparse=False)
    evidence = dense_net.collect(dense_params, dense_data, rule.requests, rng=0)
    upd, _ = rule.update(evidence, rule.init(dense_params), dense_params)
    assert isinstance(upd["W"], np.ndarray) and upd["W"].shape == dense_params["W"].shape
    assert not upd["W"][~dense_net.topology.mask.toarray()].any()


def test_update_only_for_given_params():
    # Inside partition a rule sees only its own parameters; the evidence holds all of them.
    net, params, data = small_net(9)
    rule_np = R.node_perturbation(1e-3, n_samples=4)
    evidence = net.collect(params, data, rule_np.requests, rng=0)
    upd, _ = rule_np.update(evidence, rule_np.init(params), {"W_out": params["W_out"]})
    assert set(upd) == {"W_out"}


def test_rules_on_a_linear_network():
    # The rules are network-agnostic arithmetic: on recur.Linear they estimate its gradient.
    net = rc.Linear(n_in=5, n_out=2)
    rng = np.random.default_rng(0)
    params = net.init(rng)
    x = rng.standard_normal((50, 5))
    data = (x, x @ rng.standard_normal((5, 2)))
    g = net.collect(params, data, ev.Gradient())[ev.Gradient()]["W"].ravel()
    for make in (R.weight_perturbation, R.node_perturbation):
        rule = make(1e-3, n_samples=2000)
        evidence = net.collect(params, data, rule.requests, rng=1)
        upd, _ = rule.update(evidence, rule.init(params), params)
        assert cosine(-upd["W"].ravel(), g) > 0.95


def test_perturbation_direction_checks_evidence():
    res = ev.Perturbations(sigma=1.0, eligibility={"W": np.ones((2, 3))}, losses=np.ones(2))
    with pytest.raises(ValueError, match="losses_minus"):
        perturbation_direction(res, {"W": np.zeros(3)}, antithetic=True)
    with pytest.raises(ValueError, match="loss_clean"):
        perturbation_direction(res, {"W": np.zeros(3)}, antithetic=False, baseline="clean")
    with pytest.raises(ValueError, match="expects 4"):
        perturbation_direction(res, {"W": np.zeros(3)}, antithetic=False, baseline="running",
                               n_samples=4)
    with pytest.raises(ValueError, match="shape"):
        perturbation_direction(res, {"W": np.zeros(4)}, antithetic=False, baseline="running")


# --- hyperparameters ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [R.weight_perturbation, R.node_perturbation])
def test_bad_hyperparameters(make):
    for sigma in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            make(sigma)
    with pytest.raises(TypeError, match="sigma"):
        make("0.1")
    for n in (0, -3):
        with pytest.raises(ValueError, match="n_samples"):
            make(1e-3, n_samples=n)
    with pytest.raises(TypeError, match="n_samples"):
        make(1e-3, n_samples=2.5)
    with pytest.raises(TypeError, match="antithetic"):
        make(1e-3, antithetic="yes")
    with pytest.raises(ValueError, match="baseline"):
        make(1e-3, baseline="mean")
    for decay in (1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match="baseline_decay"):
            make(1e-3, baseline_decay=decay)
    with pytest.raises(TypeError, match="baseline_decay"):
        make(1e-3, baseline_decay=None)
    rule = make(1e-3, n_samples=8, antithetic=False, baseline="running", baseline_decay=0.5)
    assert dict(rule.hparams) == {"sigma": 1e-3, "n_samples": 8, "antithetic": False,
                                  "baseline": "running", "baseline_decay": 0.5,
                                  "params": None}
    for bad in ((), ("W", "W")):
        with pytest.raises(ValueError, match="params"):
            make(1e-3, params=bad)
    for bad in ("W", ("W", 3), {"W"}):
        with pytest.raises(TypeError, match="params"):
            make(1e-3, params=bad)
    rule = make(1e-3, params=["W_out", "b_out"])  # a list is taken as a tuple
    assert rule.hparams["params"] == ("W_out", "b_out")
    assert rule.requests[0].params == ("W_out", "b_out")


def test_request_and_network_errors():
    net, params, data = small_net(10)
    with pytest.raises(TypeError, match="Perturbed"):
        esn_perturbations(net, params, data, ev.Gradient())
    fb = rc.ESN(net.topology, feedback=True)
    with pytest.raises(NotImplementedError):
        fb.collect(fb.init(0), data, ev.Perturbed(1e-3))


# --- perturbing some parameters only -------------------------------------------------------

def sub_flat(d, names):
    """Concatenate the values of ``names`` only, in PARAMETER_NAMES order."""
    return np.concatenate([np.asarray(values(d[n])).ravel()
                           for n in PARAMETER_NAMES if n in names])


def test_perturbed_params_validation():
    assert ev.Perturbed(1e-3).params is None
    assert ev.Perturbed(1e-3, params=("W",)).params == ("W",)
    with pytest.raises(ValueError, match="at least one"):
        ev.Perturbed(1e-3, params=())
    for bad in ("W", ["W"], ("W", None)):
        with pytest.raises(TypeError, match="params"):
            ev.Perturbed(1e-3, params=bad)
    with pytest.raises(ValueError, match="twice"):
        ev.Perturbed(1e-3, params=("b", "b"))
    # the network checks the names, and lists its own
    net, params, data = small_net(0)
    for where in ("weights", "nodes"):
        req = ev.Perturbed(1e-3, 2, where=where, params=("W", "V", "w_out"))
        with pytest.raises(ValueError, match=r"'V', 'w_out'.*'W', 'W_in', 'b', 'W_out', 'b_out'"):
            esn_perturbations(net, params, data, req, rng=0)
        with pytest.raises(ValueError, match="'V'"):
            net.collect(params, data, req, rng=0)


RESTRICTED = [("W",), ("W_in", "b_out"), ("W_out",), ("b",)]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", [dict(), dict(closed=True, batch=True), dict(sparse=False)],
                         ids=lambda c: "-".join(c) or "forced")
def test_weight_perturbation_of_some_parameters(backend, case):
    # Only the listed parameters are perturbed: the batched losses are those of net.loss with
    # the listed ones perturbed and the others perturbed by zero; the eligibility holds the
    # listed names, with the same values as when every parameter is perturbed (own streams).
    net, params, data = small_net(0, backend=backend, **case)
    full = esn_perturbations(net, params, data, ev.Perturbed(0.05, 4, where="weights"), rng=1)
    for names in RESTRICTED:
        req = ev.Perturbed(0.05, 4, where="weights", antithetic=True, params=names)
        res = esn_perturbations(net, params, data, req, rng=1)
        assert set(res.eligibility) == set(names)
        zero = {n: np.zeros((4,) + np.shape(full.eligibility[n][0])) for n in PARAMETER_NAMES}
        elig = {**zero, **res.eligibility}
        for sign, losses in ((1.0, res.losses), (-1.0, res.losses_minus)):
            expected = [net.loss(perturbed_params(params, elig, k, sign), data)
                        for k in range(4)]
            np.testing.assert_allclose(losses, expected, rtol=1e-11)
        for n in names:
            np.testing.assert_array_equal(res.eligibility[n], full.eligibility[n])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", [dict(), dict(closed=True, batch=True)],
                         ids=lambda c: "-".join(c) or "forced")
def test_node_perturbation_of_some_parameters(backend, case):
    # Noise only where the listed parameters feed: outputs only for W_out/b_out, units only
    # for W/W_in/b; the losses are those of the reference loop with the other noise zero, and
    # the traces of the listed names are those of the unrestricted run.
    net, params, data = small_net(1, backend=backend, **case)
    traj = net.trajectory(params, data)
    K = 3
    full_req = ev.Perturbed(0.05, K, where="nodes")
    full = esn_perturbations(net, params, data, full_req, rng=7, clean=traj)
    xi, zeta = node_noise(net, data, traj, full_req, 7)
    for names, units, outputs in [(("W_out", "b_out"), False, True), (("W",), True, False),
                                  (("b", "W_out"), True, True), (("b_out",), False, True)]:
        req = ev.Perturbed(0.05, K, where="nodes", params=names)
        res = esn_perturbations(net, params, data, req, rng=7, clean=traj)
        assert set(res.eligibility) == set(names)
        x_k = xi if units else np.zeros_like(xi)
        z_k = zeta if outputs else np.zeros_like(zeta)
        for sign, losses in ((1.0, res.losses), (-1.0, res.losses_minus)):
            expected = [reference_node_loss(net, params, data, traj, sign * x_k[..., k],
                                            sign * z_k[..., k]) for k in range(K)]
            np.testing.assert_allclose(losses, expected, rtol=1e-10)
        for n in names:
            np.testing.assert_allclose(res.eligibility[n], full.eligibility[n], rtol=1e-12,
                                       atol=1e-15)


@pytest.mark.parametrize("closed", [False, True])
def test_weight_first_order_of_some_parameters(closed):
    # L(theta + eps) - L(theta - eps) = 2 <g_S, eps_S> for the listed parameters S, with g_S
    # their part of the exact (BPTT) gradient.
    net, params, data = small_net(5, closed=closed)
    grad = net.collect(params, data, R.Gradient())[R.Gradient()]
    for names in RESTRICTED:
        req = ev.Perturbed(1e-5, 8, where="weights", params=names)
        res = esn_perturbations(net, params, data, req, rng=11)
        g = sub_flat(grad, names)
        proj = np.array([sub_flat({n: res.eligibility[n][k] for n in names}, names) @ g
                         for k in range(8)])
        central = 0.5 * (res.losses - res.losses_minus)
        np.testing.assert_allclose(central, proj, atol=1e-4 * np.abs(proj).max())


@pytest.mark.parametrize("where, names", [("weights", ("W",)), ("weights", ("W_in", "b_out")),
                                          ("nodes", ("W",)), ("nodes", ("W_out", "b_out")),
                                          ("nodes", ("W_in", "W_out"))])
@pytest.mark.parametrize("closed", [False, True])
def test_restricted_estimators_are_unbiased(where, names, closed):
    # Each perturbation's estimate a_k e_k / sigma^2 of the listed parameters projects on
    # their part of the exact gradient with mean 1 (within 4 standard errors, every seed).
    K, sigma = 3000, 1e-3
    for seed in range(3):
        net, params, data = small_net(seed, closed=closed)
        grad = net.collect(params, data, R.Gradient())[R.Gradient()]
        g = sub_flat(grad, names)
        req = ev.Perturbed(sigma, K, where=where, antithetic=True, params=names)
        res = esn_perturbations(net, params, data, req, rng=300 + seed)
        adv = 0.5 * (res.losses - res.losses_minus)
        e = np.stack([sub_flat({n: res.eligibility[n][k] for n in names}, names)
                      for k in range(K)])
        p = adv * (e @ g) / (sigma**2 * (g @ g))
        se = p.std() / np.sqrt(K)
        assert abs(p.mean() - 1.0) < 4 * se, (seed, p.mean(), se)


def test_restricted_rule_updates_only_its_parameters():
    net, params, data = small_net(2)
    for make in (R.weight_perturbation, R.node_perturbation):
        rule = make(1e-3, n_samples=16, params=("W", "b_out"))
        evidence = net.collect(params, data, rule.requests, rng=0)
        direction, _ = rule.update(evidence, rule.init(params), params)
        assert set(direction) == {"W", "b_out"}
        assert sp.issparse(direction["W"]) and direction["W"].nnz == params["W"].nnz


def test_output_node_perturbation_has_a_smaller_dimension():
    # Noise on the outputs only explores (counted steps x outputs) directions; on every unit
    # as well, the units' noise adds to each loss change without informing W_out. At equal K
    # the W_out estimate of output-only node perturbation is much better aligned. The readout
    # is near its least-squares fit (as in training), so the units' share of the gradient,
    # and of the loss changes, is not negligible. Measured medians: 0.97 vs 0.17.
    K, sigma = 32, 1e-3
    out_cos, all_cos = [], []
    for seed in range(4):
        net, params, data = small_net(seed, n=20, steps=60)
        traj = net.trajectory(params, data)
        X = np.hstack([traj.x[traj.counted], np.ones((int(traj.counted.sum()), 1))])
        coef = np.linalg.lstsq(X, traj.target[traj.counted], rcond=None)[0]
        offset = 0.02 * np.random.default_rng(seed).normal(size=params["W_out"].shape)
        params = {**params, "W_out": coef[:-1].T + offset, "b_out": coef[-1]}
        g = values(net.collect(params, data, R.Gradient())[R.Gradient()]["W_out"]).ravel()
        for names, store in ((("W_out", "b_out"), out_cos), (None, all_cos)):
            rule = R.node_perturbation(sigma, n_samples=K, params=names)
            for r in range(5):
                evidence = net.collect(params, data, rule.requests, rng=1000 * seed + r)
                direction, _ = rule.update(evidence, rule.init(params), params)
                store.append(cosine(-np.ravel(direction["W_out"]), g))
    assert np.median(out_cos) > 0.8, np.median(out_cos)
    assert np.median(out_cos) > np.median(all_cos) + 0.4, (np.median(out_cos),
                                                            np.median(all_cos))


# --- benchmark ----------------------------------------------------------------------------

def test_benchmark_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_rules",
                                                  ROOT / "benchmarks" / "bench_rules.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "node perturbation" in text and "dense copies" in text and "masked outer" in text


def test_numpy_backend_runs_without_numba():
    # backend="numpy" is the numba-free twin: perturbations (both kinds) and the gradient
    # never import numba, including their per-edge sums.
    import subprocess
    import sys

    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from test_perturbation import small_net
from recur import rules as R
from recur.networks.esn_perturbation import esn_perturbations
from recur.networks.esn_gradient import esn_gradient
net, params, data = small_net(0, backend="numpy")
for where in ("weights", "nodes"):
    esn_perturbations(net, params, data, R.Perturbed(sigma=1e-3, n_samples=3, where=where),
                      rng=0)
esn_gradient(net, params, net.trajectory(params, data))
print("numba" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False"
