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
