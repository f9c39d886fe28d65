"""Thresholds checked against a run's analysis (the syntax is ``simulator.schema.thresholds``).

Each metric of the catalogue (``METRICS``) has exactly one sampler here,
keyed by its name: a metric without one is an error when this module is
imported, never a silent measurement of something else. A trend with no data
fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import metrics
from .analysis import Analysis
from .ledger import MessageRecord
from .schema.states import STATES
from .schema.thresholds import (
    METRICS,
    Metric,
    Threshold,
    find_window,
    format_value,
    over_seconds,
    parse_all,
    parse_expression,
)

__all__ = [
    "Outcome",
    "evaluate",
    "evaluate_all",
    "format_outcomes",
    "to_json",
    "SAMPLERS",
    "sample",
    "observe",
    "where_in",
    "Metric",
    "parse_expression",
    "format_value",
]


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


Samples = list[float] | float | None
Sampler = Callable[[Analysis, list[MessageRecord], dict[str, str]], Samples]


def _storms(a: Analysis, tags: dict[str, str]) -> list[metrics.Storm]:
    return [s for s in a.storms if "server" not in tags or s.server == tags["server"]]


def _count(state: str) -> Sampler:
    return lambda a, records, tags: float(sum(1 for r in records if r.final_state == state))


def _ratio(state: str) -> Sampler:
    def sample(a: Analysis, records: list[MessageRecord], tags: dict[str, str]) -> Samples:
        return sum(1 for r in records if r.final_state == state) / len(records) if records else None

    return sample


def _delayed(a: Analysis, records: list[MessageRecord], tags: dict[str, str]) -> list[MessageRecord]:
    over = over_seconds(tags)
    return [r for r in records if metrics.delayed(r, over, a.end)]


def _field_sum(name: str) -> Sampler:
    return lambda a, records, tags: float(sum(getattr(r, name) for r in records))


SAMPLERS: dict[str, Sampler] = {
    "messages": lambda a, records, tags: float(len(records)),
    "attempts": _field_sum("attempts"),
    "connections": _field_sum("connections"),
    "delay_warnings": _field_sum("delay_warnings"),
    "duplicates": lambda a, records, tags: float(sum(1 for r in records if r.copies > 1)),
    "turned_away": lambda a, records, tags: float(
        sum(n for server, n in a.turned_away.items() if "server" not in tags or server == tags["server"])
    ),
    "delayed": lambda a, records, tags: float(len(_delayed(a, records, tags))),
    "delayed_ratio": lambda a, records, tags: len(_delayed(a, records, tags)) / len(records) if records else None,
    **{state: _count(state) for state in STATES},
    **{f"{state}_ratio": _ratio(state) for state in STATES},
    "delivery_delay": lambda a, records, tags: [d for d in map(metrics.delivery_delay, records) if d is not None],
    "availability_delay": lambda a, records, tags: [
        d for d in map(metrics.availability_delay, records) if d is not None
    ],
    "attempts_per_message": lambda a, records, tags: [float(r.attempts) for r in records],
    "bounce_delay": lambda a, records, tags: [d for d in map(metrics.bounce_delay, records) if d is not None],
    "recovery_peak_attempts": lambda a, records, tags: [float(s.peak_per_minute) for s in _storms(a, tags)],
    "recovery_drain_time": lambda a, records, tags: [
        math.inf if s.drained is None else s.drained for s in _storms(a, tags)
    ],
    "recovery_backlog": lambda a, records, tags: [float(s.backlog) for s in _storms(a, tags)],
    "recovery_backlog_senders": lambda a, records, tags: [float(s.backlog_senders) for s in _storms(a, tags)],
    "recovery_backlog_relays": lambda a, records, tags: [float(s.backlog_relays) for s in _storms(a, tags)],
}
"""How each metric is measured, by name; exactly the names of ``METRICS``."""

if set(SAMPLERS) != set(METRICS):  # pragma: no cover - a programming error, caught by the first import
    raise RuntimeError(f"metrics without a sampler or samplers without a metric: {set(SAMPLERS) ^ set(METRICS)}")


def _records(a: Analysis, tags: dict[str, str]) -> list[MessageRecord]:
    records = a.records
    if "sender" in tags:
        records = [r for r in records if r.group == tags["sender"]]
    if "policy" in tags:
        records = [r for r in records if r.policy == tags["policy"]]
    if "server" in tags:
        records = [r for r in records if a.destination(r) == tags["server"]]
    if "window" in tags:
        found = find_window([(w.label, w.start, w.end) for w in a.windows], tags["window"])
        window = next((w for w in a.windows if found is not None and (w.label, w.start, w.end) == found), None)
        records = [r for r in records if window is not None and window.holds(r.submitted_at)]
    return records


def sample(t: Threshold, a: Analysis) -> Samples:
    """The values of *t*'s metric in this run, scoped by its tags."""
    tags = dict(t.tags)
    records = [] if t.metric.recovery or t.metric.name == "turned_away" else _records(a, tags)
    return SAMPLERS[t.metric.name](a, records, tags)


def _aggregate(t: Threshold, samples: Samples) -> float | None:
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


def observe(t: Threshold, a: Analysis) -> float | None:
    """The value *t* compares: its metric sampled and aggregated."""
    return _aggregate(t, sample(t, a))


def evaluate_all(thresholds: Sequence[Threshold], a: Analysis, where: Callable[[Threshold], str]) -> list[Outcome]:
    """Check *thresholds* against the analysis *a*; one ``Outcome`` per expression."""
    out = []
    for t in thresholds:
        observed = observe(t, a)
        ok = observed is not None and not math.isnan(observed) and t.holds(observed)
        out.append(Outcome(t, observed, ok, where(t)))
    return out


def where_in(source: Path | None) -> Callable[[Threshold], str]:
    """``file:line`` of each threshold in the scenario file *source* (``thresholds`` without one)."""
    if source is None:
        return lambda t: "thresholds"
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
    if root is None:
        return lambda t: str(shown)
    return lambda t: f"{shown}:{line_of(root, ('thresholds', t.key, t.index))}"


def evaluate(scenario: Any, a: Analysis) -> list[Outcome]:
    """Check every threshold *scenario* declares against the analysis of its run."""
    thresholds = parse_all(scenario)
    if not thresholds:
        return []
    return evaluate_all(thresholds, a, where_in(scenario.source))


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
