"""The run's event log: one typed record per event, one writer and one reader of ``events.jsonl``.

Every event carries ``t`` (simulated seconds, 3 decimals), ``time`` (ISO 8601
in the scenario's clock) and ``type``; the other fields depend on the type.
Events are plain dataclasses, neither frozen nor slotted: nothing changes
an event once it is made, a frozen one takes twice as long to make, and
orjson writes one with a ``__dict__`` six times as fast as a slotted one
(a run makes and writes three or four per attempt).
The engine emits them through an ``EventSink``; ``write_events`` writes them
one JSON object per line and ``read_events`` reads any such file back
(whatever its JSON spacing), so every consumer sees the same typed events.

Message events: ``submit``, ``relay_queued``, ``attempt``, ``reply``,
``cached``, ``suspended``, ``expired``, ``next_mx``, ``accepted``,
``relayed``, ``warning``, ``bounce``. Timeline events: ``server``,
``crash``, ``backup``, ``backup_schedule``, ``restore``, ``disk_recovered``,
``disk_lost``, ``fault``, ``fault_cleared``, ``dns``. Outside traffic:
``foreign`` (a connection the engine did not open; in a replay it never
changes the ledger) and, in a live run, ``outside`` (an outside MTA turned
away, refused a command, or handing over a message it is recorded for).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from .errors import Problem, ScenarioError

__all__ = [
    "Event",
    "EventSink",
    "EventLog",
    "EventWriter",
    "SubmitEvent",
    "RelayQueuedEvent",
    "AttemptEvent",
    "ReplyEvent",
    "CachedEvent",
    "SuspendedEvent",
    "ExpiredEvent",
    "NextMxEvent",
    "AcceptedEvent",
    "RelayedEvent",
    "WarningEvent",
    "BounceEvent",
    "ServerEvent",
    "CrashEvent",
    "BackupEvent",
    "BackupScheduleEvent",
    "RestoreEvent",
    "DiskRecoveredEvent",
    "DiskLostEvent",
    "FaultEvent",
    "FaultClearedEvent",
    "DnsEvent",
    "ForeignEvent",
    "OutsideEvent",
    "MARK_EVENTS",
    "write_events",
    "read_events",
    "read_event_rows",
    "event_json",
]


@dataclass(kw_only=True)
class _Event:
    t: float  #: simulated seconds since the clock's start
    time: str  #: the same instant, ISO 8601 in the scenario's clock


# ---------------------------------------------------------------- messages
@dataclass(kw_only=True)
class SubmitEvent(_Event):
    """A message entered its original sender's queue."""

    type: Literal["submit"] = "submit"
    message: str
    sender: str


@dataclass(kw_only=True)
class RelayQueuedEvent(_Event):
    """A backup MX queued a message it accepted, to forward it."""

    type: Literal["relay_queued"] = "relay_queued"
    message: str
    sender: str  #: the relay's name


@dataclass(kw_only=True)
class AttemptEvent(_Event):
    """A sender opened an SMTP session (or tried to connect) to a server."""

    type: Literal["attempt"] = "attempt"
    message: str
    sender: str
    server: str
    attempt: int


@dataclass(kw_only=True)
class ReplyEvent(_Event):
    """How an attempt on the wire ended: ``kind`` ``accepted`` (250 to the dot) or a failure kind."""

    type: Literal["reply"] = "reply"
    message: str
    server: str
    attempt: int
    kind: str  #: accepted, refused, timeout, tempfail, permfail, dropped
    stage: str  #: connect, greeting, ehlo, mail, rcpt, data, dot
    code: int | None
    text: str
    turned_away: bool = False  #: a 421 from a server at its capacity limit


@dataclass(kw_only=True)
class CachedEvent(_Event):
    """A sender shared another message's failure at the same host and instant, without connecting."""

    type: Literal["cached"] = "cached"
    message: str
    sender: str
    server: str
    attempt: int
    kind: str
    text: str


@dataclass(kw_only=True)
class SuspendedEvent(_Event):
    """A sender's own retry state deferred the attempt without connecting."""

    type: Literal["suspended"] = "suspended"
    message: str
    sender: str
    server: str
    attempt: int
    text: str


@dataclass(kw_only=True)
class ExpiredEvent(_Event):
    """A message's queue lifetime ran out while it waited (no connection)."""

    type: Literal["expired"] = "expired"
    message: str
    sender: str
    server: str
    text: str


@dataclass(kw_only=True)
class NextMxEvent(_Event):
    """The sender moves on to the next MX host after a failure."""

    type: Literal["next_mx"] = "next_mx"
    message: str
    sender: str
    after: str
    to: str


@dataclass(kw_only=True)
class AcceptedEvent(_Event):
    """The first 250 an original sender got for the message."""

    type: Literal["accepted"] = "accepted"
    message: str
    server: str
    attempts: int
    delay: float  #: seconds since submission


@dataclass(kw_only=True)
class RelayedEvent(_Event):
    """A backup MX passed the message on to a more preferred MX host."""

    type: Literal["relayed"] = "relayed"
    message: str
    relay: str
    server: str
    attempts: int


@dataclass(kw_only=True)
class WarningEvent(_Event):
    """A delay warning (RFC 3464 ``Action: delayed``) went to the originator."""

    type: Literal["warning"] = "warning"
    message: str
    sender: str
    attempts: int
    last_error: str


@dataclass(kw_only=True)
class BounceEvent(_Event):
    """The sender gave up; a non-delivery report went to the originator."""

    type: Literal["bounce"] = "bounce"
    message: str
    sender: str
    originator: str
    status: str
    reason: str
    attempts: int
    last_error: str
    relay: str = ""  #: the backup MX that gave up, when it was one


# ---------------------------------------------------------------- the timeline
@dataclass(kw_only=True)
class ServerEvent(_Event):
    """A server goes up or down (``state``: up, refuse, blackhole, unreachable, tempfail)."""

    type: Literal["server"] = "server"
    server: str
    state: str
    note: str = ""


@dataclass(kw_only=True)
class CrashEvent(_Event):
    """A server's disk failed; what it held since the last backup is on the failed disk."""

    type: Literal["crash"] = "crash"
    server: str
    disk: str
    messages_on_disk: int
    state: str
    note: str = ""


@dataclass(kw_only=True)
class BackupEvent(_Event):
    """A backup of a server's mail store, good (``ok``) or failed."""

    type: Literal["backup"] = "backup"
    server: str
    ok: bool
    messages: int
    scheduled: bool = False
    reason: str = ""
    note: str = ""


@dataclass(kw_only=True)
class BackupScheduleEvent(_Event):
    """Periodic backups start."""

    type: Literal["backup_schedule"] = "backup_schedule"
    server: str
    every: float
    ok: bool
    note: str = ""


@dataclass(kw_only=True)
class RestoreEvent(_Event):
    """A server got a new disk loaded from a backup."""

    type: Literal["restore"] = "restore"
    server: str
    from_server: str
    disk: str
    backup_taken_at: str
    messages: int
    state: str
    note: str = ""


@dataclass(kw_only=True)
class DiskRecoveredEvent(_Event):
    """A failed disk was read back; its mail is available again."""

    type: Literal["disk_recovered"] = "disk_recovered"
    server: str
    messages: int
    note: str = ""


@dataclass(kw_only=True)
class DiskLostEvent(_Event):
    """A failed disk was given up; mail only on it is lost."""

    type: Literal["disk_lost"] = "disk_lost"
    server: str
    messages: int
    note: str = ""


@dataclass(kw_only=True)
class FaultEvent(_Event):
    """A fault is switched on at a server (``fault`` as the scenario wrote it)."""

    type: Literal["fault"] = "fault"
    server: str
    fault: dict[str, Any] = field(default_factory=dict)
    until: str = ""
    note: str = ""


@dataclass(kw_only=True)
class FaultClearedEvent(_Event):
    """Every fault of a server is switched off."""

    type: Literal["fault_cleared"] = "fault_cleared"
    server: str
    note: str = ""


@dataclass(kw_only=True)
class DnsEvent(_Event):
    """A domain's MX records change."""

    type: Literal["dns"] = "dns"
    domain: str
    mx: list[str]
    ttl: float
    note: str = ""


# ---------------------------------------------------------------- outside traffic
@dataclass(kw_only=True)
class ForeignEvent(_Event):
    """A connection the engine did not open ended; its mail was kept apart from the run's.

    Logged at the instant the session was seen to end (``connected``: when
    it began). ``run_ids`` counts the messages it sent whose Message-ID names
    a message of the run: mail posing as the run's, which changes no row.
    """

    type: Literal["foreign"] = "foreign"
    server: str
    session: int  #: 1 for the server's first foreign session, and so on
    peer: str
    connected: str
    received: int  #: bytes the client sent
    messages: int  #: messages it got a 250 for, kept apart
    run_ids: int = 0
    turned_away: bool = False
    ended: str = ""  #: closed, or open at the end of the run
    error: str = ""


# ---------------------------------------------------------------- a live run's outside MTAs
@dataclass(kw_only=True)
class OutsideEvent(_Event):
    """A connection nobody announced (an outside MTA in a live run) met the server at one step.

    ``stage`` is where: ``greeting`` (turned away, or never greeted), a
    command that was refused, or ``dot`` (the message handed over: accepted
    with a 250, refused, or the connection dropped after the commit).
    ``client`` is the name it gave in EHLO, ``peer`` its address.
    """

    type: Literal["outside"] = "outside"
    server: str
    peer: str
    client: str
    stage: str
    act: str  #: reply, close (a 421 and hang-up), silent (never answered), drop (committed, then hung up)
    code: int | None
    text: str
    mail_from: str = ""
    rcpt: list[str] = field(default_factory=list)
    message: str = ""  #: the ledger key of the message handed over (its Message-ID)
    turned_away: bool = False  #: a 421 from a server at its capacity limit


Event = Annotated[
    SubmitEvent
    | RelayQueuedEvent
    | AttemptEvent
    | ReplyEvent
    | CachedEvent
    | SuspendedEvent
    | ExpiredEvent
    | NextMxEvent
    | AcceptedEvent
    | RelayedEvent
    | WarningEvent
    | BounceEvent
    | ServerEvent
    | CrashEvent
    | BackupEvent
    | BackupScheduleEvent
    | RestoreEvent
    | DiskRecoveredEvent
    | DiskLostEvent
    | FaultEvent
    | FaultClearedEvent
    | DnsEvent
    | ForeignEvent
    | OutsideEvent,
    Field(discriminator="type"),
]
"""Any event of ``events.jsonl``."""

MARK_EVENTS = (ServerEvent, CrashEvent, BackupEvent, RestoreEvent, DiskRecoveredEvent, DiskLostEvent)
"""Events that change a server's state or disk: the incident's marks (``simulator.schema.incident``)."""

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_TYPES = frozenset(cls.__dataclass_fields__["type"].default for cls in typing.get_args(typing.get_args(Event)[0]))


class EventSink(Protocol):
    """Where the engine sends events as they happen."""

    def emit(self, event: Event) -> None:
        """Record one event."""


class EventLog:
    """An ``EventSink`` that keeps the events in memory, in the order emitted."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        """Append *event*."""
        self.events.append(event)


class EventWriter:
    """An ``EventSink`` that writes each event to ``events.jsonl`` as it happens (nothing kept in memory).

    Events pass on to *then* (another sink, such as the analysis's fold) after
    they are written. ``close()`` flushes the file.
    """

    def __init__(self, path: Path, then: EventSink | None = None) -> None:
        self.path = path
        self._fh = path.open("wb", buffering=1 << 20)
        self._dump = orjson.dumps
        self._then = then.emit if then is not None else None
        self.count = 0

    def emit(self, event: Event) -> None:
        """Write *event* as one line."""
        self._fh.write(self._dump(event, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1
        if self._then is not None:
            self._then(event)

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()


def event_json(event: Event) -> str:
    """One event as the compact JSON line ``events.jsonl`` holds (without the newline).

    Written with orjson (the same bytes as pydantic's serializer for these
    dataclasses, several times faster); read back with pydantic, which checks them.
    """
    return orjson.dumps(event).decode("utf-8")


def read_event_rows(path: Path, typed: frozenset[str]) -> Iterator[Event | dict[str, Any]]:
    """The lines of an ``events.jsonl`` in file order: events whose ``type`` is in *typed* as typed events
    (checked as ``read_events`` checks them), the others as plain dicts (fast, for folding millions of lines)."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ScenarioError([Problem(str(path), number, "", f"not JSON: {exc}")]) from None
            kind = row.get("type") if isinstance(row, dict) else None
            if kind in typed or kind not in _TYPES:
                try:
                    yield _ADAPTER.validate_python(row)
                except ValidationError as exc:
                    raise _not_an_event(path, number, exc) from None
            else:
                yield row


def _not_an_event(path: Path, number: int, exc: ValidationError) -> ScenarioError:
    """The one-line error for line *number* of *path*, which is not one of the tool's events."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return ScenarioError([Problem(str(path), number, "", f"not an event of smtp-outage: {where}: {first['msg']}")])


def write_events(path: Path, events: Iterable[Event]) -> None:
    """Write *events* to *path*, one JSON object per line."""
    dump = orjson.dumps
    with path.open("wb") as fh:
        for event in events:
            fh.write(dump(event))
            fh.write(b"\n")


def read_events(path: Path) -> Iterator[Event]:
    """The typed events of an ``events.jsonl`` file, in file order.

    Any JSON spacing is accepted. A line that is not a known event raises
    ``ScenarioError`` naming the file and line.
    """
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield _ADAPTER.validate_json(line)
            except ValidationError as exc:
                raise _not_an_event(path, number, exc) from None
            except json.JSONDecodeError as exc:  # pragma: no cover - pydantic reports bad JSON itself
                raise ScenarioError([Problem(str(path), number, "", f"not JSON: {exc}")]) from None
