"""The perturbation-learning examples, in their --quick mode: do their numbers mean something?"""

import math

import numpy as np
import pytest

from example_loader import load_example


@pytest.fixture(scope="module")
def scaling(tmp_path_factory):
    out = tmp_path_factory.mktemp("perturbation_scaling")
    return load_example("perturbation_scaling").main(["--quick", "--out", str(out)])


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    out = tmp_path_factory.mktemp("perturbation_alignment")
    return load_example("perturbation_alignment").main(["--quick", "--out", str(out)])


# -- Werfel, Xie & Seung: learning time relative to gradient descent ----------------------

def test_scaling_covers_the_quick_grid(scaling):
    config = scaling["config"]
    assert [(r["N"], r["M"]) for r in scaling["rows"]] == [(10, 1), (10, 2)]
    # GD and NP on every seed, WP (the long runs) on the first wp_seeds
    per_grid = 2 * len(config["seeds"]) + config["wp_seeds"]
    n_runs = per_grid * len(config["grid"]) * len(scaling["rows"])
    assert len(scaling["records"]) == n_runs


def test_gradient_descent_takes_the_predicted_time(scaling):
    # At the optimum the squared error shrinks by 1 - 1/(N+2) per step: ~106 steps at N=10.
    module = load_example("perturbation_scaling")
    for row in scaling["rows"]:
        predicted = module.predicted_steps("GD", row["N"], row["M"], 0.01)
        assert 0.7 * predicted < row["GD"]["steps"] < 1.5 * predicted


def test_perturbation_slowdown_follows_outputs_and_weights(scaling):
    rows = {(r["N"], r["M"]): r for r in scaling["rows"]}
    one, two = rows[(10, 1)], rows[(10, 2)]
    # Node perturbation pays for the outputs (M + 2: 3 -> 4), weight perturbation for the
    # weights (MN + 2: 12 -> 22).
    assert two["ratio_NP"] > one["ratio_NP"]
    assert two["ratio_WP"] > 1.3 * one["ratio_WP"]
    for (N, M), row in rows.items():
        assert 0.5 * (M + 2) < row["ratio_NP"] < 2.0 * (M + 2)
        assert 0.5 * (M * N + 2) < row["ratio_WP"] < 2.0 * (M * N + 2)
        # node perturbation beats weight perturbation by about N
        assert row["ratio_WP"] > 2.0 * row["ratio_NP"]
        for method in ("GD", "NP", "WP"):
            assert math.isfinite(row[method]["steps"])


def test_scaling_writes_its_figure(scaling):
    pytest.importorskip("matplotlib")
    assert scaling["figure"].stat().st_size > 0


# -- node vs weight perturbation on a recurrent network -------------------------------------

def _close(measured, predicted, se):
    """Within three standard errors of the median, plus 10% for the first-order model."""
    return abs(measured - predicted) <= 3 * se + 0.1 * predicted + 0.01


def test_alignment_follows_the_first_order_prediction(aligned):
    s = aligned["summary"]["samples"]
    for name in ("WP", "NP"):
        r = s[name]
        # one fitted D_eff describes every K: the curve sqrt(K / (K + D)) has the right shape
        for K, c, p, se in zip(r["K"], r["cosine"], r["predicted"], r["cosine_se"]):
            assert _close(c, p, se), (name, K, c, p, se)
        # the norm ratios tell the same dimension as the cosines (first-order theory)
        assert 0.4 < r["D_ratio"] / r["D_fit"] < 2.5, (name, r["D_ratio"], r["D_fit"])
    wp = s["WP"]
    # the estimate improves with more perturbations (visibly so where D_eff is moderate)
    assert wp["cosine"][-1] > wp["cosine"][0] + 2 * (wp["cosine_se"][0] + wp["cosine_se"][-1])
    # Weight perturbation's dimension is known in advance from the exact gradient,
    # 1 + n_W ||g||^2 / ||g_W||^2 (at least the 301 of W alone), and the cosines follow it.
    assert wp["D_prior"] >= wp["nominal"] + 1
    assert 0.6 < wp["D_fit"] / wp["D_prior"] < 1.6
    for c, p, se in zip(wp["cosine"], wp["predicted_prior"], wp["cosine_se"]):
        assert _close(c, p, se), (c, p, se)


def test_each_rule_wins_where_its_dimension_is_smaller(aligned):
    s, t = aligned["summary"]["samples"], aligned["summary"]["trials"]
    # Long trial: node perturbation's noise spreads over (N + 1) T node-steps, more
    # effective directions than weight perturbation's 451 values; weight perturbation wins.
    assert s["NP"]["D_fit"] > 1.3 * s["WP"]["D_fit"]
    se = math.hypot(s["WP"]["cosine_se"][-1], s["NP"]["cosine_se"][-1])
    assert s["WP"]["cosine"][-1] > s["NP"]["cosine"][-1] + se
    # Short trial: a few node-steps; node perturbation's dimension shrinks and it wins.
    short = int(np.argmin(t["NP"]["T"]))
    se = math.hypot(t["WP"]["cosine_se"][short], t["NP"]["cosine_se"][short])
    assert t["winner"][short] == "NP"
    assert t["NP"]["cosine"][short] > t["WP"]["cosine"][short] + 2 * se
    assert t["NP"]["D_fit"][short] < s["NP"]["D_fit"] / 3
    # weight perturbation's dimension does not depend on the trial length
    for d in t["WP"]["D_fit"]:
        assert 0.6 < d / s["WP"]["D_prior"] < 1.6


def test_weight_perturbation_of_W_alone_has_the_dimension_of_its_edges(aligned):
    # The calibrated setting (REFERENCES.md): with params=("W",) the other parameters run
    # unperturbed, so D_eff is the number of edges + 1 (301), whatever share of the gradient
    # the others carry; the cosines follow sqrt(K / (K + D_eff)).
    r = aligned["summary"]["restricted"]["WP-W"]
    edges = aligned["config"]["edges"]
    assert r["params"] == ("W",) and r["nominal"] == edges and r["D_prior"] == edges + 1
    assert 0.6 * (edges + 1) < r["D_fit"] < 1.6 * (edges + 1), r["D_fit"]
    assert 0.5 * (edges + 1) < r["D_ratio"] < 2.0 * (edges + 1), r["D_ratio"]
    for K, c, p, se in zip(r["K"], r["cosine"], r["predicted_prior"], r["cosine_se"]):
        assert _close(c, p, se), (K, c, p, se)
    # perturbing W alone aligns better on W than perturbing everything (D_eff 301 < ~1,000)
    on_W = aligned["summary"]["restricted"]["WP-all on W"]
    assert r["cosine"][-1] > on_W["cosine"][-1] + 2 * math.hypot(r["cosine_se"][-1],
                                                                 on_W["cosine_se"][-1])


def test_node_perturbation_of_the_output_wins_on_the_readout(aligned):
    # Few outputs (Werfel et al.): noise on the one output explores far fewer directions than
    # weight perturbation of all 451 values, read on the same readout (W_out, b_out).
    r = aligned["summary"]["restricted"]
    npo, wp = r["NP-out"], r["WP-all on out"]
    assert npo["params"] == ("W_out", "b_out")
    # (the output-only cosines are heavy-tailed over draws: at K = 4 a median of 16 is not
    # reliable, so the comparison starts at K = 16)
    for K, a, b, sa, sb in zip(npo["K"], npo["cosine"], wp["cosine"], npo["cosine_se"],
                               wp["cosine_se"]):
        if K >= 16:
            assert a > b + math.hypot(sa, sb), (K, a, b)
    assert npo["cosine"][-1] > 0.5
    assert npo["D_fit"] < 0.5 * r["WP-W"]["D_fit"]


def test_alignment_cells_and_figure(aligned):
    config = aligned["config"]
    n = len(config["seeds"]) * 2
    assert len(aligned["samples_cells"]) == n * len(config["samples"])
    assert len(aligned["trial_cells"]) == n * len(config["trial_lengths"])
    assert len(aligned["restricted_cells"]) == n * len(config["samples"])
    for c in aligned["samples_cells"]:
        assert len(c["cosines"]) == config["repeats"]
        assert np.all(np.abs(c["cosines"]) <= 1 + 1e-12)
    pytest.importorskip("matplotlib")
    assert aligned["figure"].stat().st_size > 0
