"""Running sweeps: failing cells are kept and the sweep goes on, a restart skips what is done,
a cell rerun alone gives the stored numbers, local workers and a Dask cluster give the
in-process numbers, and a sweep killed with SIGKILL resumes with no duplicate or missing
row."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from recur.sweep import ResultStore, SpecError, load_spec, parse_spec, run_cell, run_sweep
from recur.sweep.cells import execute
from recur.sweep.cli import add_commands, parse_set
from recur.sweep.runner import _alive

DIAGNOSTIC = """
[sweep]
name = "diagnostic"
network = "none"
seeds = 4
entropy = 3
[topologies]
t = { catalogue = "ring", params = { n = 4 } }
[tasks.empty]
[tasks.fail]
"""

SMALL = """
[sweep]
name = "small ESN and Hopfield"
network = "esn"
seeds = 2
entropy = 99
[network]
spectral_radius = 0.9
input_scaling = 0.2
[topologies]
ring = { catalogue = "ring" }
er = { catalogue = "erdos_renyi", params = { p = 0.2 } }
[tasks.memory_capacity]
steps = 300
washout = 20
max_delay = 30
[tasks.narma]
train_steps = 300
test_steps = 200
washout = 20
alpha = 1e-4
[grid]
"topology.n" = [15, 25]
"""

HOPFIELD = """
[sweep]
name = "small Hopfield"
network = "hopfield"
seeds = 2
entropy = 5
[topologies]
er = { catalogue = "erdos_renyi", params = { n = 30, directed = false } }
[tasks.hopfield_capacity]
[rules.hebbian]
[rules.storkey]
[grid]
"topology.p" = [1.0, 0.5]
"task.load" = [0.05, 0.2]
"""


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def metrics_by_cell(store, spec_hash=None):
    with ResultStore(store, readonly=True) as s:
        return {r["cell_id"]: r["metrics"] for r in s.records(spec_hash)}


def test_failing_cells_are_recorded_and_the_sweep_goes_on(tmp_path):
    path = write(tmp_path, DIAGNOSTIC)
    out = run_sweep(path, workers=1, progress=False)
    assert out.store == tmp_path / "spec.sqlite"  # beside the spec
    assert (out.total, out.ran, out.ok, out.errors) == (8, 8, 4, 4)
    with ResultStore(out.store, readonly=True) as s:
        errors = [r for r in s.records() if r["status"] == "error"]
    assert len(errors) == 4 and all("RuntimeError" in r["error"] for r in errors)

    again = run_sweep(path, workers=1, progress=False)
    assert (again.skipped, again.ran, again.ok, again.errors) == (8, 0, 4, 4)
    retried = run_sweep(path, workers=1, progress=False, retry_errors=True)
    assert (retried.skipped, retried.ran, retried.errors) == (4, 4, 4)
    with ResultStore(out.store, readonly=True) as s:
        assert s.count() == 8


def test_a_cell_rerun_alone_gives_the_stored_numbers(tmp_path):
    path = write(tmp_path, SMALL)
    out = run_sweep(path, workers=1, progress=False)
    assert out.ok == out.total == 2 * 2 * 2 * 2
    stored = metrics_by_cell(out.store)
    spec = load_spec(path)
    for cell in list(spec.cells())[::3]:
        again = run_cell(spec, cell.cell_id)
        assert again["status"] == "ok"
        assert again["metrics"] == stored[cell.cell_id]


def test_reference_values_of_the_cells(tmp_path):
    """Numbers that mean something: MC <= N (i.i.d. input), a NARMA readout better than the
    mean, and a lightly loaded Hopfield net that holds its patterns."""
    out = run_sweep(write(tmp_path, SMALL), workers=1, progress=False)
    with ResultStore(out.store, readonly=True) as s:
        rows = s.records()
    narma = []
    for r in rows:
        n = r["axes"]["topology.n"]
        if r["task"] == "memory_capacity":
            assert 0.5 < r["metrics"]["memory_capacity"] <= n
        else:
            narma.append(r["metrics"]["nrmse"])
    # 200 test steps make single cells noisy (0.45-0.75 here); the median is the claim
    assert len(narma) == 8 and np.median(narma) < 0.85
    hop = run_sweep(write(tmp_path, HOPFIELD, "hop.toml"), workers=1, progress=False)
    with ResultStore(hop.store, readonly=True) as s:
        rows = s.records()
    light = [r for r in rows if r["axes"]["task.load"] == 0.05 and r["axes"]["topology.p"] == 1]
    assert light and all(r["metrics"]["fixed"] == 1.0 for r in light)
    heavy = [r for r in rows if r["axes"]["task.load"] == 0.2 and r["rule"] == "hebbian"
             and r["axes"]["topology.p"] == 0.5]
    assert all(r["metrics"]["overlap"] < 1.0 for r in heavy)


def test_a_cells_numbers_do_not_depend_on_the_rest_of_the_grid(tmp_path):
    small = parse_spec(SMALL, folder=tmp_path)
    grown = parse_spec(SMALL.replace('"topology.n" = [15, 25]', '"topology.n" = [25, 35]')
                       .replace("seeds = 2", "seeds = 3"), folder=tmp_path)
    shared = {c.cell_id: c for c in grown.cells()}
    common = [c for c in small.cells() if c.cell_id in shared]
    assert len(common) == 2 * 2 * 1 * 2  # n = 25, seeds 0 and 1
    for cell in common[:4]:
        assert execute(cell.payload)["metrics"] == \
            execute(shared[cell.cell_id].payload)["metrics"]


@pytest.mark.slow
def test_local_workers_give_the_in_process_numbers(tmp_path):
    path = write(tmp_path, HOPFIELD)
    one = run_sweep(path, store=tmp_path / "one.sqlite", workers=1, progress=False)
    two = run_sweep(path, store=tmp_path / "two.sqlite", workers=2, progress=False)
    assert one.ok == two.ok == one.total
    a, b = metrics_by_cell(one.store), metrics_by_cell(two.store)
    assert a == b
    with ResultStore(two.store, readonly=True) as s:
        hosts = {r["host"].rsplit(":", 1)[1] for r in s.records()}
    assert str(os.getpid()) not in hosts  # the cells ran in worker processes


@pytest.mark.slow
def test_kill_9_then_restart_completes_with_no_duplicate(tmp_path):
    spec_text = DIAGNOSTIC.replace("[tasks.empty]\n[tasks.fail]\n",
                                   "[tasks.sleep]\nseconds = 0.05\n").replace(
        "seeds = 4", "seeds = 40")
    path = write(tmp_path, spec_text)
    store = tmp_path / "spec.sqlite"
    code = ("import sys; from recur.sweep import run_sweep; "
            "run_sweep(sys.argv[1], workers=2, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline:
            if store.exists():
                try:
                    with ResultStore(store, readonly=True) as s:
                        stored = s.count()
                except Exception:  # the writer may be creating the schema
                    stored = 0
            if stored >= 5:
                break
            time.sleep(0.05)
        assert stored >= 5, "the sweep did not store cells in time"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with ResultStore(store, readonly=True) as s:
        before = s.count()
        workers = {int(r["host"].rsplit(":", 1)[1]) for r in s.records()}
    assert 5 <= before < 40  # killed part way
    # the orphaned worker processes notice and exit
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)

    out = run_sweep(path, workers=1, progress=False)
    assert out.skipped == before and out.ran == 40 - before
    spec = load_spec(path)
    with ResultStore(store, readonly=True) as s:
        ids = [r["cell_id"] for r in s.records(spec.spec_hash)]
        assert all(r["status"] == "ok" for r in s.records())
    assert len(ids) == len(set(ids)) == 40
    assert set(ids) == {c.cell_id for c in spec.cells()}


@pytest.mark.slow
def test_dask_cluster_gives_the_local_numbers(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = write(tmp_path, HOPFIELD)
    local = run_sweep(path, store=tmp_path / "local.sqlite", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = run_sweep(path, store=tmp_path / "dask.sqlite",
                           scheduler=cluster.scheduler_address, progress=False)
    assert remote.ok == local.ok == local.total
    assert metrics_by_cell(remote.store) == metrics_by_cell(local.store)


def test_bad_runner_arguments(tmp_path):
    path = write(tmp_path, DIAGNOSTIC)
    with pytest.raises(ValueError, match="workers"):
        run_sweep(path, workers=0)
    with pytest.raises(TypeError, match="scheduler"):
        run_sweep(path, scheduler=8786)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="recur")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_sweep_only_and_list(tmp_path, capsys):
    path = write(tmp_path, SMALL)
    store = tmp_path / "elsewhere.sqlite"
    assert _cli(["sweep", str(path), "--workers", "1", "--store", str(store),
                 "--set", "sweep.seeds=1", "--set", 'grid."topology.n"=[15]']) == 0
    out = capsys.readouterr().out
    assert "4 cells" in out and "0 errors" in out
    assert _cli(["sweep", str(path), "--list", "--set", "sweep.seeds=1",
                 "--set", 'grid."topology.n"=[15]']) == 0
    cell_id = capsys.readouterr().out.splitlines()[1].split()[0]
    assert _cli(["sweep", str(path), "--store", str(store), "--only", cell_id,
                 "--set", "sweep.seeds=1", "--set", 'grid."topology.n"=[15]']) == 0
    out = capsys.readouterr().out
    assert "identical" in out and json.loads(out[:out.rindex("}") + 1])["cell_id"] == cell_id


def test_cli_reports_a_bad_spec_without_running(tmp_path, capsys):
    path = write(tmp_path, SMALL.replace("seeds = 2", "seeds = 0"))
    assert _cli(["sweep", str(path), "--workers", "1"]) == 2
    assert "sweep.seeds" in capsys.readouterr().err
    assert not (tmp_path / "spec.sqlite").exists()
    assert _cli(["sweep", str(write(tmp_path, SMALL)), "--max-units", "20",
                 "--workers", "1"]) == 2
    assert "exceed the limit of 20" in capsys.readouterr().err


def test_parse_set_reads_toml_only():
    assert parse_set(["sweep.seeds=2", 'grid."topology.n"=[1, 2]']) == \
        {"sweep": {"seeds": 2}, "grid": {"topology.n": [1, 2]}}
    with pytest.raises(ValueError, match="not a TOML"):
        parse_set(["sweep.seeds=__import__('os')"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set(["seeds"])


def test_progress_line_counts_cells_and_estimates_time_left(monkeypatch):
    import builtins
    import io

    from recur.sweep.runner import Progress

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    stream = io.StringIO()
    bar = Progress(4, initial=1, enabled=True, stream=stream)
    assert "time left unknown" in bar.line()
    for status in ("ok", "error", "ok"):
        bar.update(status)
    bar.close()
    text = stream.getvalue()
    assert "4/4 cells (100%)" in text and "1 errors" in text
    assert "0 s left" in text
    silent = io.StringIO()
    quiet = Progress(2, enabled=False, stream=silent)
    quiet.update("ok")
    quiet.close()
    assert silent.getvalue() == ""


CREDIT = """
[sweep]
name = "credit"
network = "esn"
seeds = 1
entropy = 12
[topologies]
sw = { catalogue = "small_world", params = { n = 24 } }
[tasks.credit_spectrum]
train_steps = 80
test_steps = 80
washout = 10
epochs = 4
alignment_repeats = 1
[rules.fixed_ridge]
[rules.bptt]
"""


def test_a_credit_cell_equals_its_rule_in_a_full_comparison(tmp_path):
    """recur.compare gives each rule its own stream: one rule per cell reproduces the row of
    that rule in a comparison of several rules on the same seed."""
    from recur import compare

    spec = parse_spec(CREDIT, folder=tmp_path)
    cells = {c.rule: c for c in spec.cells()}
    cell = cells["bptt"]
    p = cell.payload["task"]["params"]
    seed = np.random.SeedSequence(cell.entropy, spawn_key=cell.spawn_key)
    cfg = compare.SpectrumConfig(
        task=p["signal"], topology="small_world", n_units=24, train_steps=80, test_steps=80,
        washout=10, epochs=4, alignment_repeats=1, seeds=(seed,),
        **{k: v for k, v in spec.network_params.items()})
    rows = {r["rule"]: r for r in compare.credit_spectrum(
        cfg, rules=("fixed_ridge", "weight_perturbation", "bptt"), progress=False)}
    got = execute(cell.payload)
    assert got["status"] == "ok", got["error"]
    assert got["metrics"]["test_nrmse"] == rows["bptt"]["test_nrmse"]
    assert got["metrics"]["cosine"] == rows["bptt"]["cosine"]


ENERGY = """
[sweep]
name = "energy"
network = "energy"
seeds = 1
entropy = 5
[topologies]
sw = { catalogue = "small_world", params = { n = 12 } }
[tasks.energy_spectrum]
window = 4
train_samples = 40
test_samples = 40
epochs = 4
alignment_repeats = 1
[rules.generec]
[rules.bptt]
"""


def test_an_energy_cell_equals_its_rule_in_a_full_comparison(tmp_path):
    """The NGRAD spectrum on an EnergyNet: one rule per cell reproduces that rule's row of a
    comparison of several rules with the same seed."""
    from recur import compare

    spec = parse_spec(ENERGY, folder=tmp_path)
    cell = {c.rule: c for c in spec.cells()}["bptt"]
    seed = np.random.SeedSequence(cell.entropy, spawn_key=cell.spawn_key)
    cfg = compare.EnergySpectrumConfig(
        topology="small_world", n_hidden=12, window=4, train_samples=40, test_samples=40,
        epochs=4, alignment_repeats=1, seeds=(seed,), **spec.network_params)
    rows = {r["rule"]: r for r in compare.energy_spectrum(
        cfg, rules=("equilibrium_propagation", "bptt"), progress=False)}
    got = execute(cell.payload)
    assert got["status"] == "ok", got["error"]
    assert got["metrics"]["test_nrmse"] == rows["bptt"]["test_nrmse"]
    assert got["metrics"]["settled"] == 1.0 and got["metrics"]["cosine"] > 0.999


SYNFIRE = """
[sweep]
name = "synfire"
network = "spiking"
seeds = 2
entropy = 9
[topologies]
chain = { catalogue = "synfire_chain", params = { n_pools = 4, pool_size = 100 } }
[tasks.synfire_propagation]
trials = 12
[grid]
"task.a" = [20, 85]
"""


def test_synfire_cells_separate_strong_from_weak_packets(tmp_path):
    spec = parse_spec(SYNFIRE, folder=tmp_path)
    by_a = {}
    for cell in spec.cells():
        got = execute(cell.payload)
        assert got["status"] == "ok", got["error"]
        by_a.setdefault(cell.payload["task"]["params"]["a"], []).append(
            got["metrics"]["propagation"])
    assert min(by_a[85]) >= 0.9 and max(by_a[20]) <= 0.1


GROWTH = """
[sweep]
name = "growth"
network = "spiking"
seeds = 2
entropy = 5
[topologies]
random = { catalogue = "erdos_renyi", params = { n = 40, p = 0.25 } }
[tasks.synfire_growth]
epochs = 25
trials = 8
test_ms = 300.0
n_shuffles = 10
[rules.stdp]
"""


def test_synfire_growth_cells_learn_chains_from_spontaneous_activity(tmp_path):
    spec = parse_spec(GROWTH, folder=tmp_path)
    for cell in spec.cells():
        got = execute(cell.payload)
        assert got["status"] == "ok", got["error"]
        m = got["metrics"]
        # Learned weights are far more chain-like than before and than their own shuffles.
        assert m["chain_index"] > m["chain_index_before"] + 0.2
        assert m["z"] > 3 and m["chain_index"] > m["control"]
        assert m["n_chains"] >= 1 and m["longest_chain"] >= 3 and m["longest_sequence"] >= 2
    with pytest.raises(SpecError, match="network.delay: this task sets its own network parameters"):
        parse_spec(GROWTH + "[network]\ndelay = 2.0\n", folder=tmp_path)
    with pytest.raises(SpecError, match="w_init"):
        parse_spec(GROWTH.replace("n_shuffles = 10", "n_shuffles = 10\nw_init = 60.0"),
                   folder=tmp_path)


TIMING = """
[sweep]
name = "timing"
network = "spiking"
seeds = 2
entropy = 11
paired = true
[topologies]
direct = { catalogue = "layered", params = { sizes = [30, 2] } }
[tasks.spike_timing]
epochs = 30
eval_trials = 32
[rules.node_perturbation]
[rules.stdp]
"""


def test_spike_timing_cells_learn_by_node_perturbation_not_by_stdp(tmp_path):
    spec = parse_spec(TIMING, folder=tmp_path)
    by_seed = {}
    for cell in spec.cells():
        got = execute(cell.payload)
        assert got["status"] == "ok", got["error"]
        by_seed.setdefault(tuple(cell.payload["seed"]["spawn_key"]), {})[
            cell.payload["rule"]["name"]] = got["metrics"]
    assert len(by_seed) == 2
    for rules in by_seed.values():
        npert, stdp = rules["node_perturbation"], rules["stdp"]
        # Paired cells: the same network, pattern and evaluation noise before training.
        assert npert["loss_before"] == stdp["loss_before"] > 0.3
        assert npert["improvement"] > 0.4 and npert["loss_after"] < stdp["loss_after"]
    no_roles = parse_spec(TIMING.replace(
        'catalogue = "layered", params = { sizes = [30, 2] }',
        'catalogue = "erdos_renyi", params = { n = 20 }'), folder=tmp_path)
    got = execute(next(iter(no_roles.cells())).payload)
    assert got["status"] == "error" and "'input' and 'output'" in got["error"]
    for bad, key in (("w_init_low = 9.0", "w_init_low"), ("w_max = 5.0", "w_init_low"),
                     ("first_target = 4.0", "first_target")):
        with pytest.raises(SpecError, match=key):
            parse_spec(TIMING.replace("eval_trials = 32", f"eval_trials = 32\n{bad}"),
                       folder=tmp_path)


BAS = """
[sweep]
name = "bas"
network = "boltzmann"
seeds = 2
entropy = 4
[topologies]
rbm = { catalogue = "bipartite", params = { n_visible = 9, n_hidden = 8 } }
[tasks.bars_and_stripes]
rows = 3
epochs = 1000
[rules.cd]
k = 1
learning_rate = 0.5
"""


def test_bars_and_stripes_cells_learn_towards_the_optimum(tmp_path):
    spec = parse_spec(BAS, folder=tmp_path)
    for cell in spec.cells():
        got = execute(cell.payload)
        assert got["status"] == "ok", got["error"]
        m = got["metrics"]
        # An untrained RBM on 9 pixels is near 9 log(1/2) = -6.24 nats per pattern; the
        # optimum is log(1/14) = -2.64 (3x3 bars and stripes has 14 patterns).
        assert m["optimum"] == pytest.approx(-np.log(14))
        assert -5.0 < m["log_likelihood"] <= m["optimum"] + 1e-9
        assert m["kl"] == pytest.approx(m["optimum"] - m["log_likelihood"], abs=1e-6)
    bad = parse_spec(BAS.replace("rows = 3", "rows = 4"), folder=tmp_path)
    got = execute(next(iter(bad.cells())).payload)
    assert got["status"] == "error" and "16 visible units" in got["error"]
