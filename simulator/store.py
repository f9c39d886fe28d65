"""Mail stores with durability: disks, backups, crashes, restores, and the way into the mailboxes.

A 250 to DATA puts a copy on the receiving server's current ``Disk``. A
backup snapshots what the disk holds. A crash marks the disk failed: what it
held is stranded (recoverable in principle) until the disk is recovered or
given up as lost. A restore gives the server a new disk holding the backup's
content. ``MailStores.holdings()`` answers, per message, where its copies
are at the end of the run.

Between the 250 and the mailbox sits the server's internal delivery
(``DeliveryQueue``): immediate unless the server declares a capacity
(``delivery.per_minute``) or a ``delivery-queue`` fault slows it. A copy on a
disk records when it became readable; a copy still waiting in the queue when
the run ends is ``queued`` (accepted, safe on a live disk, not yet in a
mailbox). The queue lives on the disk: a crash strands what waits in it, and
a restore or a disk recovery makes what comes back readable at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["DiskState", "Disk", "Backup", "MailStores", "Holding", "DeliveryQueue"]


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


@dataclass
class _Lane:
    """One first-in, first-out way into the mailboxes, ``per_minute`` messages per simulated minute.

    ``math.inf`` delivers at once; 0 holds everything. ``waiting`` keeps
    ``(message id, readable at)`` of copies not yet readable when they
    joined, in order, so a lane that closes can hand on what it still holds.
    """

    per_minute: float
    selects: Callable[[str], bool] | None = None  #: the recipients this lane takes (None: all)
    until: float = math.inf  #: when the lane closes by itself
    free_at: float = 0.0  #: when the lane has delivered everything it holds
    waiting: list[tuple[str, float]] = field(default_factory=list)

    def push(self, message_id: str, now: float) -> float:
        """Queue a copy at *now*; returns when it reaches the mailbox (``math.inf``: held)."""
        if math.isinf(self.per_minute):
            return now
        if self.per_minute <= 0:
            done = math.inf
        else:
            done = max(now, self.free_at) + 60.0 / self.per_minute
            self.free_at = done
        if done > now:
            self.waiting.append((message_id, done))
        return done

    def still_waiting(self, t: float) -> list[str]:
        """Copies not yet readable at *t*, in queue order (and forget them)."""
        left = [message_id for message_id, done in self.waiting if done > t]
        self.waiting.clear()
        return left


class DeliveryQueue:
    """A server's internal delivery from its queue to the mailboxes.

    The main lane runs at the server's own capacity (``per_minute``; at once
    without one). A ``delivery-queue`` fault opens a lane of its own: while
    it is open, copies for the recipients it selects join it (the first open
    lane that selects a recipient takes the copy, in the order the lanes
    were opened); when it closes (its ``until``, or ``close_all``), the copies
    it still holds join the main lane at that instant, in order.
    """

    def __init__(self, per_minute: float | None = None) -> None:
        self.main = _Lane(math.inf if per_minute is None else per_minute)
        self.lanes: list[_Lane] = []

    def open(self, per_minute: float, selects: Callable[[str], bool] | None, now: float, until: float) -> None:
        """A fault slows delivery for the recipients *selects* picks, from *now* until *until*."""
        self.settle(now)
        self.lanes.append(_Lane(per_minute, selects, until, free_at=now))

    def admit(self, message_id: str, recipient: str, now: float) -> float:
        """A copy committed at *now*: when it reaches the mailbox (``math.inf``: held for now)."""
        self.settle(now)
        for lane in self.lanes:
            if lane.selects is None or lane.selects(recipient):
                return lane.push(message_id, now)
        return self.main.push(message_id, now)

    def settle(self, now: float) -> dict[str, float]:
        """Close the lanes whose ``until`` has come by *now*; returns the copies moved, with their new times."""
        moved: dict[str, float] = {}
        while True:
            due = [lane for lane in self.lanes if lane.until <= now]
            if not due:
                return moved
            first = min(due, key=lambda lane: lane.until)
            moved.update(self._close(first, first.until))

    def close_all(self, now: float) -> dict[str, float]:
        """Every fault lane closes at *now* (its fault was cleared)."""
        moved = self.settle(now)
        for lane in list(self.lanes):
            moved.update(self._close(lane, now))
        return moved

    def _close(self, lane: _Lane, t: float) -> dict[str, float]:
        self.lanes.remove(lane)
        return {message_id: self.main.push(message_id, t) for message_id in lane.still_waiting(t)}

    def drop(self, now: float) -> None:
        """The disk failed: forget what waits (it stays on the failed disk); later copies start afresh."""
        for lane in (self.main, *self.lanes):
            lane.waiting.clear()
            lane.free_at = now


class MailStores:
    """All disks and backups of a run, by server name, with each server's delivery into the mailboxes."""

    def __init__(
        self, servers: list[str], relays: set[str] | None = None, delivery: dict[str, float] | None = None
    ) -> None:
        self.relays = set(relays or ())
        self._disks: list[Disk] = []
        self.current: dict[str, Disk | None] = {}
        self.backups: dict[str, list[Backup]] = {name: [] for name in servers}
        self._failed: dict[str, Disk | None] = dict.fromkeys(servers)
        capacity = delivery or {}
        self.queues: dict[str, DeliveryQueue] = {name: DeliveryQueue(capacity.get(name)) for name in servers}
        for name in servers:
            self.current[name] = self._new_disk(name)

    def _new_disk(self, server: str) -> Disk:
        disk = Disk(label=f"{server}-disk{sum(d.server == server for d in self._disks) + 1}", server=server)
        self._disks.append(disk)
        return disk

    def accept(self, server: str, message_id: str, now: float, recipient: str = "") -> str:
        """Commit a copy to the server's current disk, through its delivery queue; returns the disk label."""
        disk = self.settle(server, now)
        if disk is None:
            raise RuntimeError(f"{server} accepted mail with no working disk")
        if message_id not in disk.mail:
            disk.put(message_id, self.queues[server].admit(message_id, recipient, now))
        return disk.label

    def settle(self, server: str, now: float) -> Disk | None:
        """Bring the server's delivery queue up to *now* (lanes whose time is up close); returns its current disk."""
        self._moved(server, self.queues[server].settle(now))
        return self.current[server]

    def slow_delivery(
        self, server: str, per_minute: float, selects: Callable[[str], bool] | None, now: float, until: float
    ) -> None:
        """A ``delivery-queue`` fault: copies for the recipients *selects* picks go through a slower lane."""
        self.settle(server, now)
        self.queues[server].open(per_minute, selects, now, until)

    def end_slow_delivery(self, server: str, now: float) -> None:
        """Every ``delivery-queue`` fault of the server ends at *now*; what they held joins the normal delivery."""
        self._moved(server, self.queues[server].close_all(now))

    def _moved(self, server: str, moved: dict[str, float]) -> None:
        disk = self.current[server]
        if disk is None:
            return
        for message_id, at in moved.items():
            if message_id in disk.mail:
                disk.mail[message_id] = at

    def forwarded(self, server: str, message_id: str) -> None:
        """A relay passed the message on: it leaves the relay's queue."""
        disk = self.current[server]
        if disk is not None:
            disk.mail.pop(message_id, None)

    def has_disk(self, server: str) -> bool:
        """True when the server has a working disk."""
        return self.current[server] is not None

    def backup(self, server: str, now: float) -> Backup:
        """Snapshot the server's current disk (with what still waits in its delivery queue)."""
        disk = self.settle(server, now)
        if disk is None:
            raise RuntimeError(f"{server} has no working disk to back up")
        snap = Backup(server=server, taken_at=now, mail=dict(disk.mail))
        self.backups[server].append(snap)
        return snap

    def crash(self, server: str, now: float) -> Disk | None:
        """The current disk fails; the server has no disk until a restore or recovery.

        What waited in the delivery queue stays on the failed disk.
        """
        disk = self.settle(server, now)
        self.queues[server].drop(now)
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
                failed.mail[message_id] = now  # readable again now, what waited for delivery included
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

    def holdings(self, end: float = math.inf) -> dict[str, Holding]:
        """Per message id that any disk ever held: delivered, queued (on a relay or for delivery), stranded or lost.

        ``since`` is when a delivered copy became available on a live disk,
        or when the disk holding a stranded or lost copy failed or was lost.
        A copy on a live disk that is not readable by *end* (the end of the
        run) is still in the server's delivery queue: ``queued``.
        """
        if not math.isinf(end):
            for server in self.queues:
                self.settle(server, end)
        rank = {"delivered": 0, "queued": 1, "stranded": 2, "lost": 3}
        out: dict[str, Holding] = {}
        for disk in self._disks:
            base = {DiskState.LIVE: "delivered", DiskState.FAILED: "stranded", DiskState.LOST: "lost"}[disk.state]
            if base == "delivered" and disk.server in self.relays:
                base = "queued"  # still in a backup MX's queue, not yet in a mailbox
            for message_id, available in disk.mail.items():
                state = "queued" if base == "delivered" and available > end else base
                since = available if disk.state is DiskState.LIVE else disk.changed_at
                cur = out.get(message_id)
                if cur is None or rank[state] < rank[cur.state] or (state == cur.state and since < cur.since):
                    out[message_id] = Holding(state, since)
        return out
