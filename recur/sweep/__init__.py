"""Declarative sweeps: a grid of topologies x tasks x rules x axes x seeds from a TOML spec,
run in this process, on local worker processes or on a Dask cluster, with every result kept
in a SQLite file.

>>> from recur import sweep
>>> spec = sweep.load_spec("examples/sweeps/esn_reservoirs.toml")   # doctest: +SKIP
>>> sweep.run_sweep(spec, workers=2)                                # doctest: +SKIP
>>> print(sweep.report(spec.default_store()))                       # doctest: +SKIP

The command line does the same: ``recur sweep SPEC [--workers N] [--scheduler ADDRESS]
[--store FILE]`` and ``recur report STORE [--format csv|json] [--by AXES] [--out DIR]``.
Dask is imported only when a scheduler address is given.
"""

from .cells import NETWORKS, TASKS
from .report import report, summarise
from .runner import SweepResult, run_cell, run_sweep
from .spec import Cell, Limits, Spec, SpecError, load_spec, parse_spec
from .store import ResultStore, StoreError

__all__ = ["load_spec", "parse_spec", "Spec", "Cell", "Limits", "SpecError", "run_sweep",
           "run_cell", "SweepResult", "ResultStore", "StoreError", "report", "summarise",
           "NETWORKS", "TASKS"]
