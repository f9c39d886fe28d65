"""The incident timeline as a SimPy process: server states, faults, disks, backups, DNS.

Every entry takes effect at its simulated instant, before the attempts of
that instant go on the wire (the bridge flushes only when an instant's
events have all run).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from .errors import RunError
from .receiver import Mode
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
    UpEvent,
)

if TYPE_CHECKING:
    from .engine import Replay

__all__ = ["timeline_process"]


def timeline_process(replay: Replay) -> Generator[simpy.Event, None, None]:
    """Apply the scenario's timeline entries in order, each at its time."""
    env = replay.env
    for ev in replay.scenario.timeline:
        at = replay.clock.seconds(ev.at)
        if at > env.now:
            yield env.timeout(at - env.now)
        _apply(replay, ev)


def _backup(replay: Replay, name: str, ok: bool, note: dict[str, Any], scheduled: bool = False) -> None:
    stores = replay.stores
    if ok and stores.has_disk(name):
        snap = stores.backup(name, replay.env.now)
        replay.log("backup", server=name, ok=True, messages=len(snap.mail), scheduled=scheduled, **note)
    else:
        reason = "failed" if not ok else "no working disk"
        replay.log("backup", server=name, ok=False, messages=0, scheduled=scheduled, reason=reason, **note)


def _backups(replay: Replay, ev: BackupsEvent) -> Generator[simpy.Event, None, None]:
    env = replay.env
    end = replay.clock.seconds(ev.until) if ev.until else replay.clock.end
    note = {"note": ev.note} if ev.note else {}
    while env.now <= end:
        _backup(replay, ev.server, ev.ok, note, scheduled=True)
        if env.now + ev.every > end:
            return
        yield env.timeout(ev.every)


def _apply(replay: Replay, ev: Any) -> None:
    now = replay.env.now
    note = {"note": ev.note} if ev.note else {}
    if isinstance(ev, DnsEvent):
        replay.dns.set(ev.domain, ev.mx, ev.ttl)
        replay.log("dns", domain=ev.domain, mx=list(ev.mx), ttl=ev.ttl, **note)
        return
    name = ev.server
    server = replay.servers[name]
    stores = replay.stores
    if isinstance(ev, UpEvent):
        server.mode = Mode.UP
        replay.log("server", server=name, state="up", **note)
    elif isinstance(ev, DownEvent):
        server.mode = Mode(ev.mode)
        replay.log("server", server=name, state=ev.mode, **note)
    elif isinstance(ev, CrashEvent):
        disk = stores.crash(name, now)
        server.mode = Mode(ev.mode)
        replay.log("crash", server=name, disk=disk.label if disk else "", messages_on_disk=len(disk.mail) if disk else 0, state=ev.mode, **note)
    elif isinstance(ev, BackupEvent):
        _backup(replay, name, ev.ok, note)
    elif isinstance(ev, BackupsEvent):
        replay.env.process(_backups(replay, ev))
        replay.log("backup_schedule", server=name, every=ev.every, ok=ev.ok, **note)
    elif isinstance(ev, RestoreEvent):
        source = ev.from_server or name
        taken = None if ev.backup == "latest" else replay.clock.seconds(ev.backup)
        snap = stores.latest_backup(source, taken)
        if snap is None:
            raise RunError(f"{name}: no backup of {source} to restore from at {replay.clock.iso(now)}")
        disk = stores.restore(name, snap, now)
        if ev.bring_up:
            server.mode = Mode.UP
        replay.log("restore", server=name, from_server=source, disk=disk.label, backup_taken_at=replay.clock.iso(snap.taken_at), messages=len(snap.mail), state=server.mode.value, **note)
    elif isinstance(ev, RecoverDiskEvent):
        count = stores.recover_failed(name, now)
        replay.log("disk_recovered", server=name, messages=count, **note)
    elif isinstance(ev, DiskLostEvent):
        count = stores.lose_failed(name, now)
        replay.log("disk_lost", server=name, messages=count, **note)
    elif isinstance(ev, FaultEvent):
        until = replay.clock.seconds(ev.until) if ev.until else math.inf
        server.add_fault(ev.fault, until)
        replay.log("fault", server=name, fault=ev.fault.model_dump(mode="json"), until=replay.clock.iso(until) if ev.until else "", **note)
    elif isinstance(ev, ClearFaultsEvent):
        server.clear_faults()
        replay.log("fault_cleared", server=name, **note)
