"""EnergyNet: parameters and their invariants, settling, the exact gradient against finite
differences, the perturbed copies, and bad input.

The gradient (recurrent backprop by implicit differentiation) is checked against central
finite differences of ``net.loss`` (an independent code path: two settles per coupling), on
several seeds and two topologies, for tanh and, away from its kinks, the hard sigmoid.
"""

import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur.networks.energy import _rho
from recur.rules import evidence as ev

GRAD = ev.Gradient()


# --- helpers ------------------------------------------------------------------------------

def layered(activation="tanh", sizes=(3, 5, 2), **kw):
    """Complete layered graph, undirected (input - hidden - output)."""
    G = rc.graphs.layered_graph(list(sizes), directed=False)
    return rc.EnergyNet(rc.Topology(G), activation=activation, **kw)


def sparse(seed, activation="tanh", n=12, p=0.35, **kw):
    """A sparse random graph with 3 inputs and 2 outputs (hidden-hidden and input-output
    edges included)."""
    G = nx.gnp_random_graph(n, p, seed=seed)
    topo = rc.Topology(G, roles={"input": [0, 1, 2], "output": [n - 2, n - 1]})
    return rc.EnergyNet(topo, activation=activation, **kw)


def problem(net, seed, batch=4):
    """Parameters with random biases and data in the activation's range."""
    rng = np.random.default_rng(seed)
    p = net.init(rng)
    if net.activation == "tanh":
        p["b"] = rng.normal(0.0, 0.3, net.n_units)
        x = rng.uniform(-1.0, 1.0, (batch, net.n_in))
        y = rng.uniform(-0.6, 0.6, (batch, net.n_out))
    else:
        p["b"] = rng.uniform(0.1, 0.6, net.n_units)
        x = rng.uniform(0.0, 1.0, (batch, net.n_in))
        y = rng.uniform(0.1, 0.9, (batch, net.n_out))
    return p, x, y


def fd_gradient(net, p, data, h=1e-6):
    """Central differences of the loss per coupling (W[i, j] and W[j, i] together) and bias."""
    gW = np.zeros_like(p["W"])
    for i, j in zip(*np.nonzero(np.triu(net.mask, 1))):
        plus, minus = dict(p, W=p["W"].copy()), dict(p, W=p["W"].copy())
        for q, sgn in ((plus, 1.0), (minus, -1.0)):
            q["W"][i, j] += sgn * h
            q["W"][j, i] += sgn * h
        gW[i, j] = gW[j, i] = (net.loss(plus, data) - net.loss(minus, data)) / (2 * h)
    gb = np.zeros_like(p["b"])
    for i in range(net.n_units):
        plus, minus = dict(p, b=p["b"].copy()), dict(p, b=p["b"].copy())
        plus["b"][i] += h
        minus["b"][i] -= h
        gb[i] = (net.loss(plus, data) - net.loss(minus, data)) / (2 * h)
    return gW, gb


def kink_margin(net, p, x):
    """Distance of the free units' pre-activations from the hard sigmoid's kinks."""
    _, info = net.settle(p, x)
    z = info["preactivation"][:, net.free_units]
    return float(np.min(np.minimum(np.abs(z), np.abs(z - 1.0))))


# --- construction and parameters ----------------------------------------------------------

def test_roles_default_to_topology_and_explicit_labels_override():
    net = layered()
    assert net.n_in == 3 and net.n_out == 2 and net.n_units == 10
    assert np.array_equal(net.input_units, [0, 1, 2])
    assert np.array_equal(net.output_units, [8, 9])
    assert np.array_equal(net.hidden_units, [3, 4, 5, 6, 7])
    G = nx.path_graph(["a", "b", "c", "d"])
    net = rc.EnergyNet(rc.Topology(G), inputs=["a"], outputs=["d", "c"])
    assert np.array_equal(net.output_units, [2, 3]) and net.outputs == ("d", "c")


def test_init_is_symmetric_on_graph_deterministic():
    net = sparse(3)
    p = net.init(5)
    W = p["W"]
    assert np.array_equal(W, W.T)
    assert not W[~net.mask].any() and not np.diag(W).any()
    assert np.count_nonzero(W) == net.mask.sum()
    net.check_params(p)
    q = net.init(5)
    assert np.array_equal(q["W"], W) and np.array_equal(q["b"], p["b"])
    assert np.all(p["b"] == 0.0)
    assert np.all(sparse(3, "hard_sigmoid").init(5)["b"] == 0.5)
    assert not np.array_equal(net.init(6)["W"], W)


def test_init_scale_sets_the_coupling_scale():
    """Glorot-like: var(w_ij) = init_scale^2 * 2 / (k_i + k_j); pooled over many draws the
    normalised couplings have unit variance."""
    net = rc.EnergyNet(rc.Topology(nx.random_regular_graph(4, 30, seed=1),
                                   roles={"input": [0], "output": [1]}), init_scale=0.7)
    vals = np.concatenate([net.init(s)["W"][np.triu(net.mask, 1)] for s in range(40)])
    # k_i = k_j = 4, so std = 0.7 * sqrt(2 / 8) = 0.35; 2400 draws: std of the estimate ~1.5%.
    assert np.std(vals) == pytest.approx(0.35, rel=0.06)


def test_constrain_symmetrises_and_masks():
    net = sparse(1)
    p = net.init(0)
    rng = np.random.default_rng(0)
    noisy = dict(p, W=p["W"] + rng.normal(size=p["W"].shape))
    fixed = net.constrain(noisy)
    W = fixed["W"]
    assert np.array_equal(W, W.T) and not W[~net.mask].any()
    on = net.mask
    assert np.allclose(W[on], 0.5 * (noisy["W"] + noisy["W"].T)[on])
    net.check_params(fixed)
    assert net.constrain(p) is p


# --- bad input ----------------------------------------------------------------------------

def test_non_symmetric_W_is_rejected():
    net = layered()
    p = net.init(0)
    W = p["W"].copy()
    i, j = np.argwhere(np.triu(net.mask, 1))[0]
    W[i, j] += 0.1
    with pytest.raises(ValueError, match="W must be symmetric for an energy network"):
        net.check_params(dict(p, W=W))
    with pytest.raises(ValueError, match="symmetric"):
        net.settle(dict(p, W=W), np.zeros((1, 3)))


def test_off_graph_and_diagonal_weights_are_rejected():
    net = layered()
    p = net.init(0)
    W = p["W"].copy()
    W[0, 1] = W[1, 0] = 0.3          # two input units: no edge in a layered graph
    with pytest.raises(ValueError, match="off the graph"):
        net.check_params(dict(p, W=W))
    W = p["W"].copy()
    W[4, 4] = 1.0
    with pytest.raises(ValueError, match="diagonal"):
        net.check_params(dict(p, W=W))


def test_bad_params_shapes_and_values():
    net = layered()
    p = net.init(0)
    with pytest.raises(ValueError, match="missing 'b'"):
        net.check_params({"W": p["W"]})
    with pytest.raises(ValueError, match=r"params\['W'\] must have shape \(10, 10\)"):
        net.check_params(dict(p, W=np.zeros((9, 9))))
    with pytest.raises(ValueError, match=r"params\['b'\] must have shape \(10,\)"):
        net.check_params(dict(p, b=np.zeros(3)))
    with pytest.raises(rc.DivergenceError, match="NaN"):
        net.check_params(dict(p, b=np.full(10, np.nan)))
    with pytest.raises(TypeError, match="dict"):
        net.check_params([p["W"], p["b"]])


@pytest.mark.parametrize("role", ["input", "output"])
def test_missing_role_names_it(role):
    G = rc.graphs.layered_graph([2, 3, 1], directed=False)
    for node in G:
        if G.nodes[node]["role"] == role:
            G.nodes[node]["role"] = "hidden"
    with pytest.raises(ValueError, match=f"needs {role} units.*role '{role}'"):
        rc.EnergyNet(rc.Topology(G))


def test_bad_constructor_arguments():
    topo = rc.Topology(rc.graphs.layered_graph([2, 3, 1], directed=False))
    with pytest.raises(ValueError, match="activation"):
        rc.EnergyNet(topo, activation="relu")
    with pytest.raises(ValueError, match="damping"):
        rc.EnergyNet(topo, damping=1.5)
    with pytest.raises(ValueError, match="tol"):
        rc.EnergyNet(topo, tol=0.0)
    with pytest.raises(TypeError, match="max_iter"):
        rc.EnergyNet(topo, max_iter=10.5)
    with pytest.raises(ValueError, match="disjoint"):
        rc.EnergyNet(topo, inputs=[0, 5], outputs=[5])
    with pytest.raises(ValueError, match="not in the graph"):
        rc.EnergyNet(topo, inputs=[99])
    with pytest.raises(TypeError, match="Topology"):
        rc.EnergyNet(nx.path_graph(3))


def test_bad_data_shapes_name_the_argument():
    net = layered()
    p = net.init(0)
    x, y = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"x must have 3 column"):
        net.collect(p, (np.zeros((4, 2)), y), GRAD)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\)"):
        net.collect(p, (x, np.zeros((4, 3))), GRAD)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\)"):
        net.loss(p, (x, np.zeros((5, 2))))
    with pytest.raises(ValueError, match="x must have 1 or 2 dimensions"):
        net.settle(p, np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="x contains NaN"):
        net.settle(p, np.full((1, 3), np.nan))
    with pytest.raises(TypeError, match=r"pair \(x, y\)"):
        net.collect(p, x, GRAD)
    with pytest.raises(ValueError, match="y is required"):
        net.settle(p, x, beta=0.1)
    with pytest.raises(ValueError, match="beta must be 0"):
        net.settle(p, x, y, beta=0.1, clamp=True)
    with pytest.raises(ValueError, match="u0 must have shape"):
        net.settle(p, x, u0=np.zeros((3, 10)))
    with pytest.raises(NotImplementedError, match="WakeSleep"):
        net.collect(p, (x, y), ev.WakeSleep())


# --- settling -----------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["tanh", "hard_sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_settle_reaches_a_fixed_point_with_inputs_clamped(activation, seed):
    net = sparse(seed, activation, tol=1e-10)
    p, x, y = problem(net, seed, batch=5)
    s, info = net.settle(p, x)
    assert s.shape == (5, net.n_units)
    assert np.array_equal(s[:, net.input_units], x)
    f = net.free_units
    z = s @ p["W"] + p["b"]
    assert np.max(np.abs(s[:, f] - _rho(z[:, f], activation))) < 1e-10
    assert info["residual"] < 1e-10 and info["iterations"] >= 1
    assert np.allclose(info["preactivation"][:, f], z[:, f])
    # Each row settles on its own: the batch is only vectorisation.
    for r in range(5):
        sr, _ = net.settle(p, x[r])
        assert sr.shape == (net.n_units,)
        assert np.allclose(sr, s[r], atol=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_free_fixed_point_is_a_local_minimum_of_the_energy(seed):
    """The settled state is a stationary point of E (and, being an attractor of the
    iteration, a local minimum): small moves of the free units raise E."""
    net = sparse(seed, "tanh", tol=1e-12)
    p, x, y = problem(net, seed, batch=3)
    s, _ = net.settle(p, x)
    E0 = net.energy(p, s)
    rng = np.random.default_rng(seed)
    f = net.free_units
    for _ in range(20):
        d = np.zeros_like(s)
        d[:, f] = rng.normal(0.0, 1e-3, (3, f.size))
        assert np.all(net.energy(p, s + d) > E0)
    # Stationarity: the energy's gradient by differences vanishes to O(h^2).
    h = 1e-5
    for i in f:
        e = np.zeros_like(s)
        e[:, i] = h
        g = (net.energy(p, s + e) - net.energy(p, s - e)) / (2 * h)
        assert np.all(np.abs(g) < 1e-5)


@pytest.mark.parametrize("activation", ["tanh", "hard_sigmoid"])
def test_nudging_lowers_the_cost_and_clamping_sets_the_outputs(activation):
    """For small beta > 0 the cost at the nudged point is below the free one
    (dC/dbeta = -c^T H^-1 c <= 0), and above it for -beta."""
    moved = 0
    for seed in range(5):
        net = sparse(seed, activation, tol=1e-12)
        p, x, y = problem(net, seed)
        s0, _ = net.settle(p, x)
        sp_, _ = net.settle(p, x, y, beta=0.01, u0=s0)
        sm, _ = net.settle(p, x, y, beta=-0.01, u0=s0)
        c = [np.mean(net._cost(s, y)) for s in (sm, s0, sp_)]
        # A hard sigmoid's saturated outputs do not move; the cost then stays put.
        assert c[0] >= c[1] >= c[2]
        moved += c[0] > c[1] > c[2]
        sc, _ = net.settle(p, x, y, clamp=True, u0=s0)
        assert np.array_equal(sc[:, net.output_units], y)
        assert np.array_equal(sc[:, net.input_units], x)
    assert moved >= 3


def test_step_and_run_converge_to_the_settled_state():
    net = layered("tanh", tol=1e-12)
    p, x, y = problem(net, 0)
    s, _ = net.settle(p, x)
    traj, last = net.run(p, x, steps=600)
    assert traj.shape == (600,) + x.shape[:1] + (net.n_units,)
    assert np.allclose(last, s, atol=1e-9)
    one = net.step(p, net.initial_state(4), x)
    assert np.array_equal(one, traj[0])
    with pytest.raises(ValueError, match="u must have shape"):
        net.step(p, net.initial_state(4), x[:, :2])


@pytest.mark.parametrize("activation", ["tanh", "hard_sigmoid"])
def test_newton_and_fixed_point_solvers_reach_the_same_fixed_points(activation):
    for seed in range(3):
        nets = [sparse(seed, activation, tol=1e-12, max_iter=100000, solver=solver)
                for solver in ("fixed_point", "newton")]
        p, x, y = problem(nets[0], seed)
        (a, ia), (b, ib) = (n.settle(p, x) for n in nets)
        assert np.allclose(a, b, atol=1e-10)
        assert ib["iterations"] <= ia["iterations"]
        (a, _), (b, _) = (n.settle(p, x, y, beta=0.3, u0=a) for n in nets)
        assert np.allclose(a, b, atol=1e-10)
    with pytest.raises(ValueError, match="solver"):
        sparse(0, solver="cg")


def test_settle_that_does_not_converge_raises_naming_the_phase():
    net = layered("tanh", max_iter=3, tol=1e-12)
    p, x, y = problem(net, 0)
    with pytest.raises(rc.ConvergenceError, match=r"free phase \(beta=0\).*max_iter=3"):
        net.settle(p, x)
    with pytest.raises(rc.ConvergenceError, match="free phase"):
        net.collect(p, (x, y), GRAD)


# --- the exact gradient -------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda s, a: layered(a, tol=1e-13, max_iter=100000, solver="newton"),
    lambda s, a: sparse(s, a, tol=1e-13, max_iter=100000, solver="newton")],
                         ids=["layered", "sparse"])
@pytest.mark.parametrize("activation", ["tanh", "hard_sigmoid"])
def test_gradient_matches_finite_differences(make, activation):
    checked = 0
    for seed in range(12):
        net = make(seed, activation)
        p, x, y = problem(net, seed)
        if activation == "hard_sigmoid" and kink_margin(net, p, x) < 1e-4:
            continue                    # a kink within reach of the difference step
        g = net.collect(p, (x, y), GRAD)[GRAD]
        fW, fb = fd_gradient(net, p, (x, y))
        scale = max(np.abs(fW).max(), np.abs(fb).max())
        assert scale > 1e-4
        assert np.abs(g["W"] - fW).max() < 1e-6 * scale + 1e-9
        assert np.abs(g["b"] - fb).max() < 1e-6 * scale + 1e-9
        assert np.array_equal(g["W"], g["W"].T) and not g["W"][~net.mask].any()
        assert not g["b"][net.input_units].any()
        checked += 1
        if checked == 3:
            break
    assert checked == 3


# --- perturbed copies ---------------------------------------------------------------------

@pytest.mark.parametrize("where", ["weights", "nodes"])
def test_perturbation_eligibility_is_tied_and_on_the_graph(where):
    net = sparse(2, "tanh", tol=1e-10)
    p, x, y = problem(net, 2)
    req = ev.Perturbed(sigma=1e-3, n_samples=5, where=where)
    res = net.collect(p, (x, y), req, rng=0)[req]
    eW, eb = res.eligibility["W"], res.eligibility["b"]
    assert eW.shape == (5, net.n_units, net.n_units) and eb.shape == (5, net.n_units)
    assert np.array_equal(eW, eW.transpose(0, 2, 1))
    assert not eW[:, ~net.mask].any()
    inp = net.input_units
    assert not eW[:, inp[:, None], inp[None, :]].any()
    assert not eb[:, inp].any()
    assert res.losses.shape == (5,) and res.losses_minus.shape == (5,)
    assert res.loss_clean == pytest.approx(net.loss(p, (x, y)))
    only_b = ev.Perturbed(sigma=1e-3, n_samples=3, where=where, params=("b",))
    assert set(net.collect(p, (x, y), only_b, rng=0)[only_b].eligibility) == {"b"}
    with pytest.raises(ValueError, match="unknown parameter"):
        net.collect(p, (x, y), ev.Perturbed(sigma=1e-3, where=where, params=("W_out",)))


def test_weight_perturbation_losses_are_first_order_in_the_gradient():
    """(L(W + e) - L(W - e)) / 2 = <g, e> + O(sigma^3), with <g, e> over couplings (each
    counted once) and biases."""
    for seed in range(3):
        net = sparse(seed, "tanh", tol=1e-13, max_iter=100000)
        p, x, y = problem(net, seed)
        req = ev.Perturbed(sigma=1e-4, n_samples=6, where="weights")
        e = net.collect(p, (x, y), (req, GRAD), rng=seed)
        g, res = e[GRAD], e[req]
        upper = np.triu(np.ones(net.mask.shape, dtype=bool), 1)
        pred = (np.einsum("kij,ij->k", res.eligibility["W"] * upper, g["W"])
                + res.eligibility["b"] @ g["b"])
        half = 0.5 * (res.losses - res.losses_minus)
        assert np.allclose(half, pred, rtol=1e-4, atol=1e-12 * np.abs(pred).max())


def test_node_perturbation_losses_match_the_drive_sensitivity():
    """A constant drive xi changes the loss by mu . xi + O(sigma^2), and on one sample mu is
    the bias gradient, so (L+ - L-)/2 = <dL/db, xi> with xi the bias eligibility."""
    for seed in range(3):
        net = sparse(seed, "tanh", tol=1e-13, max_iter=100000)
        p, x, y = problem(net, seed)
        one = (x[:1], y[:1])
        req = ev.Perturbed(sigma=1e-4, n_samples=8, where="nodes")
        e = net.collect(p, one, (req, GRAD), rng=seed)
        res = e[req]
        pred = res.eligibility["b"] @ e[GRAD]["b"]
        half = 0.5 * (res.losses - res.losses_minus)
        assert np.allclose(half, pred, rtol=1e-4, atol=1e-12 * np.abs(pred).max())
        # The coupling eligibility is the tied outer product of the noise with the state.
        s, _ = net.settle(p, x[:1])
        xi = res.eligibility["b"]
        G = np.einsum("ki,j->kij", xi, s[0])
        assert np.allclose(res.eligibility["W"], np.where(net.mask, G + G.transpose(0, 2, 1),
                                                          0.0))


def test_activity_evidence_is_the_free_phase():
    net = sparse(0, "tanh")
    p, x, y = problem(net, 0)
    e = net.collect(p, (x, y), ev.Activity())
    tr = e[ev.Activity()]
    s, _ = net.settle(p, x)
    assert np.allclose(tr.pre["W"], s) and np.allclose(tr.post["W"], s)
    assert tr.pre["b"].shape == (4, 1) and np.all(tr.pre["b"] == 1.0)
    assert np.array_equal(tr.masks["W"], net.mask)
    assert e.loss == pytest.approx(net.loss(p, (x, y))) and e.state is None
    assert np.allclose(net.predict(p, x), s[:, net.output_units])
    assert np.allclose(net.predict(p, x[0]), s[0, net.output_units])
    # A Hebbian rule trains through it and the invariants hold.
    q, hist = rc.train(net, p, rc.rules.chain(rc.rules.hebbian(), rc.rules.scale(0.01)),
                       (x, y), epochs=3, rng=0, progress=False)
    net.check_params(q)
