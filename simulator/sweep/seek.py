"""Goal seeking: the smallest (or largest) value of an axis whose runs meet a target, across seeds.

The search assumes what a planner assumes: past some value of the axis the
target is met, before it not. Each round runs several values between the
last one known to fail and the first known to meet (as many as the workers
can take with every seed), until the two are within the resolution. Every
value visited is kept, and the answer says so when they contradict the
assumption (a value that meets below one that fails, or a metric that goes
up and down), because then the search may have jumped over an answer.

When even the best end of the range fails, the answer says so plainly and
says what sets the floor. For a recovery's drain time that is usually the
senders' retry schedules: the backlog cannot drain before its last message
is tried again, however much the server can take.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..durations import format_duration
from ..schema.thresholds import format_value
from .spec import Goal, show_value

__all__ = ["Visit", "Answer", "seek", "meets"]

Evaluate = Callable[[list[float]], dict[float, list[dict[str, Any]]]]
"""Runs every seed at each axis value given; returns the rows per value."""


@dataclass(frozen=True)
class Visit:
    """An axis value the search ran: the metric per seed, their mean, and whether the target was met."""

    x: float
    values: tuple[float | None, ...]
    mean: float | None
    ok: bool


@dataclass
class Answer:
    """The outcome of a goal search, with its sentences."""

    found: float | None
    visits: list[Visit]
    monotone: bool
    sentences: list[str] = field(default_factory=list)
    floor: str | None = None

    def to_json(self, goal: Goal) -> dict[str, Any]:
        """The answer as ``sweep.json`` keeps it."""
        return {
            "axis": goal.axis.name,
            "path": goal.axis.target.path,
            "metric": goal.metric.column,
            "target": goal.target.expression,
            "target_value": goal.target.value,
            "want": goal.want,
            "across": goal.across,
            "range": [goal.low, goal.high],
            "found": self.found,
            "found_shown": None if self.found is None else show_value(self.found, goal.axis.unit),
            "monotone": self.monotone,
            "sentences": self.sentences,
            "floor": self.floor,
            "visits": [
                {"x": v.x, "values": [_json_float(x) for x in v.values], "mean": _json_float(v.mean), "ok": v.ok}
                for v in self.visits
            ],
        }


def _json_float(value: float | None) -> float | str | None:
    if value is not None and math.isinf(value):
        return "inf"
    return value


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return None
    if any(math.isinf(v) for v in known):
        return math.inf
    return sum(known) / len(known)


def meets(goal: Goal, values: Sequence[float | None]) -> bool:
    """Whether one axis value's runs meet the goal: every seed (``across: all``) or their mean (``across: mean``)."""
    if goal.across == "mean":
        mean = _mean(values)
        return mean is not None and goal.target.holds(mean)
    return bool(values) and all(v is not None and not math.isnan(v) and goal.target.holds(v) for v in values)


def _candidates(goal: Goal, bad: float, good: float, count: int) -> list[float]:
    """Up to *count* values strictly between *bad* and *good*, evenly spread."""
    out: set[float] = set()
    for k in range(1, count + 1):
        x = bad + (good - bad) * k / (count + 1)
        if goal.integer:
            x = float(round(x))
        elif goal.axis.unit == "duration":
            x = float(60 * round(x / 60)) if goal.resolution >= 60 else float(round(x))
        if min(bad, good) < x < max(bad, good):
            out.add(x)
    if not out and goal.integer and abs(good - bad) > 1:
        out.add(float(round((bad + good) / 2)))
    return sorted(out)


def seek(goal: Goal, evaluate: Evaluate, per_round: int = 1) -> tuple[Answer, dict[float, list[dict[str, Any]]]]:
    """Search *goal*'s range, running *per_round* values a round; returns the answer and every row by value."""
    column = goal.metric.column
    rows: dict[float, list[dict[str, Any]]] = {}
    visits: dict[float, Visit] = {}

    def run(xs: list[float]) -> None:
        fresh = [x for x in xs if x not in visits]
        if not fresh:
            return
        for x, found in evaluate(fresh).items():
            rows[x] = found
            values = tuple(r.get(column) for r in found)
            visits[x] = Visit(x, values, _mean(values), meets(goal, values))

    low, high = (float(goal.low), float(goal.high))
    # the end that should meet the target, and the end that should not
    good, bad = (high, low) if goal.want == "smallest" else (low, high)
    run([low, high])
    answer_x: float | None
    if not visits[good].ok:
        answer_x = None
    elif visits[bad].ok:
        answer_x = bad
    else:
        while abs(good - bad) > goal.resolution and not (goal.integer and abs(good - bad) <= 1):
            xs = _candidates(goal, bad, good, max(1, per_round))
            if not xs:
                break
            run(xs)
            between = sorted((x for x in visits if min(bad, good) <= x <= max(bad, good)), reverse=good < bad)
            # from the bad end towards the good end: the first value that meets
            for i, x in enumerate(between):
                if visits[x].ok:
                    good, bad = x, between[i - 1] if i else bad
                    break
        answer_x = good
    ordered = [visits[x] for x in sorted(visits)]
    answer = Answer(answer_x, ordered, True)
    _explain(goal, answer, visits, rows)
    return answer, rows


def _monotone(goal: Goal, ordered: list[Visit]) -> list[str]:
    """What contradicts a monotone axis on the visited values, in sentences (empty when nothing does)."""
    problems = []
    oks = [v.ok for v in ordered]
    if goal.want == "largest":
        oks = [not ok for ok in oks]
    # smallest: failing values first, then meeting ones; a meeting value before a failing one contradicts it
    first_ok = next((i for i, ok in enumerate(oks) if ok), len(oks))
    late_fail = next((i for i in range(first_ok, len(oks)) if not oks[i]), None)
    a = goal.axis
    if late_fail is not None:
        meet, fail = ordered[first_ok], ordered[late_fail]
        if goal.want == "largest":
            meet, fail = fail, meet
        problems.append(
            f"{a.name}={a.shown(_value(goal, meet.x))} meets the target but {a.name}={a.shown(_value(goal, fail.x))} does not"
        )
    means = [v.mean for v in ordered if v.mean is not None]
    ups = any(b > a_ for a_, b in itertools.pairwise(means))
    downs = any(b < a_ for a_, b in itertools.pairwise(means))
    if ups and downs:
        shown = ", ".join(
            f"{a.shown(_value(goal, v.x))}: {format_value(goal.target.metric, v.mean)}"
            for v in ordered
            if v.mean is not None
        )
        problems.append(f"{goal.metric.column} goes up and down along {a.name} ({shown})")
    return problems


def _value(goal: Goal, x: float) -> Any:
    from .spec import goal_value

    return goal_value(goal, x)


def _explain(goal: Goal, answer: Answer, visits: dict[float, Visit], rows: dict[float, list[dict[str, Any]]]) -> None:
    a = goal.axis
    seeds = len(next(iter(visits.values())).values) if visits else 0
    across = (
        f"in all {seeds} seeds"
        if goal.across == "all" and seeds > 1
        else "on average over the seeds"
        if seeds > 1
        else ""
    )
    target = f"{goal.metric.column.split('.')[0]} {goal.target.expression}"
    metric = goal.target.metric

    def shown(v: Visit) -> str:
        if len(v.values) == 1:
            return format_value(metric, v.values[0])
        known = [x for x in v.values if x is not None]
        if not known:
            return "no data"
        if min(known) == max(known):
            return f"{format_value(metric, known[0])} in each"
        return f"{format_value(metric, min(known))} to {format_value(metric, max(known))}"

    contradictions = _monotone(goal, answer.visits)
    answer.monotone = not contradictions
    rng = f"[{a.shown(_value(goal, goal.low))}, {a.shown(_value(goal, goal.high))}]"
    if answer.found is not None:
        word = "smallest" if goal.want == "smallest" else "largest"
        found = visits[answer.found]
        sentence = (
            f"The {word} {a.name} in {rng} that meets {target} {across}".rstrip()
            + f" is {a.shown(_value(goal, answer.found))} ({shown(found)})"
        )
        step = -1 if goal.want == "smallest" else 1
        near = [v for v in answer.visits if not v.ok and (v.x - answer.found) * step > 0]
        if near:
            closest = min(near, key=lambda v: abs(v.x - answer.found))  # type: ignore[operator]
            sentence += f"; {a.shown(_value(goal, closest.x))} does not ({shown(closest)})"
        answer.sentences.append(sentence + ".")
    else:
        best = goal.high if goal.want == "smallest" else goal.low
        worst = goal.low if goal.want == "smallest" else goal.high
        v = visits[float(best)]
        answer.sentences.append(
            f"No {a.name} in {rng} meets {target} {across}".rstrip()
            + f": even at {a.shown(_value(goal, best))} it is {shown(v)}."
        )
        answer.floor = _floor(goal, best, worst, visits, rows)
        answer.sentences.append(answer.floor)
    if contradictions:
        answer.sentences.append(
            "Not monotone on the values visited: "
            + "; ".join(contradictions)
            + ". The search assumes it is, so the answer may be wrong: sweep this axis with a list of values to see its shape."
        )


def _floor(
    goal: Goal, best: float, worst: float, visits: dict[float, Visit], rows: dict[float, list[dict[str, Any]]]
) -> str:
    """What keeps the best end of the range from meeting the target, in a sentence."""
    a = goal.axis
    metric = goal.target.metric
    at_best, at_worst = visits[float(best)], visits[float(worst)]
    if metric.name == "recovery_drain_time":
        storms = [f for r in rows.get(float(best), []) for f in r.get("floors", [])]
        if storms:
            slowest = max(storms, key=lambda f: math.inf if f["drained"] is None else f["drained"])
            if slowest["drained"] is None:
                return (
                    f"What sets the floor: at {a.name}={a.shown(_value(goal, best))} the backlog of {slowest['server']} "
                    f"(back at {slowest['at'].replace('T', ' ')[:16]}) never drained before the run ended."
                )
            retry = slowest["last_retry"]
            back = f"{slowest['server']} came back at {slowest['at'].replace('T', ' ')[:16]}"
            turned = slowest["turned_away"]
            if retry is not None and (slowest["drained"] <= retry + 60 or retry > goal.target.value):
                how = (
                    "and the backlog drained on that attempt"
                    if slowest["drained"] <= retry + 60
                    else f"before that attempt the backlog cannot drain ({turned} sessions were also turned away "
                    "at a capacity limit)"
                )
                return (
                    "What sets the floor: the senders' retry intervals. The last backlog message "
                    f"({slowest['last_retry_group']}, {slowest['last_retry_policy']}) was next tried "
                    f"{format_duration(60 * round(retry / 60))} after {back}, {how}: no {a.name} can drain it sooner."
                )
            extra = f"; {turned} sessions were turned away at a capacity limit" if turned else ""
            tried = (
                f" after its last message was first tried again ({format_duration(60 * round(retry / 60))})"
                if retry is not None
                else ""
            )
            return (
                f"What sets the floor: at {a.name}={a.shown(_value(goal, best))} the backlog drained "
                f"{format_duration(60 * round(slowest['drained'] / 60))} after the recovery{tried}{extra}: "
                "something other than the retry schedules holds it back; widen the range or change another axis."
            )
    if at_best.mean is not None and at_worst.mean is not None and at_best.mean == at_worst.mean:
        return (
            f"What sets the floor: {goal.metric.column} is {format_value(metric, at_best.mean)} at both ends of the range: "
            f"{a.name} does not change it here."
        )
    return (
        f"{goal.metric.column} goes from {format_value(metric, at_worst.mean)} at {a.shown(_value(goal, worst))} "
        f"to {format_value(metric, at_best.mean)} at {a.shown(_value(goal, best))}."
    )
