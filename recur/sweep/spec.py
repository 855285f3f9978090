"""Experiment specs: a TOML file naming a grid of topologies x tasks x rules x axes x seeds.

A spec is data. Every name in it (network kind, task, rule, topology generator) resolves
through an explicit registry (:data:`recur.sweep.cells.NETWORKS`, :data:`~recur.sweep.cells.TASKS`,
:data:`recur.catalogue.GENERATORS`), strings are only ever compared with those names, paths
must stay inside the spec's folder, and sizes are held to :class:`Limits`. :func:`load_spec`
checks all of it before a cell runs and reports every problem at once, each with its key path.

Layout (``examples/sweeps/*.toml`` are complete examples)::

    [sweep]
    name = "ESN memory across topologies"   # free text, with an optional description
    network = "esn"                          # a key of recur.sweep.cells.NETWORKS
    seeds = 5                                # seeds per cell
    entropy = 20261207                       # root entropy of every cell's SeedSequence
    paired = true                            # optional: common random numbers, see below
    metrics = ["memory_capacity"]            # optional: keep only these metrics
    store = "results.sqlite"                 # optional, relative to the spec's folder

    [network]                                # parameters of the network kind
    leak = 1.0

    [topologies]                             # label = catalogue name and overrides, or a recipe
    ring = { catalogue = "ring" }
    er = { catalogue = "erdos_renyi", params = { p = 0.05 } }
    lattice = { recipe = { description = "...", reference = "...",
                           generator = "recur.graphs.ring_graph", n_units = 100,
                           size = { product = ["n"] }, params = { n = 100, k = 2 } } }
    mine = { recipe_file = "graphs/mine.toml" }   # a recipe file inside the spec's folder

    [tasks.memory_capacity]                  # one table per task (a key of TASKS)
    steps = 2000

    [rules.storkey]                          # for tasks that take rules (Hopfield, spectrum)
    diagonal = "zero"

    [grid]                                   # axes: lists of values; the grid is their product
    "topology.n" = [50, 100, 200]            # a recipe parameter of every topology
    "network.spectral_radius" = [0.5, 0.9]   # a network parameter
    "task.washout" = [50, 100]               # a parameter of every task; "rule.X" likewise

Cells and seeds. The cells are every (topology, task, rule, grid point, seed index). A cell's
random streams come from ``SeedSequence(entropy, spawn_key=(seed_index, *h))`` where ``h`` is
four 32-bit words of the SHA-256 of the cell's canonical parameters (everything but the seed
index), so a cell's numbers depend on what it is, never on which or how many other cells the
grid holds, nor on their order. With ``paired = true`` the key is ``(seed_index,)`` alone:
all cells of one seed index draw the same streams (the same input series and weight draws on
every topology), a paired design in which cells differ only in what the grid varies.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .cells import NETWORKS, TASKS, Param

__all__ = ["Limits", "SpecError", "Spec", "Cell", "load_spec", "parse_spec", "canonical_json"]

_SECTIONS = ("sweep", "network", "topologies", "tasks", "rules", "grid")
_SWEEP_KEYS = ("name", "description", "network", "seeds", "entropy", "paired", "metrics",
               "store")
_TOPOLOGY_KEYS = ("catalogue", "recipe", "recipe_file", "params")
_AXIS_SCOPES = ("topology", "network", "task", "rule")
#: Largest spec file read, in bytes: a spec is a page of settings, not a data file.
MAX_SPEC_BYTES = 1_000_000


@dataclass(frozen=True)
class Limits:
    """Largest sizes a spec may ask for; the caller (not the spec) sets them.

    Attributes
    ----------
    max_units : int
        Units of one cell's network.
    max_steps : int
        Time steps of one cell, summed over the task parameters marked as steps.
    max_cells : int
        Cells in the whole grid (seeds included).
    max_seeds : int
        Seeds per cell.
    """

    max_units: int = 10_000
    max_steps: int = 1_000_000
    max_cells: int = 100_000
    max_seeds: int = 10_000

    def __post_init__(self):
        for name in ("max_units", "max_steps", "max_cells", "max_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


class SpecError(ValueError):
    """A spec that cannot run. ``problems`` lists every ``(key path, message)`` found."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s):"]
        lines += [f"  {path or '(file)'}: {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces: the form hashed for spec and cell identities."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _sha256(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class Cell:
    """One unit of work: a topology, task, rule, grid point and seed index.

    Attributes
    ----------
    cell_id : str
        16 hex digits of the SHA-256 of the cell's canonical parameters and seed index.
    topology, task, rule : str
        Labels (``rule`` is ``"-"`` for tasks without rules).
    axes : dict
        The grid point: axis name to value.
    seed_index : int
    entropy : int
    spawn_key : tuple of int
    payload : dict
        Everything :func:`recur.sweep.cells.execute` needs, JSON-able.
    """

    cell_id: str
    topology: str
    task: str
    rule: str
    axes: dict
    seed_index: int
    entropy: int
    spawn_key: tuple
    payload: dict = field(repr=False)

    def factors(self) -> dict:
        """The labels a report groups by: topology, task, rule and every axis."""
        return {"topology": self.topology, "task": self.task, "rule": self.rule, **self.axes}


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec (made by :func:`load_spec`); see the module docstring."""

    source: str
    folder: Path
    name: str
    description: str
    network: str
    network_params: dict
    topologies: dict          # label -> {"recipe": dict, "overrides": dict}
    tasks: dict               # task name -> params (defaults filled)
    rules: dict               # task name -> {rule name -> params}; {"-": {}} without rules
    grid: dict                # axis -> list of values
    seeds: int
    entropy: int
    paired: bool
    metrics: tuple | None
    store: Path | None
    spec_hash: str
    text: str = field(repr=False, default="")

    def canonical(self) -> dict:
        """The resolved spec as plain data: what :attr:`spec_hash` is the hash of."""
        return _canonical(self.network, self.network_params, self.topologies, self.tasks,
                          self.rules, self.grid, self.seeds, self.entropy, self.paired,
                          self.metrics)

    @property
    def n_cells(self) -> int:
        """Number of cells: topologies x task/rule pairs x grid points x seeds."""
        points = math.prod(len(v) for v in self.grid.values())
        combos = sum(len(r) for r in self.rules.values())
        return len(self.topologies) * combos * points * self.seeds

    def grid_points(self) -> list[dict]:
        """Every combination of the grid axes, as dicts of axis -> value."""
        axes = list(self.grid)
        return [dict(zip(axes, values)) for values in itertools.product(*self.grid.values())]

    def cells(self) -> Iterator[Cell]:
        """Every cell, topology-major (the order only matters for progress)."""
        points = self.grid_points()
        for label, topo in self.topologies.items():
            for task, task_params in self.tasks.items():
                for rule, rule_params in self.rules[task].items():
                    for point in points:
                        base = _cell_params(self, label, topo, task, task_params, rule,
                                            rule_params, point)
                        digest = hashlib.sha256(canonical_json(base).encode()).digest()
                        words = tuple(int.from_bytes(digest[4 * i:4 * i + 4], "little")
                                      for i in range(4))
                        for s in range(self.seeds):
                            yield _make_cell(self, base, label, task, rule, point, s, words)

    def cell(self, cell_id: str) -> Cell:
        """The cell with this id (``KeyError`` if the spec has none)."""
        for c in self.cells():
            if c.cell_id == cell_id:
                return c
        raise KeyError(f"spec {self.source} has no cell {cell_id!r}")

    def default_store(self) -> Path:
        """Where results go when the caller names no store: the spec's ``store`` key, or a
        SQLite file beside the spec with the spec's file name."""
        if self.store is not None:
            return self.store
        stem = Path(self.source).stem if self.source.endswith(".toml") else "sweep"
        return self.folder / f"{stem}.sqlite"


def _canonical(network, network_params, topologies, tasks, rules, grid, seeds, entropy, paired,
               metrics) -> dict:
    return {"network": network, "network_params": network_params, "topologies": topologies,
            "tasks": tasks, "rules": rules, "grid": grid, "seeds": seeds, "entropy": entropy,
            "paired": paired, "metrics": None if metrics is None else list(metrics)}


def _apply_axes(spec: Spec, topo, task_params, rule_params, point):
    """The cell's topology overrides and network, task and rule parameters at a grid point."""
    overrides = dict(topo["overrides"])
    net = dict(spec.network_params)
    tparams, rparams = dict(task_params), dict(rule_params)
    for axis, value in point.items():
        scope, key = axis.split(".", 1)
        target = {"topology": overrides, "network": net, "task": tparams, "rule": rparams}[scope]
        target[key] = value
    return overrides, net, tparams, rparams


def _cell_params(spec, label, topo, task, task_params, rule, rule_params, point) -> dict:
    overrides, net, tparams, rparams = _apply_axes(spec, topo, task_params, rule_params, point)
    return {"topology": {"label": label, "recipe": topo["recipe"], "overrides": overrides},
            "network": {"kind": spec.network, "params": net},
            "task": {"name": task, "params": tparams},
            "rule": {"name": None if rule == "-" else rule, "params": rparams}}


def _make_cell(spec, base, label, task, rule, point, seed_index, words) -> Cell:
    cell_id = _sha256({**base, "seed_index": seed_index})[:16]
    spawn_key = (seed_index,) if spec.paired else (seed_index, *words)
    payload = {**copy.deepcopy(base), "cell_id": cell_id, "spec_hash": spec.spec_hash,
               "seed": {"entropy": spec.entropy, "spawn_key": list(spawn_key),
                        "index": seed_index},
               "metrics": None if spec.metrics is None else list(spec.metrics)}
    return Cell(cell_id, label, task, rule, dict(point), seed_index, spec.entropy, spawn_key,
                payload)


# -- loading and validation --------------------------------------------------------------------
def load_spec(path, *, limits: Limits | None = None, overrides: Mapping | None = None) -> Spec:
    """Read, validate and resolve a sweep spec.

    Parameters
    ----------
    path : str or Path
        A TOML file. Relative paths inside it resolve against its folder and must stay there.
    limits : Limits, optional
        Largest sizes allowed (default :class:`Limits`).
    overrides : mapping, optional
        A nested dict merged into the parsed TOML before validation (leaves replace leaves),
        e.g. ``{"sweep": {"seeds": 2}, "grid": {"topology.n": [40]}}``: how a quick run of a
        full-size spec is made.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        With every problem found, each with its key path (``tasks.narma.order``,
        ``topologies.er.params.q``, ...).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(str(path), [("", f"{size} bytes; a spec may have at most "
                                             f"{MAX_SPEC_BYTES}")])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [("", f"not UTF-8 text: {exc}")]) from None
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read the spec: {exc.strerror or exc}")]) \
            from None
    return parse_spec(text, folder=path.resolve().parent, source=str(path), limits=limits,
                      overrides=overrides)


def parse_spec(text: str, *, folder, source: str = "<spec>", limits: Limits | None = None,
               overrides: Mapping | None = None) -> Spec:
    """:func:`load_spec` for TOML text; ``folder`` is the experiment's folder."""
    limits = limits or Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a recur.sweep.Limits, got {type(limits).__name__}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, [("", f"not valid TOML: {exc}")]) from None
    if overrides:
        doc = _merge(doc, overrides)
    checker = _Checker(Path(folder).resolve(), limits)
    spec = checker.run(doc, source, text)
    if checker.problems:
        raise SpecError(source, checker.problems)
    return spec


def _merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


class _Checker:
    """Collects every problem of a spec instead of stopping at the first."""

    def __init__(self, folder: Path, limits: Limits):
        self.folder = folder
        self.limits = limits
        self.problems: list[tuple[str, str]] = []

    def bad(self, path, message):
        self.problems.append((path, message))

    def table(self, doc, key, path, required=True):
        value = doc.get(key)
        if value is None:
            if required:
                self.bad(path, "missing table")
            return {}
        if not isinstance(value, dict):
            self.bad(path, f"must be a table, got {_type_name(value)}")
            return {}
        return value

    def unknown(self, table, allowed, path, what="key"):
        for key in table:
            if key not in allowed:
                self.bad(f"{path}.{key}" if path else key,
                         f"unknown {what}; allowed: {', '.join(allowed) or '(none)'}")

    def params(self, given, schema: Mapping[str, Param], path, *, allowed=None):
        """Check ``given`` against ``schema``; returns the params with defaults filled."""
        out = {}
        for key, value in given.items():
            if key not in schema:
                self.bad(f"{path}.{key}", f"unknown parameter; allowed: "
                                          f"{', '.join(schema) or '(none)'}")
                continue
            if allowed is not None and key not in allowed:
                self.bad(f"{path}.{key}", _honoured(allowed))
                continue
            checked, message = schema[key].check(value)
            if message:
                self.bad(f"{path}.{key}", message)
            else:
                out[key] = checked
        for key, param in schema.items():
            if key not in out and key not in given:
                if param.required:
                    self.bad(f"{path}.{key}", "missing required parameter")
                elif allowed is None or key in allowed:
                    out[key] = param.default
        return out

    def inside(self, value, path) -> Path | None:
        """A relative path resolved inside the experiment's folder, or None (reported)."""
        if not isinstance(value, str) or not value.strip():
            self.bad(path, f"must be a non-empty relative path, got {_type_name(value)}")
            return None
        raw = Path(value)
        if raw.is_absolute() or value.startswith("~"):
            self.bad(path, f"must be relative to the spec's folder, got {value!r}")
            return None
        resolved = (self.folder / raw).resolve()
        if resolved != self.folder and self.folder not in resolved.parents:
            self.bad(path, f"{value!r} leads outside the spec's folder {self.folder}")
            return None
        return resolved

    # -- sections ------------------------------------------------------------------------
    def run(self, doc: dict, source: str, text: str) -> Spec | None:
        self.unknown(doc, _SECTIONS, "", "section")
        sweep = self.table(doc, "sweep", "sweep")
        self.unknown(sweep, _SWEEP_KEYS, "sweep")
        name = self.text(sweep, "name", "sweep.name", required=True)
        description = self.text(sweep, "description", "sweep.description", required=False)

        network = sweep.get("network")
        if network is None:
            self.bad("sweep.network", f"missing; one of: {', '.join(NETWORKS)}")
        elif not isinstance(network, str) or network not in NETWORKS:
            self.bad("sweep.network", f"unknown network {_show(network)}; one of: "
                                      f"{', '.join(NETWORKS)}")
            network = None
        seeds = self.integer(sweep, "seeds", "sweep.seeds", 1, self.limits.max_seeds)
        entropy = self.integer(sweep, "entropy", "sweep.entropy", 0, None,
                               hint=" (any fixed non-negative integer, e.g. "
                                    "entropy = 20261207: it fixes every random draw)")
        paired = sweep.get("paired", False)
        if not isinstance(paired, bool):
            self.bad("sweep.paired", f"must be true or false, got {_type_name(paired)}")
            paired = False
        store = None
        if "store" in sweep:
            store = self.inside(sweep["store"], "sweep.store")

        net_table = self.table(doc, "network", "network", required=False)
        tasks_table = self.table(doc, "tasks", "tasks")
        task_kinds = {}
        for task_name, params in tasks_table.items():
            kind = TASKS.get(task_name)
            if kind is None:
                self.bad(f"tasks.{task_name}", f"unknown task; one of: {', '.join(TASKS)}"
                                               f"{_code_hint(task_name)}")
                continue
            if not isinstance(params, dict):
                self.bad(f"tasks.{task_name}", f"must be a table, got {_type_name(params)}")
                continue
            if network is not None and kind.network != network:
                self.bad(f"tasks.{task_name}", f"runs on network {kind.network!r}, but "
                                               f"sweep.network is {network!r}")
                continue
            task_kinds[task_name] = (kind, params)
        if not tasks_table and "tasks" in doc:
            self.bad("tasks", "names no task")

        honoured = None
        for kind, _ in task_kinds.values():
            if kind.network_params is not None:
                honoured = kind.network_params if honoured is None else \
                    tuple(k for k in honoured if k in kind.network_params)
        network_params = {}
        if network is not None:
            network_params = self.params(net_table, NETWORKS[network].params, "network",
                                         allowed=honoured)
        tasks = {t: self.params(params, kind.params, f"tasks.{t}")
                 for t, (kind, params) in task_kinds.items()}

        rules = self.rules(doc, task_kinds)
        metrics = self.metrics(sweep, task_kinds)
        topologies = self.topologies(doc, task_kinds)
        grid = self.grid(doc, network, network_params, topologies, task_kinds, tasks, rules)

        if self.problems:
            return None
        spec = Spec(source=source, folder=self.folder, name=name, description=description,
                    network=network, network_params=network_params, topologies=topologies,
                    tasks=tasks, rules=rules, grid=grid, seeds=seeds, entropy=entropy,
                    paired=paired, metrics=metrics, store=store, spec_hash="", text=text)
        canonical = spec.canonical()
        object.__setattr__(spec, "spec_hash", _sha256(canonical))
        self.sizes(spec, task_kinds)
        return spec

    def text(self, table, key, path, *, required):
        value = table.get(key)
        if value is None:
            if required:
                self.bad(path, "missing (free text naming the experiment)")
            return ""
        if not isinstance(value, str):
            self.bad(path, f"must be a string, got {_type_name(value)}")
            return ""
        return value

    def integer(self, table, key, path, low, high, hint=""):
        value = table.get(key)
        if value is None:
            self.bad(path, f"missing{hint}")
            return low
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(path, f"must be an integer, got {_type_name(value)}")
            return low
        if value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f">= {low}"
            self.bad(path, f"must be {limit}, got {value}")
            return low
        return value

    def rules(self, doc, task_kinds) -> dict:
        rules_table = self.table(doc, "rules", "rules", required=False)
        with_rules = {t: k for t, (k, _) in task_kinds.items() if k.rules is not None}
        known = {r for k in with_rules.values() for r in k.rules}
        out = {}
        for t, (kind, _) in task_kinds.items():
            if kind.rules is None:
                out[t] = {"-": {}}
                continue
            out[t] = {}
            for rule, params in rules_table.items():
                if rule not in kind.rules:
                    continue
                if not isinstance(params, dict):
                    continue  # reported below
                out[t][rule] = self.params(params, kind.rules[rule], f"rules.{rule}")
            if not out[t]:
                self.bad("rules", f"task {t!r} needs at least one rule; one of: "
                                  f"{', '.join(kind.rules)}")
        for rule, params in rules_table.items():
            if not with_rules:
                self.bad(f"rules.{rule}", "no task of this spec takes a rule")
            elif rule not in known:
                self.bad(f"rules.{rule}", f"unknown rule; one of: {', '.join(sorted(known))}"
                                          f"{_code_hint(rule)}")
            elif not isinstance(params, dict):
                self.bad(f"rules.{rule}", f"must be a table, got {_type_name(params)}")
        return out

    def metrics(self, sweep, task_kinds):
        if "metrics" not in sweep:
            return None
        value = sweep["metrics"]
        if not isinstance(value, list) or not value or \
                not all(isinstance(m, str) for m in value):
            self.bad("sweep.metrics", "must be a non-empty list of metric names")
            return None
        available = [m for kind, _ in task_kinds.values() for m in kind.metrics]
        for m in value:
            if m not in available:
                self.bad("sweep.metrics", f"no task of this spec returns {_show(m)}; "
                                          f"available: {', '.join(dict.fromkeys(available))}")
        return tuple(dict.fromkeys(value))

    def topologies(self, doc, task_kinds) -> dict:
        from .. import catalogue

        table = self.table(doc, "topologies", "topologies")
        if "topologies" in doc and not table and isinstance(doc["topologies"], dict):
            self.bad("topologies", "names no topology")
        restricted = [k for k, _ in task_kinds.values() if k.catalogue_only is not None]
        out = {}
        for label, entry in table.items():
            path = f"topologies.{label}"
            if not isinstance(entry, dict):
                self.bad(path, f"must be a table, got {_type_name(entry)}")
                continue
            self.unknown(entry, _TOPOLOGY_KEYS, path)
            sources = [k for k in ("catalogue", "recipe", "recipe_file") if k in entry]
            if len(sources) != 1:
                self.bad(path, "needs exactly one of 'catalogue' (a catalogue name), 'recipe' "
                               "(an inline recipe) or 'recipe_file' (a recipe file in the "
                               "spec's folder)")
                continue
            recipe = self.recipe(entry, sources[0], label, path, catalogue)
            overrides = entry.get("params", {})
            if not isinstance(overrides, dict):
                self.bad(f"{path}.params", f"must be a table, got {_type_name(overrides)}")
                continue
            if recipe is None:
                continue
            ok = True
            for key in overrides:
                if key not in recipe["params"]:
                    self.bad(f"{path}.params.{key}", f"not a parameter of "
                                                     f"{recipe['generator']} in this recipe; "
                                                     f"its parameters: "
                                                     f"{', '.join(recipe['params'])}")
                    ok = False
            for kind in restricted:
                if sources[0] != "catalogue":
                    self.bad(path, f"task {kind.name!r} builds its graph from a catalogue "
                                   "name; inline recipes cannot be used with it")
                    ok = False
                bad_keys = [k for k in overrides if k not in kind.catalogue_only]
                if bad_keys or any(k not in recipe["params"] for k in kind.catalogue_only):
                    self.bad(path, f"task {kind.name!r} can only set "
                                   f"{', '.join(kind.catalogue_only)} of a catalogue recipe "
                                   f"that has it")
                    ok = False
            if ok:
                out[label] = {"recipe": recipe, "overrides": copy.deepcopy(overrides)}
        return out

    def recipe(self, entry, source, label, path, catalogue):
        if source == "catalogue":
            name = entry["catalogue"]
            if not isinstance(name, str) or name not in catalogue.names():
                self.bad(f"{path}.catalogue", f"unknown catalogue topology {_show(name)}; "
                                              f"the catalogue has: "
                                              f"{', '.join(catalogue.names())}")
                return None
            return catalogue.recipe(name)
        if source == "recipe":
            data = entry["recipe"]
            if not isinstance(data, dict):
                self.bad(f"{path}.recipe", f"must be a table, got {_type_name(data)}")
                return None
            where = f"{path}.recipe"
        else:
            file = self.inside(entry["recipe_file"], f"{path}.recipe_file")
            if file is None:
                return None
            try:
                data = tomllib.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                self.bad(f"{path}.recipe_file", f"cannot read {file}: {exc}")
                return None
            except tomllib.TOMLDecodeError as exc:
                self.bad(f"{path}.recipe_file", f"{file} is not valid TOML: {exc}")
                return None
            where = f"{path}.recipe_file"
        try:
            # The catalogue's own checks: allowed generators only, known parameters, sizes.
            return catalogue.validate_recipe(copy.deepcopy(data), "recipe", label)
        except (ValueError, TypeError) as exc:
            self.bad(where, str(exc).removeprefix("recipe: "))
            return None

    def grid(self, doc, network, network_params, topologies, task_kinds, tasks, rules) -> dict:
        table = self.table(doc, "grid", "grid", required=False)
        out = {}
        for axis, values in table.items():
            path = f"grid.{axis!r}" if "." in axis else f"grid.{axis}"
            scope, _, key = axis.partition(".")
            if scope not in _AXIS_SCOPES or not key:
                self.bad(path, f"an axis is 'SCOPE.PARAM' with SCOPE one of "
                               f"{', '.join(_AXIS_SCOPES)}, got {axis!r}")
                continue
            if not isinstance(values, list):
                self.bad(path, f"must be a list of values, got {_type_name(values)}")
                continue
            if not values:
                self.bad(path, "is empty: an empty axis makes an empty grid")
                continue
            if any(isinstance(v, (dict, list)) for v in values):
                self.bad(path, "values must be numbers, booleans or strings")
                continue
            if len({canonical_json(v) for v in values}) != len(values):
                self.bad(path, "repeats a value")
                continue
            schemas = self.axis_schemas(scope, key, path, network, topologies, task_kinds,
                                        rules)
            if schemas is None:
                continue
            checked = []
            for v in values:
                for schema in schemas:
                    if schema is None:
                        continue  # recipe parameters are checked by the generator
                    value, message = schema.check(v)
                    if message:
                        self.bad(path, f"value {_show(v)} {message}")
                        break
                    v = value
                checked.append(v)
            out[axis] = checked
        return out

    def axis_schemas(self, scope, key, path, network, topologies, task_kinds, rules):
        if scope == "network":
            if network is None:
                return None
            if key not in NETWORKS[network].params:
                self.bad(path, f"{key!r} is not a parameter of network {network!r}; its "
                               f"parameters: {', '.join(NETWORKS[network].params)}")
                return None
            for kind, _ in task_kinds.values():
                if kind.network_params is not None and key not in kind.network_params:
                    self.bad(path, _honoured(kind.network_params, kind.name))
                    return None
            return [NETWORKS[network].params[key]]
        if scope == "task":
            lacking = [t for t, (k, _) in task_kinds.items() if key not in k.params]
            if lacking or not task_kinds:
                self.bad(path, f"{key!r} is not a parameter of every task (missing from "
                               f"{', '.join(lacking) or 'all'})")
                return None
            return [k.params[key] for k, _ in task_kinds.values()]
        if scope == "rule":
            schemas = []
            for t, (kind, _) in task_kinds.items():
                for rule in rules.get(t, {}):
                    if rule == "-" or key not in kind.rules[rule]:
                        self.bad(path, f"{key!r} is not a parameter of rule {rule!r}")
                        return None
                    schemas.append(kind.rules[rule][key])
            return schemas
        lacking = [label for label, t in topologies.items() if key not in t["recipe"]["params"]]
        if lacking:
            self.bad(path, f"{key!r} is not a recipe parameter of topology "
                           f"{', '.join(lacking)}")
            return None
        for kind, _ in task_kinds.values():
            if kind.catalogue_only is not None and key not in kind.catalogue_only:
                self.bad(path, f"task {kind.name!r} can only vary "
                               f"{', '.join(kind.catalogue_only)} of its topologies")
                return None
        return [None]

    def sizes(self, spec: Spec, task_kinds):
        from .. import catalogue

        n = spec.n_cells
        if n > self.limits.max_cells:
            self.bad("grid", f"{n} cells exceed the limit of {self.limits.max_cells} "
                             "(raise it with Limits(max_cells=...) or --max-cells)")
            return
        if n == 0:
            self.bad("grid", "the grid has no cell")
            return
        seen_units, seen_steps = set(), set()
        points = spec.grid_points()
        for label, topo in spec.topologies.items():
            for point in points:
                overrides = dict(topo["overrides"])
                overrides.update({a.split(".", 1)[1]: v for a, v in point.items()
                                  if a.startswith("topology.")})
                try:
                    units = catalogue.recipe_units(topo["recipe"], **overrides)
                except (TypeError, ValueError) as exc:
                    self.bad(f"topologies.{label}", str(exc))
                    return
                if units > self.limits.max_units and label not in seen_units:
                    seen_units.add(label)
                    self.bad(f"topologies.{label}", f"{units} units exceed the limit of "
                                                    f"{self.limits.max_units} (raise it with "
                                                    "Limits(max_units=...) or --max-units)")
            for task, (kind, _) in task_kinds.items():
                for point in points:
                    params = dict(spec.tasks[task])
                    params.update({a.split(".", 1)[1]: v for a, v in point.items()
                                   if a.startswith("task.")})
                    steps = sum(params[k] for k, p in kind.params.items() if p.steps)
                    if steps > self.limits.max_steps and task not in seen_steps:
                        seen_steps.add(task)
                        self.bad(f"tasks.{task}", f"{steps} steps exceed the limit of "
                                                  f"{self.limits.max_steps} (raise it with "
                                                  "Limits(max_steps=...) or --max-steps)")
                    if kind.check is not None and task not in seen_steps:
                        for key, message in kind.check(params, None):
                            seen_steps.add(task)
                            self.bad(f"tasks.{task}.{key}", message)


def _honoured(params, task="this task") -> str:
    """Why a network parameter is refused: the task honours only ``params`` (or none)."""
    who = task if task == "this task" else f"task {task!r}"
    if not params:
        return f"{who} sets its own network parameters (they are task parameters)"
    return f"{who} honours only {', '.join(params)}"


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _code_hint(value) -> str:
    from .cells import _code_hint as hint

    return hint(value) if isinstance(value, str) else ""
