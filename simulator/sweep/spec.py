"""Sweep files: a base scenario, axes over its fields, seeds, metrics and an optional goal.

::

    name: recovery-capacity
    scenario: ../recovery-storm-undersized.yaml    # relative to this file
    seeds: 5                                       # the scenario's seed and the next 4; or a list
    axes:                                          # every combination (a product) ...
      - {path: timeline.fault@mx.fault.per_minute, values: [10, 20, 40]}
      - {path: outage(down@mx), range: {from: 6h, to: 24h, step: 6h}}
      - zip:                                       # ... except a zip, whose axes move together
          - {path: senders.postfix.count, values: [2, 4]}
          - {path: senders.exim.count, values: [1, 2]}
    metrics: [stranded, delivered_ratio, {recovery_drain_time: max}]
    find: {axis: timeline.fault@mx.fault.per_minute, range: [5, 500],
           metric: recovery_drain_time, target: "max<=2h"}

Paths are those of ``simulator.sweep.paths``. Every mistake is reported as
``sweep.yaml:LINE: where: what to change``; a variant that the scenario
schema rejects is reported at the line of the axis that made it (with the
scenario's own message), so the sweep file says where to look.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ..durations import format_duration, parse_duration
from ..errors import Problem, ScenarioError
from ..loader import line_of, load_scenario, schema_problems
from ..scenario import Scenario
from ..schema.thresholds import METRICS, Threshold, ThresholdSyntaxError, parse_expression, parse_key, threshold_problems
from ..schema.validate import validate
from .paths import PathError, Target, fresh, parse_target

__all__ = ["SweepSpec", "Sweep", "Axis", "Point", "MetricSpec", "Goal", "load_sweep", "run_key"]

MAX_POINTS = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Number = float | str


class RangeSpec(_Model):
    """Evenly spaced values from ``from`` to ``to`` (both included) by ``step``, or ``count`` of them."""

    start: Number = Field(alias="from")
    to: Number
    step: Number | None = None
    count: int | None = Field(None, ge=2, le=10000)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> RangeSpec:
        if (self.step is None) == (self.count is None):
            raise PydanticCustomError("range", "give step (e.g. step: 5) or count (e.g. count: 10), not both")
        return self


class AxisSpec(_Model):
    """One axis: a path into the scenario and its values (a list or a range)."""

    path: str
    name: str | None = None
    values: list[Any] | None = Field(None, min_length=1)
    range: RangeSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> AxisSpec:
        if (self.values is None) == (self.range is None):
            raise PydanticCustomError("axis", "give values (a list) or range ({from: 5, to: 50, step: 5}), not both")
        return self


class ZipSpec(_Model):
    """Axes that move together: the first values of each, then the second values, ..."""

    zip: list[AxisSpec] = Field(min_length=2)


class FindSpec(_Model):
    """Goal seeking: the smallest (or largest) value of an axis whose runs meet a target."""

    axis: str
    name: str | None = None
    range: list[Number] = Field(min_length=2, max_length=2)
    metric: str
    target: str
    want: Literal["smallest", "largest"] = "smallest"
    across: Literal["all", "mean"] = "all"
    resolution: Number | None = None


class SweepSpec(_Model):
    """A sweep file as written."""

    name: str | None = None
    description: str = ""
    scenario: str
    seeds: int | list[int] = 1
    transport: Literal["memory", "wire"] = "memory"
    axes: list[ZipSpec | AxisSpec] = Field(default_factory=list)
    metrics: list[str | dict[str, str]] | dict[str, str] = Field(default_factory=list)
    find: FindSpec | None = None
    keep: bool = False

    @model_validator(mode="after")
    def _seeds(self) -> SweepSpec:
        if isinstance(self.seeds, int) and not 1 <= self.seeds <= 10000:
            raise PydanticCustomError("seeds", "seeds is a number of seeds from 1 to 10000, or a list of seeds")
        if isinstance(self.seeds, list) and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise PydanticCustomError("seeds", "a list of seeds needs at least one seed and no seed twice")
        return self


@dataclass(frozen=True)
class Axis:
    """An axis ready to use: its target in the scenario, the values written there, and how to show them."""

    name: str
    target: Target
    values: tuple[Any, ...]  #: what goes into the scenario data
    unit: str  #: number, duration or text
    line: int | None
    where: str  #: ``axes.0`` or ``axes.1.zip.0``

    def column(self, value: Any) -> float | int | str:
        """The value as it goes in a results column: numbers, durations in seconds, text otherwise."""
        return column_value(value, self.unit)

    def shown(self, value: Any) -> str:
        """The value for people (``6h``, ``40``, ``postfix``)."""
        return show_value(self.column(value), self.unit)


def column_value(value: Any, unit: str) -> float | int | str:
    """*value* as a results column holds it under *unit*."""
    if unit == "duration":
        return parse_duration(value)
    if unit == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def show_value(value: Any, unit: str) -> str:
    """A column value for people."""
    if unit == "duration" and isinstance(value, (int, float)):
        return "never" if math.isinf(value) else format_duration(round(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Point:
    """One combination of axis values."""

    index: int
    values: tuple[tuple[Axis, Any], ...]

    def columns(self) -> dict[str, Any]:
        """Axis name -> column value."""
        return {axis.name: axis.column(v) for axis, v in self.values}

    def label(self) -> str:
        """``per_minute=40, outage=6h``."""
        return ", ".join(f"{axis.name}={axis.shown(v)}" for axis, v in self.values) or "base"


@dataclass(frozen=True)
class MetricSpec:
    """A metric to collect: its column name and the threshold-shaped question that reads it from an analysis."""

    column: str
    threshold: Threshold
    line: int | None


@dataclass(frozen=True)
class Goal:
    """The goal of a ``find:``: the axis searched, its range, and the target its runs must meet."""

    axis: Axis
    low: float
    high: float
    integer: bool
    resolution: float
    target: Threshold
    metric: MetricSpec
    want: str
    across: str
    line: int | None


@dataclass
class Sweep:
    """A loaded sweep: the base scenario, the grid of points, seeds, metrics and an optional goal."""

    spec: SweepSpec
    name: str
    shown: str
    source: Path
    base: Scenario
    base_path: Path
    base_shown: str
    base_data: dict[str, Any]
    base_root: yaml.Node | None
    axes: list[Axis]
    points: list[Point]
    seeds: list[int]
    metrics: list[MetricSpec]
    goal: Goal | None = None
    _variants: dict[tuple[Any, ...], Scenario] = field(default_factory=dict, repr=False)

    def variant(self, values: tuple[tuple[Axis, Any], ...]) -> Scenario:
        """The base scenario with these axis values, validated; ``ScenarioError`` at the sweep file's lines."""
        cache_key = tuple((a.name, json.dumps(v, sort_keys=True, default=str)) for a, v in values)
        if cache_key in self._variants:
            return self._variants[cache_key]
        data = fresh(self.base_data)
        problems: list[Problem] = []
        for axis, value in values:
            try:
                axis.target.apply(data, value)
            except (PathError, ValueError) as exc:
                problems.append(Problem(self.shown, axis.line, axis.where, f"{axis.name}={value!r}: {exc}"))
        if problems:
            raise ScenarioError(problems)
        try:
            scenario = Scenario.model_validate(data)
        except ValidationError as exc:
            found = schema_problems(exc, self.base_shown, self.base_root)
        else:
            scenario._source = self.base_path
            found = validate(scenario, root=self.base_root, shown=self.base_shown)
        if found:
            raise ScenarioError(_dedupe([self._blame(p, values) for p in found]))
        self._variants[cache_key] = scenario
        return scenario

    def _blame(self, problem: Problem, values: tuple[tuple[Axis, Any], ...]) -> Problem:
        """A variant's problem, told at the line of the axis whose value caused it."""
        loc = tuple(int(p) if p.isdigit() else p for p in problem.path.split(".")) if problem.path else ()
        guilty = [(a, v) for a, v in values if a.target.touches(loc)] or list(values)
        axis, value = guilty[0]
        setting = ", ".join(f"{a.name}={a.shown(v)}" for a, v in guilty)
        where = f"{problem.path}: " if problem.path else ""
        return Problem(
            self.shown,
            axis.line,
            axis.where,
            f"with {setting} the scenario is invalid: {where}{problem.message} ({problem.file})",
        )

    def check_variants(self) -> None:
        """Build every point's variant once, so that a bad value stops the sweep before anything runs."""
        problems: list[Problem] = []
        values: list[tuple[tuple[Axis, Any], ...]] = [p.values for p in self.points]
        if self.goal is not None:
            g = self.goal
            ends = [(g.axis, g.axis.values[0]), (g.axis, g.axis.values[1])]
            values = [(*p, end) for p in values for end in ends]
        for v in values:
            try:
                self.variant(v)
            except ScenarioError as exc:
                problems += exc.problems
        if problems:
            raise ScenarioError(_dedupe(problems))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def run_key(scenario: Scenario, seed: int, transport: str, version: str) -> str:
    """The identity of one run: a hash of the variant (and the traffic files it reads), the seed,
    the transport and the tool's version. ``--resume`` skips runs whose key is already in the journal."""
    files: dict[str, str] = {}
    base = scenario.source.parent if scenario.source is not None else Path.cwd()
    for group in scenario.senders:
        if group.traffic.csv is not None:
            path = base / group.traffic.csv
            try:
                files[group.traffic.csv] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                files[group.traffic.csv] = "unreadable"
    document = {
        "scenario": scenario.model_dump(mode="json", by_alias=True),
        "files": files,
        "seed": seed,
        "transport": transport,
        "version": version,
    }
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ---------------------------------------------------------------- loading
def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file: every problem with file and line (``ScenarioError``)."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(shown, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(shown, None, "", f"cannot read it: {exc}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([Problem(shown, mark.line + 1 if mark else None, "", f"not valid YAML: {problem}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(shown, 1, "", "a sweep is a YAML mapping with scenario, axes, seeds and metrics")])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(schema_problems(exc, shown, root, SweepSpec)) from None

    def at(*loc: Any) -> int | None:
        return line_of(root, loc)

    base_path = (path.parent / spec.scenario).resolve()
    base_shown = str(path.parent / spec.scenario)
    try:
        base = load_scenario(base_shown)
    except ScenarioError as exc:
        if not base_path.exists():
            raise ScenarioError(
                [Problem(shown, at("scenario"), "scenario", f"no scenario file {base_shown} (paths are relative to the sweep file)")]
            ) from None
        raise
    base_text = base_path.read_text(encoding="utf-8")
    base_data = yaml.safe_load(base_text)
    base_root = yaml.compose(base_text, Loader=yaml.SafeLoader)
    problems: list[Problem] = []
    groups: list[list[Axis]] = []
    for i, entry in enumerate(spec.axes):
        members = [(s, ("axes", i, "zip", j)) for j, s in enumerate(entry.zip)] if isinstance(entry, ZipSpec) else [(entry, ("axes", i))]
        group = []
        for axis_spec, loc in members:
            axis = _axis(axis_spec, loc, base_data, shown, at(*loc), problems)
            if axis is not None:
                group.append(axis)
        if isinstance(entry, ZipSpec) and len(group) == len(members):
            sizes = {len(a.values) for a in group}
            if len(sizes) > 1:
                listed = ", ".join(f"{a.name} {len(a.values)}" for a in group)
                problems.append(Problem(shown, at("axes", i), f"axes.{i}.zip", f"zipped axes need as many values each; got {listed}"))
        groups.append(group)
    axes = [a for g in groups for a in g]
    names = [a.name for a in axes]
    for a in axes:
        if names.count(a.name) > 1:
            problems.append(Problem(shown, a.line, a.where, f"two axes are called {a.name!r}; give one a name: (name: ...)"))
    metrics = _metrics(spec, base, shown, at, problems)
    goal = None
    if spec.find is not None:
        goal = _goal(spec.find, base, base_data, shown, at, problems, metrics, names)
    if isinstance(spec.seeds, int):
        seeds = [base.seed + i for i in range(spec.seeds)]
    else:
        seeds = list(spec.seeds)
    points: list[Point] = []
    if not problems:
        combos = itertools.product(*[list(zip(*[[(a, v) for v in a.values] for a in g], strict=True)) for g in groups if g])
        size = math.prod(len(g[0].values) for g in groups if g)
        if size * len(seeds) > MAX_POINTS:
            problems.append(Problem(shown, at("axes"), "axes", f"{size} points x {len(seeds)} seeds is more than {MAX_POINTS} runs; narrow the axes"))
        else:
            points = [Point(i, tuple(pair for part in combo for pair in part)) for i, combo in enumerate(combos)]
    if not metrics and goal is None and not problems:
        problems.append(Problem(shown, 1, "metrics", "name the metrics to collect, e.g. metrics: [stranded, delivered_ratio]"))
    if problems:
        raise ScenarioError(_dedupe(problems))
    sweep = Sweep(
        spec=spec,
        name=spec.name or path.stem,
        shown=shown,
        source=path.resolve(),
        base=base,
        base_path=base_path,
        base_shown=base_shown,
        base_data=base_data,
        base_root=base_root,
        axes=axes,
        points=points,
        seeds=seeds,
        metrics=metrics,
        goal=goal,
    )
    sweep.check_variants()
    return sweep


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
    return ([int(round(v)) for v in values] if whole else values), durations


def _axis(spec: AxisSpec, loc: tuple[Any, ...], data: dict[str, Any], shown: str, line: int | None, problems: list[Problem]) -> Axis | None:
    where = ".".join(map(str, loc))
    try:
        target = parse_target(spec.path, data)
    except PathError as exc:
        problems.append(Problem(shown, line_of_key(line), f"{where}.path", f"{spec.path}: {exc}"))
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
    name = spec.name or _default_name(spec.path)
    return Axis(name, target, tuple(values), unit, line, where)


def line_of_key(line: int | None) -> int | None:
    """The line of an axis's path (the axis's own line: flow mappings keep it on one)."""
    return line


def _default_name(path: str) -> str:
    if path.strip().startswith("outage("):
        return "outage"
    last = path.rsplit(".", 1)[-1].strip('"')
    return last


def _metrics(spec: SweepSpec, base: Scenario, shown: str, at: Any, problems: list[Problem]) -> list[MetricSpec]:
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


def _metric(key: str, agg: str | None, base: Scenario, shown: str, line: int | None, where: str, problems: list[Problem]) -> MetricSpec | None:
    try:
        metric, _ = parse_key(key)
    except ThresholdSyntaxError as exc:
        problems.append(Problem(shown, line, where, str(exc)))
        return None
    if agg is None:
        if metric.kind == "trend":
            problems.append(
                Problem(shown, line, where, f"{metric.name} is a trend: say how to aggregate it, e.g. {{{key}: max}} (avg, min, max, med or p(N))")
            )
            return None
        agg = "count" if metric.kind == "counter" else "rate"
    zero = "0s" if metric.unit == "duration" else "0"
    expression = f"{agg}>={zero}"
    for loc, message in threshold_problems(base.model_copy(update={"thresholds": {key: [expression]}})):
        problems.append(Problem(shown, line, where, message.replace(expression, agg)))
        return None
    threshold = parse_expression(key, 0, expression)
    column = key if metric.kind != "trend" else f"{key}.{threshold.aggregation}"
    return MetricSpec(column, threshold, line)


def _goal(find: FindSpec, base: Scenario, data: dict[str, Any], shown: str, at: Any, problems: list[Problem], metrics: list[MetricSpec], names: list[str]) -> Goal | None:
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
        problems.append(Problem(shown, at("find", "range"), "find.range", f"the range runs backwards or is empty: {raw}; write [low, high]"))
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
    name = find.name or _default_name(find.axis)
    if name in names:
        problems.append(Problem(shown, at("find", "axis"), "find.axis", f"an axis is already called {name!r}; give the goal's axis a name: (name: ...)"))
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


def goal_value(goal: Goal, x: float) -> Any:
    """The value written into the scenario for the searched axis at *x*."""
    if goal.integer:
        return int(round(x))
    if goal.axis.unit == "duration" and not goal.axis.target.duration:
        return format_duration(round(x))
    return x


def metric_names() -> list[str]:
    """Every metric a sweep may collect."""
    return list(METRICS)
