"""The topology catalogue: every recipe is valid and builds reproducibly; bad input is rejected."""

import networkx as nx
import numpy as np
import pytest

import recur
from recur import catalogue, graphs

NAMES = catalogue.names()
REQUIRED_NAMES = {"erdos_renyi", "small_world", "scale_free", "ring", "random_regular",
                  "modular", "synfire_chain", "bipartite", "complete"}
# Recipes whose default parameters leave edges to chance; the rest are fixed wiring.
RANDOM = {"erdos_renyi", "small_world", "scale_free", "random_regular", "modular"}


def edge_set(G):
    return set(G.edges())


def doubled_size(spec):
    """Overrides that double every parameter setting the number of units."""
    ((_, keys),) = spec["size"].items()
    overrides = {}
    for key in keys:
        value = spec["params"][key]
        overrides[key] = [2 * v for v in value] if isinstance(value, list) else 2 * value
    return overrides


# -- the shipped recipes ---------------------------------------------------------------------
def test_names_sorted_and_complete():
    assert NAMES == sorted(NAMES)
    assert REQUIRED_NAMES <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_fields(name):
    spec = catalogue.recipe(name)
    assert spec["name"] == name
    for key in ("description", "reference", "generator"):
        assert isinstance(spec[key], str) and spec[key].strip()
    assert spec["generator"] in catalogue.GENERATORS
    assert "seed" not in spec["params"]
    assert 50 <= spec["n_units"] <= 500  # sized for reservoir work
    assert catalogue.n_units(name) == spec["n_units"]


@pytest.mark.parametrize("name", NAMES)
def test_build_has_documented_size_and_provenance(name):
    G = catalogue.build_graph(name, rng=0)
    spec = catalogue.recipe(name)
    assert isinstance(G, nx.Graph) and not G.is_multigraph()
    assert G.number_of_nodes() == spec["n_units"]
    assert G.number_of_edges() > 0
    assert nx.number_of_selfloops(G) == 0
    assert G.graph["recipe"] == name
    assert G.graph["params"] == spec["params"]


@pytest.mark.parametrize("name", NAMES)
def test_same_rng_same_graph(name):
    assert edge_set(catalogue.build_graph(name, rng=42)) == edge_set(
        catalogue.build_graph(name, rng=42))
    first = catalogue.build_graph(name, rng=np.random.default_rng(5))
    second = catalogue.build_graph(name, rng=np.random.default_rng(5))
    assert edge_set(first) == edge_set(second)
    assert first.graph["seed"] == second.graph["seed"]


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_different_rngs_different_graphs(name):
    graphs_built = {frozenset(edge_set(catalogue.build_graph(name, rng=seed)))
                    for seed in range(4)}
    assert len(graphs_built) > 1


@pytest.mark.parametrize("name", sorted(set(NAMES) - RANDOM))
def test_fixed_wiring_ignores_rng(name):
    assert edge_set(catalogue.build_graph(name, rng=1)) == edge_set(
        catalogue.build_graph(name, rng=2))


@pytest.mark.parametrize("name", NAMES)
def test_overrides_change_size(name):
    spec = catalogue.recipe(name)
    overrides = doubled_size(spec)
    expected = catalogue.n_units(name, **overrides)
    assert expected > spec["n_units"]
    G = catalogue.build_graph(name, rng=0, **overrides)
    assert G.number_of_nodes() == expected
    assert G.graph["params"] == {**spec["params"], **overrides}


def test_override_changes_structure():
    G = catalogue.build_graph("ring", k=3)
    assert all(d == 3 for _, d in G.in_degree())
    H = catalogue.build_graph("synfire_chain", n_pools=3, pool_size=4, p_recurrent=1.0)
    assert H.number_of_edges() == 2 * 16 + 3 * 4 * 3


@pytest.mark.parametrize("name", NAMES)
def test_topology_load(name):
    topo = recur.Topology.load(name, rng=0)
    assert topo.n_units == catalogue.n_units(name)
    assert topo.n_edges > 0
    assert edge_set(topo.graph) == edge_set(catalogue.build_graph(name, rng=0))


def test_topology_load_reads_roles_and_pools():
    rbm = recur.Topology.load("bipartite", n_visible=6, n_hidden=4)
    assert rbm.roles["visible"].tolist() == list(range(6))
    assert rbm.roles["hidden"].tolist() == list(range(6, 10))
    chain = recur.Topology.load("synfire_chain", n_pools=3, pool_size=5)
    assert list(chain.pools) == [0, 1, 2]
    assert chain.pools[2].tolist() == list(range(10, 15))


def test_recipe_returns_a_copy():
    spec = catalogue.recipe("layered")
    spec["params"]["sizes"].append(1000)
    spec["n_units"] = -1
    assert catalogue.recipe("layered")["n_units"] == 200
    assert catalogue.build_graph("layered").number_of_nodes() == 200


def test_graph_params_do_not_alias_the_recipe():
    G = catalogue.build_graph("layered")
    G.graph["params"]["sizes"].append(1000)
    assert catalogue.recipe("layered")["params"]["sizes"] == [50, 100, 50]


def test_describe():
    rows = catalogue.describe()
    assert [row["name"] for row in rows] == NAMES
    for row in rows:
        assert {"name", "n_units", "generator", "description", "reference", "params"} <= set(row)
        assert row["n_units"] == catalogue.n_units(row["name"])
    rows[0]["params"].clear()
    assert catalogue.describe()[0]["params"]


# -- the allow-list --------------------------------------------------------------------------
def test_allow_list_covers_recur_generators_and_recipes():
    for name in graphs.__all__:
        assert catalogue.GENERATORS[f"recur.graphs.{name}"] is getattr(graphs, name)
    for name in NAMES:
        assert catalogue.recipe(name)["generator"] in catalogue.GENERATORS
    assert all(callable(f) for f in catalogue.GENERATORS.values())
    with pytest.raises(TypeError):
        catalogue.GENERATORS["os.system"] = print


def test_seed_passed_only_when_generator_takes_one():
    assert catalogue.build_graph("ring").graph["seed"] is None
    seed = catalogue.build_graph("erdos_renyi", rng=0).graph["seed"]
    assert seed == int(np.random.default_rng(0).integers(2**32))


# -- bad calls -------------------------------------------------------------------------------
def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        catalogue.build_graph("small_wrld")
    assert "small_wrld" in str(info.value)
    assert all(name in str(info.value) for name in NAMES)
    with pytest.raises(ValueError):
        recur.Topology.load("nope")
    with pytest.raises(TypeError, match="name"):
        catalogue.recipe(3)


def test_unknown_override_lists_params():
    with pytest.raises(ValueError) as info:
        catalogue.build_graph("small_world", size=10)
    message = str(info.value)
    assert "size" in message and all(key in message for key in ("n", "k", "p"))
    with pytest.raises(ValueError, match="rng"):
        catalogue.build_graph("small_world", seed=1)


def test_bad_override_values():
    with pytest.raises(ValueError, match="p_forward"):
        catalogue.build_graph("synfire_chain", p_forward=2.0)
    with pytest.raises(TypeError, match="n_pools"):
        catalogue.n_units("synfire_chain", n_pools=2.5)
    with pytest.raises(TypeError, match="rng"):
        catalogue.build_graph("ring", rng="zero")


# -- malformed recipe files ------------------------------------------------------------------
GOOD = """\
description = "A test chain."
reference = "Diesmann, Gewaltig & Aertsen, Nature 402:529 (1999)"
generator = "recur.graphs.synfire_chain_graph"
n_units = 12
size = { product = ["n_pools", "pool_size"] }

[params]
n_pools = 3
pool_size = 4
p_forward = 0.5
"""


def write(tmp_path, text, name="trial.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_temp_recipe_reads_and_builds(tmp_path):
    spec = catalogue._read_recipe(write(tmp_path, GOOD))
    assert spec["name"] == "trial"
    assert spec["n_units"] == 12
    G = catalogue._build(spec, rng=0, overrides={"pool_size": 5})
    assert G.number_of_nodes() == 15
    assert G.graph["recipe"] == "trial"


@pytest.mark.parametrize("text, key", [
    (GOOD.replace('n_units = 12', 'n_units = [12'), "TOML"),
    (GOOD.replace('description = "A test chain."\n', ""), "description"),
    (GOOD.replace('reference = "', 'reference = 3 #'), "reference"),
    (GOOD.replace('description = "A test chain."', 'description = "  "'), "description"),
    (GOOD.replace("recur.graphs.synfire_chain_graph", "os.system"), "generator"),
    (GOOD.replace("recur.graphs.synfire_chain_graph", "networkx.erdos_renyi_graph"), "generator"),
    (GOOD.replace("n_units = 12", "n_units = 13"), "n_units"),
    (GOOD.replace("n_units = 12", 'n_units = "12"'), "n_units"),
    (GOOD.replace("n_units = 12", "n_units = true"), "n_units"),
    (GOOD.replace("n_units = 12\n", ""), "n_units"),
    (GOOD.replace('size = { product = ["n_pools", "pool_size"] }\n', ""), "size"),
    (GOOD.replace("product", "ratio"), "size"),
    (GOOD.replace('["n_pools", "pool_size"]', '["n_pools", "n"]'), "size.product"),
    (GOOD.replace('["n_pools", "pool_size"]', '[]'), "size.product"),
    (GOOD.replace("pool_size = 4", "pool_size = 4.0"), "size"),
    (GOOD + "seed = 3\n", "params.seed"),
    (GOOD + "p_backward = 0.1\n", "params.p_backward"),
    (GOOD.replace("p_forward = 0.5\n", ""), "params"),
    (GOOD.replace("[params]", "[parameters]"), "parameters"),
    (GOOD.replace("[params]\nn_pools = 3", "params = 3\n[other]\nn_pools = 3"), "other"),
    ("notes = 'x'\n" + GOOD, "notes"),
])
def test_malformed_recipe_names_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        catalogue._read_recipe(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message


def test_malformed_params_table(tmp_path):
    text = GOOD.replace("[params]\nn_pools = 3\npool_size = 4\np_forward = 0.5\n",
                        "params = 3\n")
    with pytest.raises(ValueError, match="'params' must be a table"):
        catalogue._read_recipe(write(tmp_path, text))


def test_inline_recipe_api_matches_the_catalogue():
    from recur import catalogue

    data = {k: v for k, v in catalogue.recipe("small_world").items() if k != "name"}
    recipe = catalogue.validate_recipe(data, "inline", "small_world")
    assert catalogue.recipe_units(recipe, n=40) == 40
    a = catalogue.build_recipe_graph(recipe, 5, n=40)
    b = catalogue.build_graph("small_world", rng=5, n=40)
    assert sorted(a.edges) == sorted(b.edges)
    with pytest.raises(ValueError, match="unknown parameter"):
        catalogue.recipe_units(recipe, size=3)
