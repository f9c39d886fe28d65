"""The analysis of one run: every number the outputs show, computed once.

``RunFacts`` is what a run leaves behind: its ledger rows, its typed events,
and the scenario facts the numbers need (servers with their MX preferences,
sender groups with their policy labels, the windows of submission time, the
clock). A live run (``simulator.api``) and a results folder read back
(``simulator.report.data``) both build one; ``Analysis`` then answers every
question from it: final-state counts overall, per window and per sender
group, delivery delays, each server's state over time, where each message
was meant to go (the same MX model the engine routes with), recovery storms
with the backlog in senders' queues and on backup MX hosts, capacity
turn-aways, duplicates and bounce reasons, and foreign sessions (traffic
from outside the run, kept apart from the ledger). ``summary.json``, ``timeline.json``,
thresholds, the CLI tables, ``compare`` and the report all read these.

It never runs the engine or a retry policy: what a policy would do (the time
it gives up) arrives as a fact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from . import metrics
from .clock import SimClock
from .durations import format_duration
from .events import (
    AttemptEvent,
    BackupEvent,
    BackupScheduleEvent,
    BounceEvent,
    CrashEvent,
    DiskLostEvent,
    DiskRecoveredEvent,
    DnsEvent,
    Event,
    FaultClearedEvent,
    FaultEvent,
    ForeignEvent,
    RelayedEvent,
    ReplyEvent,
    RestoreEvent,
    ServerEvent,
)
from .ledger import MessageRecord
from .schema.incident import Interval, disk_intervals, recoveries, server_intervals, short_time
from .schema.mx import MxHistory, MxHost
from .schema.states import STATES

__all__ = ["ServerFacts", "SenderFacts", "RunFacts", "Window", "Analysis", "mark_of"]


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """A receiving server as the numbers need it."""

    name: str
    domains: tuple[str, ...]
    initially: str = "up"
    preference: int = 10
    relay: bool = False
    delivery_per_minute: float | None = None  #: the capacity of its delivery into the mailboxes (None: at once)


@dataclass(frozen=True, slots=True)
class SenderFacts:
    """A sender group: its size, its retry policy's label, and when that policy gives up on mail that never gets through."""

    name: str
    count: int | None
    policy: str
    gives_up_after: float | None


@dataclass
class RunFacts:
    """Everything a run leaves behind that its numbers are computed from."""

    scenario: str
    seed: int
    clock: SimClock
    servers: tuple[ServerFacts, ...]
    senders: tuple[SenderFacts, ...]
    windows: tuple[tuple[str, float, float], ...]
    records: list[MessageRecord]
    events: Sequence[Event]
    description: str = ""
    timezone: str | None = None
    windows_declared: bool = False
    transport: str = "wire"
    wall_seconds: float = 0.0
    notifications: int = 0
    sources: tuple[dict[str, Any], ...] = ()
    interrupted_by: str = ""  #: what stopped the run before the clock's end (``SIGINT``, ``SIGTERM``)
    stopped_at: float | None = None  #: when an interrupted run stopped, in simulated seconds
    live: dict[str, Any] | None = None  #: how a live run was served: speed, second 0 on the wall clock, ports
    """The public reports the scenario encodes: ``title``, ``url``, ``published``, ``via``, ``quotes``."""


@dataclass(frozen=True)
class Window:
    """A window of submission time with the states of the mail submitted in it."""

    label: str
    start: float
    end: float
    counts: dict[str, int]
    closed: bool = False  #: the window reaches the clock's end and holds mail sent at that very instant

    @property
    def total(self) -> int:
        """Messages submitted in the window."""
        return sum(self.counts.values())

    def holds(self, t: float) -> bool:
        """Whether mail submitted at *t* belongs to the window: ``[start, end)``, or ``[start, end]`` when closed."""
        return self.start <= t < self.end or (self.closed and t == self.end)


def mark_of(event: Event) -> dict[str, Any] | None:
    """The incident mark an event stands for (``simulator.schema.incident``), or ``None``."""
    if isinstance(event, ServerEvent):
        return {"t": event.t, "type": "server", "server": event.server, "state": event.state}
    if isinstance(event, CrashEvent):
        return {"t": event.t, "type": "crash", "server": event.server, "state": event.state, "disk": event.disk}
    if isinstance(event, BackupEvent):
        return {"t": event.t, "type": "backup", "server": event.server, "ok": event.ok, "messages": event.messages}
    if isinstance(event, RestoreEvent):
        mark = {"t": event.t, "type": "restore", "server": event.server, "from_server": event.from_server}
        mark["backup_taken_at"] = event.backup_taken_at
        mark["messages"] = event.messages
        if event.state == metrics.UP:
            mark["state"] = event.state
        return mark
    if isinstance(event, (DiskRecoveredEvent, DiskLostEvent)):
        return {"t": event.t, "type": event.type, "server": event.server, "messages": event.messages}
    return None


def _counts(records: Sequence[MessageRecord]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for r in records:
        counts[r.final_state] += 1
    return counts


class Analysis:
    """All the measures of one run, each computed once from its ``RunFacts``."""

    def __init__(self, facts: RunFacts) -> None:
        self.facts = facts
        self.clock = facts.clock
        self.records = facts.records
        attempts: list[tuple[float, str]] = []
        marks: list[dict[str, Any]] = []
        dns: list[tuple[float, str, list[str]]] = []
        relay_left: dict[str, float] = {}
        turned_away: list[tuple[float, str]] = []
        faults: list[FaultEvent | FaultClearedEvent] = []
        foreign: list[ForeignEvent] = []
        for event in facts.events:
            if isinstance(event, AttemptEvent):
                attempts.append((event.t, event.server))
            elif isinstance(event, ReplyEvent):
                if event.turned_away:
                    turned_away.append((event.t, event.server))
            elif isinstance(event, RelayedEvent):
                relay_left.setdefault(event.message, event.t)
            elif isinstance(event, BounceEvent):
                if event.relay:
                    relay_left.setdefault(event.message, event.t)
            elif isinstance(event, DnsEvent):
                dns.append((event.t, event.domain, list(event.mx)))
            elif isinstance(event, (FaultEvent, FaultClearedEvent)):
                faults.append(event)
            elif isinstance(event, ForeignEvent):
                foreign.append(event)
            else:
                mark = mark_of(event)
                if mark is not None:
                    marks.append(mark)
        self.attempts_on_wire = attempts
        self.marks = marks
        self.dns_changes = dns
        self.relay_left = relay_left
        self.turned_away_at = turned_away
        self.fault_events = faults
        self.foreign_sessions = foreign
        hosts = [MxHost(s.name, s.domains, s.preference, s.relay) for s in facts.servers]
        self.routes = MxHistory(hosts, dns)
        self.relays = self.routes.relays

    # ------------------------------------------------------------ the scenario
    @property
    def name(self) -> str:
        """The scenario's name."""
        return self.facts.scenario

    @property
    def end(self) -> float:
        """The clock's end in simulated seconds."""
        return self.clock.end

    @property
    def servers(self) -> list[str]:
        """Server names, in scenario order."""
        return [s.name for s in self.facts.servers]

    @property
    def groups(self) -> list[str]:
        """Sender group names, in scenario order (then any others found in the ledger)."""
        names = [s.name for s in self.facts.senders]
        return names + sorted({r.group for r in self.records} - set(names))

    def gives_up(self, group: str) -> float | None:
        """Seconds after which the group's policy bounces mail that never gets through."""
        return next((s.gives_up_after for s in self.facts.senders if s.name == group), None)

    def policy_of(self, group: str) -> str:
        """The label of the group's retry policy."""
        found = next((s.policy for s in self.facts.senders if s.name == group), None)
        if found is not None:
            return found
        return next((r.policy for r in self.records if r.group == group), "")

    # ------------------------------------------------------------ counts
    @cached_property
    def counts(self) -> dict[str, int]:
        """Final-state counts of all mail."""
        return _counts(self.records)

    @property
    def messages(self) -> int:
        """Messages submitted."""
        return len(self.records)

    @cached_property
    def attempts(self) -> int:
        """Delivery attempts, including those deferred without connecting."""
        return sum(r.attempts for r in self.records)

    @cached_property
    def connections(self) -> int:
        """Attempts of original senders that reached the wire."""
        return sum(r.connections for r in self.records)

    @cached_property
    def windows(self) -> list[Window]:
        """The windows of submission time with the states of their mail."""
        out = []
        for label, lo, hi in self.facts.windows:
            shape = Window(label, lo, hi, {}, closed=hi >= self.end)
            out.append(Window(label, lo, hi, _counts(self.sent_in(shape)), closed=shape.closed))
        return out

    def sent_in(self, window: Window) -> list[MessageRecord]:
        """The messages submitted in *window*."""
        return [r for r in self.records if window.holds(r.submitted_at)]

    def window_of(self, t: float) -> str:
        """The label of the first window containing submission time *t*."""
        return next((w.label for w in self.windows if w.holds(t)), "")

    @cached_property
    def by_group(self) -> dict[str, dict[str, int]]:
        """Final-state counts per sender group, in scenario order."""
        out: dict[str, dict[str, int]] = {}
        for g in self.groups:
            mine = [r for r in self.records if r.group == g]
            if mine:
                out[g] = _counts(mine)
        return out

    @cached_property
    def delays(self) -> dict[str, dict[str, float]]:
        """Seconds from submission to the first 250, per sender group: count, p50, p95, max (accepted mail only)."""
        by_group: dict[str, list[float]] = {}
        for r in self.records:
            delay = metrics.delivery_delay(r)
            if delay is not None:
                by_group.setdefault(r.group, []).append(delay)
        ordered = [g for g in self.groups if g in by_group]
        return {
            g: {
                "count": len(by_group[g]),
                "p50": metrics.percentile(by_group[g], 50),
                "p95": metrics.percentile(by_group[g], 95),
                "max": max(by_group[g]),
            }
            for g in ordered
        }

    @cached_property
    def duplicates(self) -> int:
        """Messages accepted more than once."""
        return sum(1 for r in self.records if r.copies > 1)

    @cached_property
    def delay_warnings(self) -> int:
        """Delay warnings sent to originators."""
        return sum(r.delay_warnings for r in self.records)

    @cached_property
    def bounces(self) -> dict[str, int]:
        """Bounced messages per status and reason (``5.1.1 permanent failure: 550 ...``), most frequent first."""
        found = Counter(
            f"{r.bounce_status} {r.bounce_reason}".strip() for r in self.records if r.final_state == "bounced"
        )
        return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))

    @cached_property
    def turned_away(self) -> dict[str, int]:
        """Sessions each server turned away with 421 at a capacity limit."""
        found = Counter(server for _, server in self.turned_away_at)
        return {name: found.get(name, 0) for name in self.servers}

    @cached_property
    def foreign(self) -> dict[str, dict[str, int]]:
        """Per server: foreign sessions (connections the engine did not open), the messages they got a
        250 for (kept apart, never in the ledger), and how many of those named a message of the run."""
        out = {name: {"sessions": 0, "messages": 0, "run_ids": 0} for name in self.servers}
        for e in self.foreign_sessions:
            tally = out.setdefault(e.server, {"sessions": 0, "messages": 0, "run_ids": 0})
            tally["sessions"] += 1
            tally["messages"] += e.messages
            tally["run_ids"] += e.run_ids
        return out

    # ------------------------------------------------------------ routing and time
    def domain_of(self, record: MessageRecord) -> str:
        """The recipient's domain."""
        return record.recipient.rpartition("@")[2].lower()

    def destination(self, record: MessageRecord) -> str:
        """The server a message was meant for: its domain's most preferred MX host that is not a relay, when it was sent."""
        primary = self.routes.primary(self.domain_of(record), record.submitted_at)
        if primary is not None:
            return primary
        return record.accepted_by or (self.servers[0] if self.servers else "")

    def intervals(self, kind: str = "states") -> dict[str, list[Interval]]:
        """Each server's listening (``states``) or disk (``disks``) state over time."""
        initial = {s.name: s.initially for s in self.facts.servers}
        if kind == "disks":
            return disk_intervals(self.marks, initial, self.end)
        return server_intervals(self.marks, initial, self.end)

    @cached_property
    def states(self) -> dict[str, list[Interval]]:
        """Each server's listening state over time."""
        return self.intervals("states")

    @cached_property
    def recovery_times(self) -> list[tuple[float, str]]:
        """``(t, server)`` for every moment a server that was down accepts mail again."""
        return recoveries(self.states)

    def short(self, t: float) -> str:
        """``10:38 10/26``."""
        return short_time(self.clock, t)

    # ------------------------------------------------------------ recoveries
    @cached_property
    def storms(self) -> list[metrics.Storm]:
        """The recovery storms: backlog, load and drain after each recovery."""
        return metrics.recovery_storms(
            self.records, self.attempts_on_wire, self.states, self.destination, self.relays, self.relay_left
        )

    @cached_property
    def retry_floors(self) -> list[metrics.RetryFloor | None]:
        """For each recovery storm, its backlog message tried again last (``metrics.retry_floors``)."""
        tries = [(e.message, e.t) for e in self.facts.events if isinstance(e, AttemptEvent)]
        return metrics.retry_floors(self.records, tries, self.storms, self.destination)

    def turned_away_between(self, server: str, lo: float, hi: float) -> int:
        """Sessions *server* turned away at its capacity limit in ``[lo, hi)``."""
        return sum(1 for t, name in self.turned_away_at if name == server and lo <= t < hi)

    @cached_property
    def recoveries(self) -> list[dict[str, Any]]:
        """Each recovery storm as ``summary.json`` lists it."""
        return [
            {
                "server": s.server,
                "at": self.clock.iso(s.at),
                "backlog": s.backlog,
                "backlog_senders": s.backlog_senders,
                "backlog_relays": s.backlog_relays,
                "peak_attempts_per_minute": s.peak_per_minute,
                "peak_at": self.clock.iso(s.peak_at),
                "attempts_first_hour": s.first_hour,
                "drained_90_seconds": s.drained_90,
                "drained_seconds": s.drained,
                "turned_away_421": self.turned_away_between(s.server, s.at, s.until),
            }
            for s in self.storms
        ]

    # ------------------------------------------------------------ into the mailboxes
    @cached_property
    def delivery_queues(self) -> bool:
        """Whether any server's delivery into the mailboxes was not immediate (a capacity, or a delivery-queue fault)."""
        declared = any(s.delivery_per_minute is not None for s in self.facts.servers)
        return declared or any(
            e.fault.get("kind") == "delivery-queue" for e in self.fault_events if isinstance(e, FaultEvent)
        )

    def delayed(self, records: Sequence[MessageRecord] | None = None) -> dict[float, int]:
        """How many messages were readable in a mailbox later than each of ``metrics.DELAY_MARKS`` (``metrics.delayed``)."""
        return metrics.mailbox_delays(self.records if records is None else records, self.end)

    @cached_property
    def mailbox_delays(self) -> dict[str, dict[str, Any]]:
        """Per sender group (and ``all mail``): messages, how many were delayed beyond each mark, and how many wait still."""
        rows: dict[str, dict[str, Any]] = {}
        for label, mine in [
            ("all mail", self.records),
            *((g, [r for r in self.records if r.group == g]) for g in self.by_group),
        ]:
            rows[label] = {
                "messages": len(mine),
                "delayed": self.delayed(mine),
                "queued": sum(1 for r in mine if r.final_state == "queued"),
                "accepted": sum(1 for r in mine if r.accepted_at is not None),
            }
        return rows

    # ------------------------------------------------------------ documents
    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json`` (``delayed`` only when a server's delivery into the mailboxes was not immediate)."""
        out = self._summary()
        if self.delivery_queues:
            out["delayed"] = {format_duration(over): n for over, n in self.delayed().items()}
        return out

    def _summary(self) -> dict[str, Any]:
        f = self.facts
        return {
            "scenario": f.scenario,
            "seed": f.seed,
            "messages": self.messages,
            "attempts": self.attempts,
            "connections": self.connections,
            "counts": dict(self.counts),
            "wall_seconds": round(f.wall_seconds, 3),
            "transport": f.transport,
            "clock": {"start": self.clock.iso(0), "end": self.clock.iso(self.end)},
            "by_policy": self.by_group,
            "policies": {g: self.policy_of(g) for g in self.by_group},
            "windows": [
                {
                    "label": w.label,
                    "from": self.clock.iso(w.start),
                    "to": self.clock.iso(w.end),
                    "messages": w.total,
                    "counts": w.counts,
                }
                for w in self.windows
            ],
            "delay_warnings": self.delay_warnings,
            "notifications": f.notifications,
            "duplicates": self.duplicates,
            "bounces": self.bounces,
            "turned_away": self.turned_away,
            "foreign": self.foreign,
            "delivery_delay": self.delays,
            "recoveries": self.recoveries,
            **self.status,
            **({"live": f.live} if f.live else {}),
        }

    @property
    def status(self) -> dict[str, str]:
        """``status``: ``complete``, or ``partial`` with ``interrupted_by`` and ``stopped_at`` (an interrupted run)."""
        f = self.facts
        if not f.interrupted_by:
            return {"status": "complete"}
        return {"status": "partial", "interrupted_by": f.interrupted_by, "stopped_at": self.clock.iso(f.stopped_at)}

    def timeline_document(self) -> dict[str, Any]:
        """``timeline.json``: what a report needs about the incident, besides the ledger and the events."""
        f = self.facts

        def spans(intervals: dict[str, list[Interval]]) -> dict[str, list[dict[str, Any]]]:
            return {
                name: [{"from": iv.start, "to": iv.end, "state": iv.state} for iv in ivs]
                for name, ivs in intervals.items()
            }

        return {
            "scenario": f.scenario,
            "description": f.description.strip(),
            "clock": {
                "start": self.clock.iso(0),
                "end": self.clock.iso(self.end),
                "seconds": self.end,
                "timezone": f.timezone,
            },
            "servers": [
                {
                    "name": s.name,
                    "domains": list(s.domains),
                    "initially": s.initially,
                    "preference": s.preference,
                    "relay": s.relay,
                    "delivery_per_minute": s.delivery_per_minute,
                }
                for s in f.servers
            ],
            "sources": list(f.sources),
            "senders": [
                {"name": s.name, "count": s.count, "policy": s.policy, "gives_up_after": s.gives_up_after}
                for s in f.senders
            ],
            "windows_declared": f.windows_declared,
            "windows": [{"label": label, "start": lo, "end": hi} for label, lo, hi in f.windows],
            "marks": self.marks,
            "states": spans(self.states),
            "disks": spans(self.intervals("disks")),
            "recoveries": [{"t": t, "server": name} for t, name in self.recovery_times],
        }

    # ------------------------------------------------------------ the timeline as it ran
    @cached_property
    def timeline_events(self) -> list[Event]:
        """The timeline's own events in order, with their notes: states, crashes, backups, restores, disks, faults, DNS."""
        kinds = (
            ServerEvent,
            CrashEvent,
            BackupEvent,
            BackupScheduleEvent,
            RestoreEvent,
            DiskRecoveredEvent,
            DiskLostEvent,
            FaultEvent,
            FaultClearedEvent,
            DnsEvent,
        )
        return [e for e in self.facts.events if isinstance(e, kinds)]

    @cached_property
    def fault_spans(self) -> list[tuple[FaultEvent, float]]:
        """Each fault switched on, with the simulated second it stops.

        That is its ``until``, the server's next ``clear-faults`` entry, or
        the end of the run, whichever comes first.
        """
        out: list[tuple[FaultEvent, float]] = []
        for i, event in enumerate(self.fault_events):
            if not isinstance(event, FaultEvent):
                continue
            stop = self.clock.seconds(datetime.fromisoformat(event.until)) if event.until else self.end
            for later in self.fault_events[i + 1 :]:
                if isinstance(later, FaultClearedEvent) and later.server == event.server:
                    stop = min(stop, later.t)
                    break
            out.append((event, min(stop, self.end)))
        return out

    @cached_property
    def window_groups(self) -> list[dict[str, dict[str, int]]]:
        """Final-state counts per sender group within each window, in the order of ``windows``."""
        out = []
        for w in self.windows:
            inside = self.sent_in(w)
            out.append({g: _counts(mine) for g in self.groups if (mine := [r for r in inside if r.group == g])})
        return out

    # ------------------------------------------------------------ queues
    def queue_depth(self, per_group: bool = True) -> dict[str, list[tuple[float, int]]]:
        """Messages waiting in senders' queues over time, per sender group (or ``"all"``), as step functions."""
        if per_group:
            return metrics.queue_depth(self.records)
        return metrics.queue_depth(self.records, key=lambda r: "all")

    def waiting_before(self, t: float) -> list[MessageRecord]:
        """Messages waiting in their senders' queues just before instant *t*."""
        return [r for r in self.records if metrics.in_queue_before(r, t)]

    def qshape(self, t: float, buckets: Sequence[int]) -> dict[str, list[int]]:
        """Queue ages just before *t*, like Postfix's ``qshape`` (``metrics.qshape``)."""
        return metrics.qshape(self.records, t, buckets)

    @cached_property
    def last_activity(self) -> float:
        """The last submission, acceptance, bounce, relay hand-off or timeline mark (0 for none)."""
        times = [r.submitted_at for r in self.records]
        times += [t for r in self.records for t in (r.accepted_at, r.bounced_at) if t is not None]
        times += list(self.relay_left.values()) + [float(m["t"]) for m in self.marks]
        return max(times, default=0.0)
