"""The spiking benchmark: its helpers, its quick run, and (when a Brian2 interpreter is
available) the Brian2 model against recur's on a noise-free network, spike for spike."""

import importlib.util
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import recur
from recur import graphs, tasks
from recur.networks.spiking import SpikingNet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_spiking",
                                                  ROOT / "benchmarks" / "bench_spiking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _brian2_python():
    """An interpreter that imports brian2: $RECUR_BRIAN2_PYTHON, else this one, else None."""
    candidates = [os.environ.get("RECUR_BRIAN2_PYTHON"), sys.executable]
    import subprocess

    for py in candidates:
        if not py or not shutil.which(py) and not Path(py).exists():
            continue
        res = subprocess.run([py, "-c", "import brian2"], capture_output=True, timeout=120)
        if res.returncode == 0:
            return py
    return None


def test_benchmark_quick_without_brian2(bench, tmp_path):
    out = tmp_path / "bench.md"
    assert bench.main(["--quick", "--no-brian2", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Diesmann chain 10 x 100" in text and "random LIF network" in text
    assert "skipped (no Brian2)" in text
    assert "recur only (no Brian2)" in text


def test_count_agreement_hand_computed(bench):
    a = np.array([[10, 0], [12, 0], [14, 0]])     # mean 12, sd 2; second pool constant 0
    b = np.array([[9, 0], [11, 0], [10, 0], [10, 0]])  # mean 10, sd sqrt(2/3); constant 0
    res = bench.count_agreement(a, b)
    se = math.sqrt(4.0 / 3 + (2.0 / 3) / 4)
    assert res["z"][0] == pytest.approx(2.0 / se)
    assert res["z"][1] == 0.0                       # no spread, equal means
    assert res["max_abs_z"] == pytest.approx(2.0 / se)
    res = bench.count_agreement(np.zeros((3, 1)), np.ones((3, 1)))
    assert np.isinf(res["z"][0])                    # no spread, different means
    with pytest.raises(ValueError, match="trials, pools"):
        bench.count_agreement(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="two trials"):
        bench.count_agreement(np.zeros((1, 2)), np.zeros((3, 2)))


def test_count_agreement_false_alarms_and_power(bench):
    """Under the null (same Poisson counts), max |z| over 10 pools exceeds the limit in
    about 1% of draws (Bonferroni); a 10% shift of the mean at the benchmark's 40 trials is
    found in nearly every draw."""
    rng = np.random.default_rng(5)
    n_draws, trials, mean = 400, 40, 140.0
    null = [bench.count_agreement(rng.poisson(mean, (trials, 10)),
                                  rng.poisson(mean, (trials, 10)))["max_abs_z"]
            for _ in range(n_draws)]
    false_alarm = np.mean(np.array(null) >= bench.Z_CRIT)
    assert false_alarm <= 0.04          # nominal 0.01; binomial sd at 400 draws is 0.005
    shifted = [bench.count_agreement(rng.poisson(mean, (trials, 10)),
                                     rng.poisson(1.1 * mean, (trials, 10)))["max_abs_z"]
               for _ in range(100)]
    assert np.mean(np.array(shifted) >= bench.Z_CRIT) >= 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_in_degree_graph(bench, seed):
    n, k = 300, 17
    G = bench.random_in_degree_graph(n, k, rng=seed)
    assert G.number_of_nodes() == n and G.number_of_edges() == n * k
    assert all(d == k for _, d in G.in_degree())
    assert not any(u == v for u, v in G.edges())
    # Presynaptic units uniform over the others: out-degrees have mean k and a binomial
    # spread, sd sqrt(k (1 - k/(n-1))) ~ 4 (checked loosely: no unit is favoured).
    out = np.array([d for _, d in G.out_degree()])
    assert out.mean() == pytest.approx(k)
    assert 2.0 < out.std() < 6.5
    with pytest.raises(ValueError, match="k_in"):
        bench.random_in_degree_graph(5, 5)


def test_brian2_spec_round_trip(bench):
    topo = recur.Topology(graphs.synfire_chain_graph(3, 4, 1.0))
    net = SpikingNet(topo, weight=lambda rng, n: rng.uniform(1.0, 5.0, n))
    params = net.init(3)
    state = net.initial_state(2, rng=4, stationary=True)
    drive = tasks.pulse_packet(3, 0.5, topo.pools[0], t0=2.0, n_units=net.n_units, dt=net.dt,
                               trials=2, rng=5)
    spec = bench.brian2_spec(net, params, v0=state["v"], n_steps=50, drive=drive, trials=2)
    W = sp.csr_array((spec["weight"], (spec["post"], spec["pre"])), shape=params["W"].shape)
    assert abs(W - params["W"]).max() == 0
    np.testing.assert_allclose(spec["v0"], state["v"] - net.v_rest)
    assert spec["theta"] == pytest.approx(15.0) and spec["reset"] == 0.0
    assert spec["delay"] == pytest.approx(1.0)
    # Brian2 counts the refractory period from the spike step, recur after it.
    assert spec["refractory"] == pytest.approx((net.refractory_steps + 1) * net.dt)
    # The exact OU increment over one step: sigma_V sqrt(1 - exp(-2 dt / tau_m)).
    assert spec["noise_scale"] == pytest.approx(3.13 * math.sqrt(1 - math.exp(-0.02)))
    np.testing.assert_array_equal(np.sort(spec["forced_trials"]), [0, 0, 0, 1, 1, 1])
    assert set(spec["forced_units"]) <= set(topo.pools[0].tolist())
    with pytest.raises(ValueError, match="one delay"):
        import networkx as nx

        G = nx.DiGraph()
        G.add_edge(0, 1, d=1.0)
        G.add_edge(1, 2, d=2.0)
        n2 = SpikingNet(recur.Topology(G), delay="d")
        bench.brian2_spec(n2, n2.init(0), v0=n2.initial_state()["v"], n_steps=10)


@pytest.mark.slow
def test_brian2_model_matches_recur_spike_for_spike(bench, tmp_path):
    """Without noise both simulators are deterministic: the Brian2 model (exact linear
    propagator, threshold, reset, refractory period, delays, imposed spikes) must give
    recur's spikes exactly."""
    py = _brian2_python()
    if py is None:
        pytest.skip("no interpreter with brian2 (set RECUR_BRIAN2_PYTHON)")
    raster, spec = bench.exact_case()
    path = tmp_path / "spec.npz"
    np.savez(path, **spec)
    with open(tmp_path / "log", "w") as log:
        w = bench.Brian2Worker(py, "numpy", log)
        try:
            w.call("build", name="x", path=str(path))
            w.call("run", name="x")
            sp_ = w.call("spikes", name="x")
        finally:
            w.close()
    ours = set(zip(raster.trials.tolist(), raster.units.tolist(), raster.steps.tolist()))
    theirs = set(zip(sp_["trials"], sp_["units"], sp_["steps"]))
    assert len(ours) > 100
    assert ours == theirs


def test_start_workers_reports_a_missing_interpreter(bench, tmp_path):
    workers, line, reason = bench.start_workers(str(tmp_path / "no-python"), ("numpy",),
                                                tmp_path / "log")
    assert workers == {} and line is None
    assert "does not run" in reason and "no-python" in reason
