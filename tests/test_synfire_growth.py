"""The synfire-growth example in its --quick mode: do chains grow from spontaneous activity?"""

import numpy as np
import pytest

from example_loader import load_example

pytestmark = pytest.mark.slow  # two quick runs, ~10-15 s on one core

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def module():
    return load_example("synfire_growth")


@pytest.fixture(scope="module")
def quick(module, tmp_path_factory):
    out = tmp_path_factory.mktemp("synfire_growth")
    argv = ["--quick", "--out", str(out), "--seeds", *map(str, SEEDS)]
    return module.main(argv)


def test_chain_index_rises_well_above_its_shuffled_control(quick):
    for r in quick["results"]:
        before, after = r["before"], r["after"]
        # Before learning the random weights are at chance.
        assert abs(before.z) < 3
        # After: far outside the controls' spread, and by a margin in absolute terms.
        assert after.z > 5
        assert after.index > after.control_mean + 0.08
        assert after.index > before.index + 0.2


def test_chains_are_found_and_carry_sequences(quick):
    for r in quick["results"]:
        lengths = r["chain_lengths"]
        assert lengths.size >= 5 and lengths.max() >= 4
        # Spikes run along the learned chains far more often than on the activity before
        # learning, read with the same successor map (chance coincidences).
        long_after = np.sum(r["sequences_after"] >= 3)
        long_before = np.sum(r["sequences_before"] >= 3)
        assert long_after > 3 * max(long_before, 1)


def test_weights_stay_on_the_graph_within_bounds_and_caps(quick):
    w_max = quick["config"]["w_max"]
    cap = quick["config"]["cap"] * w_max
    for r in quick["results"]:
        W0, W1 = r["params"]["W"], r["learned"]["W"]
        assert np.array_equal(W0.indptr, W1.indptr) and np.array_equal(W0.indices, W1.indices)
        assert W1.data.min() >= 0.0 and W1.data.max() <= w_max
        dense = W1.toarray()
        assert dense.sum(axis=1).max() <= cap * (1 + 1e-9)
        assert dense.sum(axis=0).max() <= cap * (1 + 1e-9)


def test_figures_written_when_matplotlib_is_there(quick):
    pytest.importorskip("matplotlib")
    assert len(quick["figures"]) == len(SEEDS)
    for path in quick["figures"]:
        assert path.exists() and path.stat().st_size > 0
