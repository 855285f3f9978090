"""The ESN's backpropagation through time against central finite differences, and in use.

The finite-difference reference differentiates ``ESN.loss`` itself (the forward run the
gradient claims to differentiate), entry by entry, in float64 with step 1e-6: its own error
is ~1e-10 of the largest entry (rounding) plus O(step^2) truncation. The gradient must match
it to 1e-6 of the parameter's largest entry, on every parameter and every case.
"""

import dataclasses

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import kernels, masked, tasks
from recur import rules as R
from recur.masked import values, with_values
from recur.networks import esn_gradient as eg
from recur.networks.esn_gradient import esn_gradient

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]
NAMES = ("W", "W_in", "b", "W_out", "b_out")
FD_STEP = 1e-6
FD_TOL = 1e-6


# --- helpers ------------------------------------------------------------------------------

def topology(n, p, seed, self_loops=True):
    """A directed gnp graph (cycles of every length) with self-loops on every other unit."""
    G = nx.gnp_random_graph(n, p, directed=True, seed=seed)
    if self_loops:
        G.add_edges_from((i, i) for i in range(0, n, 2))
    return rc.Topology(G)


def make_net(n=14, p=0.3, seed=0, *, leak=0.4, sparse=True, n_in=1, n_out=1, backend="auto",
             dtype=np.float64):
    # Moderate input and bias scaling keep tanh off saturation, so every weight matters.
    return rc.ESN(topology(n, p, seed), leak=leak, spectral_radius=0.9, input_scaling=0.8,
                  bias_scaling=0.3, output_scaling=1.0, n_in=n_in, n_out=n_out, sparse=sparse,
                  backend=backend, dtype=dtype)


def teacher_forced(steps=30, batch=None, washout=5, channels=1, rng=0):
    rng = np.random.default_rng(rng)
    s = np.hstack([tasks.sine_sum(steps * (batch or 1) + 2, rng=rng) for _ in range(channels)])
    if batch is None:
        u, y = tasks.next_step(s[: steps + 1])
    else:
        w = tasks.windows(s, steps + 1, batch)
        u, y = w[:, :-1], w[:, 1:]
    return tasks.TeacherForced(u, y, washout=washout)


def closed_loop(warmup=22, horizon=9, batch=3, channels=1, rng=0):
    rng = np.random.default_rng(rng)
    s = np.hstack([tasks.sine_sum(200, rng=rng) for _ in range(channels)])
    series = tasks.windows(s, warmup + horizon, batch, rng=rng)
    return tasks.ClosedLoop(series if batch > 1 else series[0], warmup=warmup, horizon=horizon)


def editable_entries(net, params, name):
    """Flat indices of the entries a gradient is defined on (a dense W: the mask)."""
    p = params[name]
    if name == "W" and not sp.issparse(p):
        return np.flatnonzero(net.topology.mask.toarray().ravel())
    return np.arange(values(p).size)


def finite_differences(net, params, data, name, entries, state=None, step=FD_STEP):
    """Central differences of ``net.loss`` in the given flat entries of ``params[name]``."""
    p = params[name]
    base = values(p).astype(np.float64).ravel()
    out = np.empty(len(entries))
    for k, idx in enumerate(entries):
        losses = []
        for sign in (1.0, -1.0):
            v = base.copy()
            v[idx] += sign * step
            moved = with_values(p, v.reshape(values(p).shape).astype(values(p).dtype))
            losses.append(net.loss({**params, name: moved}, data, state))
        out[k] = (losses[0] - losses[1]) / (2.0 * step)
    return out


def relative_error(grad, fd):
    """Largest deviation, relative to the largest entry of the reference."""
    return float(np.max(np.abs(grad - fd)) / np.max(np.abs(fd)))


def check_against_fd(net, params, data, backends, *, state=None, max_entries=None, rng=0):
    """FD on every parameter (a random subset of W's entries when ``max_entries``); returns
    the largest relative error over backends and parameters."""
    rng = np.random.default_rng(rng)
    traj = net.trajectory(params, data, state)
    grads = {b: esn_gradient(net, params, traj, backend=b) for b in backends}
    worst = 0.0
    for name in NAMES:
        entries = editable_entries(net, params, name)
        if max_entries is not None and name == "W" and entries.size > max_entries:
            entries = np.sort(rng.choice(entries, max_entries, replace=False))
        fd = finite_differences(net, params, data, name, entries, state)
        assert np.max(np.abs(fd)) > 0, f"the loss does not depend on {name}: a vacuous check"
        for backend, grad in grads.items():
            err = relative_error(values(grad[name]).ravel()[entries], fd)
            assert err < FD_TOL, f"{name} ({backend}): relative error {err:.2e}"
            worst = max(worst, err)
    return worst


def available(backends):
    return [b for b in backends if b == "numpy" or kernels.HAVE_NUMBA]


ALL = available(["numpy", "numba"])


# --- gradient against finite differences --------------------------------------------------

@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
@pytest.mark.parametrize("leak", [0.3, 1.0])
def test_teacher_forced_with_washout(sparse, leak):
    net = make_net(leak=leak, sparse=sparse)
    check_against_fd(net, net.init(1), teacher_forced(washout=6), ALL)


@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
@pytest.mark.parametrize("leak", [0.3, 1.0])
def test_closed_loop_windows(sparse, leak):
    # The free-running steps feed y_hat back through W_in: the gradient must follow that
    # path into W_out, b_out and back through the earlier states.
    net = make_net(leak=leak, sparse=sparse, seed=2)
    check_against_fd(net, net.init(3), closed_loop(batch=3), ALL)


def test_closed_loop_single_sequence_several_channels():
    net = make_net(n=12, n_in=2, n_out=2, seed=4)
    check_against_fd(net, net.init(5), closed_loop(batch=1, channels=2), ALL)


def test_batch_of_sequences_with_more_inputs_than_outputs():
    net = make_net(n=12, n_in=2, n_out=1, seed=6)
    data = teacher_forced(steps=25, batch=4, washout=3, channels=2)
    data = tasks.TeacherForced(data.inputs, data.targets[..., :1], washout=3)
    check_against_fd(net, net.init(7), data, ALL)


def test_initial_state_is_a_constant():
    net = make_net(seed=8)
    x0 = np.random.default_rng(0).uniform(-0.5, 0.5, net.n_units)
    check_against_fd(net, net.init(9), teacher_forced(washout=0), ALL, state=x0)


def test_larger_sparse_network_on_a_subset_of_edges():
    net = make_net(n=60, p=0.08, seed=10, leak=0.6)
    data = closed_loop(warmup=30, horizon=10, batch=2)
    check_against_fd(net, net.init(11), data, ALL, max_entries=40)


def test_numpy_per_edge_sums_by_gathers(monkeypatch):
    # Without numba, masked_outer sums a CSR W's edges through a dense product read at the
    # edges on denser graphs and through gathers on sparser ones; check the gathers too.
    monkeypatch.setattr(masked, "_DENSE_SUMS_MIN_DENSITY", np.inf)
    net = make_net(seed=30)
    assert not masked._dense_sums_pay(net.init(31)["W"], 10_000, np.float64, False)
    check_against_fd(net, net.init(31), closed_loop(batch=2), ["numpy"])


def test_recomputed_slope(monkeypatch):
    # Small leaks (and float32) recompute tanh'(z) from z instead of recovering it from the
    # states; force that path at an ordinary leak, where finite differences are accurate.
    monkeypatch.setattr(eg, "_RECOVER_MAX_ERROR", 0.0)
    assert not eg._recovers_slope(make_net())
    for sparse in (True, False):
        net = make_net(sparse=sparse, seed=12)
        check_against_fd(net, net.init(13), closed_loop(batch=2), ALL)


def test_small_leak_slope_paths_agree(monkeypatch):
    # At leak 1e-3 the recovered slope loses ~eps/leak; the recomputed one is exact. The two
    # must still agree far below the FD tolerance, which shows the bound is conservative.
    net = make_net(leak=1e-3, seed=14)
    params = net.init(15)
    traj = net.trajectory(params, teacher_forced(washout=0))
    assert not eg._recovers_slope(net)
    recomputed = esn_gradient(net, params, traj, backend="numpy")
    monkeypatch.setattr(eg, "_RECOVER_MAX_ERROR", 1.0)
    recovered = esn_gradient(net, params, traj, backend="numpy")
    for name in NAMES:
        a, b = values(recomputed[name]), values(recovered[name])
        assert np.max(np.abs(a - b)) <= 1e-9 * np.max(np.abs(a))


# --- structure, sign, dtypes, errors ------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_gradient_has_exactly_the_structure_of_W(backend):
    net = make_net(n=40, p=0.1, seed=16, backend=backend)
    params = net.init(17)
    g = net.collect(params, closed_loop(batch=2), R.Gradient())[R.Gradient()]
    W = params["W"]
    assert sp.issparse(g["W"]) and g["W"].format == "csr"
    assert np.array_equal(g["W"].indptr, W.indptr) and np.array_equal(g["W"].indices, W.indices)
    assert g["W"].data.shape == W.data.shape
    for name in NAMES[1:]:
        assert g[name].shape == params[name].shape
    R.apply_updates(params, g)  # accepted: the update cannot write off the graph


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_gradient_is_zero_off_the_graph(backend):
    net = make_net(n=20, p=0.2, seed=18, sparse=False, backend=backend)
    params = net.init(19)
    g = esn_gradient(net, params, net.trajectory(params, teacher_forced()))
    mask = net.topology.mask.toarray()
    assert isinstance(g["W"], np.ndarray) and g["W"].shape == mask.shape
    assert not g["W"][~mask].any() and g["W"][mask].any()


def test_bptt_rule_is_minus_the_gradient():
    net = make_net(seed=20)
    params = net.init(21)
    data = closed_loop(batch=2)
    rule = R.bptt()
    evidence = net.collect(params, data, rule.requires)
    updates, _ = rule.update(evidence, rule.init(params), params)
    grad = esn_gradient(net, params, net.trajectory(params, data))
    assert set(updates) == set(NAMES)
    for name in NAMES:
        np.testing.assert_array_equal(values(updates[name]), -values(grad[name]))
    assert evidence.loss == net.loss(params, data)


def test_float32_network():
    # Computed in float64 from the float32 run, returned in float32; it matches the float64
    # network's gradient on the same weights to float32 accuracy.
    net32 = make_net(seed=22, dtype=np.float32)
    net64 = make_net(seed=22)
    p32 = net32.init(23)
    p64 = {k: v.astype(np.float64) for k, v in p32.items()}
    data = closed_loop(batch=2)
    g32 = net32.collect(p32, data, R.Gradient())[R.Gradient()]
    g64 = net64.collect(p64, data, R.Gradient())[R.Gradient()]
    for name in NAMES:
        assert values(g32[name]).dtype == np.float32
        assert relative_error(values(g32[name]), values(g64[name])) < 1e-4


def test_rejects_malformed_input():
    net = make_net(seed=24)
    params = net.init(25)
    traj = net.trajectory(params, closed_loop(batch=2))
    free = traj.free.copy()
    free[0] = True
    with pytest.raises(ValueError, match="free"):
        esn_gradient(net, params, dataclasses.replace(traj, free=free))
    with pytest.raises(TypeError, match="CSR"):
        esn_gradient(net, {**params, "W": params["W"].tocsc()}, traj)


# --- compiled and numpy paths -------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("kind", ["csr", "csr-gathers", "dense"])
@pytest.mark.parametrize("data", ["single", "batch", "closed"])
@pytest.mark.parametrize("recover", [True, False])
def test_numba_and_numpy_agree(monkeypatch, kind, data, recover):
    # Few samples per pass of the compiled per-edge sums, so several passes and a ragged last
    # one run; 53 units give rows whose length is not a multiple of the 4-entry blocks. For a
    # CSR W the numpy path sums per edge through a dense product or through gathers.
    monkeypatch.setattr(masked, "_EDGE_SAMPLES", 24)
    if not recover:
        monkeypatch.setattr(eg, "_RECOVER_MAX_ERROR", 0.0)
    monkeypatch.setattr(masked, "_DENSE_SUMS_MIN_DENSITY",
                        np.inf if kind == "csr-gathers" else 0.0)
    net = make_net(n=53, p=0.15, seed=26, sparse=kind != "dense", leak=0.7)
    params = net.init(27)
    objective = {"single": teacher_forced(steps=70, washout=10),
                 "batch": teacher_forced(steps=70, batch=5, washout=10),
                 "closed": closed_loop(warmup=40, horizon=25, batch=4)}[data]
    traj = net.trajectory(params, objective)
    fast = esn_gradient(net, params, traj, backend="numba")
    ref = esn_gradient(net, params, traj, backend="numpy")
    for name in NAMES:
        a, b = values(fast[name]), values(ref[name])
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * np.max(np.abs(b)))


# --- training -----------------------------------------------------------------------------

def _train_setup(seed):
    rng = np.random.default_rng(seed)
    net = rc.ESN(rc.Topology(nx.gnp_random_graph(30, 0.15, directed=True, seed=seed)),
                 leak=0.5, spectral_radius=0.9, bias_scaling=0.2, n_in=1)
    return net, net.init(rng), rng


def test_bptt_training_reduces_next_step_loss_over_seeds():
    ratios = []
    for seed in range(5):
        net, params, rng = _train_setup(seed)
        u, y = tasks.next_step(tasks.sine_sum(300, frequencies=(0.2, 0.31), rng=rng))
        data = tasks.TeacherForced(u, y, washout=20)
        _, hist = rc.train(net, params, R.chain(R.bptt(), R.scale(0.1)), data, epochs=60,
                           rng=rng, progress=False)
        ratios.append(hist.final_loss / hist.loss[0])
    # Seen over seeds 0-5: final / initial loss between 0.004 and 0.15.
    assert max(ratios) < 0.5, ratios
    assert np.median(ratios) < 0.1, ratios


def test_bptt_training_reduces_closed_loop_loss_over_seeds():
    ratios = []
    for seed in range(5):
        net, params, rng = _train_setup(seed)
        s = tasks.sine_sum(400, frequencies=(0.2, 0.31), rng=rng)
        data = tasks.ClosedLoop(tasks.windows(s, 60, 8, rng=rng), warmup=40, horizon=15)
        _, hist = rc.train(net, params, R.chain(R.bptt(), R.scale(0.05)), data, epochs=60,
                           rng=rng, progress=False)
        ratios.append(hist.final_loss / hist.loss[0])
    # Seen over seeds 0-5: final / initial loss between 0.15 and 0.52.
    assert max(ratios) < 0.8, ratios
    assert np.median(ratios) < 0.4, ratios


def test_a_small_step_along_minus_the_gradient_lowers_the_loss():
    # First order: L(theta - eta g) = L - eta |g|^2 + O(eta^2), for every case kind.
    for data in (teacher_forced(batch=3), closed_loop(batch=3)):
        net = make_net(seed=28)
        params = net.init(29)
        evidence = net.collect(params, data, R.Gradient())
        g = evidence[R.Gradient()]
        sq = R.rule.tree_vdot(g, g)
        eta = 1e-4 / np.sqrt(sq)
        stepped = R.apply_updates(params, R.rule.tree_map(lambda v: -eta * v, g))
        drop = evidence.loss - net.loss(stepped, data)
        assert drop == pytest.approx(eta * sq, rel=1e-2)
