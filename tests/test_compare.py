import re

import numpy as np
import pytest

from example_loader import load_example
from recur import cli, compare


@pytest.fixture(scope="module")
def quick_rows():
    return compare.credit_spectrum(compare.SpectrumConfig.quick(), progress=False)


def test_spectrum_orders_the_rules(quick_rows):
    summary = {s["rule"]: s for s in compare.summarise(quick_rows)}
    assert set(summary) == set(compare.RULES)
    # The exact gradient is exactly aligned with itself, and beats both perturbation rules
    # at an equal number of updates on every seed.
    assert summary["bptt"]["cosine"] == pytest.approx(1.0, abs=1e-9)
    for seed in {r["seed"] for r in quick_rows}:
        loss = {r["rule"]: r["train_nrmse"] for r in quick_rows if r["seed"] == seed}
        assert loss["bptt"] < loss["node_perturbation"]
        assert loss["bptt"] < loss["weight_perturbation"]
    # Perturbation estimates point partly along the gradient; a ridge readout solves the
    # linear part exactly.
    for name in ("node_perturbation", "weight_perturbation"):
        assert 0.05 < summary[name]["cosine"] < 0.9
    assert summary["fixed_ridge"]["train_nrmse"] < summary["bptt"]["train_nrmse"]
    for r in quick_rows:
        assert np.isfinite(r["test_nrmse"]) and r["wall_time"] > 0
        assert r["curve"][0] >= r["curve"][-1] * 0.999 or r["rule"].endswith("ridge")


def test_unknown_rule_and_task():
    with pytest.raises(ValueError, match="unknown rules"):
        compare.credit_spectrum(compare.SpectrumConfig.quick(), rules=("sgd",))
    with pytest.raises(ValueError, match="task"):
        compare.credit_spectrum(compare.SpectrumConfig.quick(task="narma"), rules=("bptt",))


def test_compare_command(tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert cli.main(["compare", "--quick", "--rules", "bptt", "fixed_ridge", "--seeds", "3",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^bptt\s+[0-9.e+-]+", text, re.M)
    assert re.search(r"^fixed_ridge\s", text, re.M)
    assert out.exists()
    with pytest.raises(SystemExit):
        cli.main(["compare", "--rules", "magic"])


def test_credit_spectrum_example_quick(tmp_path):
    module = load_example("credit_spectrum")
    results = module.main(["--quick", "--task", "mackey_glass", "--out", str(tmp_path)])
    summary = {s["rule"]: s for s in results["mackey_glass"]["summary"]}
    assert summary["bptt"]["train_nrmse"] < summary["weight_perturbation"]["train_nrmse"]


# -- the same spectrum on an energy network -------------------------------------------------

@pytest.fixture(scope="module")
def energy_rows():
    return compare.energy_spectrum(compare.EnergySpectrumConfig.quick(), progress=False)


def test_energy_spectrum_rules_learn_and_line_up_with_the_gradient(energy_rows):
    summary = {s["rule"]: s for s in compare.summarise(energy_rows)}
    assert set(summary) == set(compare.ENERGY_RULES)
    assert all("error" not in r for r in energy_rows)
    # Equilibrium propagation at beta 0.1 (either nudging) is nearly the exact gradient;
    # node perturbation with 8 samples is a noisy, partly aligned estimate.
    assert summary["bptt"]["cosine"] == pytest.approx(1.0, abs=1e-9)
    for name in ("equilibrium_propagation", "symmetric_ep"):
        assert summary[name]["cosine"] > 0.98
    assert 0.05 < summary["node_perturbation"]["cosine"] < 0.95
    for r in energy_rows:
        # Every two-phase rule and the gradient lower the training error on every seed.
        if r["rule"] != "node_perturbation":
            assert r["curve"][-1] < 0.8 * r["curve"][0], r["rule"]
        assert np.isfinite(r["test_nrmse"]) and r["wall_time"] > 0


def test_window_data_pairs_each_window_with_the_next_value():
    x, y = compare.window_data(np.arange(7.0), 3)
    np.testing.assert_array_equal(x[0], [0, 1, 2])
    np.testing.assert_array_equal(y[:, 0], [3, 4, 5, 6])
    assert x.shape == (4, 3)
    with pytest.raises(ValueError, match="too short"):
        compare.window_data(np.arange(3.0), 3)
    with pytest.raises(ValueError, match="window"):
        compare.window_data(np.arange(7.0), 0)


def test_a_rule_given_as_a_string_is_one_rule():
    with pytest.raises(ValueError, match=r"unknown rules \['sgd'\]"):
        compare.energy_spectrum(compare.EnergySpectrumConfig.quick(), rules="sgd")


def test_a_phase_that_does_not_settle_is_a_row_not_a_crash():
    # One settling iteration is never enough: every run stops with ConvergenceError, which
    # the comparison records instead of raising.
    cfg = compare.EnergySpectrumConfig.quick(seeds=(0,), epochs=3)
    rows = compare.energy_spectrum(
        compare.EnergySpectrumConfig(**{**cfg.__dict__, "tol": 1e-300}), rules=("bptt",),
        progress=False)
    assert len(rows) == 1 and "did not settle" in rows[0]["error"]
    assert np.isnan(rows[0]["train_nrmse"])


def test_compare_command_on_the_energy_network(tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert cli.main(["compare", "--network", "energy", "--quick", "--rules", "bptt",
                     "generec", "--seeds", "1", "--epochs", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "EnergyNet" in text and re.search(r"^generec\s+[0-9.e+-]+", text, re.M)
    with pytest.raises(SystemExit):
        cli.main(["compare", "--network", "energy", "--rules", "fixed_ridge"])


def test_energy_next_step_example_quick(tmp_path):
    module = load_example("energy_next_step")
    result = module.main(["--quick", "--rules", "equilibrium_propagation", "bptt",
                          "--out", str(tmp_path)])
    summary = {s["rule"]: s for s in result["summary"]}
    assert summary["equilibrium_propagation"]["cosine"] > 0.98
    assert list(tmp_path.glob("energy_next_step_*.png"))
