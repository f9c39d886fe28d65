"""Pass/fail thresholds as a scenario declares them: the metric catalogue and the expression syntax.

A scenario file may declare::

    thresholds:
      delivered_ratio: ["rate>0.99"]            # fraction of messages delivered
      stranded: ["count==0"]                     # messages only on a failed disk
      delivery_delay: ["p(95)<2h", "max<1d"]     # submission to the first 250
      delivery_delay{sender:postfix}: ["p(95)<2h"]
      bounced{window:2}: ["count<=5"]            # the 2nd window (or its label)
      recovery_drain_time: ["max<6h"]
      delayed_ratio{over:2h}: ["rate<0.02"]      # readable in the mailbox more than 2h after submission

A key is a metric name, optionally scoped with k6-style tags ``{tag:value,
...}``: ``sender`` (a sender group), ``policy`` (a retry policy name),
``window`` (a window label, quoted if it holds a comma, or its 1-based
number), ``server`` (the destination server) and ``over`` (a duration, for
``delayed`` and ``delayed_ratio`` only, which need it). Each expression is an
aggregation, an operator and a value: ``count`` for counters, ``rate`` for
ratios (``0.99`` or ``99%``), and ``avg``, ``min``, ``max``, ``med`` or
``p(N)`` for trends, whose values may be durations (``2h``, ``90m``).

Unknown metrics, tags and malformed expressions are errors when the file
loads (``threshold_problems``, called by ``check_semantics``), never a silent
pass. Thresholds are part of the description: they are parsed and checked
here; ``simulator.thresholds`` evaluates them against a run's analysis (a
trend with no data fails).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

from ..clock import SimClock
from ..durations import format_duration, parse_duration
from .incident import recoveries, scenario_marks, scenario_windows, server_intervals
from .states import STATES

__all__ = [
    "METRICS",
    "STATES",
    "TAGS",
    "Metric",
    "Threshold",
    "ThresholdList",
    "ThresholdSyntaxError",
    "parse_key",
    "parse_expression",
    "parse_all",
    "threshold_problems",
    "find_window",
    "format_value",
    "over_seconds",
    "DELAYED",
]


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
        Metric(
            "delayed",
            "counter",
            "count",
            "messages readable in a mailbox later than {over:DURATION} after submission, or still queued after it",
        ),
        Metric(
            "delayed_ratio",
            "rate",
            "ratio",
            "fraction of messages readable later than {over:DURATION} after submission, or still queued after it",
        ),
    ]
    for state in STATES:
        found.append(Metric(state, "counter", "count", f"messages whose final state is {state}"))
        found.append(Metric(f"{state}_ratio", "rate", "ratio", f"fraction of messages {state}"))
    found += [
        Metric("delivery_delay", "trend", "duration", "submission to the first 250, accepted messages"),
        Metric("availability_delay", "trend", "duration", "submission to readable on a live disk, delivered messages"),
        Metric("attempts_per_message", "trend", "number", "delivery attempts per message"),
        Metric("bounce_delay", "trend", "duration", "submission to the bounce, bounced messages"),
        Metric(
            "recovery_peak_attempts",
            "trend",
            "number",
            "the most SMTP sessions in one simulated minute while a recovery's backlog drains",
            True,
        ),
        Metric(
            "recovery_drain_time",
            "trend",
            "duration",
            "time after a recovery until its whole backlog left the queues",
            True,
        ),
        Metric(
            "recovery_backlog",
            "trend",
            "number",
            "messages waiting for a server when it came back, in senders' queues and on backup MX hosts",
            True,
        ),
        Metric(
            "recovery_backlog_senders",
            "trend",
            "number",
            "messages waiting in senders' queues when a server came back",
            True,
        ),
        Metric(
            "recovery_backlog_relays",
            "trend",
            "number",
            "messages held on backup MX hosts for a server when it came back",
            True,
        ),
    ]
    return {m.name: m for m in found}


METRICS: dict[str, Metric] = _catalogue()
"""Every metric a threshold may name."""

AGGREGATIONS = {"counter": ("count",), "rate": ("rate",), "trend": ("avg", "min", "max", "med", "p(N)")}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
TAGS = ("sender", "policy", "window", "server", "over")
DELAYED = ("delayed", "delayed_ratio")
"""The metrics that take (and need) the ``over`` tag."""

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


# ---------------------------------------------------------------- parsing
class ThresholdSyntaxError(ValueError):
    """A threshold key or expression that cannot be read; the message says what to write."""


def parse_key(key: str) -> tuple[Metric, tuple[tuple[str, str], ...]]:
    """Split ``delivery_delay{sender:postfix}`` into its metric and tags."""
    match = _KEY.match(key)
    if not match:
        raise ThresholdSyntaxError(
            f"cannot read {key!r}; write a metric name, optionally with tags: delivery_delay{{sender:postfix}}"
        )
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
                raise ThresholdSyntaxError(
                    f'cannot read the tags in {key!r}; write {{tag:value}}, e.g. {{sender:postfix}} or {{window:"label, with comma"}}'
                )
            tname = tag.group(1)
            value = next(v for v in tag.group(2, 3, 4) if v is not None)
            if tname not in TAGS:
                raise ThresholdSyntaxError(f"unknown tag {tname!r} in {key!r}; tags are: {', '.join(TAGS)}")
            if not value:
                raise ThresholdSyntaxError(f"tag {tname!r} in {key!r} has no value")
            if tname == "over":
                _over(key, name, value)
            tags.append((tname, value))
            pos = tag.end()
        if not tags:
            raise ThresholdSyntaxError(f"empty tags in {key!r}; drop the braces or write {{sender:postfix}}")
    if name in DELAYED and "over" not in dict(tags):
        raise ThresholdSyntaxError(f"{name} needs the delay it counts from, e.g. {name}{{over:2h}}")
    return METRICS[name], tuple(tags)


def _over(key: str, metric: str, value: str) -> float:
    """The duration of an ``over`` tag."""
    if metric not in DELAYED:
        raise ThresholdSyntaxError(f"the over tag applies to {' and '.join(DELAYED)} only, not {metric} (in {key!r})")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ThresholdSyntaxError(f"over in {key!r} is a duration such as 2h: {exc}") from None
    if seconds < 0:
        raise ThresholdSyntaxError(f"over in {key!r} cannot be negative, got {value!r}")
    return seconds


def over_seconds(tags: dict[str, str]) -> float:
    """The ``over`` tag of a ``delayed`` threshold, in seconds."""
    return parse_duration(tags["over"])


def _aggregations(metric: Metric) -> str:
    return ", ".join(AGGREGATIONS[metric.kind])


def parse_expression(key: str, index: int, expression: str) -> Threshold:
    """Parse one expression (``p(95)<2h``) of the threshold *key*."""
    metric, tags = parse_key(key)
    example = {
        "counter": "count==0",
        "rate": "rate>0.99",
        "trend": "p(95)<2h" if metric.unit == "duration" else "max<100",
    }[metric.kind]
    match = _EXPR.match(expression) if isinstance(expression, str) else None
    if not match:
        raise ThresholdSyntaxError(
            f"cannot read {expression!r}; write an aggregation, an operator and a value, e.g. {example} "
            f"({metric.name} takes {_aggregations(metric)})"
        )
    agg, q, op, raw = match.groups()
    quantile = None
    if q is not None:
        try:
            quantile = float(q)
        except ValueError:
            raise ThresholdSyntaxError(f"p({q}) is not a percentile; use p(0) to p(100), e.g. p(95)") from None
        if not 0 <= quantile <= 100:
            raise ThresholdSyntaxError(f"p({q}) is not a percentile; use p(0) to p(100), e.g. p(95)")
        agg = f"p({q})"
    allowed = AGGREGATIONS[metric.kind]
    if (agg if quantile is None else "p(N)") not in allowed:
        if metric.kind == "counter" and agg == "rate" and metric.name in STATES:
            why = f'{metric.name} counts messages; for a fraction of messages use {metric.name}_ratio: ["rate>0.99"]'
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
    if not math.isfinite(value):
        raise ThresholdSyntaxError(f"expected a finite number after the operator, got {raw!r}")
    if percent:
        if metric.unit != "ratio":
            raise ThresholdSyntaxError(f"{metric.name} is not a ratio; write a plain number, not {raw!r}")
        value /= 100
    if metric.unit == "ratio" and not 0 <= value <= 1:
        raise ThresholdSyntaxError(f"a rate is between 0 and 1 (or 0% and 100%), got {raw!r}")
    return value


# ---------------------------------------------------------------- checking at load time
def _has_recovery(s: Any) -> bool:
    clock = SimClock(s.clock)
    marks = scenario_marks(s, clock.seconds)
    return bool(recoveries(server_intervals(marks, {v.name: v.initially for v in s.servers}, clock.end)))


def _policy_labels(s: Any) -> list[str]:
    from ..policies import build_policy

    return sorted({build_policy(group.policy).label for group in s.senders})


def threshold_problems(s: Any) -> list[tuple[tuple[Any, ...], str]]:
    """``(location, message)`` for every threshold of scenario *s* that cannot be checked."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if not s.thresholds:
        return errors
    windows = scenario_windows(s)
    policies = _policy_labels(s)
    recovery = _has_recovery(s)
    known = {
        "sender": [g.name for g in s.senders],
        "policy": policies,
        "server": [v.name for v in s.servers],
    }
    for key, expressions in s.thresholds.items():
        try:
            metric, tags = parse_key(key)
        except ThresholdSyntaxError as exc:
            errors.append((("thresholds", key), str(exc)))
            continue
        if not expressions:
            errors.append(
                (
                    ("thresholds", key),
                    f'no expressions; write e.g. {key}: ["{"count==0" if metric.kind == "counter" else "rate>0.99" if metric.kind == "rate" else "p(95)<2h"}"]',
                )
            )
        for tag, value in tags:
            if metric.recovery and tag != "server":
                errors.append(
                    (("thresholds", key), f"{metric.name} is measured per recovery; only the server tag applies")
                )
            elif tag == "over":
                continue  # checked with the key
            elif tag == "window":
                if find_window(windows, value) is None:
                    listed = "; ".join(f"{i} {label!r}" for i, (label, _, _) in enumerate(windows, 1))
                    errors.append((("thresholds", key), f"no window {value!r}; windows are: {listed}"))
            elif value not in known[tag]:
                errors.append((("thresholds", key), f"no {tag} {value!r}; {tag}s are: {', '.join(known[tag])}"))
        if metric.recovery and not recovery:
            errors.append(
                (
                    ("thresholds", key),
                    f"{metric.name} needs a recovery (a server coming back up), and the timeline has none",
                )
            )
        for i, expression in enumerate(expressions):
            try:
                parse_expression(key, i, expression)
            except ThresholdSyntaxError as exc:
                errors.append((("thresholds", key, i), str(exc)))
    return errors


def find_window(windows: list[tuple[str, float, float]], value: str) -> tuple[str, float, float] | None:
    """The window a ``window`` tag names: by label, or by its 1-based number."""
    for w in windows:
        if w[0] == value:
            return w
    if value.isdigit() and 1 <= int(value) <= len(windows):
        return windows[int(value) - 1]
    return None


def parse_all(s: Any) -> list[Threshold]:
    """Every threshold of a loaded scenario, in file order."""
    return [parse_expression(key, i, expr) for key, exprs in s.thresholds.items() for i, expr in enumerate(exprs)]


def format_value(metric: Metric, value: float | None) -> str:
    """A metric value for people: durations as ``1h23m``, ratios with a percentage."""
    if value is None:
        return "no data"
    if math.isinf(value):
        return "never" if metric.unit == "duration" else "inf"
    if metric.unit == "duration":
        return format_duration(round(value) if abs(value) >= 60 else round(value, 1))
    if metric.unit == "ratio":
        return f"{value:.4f} ({100 * value:.1f}%)"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}"
