"""A sweep's results as tables: one row per run, and per point the mean and a 95% confidence interval.

``runs.parquet`` / ``runs.csv``: point, the axes, seed, each metric, messages,
wall_seconds, key. ``points.parquet`` / ``points.csv``: point, the axes, runs,
then per metric ``M.mean``, ``M.ci_low``, ``M.ci_high`` (Student's t over the
seeds; empty with one seed), ``M.min``, ``M.max``. A metric that is infinite
in some run (a backlog that never drained) has an infinite mean and no
interval. Both are written with pyarrow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy import stats

__all__ = ["mean_ci", "point_table", "write_table", "read_table"]


def mean_ci(values: list[float | None], level: float = 0.95, upper: float | None = None) -> dict[str, float | None]:
    """Mean, Student's-t confidence interval, min and max of the known *values*.

    The interval is kept within what the metric can be: never below 0 for values
    that are never negative (counts, durations, ratios), never above *upper*.
    """
    known = [float(v) for v in values if v is not None and not math.isnan(v)]
    out: dict[str, float | None] = {
        "mean": None,
        "ci_low": None,
        "ci_high": None,
        "min": None,
        "max": None,
        "n": float(len(known)),
    }
    if not known:
        return out
    out["min"], out["max"] = min(known), max(known)
    if any(math.isinf(v) for v in known):
        out["mean"] = math.inf if any(v == math.inf for v in known) else -math.inf
        return out
    n = len(known)
    mean = sum(known) / n
    out["mean"] = mean
    if n > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in known) / (n - 1))
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        if min(known) >= 0:
            low = max(low, 0.0)
        if upper is not None:
            high = min(high, upper)
        out["ci_low"], out["ci_high"] = low, high
    return out


def point_table(
    runs: list[dict[str, Any]], axes: list[str], metrics: list[str], upper: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """One row per point (its runs grouped), with each metric's mean, interval, min and max over the seeds
    (*upper*: the largest value a metric can take, by column, e.g. 1 for a ratio)."""
    by_point: dict[int, list[dict[str, Any]]] = {}
    for row in runs:
        by_point.setdefault(row["point"], []).append(row)
    out = []
    for point in sorted(by_point):
        rows = by_point[point]
        entry: dict[str, Any] = {"point": point, **{a: rows[0].get(a) for a in axes}, "runs": len(rows)}
        for m in metrics:
            summary = mean_ci([r.get(m) for r in rows], upper=(upper or {}).get(m))
            for k in ("mean", "ci_low", "ci_high", "min", "max"):
                entry[f"{m}.{k}"] = summary[k]
        out.append(entry)
    return out


def _column(values: list[Any]) -> pa.Array:
    known = [v for v in values if v is not None]
    if known and all(isinstance(v, bool) for v in known):
        return pa.array(values, type=pa.bool_())
    if known and all(isinstance(v, int) and not isinstance(v, bool) for v in known):
        return pa.array(values, type=pa.int64())
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in known):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def write_table(rows: list[dict[str, Any]], columns: list[str], stem: Path) -> list[Path]:
    """Write *rows* as ``STEM.parquet`` and ``STEM.csv`` with these *columns*, in order."""
    table = pa.table({c: _column([r.get(c) for r in rows]) for c in columns})
    parquet, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    pq.write_table(table, parquet)
    pacsv.write_csv(table, csv)
    return [parquet, csv]


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a Parquet file as dictionaries."""
    table: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return table
