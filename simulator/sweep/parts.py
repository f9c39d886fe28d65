"""Turning a sweep file's entries into axes, metrics and a goal, collecting every problem with its line."""

from __future__ import annotations

import math
from typing import Any

from ..durations import format_duration, parse_duration
from ..errors import Problem
from ..scenario import Scenario
from ..schema.thresholds import ThresholdSyntaxError, parse_expression, parse_key, threshold_problems
from .model import Axis, AxisSpec, FindSpec, Goal, MetricSpec, RangeSpec, SweepSpec
from .paths import PathError, Target, parse_target

__all__ = ["make_axis", "make_metrics", "make_goal", "default_name"]


def _unit(values: list[Any], target: Target) -> str:
    if target.duration:
        return "duration"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    if all(isinstance(v, str) for v in values):
        try:
            for v in values:
                float(v)
        except ValueError:
            pass
        else:
            return "text"
        try:
            for v in values:
                parse_duration(v)
        except ValueError:
            return "text"
        return "duration"
    return "text"


def _range_values(r: RangeSpec) -> tuple[list[Any], bool]:
    """The values of a range, and whether they are durations (seconds); ``ValueError`` says what is wrong."""
    ends: list[Any] = [r.start, r.to, *([r.step] if r.step is not None else [])]
    durations = any(isinstance(v, str) for v in ends)
    lo, hi = (parse_duration(v) if durations else float(v) for v in (r.start, r.to))
    if hi < lo:
        raise ValueError(f"the range runs backwards: from {r.start} to {r.to}; put the smaller value first")
    if r.count is not None:
        values = [lo + (hi - lo) * i / (r.count - 1) for i in range(r.count)]
    else:
        step = parse_duration(r.step) if durations else float(r.step)  # type: ignore[arg-type]
        if step <= 0:
            raise ValueError(f"step must be more than 0, got {r.step!r}")
        n = math.floor((hi - lo) / step + 1e-9) + 1
        if n > 10000:
            raise ValueError(f"{n} values; at most 10000 (raise the step)")
        values = [lo + step * i for i in range(n)]
    whole = all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in ends) and not durations
    return ([round(v) for v in values] if whole else values), durations


def make_axis(
    spec: AxisSpec, loc: tuple[Any, ...], data: dict[str, Any], shown: str, line: int | None, problems: list[Problem]
) -> Axis | None:
    where = ".".join(map(str, loc))
    try:
        target = parse_target(spec.path, data)
    except PathError as exc:
        problems.append(Problem(shown, line, f"{where}.path", f"{spec.path}: {exc}"))
        return None
    if spec.range is not None:
        try:
            values, durations = _range_values(spec.range)
        except ValueError as exc:
            problems.append(Problem(shown, line, f"{where}.range", str(exc)))
            return None
        unit = "duration" if durations or target.duration else "number"
        if durations and not target.duration:
            values = [format_duration(v) for v in values]
    else:
        values = list(spec.values or [])
        unit = _unit(values, target)
        if target.duration:
            for v in values:
                try:
                    if parse_duration(v) <= 0:
                        raise ValueError(f"an outage's length must be more than 0, got {v!r}")
                except ValueError as exc:
                    problems.append(Problem(shown, line, f"{where}.values", str(exc)))
                    return None
    name = spec.name or default_name(spec.path)
    return Axis(name, target, tuple(values), unit, line, where)


def default_name(path: str) -> str:
    if path.strip().startswith("outage("):
        return "outage"
    last = path.rsplit(".", 1)[-1].strip('"')
    return last


def make_metrics(spec: SweepSpec, base: Scenario, shown: str, at: Any, problems: list[Problem]) -> list[MetricSpec]:
    entries: list[tuple[str, str | None, tuple[Any, ...]]] = []
    if isinstance(spec.metrics, dict):
        entries = [(k, v, ("metrics", k)) for k, v in spec.metrics.items()]
    else:
        for i, m in enumerate(spec.metrics):
            if isinstance(m, str):
                entries.append((m, None, ("metrics", i)))
            else:
                entries += [(k, v, ("metrics", i)) for k, v in m.items()]
    out = []
    for key, agg, loc in entries:
        metric = _metric(key, agg, base, shown, at(*loc), ".".join(map(str, loc)), problems)
        if metric is not None:
            out.append(metric)
    return out


def _metric(
    key: str, agg: str | None, base: Scenario, shown: str, line: int | None, where: str, problems: list[Problem]
) -> MetricSpec | None:
    try:
        metric, _ = parse_key(key)
    except ThresholdSyntaxError as exc:
        problems.append(Problem(shown, line, where, str(exc)))
        return None
    if agg is None:
        if metric.kind == "trend":
            problems.append(
                Problem(
                    shown,
                    line,
                    where,
                    f"{metric.name} is a trend: say how to aggregate it, e.g. {{{key}: max}} (avg, min, max, med or p(N))",
                )
            )
            return None
        agg = "count" if metric.kind == "counter" else "rate"
    zero = "0s" if metric.unit == "duration" else "0"
    expression = f"{agg}>={zero}"
    found = threshold_problems(base.model_copy(update={"thresholds": {key: [expression]}}))
    if found:
        problems.append(Problem(shown, line, where, found[0][1].replace(expression, agg)))
        return None
    threshold = parse_expression(key, 0, expression)
    column = key if metric.kind != "trend" else f"{key}.{threshold.aggregation}"
    return MetricSpec(column, threshold, line)


def make_goal(
    find: FindSpec,
    base: Scenario,
    data: dict[str, Any],
    shown: str,
    at: Any,
    problems: list[Problem],
    metrics: list[MetricSpec],
    names: list[str],
) -> Goal | None:
    line = at("find")
    try:
        target_path = parse_target(find.axis, data)
    except PathError as exc:
        problems.append(Problem(shown, at("find", "axis"), "find.axis", f"{find.axis}: {exc}"))
        return None
    raw = list(find.range)
    durations = target_path.duration or any(isinstance(v, str) for v in raw)
    try:
        lo, hi = (parse_duration(v) if durations else float(v) for v in raw)
    except ValueError as exc:
        problems.append(Problem(shown, at("find", "range"), "find.range", str(exc)))
        return None
    if hi <= lo:
        problems.append(
            Problem(
                shown,
                at("find", "range"),
                "find.range",
                f"the range runs backwards or is empty: {raw}; write [low, high]",
            )
        )
        return None
    integer = not durations and all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in raw)
    if find.resolution is not None:
        try:
            resolution = parse_duration(find.resolution) if durations else float(find.resolution)
        except ValueError as exc:
            problems.append(Problem(shown, at("find", "resolution"), "find.resolution", str(exc)))
            return None
    else:
        resolution = 1.0 if integer else (hi - lo) / 100
    try:
        target = parse_expression(find.metric, 0, find.target)
    except ThresholdSyntaxError as exc:
        problems.append(Problem(shown, at("find", "target"), "find", str(exc)))
        return None
    agg = target.aggregation
    metric = _metric(find.metric, agg, base, shown, at("find", "metric"), "find.metric", problems)
    if metric is None:
        return None
    if not any(m.column == metric.column for m in metrics):
        metrics.append(metric)
    name = find.name or default_name(find.axis)
    if name in names:
        problems.append(
            Problem(
                shown,
                at("find", "axis"),
                "find.axis",
                f"an axis is already called {name!r}; give the goal's axis a name: (name: ...)",
            )
        )
        return None
    ends: tuple[Any, Any]
    if durations and not target_path.duration:
        ends = (format_duration(lo), format_duration(hi))
    elif integer:
        ends = (int(lo), int(hi))
    else:
        ends = (lo, hi)
    unit = "duration" if durations else "number"
    axis = Axis(name, target_path, ends, unit, at("find", "axis"), "find.axis")
    return Goal(axis, lo, hi, integer, resolution, target, metric, find.want, find.across, line)
