"""Pass/fail thresholds on a run's metrics, written the way k6 writes them.

A scenario file may declare::

    thresholds:
      delivered_ratio: ["rate>0.99"]            # fraction of messages delivered
      stranded: ["count==0"]                     # messages only on a failed disk
      delivery_delay: ["p(95)<2h", "max<1d"]     # submission to the first 250
      delivery_delay{sender:postfix}: ["p(95)<2h"]
      bounced{window:2}: ["count<=5"]            # the 2nd window (or its label)
      recovery_drain_time: ["max<6h"]

A key is a metric name, optionally scoped with k6-style tags ``{tag:value,
...}``: ``sender`` (a sender group), ``policy`` (a retry policy name),
``window`` (a window label, quoted if it holds a comma, or its 1-based
number) and ``server`` (the destination server). Each expression is an
aggregation, an operator and a value: ``count`` for counters, ``rate`` for
ratios (``0.99`` or ``99%``), and ``avg``, ``min``, ``max``, ``med`` or
``p(N)`` for trends, whose values may be durations (``2h``, ``90m``).

Unknown metrics, tags and malformed expressions are errors when the file
loads (``threshold_problems``, called by ``check_semantics``), never a silent
pass. ``evaluate`` checks a finished run; a trend with no data fails.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from . import metrics
from .durations import format_duration, parse_duration

__all__ = [
    "METRICS",
    "Metric",
    "Threshold",
    "Outcome",
    "ThresholdList",
    "ThresholdSyntaxError",
    "parse_key",
    "parse_expression",
    "threshold_problems",
    "evaluate",
    "format_outcomes",
]

STATES = ("delivered", "stranded", "lost", "bounced", "queued")


@dataclass(frozen=True)
class Metric:
    """A measurable quantity: ``kind`` is counter, rate or trend; ``unit`` says how to read values."""

    name: str
    kind: str
    unit: str
    help: str
    recovery: bool = False


def _catalogue() -> dict[str, Metric]:
    found = [
        Metric("messages", "counter", "count", "messages submitted"),
        Metric("attempts", "counter", "count", "delivery attempts"),
        Metric("connections", "counter", "count", "attempts that reached a server"),
        Metric("duplicates", "counter", "count", "messages accepted more than once"),
        Metric("delay_warnings", "counter", "count", "delay warnings sent to originators"),
        Metric("turned_away", "counter", "count", "sessions a server turned away with 421 at a capacity limit"),
    ]
    for state in STATES:
        found.append(Metric(state, "counter", "count", f"messages whose final state is {state}"))
        found.append(Metric(f"{state}_ratio", "rate", "ratio", f"fraction of messages {state}"))
    found += [
        Metric("delivery_delay", "trend", "duration", "submission to the first 250, accepted messages"),
        Metric("availability_delay", "trend", "duration", "submission to readable on a live disk, delivered messages"),
        Metric("attempts_per_message", "trend", "number", "delivery attempts per message"),
        Metric("recovery_peak_attempts", "trend", "number", "the most SMTP sessions in one simulated minute while a recovery's backlog drains", True),
        Metric("recovery_drain_time", "trend", "duration", "time after a recovery until its whole backlog left the queues", True),
        Metric("recovery_backlog", "trend", "number", "messages waiting when a server came back", True),
    ]
    return {m.name: m for m in found}


METRICS: dict[str, Metric] = _catalogue()
"""Every metric a threshold may name."""

AGGREGATIONS = {"counter": ("count",), "rate": ("rate",), "trend": ("avg", "min", "max", "med", "p(N)")}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
TAGS = ("sender", "policy", "window", "server")

_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\{(.*)\})?\s*$", re.S)
_EXPR = re.compile(r"^\s*(count|rate|avg|min|max|med|p\(\s*([0-9.]+)\s*\))\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*$")
_TAG = re.compile(r'\s*([A-Za-z_]+)\s*:\s*(?:"([^"]*)"|\'([^\']*)\'|([^,"\']*?))\s*(?:,|$)')


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


ThresholdList = Annotated[list[str], BeforeValidator(_one_or_many)]
"""A threshold entry's expressions: a list of strings, or one string."""


@dataclass(frozen=True)
class Threshold:
    """One expression of one threshold key, parsed."""

    key: str
    index: int
    expression: str
    metric: Metric
    tags: tuple[tuple[str, str], ...]
    aggregation: str
    quantile: float | None
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        """Whether *observed* satisfies the expression."""
        return OPERATORS[self.op](observed, self.value)


@dataclass(frozen=True)
class Outcome:
    """A threshold checked against a run: what was observed and whether it passed."""

    threshold: Threshold
    observed: float | None
    ok: bool
    where: str

    @property
    def shown(self) -> str:
        """The observed value as a reader wants it (``1h23m``, ``0.9912 (99.1%)``, ``no data``)."""
        return format_value(self.threshold.metric, self.observed)


# ---------------------------------------------------------------- parsing
class ThresholdSyntaxError(ValueError):
    """A threshold key or expression that cannot be read; the message says what to write."""


def parse_key(key: str) -> tuple[Metric, tuple[tuple[str, str], ...]]:
    """Split ``delivery_delay{sender:postfix}`` into its metric and tags."""
    match = _KEY.match(key)
    if not match:
        raise ThresholdSyntaxError(f"cannot read {key!r}; write a metric name, optionally with tags: delivery_delay{{sender:postfix}}")
    name, body = match.group(1), match.group(2)
    if name not in METRICS:
        close = difflib.get_close_matches(name, METRICS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ThresholdSyntaxError(f"unknown metric {name!r}; {hint}metrics are: {', '.join(METRICS)}")
    tags: list[tuple[str, str]] = []
    if body is not None:
        pos = 0
        while pos < len(body) and body[pos:].strip():
            tag = _TAG.match(body, pos)
            if not tag or tag.end() == pos:
                raise ThresholdSyntaxError(f"cannot read the tags in {key!r}; write {{tag:value}}, e.g. {{sender:postfix}} or {{window:\"label, with comma\"}}")
            tname = tag.group(1)
            value = next(v for v in tag.group(2, 3, 4) if v is not None)
            if tname not in TAGS:
                raise ThresholdSyntaxError(f"unknown tag {tname!r} in {key!r}; tags are: {', '.join(TAGS)}")
            if not value:
                raise ThresholdSyntaxError(f"tag {tname!r} in {key!r} has no value")
            tags.append((tname, value))
            pos = tag.end()
        if not tags:
            raise ThresholdSyntaxError(f"empty tags in {key!r}; drop the braces or write {{sender:postfix}}")
    return METRICS[name], tuple(tags)


def _aggregations(metric: Metric) -> str:
    return ", ".join(AGGREGATIONS[metric.kind])


def parse_expression(key: str, index: int, expression: str) -> Threshold:
    """Parse one expression (``p(95)<2h``) of the threshold *key*."""
    metric, tags = parse_key(key)
    example = {"counter": "count==0", "rate": "rate>0.99", "trend": "p(95)<2h" if metric.unit == "duration" else "max<100"}[metric.kind]
    match = _EXPR.match(expression) if isinstance(expression, str) else None
    if not match:
        raise ThresholdSyntaxError(
            f"cannot read {expression!r}; write an aggregation, an operator and a value, e.g. {example} "
            f"({metric.name} takes {_aggregations(metric)})"
        )
    agg, q, op, raw = match.groups()
    quantile = None
    if q is not None:
        quantile = float(q)
        if not 0 <= quantile <= 100:
            raise ThresholdSyntaxError(f"p({q}) is not a percentile; use p(0) to p(100), e.g. p(95)")
        agg = f"p({q})"
    allowed = AGGREGATIONS[metric.kind]
    if (agg if quantile is None else "p(N)") not in allowed:
        if metric.kind == "counter" and agg == "rate" and metric.name in STATES:
            why = f"{metric.name} counts messages; for a fraction of messages use {metric.name}_ratio: [\"rate>0.99\"]"
        else:
            why = f"{agg!r} does not apply to {metric.name} (a {metric.kind}); use {_aggregations(metric)}, e.g. {example}"
        raise ThresholdSyntaxError(why)
    return Threshold(key, index, expression, metric, tags, agg, quantile, op, _value(metric, raw))


def _value(metric: Metric, raw: str) -> float:
    if metric.unit == "duration":
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise ThresholdSyntaxError(f"{metric.name} is a duration: {exc}") from None
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise ThresholdSyntaxError(f"expected a number after the operator, got {raw!r}") from None
    if percent:
        if metric.unit != "ratio":
            raise ThresholdSyntaxError(f"{metric.name} is not a ratio; write a plain number, not {raw!r}")
        value /= 100
    if metric.unit == "ratio" and not 0 <= value <= 1:
        raise ThresholdSyntaxError(f"a rate is between 0 and 1 (or 0% and 100%), got {raw!r}")
    return value


# ---------------------------------------------------------------- checking at load time
def _scenario_windows(s: Any) -> list[tuple[str, float, float]]:
    from .clock import SimClock

    clock = SimClock(s.clock)
    if s.windows:
        return [
            (w.label, 0.0 if w.start == "start" else clock.seconds(w.start), clock.end if w.end == "end" else clock.seconds(w.end))
            for w in s.windows
        ]
    marks = metrics.scenario_marks(s, clock.seconds)
    return metrics.incident_windows(marks, {v.name: v.initially for v in s.servers}, clock.end, lambda t: clock.datetime_at(t).strftime("%H:%M %m/%d"))


def _has_recovery(s: Any) -> bool:
    from .clock import SimClock

    clock = SimClock(s.clock)
    marks = metrics.scenario_marks(s, clock.seconds)
    intervals = metrics.server_intervals(marks, {v.name: v.initially for v in s.servers}, clock.end)
    return bool(metrics.recoveries(intervals))


def _policy_names(s: Any) -> set[str]:
    from .policies import build_policy

    return {build_policy(group.policy).name for group in s.senders}


def threshold_problems(s: Any) -> list[tuple[tuple[Any, ...], str]]:
    """``(location, message)`` for every threshold of scenario *s* that cannot be checked."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if not s.thresholds:
        return errors
    windows = _scenario_windows(s)
    policies = _policy_names(s)
    recovery = _has_recovery(s)
    known = {
        "sender": [g.name for g in s.senders],
        "policy": sorted(policies),
        "server": [v.name for v in s.servers],
    }
    for key, expressions in s.thresholds.items():
        try:
            metric, tags = parse_key(key)
        except ThresholdSyntaxError as exc:
            errors.append((("thresholds", key), str(exc)))
            continue
        if not expressions:
            errors.append((("thresholds", key), f"no expressions; write e.g. {key}: [\"{'count==0' if metric.kind == 'counter' else 'rate>0.99' if metric.kind == 'rate' else 'p(95)<2h'}\"]"))
        for tag, value in tags:
            if metric.recovery and tag != "server":
                errors.append((("thresholds", key), f"{metric.name} is measured per recovery; only the server tag applies"))
            elif tag == "window":
                if _window(windows, value) is None:
                    listed = "; ".join(f"{i} {label!r}" for i, (label, _, _) in enumerate(windows, 1))
                    errors.append((("thresholds", key), f"no window {value!r}; windows are: {listed}"))
            elif value not in known[tag]:
                errors.append((("thresholds", key), f"no {tag} {value!r}; {tag}s are: {', '.join(known[tag])}"))
        if metric.recovery and not recovery:
            errors.append((("thresholds", key), f"{metric.name} needs a recovery (a server coming back up), and the timeline has none"))
        for i, expression in enumerate(expressions):
            try:
                parse_expression(key, i, expression)
            except ThresholdSyntaxError as exc:
                errors.append((("thresholds", key, i), str(exc)))
    return errors


def _window(windows: list[tuple[str, float, float]], value: str) -> tuple[str, float, float] | None:
    for w in windows:
        if w[0] == value:
            return w
    if value.isdigit() and 1 <= int(value) <= len(windows):
        return windows[int(value) - 1]
    return None


# ---------------------------------------------------------------- evaluating a run
def parse_all(s: Any) -> list[Threshold]:
    """Every threshold of a loaded scenario, in file order."""
    return [parse_expression(key, i, expr) for key, exprs in s.thresholds.items() for i, expr in enumerate(exprs)]


def _lines(source: Path | None) -> Callable[[tuple[Any, ...]], str]:
    if source is None:
        return lambda loc: "thresholds"
    import yaml

    from .loader import line_of

    try:
        root = yaml.compose(source.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        root = None
    try:
        shown = source.relative_to(Path.cwd())
    except ValueError:
        shown = source
    return lambda loc: f"{shown}:{line_of(root, loc)}" if root is not None else str(shown)


def _samples(t: Threshold, result: Any, storms: list[metrics.Storm], destination: Callable[[Any], str]) -> list[float] | float | None:
    tags = dict(t.tags)
    name = t.metric.name
    if t.metric.recovery:
        chosen = [s for s in storms if "server" not in tags or s.server == tags["server"]]
        if name == "recovery_peak_attempts":
            return [float(s.peak_per_minute) for s in chosen]
        if name == "recovery_backlog":
            return [float(s.backlog) for s in chosen]
        return [math.inf if s.drained is None else s.drained for s in chosen]
    if name == "turned_away":
        return float(sum(n for server, n in result.turned_away.items() if "server" not in tags or server == tags["server"]))
    records = result.records
    if "sender" in tags:
        records = [r for r in records if r.group == tags["sender"]]
    if "policy" in tags:
        records = [r for r in records if r.policy == tags["policy"]]
    if "server" in tags:
        records = [r for r in records if destination(r) == tags["server"]]
    if "window" in tags:
        w = _window([(w.label, w.start, w.end) for w in result.windows], tags["window"])
        records = [r for r in records if w is not None and w[1] <= r.submitted_at < w[2]]
    if name == "messages":
        return float(len(records))
    if name in ("attempts", "connections", "delay_warnings"):
        return float(sum(getattr(r, name) for r in records))
    if name == "duplicates":
        return float(sum(1 for r in records if r.copies > 1))
    if name in STATES:
        return float(sum(1 for r in records if r.final_state == name))
    if name.endswith("_ratio"):
        state = name[: -len("_ratio")]
        return sum(1 for r in records if r.final_state == state) / len(records) if records else None
    if name == "delivery_delay":
        return [d for d in map(metrics.delivery_delay, records) if d is not None]
    if name == "availability_delay":
        return [d for d in map(metrics.availability_delay, records) if d is not None]
    return [float(r.attempts) for r in records]


def _aggregate(t: Threshold, samples: list[float] | float | None) -> float | None:
    if samples is None or isinstance(samples, float):
        return samples
    if not samples:
        return None
    if t.quantile is not None:
        return metrics.percentile(samples, t.quantile)
    if t.aggregation == "med":
        return metrics.percentile(samples, 50)
    if t.aggregation == "avg":
        return sum(samples) / len(samples)
    return float(min(samples) if t.aggregation == "min" else max(samples))


def destination_of(scenario: Any) -> Callable[[Any], str]:
    """Map a record to the server its recipient's domain routes to: the most preferred MX that is not a relay."""
    routes: dict[str, str] = {}
    for v in sorted(scenario.servers, key=lambda v: (v.relay is not None, v.preference)):
        for d in v.domains:
            routes.setdefault(d.lower(), v.name)
    first = scenario.servers[0].name
    return lambda r: routes.get(r.recipient.rpartition("@")[2].lower(), r.accepted_by or first)


def storms_of(result: Any) -> list[metrics.Storm]:
    """The recovery storms of a finished ``RunResult``."""
    initial = {v.name: v.initially for v in result.scenario.servers}
    intervals = metrics.server_intervals(result.events, initial, result.clock.end)
    attempts = [(e["t"], e["server"]) for e in result.events if e["type"] == "attempt"]
    return metrics.recovery_storms(result.records, attempts, intervals, destination_of(result.scenario))


def evaluate(result: Any) -> list[Outcome]:
    """Check every threshold the run's scenario declares; one ``Outcome`` per expression."""
    scenario = result.scenario
    thresholds = parse_all(scenario)
    if not thresholds:
        return []
    where = _lines(scenario.source)
    storms = storms_of(result) if any(t.metric.recovery for t in thresholds) else []
    destination = destination_of(scenario)
    out = []
    for t in thresholds:
        observed = _aggregate(t, _samples(t, result, storms, destination))
        ok = observed is not None and not math.isnan(observed) and t.holds(observed)
        out.append(Outcome(t, observed, ok, where(("thresholds", t.key, t.index))))
    return out


def format_value(metric: Metric, value: float | None) -> str:
    """A metric value for people: durations as ``1h23m``, ratios with a percentage."""
    if value is None:
        return "no data"
    if math.isinf(value):
        return "never" if metric.unit == "duration" else "inf"
    if metric.unit == "duration":
        return format_duration(round(value))
    if metric.unit == "ratio":
        return f"{value:.4f} ({100 * value:.1f}%)"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}"


def format_outcomes(outcomes: list[Outcome]) -> list[str]:
    """One aligned line per threshold: mark, key, expression, observed value, and file:line when it failed."""
    if not outcomes:
        return []
    kw = max(len(o.threshold.key) for o in outcomes)
    ew = max(len(o.threshold.expression) for o in outcomes)
    vw = max(len(o.shown) for o in outcomes)
    lines = []
    for o in outcomes:
        mark = "✓" if o.ok else "✗"
        line = f"{mark} {o.threshold.key:<{kw}}  {o.threshold.expression:<{ew}}  observed {o.shown:<{vw}}"
        if not o.ok:
            line += f"  {o.where}"
        lines.append(line.rstrip())
    return lines


def to_json(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Outcomes as plain data (``thresholds.json``)."""
    return [
        {
            "metric": o.threshold.key,
            "expression": o.threshold.expression,
            "observed": None if o.observed is None or math.isinf(o.observed) else o.observed,
            "shown": o.shown,
            "ok": o.ok,
            "where": o.where,
        }
        for o in outcomes
    ]
