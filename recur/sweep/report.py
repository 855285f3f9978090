"""Reports of a results store: medians and spreads over seeds, tables, CSV/JSON, PNG plots.

Every row of the store belongs to one cell; its *factors* are the topology label, the task,
the rule (``-`` when the task takes none) and the value of each grid axis
(``"topology.n"``, ``"network.spectral_radius"``, ...). :func:`summarise` groups the rows by
the factors named in ``by`` (default: every factor that varies, and the topology), pooling
the seeds and any factor not named, and gives per metric the median and the interquartile
range :math:`[Q_{25}, Q_{75}]` of the finite values (``numpy.percentile``, linear
interpolation), with ``n`` (rows that finished) and ``errors`` (rows that raised).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from .store import ResultStore

__all__ = ["factors_of", "summarise", "format_table", "to_csv", "to_json", "plot", "report"]

FORMATS = ("table", "csv", "json")


def factors_of(record: dict) -> dict:
    """The factors of a stored row: topology, task, rule and each grid axis."""
    return {"topology": record["topology"], "task": record["task"], "rule": record["rule"],
            **record["axes"]}


def _available(records) -> list[str]:
    names = {}
    for r in records:
        for k in factors_of(r):
            names.setdefault(k, None)
    return list(names)


def default_by(records) -> list[str]:
    """Every factor with more than one value, and the topology."""
    out = []
    for name in _available(records):
        values = {json.dumps(factors_of(r).get(name)) for r in records}
        if name == "topology" or len(values) > 1:
            out.append(name)
    return out


def _metric_names(records) -> list[str]:
    names = {}
    for r in records:
        for k in r["metrics"]:
            names.setdefault(k, None)
    return list(names)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summarise(records: list[dict], by=None, metrics=None) -> list[dict]:
    """Median and interquartile range over the rows of each group.

    Parameters
    ----------
    records : list of dict
        Rows of :meth:`ResultStore.records` (one spec).
    by : list of str, optional
        Factors to group by (default :func:`default_by`).
    metrics : list of str, optional
        Metrics to summarise (default: all found).

    Returns
    -------
    list of dict
        One per group, sorted by factor (numbers in numeric order, labels in the order first
        seen): the ``by`` factors, ``n``, ``errors``, and for each metric ``m``: ``m`` (the
        median), ``m_q25`` and ``m_q75`` (NaN when the group has no finite value).

    Raises
    ------
    ValueError
        If ``by`` or ``metrics`` names something the records lack (the message lists what
        they have).
    """
    if not records:
        return []
    available = _available(records)
    by = default_by(records) if by is None else list(by)
    unknown = [b for b in by if b not in available]
    if unknown:
        raise ValueError(f"cannot group by {unknown}: the factors are {', '.join(available)}")
    found = _metric_names(records)
    metrics = found if metrics is None else list(metrics)
    missing = [m for m in metrics if m not in found]
    if missing:
        raise ValueError(f"no row has metrics {missing}; the metrics are {', '.join(found)}")

    first_seen: dict = {}
    groups: dict = {}
    for r in records:
        f = factors_of(r)
        key = tuple(json.dumps(f.get(b), sort_keys=True) for b in by)
        for b, k in zip(by, key):
            first_seen.setdefault((b, k), len(first_seen))
        groups.setdefault(key, []).append(r)

    def order(key):
        out = []
        for b, k in zip(by, key):
            v = json.loads(k)
            out.append((0, v, 0) if _is_number(v) else (1, 0, first_seen[(b, k)]))
        return out

    rows = []
    for key in sorted(groups, key=order):
        members = groups[key]
        ok = [r for r in members if r["status"] == "ok"]
        row = {b: json.loads(k) for b, k in zip(by, key)}
        row["n"] = len(ok)
        row["errors"] = len(members) - len(ok)
        for m in metrics:
            values = np.array([r["metrics"].get(m, math.nan) for r in ok], dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                q25, q50, q75 = np.percentile(values, [25, 50, 75])
                row[m], row[f"{m}_q25"], row[f"{m}_q75"] = float(q50), float(q25), float(q75)
            else:
                row[m] = row[f"{m}_q25"] = row[f"{m}_q75"] = math.nan
        rows.append(row)
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict], metrics=None) -> str:
    """A plain-text table: the factors, ``n``, ``errors`` and ``median [Q25, Q75]`` per
    metric."""
    if not rows:
        return "(no results)"
    metric_names = metrics or [k for k in rows[0] if f"{k}_q25" in rows[0]]
    skip = set(metric_names) | {f"{m}_{q}" for m in metric_names for q in ("q25", "q75")}
    factors = [k for k in rows[0] if k not in skip and k not in ("n", "errors")]
    header = factors + ["n"] + (["errors"] if any(r["errors"] for r in rows) else []) + \
        [f"{m} [IQR]" for m in metric_names]
    body = []
    for r in rows:
        cells = [_fmt(r[f]) for f in factors] + [str(r["n"])]
        if "errors" in header:
            cells.append(str(r["errors"]))
        for m in metric_names:
            if isinstance(r[m], float) and math.isnan(r[m]):
                cells.append("-")  # no finite value: the metric belongs to another task
            else:
                cells.append(f"{_fmt(r[m])} [{_fmt(r[f'{m}_q25'])}, {_fmt(r[f'{m}_q75'])}]")
        body.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    """The summary as CSV (one line per group; NaN written as ``nan``)."""
    if not rows:
        return ""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict]) -> str:
    """The summary as a JSON list (NaN written as null)."""
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
              for k, v in r.items()} for r in rows]
    return json.dumps(clean, indent=1, allow_nan=False)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot(records: list[dict], out, *, by=None, metrics=None, prefix="") -> list[Path]:
    """Metric against each numeric factor: one line per topology (and per value of any other
    grouping factor), median with the interquartile range shaded.

    Writes ``{prefix}{metric}_vs_{axis}.png`` into ``out`` for every metric and every factor
    of ``by`` whose values are all numbers and take at least two values. Returns the paths
    (empty without matplotlib or without a numeric factor).
    """
    from .. import plotting

    rows = summarise(records, by=by, metrics=metrics)
    if not rows or not plotting.have_matplotlib():
        return []
    metric_names = [k for k in rows[0] if f"{k}_q25" in rows[0]]
    skip = set(metric_names) | {f"{m}_{q}" for m in metric_names for q in ("q25", "q75")}
    factors = [k for k in rows[0] if k not in skip and k not in ("n", "errors")]
    numeric = [f for f in factors if all(_is_number(r[f]) for r in rows)
               and len({r[f] for r in rows}) > 1]
    paths = []
    for x in numeric:
        others = [f for f in factors if f != x]
        lines: dict = {}
        for r in rows:
            label = ", ".join(str(r[f]) if f == "topology" else f"{f}={r[f]}" for f in others)
            lines.setdefault(label or "all", []).append(r)
        for m in metric_names:
            fig = plotting.new_figure(figsize=(6.4, 4.2))
            ax = fig.subplots()
            drawn = 0
            for label, pts in lines.items():
                if all(math.isnan(p[m]) for p in pts):
                    continue  # the metric belongs to another task
                drawn += 1
                pts = sorted(pts, key=lambda r: r[x])
                xs = [p[x] for p in pts]
                (line,) = ax.plot(xs, [p[m] for p in pts], "o-", label=label, ms=4)
                ax.fill_between(xs, [p[f"{m}_q25"] for p in pts],
                                [p[f"{m}_q75"] for p in pts], color=line.get_color(),
                                alpha=0.2, lw=0)
            ax.set_xlabel(x)
            ax.set_ylabel(f"{m} (median, IQR over seeds)")
            if drawn > 1 or others:
                ax.legend(fontsize="small")
            path = Path(out) / f"{prefix}{_safe(m)}_vs_{_safe(x)}.png"
            paths.append(plotting.save_figure(fig, path))
    return paths


def report(store, *, by=None, fmt: str = "table", out=None, spec: str | None = None,
           metrics=None) -> str:
    """Summarise a results file; returns the text (table, CSV or JSON).

    Parameters
    ----------
    store : path
        A results file written by :func:`recur.sweep.run_sweep`.
    by : list of str or str, optional
        Factors to group by (a comma-separated string is split).
    fmt : {"table", "csv", "json"}
    out : path, optional
        Folder for PNG plots and ``summary.{csv,json,txt}``.
    spec : str, optional
        A spec hash (or a prefix of one) when the store holds several specs; default all.
    metrics : list of str, optional

    Raises
    ------
    ValueError
        For an unknown format, factor, metric or spec.
    recur.sweep.StoreError
        If ``store`` is not a recur results file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if isinstance(by, str):
        by = [b.strip() for b in by.split(",") if b.strip()]
    with ResultStore(store, readonly=True) as results:
        specs = results.specs()
        if spec is not None:
            specs = [s for s in specs if s["spec_hash"].startswith(spec)]
            if not specs:
                raise ValueError(f"no spec in {store} has a hash starting with {spec!r}")
        parts, flat = [], []
        for s in specs:
            records = results.records(s["spec_hash"])
            if not records:
                continue
            rows = summarise(records, by=by, metrics=metrics)
            tag = s["spec_hash"][:12]
            if fmt == "table":
                title = (f"{s['name']} (spec {tag}, {len(records)} rows, median [IQR] over "
                         "seeds)")
                parts.append(f"{title}\n{format_table(rows)}")
            else:
                flat.extend({"spec": tag, **r} for r in rows)
            if out is not None:
                plot(records, out, by=by, metrics=metrics,
                     prefix=f"{tag}_" if len(specs) > 1 else "")
    if fmt == "json":
        text = to_json(flat)
    elif fmt == "csv":
        text = to_csv(flat)
    else:
        text = "\n\n".join(parts) if parts else "(no results)"
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        ext = {"table": "txt"}.get(fmt, fmt)
        (Path(out) / f"summary.{ext}").write_text(text + ("\n" if fmt == "table" else ""),
                                                  encoding="utf-8")
    return text
