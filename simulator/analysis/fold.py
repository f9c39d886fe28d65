"""The events of a run folded as they stream: what the analysis needs from them, in bounded memory."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import metrics
from ..events import (
    AcceptedEvent,
    AttemptEvent,
    BackupEvent,
    BounceEvent,
    CachedEvent,
    CrashEvent,
    DiskLostEvent,
    DiskRecoveredEvent,
    DnsEvent,
    Event,
    ExpiredEvent,
    FaultClearedEvent,
    FaultEvent,
    ForeignEvent,
    NextMxEvent,
    RelayedEvent,
    RelayQueuedEvent,
    ReplyEvent,
    RestoreEvent,
    ServerEvent,
    SubmitEvent,
    SuspendedEvent,
    WarningEvent,
    read_event_rows,
)

__all__ = ["EventFold", "mark_of", "TIMELINE_TYPES"]


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


class EventFold:
    """What the analysis needs from the events, folded one event at a time (an ``EventSink``).

    A run streams its events through this as they happen, and a results
    folder's ``events.jsonl`` is read through it line by line, so the events
    of a run of any size are never all in memory: SMTP sessions per server
    are times in an array, and only the timeline's own events are kept.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, array[float]] = {}
        self._turned_away: dict[str, array[float]] = {}
        self.marks: list[dict[str, Any]] = []
        self.dns: list[tuple[float, str, list[str]]] = []
        self.relay_left: dict[str, float] = {}
        self.bounced: dict[str, float] = {}  #: when each bounced message (first) bounced
        self.foreign: list[ForeignEvent] = []  #: sessions from outside the run, kept apart from the ledger
        self.source: Path | None = None  #: the events file folded (``events.jsonl`` or ``events.parquet``)
        self.faults: list[FaultEvent | FaultClearedEvent] = []
        self.timeline: list[Event] = []
        self.servers_seen: dict[str, None] = {}

    def emit(self, event: Event) -> None:
        """Fold one event in."""
        kind = type(event)
        if kind is AttemptEvent:
            assert isinstance(event, AttemptEvent)
            times = self._sessions.get(event.server)
            if times is None:
                times = self._sessions[event.server] = array("d")
                self.servers_seen.setdefault(event.server)
            times.append(event.t)
        elif kind is ReplyEvent:
            assert isinstance(event, ReplyEvent)
            if event.turned_away:
                self._turned_away.setdefault(event.server, array("d")).append(event.t)
        elif kind is RelayedEvent:
            assert isinstance(event, RelayedEvent)
            self.relay_left.setdefault(event.message, event.t)
        elif kind is BounceEvent:
            assert isinstance(event, BounceEvent)
            self.bounced.setdefault(event.message, event.t)
            if event.relay:
                self.relay_left.setdefault(event.message, event.t)
        elif kind in _MESSAGE_EVENTS:
            return
        elif kind is ForeignEvent:
            assert isinstance(event, ForeignEvent)
            self.foreign.append(event)
        else:
            self.timeline.append(event)
            if isinstance(event, DnsEvent):
                self.dns.append((event.t, event.domain, list(event.mx)))
            elif isinstance(event, (FaultEvent, FaultClearedEvent)):
                self.faults.append(event)
            else:
                mark = mark_of(event)
                if mark is not None:
                    self.marks.append(mark)
                    self.servers_seen.setdefault(mark["server"])

    def add_row(self, row: dict[str, Any]) -> None:
        """Fold in one message event given as a plain dict (an ``events.jsonl`` line not made into an object)."""
        kind = row["type"]
        if kind == "attempt":
            times = self._sessions.get(row["server"])
            if times is None:
                times = self._sessions[row["server"]] = array("d")
                self.servers_seen.setdefault(row["server"])
            times.append(row["t"])
        elif kind == "reply":
            if row.get("turned_away"):
                self._turned_away.setdefault(row["server"], array("d")).append(row["t"])
        elif kind == "bounce":
            self.bounced.setdefault(row["message"], row["t"])
            if row.get("relay"):
                self.relay_left.setdefault(row["message"], row["t"])
        elif kind == "relayed":
            self.relay_left.setdefault(row["message"], row["t"])

    def attempt_pairs(self) -> Iterator[tuple[str, float]]:
        """``(message id, t)`` of every attempt, read again from ``source`` (kept nowhere in memory)."""
        if self.source is None:
            return
        if self.source.suffix == ".parquet":
            from ..records.parquet import iter_parquet_attempts

            yield from iter_parquet_attempts(self.source)
            return
        for item in read_event_rows(self.source, frozenset()):
            if isinstance(item, dict) and item.get("type") == "attempt":
                yield item["message"], item["t"]

    def read_jsonl(self, path: Path) -> None:
        """Fold in an ``events.jsonl``, line by line."""
        self.source = path
        for item in read_event_rows(path, TIMELINE_TYPES):
            if isinstance(item, dict):
                self.add_row(item)
            else:
                self.emit(item)

    def read_parquet(self, path: Path) -> None:
        """Fold in an ``events.parquet``: message events column by column, the timeline's as typed events."""
        self.source = path
        from ..records.parquet import fold_parquet_events

        fold_parquet_events(path, self, TIMELINE_TYPES)

    def add_sessions(self, server: str, times: Iterable[float]) -> None:
        """SMTP sessions of *server* at *times* (in time order)."""
        if server not in self._sessions:
            self._sessions[server] = array("d")
            self.servers_seen.setdefault(server)
        self._sessions[server].extend(times)

    def add_turned_away(self, server: str, times: Iterable[float]) -> None:
        """Sessions *server* turned away at *times* (in time order)."""
        self._turned_away.setdefault(server, array("d")).extend(times)

    def sessions(self, server: str) -> array[float]:
        """When *server* saw each SMTP session, in the order they happened (time order)."""
        return self._sessions.get(server, array("d"))

    def turned_away(self, server: str) -> array[float]:
        """When *server* turned a session away at a capacity limit, in time order."""
        return self._turned_away.get(server, array("d"))

    def all_sessions(self) -> list[tuple[float, str]]:
        """``(t, server)`` of every SMTP session, server by server (for small runs and tests)."""
        return sorted((t, name) for name, times in self._sessions.items() for t in times)

    @property
    def session_servers(self) -> list[str]:
        """Servers that saw at least one SMTP session."""
        return list(self._sessions)


_MESSAGE_EVENTS = frozenset(
    {SubmitEvent, RelayQueuedEvent, CachedEvent, SuspendedEvent, ExpiredEvent, NextMxEvent, AcceptedEvent, WarningEvent}
)

TIMELINE_TYPES = frozenset(
    {
        "server",
        "crash",
        "backup",
        "backup_schedule",
        "restore",
        "disk_recovered",
        "disk_lost",
        "fault",
        "fault_cleared",
        "dns",
    }
)
"""Event types the fold keeps as typed events (the timeline's own); message events are folded into arrays."""
