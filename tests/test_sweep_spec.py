"""Sweep specs: validation reports every problem with its key path, hostile specs are refused
before anything runs, and a cell's identity and seed depend on the cell alone."""

import math
from pathlib import Path

import pytest

from recur import catalogue
from recur.sweep import Limits, SpecError, load_spec, parse_spec

SPECS = Path(__file__).resolve().parent.parent / "examples" / "sweeps"

BASE = """
[sweep]
name = "test"
network = "esn"
seeds = 3
entropy = 7

[network]
leak = 0.5

[topologies]
ring = { catalogue = "ring" }
er = { catalogue = "erdos_renyi", params = { p = 0.2 } }

[tasks.memory_capacity]
steps = 200
max_delay = 20

[grid]
"topology.n" = [20, 30]
"network.spectral_radius" = [0.5, 0.9]
"""


def parse(text, tmp_path, **kwargs):
    return parse_spec(text, folder=tmp_path, **kwargs)


def paths(exc):
    return [p for p, _ in exc.value.problems]


@pytest.mark.parametrize("name,cells", [("esn_reservoirs", 5 * 2 * 3 * 2 * 5),
                                        ("hopfield_dilution", 1 * 2 * 4 * 6 * 3),
                                        ("credit_spectrum", 4 * 5 * 1 * 3),
                                        ("energy_spectrum", 3 * 6 * 1 * 3),
                                        ("synfire_chains", 2 * 1 * 5 * 2),
                                        ("rbm_bars_and_stripes", 1 * 1 * 3 * 2 * 3),
                                        ("synfire_growth", 3 * 1 * 1 * 3),
                                        ("spike_timing", 3 * 1 * 3 * 3)])
def test_example_specs_load_with_the_grid_product_of_cells(name, cells):
    spec = load_spec(SPECS / f"{name}.toml")
    listed = list(spec.cells())
    assert spec.n_cells == len(listed) == cells
    assert len({c.cell_id for c in listed}) == cells
    assert spec.default_store() == SPECS / f"{name}.sqlite"


def test_defaults_are_filled_and_ints_become_floats(tmp_path):
    spec = parse(BASE.replace("leak = 0.5", "leak = 1"), tmp_path)
    assert spec.network_params["leak"] == 1.0 and isinstance(spec.network_params["leak"],
                                                               float)
    assert spec.network_params["input_scaling"] == 1.0  # the ESN default
    assert spec.tasks["memory_capacity"]["washout"] == 100
    assert spec.rules == {"memory_capacity": {"-": {}}}
    # 1 and 1.0 are the same spec
    assert spec.spec_hash == parse(BASE.replace("leak = 0.5", "leak = 1.0"), tmp_path).spec_hash


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path):
    bad = """
[sweep]
name = "bad"
network = "esn"
seeds = "three"
colour = "blue"

[network]
leak = 2.0
spectral_radus = 0.9

[topologies]
nowhere = { catalogue = "no_such_graph" }
ring = { catalogue = "ring", params = { q = 1 } }

[tasks.memory_capacity]
steps = -5
[tasks.teleport]

[grid]
"network.spectral_radius" = []
"topology.n" = "many"
"""
    with pytest.raises(SpecError) as exc:
        parse(bad, tmp_path)
    found = paths(exc)
    for expected in ("sweep.seeds", "sweep.colour", "sweep.entropy", "network.leak",
                     "network.spectral_radus", "topologies.nowhere.catalogue",
                     "topologies.ring.params.q", "tasks.memory_capacity.steps",
                     "tasks.teleport", "grid.'network.spectral_radius'", "grid.'topology.n'"):
        assert expected in found, (expected, found)
    text = str(exc.value)
    assert "no_such_graph" in text and "small_world" in text  # lists the catalogue
    assert "empty grid" in text
    assert f"{len(exc.value.problems)} problem(s)" in text


def test_unknown_names_resolve_nowhere(tmp_path):
    spec = BASE.replace('network = "esn"', 'network = "__import__(\'os\')"')
    with pytest.raises(SpecError) as exc:
        parse(spec, tmp_path)
    assert "sweep.network" in paths(exc)


def test_code_in_a_string_is_refused_as_a_name(tmp_path):
    spec = BASE.replace("leak = 0.5", 'leak = 0.5\nweight_distribution = '
                                      '"__import__(\'os\').system(\'true\')"')
    with pytest.raises(SpecError) as exc:
        parse(spec, tmp_path)
    assert exc.value.problems[0][0] == "network.weight_distribution"
    assert "nothing is evaluated" in exc.value.problems[0][1]


def test_inline_recipe_with_an_unknown_generator_is_refused(tmp_path):
    spec = BASE.replace('er = { catalogue = "erdos_renyi", params = { p = 0.2 } }', """
[topologies.evil]
params = { n = 20 }
[topologies.evil.recipe]
description = "x"
reference = "x"
generator = "os.system"
n_units = 20
size = { product = ["n"] }
params = { n = 20 }
""").replace('"topology.n" = [20, 30]\n', "")
    with pytest.raises(SpecError) as exc:
        parse(spec, tmp_path)
    assert paths(exc) == ["topologies.evil.recipe"]
    assert "not an allowed generator" in exc.value.problems[0][1]


def test_inline_recipe_builds_like_the_catalogue(tmp_path):
    recipe = catalogue.recipe("ring")
    spec = BASE.replace('er = { catalogue = "erdos_renyi", params = { p = 0.2 } }', f"""
[topologies.mine.recipe]
description = "a ring"
reference = "none"
generator = "{recipe['generator']}"
n_units = 100
size = {{ product = ["n"] }}
params = {{ n = 100, k = 2, directed = true }}
""")
    s = parse(spec, tmp_path)
    assert s.topologies["mine"]["recipe"]["params"]["k"] == 2


def test_recipe_file_and_store_must_stay_in_the_spec_folder(tmp_path):
    outside = tmp_path / "outside.toml"
    outside.write_text("x = 1")
    folder = tmp_path / "exp"
    folder.mkdir()
    spec = BASE.replace('entropy = 7', 'entropy = 7\nstore = "../results.sqlite"').replace(
        'er = { catalogue = "erdos_renyi", params = { p = 0.2 } }',
        'er = { recipe_file = "../outside.toml" }\nabs = { recipe_file = "/etc/hostname" }')
    with pytest.raises(SpecError) as exc:
        parse_spec(spec, folder=folder)
    found = dict(exc.value.problems)
    assert "outside the spec's folder" in found["sweep.store"]
    assert "outside the spec's folder" in found["topologies.er.recipe_file"]
    assert "relative" in found["topologies.abs.recipe_file"]


def test_recipe_file_inside_the_folder_is_read(tmp_path):
    (tmp_path / "graphs").mkdir()
    text = (Path(catalogue.__file__).resolve().parent.parent / "topologies" /
            "ring.toml").read_text()
    (tmp_path / "graphs" / "r.toml").write_text(text)
    spec = BASE.replace('er = { catalogue = "erdos_renyi", params = { p = 0.2 } }',
                        'mine = { recipe_file = "graphs/r.toml" }')
    s = parse(spec, tmp_path)
    assert s.topologies["mine"]["recipe"] == {**catalogue.recipe("ring"), "name": "mine"}


def test_absurd_sizes_are_refused_and_the_limit_is_the_callers(tmp_path):
    big = BASE.replace('"topology.n" = [20, 30]', '"topology.n" = [20, 1000000000]')
    with pytest.raises(SpecError) as exc:
        parse(big, tmp_path)
    assert any("exceed the limit of 10000" in m for _, m in exc.value.problems)
    steps = BASE.replace("steps = 200", "steps = 10000000")
    with pytest.raises(SpecError, match="steps exceed the limit"):
        parse(steps, tmp_path)
    with pytest.raises(SpecError, match="cells exceed the limit of 10"):
        parse(BASE, tmp_path, limits=Limits(max_cells=10))
    assert parse(BASE, tmp_path, limits=Limits(max_cells=24)).n_cells == 24
    with pytest.raises(ValueError, match="max_units"):
        Limits(max_units=0)


def test_cross_parameter_checks(tmp_path):
    with pytest.raises(SpecError) as exc:
        parse(BASE.replace("steps = 200", "steps = 50"), tmp_path)
    assert paths(exc) == ["tasks.memory_capacity.steps"]


def test_rules_are_checked_against_the_task(tmp_path):
    hop = """
[sweep]
name = "h"
network = "hopfield"
seeds = 1
entropy = 1
[topologies]
c = { catalogue = "complete", params = { n = 20 } }
[tasks.hopfield_capacity]
[rules.storkey]
diagonal = "sometimes"
[rules.backprop]
"""
    with pytest.raises(SpecError) as exc:
        parse(hop, tmp_path)
    assert set(paths(exc)) == {"rules.storkey.diagonal", "rules.backprop"}
    no_rule = hop.split("[rules.storkey]")[0]
    with pytest.raises(SpecError, match="needs at least one rule"):
        parse(no_rule, tmp_path)


def test_tasks_must_run_on_the_spec_network(tmp_path):
    spec = BASE + "\n[tasks.hopfield_capacity]\n"
    with pytest.raises(SpecError) as exc:
        parse(spec, tmp_path)
    assert "tasks.hopfield_capacity" in paths(exc)


def test_overrides_merge_into_the_toml(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(BASE)
    spec = load_spec(path, overrides={"sweep": {"seeds": 1}, "grid": {"topology.n": [25]}})
    assert spec.seeds == 1 and spec.grid["topology.n"] == [25]
    assert spec.n_cells == 2 * 1 * 2 * 1


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        parse("[sweep\n", tmp_path)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_hash_ignores_comments_and_free_text_layout_but_not_values(tmp_path):
    a = parse(BASE, tmp_path)
    b = parse("# a comment\n" + BASE.replace("seeds = 3", "seeds   =   3"), tmp_path)
    c = parse(BASE.replace("entropy = 7", "entropy = 8"), tmp_path)
    assert a.spec_hash == b.spec_hash != c.spec_hash


def _by_key(spec):
    return {(c.topology, c.task, c.rule, tuple(sorted(c.axes.items())), c.seed_index): c
            for c in spec.cells()}


def test_a_cells_id_and_seed_do_not_depend_on_other_cells(tmp_path):
    small = _by_key(parse(BASE, tmp_path))
    grown = BASE.replace('"topology.n" = [20, 30]', '"topology.n" = [40, 30, 20]').replace(
        "seeds = 3", "seeds = 5").replace(
        'ring = { catalogue = "ring" }',
        'sw = { catalogue = "small_world" }\nring = { catalogue = "ring" }')
    big = _by_key(parse(grown, tmp_path))
    assert len(big) > len(small)
    for key, cell in small.items():
        other = big[key]
        assert other.cell_id == cell.cell_id and other.spawn_key == cell.spawn_key
        strip = lambda payload: {k: v for k, v in payload.items() if k != "spec_hash"}  # noqa
        assert strip(other.payload) == strip(cell.payload)


def test_independent_cells_draw_independent_streams_and_paired_cells_share_them(tmp_path):
    cells = list(parse(BASE, tmp_path).cells())
    keys = [c.spawn_key for c in cells]
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 5 and k[0] == c.seed_index for k, c in zip(keys, cells))
    paired = list(parse(BASE.replace("entropy = 7", "entropy = 7\npaired = true"),
                        tmp_path).cells())
    assert {c.spawn_key for c in paired} == {(0,), (1,), (2,)}
    assert all(c.entropy == 7 for c in paired)


def test_catalogue_only_task_refuses_recipes_and_other_overrides(tmp_path):
    spec = """
[sweep]
name = "c"
network = "esn"
seeds = 1
entropy = 1
[network]
leak = 0.5
input_scaling = 0.3
[topologies]
sw = { catalogue = "small_world", params = { k = 4 } }
lay = { catalogue = "layered" }
[tasks.credit_spectrum]
[rules.bptt]
"""
    with pytest.raises(SpecError) as exc:
        parse(spec, tmp_path)
    assert set(paths(exc)) == {"network.input_scaling", "topologies.sw", "topologies.lay"}


def test_grid_axis_scopes(tmp_path):
    with pytest.raises(SpecError) as exc:
        parse(BASE + '"colour" = [1]\n"task.nope" = [1]\n"topology.k" = [1, 2]\n'
                     '"network.leak" = [0.5, 0.5]\n', tmp_path)
    found = dict(exc.value.problems)
    assert "SCOPE.PARAM" in found["grid.colour"]
    assert "not a parameter of every task" in found["grid.'task.nope'"]
    assert "not a recipe parameter of topology er" in found["grid.'topology.k'"]
    assert "repeats" in found["grid.'network.leak'"]


def test_n_cells_is_the_product(tmp_path):
    spec = parse(BASE, tmp_path)
    assert spec.n_cells == 2 * 1 * math.prod([2, 2]) * 3


def test_oversized_or_binary_spec_files_are_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(SpecError, match="at most"):
        load_spec(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="UTF-8"):
        load_spec(binary)


def test_metrics_keep_only_what_the_spec_names(tmp_path):
    from recur.sweep.cells import execute

    spec = parse(BASE.replace("entropy = 7", 'entropy = 7\nmetrics = ["memory_capacity"]'),
                 tmp_path)
    result = execute(next(spec.cells()).payload)
    assert result["status"] == "ok" and set(result["metrics"]) == {"memory_capacity"}
    with pytest.raises(SpecError) as exc:
        parse(BASE.replace("entropy = 7", 'entropy = 7\nmetrics = ["nrmse"]'), tmp_path)
    assert paths(exc) == ["sweep.metrics"]
    assert "memory_capacity_per_unit" in exc.value.problems[0][1]


def test_a_spec_cannot_raise_its_own_limits(tmp_path):
    with pytest.raises(SpecError) as exc:
        parse(BASE + "\n[limits]\nmax_units = 1000000000\n", tmp_path)
    assert paths(exc) == ["limits"]
    assert "unknown section" in exc.value.problems[0][1]
