"""Mail stores with durability: disks, backups, crashes, restores.

A 250 to DATA puts a copy on the receiving server's current ``Disk``. A
backup snapshots what the disk holds. A crash marks the disk failed: what it
held is stranded (recoverable in principle) until the disk is recovered or
given up as lost. A restore gives the server a new disk holding the backup's
content. ``MailStores.availability()`` answers, per message, where its copies
are at the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["DiskState", "Disk", "Backup", "MailStores", "Holding"]


class DiskState(StrEnum):
    """Health of a disk."""

    LIVE = "live"
    FAILED = "failed"
    LOST = "lost"


@dataclass
class Disk:
    """One server disk: message id -> the simulated time the copy became available on it."""

    label: str
    server: str
    state: DiskState = DiskState.LIVE
    mail: dict[str, float] = field(default_factory=dict)
    changed_at: float = 0.0  #: when the disk last failed or was given up

    def put(self, message_id: str, at: float) -> None:
        """Store a copy; the first time a message reached this disk is kept."""
        self.mail.setdefault(message_id, at)


@dataclass(frozen=True)
class Backup:
    """A snapshot of a disk's mail taken at ``taken_at``."""

    server: str
    taken_at: float
    mail: dict[str, float]


@dataclass(frozen=True, slots=True)
class Holding:
    """Where a message is at the end: its best state and when it got there."""

    state: str  # "delivered", "stranded" or "lost"
    since: float


class MailStores:
    """All disks and backups of a run, by server name.

    *keep*, when given, is the set of backup times a restore names: the
    stores then keep only those and each server's latest backup (a long run
    with frequent backups would otherwise hold a copy of the disk per backup).
    """

    def __init__(
        self, servers: list[str], relays: set[str] | None = None, keep: frozenset[float] | None = None
    ) -> None:
        self.relays = set(relays or ())
        self._keep = keep
        self._disks: list[Disk] = []
        self.current: dict[str, Disk | None] = {}
        self.backups: dict[str, list[Backup]] = {name: [] for name in servers}
        self._failed: dict[str, Disk | None] = dict.fromkeys(servers)
        for name in servers:
            self.current[name] = self._new_disk(name)

    def _new_disk(self, server: str) -> Disk:
        disk = Disk(label=f"{server}-disk{sum(d.server == server for d in self._disks) + 1}", server=server)
        self._disks.append(disk)
        return disk

    def accept(self, server: str, message_id: str, now: float) -> str:
        """Commit a copy to the server's current disk; returns the disk label."""
        disk = self.current[server]
        if disk is None:
            raise RuntimeError(f"{server} accepted mail with no working disk")
        disk.put(message_id, now)
        return disk.label

    def forwarded(self, server: str, message_id: str) -> None:
        """A relay passed the message on: it leaves the relay's queue."""
        disk = self.current[server]
        if disk is not None:
            disk.mail.pop(message_id, None)

    def has_disk(self, server: str) -> bool:
        """True when the server has a working disk."""
        return self.current[server] is not None

    def backup(self, server: str, now: float) -> Backup:
        """Snapshot the server's current disk."""
        disk = self.current[server]
        if disk is None:
            raise RuntimeError(f"{server} has no working disk to back up")
        snap = Backup(server=server, taken_at=now, mail=dict(disk.mail))
        kept = self.backups[server]
        if self._keep is not None:
            # Only the latest backup and those a restore names can be restored: drop the others.
            kept[:] = [b for b in kept if b.taken_at in self._keep]
        kept.append(snap)
        return snap

    def crash(self, server: str, now: float) -> Disk | None:
        """The current disk fails; the server has no disk until a restore or recovery."""
        disk = self.current[server]
        if disk is not None:
            disk.state = DiskState.FAILED
            disk.changed_at = now
            self._failed[server] = disk
        self.current[server] = None
        return disk

    def restore(self, server: str, backup: Backup, now: float) -> Disk:
        """A new disk for *server* holding *backup*'s mail, available from *now*."""
        disk = self._new_disk(server)
        for message_id in backup.mail:
            disk.put(message_id, now)
        self.current[server] = disk
        return disk

    def recover_failed(self, server: str, now: float) -> int:
        """The failed disk is read back. Returns how many messages came back.

        With no new disk yet, the recovered disk becomes the server's disk
        again. Otherwise its mail is copied onto the current disk (late).
        """
        failed = self._failed[server]
        if failed is None:
            return 0
        self._failed[server] = None
        if self.current[server] is None:
            failed.state = DiskState.LIVE
            for message_id in failed.mail:
                failed.mail[message_id] = max(failed.mail[message_id], now)
            self.current[server] = failed
            return len(failed.mail)
        target = self.current[server]
        assert target is not None
        fresh = [m for m in failed.mail if m not in target.mail]
        for message_id in fresh:
            target.put(message_id, now)
        failed.state = DiskState.LOST  # its content now lives on the current disk
        failed.mail.clear()
        return len(fresh)

    def lose_failed(self, server: str, now: float) -> int:
        """The failed disk is given up. Returns how many copies were on it."""
        failed = self._failed[server]
        if failed is None:
            return 0
        self._failed[server] = None
        failed.state = DiskState.LOST
        failed.changed_at = now
        return len(failed.mail)

    def latest_backup(self, server: str, taken_at: float | None = None) -> Backup | None:
        """The newest good backup (or the one taken at *taken_at*)."""
        found = [b for b in self.backups[server] if taken_at is None or b.taken_at == taken_at]
        return found[-1] if found else None

    def holdings(self) -> dict[str, Holding]:
        """Per message id that any disk ever held: delivered, queued (on a relay), stranded or lost.

        ``since`` is when a delivered copy became available on a live disk,
        or when the disk holding a stranded or lost copy failed or was lost.
        """
        rank = {"delivered": 0, "queued": 1, "stranded": 2, "lost": 3}
        out: dict[str, Holding] = {}
        for disk in self._disks:
            state = {DiskState.LIVE: "delivered", DiskState.FAILED: "stranded", DiskState.LOST: "lost"}[disk.state]
            if state == "delivered" and disk.server in self.relays:
                state = "queued"  # still in a backup MX's queue, not yet in a mailbox
            for message_id, available in disk.mail.items():
                since = available if disk.state is DiskState.LIVE else disk.changed_at
                cur = out.get(message_id)
                if cur is None or rank[state] < rank[cur.state] or (state == cur.state and since < cur.since):
                    out[message_id] = Holding(state, since)
        return out
