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
scenario's own message), so the sweep file says where to look. The base
scenario's thresholds are left out of its variants: a sweep reads its own metrics.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import Problem, ScenarioError
from ..loader import duplicate_keys, line_of, load_scenario, schema_problems
from ..scenario import Scenario
from ..schema.library import resolve
from ..schema.validate import validate
from .model import Axis, Goal, MetricSpec, Point, SweepSpec, ZipSpec, column_value, goal_value, show_value
from .parts import make_axis, make_goal, make_metrics
from .paths import PathError, fresh

__all__ = [
    "SweepSpec",
    "Sweep",
    "Axis",
    "Point",
    "MetricSpec",
    "Goal",
    "load_sweep",
    "run_key",
    "goal_value",
    "show_value",
    "column_value",
]

MAX_POINTS = 100_000


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
        data.pop("thresholds", None)  # a sweep reads its own metrics; the base's pass/fail checks do not apply
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
        touching = [(a, v) for a, v in values if a.target.touches(loc)]
        # a field set by an axis is more to blame than an outage that moved the entry holding it
        guilty = [(a, v) for a, v in touching if not a.target.duration] or touching or list(values)
        axis = guilty[0][0]
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
            raise ScenarioError(sorted(_dedupe(problems), key=lambda p: p.line or 0))


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
        raise ScenarioError(
            [Problem(shown, mark.line + 1 if mark else None, "", f"not valid YAML: {problem}")]
        ) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(shown, 1, "", "a sweep is a YAML mapping with scenario, axes, seeds and metrics")])
    twice = duplicate_keys(root, shown)
    if twice:
        raise ScenarioError(twice)
    if "scenario" not in data and {"servers", "senders"} <= set(data):
        raise ScenarioError(
            [Problem(shown, 1, "", "this is a scenario, not a sweep; a sweep file names it: scenario: " + path.name)]
        )
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(schema_problems(exc, shown, root, SweepSpec)) from None

    def at(*loc: Any) -> int | None:
        return line_of(root, loc)

    if spec.scenario.startswith("incident:"):  # a scenario of the incident library
        base_path = resolve(spec.scenario).resolve()
        base_shown = str(resolve(spec.scenario))
    else:
        base_path = (path.parent / spec.scenario).resolve()
        base_shown = str(path.parent / spec.scenario)
    try:
        base = load_scenario(base_shown)
    except ScenarioError:
        if not base_path.exists():
            raise ScenarioError(
                [
                    Problem(
                        shown,
                        at("scenario"),
                        "scenario",
                        f"no scenario file {base_shown} (paths are relative to the sweep file)",
                    )
                ]
            ) from None
        raise
    base_text = base_path.read_text(encoding="utf-8")
    base_data = yaml.safe_load(base_text)
    base_root = yaml.compose(base_text, Loader=yaml.SafeLoader)
    problems: list[Problem] = []
    groups: list[list[Axis]] = []
    for i, entry in enumerate(spec.axes):
        members = (
            [(s, ("axes", i, "zip", j)) for j, s in enumerate(entry.zip)]
            if isinstance(entry, ZipSpec)
            else [(entry, ("axes", i))]
        )
        group = []
        for axis_spec, loc in members:
            axis = make_axis(axis_spec, loc, base_data, shown, at(*loc), problems)
            if axis is not None:
                group.append(axis)
        if isinstance(entry, ZipSpec) and len(group) == len(members):
            sizes = {len(a.values) for a in group}
            if len(sizes) > 1:
                listed = ", ".join(f"{a.name} {len(a.values)}" for a in group)
                problems.append(
                    Problem(
                        shown, at("axes", i), f"axes.{i}.zip", f"zipped axes need as many values each; got {listed}"
                    )
                )
        groups.append(group)
    axes = [a for g in groups for a in g]
    names = [a.name for a in axes]
    for i, a in enumerate(axes):
        if a.name in names[:i]:
            problems.append(
                Problem(shown, a.line, a.where, f"two axes are called {a.name!r}; give one a name: (name: ...)")
            )
    metrics = make_metrics(spec, base, shown, at, problems)
    goal = None
    if spec.find is not None:
        goal = make_goal(spec.find, base, base_data, shown, at, problems, metrics, names)
    if isinstance(spec.seeds, int):
        seeds = [base.seed + i for i in range(spec.seeds)]
    else:
        seeds = list(spec.seeds)
    points: list[Point] = []
    if not problems:
        combos = itertools.product(
            *[list(zip(*[[(a, v) for v in a.values] for a in g], strict=True)) for g in groups if g]
        )
        size = math.prod(len(g[0].values) for g in groups if g)
        if size * len(seeds) > MAX_POINTS:
            problems.append(
                Problem(
                    shown,
                    at("axes"),
                    "axes",
                    f"{size} points x {len(seeds)} seeds is more than {MAX_POINTS} runs; narrow the axes",
                )
            )
        else:
            points = [Point(i, tuple(pair for part in combo for pair in part)) for i, combo in enumerate(combos)]
    if not metrics and goal is None and not problems:
        problems.append(
            Problem(shown, 1, "metrics", "name the metrics to collect, e.g. metrics: [stranded, delivered_ratio]")
        )
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
