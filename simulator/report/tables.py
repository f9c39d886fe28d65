"""The rows behind the report's tables, each number read from the run's ``Analysis``.

Windows with their plain-language sentence, sender groups, qshape, recovery
storms, the incident's events (faults in words, runs of scheduled backups
folded into one row) and the reasons mail bounced.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from .. import metrics
from ..durations import format_duration
from ..events import (
    BackupEvent,
    BackupScheduleEvent,
    CrashEvent,
    DiskLostEvent,
    DiskRecoveredEvent,
    DnsEvent,
    Event,
    FaultClearedEvent,
    FaultEvent,
    RestoreEvent,
    ServerEvent,
)
from ..ledger import STATES, MessageRecord
from .data import ReportData

__all__ = [
    "WindowRow",
    "SenderRow",
    "QShape",
    "IncidentRow",
    "BounceRow",
    "window_rows",
    "sender_rows",
    "qshape_tables",
    "storms",
    "incident_rows",
    "bounce_rows",
    "backup_runs",
    "fault_words",
    "duplicates_sentence",
    "sentence",
    "pct",
    "duration",
]


def pct(n: int, total: int) -> str:
    """``"12%"``, with one decimal below 1% so that small non-zero shares do not read as 0."""
    if not total:
        return ""
    share = 100 * n / total
    return f"{share:.1f}%" if 0 < share < 1 else f"{share:.0f}%"


def duration(seconds: float | None) -> str:
    """A duration for a table cell: ``1h23m``; a dash for none."""
    if seconds is None:
        return "–"
    if seconds >= 600:
        return format_duration(round(seconds / 60) * 60)
    return format_duration(round(seconds)) if seconds >= 60 else f"{seconds:.0f}s"


def _listed(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- windows
@dataclass
class WindowRow:
    """One window of submission time: what became of the mail sent in it."""

    number: int
    label: str
    start: float
    end: float
    counts: dict[str, int]
    by_group: dict[str, dict[str, int]]
    sentence: str

    @property
    def total(self) -> int:
        """Messages submitted in the window."""
        return sum(self.counts.values())


def _span(data: ReportData, lo: float, hi: float) -> str:
    if lo <= 0:
        return f"Mail sent before {data.long(hi)}"
    if hi >= data.end:
        return f"Mail sent after {data.long(lo)}"
    return f"Mail sent between {data.long(lo)} and {data.long(hi)}"


def _share(n: int, delivered: int) -> str:
    """The subject of a clause about *n* of the *delivered* messages (nothing for a single message)."""
    if delivered == 1:
        return ""
    return "all of them " if n == delivered else f"{n} of them "


class _Times:
    """The distinct times of a group of messages, kept only as far as a sentence names them (up to three, or the first)."""

    __slots__ = ("few", "first", "more")

    def __init__(self) -> None:
        self.first = math.inf
        self.few: set[float] = set()
        self.more = False

    def add(self, t: float) -> None:
        self.first = min(self.first, t)
        if not self.more:
            self.few.add(t)
            if len(self.few) > 3:
                self.more, self.few = True, set()

    def named(self, data: ReportData) -> str:
        """The times kept, as ``_listed`` words (only when there are three or fewer)."""
        return _listed([data.long(t) for t in sorted(self.few)])


class _Late:
    """Delivered mail that was unreadable for a while, taken one message at a time: why, in a clause.

    Held on a backup MX (and passed on, or delivered when its primary came
    back), restored from a backup, or recovered from the failed disk. It
    keeps counters, not the messages: a window of a million messages costs
    what a window of ten does.
    """

    def __init__(self, data: ReportData) -> None:
        self._data = data
        a = data.analysis
        self._relays = a.relays
        self._relay_left = a.relay_left
        self.count = 0
        self._held: Counter[tuple[str, str, bool]] = Counter()
        self._held_times: dict[tuple[str, str, bool], _Times] = {}
        self._rest: Counter[float] = Counter()

    def add(self, r: MessageRecord) -> None:
        """*r*: delivered, with ``final_at`` after ``accepted_at``."""
        assert r.final_at is not None
        self.count += 1
        relayed = r.accepted_by in self._relays
        if relayed:
            self._hold(r)
        # Relayed mail that was lost with a disk after its relay passed it on, and came back later.
        if not relayed or r.final_at > self._relay_left.get(r.message_id, r.final_at):
            self._rest[r.final_at] += 1

    def _hold(self, r: MessageRecord) -> None:
        a = self._data.analysis
        left = a.relay_left.get(r.message_id, r.final_at)
        primary = a.destination(r)
        back = max(
            (t for t, name in a.recovery_times if name == primary and left is not None and t <= left), default=None
        )
        key = (r.accepted_by, primary, back is not None)
        self._held[key] += 1
        times = self._held_times.get(key)
        if times is None:
            times = self._held_times[key] = _Times()
        times.add(back if back is not None else left if left is not None else r.accepted_at or 0.0)

    def note(self, delivered: int) -> str:
        """The clause (with its leading comma), or "" when no delivered mail was late."""
        if not self.count:
            return ""
        data = self._data
        note = self._held_note(delivered) if self._held else ""
        if not self._rest:
            return note
        when, _ = self._rest.most_common(1)[0]
        kinds = {m["type"] for m in data.marks if m["t"] == when}
        how = (
            "restored from a backup"
            if "restore" in kinds
            else "read back from the failed disk"
            if "disk_recovered" in kinds
            else "back on a live disk"
        )
        rest = sum(self._rest.values())
        mostly = "" if len(self._rest) == 1 else " (most)"
        return f"{note}, {_share(rest, delivered)}readable again only from {data.long(when)}{mostly}, {how}"

    def _held_note(self, delivered: int) -> str:
        """Mail a backup MX accepted and passed on later: where it waited and when its primary took it."""
        key, _ = self._held.most_common(1)[0]
        relay, primary, came_back = key
        times = self._held_times[key]
        first = self._data.long(times.first)
        if came_back:
            how = f"delivered when {primary} came back at {f'{first} (and later)' if times.more else times.named(self._data)}"
        else:
            how = f"passed on to {primary} {f'from {first}' if times.more else 'at ' + times.named(self._data)}"
        mostly = "" if len(self._held) == 1 else " (most)"
        return f", {_share(sum(self._held.values()), delivered)}held on the backup MX {relay} and {how}{mostly}"


def _who(n: int, total: int, plural: str, singular: str) -> str:
    """``all 73 were`` / ``12 (10%) were`` / ``it was`` / ``1 (50%) was``: the subject of a clause."""
    if n == total:
        return f"all {n} {plural}" if n > 1 else f"it {singular}"
    return f"{n} ({pct(n, total)}) {plural if n > 1 else singular}"


def sentence(data: ReportData, lo: float, hi: float, records: Iterable[MessageRecord]) -> str:
    """One plain-language sentence: what happened to the mail sent between *lo* and *hi*.

    *records* are read once, one at a time (a window's rows can be made as they are read).
    """
    counts = dict.fromkeys(STATES, 0)
    late = _Late(data)
    bounced: Counter[str] = Counter()
    for r in records:
        counts[r.final_state] += 1
        if r.final_state == "delivered":
            if r.accepted_at is not None and r.final_at is not None and r.final_at > r.accepted_at:
                late.add(r)
        elif r.final_state == "bounced":
            bounced[r.group] += 1
    total = sum(counts.values())
    head = _span(data, lo, hi)
    if not total:
        return f"{head}: no messages were sent."
    parts = []
    d = counts["delivered"]
    if d:
        parts.append(f"{_who(d, total, 'are', 'is')} in a mailbox on a live server{late.note(d)}")
    s = counts["stranded"]
    if s:
        their = "their senders" if s > 1 else "its sender"
        exist = "exist" if s > 1 else "exists"
        parts.append(
            f"{_who(s, total, 'were', 'was')} accepted with a 250 but {exist} only on the failed disk, "
            f"and {their} received no bounce"
        )
    lost = counts["lost"]
    if lost:
        their = "their senders" if lost > 1 else "its sender"
        parts.append(
            f"{_who(lost, total, 'were', 'was')} accepted and then lost with every copy, and {their} received no bounce"
        )
    b = counts["bounced"]
    if b:
        groups = bounced.most_common(3)
        who = ", ".join(f"{g} {n}" for g, n in groups)
        their = "their senders" if b > 1 else "its sender"
        parts.append(f"{_who(b, total, 'bounced', 'bounced')} and {their} received a non-delivery report ({who})")
    q = counts["queued"]
    if q:
        parts.append(f"{_who(q, total, 'are', 'is')} still in a sender's queue at the end of the run")
    noun = "messages" if total > 1 else "message"
    return f"{head} ({total} {noun}): " + "; ".join(parts) + "."


def window_rows(data: ReportData) -> list[WindowRow]:
    """The post-mortem's table: one row per window, with counts per state and per sender group."""
    a = data.analysis
    rows = []
    for n, (w, by_group) in enumerate(zip(a.windows, a.window_groups, strict=True), 1):
        inside = a.sent_in(w)
        rows.append(
            WindowRow(n, w.label, w.start, w.end, dict(w.counts), by_group, sentence(data, w.start, w.end, inside))
        )
    return rows


# ---------------------------------------------------------------- senders
@dataclass
class SenderRow:
    """A sender group: its policy, when it gives up, its outcomes and delivery delays (``p50``, ``p95``, ``max``)."""

    group: str
    policy: str
    gives_up: float | None
    counts: dict[str, int]
    delays: dict[str, float]

    @property
    def total(self) -> int:
        """Messages the group submitted."""
        return sum(self.counts.values())


def sender_rows(data: ReportData) -> list[SenderRow]:
    """One row per sender group, in scenario order."""
    a = data.analysis
    return [
        SenderRow(g, a.policy_of(g), a.gives_up(g), dict(counts), dict(a.delays.get(g, {})))
        for g, counts in a.by_group.items()
    ]


# ---------------------------------------------------------------- queues
@dataclass
class QShape:
    """Queue ages at one instant, like Postfix's qshape: rows of ``[total, per bucket..., older]``."""

    title: str
    t: float
    buckets: tuple[int, ...]
    rows: dict[str, list[int]]


def qshape_tables(data: ReportData, limit: int = 4) -> list[QShape]:
    """qshape just before each recovery, at the deepest queue if there is none, and at the end if mail is still queued."""
    instants: list[tuple[str, float]] = []
    several = len(data.servers) > 1
    for t, server in data.analysis.recovery_times:
        who = f"{server} " if several else ""
        instants.append((f"just before {who}recovery at {data.short(t)}", t))
    if not instants:
        series = data.analysis.queue_depth_arrays(per_group=False)
        if "all" in series:
            times, depth = series["all"]
            deepest = int(np.argmax(depth))  # the first instant at the deepest
            if depth[deepest] > 0:
                t = float(times[deepest])
                instants.append((f"at the deepest queue, {data.short(t)}", t + 1e-3))
    if data.analysis.counts["queued"]:
        instants.append(("at the end of the run", data.end))
    instants = instants[:limit]
    oldest = max((data.analysis.oldest_waiting(t) for _, t in instants), default=0.0)
    buckets = metrics.qshape_buckets(oldest)
    return [QShape(title, t, buckets, data.analysis.qshape(t, buckets)) for title, t in instants]


def storms(data: ReportData) -> list[metrics.Storm]:
    """The recovery storms: load and backlog drain after each recovery."""
    return data.analysis.storms


# ---------------------------------------------------------------- the incident
@dataclass
class IncidentRow:
    """One line of the incident's table: when, which server (or domain), what happened, until when, the note."""

    t: float
    server: str
    what: str
    until: str
    note: str


_STAGES = {
    "greeting": "the greeting",
    "ehlo": "EHLO",
    "mail": "MAIL FROM",
    "rcpt": "RCPT",
    "data": "DATA",
    "dot": "the end of DATA",
    "all": "every reply",
}


def _sessions(fraction: float) -> str:
    return "every session" if fraction >= 1 else f"{round(100 * fraction, 1):g}% of sessions"


def _addresses(fraction: float) -> str:
    return "every address" if fraction >= 1 else f"{round(100 * fraction, 2):g}% of addresses"


def fault_words(fault: Mapping[str, Any]) -> str:
    """A fault as the scenario wrote it, in words: ``capacity: at most 2 sessions at once``, ``451 at RCPT for 30% of sessions``."""
    kind = fault.get("kind")
    stage = _STAGES.get(str(fault.get("stage")), str(fault.get("stage")))
    fraction = float(fault.get("fraction") or 1.0)
    if kind == "reply":
        to = f" to {', '.join(fault['recipients'])}" if fault.get("recipients") else ""
        if fault.get("recipients_fraction"):
            to += f" to {_addresses(float(fault['recipients_fraction']))}"
        text = f" ({fault['text']})" if fault.get("text") else ""
        return f"{fault.get('code')} at {stage} for {_sessions(fraction)}{to}{text}"
    if kind == "accept-then-drop":
        return f"accept, then drop the connection before the 250 (the sender sends it again) for {_sessions(fraction)}"
    if kind == "slow":
        where = "per reply" if fault.get("stage", "all") == "all" else f"at {stage}"
        return f"slow: {duration(float(fault.get('latency') or 0))} {where}"
    if kind == "disk-full":
        return f"disk full: 452 at {stage}"
    if kind == "greylist":
        return f"greylisting: 451 for a new sender and recipient pair, retries after {duration(float(fault.get('delay') or 0))} pass"
    if kind == "capacity":
        limits = []
        if fault.get("sessions"):
            limits.append(f"at most {fault['sessions']} session{'s' if fault['sessions'] != 1 else ''} at once")
        if fault.get("per_minute"):
            noun = "" if limits else " sessions" if fault["per_minute"] != 1 else " session"
            limits.append(f"{'' if limits else 'at most '}{fault['per_minute']}{noun} per minute")
        held = float(fault.get("session_time") or 1.0)
        each = f", each session takes {duration(held)}" if held != 1.0 else ""
        return f"capacity: {' and '.join(limits)}{each}"
    if kind == "delivery-queue":
        rate = float(fault.get("per_minute") or 0)
        how = "held" if rate <= 0 else f"{rate:g} per minute"
        who = f" for {_addresses(float(fault['recipients_fraction']))}" if fault.get("recipients_fraction") else ""
        return f"delivery into the mailboxes {how}{who} (accepted with 250 at once)"
    if kind == "fail-first":
        n = int(fault.get("attempts") or 1)
        first = "the first attempt" if n == 1 else f"the first {n} attempts"
        return f"{first} of each message fail{'s' if n == 1 else ''} with {fault.get('code')} at {stage}"
    return ", ".join(f"{k}={v}" for k, v in fault.items() if v is not None)


def _same_backup(a: BackupEvent, b: BackupEvent) -> bool:
    return (a.ok, a.reason, a.note) == (b.ok, b.reason, b.note)


def backup_runs(events: Sequence[Event], least: int = 3) -> list[list[Event]]:
    """The timeline's events in groups: *least* or more alike backups of a server in a row form one group.

    A backup run ends at the server's next event of another kind; other
    servers' events do not end it. Every other event is a group of its own.
    Groups are in the order of their first event.
    """
    groups: list[list[Event]] = []
    open_runs: dict[str, list[Event]] = {}
    for e in events:
        server = getattr(e, "server", "")
        run = open_runs.get(server)
        if (
            isinstance(e, BackupEvent)
            and run is not None
            and isinstance(run[-1], BackupEvent)
            and _same_backup(run[-1], e)
        ):
            run.append(e)
            continue
        open_runs.pop(server, None)
        group: list[Event] = [e]
        groups.append(group)
        if isinstance(e, BackupEvent):
            open_runs[server] = group
    out: list[list[Event]] = []
    for g in groups:
        out.extend([g] if len(g) >= least else [[e] for e in g])
    return sorted(out, key=lambda g: g[0].t)


def _taken(data: ReportData, iso: str) -> str:
    """A backup's time as the rest of the page writes times."""
    if not iso:
        return "latest"
    try:
        return data.short(data.analysis.clock.seconds(datetime.fromisoformat(iso)))
    except ValueError:
        return iso


def _event_words(data: ReportData, e: Event, stops: Mapping[int, float]) -> tuple[str, str, str]:
    """``(server or domain, what happened, until when)`` of one timeline event."""
    if isinstance(e, ServerEvent):
        return e.server, "up" if e.state == metrics.UP else f"down ({e.state})", ""
    if isinstance(e, CrashEvent):
        noun = "message" if e.messages_on_disk == 1 else "messages"
        return e.server, f"crash ({e.messages_on_disk} {noun} on the disk)", ""
    if isinstance(e, BackupEvent):
        return (
            e.server,
            f"backup ok ({e.messages} messages)" if e.ok else f"backup failed ({e.reason or 'no reason given'})",
            "",
        )
    if isinstance(e, RestoreEvent):
        whose = "" if e.from_server == e.server else f"{e.from_server}'s "
        return e.server, f"restore from {whose}the {_taken(data, e.backup_taken_at)} backup ({e.messages} messages)", ""
    if isinstance(e, DiskRecoveredEvent):
        return e.server, f"disk recovered ({e.messages} messages)", ""
    if isinstance(e, DiskLostEvent):
        return e.server, f"disk lost ({e.messages} messages)", ""
    if isinstance(e, FaultEvent):
        stop = stops.get(id(e), data.end)
        until = "the end of the run" if stop >= data.end else data.short(stop)
        return e.server, f"fault: {fault_words(e.fault)}", until
    if isinstance(e, FaultClearedEvent):
        return e.server, "faults cleared", ""
    if isinstance(e, DnsEvent):
        return e.domain, f"MX records now {', '.join(e.mx)} (TTL {duration(e.ttl)})", ""
    if isinstance(e, BackupScheduleEvent):
        return e.server, f"backups every {duration(e.every)}", ""
    return getattr(e, "server", ""), e.type, ""


def incident_rows(data: ReportData) -> list[IncidentRow]:
    """The incident as it ran: server states, crashes, backups (runs folded), restores, disks, faults until when, DNS."""
    a = data.analysis
    stops = {id(e): stop for e, stop in a.fault_spans}
    rows = []
    events = [e for e in a.timeline_events if not isinstance(e, BackupScheduleEvent)]
    for group in backup_runs(events):
        first, last = group[0], group[-1]
        server, what, until = _event_words(data, first, stops)
        note = getattr(first, "note", "") or ""
        if len(group) > 1 and isinstance(first, BackupEvent):
            gaps = {round(b.t - c.t) for b, c in zip(group[1:], group, strict=False)}
            every = f", every {duration(gaps.pop())}" if len(gaps) == 1 else ""
            outcome = "ok" if first.ok else f"failed ({first.reason or 'no reason given'})"
            what = f"{len(group)} backups {outcome}{every}"
            until = data.short(last.t)
        rows.append(IncidentRow(first.t, server, what, until, note))
    return rows


# ---------------------------------------------------------------- bounces and duplicates
@dataclass
class BounceRow:
    """Bounced messages with one RFC 3463 status and reason, and what that means for the originator."""

    status: str
    reason: str
    count: int
    meaning: str


_STATUS = re.compile(r"^\d\.\d{1,3}\.\d{1,3}$")


def _bounce_meaning(status: str) -> str:
    if status == "4.4.7":
        return "the sender retried until its retry lifetime ran out"
    if status.startswith("5."):
        return "a server refused it with a permanent (5xx) reply; the sender did not retry"
    if status.startswith("4."):
        return "the sender gave up after temporary (4xx) failures"
    return ""


def bounce_rows(data: ReportData) -> list[BounceRow]:
    """Why mail bounced: one row per status and reason (``Analysis.bounces``), most frequent first."""
    rows = []
    for key, n in data.analysis.bounces.items():
        status, _, reason = key.partition(" ")
        if not _STATUS.match(status):
            status, reason = "", key
        rows.append(BounceRow(status, reason, n, _bounce_meaning(status)))
    return rows


def duplicates_sentence(data: ReportData) -> str:
    """What the duplicates count means, for this run."""
    n = data.analysis.duplicates
    if not n:
        return "No message was accepted more than once: no recipient got a duplicate."
    subject = "1 message was" if n == 1 else f"{n} messages were"
    return (
        f"{subject} accepted more than once (copies above 1 in messages.csv): a server stored the message but "
        "the connection broke before the sender saw its 250 (an accept-then-drop fault), so the sender, believing "
        "the delivery failed, sent it again and the recipient finds two copies (RFC 1047)."
    )
