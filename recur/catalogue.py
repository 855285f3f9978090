"""The topology catalogue: named recipes that build networkx graphs.

Each recipe is one TOML file in the package ``recur.topologies`` (the ``topologies/`` folder of
the repository); the file name without ``.toml`` is the recipe's name. A recipe is data: its
generator is looked up in :data:`GENERATORS`, an explicit allow-list, so a recipe file cannot
import or run anything else. Files are read on first use, never when ``recur`` is imported.

Recipe schema (every key is required; no other top-level keys are allowed)::

    description = "One or two sentences: what the graph is and what it models."
    reference = "Watts & Strogatz, Nature 393:440 (1998)"
    generator = "networkx.watts_strogatz_graph"     # a key of GENERATORS
    n_units = 100                                   # units built with the default params
    size = { product = ["n"] }                      # which params set the number of units

    [params]                                        # keyword arguments with their defaults
    n = 100
    k = 6
    p = 0.1

``size`` has exactly one key. ``product`` lists parameters whose values multiply to the number
of units (``{ product = ["n_pools", "pool_size"] }``); ``sum`` lists parameters whose values add
up to it (``{ sum = ["n_visible", "n_hidden"] }``), a list-valued parameter counting as the sum
of its entries (``{ sum = ["sizes"] }``). The loader checks that the defaults give ``n_units``.

Every key of ``[params]`` must be a named parameter of the generator, and every required
parameter of the generator must be given. ``seed`` is never a recipe parameter: when the
generator takes one, :func:`build_graph` draws it from its ``rng``.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import inspect
import math
import numbers
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import networkx as nx
import numpy as np

from . import graphs

__all__ = ["GENERATORS", "build_graph", "describe", "n_units", "names", "recipe", "validate_recipe",
           "build_recipe_graph", "recipe_units"]

#: Generators a recipe may name, by dotted name. Recipes resolve their ``generator`` here and
#: nowhere else; to offer a new generator, add it to this mapping.
GENERATORS: Mapping[str, Callable[..., nx.Graph]] = MappingProxyType({
    "networkx.complete_graph": nx.complete_graph,
    "networkx.fast_gnp_random_graph": nx.fast_gnp_random_graph,
    "networkx.random_regular_graph": nx.random_regular_graph,
    "networkx.watts_strogatz_graph": nx.watts_strogatz_graph,
    **{f"recur.graphs.{name}": getattr(graphs, name) for name in graphs.__all__},
})

_KEYS = ("description", "reference", "generator", "n_units", "size", "params")
_SIZE_RULES = ("product", "sum")


# -- reading and validating recipe files -----------------------------------------------------
def _recipe_dir():
    try:
        return importlib.resources.files("recur.topologies")
    except ModuleNotFoundError:
        # A source checkout used without installing: recur.topologies exists only once
        # setuptools maps the top-level topologies/ folder into the package.
        return Path(__file__).resolve().parent.parent / "topologies"


@functools.lru_cache(maxsize=1)
def _recipe_files() -> dict:
    files = (f for f in _recipe_dir().iterdir() if f.name.endswith(".toml") and f.is_file())
    return {f.name.removesuffix(".toml"): f for f in sorted(files, key=lambda f: f.name)}


def _unit_count(size: Mapping[str, list], params: Mapping) -> int:
    """Number of units that ``params`` produce, following a recipe's ``size`` rule."""
    ((rule, keys),) = size.items()
    values = []
    for key in keys:
        value = params[key]
        if rule == "sum" and isinstance(value, (list, tuple)):
            entries = list(value)
        else:
            entries = [value]
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in entries):
            allowed = "an integer or a list of integers" if rule == "sum" else "an integer"
            raise TypeError(f"parameter {key!r} sets the number of units and must be {allowed}, "
                            f"got {value!r}")
        values.append(sum(int(v) for v in entries))
    return math.prod(values) if rule == "product" else sum(values)


def _check_params(params: dict, generator: str, source: str) -> None:
    signature = inspect.signature(GENERATORS[generator])
    named = {name: parameter for name, parameter in signature.parameters.items()
             if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)}
    if "seed" in params:
        raise ValueError(f"{source}: key 'params.seed': a recipe may not fix the seed; "
                         "build_graph draws it from its rng")
    for name in params:
        if name not in named:
            known = ", ".join(n for n in named if n != "seed")
            raise ValueError(f"{source}: key 'params.{name}': {generator} has no parameter "
                             f"{name!r} (its parameters: {known})")
    for name, parameter in named.items():
        if parameter.default is parameter.empty and name != "seed" and name not in params:
            raise ValueError(f"{source}: key 'params': missing {name!r}, a required parameter "
                             f"of {generator}")


def _check_size(size: dict, params: dict, source: str) -> None:
    if len(size) != 1 or next(iter(size)) not in _SIZE_RULES:
        raise ValueError(f"{source}: key 'size' must have exactly one key, 'product' or 'sum', "
                         f"got {sorted(size)}")
    ((rule, keys),) = size.items()
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{source}: key 'size.{rule}' must be a non-empty list of parameter "
                         f"names, got {keys!r}")
    for key in keys:
        if key not in params:
            raise ValueError(f"{source}: key 'size.{rule}' names {key!r}, which is not in "
                             f"[params]")


def _validate(data: dict, source: str, name: str) -> dict:
    for key in data:
        if key not in _KEYS:
            raise ValueError(f"{source}: unknown key {key!r}; a recipe has exactly the keys "
                             f"{', '.join(_KEYS)}")
    for key in _KEYS:
        if key not in data:
            raise ValueError(f"{source}: missing key {key!r}")
    for key in ("description", "reference", "generator"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ValueError(f"{source}: key {key!r} must be a non-empty string, "
                             f"got {data[key]!r}")
    for key in ("size", "params"):
        if not isinstance(data[key], dict):
            raise ValueError(f"{source}: key {key!r} must be a table, got {data[key]!r}")
    count = data["n_units"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{source}: key 'n_units' must be a positive integer, got {count!r}")
    generator = data["generator"]
    if generator not in GENERATORS:
        raise ValueError(f"{source}: key 'generator': {generator!r} is not an allowed generator "
                         f"(allowed: {', '.join(sorted(GENERATORS))})")

    params = data["params"]
    _check_params(params, generator, source)
    _check_size(data["size"], params, source)
    try:
        default_count = _unit_count(data["size"], params)
    except TypeError as exc:
        raise ValueError(f"{source}: key 'size': {exc}") from None
    if default_count != count:
        raise ValueError(f"{source}: key 'n_units' is {count}, but the default params give "
                         f"{default_count} units")
    return {"name": name, **{key: data[key] for key in _KEYS}}


def _read_recipe(path) -> dict:
    """Parse and validate one recipe file; the recipe's name is the file's stem.

    Accepts a path or an ``importlib.resources`` traversable. Every error is a ``ValueError``
    that names the file and the key at fault.
    """
    if isinstance(path, str):
        path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    return _validate(data, source, path.name.removesuffix(".toml"))


@functools.lru_cache(maxsize=None)
def _cached_recipe(name: str) -> dict:
    return _read_recipe(_recipe_files()[name])


def _lookup(name) -> dict:
    if not isinstance(name, str):
        raise TypeError(f"name must be a topology name (str), got {type(name).__name__}")
    if name not in _recipe_files():
        raise ValueError(f"unknown topology {name!r}; the catalogue has: {', '.join(names())}")
    return _cached_recipe(name)


def _merge_params(spec: dict, overrides: Mapping) -> dict:
    for key in overrides:
        if key not in spec["params"]:
            hint = " (the seed is drawn from rng)" if key == "seed" else ""
            raise ValueError(f"unknown parameter {key!r} for topology {spec['name']!r}{hint}; "
                             f"its parameters are: {', '.join(spec['params'])}")
    return copy.deepcopy({**spec["params"], **overrides})


def _build(spec: dict, rng, overrides: Mapping) -> nx.Graph:
    params = _merge_params(spec, overrides)
    generator = GENERATORS[spec["generator"]]
    try:
        rng = np.random.default_rng(rng)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"rng must be None, a non-negative int or a numpy Generator, "
                        f"got {rng!r}") from exc
    kwargs = copy.deepcopy(params)
    seed = None
    if "seed" in inspect.signature(generator).parameters:
        seed = int(rng.integers(2**32))
        kwargs["seed"] = seed
    G = generator(**kwargs)
    G.graph.update(recipe=spec["name"], params=params, seed=seed)
    return G


# -- public API ------------------------------------------------------------------------------
def validate_recipe(data: dict, source: str = "recipe", name: str = "recipe") -> dict:
    """Check an inline recipe (a dict in the catalogue's TOML format) and return it normalised.

    Raises ``ValueError``/``TypeError`` naming ``source`` and the offending key, exactly as
    for a catalogue file; used by sweep specs that define topologies inline.
    """
    return _validate(data, source, name)


def build_recipe_graph(recipe: dict, rng=None, **overrides) -> nx.Graph:
    """The graph of a validated recipe (:func:`validate_recipe`) with ``overrides`` of its
    parameters; the same construction as :func:`build_graph` uses for a catalogue name."""
    return _build(recipe, rng, overrides)


def recipe_units(recipe: dict, **params) -> int:
    """Number of units a validated recipe builds with ``params`` (its defaults merged in),
    from its ``size`` rule, without building the graph."""
    return _unit_count(recipe["size"], _merge_params(recipe, params))


def names() -> list[str]:
    """Names of the recipes in the catalogue, sorted."""
    return list(_recipe_files())


def recipe(name: str) -> dict:
    """The parsed and validated recipe of a catalogue entry.

    Parameters
    ----------
    name : str
        A catalogue name (see :func:`names`).

    Returns
    -------
    dict
        A fresh copy with the keys ``name``, ``description``, ``reference``, ``generator``,
        ``n_units``, ``size`` and ``params`` (see the module docstring for their meaning).

    Raises
    ------
    ValueError
        If ``name`` is not in the catalogue (the message lists the known names) or its file is
        malformed (the message names the file and the key).
    """
    return copy.deepcopy(_lookup(name))


def n_units(name: str, **overrides) -> int:
    """Number of units a recipe builds, with its defaults or with ``overrides``.

    Computed from the recipe's ``size`` rule, without building the graph.
    """
    spec = _lookup(name)
    return _unit_count(spec["size"], _merge_params(spec, overrides))


def build_graph(name: str, rng=None, **overrides) -> nx.Graph:
    """Build the networkx graph of a catalogue recipe.

    Parameters
    ----------
    name : str
        A catalogue name (see :func:`names`).
    rng : None, int or numpy.random.Generator
        Normalised with ``np.random.default_rng``. When the generator takes a ``seed``, one
        integer ``rng.integers(2**32)`` is drawn and passed as ``seed=``, so the same ``rng``
        gives the same graph.
    **overrides
        Values replacing the recipe's default parameters, such as ``n=200``.

    Returns
    -------
    networkx.Graph
        The generator's graph; an edge ``u -> v`` means unit ``u`` drives unit ``v`` and an
        undirected edge means both directions. ``G.graph`` records ``"recipe"`` (the name),
        ``"params"`` (defaults with overrides applied) and ``"seed"`` (the integer passed to
        the generator, or None when it takes no seed).

    Raises
    ------
    ValueError
        For an unknown name (listing the catalogue) or an unknown override (listing the
        recipe's parameters). Invalid parameter values raise the generator's own error.
    """
    return _build(_lookup(name), rng, overrides)


def describe() -> list[dict]:
    """One summary per recipe, sorted by name, for listings such as ``recur topologies``.

    Returns
    -------
    list of dict
        Each with ``name``, ``n_units`` (with the default params), ``generator``,
        ``description``, ``reference`` and ``params`` (the defaults).
    """
    summaries = []
    for name in names():
        spec = recipe(name)
        summaries.append({key: spec[key] for key in
                          ("name", "n_units", "generator", "description", "reference", "params")})
    return summaries
