"""SpikingNet, its drives and the packet measures: closed forms, exact shifts, batching."""

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import recur as rc
from recur import graphs, metrics, tasks
from recur.networks.spiking import SpikeDrive, SpikingNet, psp_peak
from recur.rules import evidence as ev
from recur.rules.rule import Rule
from recur.kernels import HAVE_NUMBA
from recur.validation import DivergenceError

BACKENDS = ["numpy"] + (["numba"] if HAVE_NUMBA else [])


def _empty(n):
    return rc.Topology(nx.empty_graph(n, create_using=nx.DiGraph))


def _quiet(topo, **kw):
    """A LIF net without background noise."""
    return SpikingNet(topo, **{"noise_mean": 0.0, "noise_std": 0.0, **kw})


# -- LIF dynamics against closed forms -------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", [0.1, 0.05, 0.25])
def test_membrane_matches_closed_form_for_constant_input(dt, backend):
    mu = 9.0  # mV, below the 15 mV from rest to threshold: no spikes
    net = SpikingNet(_empty(3), dt=dt, noise_mean=mu, noise_std=0.0, backend=backend)
    p = net.init(0)
    for n in (1, 7, 40, 400):
        raster, st = net.run(p, n_steps=n)
        assert raster.units.size == 0
        t = n * dt
        expected = net.v_rest + mu * (1.0 - math.exp(-t / net.tau_m))
        np.testing.assert_allclose(st["v"], expected, rtol=0, atol=1e-10)


def test_drive_current_adds_to_the_mean_input():
    net = SpikingNet(_empty(2), noise_mean=2.0, noise_std=0.0)
    p = net.init(0)
    drive = SpikeDrive(units=np.zeros(0, int), steps=np.zeros(0, int), n_units=2, dt=0.1,
                       current=np.array([3.0, 6.0]))
    _, st = net.run(p, n_steps=50, drive=drive)
    decay = 1.0 - math.exp(-5.0 / net.tau_m)
    np.testing.assert_allclose(st["v"][0], net.v_rest + np.array([5.0, 8.0]) * decay,
                               atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("synapse", ["exp", "alpha"])
def test_postsynaptic_potential_matches_closed_form(synapse, backend):
    """One kick of weight w at step 0; the membrane follows the PSP kernel exactly."""
    tm, ts, w, dt = 10.0, 0.325, 4.86, 0.1
    net = _quiet(_empty(1), synapse=synapse, tau_m=tm, tau_syn=ts, backend=backend)
    p = net.init(0)
    kick = SpikeDrive(units=np.array([0]), steps=np.array([0]), n_units=1, dt=dt, weight=w)
    for n in (2, 5, 12, 30, 100):
        _, st = net.run(p, n_steps=n, drive=kick)
        t = (n - 1) * dt  # the current jumps at the end of step 0
        if synapse == "exp":
            ref = w * ts / (tm - ts) * (math.exp(-t / tm) - math.exp(-t / ts))
        else:
            s = np.linspace(0.0, t, 200001)
            cur = w * (s / ts) * np.exp(1.0 - s / ts)
            ref = np.trapezoid(cur * np.exp(-(t - s) / tm), s) / tm
        assert st["v"][0, 0] - net.v_rest == pytest.approx(ref, abs=1e-8)
    # the peak of the exponential-current PSP: Diesmann et al.'s 0.14 mV
    assert psp_peak(4.86) == pytest.approx(0.1408, abs=5e-4)


@pytest.mark.parametrize("synapse", ["exp", "alpha"])
@pytest.mark.parametrize("tm,ts", [(10.0, 0.325), (5.0, 1.0), (1.0, 5.0), (3.0, 3.0),
                                   (3.0, 3.0 + 1e-7), (3.0, 3.0 * (1 + 2e-9)), (20.0, 0.01),
                                   (0.5, 40.0)])
def test_psp_peak_is_the_maximum_of_the_integrated_psp(synapse, tm, ts):
    """The closed forms against the membrane equation integrated by quadrature and maximised
    numerically (equal time constants and nearly equal ones included)."""
    from scipy.integrate import quad
    from scipy.optimize import minimize_scalar

    def current(s):
        return np.exp(-s / ts) if synapse == "exp" else (s / ts) * np.exp(1.0 - s / ts)

    def v(t):
        return quad(lambda s: current(s) * np.exp(-(t - s) / tm), 0.0, t, epsabs=0.0,
                    epsrel=1e-13, limit=200)[0] / tm

    scale = max(tm, ts)
    grid = np.linspace(0.0, 12.0 * scale, 241)[1:]
    t0 = grid[int(np.argmax([v(t) for t in grid]))]
    best = minimize_scalar(lambda t: -v(t), bounds=(max(t0 - grid[0], 1e-9), t0 + grid[0]),
                           method="bounded", options={"xatol": 1e-10 * scale})
    assert psp_peak(2.5, tm, ts, synapse) == pytest.approx(2.5 * -best.fun, rel=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt,t_ref,mu", [(0.1, 2.0, 20.0), (0.05, 1.0, 17.3), (0.1, 0.0, 30.0)])
def test_regular_firing_matches_closed_form_isi(dt, t_ref, mu, backend):
    """Constant suprathreshold input: T = t_ref + tau ln(mu / (mu - theta)), on the grid."""
    net = SpikingNet(_empty(1), dt=dt, t_ref=t_ref, noise_mean=mu, noise_std=0.0,
                     backend=backend)
    theta = net.v_threshold - net.v_rest
    free = net.tau_m * math.log(mu / (mu - theta))
    m = math.ceil(free / dt - 1e-9)  # steps from reset to threshold
    n_ref = round(t_ref / dt)
    raster, _ = net.run(net.init(0), 300.0)
    steps = raster.steps
    assert steps[0] == m - 1  # starts at rest at step -1
    np.testing.assert_array_equal(np.diff(steps), n_ref + m)
    n = raster.n_steps
    assert steps.size == (n - m) // (n_ref + m) + 1
    # the rate is the closed-form one up to the grid
    rate = steps.size / 0.3
    assert rate == pytest.approx(1e3 / (t_ref + free), rel=0.05)


def test_refractory_period_holds_the_membrane_at_reset():
    net = SpikingNet(_empty(1), t_ref=2.0, noise_mean=40.0, noise_std=0.0, v_reset=-75.0)
    raster, _ = net.run(net.init(0), n_steps=100)
    first = raster.steps[0]
    _, st = net.run(net.init(0), n_steps=first + 1 + 10)  # inside the 20-step refractory
    assert st["v"][0, 0] == -75.0
    assert st["refractory"][0, 0] == 20 - 10


def test_spontaneous_rate_of_the_default_background():
    """The default background drive gives an isolated unit about 3.5 Hz."""
    net = SpikingNet(_empty(300))
    rates = []
    for seed in range(2):
        raster, _ = net.run(net.init(0), 1000.0,
                            state=net.initial_state(rng=seed, stationary=True), rng=seed + 10)
        rates.append(raster.units.size / 300 / 1.0)
    assert 2.9 < np.mean(rates) < 4.1


# -- delays -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_delays_shift_spikes_by_exactly_the_delay(backend):
    G = nx.DiGraph()
    G.add_edge(0, 1, d=0.3)
    G.add_edge(0, 2, d=0.7)
    G.add_edge(2, 3, d=0.1)
    net = SpikingNet(rc.Topology(G, nodelist=[0, 1, 2, 3]), model="binary", dt=0.1,
                     delay="d", weight=1.0, theta=1.0, backend=backend)
    drive = SpikeDrive(units=np.array([0]), steps=np.array([5]), n_units=4, dt=0.1)
    params = net.init(0)
    before = params["W"].copy()
    raster, _ = net.run(params, n_steps=30, drive=drive)
    fired = dict(zip(raster.units.tolist(), raster.steps.tolist()))
    assert fired == {0: 5, 1: 8, 2: 12, 3: 13}
    assert raster.trials is None
    # the run left the caller's weights alone (structure and values)
    for attr in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(params["W"], attr), getattr(before, attr))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_delay_shifts_spikes_by_exactly_the_delay(backend):
    G = nx.DiGraph([(0, 1)])
    kick = SpikeDrive(units=np.array([0]), steps=np.array([3]), n_units=2, dt=0.1)
    out = {}
    for delay in (1.0, 2.5):
        net = _quiet(rc.Topology(G, nodelist=[0, 1]), delay=delay, weight=1000.0,
                     backend=backend)
        raster, _ = net.run(net.init(0), 20.0, drive=kick)
        out[delay] = raster.steps[raster.units == 1]
    assert out[1.0].size == 1
    assert out[2.5][0] - out[1.0][0] == 15


def test_delays_carry_over_between_chunks():
    """A spike still in flight at the end of a run arrives in the next one."""
    G = nx.DiGraph([(0, 1)])
    net = SpikingNet(rc.Topology(G, nodelist=[0, 1]), model="binary", dt=1.0, delay=5.0)
    drive = SpikeDrive(units=np.array([0]), steps=np.array([8]), n_units=2, dt=1.0)
    r1, st = net.run(net.init(0), n_steps=10, drive=drive)
    r2, _ = net.run(net.init(0), n_steps=10, state=st)
    assert r1.units.tolist() == [0] and r2.units.tolist() == [1] and r2.steps.tolist() == [3]


# -- batching, chunking, reproducibility -----------------------------------------------------

def _chain_net(**kw):
    topo = rc.Topology(graphs.synfire_chain_graph(3, 20, 1.0, seed=0))
    return SpikingNet(topo, **{"weight": 4.86 * 5, **kw}), topo


def _gens(seed, n):
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _by_trial(raster, B):
    tr = np.zeros(raster.units.size, int) if raster.trials is None else raster.trials
    return [(raster.units[tr == b], raster.steps[tr == b]) for b in range(B)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_trials_equal_looped_trials(backend):
    net, topo = _chain_net(noise_mean=12.0, noise_std=3.0, backend=backend)
    p = net.init(0)
    B = 4
    drive = tasks.pulse_packet(15, 1.0, topo.pools[0], t0=5.0, n_units=60, trials=B, rng=1)
    batched, st_b = net.run(p, 40.0, drive, trials=B, rng=_gens(7, B))
    assert batched.units.size > 0
    gens = _gens(7, B)
    for b, (u, s) in enumerate(_by_trial(batched, B)):
        keep = drive.trials == b
        single = SpikeDrive(units=drive.units[keep], steps=drive.steps[keep], n_units=60,
                            dt=0.1)
        r, st = net.run(p, 40.0, single, rng=[gens[b]])
        np.testing.assert_array_equal(r.units, u)
        np.testing.assert_array_equal(r.steps, s)
        np.testing.assert_array_equal(st["v"][0], st_b["v"][b])
    # the trials are independent: their noise differs
    spikes = _by_trial(batched, B)
    assert not all(np.array_equal(spikes[0][1], spikes[b][1]) for b in range(1, B))


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunked_run_equals_one_run(backend):
    net, topo = _chain_net(noise_mean=13.0, noise_std=3.0, backend=backend)
    p = net.init(0)
    whole, st_w = net.run(p, n_steps=700, trials=2, rng=_gens(3, 2))
    gens = _gens(3, 2)
    first, st = net.run(p, n_steps=300, trials=2, rng=gens)
    second, st = net.run(p, n_steps=400, trials=2, rng=gens, state=st)
    units = np.concatenate([first.units, second.units])
    steps = np.concatenate([first.steps, second.steps + 300])
    np.testing.assert_array_equal(units, whole.units)
    np.testing.assert_array_equal(steps, whole.steps)
    np.testing.assert_array_equal(st["v"], st_w["v"])
    assert whole.units.size > 20


def test_same_seed_same_spikes_and_raster_is_sorted():
    net, _ = _chain_net(noise_mean=13.0, noise_std=3.0)
    p = net.init(0)
    a, _ = net.run(p, 50.0, trials=3, rng=11)
    b, _ = net.run(p, 50.0, trials=3, rng=11)
    np.testing.assert_array_equal(a.units, b.units)
    np.testing.assert_array_equal(a.trials, b.trials)
    assert np.all(np.diff(a.steps) >= 0)
    assert a.n_steps == 500 and a.dt == 0.1 and a.n_units == 60


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("kind", [{}, {"synapse": "alpha", "t_ref": 0.0},
                                  {"model": "binary", "theta": 3.0, "weight": 1.0}])
def test_numba_loop_equals_numpy_loop(kind):
    """Same generators, same drives: the same spikes and the same state to the last bit,
    with per-edge delays, imposed spikes, kicks and a drive current."""
    G = graphs.synfire_chain_graph(4, 30, 0.8, p_recurrent=0.1, seed=3)
    choice = np.random.default_rng(0)
    for u, v in G.edges:
        G.edges[u, v]["d"] = float(choice.choice([0.1, 0.5, 1.3]))
    topo = rc.Topology(G)
    B = 3
    drives = [tasks.pulse_packet(20, 1.0, topo.pools[0], t0=5.0, n_units=120, trials=B, rng=1),
              tasks.poisson_drive(200.0, 120, 60.0, 0.1, weight=3.0, trials=B, rng=2),
              tasks.spontaneous(120, 60.0, 20.0, rng=3),
              SpikeDrive(units=np.zeros(0, int), steps=np.zeros(0, int), n_units=120, dt=0.1,
                         current=np.linspace(0.0, 2.0, 120))]
    out = {}
    for backend in ("numpy", "numba"):
        net = SpikingNet(topo, delay="d", backend=backend, **{"weight": 12.0, **kind})
        state = net.initial_state(B, rng=5, stationary=True)
        out[backend] = net.run(net.init(0), 60.0, drives, trials=B, state=state,
                               rng=_gens(4, B))
    (ra, sa), (rb, sb) = out["numpy"], out["numba"]
    assert ra.units.size > 100
    for attr in ("units", "steps", "trials"):
        np.testing.assert_array_equal(getattr(ra, attr), getattr(rb, attr))
    for key in ("v", "syn", "refractory", "buffer"):
        np.testing.assert_array_equal(sa[key], sb[key])


# -- parameters and bad input ----------------------------------------------------------------

def test_init_weights_from_constant_attribute_and_callable():
    G = nx.DiGraph()
    G.add_edge(0, 1, w=2.0)
    G.add_edge(1, 2, w=-3.0)
    topo = rc.Topology(G, nodelist=[0, 1, 2])
    W = SpikingNet(topo, weight="w").init(0)["W"]
    assert W.toarray().tolist() == [[0, 0, 0], [2.0, 0, 0], [0, -3.0, 0]]  # W[post, pre]
    W = SpikingNet(topo, weight=lambda rng, n: rng.uniform(1, 2, n)).init(0)["W"]
    assert W.nnz == 2 and np.all((W.data >= 1) & (W.data <= 2))


def test_bounds_raise_in_check_and_clip_in_constrain():
    net = SpikingNet(_chain_net()[1], w_min=0.0, w_max=10.0, weight=5.0)
    p = net.init(0)
    W = p["W"].copy()
    W.data[:3] = [-1.0, 20.0, 5.0]
    bad = {"W": W}
    with pytest.raises(ValueError, match="w_min"):
        net.check_params(bad)
    fixed = net.constrain(bad)
    net.check_params(fixed)
    assert fixed["W"].data[:3].tolist() == [0.0, 10.0, 5.0]
    assert np.array_equal(fixed["W"].indices, W.indices)
    assert W.data[0] == -1.0  # constrain does not modify its input
    off = sp.csr_array(np.ones((60, 60)))
    with pytest.raises(ValueError, match="structure"):
        net.check_params({"W": off})
    W.data[0] = np.nan
    with pytest.raises(DivergenceError):
        net.check_params({"W": W})


@pytest.mark.parametrize("kwargs,match", [
    ({"dt": 0.5}, "tau_syn"),
    ({"dt": 12.0, "tau_syn": 20.0}, "tau_m"),
    ({"delay": -1.0}, "negative"),
    ({"delay": 0.05}, "shortest delay"),
    ({"v_threshold": -75.0}, "v_threshold must lie above v_reset"),
    ({"model": "izhikevich"}, "model"),
    ({"w_min": 2.0, "w_max": 1.0}, "w_min"),
    ({"delay": "missing"}, "no attribute"),
])
def test_bad_configuration_raises_naming_the_argument(kwargs, match):
    topo = rc.Topology(nx.DiGraph([(0, 1)]))
    with pytest.raises(ValueError, match=match):
        SpikingNet(topo, **kwargs)


def test_bad_drives_raise():
    net, topo = _chain_net()
    p = net.init(0)
    with pytest.raises(ValueError, match="at most the pool size"):
        tasks.pulse_packet(21, 1.0, topo.pools[0], t0=5.0, n_units=60)
    late = SpikeDrive(units=np.array([0]), steps=np.array([500]), n_units=60, dt=0.1)
    with pytest.raises(ValueError, match="after the end"):
        net.run(p, 10.0, late)
    with pytest.raises(ValueError, match="dt"):
        net.run(p, 10.0, SpikeDrive(units=np.array([0]), steps=np.array([1]), n_units=60,
                                    dt=0.2))
    with pytest.raises(ValueError, match="units"):
        SpikeDrive(units=np.array([60]), steps=np.array([1]), n_units=60, dt=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        net.run(p)
    with pytest.raises(ValueError, match="trial"):
        net.run(p, 10.0, state=net.initial_state(2))


# -- drives ----------------------------------------------------------------------------------

SEEDS = [3, 4, 5, 6, 7]


@pytest.mark.parametrize("seed", SEEDS)
def test_pulse_packet_uses_distinct_units_with_the_asked_spread(seed):
    pool = np.arange(100, 200)
    d = tasks.pulse_packet(80, 2.0, pool, t0=30.0, n_units=300, trials=50, rng=seed)
    for b in range(50):
        u = d.units[d.trials == b]
        assert u.size == 80 and np.unique(u).size == 80 and np.isin(u, pool).all()
    t = d.steps * d.dt
    n = t.size
    # 4 standard errors: of the mean, sigma / sqrt(n); of the standard deviation,
    # sigma / sqrt(2 n) (the grid's rounding adds dt^2 / 12 to the variance, negligible).
    assert abs(t.mean() - 30.0) < 4 * 2.0 / np.sqrt(n)
    assert abs(t.std() - 2.0) < 4 * 2.0 / np.sqrt(2 * n)


@pytest.mark.parametrize("seed", SEEDS)
def test_poisson_drive_rate(seed):
    d = tasks.poisson_drive(20.0, 50, 2000.0, 0.1, trials=3, rng=seed)
    expected = 20.0 * 50 * 3 * 2.0  # events: rate x units x trials x seconds
    assert abs(d.n_events - expected) < 4 * np.sqrt(expected)  # Poisson: sd = sqrt(mean)
    s = tasks.spontaneous(10, 100.0, 5.0, rng=seed)
    assert s.weight is None and s.trials is None


@pytest.mark.parametrize("seed", SEEDS)
def test_poisson_kicks_raise_the_membrane_by_the_shot_noise_mean(seed):
    """Campbell: kicks of w at rate r raise the mean membrane by w tau_s r (the PSP's area
    times the rate), with variance r * integral of the squared PSP (the second theorem)
    across independent units. On the grid a unit takes at most one kick per step, with
    probability p = 1 - exp(-rate dt): a Bernoulli train of rate p / dt whose variance
    carries a factor (1 - p)."""
    net = _quiet(_empty(200), v_threshold=0.0)  # no spikes
    # 200 units x 50 trials: 10^4 independent samples, so that one standard error (0.2% of
    # the mean) is far below the 5% the grid's merging of kicks changes the mean by.
    d = tasks.poisson_drive(1000.0, 200, 200.0, 0.1, weight=2.0, trials=50, rng=seed)
    _, st = net.run(net.init(0), 200.0, d, trials=50)
    w, tau_s, tau_m, dt = 2.0, 0.325, 10.0, 0.1
    p = -np.expm1(-1.0 * dt)  # 1000 Hz = 1 per ms
    rate = p / dt
    expected = w * tau_s * rate
    psp_sq = (w * tau_s / (tau_m - tau_s)) ** 2 * (
        tau_m / 2 + tau_s / 2 - 2 * tau_m * tau_s / (tau_m + tau_s))
    sd = np.sqrt(rate * (1 - p) * psp_sq)
    v = st["v"] - net.v_rest
    assert v.size == 10_000
    assert abs(v.mean() - expected) < 4 * sd / np.sqrt(v.size)
    assert v.std() == pytest.approx(sd, rel=4 / np.sqrt(2 * v.size))


# -- pools, metrics, rule interface -----------------------------------------------------------

def test_packet_measures_on_a_hand_made_raster():
    pools = [np.arange(0, 10), np.arange(10, 20)]
    # pool 0: 4 spikes at 5.0, 5.2, 5.4, 5.6 ms; pool 1: 3 at 8.0, 8.0, 8.3; one background
    units = np.array([0, 1, 2, 3, 10, 11, 12, 13])
    steps = np.array([50, 52, 54, 56, 80, 80, 83, 190])
    raster = ev.SpikeTrains(units=units, steps=steps, n_units=20, n_steps=200, dt=0.1)
    m = metrics.packet_measures(raster, pools, t0=5.0)
    assert m.a.tolist() == [[4, 3]]
    assert m.sigma[0, 0] == pytest.approx(np.std([5.0, 5.2, 5.4, 5.6]))
    assert m.sigma[0, 1] == pytest.approx(np.std([8.0, 8.0, 8.3]))
    assert metrics.propagation_success(m, fraction=0.3).tolist() == [True]
    assert metrics.propagation_success(m, fraction=0.5).tolist() == [False]
    assert metrics.propagation_success(np.array([[4, 6]]), [10, 10]).tolist() == [True]
    # a silent trial after the last one with spikes still counts, when named
    batched = ev.SpikeTrains(units=units, steps=steps, n_units=20, n_steps=200, dt=0.1,
                             trials=np.zeros(units.size, int))
    m = metrics.packet_measures(batched, pools, t0=5.0, n_trials=2)
    assert m.a.tolist() == [[4, 3], [0, 0]] and np.isnan(m.sigma[1]).all()


def test_pool_summary_counts():
    net, topo = _chain_net(model="binary", theta=10.0, weight=1.0, delay=0.1)
    d = tasks.pulse_packet(15, 0.0, topo.pools[0], t0=1.0, n_units=60, trials=2, rng=0)
    raster, _ = net.run(net.init(0), 5.0, d, trials=2)
    s = net.pool_summary(raster, bin_width=0.1)
    assert s["counts"].tolist() == [[15, 20, 20], [15, 20, 20]]
    assert s["histogram"][0, 1, 11] == 20  # pool 1 fires one step after pool 0
    assert s["times"][2][1] == pytest.approx(np.full(20, 1.2))


def test_collect_serves_spikes_and_threads_state():
    net, topo = _chain_net(noise_mean=13.0, noise_std=3.0)
    p = net.init(0)
    evidence = net.collect(p, 50.0, ev.Spikes(), rng=1)
    trains = evidence[ev.Spikes()]
    assert isinstance(trains, ev.SpikeTrains) and trains.n_steps == 500
    assert (trains.masks["W"] != topo.mask).nnz == 0
    assert evidence.state["step"] == 500 and evidence.loss > 0
    # Perturbation needs a task loss in the data; a bare duration has none.
    with pytest.raises(ValueError, match="task loss"):
        net.collect(p, 50.0, ev.Perturbed(sigma=0.1))

    seen = []

    def update(evidence, state, params, *, rng=None):
        seen.append(evidence.state["step"])
        W = params["W"]
        return {"W": sp.csr_array((np.full(W.nnz, 0.01), W.indices, W.indptr),
                                  shape=W.shape)}, state

    rule = Rule(name="constant", update=update, requires=ev.Spikes())
    drive = tasks.spontaneous(60, 20.0, 5.0, rng=2)
    p2, hist = rc.train(net, p, rule, [(20.0, drive)] * 3, epochs=3, rng=0, progress=False)
    assert seen == [200, 400, 600]  # the state carried over from chunk to chunk
    np.testing.assert_allclose(p2["W"].data, p["W"].data + 0.03)
