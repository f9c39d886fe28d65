"""The static description of an incident: the scenario file's schema.

A scenario declares the clock, the receiving servers, the incident timeline,
the sending MTAs with their retry policies and traffic, and optional named
windows of submission time for reports. Models are frozen and reject unknown
keys, so a typo is an error. Cross-field rules (timeline order, server names)
live in ``check_semantics``; both kinds of error are reported with file and
line by ``simulator.loader``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .durations import Duration
from .faults import FaultSpec
from .policies import PolicySpec
from .schema.thresholds import ThresholdList, threshold_problems

__all__ = [
    "Scenario",
    "Clock",
    "ServerSpec",
    "SenderSpec",
    "TrafficSpec",
    "WindowSpec",
    "TimelineEvent",
    "DOWN_MODES",
    "RelaySpec",
    "DeliverySpec",
    "SourceSpec",
    "check_semantics",
]

DOWN_MODES = ("refuse", "blackhole", "unreachable", "tempfail")
DownMode = Literal["refuse", "blackhole", "unreachable", "tempfail"]
"""How a server that is down looks on the wire: connection refused; TCP accepted but
no greeting (charged the sender's greeting timeout); unreachable (charged the sender's
connect timeout); or a 421 greeting and close."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "timestamp", "expected a timestamp such as 2011-10-26 10:38, got {value}", {"value": repr(value)}
            ) from None
    raise PydanticCustomError(
        "timestamp", "expected a timestamp such as 2011-10-26 10:38, got {value}", {"value": repr(value)}
    )


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not _NAME.match(value):
        raise PydanticCustomError(
            "name", "names use lowercase letters, digits, '.', '_' and '-', got {value}", {"value": repr(value)}
        )
    return value


Name = Annotated[str, BeforeValidator(_name)]


def _rate(value: Any) -> Any:
    """Messages per hour from ``12``, ``"12/h"``, ``"300/d"`` or ``"1/m"``."""
    if isinstance(value, bool):
        raise PydanticCustomError("rate", "expected a rate such as 12/h or 300/d, got {value}", {"value": repr(value)})
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([smhd])\s*", value)
        if match:
            per = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}[match.group(2)]
            return float(match.group(1)) / per
    raise PydanticCustomError("rate", "expected a rate such as 12/h or 300/d, got {value}", {"value": repr(value)})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clock(_Model):
    """Simulated time: the scenario's own wall clock, naive local time unless ``timezone`` is set."""

    start: Timestamp
    end: Timestamp
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise PydanticCustomError(
                    "timezone",
                    "unknown time zone {value}; use an IANA name such as America/New_York",
                    {"value": repr(value)},
                ) from None
        return value


class ServerSpec(_Model):
    """A receiving SMTP server: its name, the domains it accepts mail for, its state at the start."""

    name: Name
    domains: list[str] = Field(min_length=1)
    hostname: str | None = None
    initially: Literal["up", "refuse", "blackhole", "unreachable", "tempfail"] = "up"
    preference: int = Field(10, ge=0, le=65535, description="MX preference: lower is tried first")
    relay: RelaySpec | None = None
    delivery: DeliverySpec | None = None


class DeliverySpec(_Model):
    """The server's internal delivery from its queue to the mailboxes: ``per_minute`` messages per simulated minute.

    Without it, mail accepted with a 250 is readable at once. With it, mail
    waits its turn (first in, first out), so a burst is readable late even
    when every session got its 250 at once; a ``delivery-queue`` fault slows
    it further for a while.
    """

    per_minute: float = Field(gt=0.0, description="messages per simulated minute into the mailboxes")


class RelaySpec(_Model):
    """A backup MX: it accepts mail, queues it and forwards it to the more preferred MX hosts
    of the domain with its own retry policy (store and forward)."""

    policy: PolicySpec


class _Event(_Model):
    at: Timestamp
    server: str
    note: str | None = None


class UpEvent(_Event):
    """The server accepts mail again (listens on the same port)."""

    event: Literal["up"]


class DownEvent(_Event):
    """The server stops accepting mail; its disk is unharmed."""

    event: Literal["down"]
    mode: DownMode = "refuse"


class CrashEvent(_Event):
    """The server's disk fails: mail since the last good backup stays on the failed disk."""

    event: Literal["crash"]
    mode: DownMode = "refuse"


class BackupEvent(_Event):
    """A backup of the server's mail store; ``ok: false`` is an attempt that failed."""

    event: Literal["backup"]
    ok: bool = True


class RestoreEvent(_Event):
    """A new disk for the server, loaded from its latest good backup (or the one taken at ``backup``).

    ``from_server`` restores another server's backup onto this one (a new
    machine with a different name and address).
    """

    event: Literal["restore"]
    from_server: str | None = None
    backup: Timestamp | Literal["latest"] = "latest"
    bring_up: bool = True


class FaultEvent(_Event):
    """Switch a fault on at ``at`` until ``until`` (or until a ``clear-faults`` entry, or the end)."""

    event: Literal["fault"]
    fault: FaultSpec
    until: Timestamp | None = None


class ClearFaultsEvent(_Event):
    """Switch off every fault of the server."""

    event: Literal["clear-faults"]


class BackupsEvent(_Event):
    """Back the server's mail store up every ``every`` from ``at`` until ``until`` (or the end)."""

    event: Literal["backups"]
    every: Duration
    until: Timestamp | None = None
    ok: bool = True

    @model_validator(mode="after")
    def _positive(self) -> BackupsEvent:
        if self.every < 60:
            raise PydanticCustomError("every", "every must be at least 1m, e.g. 6h")
        return self


class DnsEvent(_Model):
    """The domain's MX records change; senders keep their cached answer until its TTL runs out."""

    at: Timestamp
    event: Literal["dns"]
    domain: str
    mx: list[str] = Field(min_length=1, description="server names, most preferred first")
    ttl: Duration = 3600.0
    note: str | None = None


class RecoverDiskEvent(_Event):
    """The failed disk is read back: its mail is available again (late)."""

    event: Literal["recover-disk"]


class DiskLostEvent(_Event):
    """The failed disk is given up: mail only on it is lost."""

    event: Literal["disk-lost"]


TimelineEvent = Annotated[
    UpEvent
    | DownEvent
    | CrashEvent
    | BackupEvent
    | BackupsEvent
    | RestoreEvent
    | RecoverDiskEvent
    | DiskLostEvent
    | FaultEvent
    | ClearFaultsEvent
    | DnsEvent,
    Field(discriminator="event"),
]


class TrafficSpec(_Model):
    """Message arrivals for each MTA of a sender group.

    Either Poisson arrivals at ``rate`` messages per hour per MTA, shaped by a
    24-value ``profile`` of hourly weights (local time), between ``start`` and
    ``until``; or an explicit list of arrivals from a ``csv`` file; or an
    explicit list of timestamps ``at`` (one message per MTA at each).
    """

    rate: Annotated[float, BeforeValidator(_rate)] | None = None
    profile: list[float] | Literal["flat", "business"] = "flat"
    start: Timestamp | None = None
    until: Timestamp | None = None
    csv: str | None = None
    at: list[Timestamp] | None = None
    to: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrafficSpec:
        if sum(x is not None for x in (self.rate, self.csv, self.at)) != 1:
            raise PydanticCustomError(
                "traffic",
                "give exactly one of rate (e.g. 12/h), csv (a file of arrivals) and at (a list of timestamps)",
            )
        if self.rate is not None and self.rate <= 0:
            raise PydanticCustomError("traffic", "rate must be greater than 0, e.g. 12/h")
        if isinstance(self.profile, list):
            if len(self.profile) != 24:
                raise PydanticCustomError(
                    "profile", "profile needs 24 hourly weights, got {n}", {"n": len(self.profile)}
                )
            if any(w < 0 for w in self.profile) or not any(self.profile):
                raise PydanticCustomError("profile", "profile weights must be >= 0 and not all 0")
        return self


class SenderSpec(_Model):
    """A group of identical sending MTAs sharing a retry policy and a traffic pattern."""

    name: Name
    count: int = Field(1, ge=1, le=10000)
    policy: PolicySpec
    traffic: TrafficSpec


class WindowSpec(_Model):
    """A named window of submission time, for breaking results down the way a post-mortem does."""

    label: str
    start: Timestamp | Literal["start"] = Field("start", alias="from")
    end: Timestamp | Literal["end"] = Field("end", alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EngineSpec(_Model):
    """Knobs of the replay engine that do not change results."""

    concurrency: int = Field(64, ge=1, le=1024)
    wire_timeout: Duration = Field(0.05, description="real seconds a client waits for a greeting that never comes")

    @field_validator("wire_timeout")
    @classmethod
    def _short(cls, value: float) -> float:
        if not 0.001 <= value <= 5:
            raise PydanticCustomError("wire_timeout", "wire_timeout is real time: keep it between 0.001 and 5 seconds")
        return value


class SourceSpec(_Model):
    """A public report the scenario encodes: its title, address and date, and the sentences taken from it."""

    title: str = Field(min_length=1)
    url: str = Field(min_length=1)
    published: date | None = None
    via: str | None = Field(None, description="where the text was read, when not at url (an archive, a quotation)")
    quotes: list[str] = Field(default_factory=list)


class Scenario(_Model):
    """A whole incident: clock, servers, timeline, senders, windows, thresholds (``simulator.thresholds``)."""

    name: Name
    description: str = ""
    seed: int = 0
    clock: Clock
    servers: list[ServerSpec] = Field(min_length=1)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    senders: list[SenderSpec] = Field(min_length=1)
    windows: list[WindowSpec] = Field(default_factory=list)
    engine: EngineSpec = EngineSpec()
    thresholds: dict[str, ThresholdList] = Field(default_factory=dict)
    sources: list[SourceSpec] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from, if any (relative CSV paths start there)."""
        return self._source


def _traffic_window(clock: Clock, t: TrafficSpec, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """A group's traffic must fall inside the clock: a group that sends nothing is a mistake, not a result."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if t.rate is None:
        for key in ("start", "until", "profile"):
            if key in t.model_fields_set:
                source = "csv" if t.csv is not None else "at"
                errors.append(
                    ((*loc, key), f"{key} only shapes rate traffic; {source} lists its own times, so remove {key}")
                )
        return errors
    nothing = False
    if t.until is not None and t.until <= clock.start:
        nothing = True
        errors.append(
            (
                (*loc, "until"),
                f"the traffic ends ({t.until}) before the clock starts ({clock.start}), so this group "
                f"sends nothing; set until after {clock.start} or remove it",
            )
        )
    if t.start is not None and t.start >= clock.end:
        nothing = True
        errors.append(
            (
                (*loc, "start"),
                f"the traffic starts ({t.start}) after the clock ends ({clock.end}), so this group "
                f"sends nothing; set start before {clock.end} or remove it",
            )
        )
    if nothing:
        return errors
    if t.start is not None and t.until is not None and t.until <= t.start:
        errors.append(
            ((*loc, "until"), f"the traffic ends ({t.until}) before it starts ({t.start}); until must be after start")
        )
        return errors
    if t.start is not None and t.start < clock.start:
        errors.append(
            (
                (*loc, "start"),
                f"{t.start} is before the clock starts ({clock.start}); set start to {clock.start} "
                "or later, or remove it to send from the start",
            )
        )
    if t.until is not None and t.until > clock.end:
        errors.append(
            (
                (*loc, "until"),
                f"{t.until} is after the clock's end ({clock.end}); set until to {clock.end} "
                "or earlier, or remove it to send until the end",
            )
        )
    return errors


def check_semantics(s: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-field rules; returns ``(location, message)`` pairs (empty when all is well)."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if s.clock.end <= s.clock.start:
        errors.append((("clock", "end"), f"end ({s.clock.end}) must be after start ({s.clock.start})"))
    names: dict[str, int] = {}
    domains: dict[str, list[ServerSpec]] = {}
    for i, server in enumerate(s.servers):
        if server.name in names:
            errors.append((("servers", i, "name"), f"server name {server.name!r} is used twice"))
        names[server.name] = i
        for domain in server.domains:
            domains.setdefault(domain, []).append(server)
    for i, server in enumerate(s.servers):
        if server.relay is not None and server.delivery is not None:
            errors.append(
                (
                    ("servers", i, "delivery"),
                    f"{server.name} is a backup MX: it forwards mail and delivers to no "
                    "mailbox, so delivery does not apply; remove it or the relay",
                )
            )
        if server.relay is not None:
            better = [
                o for d in server.domains for o in domains[d] if o.preference < server.preference and o.relay is None
            ]
            if not better:
                errors.append(
                    (
                        ("servers", i, "relay"),
                        f"{server.name} relays to more preferred MX hosts of its domains, "
                        f"but none has a lower preference than {server.preference}; add one or raise this preference",
                    )
                )
    # Per-server disk state, to reject impossible timelines up front.
    disk_ok = dict.fromkeys(names, True)  # the server has a working disk
    failed_disk = dict.fromkeys(names, False)  # a failed disk waits to be recovered or given up
    good_backups: dict[str, list[datetime]] = {name: [] for name in names}
    previous: datetime | None = None
    for i, ev in enumerate(s.timeline):
        if previous is not None and ev.at < previous:
            errors.append(
                (
                    (("timeline", i, "at")),
                    f"{ev.at} is earlier than the entry before it ({previous}); keep the timeline in time order",
                )
            )
        previous = max(previous, ev.at) if previous else ev.at
        if not (s.clock.start <= ev.at <= s.clock.end):
            errors.append((("timeline", i, "at"), f"{ev.at} is outside the clock ({s.clock.start} to {s.clock.end})"))
        if isinstance(ev, DnsEvent):
            if ev.domain not in domains:
                errors.append(
                    (("timeline", i, "domain"), f"no server serves {ev.domain!r}; served domains: {', '.join(domains)}")
                )
            for j, mx in enumerate(ev.mx):
                if mx not in names:
                    errors.append(
                        (("timeline", i, "mx", j), f"no server named {mx!r}; servers are: {', '.join(names)}")
                    )
            continue
        if ev.server not in names:
            errors.append(
                (("timeline", i, "server"), f"no server named {ev.server!r}; servers are: {', '.join(names)}")
            )
            continue
        name = ev.server
        if (
            isinstance(ev, FaultEvent)
            and ev.fault.kind == "delivery-queue"
            and s.servers[names[name]].relay is not None
        ):
            errors.append(
                (
                    ("timeline", i, "fault", "kind"),
                    f"{name} is a backup MX: it delivers to no mailbox, so a "
                    "delivery-queue fault does not apply; put it on the server that holds the mailboxes",
                )
            )
        until = getattr(ev, "until", None)
        if until is not None and until <= ev.at:
            errors.append(
                (
                    ("timeline", i, "until"),
                    f"the window ends ({until}) before it starts ({ev.at}); until must be after at",
                )
            )
        elif until is not None and until > s.clock.end:
            errors.append((("timeline", i, "until"), f"{until} is after the clock's end ({s.clock.end})"))
        if isinstance(ev, CrashEvent):
            disk_ok[name] = False
            failed_disk[name] = True
        elif isinstance(ev, (RecoverDiskEvent, DiskLostEvent)):
            if not failed_disk[name] and isinstance(ev, DiskLostEvent):
                errors.append(
                    (("timeline", i, "event"), f"{name} has no failed disk to lose at {ev.at}; add a crash before it")
                )
            failed_disk[name] = False
            if isinstance(ev, RecoverDiskEvent):
                disk_ok[name] = True
        elif isinstance(ev, RestoreEvent):
            source = ev.from_server or name
            if source not in names:
                errors.append(
                    (("timeline", i, "from_server"), f"no server named {source!r}; servers are: {', '.join(names)}")
                )
                continue
            usable = [b for b in good_backups[source] if ev.backup == "latest" or b == ev.backup]
            if not usable:
                what = "no successful backup" if ev.backup == "latest" else f"no successful backup at {ev.backup}"
                errors.append(
                    (("timeline", i, "backup"), f"{source} has {what} before {ev.at}; add a backup event with ok: true")
                )
            disk_ok[name] = True
        elif isinstance(ev, BackupsEvent) and ev.ok:
            if not disk_ok[name]:
                errors.append(
                    (
                        ("timeline", i, "ok"),
                        f"{name}'s disk has failed at {ev.at}; backups of it cannot succeed (use ok: false)",
                    )
                )
            else:
                good_backups[name].append(ev.at)
        elif isinstance(ev, BackupEvent) and ev.ok:
            if not disk_ok[name]:
                errors.append(
                    (
                        ("timeline", i, "ok"),
                        f"{name}'s disk has failed at {ev.at}; a backup of it cannot succeed (use ok: false)",
                    )
                )
            else:
                good_backups[name].append(ev.at)
        elif isinstance(ev, UpEvent) and not disk_ok[name]:
            errors.append(
                (
                    ("timeline", i, "event"),
                    f"{name} has no working disk at {ev.at}; add a recover-disk or restore event first",
                )
            )
    for i, sender in enumerate(s.senders):
        t = sender.traffic
        if t.to is not None and t.to not in domains:
            errors.append(
                (
                    ("senders", i, "traffic", "to"),
                    f"no server accepts mail for {t.to!r}; served domains: {', '.join(domains)}",
                )
            )
        if t.to is None and len(domains) > 1:
            errors.append(
                (
                    ("senders", i, "traffic"),
                    f"several domains are served ({', '.join(domains)}); say which one with to:",
                )
            )
        for j, when in enumerate(t.at or []):
            if not (s.clock.start <= when <= s.clock.end):
                errors.append(
                    (
                        ("senders", i, "traffic", "at", j),
                        f"{when} is outside the clock ({s.clock.start} to {s.clock.end})",
                    )
                )
        errors.extend(_traffic_window(s.clock, t, ("senders", i, "traffic")))
    for i, w in enumerate(s.windows):
        lo = s.clock.start if w.start == "start" else w.start
        hi = s.clock.end if w.end == "end" else w.end
        if hi <= lo:
            errors.append((("windows", i, "to"), f"window {w.label!r} ends ({hi}) before it starts ({lo})"))
    errors.extend(threshold_problems(s))
    return errors
