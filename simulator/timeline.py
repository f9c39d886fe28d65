"""The incident timeline as a SimPy process: server states, faults, disks, backups, DNS.

Every entry takes effect at its simulated instant, before the attempts of
that instant go on the wire (the bridge flushes only when an instant's
events have all run). The process works with explicit collaborators
(``Scene``): the clock, the receiving servers, their mail stores, the DNS
and the event sink.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from . import events as ev
from .clock import SimClock
from .errors import RunError
from .receiver import Mode, ReceivingServer
from .routing import Dns
from .scenario import (
    BackupEvent,
    BackupsEvent,
    ClearFaultsEvent,
    CrashEvent,
    DiskLostEvent,
    DnsEvent,
    DownEvent,
    FaultEvent,
    RecoverDiskEvent,
    RestoreEvent,
    TimelineEvent,
    UpEvent,
)
from .store import MailStores

__all__ = ["Scene", "timeline_process"]


@dataclass(frozen=True)
class Scene:
    """What the timeline acts on."""

    env: simpy.Environment
    clock: SimClock
    servers: dict[str, ReceivingServer]
    stores: MailStores
    dns: Dns
    emit: Callable[[ev.Event], None]
    stamp: Callable[[], dict[str, Any]]


def timeline_process(scene: Scene, entries: Sequence[TimelineEvent]) -> Generator[simpy.Event, None, None]:
    """Apply the scenario's timeline *entries* in order, each at its time."""
    env = scene.env
    for entry in entries:
        at = scene.clock.seconds(entry.at)
        if at > env.now:
            yield env.timeout(at - env.now)
        _apply(scene, entry)


def _backup(scene: Scene, name: str, ok: bool, note: str, scheduled: bool = False) -> None:
    stores = scene.stores
    if ok and stores.has_disk(name):
        snap = stores.backup(name, scene.env.now)
        scene.emit(
            ev.BackupEvent(
                **scene.stamp(), server=name, ok=True, messages=len(snap.mail), scheduled=scheduled, note=note
            )
        )
    else:
        reason = "failed" if not ok else "no working disk"
        scene.emit(
            ev.BackupEvent(
                **scene.stamp(), server=name, ok=False, messages=0, scheduled=scheduled, reason=reason, note=note
            )
        )


def _backups(scene: Scene, entry: BackupsEvent) -> Generator[simpy.Event, None, None]:
    env = scene.env
    end = scene.clock.seconds(entry.until) if entry.until else scene.clock.end
    while env.now <= end:
        _backup(scene, entry.server, entry.ok, entry.note or "", scheduled=True)
        if env.now + entry.every > end:
            return
        yield env.timeout(entry.every)


def _apply(scene: Scene, entry: TimelineEvent) -> None:
    now = scene.env.now
    emit, stamp = scene.emit, scene.stamp
    note = entry.note or ""
    if isinstance(entry, DnsEvent):
        scene.dns.set(entry.domain, entry.mx, entry.ttl)
        emit(ev.DnsEvent(**stamp(), domain=entry.domain, mx=list(entry.mx), ttl=entry.ttl, note=note))
        return
    name = entry.server
    server = scene.servers[name]
    stores = scene.stores
    if isinstance(entry, UpEvent):
        server.mode = Mode.UP
        emit(ev.ServerEvent(**stamp(), server=name, state="up", note=note))
    elif isinstance(entry, DownEvent):
        server.mode = Mode(entry.mode)
        emit(ev.ServerEvent(**stamp(), server=name, state=entry.mode, note=note))
    elif isinstance(entry, CrashEvent):
        disk = stores.crash(name, now)
        server.mode = Mode(entry.mode)
        emit(
            ev.CrashEvent(
                **stamp(),
                server=name,
                disk=disk.label if disk else "",
                messages_on_disk=len(disk.mail) if disk else 0,
                state=entry.mode,
                note=note,
            )
        )
    elif isinstance(entry, BackupEvent):
        _backup(scene, name, entry.ok, note)
    elif isinstance(entry, BackupsEvent):
        scene.env.process(_backups(scene, entry))
        emit(ev.BackupScheduleEvent(**stamp(), server=name, every=entry.every, ok=entry.ok, note=note))
    elif isinstance(entry, RestoreEvent):
        source = entry.from_server or name
        taken = None if entry.backup == "latest" else scene.clock.seconds(entry.backup)
        snap = stores.latest_backup(source, taken)
        if snap is None:
            raise RunError(f"{name}: no backup of {source} to restore from at {scene.clock.iso(now)}")
        disk = stores.restore(name, snap, now)
        if entry.bring_up:
            server.mode = Mode.UP
        emit(
            ev.RestoreEvent(
                **stamp(),
                server=name,
                from_server=source,
                disk=disk.label,
                backup_taken_at=scene.clock.iso(snap.taken_at),
                messages=len(snap.mail),
                state=server.mode.value,
                note=note,
            )
        )
    elif isinstance(entry, RecoverDiskEvent):
        count = stores.recover_failed(name, now)
        emit(ev.DiskRecoveredEvent(**stamp(), server=name, messages=count, note=note))
    elif isinstance(entry, DiskLostEvent):
        count = stores.lose_failed(name, now)
        emit(ev.DiskLostEvent(**stamp(), server=name, messages=count, note=note))
    elif isinstance(entry, FaultEvent):
        until = scene.clock.seconds(entry.until) if entry.until else math.inf
        server.add_fault(entry.fault, until)
        emit(
            ev.FaultEvent(
                **stamp(),
                server=name,
                fault=entry.fault.model_dump(mode="json"),
                until=scene.clock.iso(until) if entry.until else "",
                note=note,
            )
        )
    elif isinstance(entry, ClearFaultsEvent):
        server.clear_faults()
        emit(ev.FaultClearedEvent(**stamp(), server=name, note=note))
