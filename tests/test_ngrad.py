"""NGRAD rules (equilibrium propagation, contrastive Hebbian, GeneRec) on EnergyNet, held
against the exact (recurrent backprop) gradient; perturbation rules on EnergyNet; training;
the -beta phase that runs away.

Statistical claims are over several seeds with explicit tolerances; the arithmetic of each
rule is checked against hand-computed outer products.
"""

import networkx as nx
import numpy as np
import pytest

import recur as rc
from recur import rules as R
from recur.rules import evidence as ev


def sparse(seed, activation="tanh", n=12, p=0.35, **kw):
    G = nx.gnp_random_graph(n, p, seed=seed)
    topo = rc.Topology(G, roles={"input": [0, 1, 2], "output": [n - 2, n - 1]})
    return rc.EnergyNet(topo, activation=activation, **kw)


def problem(net, seed, batch=8):
    rng = np.random.default_rng(seed)
    p = net.init(rng)
    p["b"] = rng.normal(0.0, 0.2, net.n_units)
    x = rng.uniform(-1.0, 1.0, (batch, net.n_in))
    y = rng.uniform(-0.5, 0.5, (batch, net.n_out))
    return p, (x, y)


def cosine(rule, net, p, data, **kw):
    a = rc.diagnostics.alignment(rule, net, p, data, repeats=1, **kw)["all"]
    return a["cosine_mean"], a["norm_ratio_mean"]


# --- arithmetic on hand-made phases -------------------------------------------------------

def _trace(s, mask):
    return ev.ActivityTrace(pre={"W": s, "b": np.ones((s.shape[0], 1))},
                            post={"W": s, "b": s}, masks={"W": mask})


def _hand_phases(seed=0, S=5, N=6):
    rng = np.random.default_rng(seed)
    mask = rng.random((N, N)) < 0.6
    mask = mask | mask.T
    np.fill_diagonal(mask, False)
    s0, s1, s2 = (rng.normal(size=(S, N)) for _ in range(3))
    params = {"W": np.zeros((N, N)), "b": np.zeros(N)}
    return mask, s0, s1, s2, params


def _evidence(request, phases):
    return ev.Evidence(loss=0.0, results={request: phases})


def test_ep_is_the_scaled_correlation_difference_on_the_graph():
    mask, s0, s1, s2, params = _hand_phases()
    S = s0.shape[0]
    for symmetric in (False, True):
        rule = R.equilibrium_propagation(beta=0.05, symmetric=symmetric)
        ph = ev.Phases(free=_trace(s0, mask), nudged=_trace(s1, mask),
                       nudged_minus=_trace(s2, mask) if symmetric else None, beta=0.05)
        upd, _ = rule.update(_evidence(rule.requires, ph), None, params)
        other, scale = (s2, 0.5 / 0.05) if symmetric else (s0, 1.0 / 0.05)
        want = scale * (s1.T @ s1 - other.T @ other) / S
        want = np.where(mask, want, 0.0)
        assert np.allclose(upd["W"], want)
        assert np.allclose(upd["b"], scale * (s1 - other).mean(axis=0))
        assert not np.diag(upd["W"]).any()


def test_chl_and_generec_hand_computed_and_midpoint_identity():
    mask, s0, s1, _, params = _hand_phases(1)
    S = s0.shape[0]
    ph = ev.Phases(free=_trace(s0, mask), nudged=_trace(s1, mask))
    chl, gr = R.contrastive_hebbian(), R.generec()
    assert chl.requires == ev.TwoPhase(clamp=True) == gr.requires
    u_chl, _ = chl.update(_evidence(chl.requires, ph), None, params)
    assert np.allclose(u_chl["W"], np.where(mask, (s1.T @ s1 - s0.T @ s0) / S, 0.0))
    assert np.allclose(u_chl["b"], (s1 - s0).mean(0))
    u_gr, _ = gr.update(_evidence(gr.requires, ph), None, params)
    raw = (s1 - s0).T @ s0 / S                       # (post+ - post-) pre-^T
    assert np.allclose(u_gr["W"], np.where(mask, 0.5 * (raw + raw.T), 0.0))
    assert np.array_equal(u_gr["W"], u_gr["W"].T)
    assert np.allclose(u_gr["b"], (s1 - s0).mean(0))
    # GeneRec with the midpoint as presynaptic activity is CHL (O'Reilly 1996), halved by the
    # mean over the two directions of each coupling.
    mid = 0.5 * (s0 + s1)
    free_mid = ev.ActivityTrace(pre={"W": mid, "b": np.ones((S, 1))},
                                post={"W": s0, "b": s0}, masks={"W": mask})
    u_mid, _ = gr.update(_evidence(gr.requires, ev.Phases(free=free_mid,
                                                          nudged=_trace(s1, mask))),
                         None, params)
    assert np.allclose(u_mid["W"], 0.5 * u_chl["W"])


def test_rule_hyperparameters_are_checked():
    for bad in (0.0, -0.1, np.inf, "0.1"):
        with pytest.raises(ValueError, match="beta"):
            R.equilibrium_propagation(beta=bad)
    with pytest.raises(TypeError, match="symmetric"):
        R.equilibrium_propagation(symmetric="yes")
    rule = R.equilibrium_propagation(0.1, symmetric=True)
    assert rule.hparams == {"beta": 0.1, "symmetric": True}
    assert rule.requires == ev.TwoPhase(beta=0.1, symmetric=True)
    mask, s0, s1, _, params = _hand_phases()
    no_minus = ev.Phases(free=_trace(s0, mask), nudged=_trace(s1, mask), beta=0.1)
    with pytest.raises(ValueError, match="-beta phase"):
        rule.update(_evidence(rule.requires, no_minus), None, params)
    with pytest.raises(TypeError, match="Phases"):
        rule.update(_evidence(rule.requires, {"W": 0}), None, params)


# --- against the exact gradient -----------------------------------------------------------

def test_ep_converges_to_the_gradient_and_symmetric_nudging_removes_the_bias():
    """Ten random sparse tanh networks: cosine to -grad > 0.99 at beta 0.01 (every seed);
    1 - cos falls ~beta^2 one-sided and ~beta^4 symmetric; symmetric beats one-sided; the
    norm ratio tends to 1."""
    gap = {}
    ratio = {}
    for seed in range(10):
        net = sparse(seed, tol=1e-12, max_iter=100000)
        p, data = problem(net, seed)
        for beta in (0.1, 0.01):
            for sym in (False, True):
                c, r = cosine(R.equilibrium_propagation(beta, sym), net, p, data)
                gap.setdefault((beta, sym), []).append(1.0 - c)
                ratio.setdefault((beta, sym), []).append(r)
    gap = {k: np.array(v) for k, v in gap.items()}
    assert np.all(gap[(0.01, False)] < 1e-2) and np.all(gap[(0.01, True)] < 1e-4)
    # Shrink per factor 10 in beta: ~100x (one-sided), ~10^4x (symmetric); medians.
    assert np.median(gap[(0.1, False)] / gap[(0.01, False)]) > 30
    assert np.median(gap[(0.1, True)] / np.maximum(gap[(0.01, True)], 1e-16)) > 1e3
    for beta in (0.1, 0.01):
        assert np.sum(gap[(beta, True)] < gap[(beta, False)]) >= 8
    assert np.all(np.abs(np.array(ratio[(0.01, True)]) - 1.0) < 0.01)
    assert np.median(np.abs(np.array(ratio[(0.01, False)]) - 1.0)) < \
        np.median(np.abs(np.array(ratio[(0.1, False)]) - 1.0))


def test_ep_on_the_hard_sigmoid_aligns_with_the_gradient():
    cos = []
    for seed in range(5):
        net = sparse(seed, "hard_sigmoid", tol=1e-12, max_iter=100000)
        rng = np.random.default_rng(seed)
        p = net.init(rng)
        p["b"] = rng.uniform(0.2, 0.5, net.n_units)
        data = (rng.uniform(0, 1, (8, 3)), rng.uniform(0.1, 0.9, (8, 2)))
        cos.append(cosine(R.equilibrium_propagation(0.01, True), net, p, data)[0])
    assert min(cos) > 0.99


@pytest.mark.parametrize("make", [R.node_perturbation, R.weight_perturbation])
def test_perturbation_rules_point_downhill_on_an_energy_net(make):
    means = []
    for seed in range(4):
        net = sparse(seed, tol=1e-10)
        p, data = problem(net, seed)
        a = rc.diagnostics.alignment(make(sigma=1e-3, n_samples=16), net, p, data,
                                     repeats=4, rng=seed)["all"]
        means.append(a["cosine_mean"])
    assert min(means) > 0.0 and np.mean(means) > 0.3


def test_chl_and_generec_point_downhill_on_average():
    """Neither is the gradient of the loss, but both descend it on average (Xie & Seung)."""
    cos = {"contrastive_hebbian": [], "generec": []}
    for seed in range(6):
        net = sparse(seed, tol=1e-10)
        p, data = problem(net, seed)
        for rule in (R.contrastive_hebbian(), R.generec()):
            cos[rule.name].append(cosine(rule, net, p, data)[0])
    for name, c in cos.items():
        assert np.mean(c) > 0.3, (name, c)


# --- the -beta phase that runs away -------------------------------------------------------

def _runaway():
    """One input, one hard-sigmoid output, coupling 1: the free output is 0.5 and the target
    sits 1e-4 below it. The -beta phase adds the drive 2 beta (s - y); at beta = 0.5 the
    target repels with gain 1, the free branch has no fixed point and the output drifts
    (d * 5e-5 per iteration) toward saturation: far more than max_iter iterations."""
    topo = rc.Topology(nx.Graph([(0, 1)]), roles={"input": [0], "output": [1]})
    net = rc.EnergyNet(topo, activation="hard_sigmoid", max_iter=2000, tol=1e-10)
    p = {"W": np.array([[0.0, 1.0], [1.0, 0.0]]), "b": np.zeros(2)}
    x = np.full((2, 1), 0.5)
    y = np.full((2, 1), 0.5 - 1e-4)
    return net, p, (x, y)


def test_a_runaway_minus_beta_phase_raises_and_is_never_an_update():
    net, p, data = _runaway()
    x, y = data
    s0, _ = net.settle(p, x)                     # the free and +beta phases settle
    net.settle(p, x, y, beta=0.5, u0=s0)
    with pytest.raises(rc.ConvergenceError, match=r"nudged \(-beta\) phase \(beta=-0.5\)"):
        net.collect(p, data, ev.TwoPhase(beta=0.5, symmetric=True))
    applied = []
    with pytest.raises(rc.DivergenceError) as info:
        rc.train(net, p, R.chain(R.equilibrium_propagation(0.5, symmetric=True), R.scale(0.1)),
                 data, epochs=2, rng=0, progress=False,
                 callbacks=[lambda *a: applied.append(1)])
    assert isinstance(info.value.__cause__, rc.ConvergenceError)
    assert not applied
    # Stronger repulsion (gain 1.5): the free fixed point is unstable under the -beta nudge,
    # so the phase would jump to saturation; that is caught before it settles, by both
    # solvers.
    for solver in ("fixed_point", "newton"):
        strong = rc.EnergyNet(net.topology, activation="hard_sigmoid", solver=solver)
        with pytest.raises(rc.ConvergenceError, match="makes the free fixed point unstable"):
            strong.collect(p, data, ev.TwoPhase(beta=0.75, symmetric=True))
        assert strong.collect(p, data, ev.TwoPhase(beta=0.25, symmetric=True))[
            ev.TwoPhase(beta=0.25, symmetric=True)].nudged_minus is not None
    # One-sided EP on the same network needs no -beta phase and trains.
    q, _ = rc.train(net, p, R.chain(R.equilibrium_propagation(0.5), R.scale(0.1)), data,
                    epochs=2, rng=0, progress=False)
    net.check_params(q)


# --- training -----------------------------------------------------------------------------

def _regression(seed):
    """A 2-6-1 layered tanh network and y = x0 * x1 / 2 on 16 points (needs the hidden
    layer)."""
    G = rc.graphs.layered_graph([2, 6, 1], directed=False)
    net = rc.EnergyNet(rc.Topology(G), activation="tanh", tol=1e-7)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (16, 2))
    y = 0.5 * x[:, :1] * x[:, 1:]
    p = net.init(rng)
    p["b"] = rng.normal(0.0, 0.1, net.n_units)
    return net, p, (x, y)


@pytest.mark.slow
@pytest.mark.parametrize("rule", [R.equilibrium_propagation(0.1, symmetric=True), R.bptt()],
                         ids=["ep", "bptt"])
def test_training_reduces_the_loss_and_keeps_the_invariants(rule):
    better = 0
    for seed in range(5):
        net, p, data = _regression(seed)
        q, hist = rc.train(net, p, R.chain(rule, R.scale(1.0)), data, epochs=60, rng=seed,
                           progress=False)
        net.check_params(q)                        # symmetric, on the graph, zero diagonal
        assert np.array_equal(q["W"], q["W"].T) and not q["W"][~net.mask].any()
        better += hist.final_loss < 0.5 * hist.loss[0]
    assert better >= 4


def test_every_ngrad_rule_trains_through_train():
    net, p, data = _regression(0)
    for rule, rate in ((R.contrastive_hebbian(), 0.5), (R.generec(), 0.5),
                       (R.equilibrium_propagation(0.1), 0.5),
                       (R.node_perturbation(1e-3, 16), 0.2),
                       (R.weight_perturbation(1e-3, 16), 0.2)):
        q, hist = rc.train(net, p, R.chain(rule, R.scale(rate)), data, epochs=10, rng=1,
                           progress=False)
        net.check_params(q)
        assert hist.final_loss < hist.loss[0], rule.name


def test_rules_give_csr_updates_with_the_structure_of_a_sparse_W():
    """A sparse W (another network's choice) gets exactly its structure and the same values
    as the dense masked update."""
    import scipy.sparse as sp
    mask, s0, s1, s2, params = _hand_phases(2)
    rng = np.random.default_rng(0)
    Wd = np.where(mask, rng.normal(size=mask.shape), 0.0)
    Wd = np.where(mask, Wd + Wd.T, 0.0)
    Ws = sp.csr_array(Wd)
    ph = ev.Phases(free=_trace(s0, mask), nudged=_trace(s1, mask),
                   nudged_minus=_trace(s2, mask), beta=0.1)
    for rule in (R.equilibrium_propagation(0.1), R.equilibrium_propagation(0.1, True),
                 R.contrastive_hebbian(), R.generec()):
        e = _evidence(rule.requires, ph)
        dense, _ = rule.update(e, None, {"W": Wd, "b": params["b"]})
        csr, _ = rule.update(e, None, {"W": Ws, "b": params["b"]})
        assert sp.issparse(csr["W"]) and np.array_equal(csr["W"].indices, Ws.indices)
        assert np.array_equal(csr["W"].indptr, Ws.indptr)
        assert np.allclose(csr["W"].toarray(), dense["W"]), rule.name
