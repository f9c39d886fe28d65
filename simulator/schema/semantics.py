"""Cross-field rules of a scenario: what the schema alone cannot see.

``check_semantics`` returns ``(location, message)`` pairs, each location a
path into the scenario file (``("timeline", 3, "at")``), which
``simulator.schema.validate`` turns into problems with file and line: the
clock runs forward, names are unique and known, the timeline is in order and
possible (no backup of a failed disk, no restore without a good backup),
traffic and windows fall inside the clock, thresholds can be read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ..scenario import (
    MAX_CLOCK_DAYS,
    BackupEvent,
    BackupsEvent,
    Clock,
    CrashEvent,
    DiskLostEvent,
    DnsEvent,
    FaultEvent,
    RecoverDiskEvent,
    RestoreEvent,
    Scenario,
    ServerSpec,
    TrafficSpec,
    UpEvent,
)
from .thresholds import threshold_problems

__all__ = ["check_semantics"]


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


def _timestamps(node: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], datetime]]:
    """Every timestamp of a scenario, with its location as the file writes it (``windows.0.from``)."""
    if isinstance(node, datetime):
        yield loc, node
    elif isinstance(node, BaseModel):
        for name, info in type(node).model_fields.items():
            yield from _timestamps(getattr(node, name), (*loc, info.alias or name))
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _timestamps(item, (*loc, i))


def _offsets(s: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Times with a UTC offset must have a clock that can place them, and not be mixed with times without one."""
    found = list(_timestamps(s))
    aware = [(loc, when) for loc, when in found if when.tzinfo is not None]
    if not aware:
        return []
    if s.clock.timezone is None:
        return [
            (
                loc,
                f"{when.isoformat(sep=' ')} has a UTC offset, but the clock has no timezone, so the offset would be "
                "dropped; remove it, or set clock.timezone",
            )
            for loc, when in aware[:5]
        ]
    if len(aware) < len(found):
        loc, when = next((loc, when) for loc, when in found if when.tzinfo is None)
        return [
            (
                loc,
                f"{when.isoformat(sep=' ')} has no UTC offset while other times here have one; "
                "write every time one way (without an offset, a time is read in clock.timezone)",
            )
        ]
    return []


def check_semantics(s: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-field rules; returns ``(location, message)`` pairs (empty when all is well)."""
    errors: list[tuple[tuple[Any, ...], str]] = _offsets(s)
    if errors:
        return errors  # times with and without offsets cannot be compared
    if s.clock.end <= s.clock.start:
        errors.append((("clock", "end"), f"end ({s.clock.end}) must be after start ({s.clock.start})"))
    elif s.clock.end - s.clock.start > timedelta(days=MAX_CLOCK_DAYS):
        errors.append(
            (
                ("clock", "end"),
                f"the clock runs {(s.clock.end - s.clock.start).days} days; a replay covers at most {MAX_CLOCK_DAYS} "
                "days: move end closer to start",
            )
        )
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
        elif hi <= s.clock.start or lo >= s.clock.end:
            errors.append(
                (
                    ("windows", i, "from"),
                    f"window {w.label!r} ({lo} to {hi}) lies outside the clock ({s.clock.start} to {s.clock.end}), "
                    "so no mail can fall in it; move it inside the clock",
                )
            )
    errors.extend(threshold_problems(s))
    return errors
