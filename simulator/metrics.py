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
their percentiles, queue depth and queue ages (Postfix's qshape), and the
load after each recovery (the retry storm) with the time to drain the
backlog. Server states over time and the windows of submission time are the
scenario's own (``simulator.schema.incident``, re-exported here).
``simulator.analysis`` puts them together for one run.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .ledger import MessageRecord
from .schema.incident import (
    MARK_TYPES,
    UP,
    Interval,
    disk_intervals,
    incident_windows,
    outages,
    recoveries,
    scenario_marks,
    server_intervals,
)

__all__ = [
    "MARK_TYPES",
    "Interval",
    "Storm",
    "RetryFloor",
    "retry_floor",
    "retry_floors",
    "delivery_delay",
    "availability_delay",
    "bounce_delay",
    "delayed",
    "DELAY_MARKS",
    "mailbox_delays",
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
    "relay_backlog",
    "stopped_waiting_at",
    "UP",
]


# ---------------------------------------------------------------- per message
def delivery_delay(record: MessageRecord) -> float | None:
    """Seconds from submission to the first 250 (the sender's queue time); ``None`` if never accepted."""
    if record.accepted_at is None:
        return None
    return record.accepted_at - record.submitted_at


def availability_delay(record: MessageRecord) -> float | None:
    """Seconds from submission until the message sat on a live disk at the end; ``None`` unless delivered.

    Larger than the delivery delay for mail that was accepted, lost with a
    disk, and brought back by a restore or a disk recovery.
    """
    if record.final_state != "delivered" or record.final_at is None:
        return None
    return record.final_at - record.submitted_at


def bounce_delay(record: MessageRecord) -> float | None:
    """Seconds from submission to the bounce; ``None`` unless bounced."""
    if record.final_state != "bounced" or record.final_at is None:
        return None
    return record.final_at - record.submitted_at


def delayed(record: MessageRecord, over: float, end: float) -> bool:
    """True when the message was not readable in a mailbox within *over* seconds of its submission.

    That is mail delivered later than that (``availability_delay``, so the
    time it waited in a receiving server's delivery queue counts), or mail
    still queued (in a sender's queue, a backup MX's or a server's delivery
    queue) at *end* having waited longer than that. Mail that bounced, was
    lost or is stranded is not delayed: it failed, and its own state counts it.
    """
    if record.final_state == "delivered":
        waited = availability_delay(record)
        return waited is not None and waited > over
    return record.final_state == "queued" and end - record.submitted_at > over


DELAY_MARKS = (60.0, 300.0, 3600.0, 7200.0, 86400.0)
"""The delays reports count mail readable later than: 1 minute, 5 minutes, 1 hour, 2 hours, 1 day."""


def mailbox_delays(
    records: Sequence[MessageRecord], end: float, marks: Sequence[float] = DELAY_MARKS
) -> dict[float, int]:
    """How many of *records* were ``delayed`` beyond each of *marks* (seconds)."""
    return {over: sum(1 for r in records if delayed(r, over, end)) for over in marks}


def left_queue_at(record: MessageRecord) -> float | None:
    """When the message left its sender's queue (accepted or bounced); ``None`` if still queued."""
    if record.accepted_at is not None:
        return record.accepted_at
    return record.bounced_at


def in_queue_before(record: MessageRecord, t: float) -> bool:
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
def queue_depth(
    records: Iterable[MessageRecord], key: Callable[[MessageRecord], str] = lambda r: r.group
) -> dict[str, list[tuple[float, int]]]:
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
    records: Iterable[MessageRecord],
    t: float,
    buckets: Sequence[int] = QSHAPE_MINUTES,
    key: Callable[[MessageRecord], str] = lambda r: r.group,
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


# ---------------------------------------------------------------- recoveries
@dataclass(frozen=True)
class Storm:
    """The load on a server after it came back, and how long its backlog took to drain.

    ``backlog`` is every message waiting for this server when it came back:
    ``backlog_senders`` in their senders' queues plus ``backlog_relays`` held
    on a backup MX for it. ``peak_per_minute`` is the most SMTP sessions in
    one simulated minute while the backlog drained (at least the first hour).
    ``per_minute`` maps a simulated minute after ``at`` (0, 1, ...) to the
    SMTP sessions the server saw in it, until ``until`` (the next failure or
    the end). ``drained_90`` / ``drained`` are seconds after ``at`` until 90% /
    all of the backlog had stopped waiting (accepted by a server that is not a
    relay, forwarded by the relay, or bounced); ``None`` if that did not
    happen before ``until``.
    """

    server: str
    at: float
    until: float
    backlog: int
    backlog_senders: int
    backlog_relays: int
    peak_per_minute: int
    peak_at: float
    first_hour: int
    drained_90: float | None
    drained: float | None
    per_minute: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    #: when each backlog message stopped waiting (``None``: it never did), earliest first
    left: tuple[float | None, ...] = field(default=(), compare=False, repr=False)


def _drain_time(leaves: list[float | None], at: float, until: float, share: float) -> float | None:
    if not leaves:
        return 0.0
    need = max(1, math.ceil(share * len(leaves)))
    done = sorted(t for t in leaves if t is not None and t <= until)
    if len(done) < need:
        return None
    return done[need - 1] - at


def relay_backlog(record: MessageRecord, t: float, relays: frozenset[str], relay_left: Mapping[str, float]) -> bool:
    """True if the message sat on a backup MX, not yet passed on, just before instant *t*."""
    if record.accepted_by not in relays or record.accepted_at is None or record.accepted_at >= t:
        return False
    left = relay_left.get(record.message_id)
    return left is None or left >= t


def stopped_waiting_at(record: MessageRecord, relays: frozenset[str], relay_left: Mapping[str, float]) -> float | None:
    """When the message stopped waiting for its server: accepted by a non-relay, forwarded by a relay, or bounced."""
    if record.accepted_by in relays:
        return relay_left.get(record.message_id)
    return left_queue_at(record)


def recovery_storms(
    records: Iterable[MessageRecord],
    attempts: Iterable[tuple[float, str]],
    intervals: dict[str, list[Interval]],
    destination: Callable[[MessageRecord], str],
    relays: frozenset[str] = frozenset(),
    relay_left: Mapping[str, float] | None = None,
) -> list[Storm]:
    """One ``Storm`` per recovery: backlog, peak sessions per simulated minute, first-hour load, drain times.

    *destination* maps a record to the server its mail is meant for;
    *relays* are the backup MX hosts and *relay_left* says when a relay
    passed a message on (or gave up on it).
    """
    records = list(records)
    relay_left = relay_left or {}
    by_server: dict[str, list[float]] = {}
    for t, server in attempts:
        by_server.setdefault(server, []).append(t)
    for times in by_server.values():
        times.sort()
    storms = []
    for at, server in recoveries(intervals):
        until = next((iv.end for iv in intervals[server] if iv.start == at), at)
        times = by_server.get(server, [])
        per_minute: Counter[int] = Counter(
            int((t - at) // 60) for t in times[bisect_left(times, at) : bisect_left(times, until)]
        )
        mine = [r for r in records if destination(r) == server]
        queued = [r for r in mine if in_queue_before(r, at)]
        held = [r for r in mine if relay_backlog(r, at, relays, relay_left)]
        backlog = [stopped_waiting_at(r, relays, relay_left) for r in queued + held]
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
                backlog_senders=len(queued),
                backlog_relays=len(held),
                peak_per_minute=peak,
                peak_at=at + 60 * peak_minute,
                first_hour=sum(n for minute, n in per_minute.items() if minute < 60),
                drained_90=_drain_time(backlog, at, until, 0.9),
                drained=drained,
                per_minute=dict(per_minute),
                left=tuple(sorted(backlog, key=lambda t: math.inf if t is None else t)),
            )
        )
    return storms


@dataclass(frozen=True, slots=True)
class RetryFloor:
    """The backlog message of a recovery whose sender tried it again last: ``after`` seconds after the recovery.

    However much a recovered server can take, its backlog cannot drain before
    this attempt: the senders' retry schedules set that floor.
    """

    message: str
    group: str
    policy: str
    after: float


def retry_floor(backlog: Iterable[MessageRecord], tries: Mapping[str, Sequence[float]], at: float) -> RetryFloor | None:
    """The message of *backlog* whose first attempt at or after *at* came last (*tries*: attempt times by message,
    in order); ``None`` when no backlog message was tried again."""
    last: RetryFloor | None = None
    for record in backlog:
        times = tries.get(record.message_id, ())
        i = bisect_left(times, at)
        if i < len(times) and (last is None or times[i] - at > last.after):
            last = RetryFloor(record.message_id, record.group, record.policy, times[i] - at)
    return last


def retry_floors(
    records: Sequence[MessageRecord],
    attempts: Iterable[tuple[str, float]],
    storms: Sequence[Storm],
    destination: Callable[[MessageRecord], str],
) -> list[RetryFloor | None]:
    """For each storm, the backlog message in senders' queues that was tried again last (*attempts*:
    ``(message id, time)`` of every attempt): what keeps any capacity from draining the backlog sooner."""
    tries: dict[str, list[float]] = {}
    for message, t in attempts:
        tries.setdefault(message, []).append(t)
    for times in tries.values():
        times.sort()
    return [
        retry_floor((r for r in records if destination(r) == s.server and in_queue_before(r, s.at)), tries, s.at)
        for s in storms
    ]
