"""The static description of an incident: the scenario file's schema.

A scenario declares the clock, the receiving servers, the incident timeline,
the sending MTAs with their retry policies and traffic, and optional named
windows of submission time for reports. Models are frozen and reject unknown
keys, so a typo is an error. Cross-field rules (timeline order, server names)
live in ``simulator.schema.semantics``; both kinds of error are reported with
file and line by ``simulator.loader``.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .durations import Duration
from .faults import FaultSpec
from .policies import PolicySpec
from .schema.thresholds import ThresholdList

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
]

DOWN_MODES = ("refuse", "blackhole", "unreachable", "tempfail")
DownMode = Literal["refuse", "blackhole", "unreachable", "tempfail"]
"""How a server that is down looks on the wire: connection refused; TCP accepted but
no greeting (charged the sender's greeting timeout); unreachable (charged the sender's
connect timeout); or a 421 greeting and close."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
NAME_MAX = 64
"""Names become folder and file names (``results/NAME``): at most this many characters."""
MAX_CLOCK_DAYS = 366
"""The longest clock a scenario may have (an incident and its aftermath, not an era)."""


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        return datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "timestamp", "expected a timestamp such as 2011-10-26 10:38, got {value}", {"value": repr(value)}
            ) from None
    else:
        raise PydanticCustomError(
            "timestamp", "expected a timestamp such as 2011-10-26 10:38, got {value}", {"value": repr(value)}
        )
    return when


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not _NAME.match(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise PydanticCustomError(
            "name", "names use lowercase letters, digits, '.', '_' and '-', got {value}", {"value": shown}
        )
    if len(value) > NAME_MAX:
        raise PydanticCustomError(
            "name",
            "a name is at most {limit} characters (it names files and folders), got {n}",
            {"limit": NAME_MAX, "n": len(value)},
        )
    return value


Name = Annotated[str, BeforeValidator(_name)]


def _rate(value: Any) -> Any:
    """Messages per hour from ``12``, ``"12/h"``, ``"300/d"`` or ``"1/m"``."""
    if isinstance(value, bool):
        raise PydanticCustomError("rate", "expected a rate such as 12/h or 300/d, got {value}", {"value": repr(value)})
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise PydanticCustomError(
                "rate", "a rate is a finite number of messages, e.g. 12/h, got {value}", {"value": repr(value)}
            )
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
    preference: StrictInt = Field(10, ge=0, le=65535, description="MX preference: lower is tried first")
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
        if self.rate is not None and self.rate > 3600:
            raise PydanticCustomError(
                "traffic",
                "an MTA submits at most one message a second (3600/h), got {rate}/h; "
                "for more traffic, raise the group's count",
                {"rate": f"{self.rate:g}"},
            )
        if isinstance(self.profile, list):
            if len(self.profile) != 24:
                raise PydanticCustomError(
                    "profile", "profile needs 24 hourly weights, got {n}", {"n": len(self.profile)}
                )
            if not all(math.isfinite(w) for w in self.profile):
                raise PydanticCustomError("profile", "profile weights must be finite numbers, e.g. 0.5")
            if any(w < 0 for w in self.profile) or not any(self.profile):
                raise PydanticCustomError("profile", "profile weights must be >= 0 and not all 0")
        return self


class SenderSpec(_Model):
    """A group of identical sending MTAs sharing a retry policy and a traffic pattern."""

    name: Name
    count: StrictInt = Field(1, ge=1, le=10000)
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

    concurrency: StrictInt = Field(64, ge=1, le=1024)
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
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    clock: Clock
    servers: list[ServerSpec] = Field(min_length=1)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    senders: list[SenderSpec] = Field(min_length=1)
    windows: list[WindowSpec] = Field(default_factory=list)
    engine: EngineSpec = EngineSpec()
    thresholds: dict[str, ThresholdList] = Field(default_factory=dict)
    sources: list[SourceSpec] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(None)
    _validated: int = PrivateAttr(0)

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from, if any (relative CSV paths start there)."""
        return self._source

    def mark_validated(self) -> None:
        """The loader checked this very object (a copy made from it is checked again)."""
        self._validated = id(self)

    @property
    def validated(self) -> bool:
        """Whether ``mark_validated`` was called on this object."""
        return self._validated == id(self)
