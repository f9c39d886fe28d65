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
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np

from .. import metrics
from ..durations import format_duration
from ..events import (
    AttemptEvent,
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
from ..ledger import LedgerBuilder, LedgerRows, MessageRecord
from ..schema.incident import Interval, disk_intervals, recoveries, server_intervals, short_time
from ..schema.mx import MxHistory, MxHost
from ..schema.states import STATES
from .columns import Columns, Floats, Ints, as_numpy, percentile
from .facts import RunFacts, SenderFacts, ServerFacts, Window
from .fold import EventFold, mark_of

__all__ = ["ServerFacts", "SenderFacts", "RunFacts", "EventFold", "Window", "Analysis", "mark_of"]


def _counts(records: Iterable[MessageRecord]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for r in records:
        counts[r.final_state] += 1
    return counts


class Analysis:
    """All the measures of one run, each computed once from its ``RunFacts``.

    The ledger is read as columns (``simulator.analysis.columns``): a run's
    own ``Ledger``, or one built row by row from other records; ``records``
    reads it back as rows, one at a time.
    """

    def __init__(self, facts: RunFacts) -> None:
        self.facts = facts
        self.clock = facts.clock
        if isinstance(facts.records, LedgerRows):
            self.ledger = facts.records.ledger
        else:
            builder = LedgerBuilder([s.name for s in facts.servers])
            for r in facts.records:
                builder.add(r)
            self.ledger = builder.finish()
        self.records: Sequence[MessageRecord] = LedgerRows(self.ledger)
        fold = facts.fold
        if fold is None:
            fold = EventFold()
            for event in facts.events:
                fold.emit(event)
        self.fold = fold
        self.marks = fold.marks
        self.dns_changes = fold.dns
        self.relay_left = fold.relay_left
        self.fault_events = fold.faults
        self.foreign_sessions = fold.foreign
        hosts = [MxHost(s.name, s.domains, s.preference, s.relay) for s in facts.servers]
        self.routes = MxHistory(hosts, fold.dns)
        self.relays = self.routes.relays

    @cached_property
    def cols(self) -> Columns:
        """The ledger's columns, with group, policy and destination numbers."""
        return Columns(self.ledger, self.groups, self._destination)

    @property
    def attempts_on_wire(self) -> list[tuple[float, str]]:
        """``(t, server)`` of every SMTP session (a list: for small runs; large ones read ``sessions``)."""
        return self.fold.all_sessions()

    def sessions(self, server: str) -> Any:
        """When *server* saw each SMTP session, sorted (a numpy array)."""
        return np.sort(as_numpy(self.fold.sessions(server), np.float64))

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
        return names + sorted({s.group for s in self.ledger.senders} - set(names))

    def gives_up(self, group: str) -> float | None:
        """Seconds after which the group's policy bounces mail that never gets through."""
        return next((s.gives_up_after for s in self.facts.senders if s.name == group), None)

    def policy_of(self, group: str) -> str:
        """The label of the group's retry policy."""
        found = next((s.policy for s in self.facts.senders if s.name == group), None)
        if found is not None:
            return found
        return next((s.policy for s in self.ledger.senders if s.group == group), "")

    # ------------------------------------------------------------ counts
    @cached_property
    def counts(self) -> dict[str, int]:
        """Final-state counts of all mail."""
        return self.cols.counts()

    @property
    def messages(self) -> int:
        """Messages submitted."""
        return len(self.ledger)

    @cached_property
    def attempts(self) -> int:
        """Delivery attempts, including those deferred without connecting."""
        return int(self.cols.attempts.sum(dtype=np.int64))

    @cached_property
    def connections(self) -> int:
        """Attempts of original senders that reached the wire."""
        return int(self.cols.connections.sum(dtype=np.int64))

    @cached_property
    def windows(self) -> list[Window]:
        """The windows of submission time with the states of their mail."""
        out = []
        for label, lo, hi in self.facts.windows:
            closed = hi >= self.end
            out.append(Window(label, lo, hi, self.cols.counts(self.cols.window(lo, hi, closed)), closed=closed))
        return out

    def sent_in(self, window: Window) -> Iterator[MessageRecord]:
        """The messages submitted in *window*, each row made as it is read."""
        mask = self.cols.window(window.start, window.end, window.closed)
        ledger = self.ledger
        return (ledger.record(int(i)) for i in np.flatnonzero(mask))

    def window_of(self, t: float) -> str:
        """The label of the first window containing submission time *t*."""
        return next((w.label for w in self.windows if w.holds(t)), "")

    @cached_property
    def by_group(self) -> dict[str, dict[str, int]]:
        """Final-state counts per sender group, in scenario order."""
        cols = self.cols
        present = set(np.unique(cols.group).tolist())
        return {g: cols.counts(cols.group == k) for k, g in enumerate(cols.groups) if k in present}

    def delay_values(self, group: str | None = None) -> Any:
        """Seconds from submission to the first 250 of the accepted mail (of one sender group), sorted (numpy)."""
        cols = self.cols
        if group is None:
            return cols.delays()
        if group not in cols.groups:
            return cols.delays(np.zeros(cols.n, dtype=bool))
        return cols.delays(cols.group == cols.groups.index(group))

    @cached_property
    def delays(self) -> dict[str, dict[str, float]]:
        """Seconds from submission to the first 250, per sender group: count, p50, p95, max (accepted mail only)."""
        out = {}
        for g in self.groups:
            values = self.delay_values(g)
            if len(values):
                out[g] = {
                    "count": len(values),
                    "p50": percentile(values, 50),
                    "p95": percentile(values, 95),
                    "max": float(values[-1]),
                }
        return out

    @cached_property
    def duplicates(self) -> int:
        """Messages accepted more than once."""
        return int((self.cols.copies > 1).sum())

    @cached_property
    def delay_warnings(self) -> int:
        """Delay warnings sent to originators."""
        return int(self.cols.warnings.sum(dtype=np.int64))

    @cached_property
    def bounces(self) -> dict[str, int]:
        """Bounced messages per status and reason (``5.1.1 permanent failure: 550 ...``), most frequent first."""
        cols, ledger = self.cols, self.ledger
        bounced = cols.state == STATES.index("bounced")
        status = as_numpy(ledger.bounce_status, np.int32)[bounced].astype(np.int64)
        reason = as_numpy(ledger.bounce_reason, np.int32)[bounced].astype(np.int64)
        texts = ledger.texts.items
        pairs, counts = np.unique(status * len(texts) + reason, return_counts=True)
        found: Counter[str] = Counter()
        for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
            found[f"{texts[pair // len(texts)]} {texts[pair % len(texts)]}".strip()] += n
        return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))

    @cached_property
    def turned_away(self) -> dict[str, int]:
        """Sessions each server turned away with 421 at a capacity limit."""
        return {name: len(self.fold.turned_away(name)) for name in self.servers}

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
        return self._destination(self.domain_of(record), record.submitted_at, record.accepted_by)

    def _destination(self, domain: str, submitted_at: float, accepted_by: str) -> str:
        primary = self.routes.primary(domain, submitted_at)
        if primary is not None:
            return primary
        return accepted_by or (self.servers[0] if self.servers else "")

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
        relay_left = np.full(len(self.ledger), np.nan)
        for message_id, t in self.relay_left.items():
            i = self.ledger.index_of(message_id)
            if i is not None:
                relay_left[i] = t
        return self.cols.storms(self.sessions, self.states, self.relays, relay_left)

    @cached_property
    def retry_floors(self) -> list[metrics.RetryFloor | None]:
        """For each recovery storm, its backlog message tried again last (``metrics.retry_floors``)."""
        if self.facts.fold is None:
            tries: Iterable[tuple[str, float]] = [
                (e.message, e.t) for e in self.facts.events if isinstance(e, AttemptEvent)
            ]
        else:
            tries = self.fold.attempt_pairs()  # read again from the events file, not kept
        return metrics.retry_floors(self.records, tries, self.storms, self.destination)

    def turned_away_between(self, server: str, lo: float, hi: float) -> int:
        """Sessions *server* turned away at its capacity limit in ``[lo, hi)``."""
        times = as_numpy(self.fold.turned_away(server), np.float64)
        return int(np.searchsorted(times, hi, side="left") - np.searchsorted(times, lo, side="left"))

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
        if records is not None:
            return metrics.mailbox_delays(records, self.end)
        return self._delayed(None)

    def _delayed(self, mask: Any) -> dict[float, int]:
        cols = self.cols
        return {
            over: int((cols.delayed(over, self.end) & (True if mask is None else mask)).sum())
            for over in metrics.DELAY_MARKS
        }

    @cached_property
    def mailbox_delays(self) -> dict[str, dict[str, Any]]:
        """Per sender group (and ``all mail``): messages, how many were delayed beyond each mark, and how many wait still."""
        cols = self.cols
        queued = cols.state == STATES.index("queued")
        rows: dict[str, dict[str, Any]] = {}
        for label, mask in [
            ("all mail", np.ones(cols.n, dtype=bool)),
            *((g, cols.group == cols.groups.index(g)) for g in self.by_group),
        ]:
            rows[label] = {
                "messages": int(mask.sum()),
                "delayed": self._delayed(mask),
                "queued": int((queued & mask).sum()),
                "accepted": int((cols.accepted & mask).sum()),
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
        return [e for e in self.fold.timeline if isinstance(e, kinds)]

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
        cols = self.cols
        out = []
        for w in self.windows:
            inside = cols.window(w.start, w.end, w.closed)
            present = set(np.unique(cols.group[inside]).tolist())
            out.append({g: cols.counts(inside & (cols.group == k)) for k, g in enumerate(cols.groups) if k in present})
        return out

    # ------------------------------------------------------------ queues
    def queue_depth(self, per_group: bool = True) -> dict[str, list[tuple[float, int]]]:
        """Messages waiting in senders' queues over time, per sender group (or ``"all"``), as step functions."""
        return self.cols.queue_depth(per_group)

    def queue_depth_arrays(self, per_group: bool = True) -> dict[str, tuple[Floats, Ints]]:
        """``queue_depth`` as arrays (instants of change, depth from each on): a million messages make no tuples."""
        return self.cols.queue_depth_arrays(per_group)

    def waiting_before(self, t: float) -> list[MessageRecord]:
        """Messages waiting in their senders' queues just before instant *t*."""
        return [self.ledger.record(int(i)) for i in np.flatnonzero(self.cols.in_queue_before(t))]

    def oldest_waiting(self, t: float) -> float:
        """Age in seconds of the oldest message waiting in a sender's queue just before *t* (0 for none)."""
        waiting = self.cols.submitted[self.cols.in_queue_before(t)]
        return float(t - waiting.min()) if len(waiting) else 0.0

    def qshape(self, t: float, buckets: Sequence[int]) -> dict[str, list[int]]:
        """Queue ages just before *t*, like Postfix's ``qshape`` (``metrics.qshape``)."""
        return self.cols.qshape(t, buckets)

    @cached_property
    def last_activity(self) -> float:
        """The last submission, acceptance, bounce, relay hand-off or timeline mark (0 for none)."""
        cols = self.cols
        times = [float(m["t"]) for m in self.marks] + list(self.relay_left.values())
        for column in (cols.submitted, cols.accepted_at, cols.bounced_at):
            known = column[~np.isnan(column)]
            if len(known):
                times.append(float(known.max()))
        return max(times, default=0.0)
