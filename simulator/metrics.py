"""Measures of a run, computed from its flat records and its event log.

Everything here works on plain inputs, so a live ``RunResult`` and a results
folder read back from disk give the same numbers:

* records: ``MessageRecord``-like objects (``submitted_at``, ``accepted_at``,
  ``bounced_at``, ``final_state``, ``final_at``, ``group``, ``policy``,
  ``recipient``, ``accepted_by``), times in simulated seconds;
* marks: the timeline's events as logged (``type`` one of ``MARK_TYPES``,
  ``t``, ``server``, and ``state`` / ``ok`` where they apply);
* attempts: ``(t, server)`` of every SMTP session that reached the wire.

It answers the questions reports and thresholds ask: per-message delays and
their percentiles, queue depth and queue ages (Postfix's qshape), each
server's state over time, the post-mortem's windows of submission time, and
the load after each recovery (the retry storm) with the time to drain the
backlog.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MARK_TYPES",
    "Interval",
    "Storm",
    "delivery_delay",
    "availability_delay",
    "left_queue_at",
    "percentile",
    "describe",
    "in_queue_before",
    "queue_depth",
    "qshape",
    "qshape_buckets",
    "scenario_marks",
    "server_intervals",
    "disk_intervals",
    "outages",
    "recoveries",
    "incident_windows",
    "recovery_storms",
]

MARK_TYPES = ("server", "crash", "backup", "restore", "disk_recovered", "disk_lost")
"""Event types that describe the incident's timeline rather than a message."""

UP = "up"


# ---------------------------------------------------------------- per message
def delivery_delay(record: Any) -> float | None:
    """Seconds from submission to the first 250 (the sender's queue time); ``None`` if never accepted."""
    if record.accepted_at is None:
        return None
    return record.accepted_at - record.submitted_at


def availability_delay(record: Any) -> float | None:
    """Seconds from submission until the message sat on a live disk at the end; ``None`` unless delivered.

    Larger than the delivery delay for mail that was accepted, lost with a
    disk, and brought back by a restore or a disk recovery.
    """
    if record.final_state != "delivered" or record.final_at is None:
        return None
    return record.final_at - record.submitted_at


def left_queue_at(record: Any) -> float | None:
    """When the message left its sender's queue (accepted or bounced); ``None`` if still queued."""
    if record.accepted_at is not None:
        return record.accepted_at
    return record.bounced_at


def in_queue_before(record: Any, t: float) -> bool:
    """True if the message was waiting in its sender's queue just before instant *t*."""
    if record.submitted_at >= t:
        return False
    left = left_queue_at(record)
    return left is None or left >= t


# ---------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0-100) of *values*, interpolating linearly between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    if pos == lo or data[lo] == data[hi]:
        return float(data[lo])
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def describe(values: Sequence[float]) -> dict[str, float]:
    """Count, min, median, p90, p95, p99, max and mean of *values* (empty dict for none)."""
    if not values:
        return {}
    return {
        "count": len(values),
        "min": float(min(values)),
        "med": percentile(values, 50),
        "p90": percentile(values, 90),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": float(max(values)),
        "avg": sum(values) / len(values),
    }


# ---------------------------------------------------------------- queues
def queue_depth(records: Iterable[Any], key: Callable[[Any], str] = lambda r: r.group) -> dict[str, list[tuple[float, int]]]:
    """Messages waiting in sender queues over time, per *key* (the sender group by default).

    Each series is a step function: ``(t, depth)`` points, depth holding from
    ``t`` until the next point.
    """
    changes: dict[str, Counter[float]] = {}
    for r in records:
        c = changes.setdefault(key(r), Counter())
        c[r.submitted_at] += 1
        left = left_queue_at(r)
        if left is not None:
            c[left] -= 1
    out: dict[str, list[tuple[float, int]]] = {}
    for name, c in changes.items():
        depth, points = 0, []
        for t in sorted(c):
            depth += c[t]
            points.append((t, depth))
        out[name] = points
    return out


QSHAPE_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
"""Postfix qshape's default age buckets, in minutes (the last column is older than 1280)."""


def qshape_buckets(oldest_seconds: float, *, first: int = 5, count: int = 10) -> tuple[int, ...]:
    """Doubling age buckets in minutes, like ``qshape -t first -b count``, widened to reach *oldest_seconds*."""
    buckets = [first * 2**i for i in range(count - 1)]
    while buckets[-1] * 60 < oldest_seconds and len(buckets) < 14:
        buckets.append(buckets[-1] * 2)
    return tuple(buckets)


def qshape(
    records: Iterable[Any],
    t: float,
    buckets: Sequence[int] = QSHAPE_MINUTES,
    key: Callable[[Any], str] = lambda r: r.group,
) -> dict[str, list[int]]:
    """Queue ages just before instant *t*, like Postfix's ``qshape``.

    Returns ``{row: [total, n <= buckets[0] min, ..., n <= buckets[-1] min, n older]}``
    with a ``"TOTAL"`` row first and the other rows by size.
    """
    rows: dict[str, list[int]] = {}
    width = len(buckets) + 2
    total = [0] * width
    for r in records:
        if not in_queue_before(r, t):
            continue
        minutes = (t - r.submitted_at) / 60.0
        col = 1 + bisect_left(buckets, minutes)
        row = rows.setdefault(key(r), [0] * width)
        for target in (row, total):
            target[0] += 1
            target[col] += 1
    ordered = sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {"TOTAL": total, **dict(ordered)}


# ---------------------------------------------------------------- the incident
@dataclass(frozen=True)
class Interval:
    """A stretch of simulated time ``[start, end)`` in one state."""

    start: float
    end: float
    state: str


_SCENARIO_TYPES = {
    "up": "server",
    "down": "server",
    "crash": "crash",
    "backup": "backup",
    "restore": "restore",
    "recover-disk": "disk_recovered",
    "disk-lost": "disk_lost",
}


def scenario_marks(scenario: Any, seconds: Callable[[Any], float]) -> list[dict[str, Any]]:
    """The marks a scenario's timeline will log, without running it (*seconds* maps a timestamp).

    Entries that do not change a server's state or disk (faults, DNS changes)
    are left out; periodic ``backups`` become one mark per backup.
    """
    marks: list[dict[str, Any]] = []
    end = seconds(scenario.clock.end)
    for ev in scenario.timeline:
        kind = _SCENARIO_TYPES.get(ev.event)
        server = getattr(ev, "server", None)
        if server is None:
            continue
        t = seconds(ev.at)
        if ev.event == "backups":
            last = seconds(ev.until) if getattr(ev, "until", None) is not None else end
            step = max(float(ev.every), 60.0)
            while t <= last:
                marks.append({"t": t, "type": "backup", "server": server, "ok": ev.ok})
                t += step
            continue
        if kind is None:
            continue
        mark: dict[str, Any] = {"t": t, "type": kind, "server": server}
        if ev.event == "up":
            mark["state"] = UP
        elif ev.event in ("down", "crash"):
            mark["state"] = ev.mode
        elif ev.event == "restore" and ev.bring_up:
            mark["state"] = UP
        elif ev.event == "backup":
            mark["ok"] = ev.ok
        marks.append(mark)
    return sorted(marks, key=lambda m: m["t"])


def _ordered(marks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((m for m in marks if m.get("type") in MARK_TYPES), key=lambda m: m["t"])


def _intervals(changes: Iterable[tuple[str, float, str]], initial: dict[str, str], end: float) -> dict[str, list[Interval]]:
    """Fold ``(server, t, new state)`` changes, in time order, into each server's intervals over ``[0, end)``."""
    state = dict(initial)
    since = {name: 0.0 for name in state}
    out: dict[str, list[Interval]] = {name: [] for name in state}
    for name, t, new in changes:
        if name not in state or new == state[name]:
            continue
        if t > since[name]:
            out[name].append(Interval(since[name], t, state[name]))
        state[name], since[name] = new, t
    for name in state:
        if end > since[name]:
            out[name].append(Interval(since[name], end, state[name]))
    return out


def server_intervals(marks: Iterable[dict[str, Any]], initial: dict[str, str], end: float) -> dict[str, list[Interval]]:
    """Each server's listening state over ``[0, end)``: ``up`` or how it is down (``refuse``, ...)."""
    changes = ((m["server"], m["t"], m["state"]) for m in _ordered(marks) if m.get("state") is not None)
    return _intervals(changes, initial, end)


_DISK_STATE = {"crash": "failed", "disk_recovered": "live", "restore": "live"}


def disk_intervals(marks: Iterable[dict[str, Any]], servers: Iterable[str], end: float) -> dict[str, list[Interval]]:
    """Each server's current disk over ``[0, end)``: ``live`` or ``failed`` (between a crash and a recovery or restore)."""
    changes = ((m["server"], m["t"], _DISK_STATE[m["type"]]) for m in _ordered(marks) if m["type"] in _DISK_STATE)
    return _intervals(changes, {name: "live" for name in servers}, end)


def outages(intervals: dict[str, list[Interval]]) -> list[tuple[str, Interval]]:
    """Every stretch in which a server did not accept mail, in time order."""
    found = [(name, iv) for name, ivs in intervals.items() for iv in ivs if iv.state != UP]
    return sorted(found, key=lambda x: (x[1].start, x[0]))


def recoveries(intervals: dict[str, list[Interval]]) -> list[tuple[float, str]]:
    """``(t, server)`` for every moment a server that was down accepts mail again."""
    found = []
    for name, ivs in intervals.items():
        for before, after in zip(ivs, ivs[1:]):
            if before.state != UP and after.state == UP:
                found.append((after.start, name))
    return sorted(found)


def incident_windows(
    marks: Iterable[dict[str, Any]],
    initial: dict[str, str],
    end: float,
    fmt: Callable[[float], str],
) -> list[tuple[str, float, float]]:
    """The post-mortem's windows of submission time, derived from the timeline.

    Cuts at every failure and every recovery, and at the last good backup
    before each crash (mail accepted after it exists only on the disk that
    fails). Labels read like the post-mortem's: ``sent before the crash at
    10:38 10/26``, ``sent during the outage, ...``, ``sent after the 18:30
    10/27 backup, before the crash at 06:00 10/28``, ``sent after recovery at
    11:40 10/30``. *fmt* formats a simulated time.
    """
    several = len(initial) > 1
    state = dict(initial)
    last_good: dict[str, float | None] = {name: None for name in initial}
    cuts: dict[float, tuple[int, str, str]] = {}

    def cut(t: float, rank: int, kind: str, server: str) -> None:
        if 0 < t < end and (t not in cuts or rank < cuts[t][0]):
            cuts[t] = (rank, kind, server)

    for m in _ordered(marks):
        name, t = m["server"], m["t"]
        if name not in state:
            continue
        if m["type"] == "crash":
            if last_good[name] is not None:
                cut(last_good[name], 3, "backup", name)
            last_good[name] = None
        elif m["type"] == "restore":
            last_good[name] = None
        elif m["type"] == "backup" and m.get("ok"):
            # Mail accepted after a good backup taken while the server was up is
            # what a later crash strands; one taken while it was down cuts nothing.
            last_good[name] = t if state[name] == UP else None
        new = m.get("state")
        if new is None or new == state[name]:
            continue
        if state[name] == UP:
            cut(t, 0 if m["type"] == "crash" else 1, "crash" if m["type"] == "crash" else "outage", name)
        elif new == UP:
            cut(t, 2, "recovery", name)
        state[name] = new
    if not cuts:
        return [("all mail", 0.0, end)]
    down = server_intervals(marks, initial, end)

    def said(t: float) -> str:
        _, kind, server = cuts[t]
        who = f"{server} " if several else ""
        if kind == "backup":
            return f"the {fmt(t)} {who}backup"
        if kind == "recovery":
            return f"{server}'s recovery at {fmt(t)}" if several else f"recovery at {fmt(t)}"
        return f"the {who}{kind} at {fmt(t)}"

    def down_at(t: float) -> list[str]:
        return [name for name, ivs in down.items() for iv in ivs if iv.start <= t < iv.end and iv.state != UP]

    points = [0.0, *sorted(cuts), end]
    out = []
    for lo, hi in zip(points, points[1:]):
        names = down_at(lo)
        if names and (not several or len(names) == len(initial)):
            label = f"sent during the outage, {fmt(lo)} to {fmt(hi)}"
        elif names:
            label = f"sent while {' and '.join(names)} {'was' if len(names) == 1 else 'were'} down, {fmt(lo)} to {fmt(hi)}"
        elif lo == 0.0:
            label = f"sent before {said(hi)}"
        elif hi == end:
            label = f"sent after {said(lo)}"
        else:
            label = f"sent after {said(lo)}, before {said(hi)}"
        out.append((label, lo, hi))
    return out


# ---------------------------------------------------------------- recoveries
@dataclass(frozen=True)
class Storm:
    """The load on a server after it came back, and how long its backlog took to drain.

    ``peak_per_minute`` is the most SMTP sessions in one simulated minute
    while the backlog drained (at least the first hour). ``per_minute`` maps a simulated minute after ``at`` (0, 1, ...) to the SMTP
    sessions the server saw in it, until ``until`` (the next failure or the
    end). ``drained_90`` / ``drained`` are seconds after ``at`` until 90% /
    all of the ``backlog`` (messages waiting for this server when it came
    back) had left their senders' queues, accepted or bounced; ``None`` if
    that did not happen before ``until``.
    """

    server: str
    at: float
    until: float
    backlog: int
    peak_per_minute: int
    peak_at: float
    first_hour: int
    drained_90: float | None
    drained: float | None
    per_minute: dict[int, int] = field(default_factory=dict, compare=False, repr=False)


def _drain_time(leaves: list[float | None], at: float, until: float, share: float) -> float | None:
    if not leaves:
        return 0.0
    need = max(1, math.ceil(share * len(leaves)))
    done = sorted(t for t in leaves if t is not None and t <= until)
    if len(done) < need:
        return None
    return done[need - 1] - at


def recovery_storms(
    records: Iterable[Any],
    attempts: Iterable[tuple[float, str]],
    intervals: dict[str, list[Interval]],
    destination: Callable[[Any], str],
) -> list[Storm]:
    """One ``Storm`` per recovery: peak sessions per simulated minute, first-hour load, drain times.

    *destination* maps a record to the server its mail goes to.
    """
    records = list(records)
    by_server: dict[str, list[float]] = {}
    for t, server in attempts:
        by_server.setdefault(server, []).append(t)
    for times in by_server.values():
        times.sort()
    storms = []
    for at, server in recoveries(intervals):
        until = next((iv.end for iv in intervals[server] if iv.start == at), at)
        times = by_server.get(server, [])
        per_minute: Counter[int] = Counter(int((t - at) // 60) for t in times[bisect_left(times, at): bisect_left(times, until)])
        backlog = [left_queue_at(r) for r in records if destination(r) == server and in_queue_before(r, at)]
        drained = _drain_time(backlog, at, until, 1.0)
        # The storm is the load while the backlog drains (at least the first hour).
        storm_minutes = math.ceil(max(3600.0, drained if drained is not None else until - at) / 60)
        peak_minute, peak = max(
            ((m, n) for m, n in per_minute.items() if m < storm_minutes), key=lambda kv: (kv[1], -kv[0]), default=(0, 0)
        )
        storms.append(
            Storm(
                server=server,
                at=at,
                until=until,
                backlog=len(backlog),
                peak_per_minute=peak,
                peak_at=at + 60 * peak_minute,
                first_hour=sum(n for minute, n in per_minute.items() if minute < 60),
                drained_90=_drain_time(backlog, at, until, 0.9),
                drained=drained,
                per_minute=dict(per_minute),
            )
        )
    return storms


# ---------------------------------------------------------------- timeline.json
def timeline_document(result: Any) -> dict[str, Any]:
    """What a report needs about the incident, derived from a ``RunResult`` (``timeline.json``).

    The servers with their domains and initial state, the sender groups with
    the time their policy gives up on mail that never gets through, the
    windows of submission time, the timeline's marks as logged, and each
    server's listening and disk state as intervals.
    """
    from .policies import build_policy
    from .policies.simulate import all_attempts_fail

    scenario, clock, end = result.scenario, result.clock, result.clock.end
    initial = {v.name: v.initially for v in scenario.servers}
    marks = [e for e in result.events if e.get("type") in MARK_TYPES]
    states = server_intervals(marks, initial, end)
    senders = []
    for group in scenario.senders:
        policy = build_policy(group.policy)
        fate = all_attempts_fail(policy, hours=30 * 24)
        senders.append({"name": group.name, "count": group.count, "policy": policy.name, "gives_up_after": fate.bounce_at})

    def spans(intervals: dict[str, list[Interval]]) -> dict[str, list[dict[str, Any]]]:
        return {name: [{"from": iv.start, "to": iv.end, "state": iv.state} for iv in ivs] for name, ivs in intervals.items()}

    return {
        "scenario": scenario.name,
        "description": scenario.description.strip(),
        "clock": {"start": clock.iso(0), "end": clock.iso(end), "seconds": end, "timezone": scenario.clock.timezone},
        "servers": [{"name": v.name, "domains": list(v.domains), "initially": v.initially} for v in scenario.servers],
        "senders": senders,
        "windows_declared": bool(scenario.windows),
        "windows": [{"label": w.label, "start": w.start, "end": w.end} for w in result.windows],
        "marks": marks,
        "states": spans(states),
        "disks": spans(disk_intervals(marks, initial, end)),
        "recoveries": [{"t": t, "server": name} for t, name in recoveries(states)],
    }
