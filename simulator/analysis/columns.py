"""The ledger's columns as numpy arrays, and the measures that are sums, counts and orderings over them.

``Columns`` views a ``simulator.ledger.Ledger`` without copying it (numpy
over the same buffers), adds a sender-group, policy and destination number
per message, and answers the questions whose answers are aggregates over a
million messages: counts per final state, delays and their percentiles,
queue depth, queue ages (qshape) and recovery storms. Each function gives
exactly the numbers the row-by-row definitions in ``simulator.metrics`` give
(the same float arithmetic, in the same order where it matters), so a run's
numbers do not depend on which form computed them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import metrics
from ..ledger import Ledger, as_numpy
from ..schema.incident import Interval, recoveries
from ..schema.states import STATES

__all__ = ["Columns", "percentile", "as_numpy"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


def percentile(data: Floats, q: float) -> float:
    """``metrics.percentile`` of values already sorted ascending (numpy), with the same interpolation."""
    if not len(data):
        raise ValueError("percentile of no values")
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    a, b = float(data[lo]), float(data[hi])
    if pos == lo or a == b:
        return a
    return a + (b - a) * (pos - lo)


class Columns:
    """Numpy views of a ledger, with group, policy and destination numbers per message."""

    def __init__(self, ledger: Ledger, groups: Sequence[str], destination: Callable[[str, float, str], str]) -> None:
        self.ledger = ledger
        self.n = len(ledger)
        self.submitted: Floats = as_numpy(ledger.submitted, np.float64)
        self.accepted_at: Floats = as_numpy(ledger.accepted_at, np.float64)
        self.bounced_at: Floats = as_numpy(ledger.bounced_at, np.float64)
        self.final_at: Floats = as_numpy(ledger.final_at, np.float64)
        self.state = as_numpy(ledger.final_state, np.int8).astype(np.int64)
        self.attempts = as_numpy(ledger.attempts, np.int32)
        self.connections = as_numpy(ledger.connections, np.int32)
        self.warnings = as_numpy(ledger.warnings, np.int32)
        self.copies = as_numpy(ledger.copies, np.int32)
        self.accepted_by = as_numpy(ledger.accepted_by, np.int8).astype(np.int64)
        mta = as_numpy(ledger.mta, np.int32)
        self.groups = list(groups)
        number = {g: k for k, g in enumerate(self.groups)}
        table = np.array([number[s.group] for s in ledger.senders] or [0], dtype=np.int64)
        self.group: Ints = table[mta] if self.n else np.zeros(0, dtype=np.int64)
        self.policies = sorted({s.policy for s in ledger.senders})
        pnumber = {p: k for k, p in enumerate(self.policies)}
        ptable = np.array([pnumber[s.policy] for s in ledger.senders] or [0], dtype=np.int64)
        self.policy: Ints = ptable[mta] if self.n else np.zeros(0, dtype=np.int64)
        self.accepted: Mask = ~np.isnan(self.accepted_at)
        #: when each message left its sender's queue (accepted or bounced), nan if never
        self.left: Floats = np.where(self.accepted, self.accepted_at, self.bounced_at)
        self.servers = list(ledger.servers)
        self.destinations, self.dest = self._destinations(mta, destination)

    def _destinations(self, mta: Any, destination: Callable[[str, float, str], str]) -> tuple[list[str], Ints]:
        """Each message's destination server (by number into the first list), computed once per distinct case."""
        names: list[str] = []
        number: dict[str, int] = {}
        out = np.zeros(self.n, dtype=np.int64)
        memo: dict[tuple[int, float, int], int] = {}
        domains = [s.domain for s in self.ledger.senders]
        by = self.accepted_by
        servers = self.servers
        for i in range(self.n):
            key = (int(mta[i]), float(self.submitted[i]), int(by[i]))
            found = memo.get(key)
            if found is None:
                name = destination(domains[key[0]], key[1], servers[key[2]] if key[2] >= 0 else "")
                found = number.get(name)
                if found is None:
                    found = number[name] = len(names)
                    names.append(name)
                if len(memo) < 200_000:
                    memo[key] = found
            out[i] = found
        return names, out

    # ------------------------------------------------------------ counts
    def counts(self, mask: Mask | None = None) -> dict[str, int]:
        """Final-state counts of the messages in *mask* (all by default)."""
        state = self.state if mask is None else self.state[mask]
        found = np.bincount(state[state >= 0], minlength=len(STATES))
        return {s: int(found[k]) for k, s in enumerate(STATES)}

    def window(self, lo: float, hi: float, closed: bool = False) -> Mask:
        """Messages submitted in ``[lo, hi)`` (``[lo, hi]`` when *closed*: a window that reaches the clock's end)."""
        mask: Mask = (self.submitted >= lo) & (self.submitted < hi)
        if closed:
            mask |= self.submitted == hi
        return mask

    def delayed(self, over: float, end: float) -> Mask:
        """``metrics.delayed``: readable in a mailbox more than *over* seconds after submission, or still queued so long."""
        delivered = (self.state == STATES.index("delivered")) & ~np.isnan(self.final_at)
        late = delivered & (self.final_at - self.submitted > over)
        waiting = (self.state == STATES.index("queued")) & (end - self.submitted > over)
        mask: Mask = late | waiting
        return mask

    def bounce_delays(self, mask: Mask | None = None) -> Floats:
        """``metrics.bounce_delay`` of the bounced messages in *mask*, in ledger order."""
        chosen = (self.state == STATES.index("bounced")) & ~np.isnan(self.final_at)
        if mask is not None:
            chosen &= mask
        values: Floats = self.final_at[chosen] - self.submitted[chosen]
        return values

    def delays(self, mask: Mask | None = None, *, ordered: bool = True) -> Floats:
        """Seconds from submission to the first 250 of the accepted messages in *mask*, sorted (or in ledger order)."""
        chosen = self.accepted if mask is None else self.accepted & mask
        values: Floats = self.accepted_at[chosen] - self.submitted[chosen]
        return np.sort(values) if ordered else values

    def availability(self, mask: Mask | None = None) -> Floats:
        """Seconds from submission until a delivered message sat on a live disk, for *mask*."""
        chosen = (self.state == STATES.index("delivered")) & ~np.isnan(self.final_at)
        if mask is not None:
            chosen &= mask
        values: Floats = self.final_at[chosen] - self.submitted[chosen]
        return values

    # ------------------------------------------------------------ queues
    def in_queue_before(self, t: float) -> Mask:
        """Messages waiting in their senders' queues just before instant *t* (``metrics.in_queue_before``)."""
        left = self.left
        mask: Mask = (self.submitted < t) & (np.isnan(left) | (left >= t))
        return mask

    def queue_depth(self, per_group: bool) -> dict[str, list[tuple[float, int]]]:
        """``metrics.queue_depth`` by sender group (in order of first submission) or as ``"all"``."""
        return {
            name: list(zip(times.tolist(), depth.tolist(), strict=True))
            for name, (times, depth) in self.queue_depth_arrays(per_group).items()
        }

    def queue_depth_arrays(self, per_group: bool) -> dict[str, tuple[Floats, Ints]]:
        """``queue_depth`` as arrays: the instants the depth changes, and the depth from each on."""
        out: dict[str, tuple[Floats, Ints]] = {}
        if not self.n:
            return out
        if per_group:
            codes, first = np.unique(self.group, return_index=True)
            order = [int(c) for c in codes[np.argsort(first)]]
            keys = [(self.groups[c], self.group == c) for c in order]
        else:
            keys = [("all", np.ones(self.n, dtype=bool))]
        for name, mask in keys:
            sub, left = self.submitted[mask], self.left[mask]
            left = left[~np.isnan(left)]
            times = np.concatenate([sub, left])
            deltas = np.concatenate([np.ones(len(sub)), -np.ones(len(left))])
            uniq, inverse = np.unique(times, return_inverse=True)
            depth: Ints = np.cumsum(np.bincount(inverse, weights=deltas)).round().astype(np.int64)
            out[name] = (uniq, depth)
        return out

    def qshape(self, t: float, buckets: Sequence[int]) -> dict[str, list[int]]:
        """``metrics.qshape`` of the sender groups just before *t*."""
        width = len(buckets) + 2
        mask = self.in_queue_before(t)
        minutes = (t - self.submitted[mask]) / 60.0
        col = 1 + np.searchsorted(np.asarray(buckets, dtype=np.float64), minutes, side="left")
        group = self.group[mask]
        total = [0] * width
        rows: dict[str, list[int]] = {}
        for code in np.unique(group):
            mine = col[group == code]
            row = [len(mine), *np.bincount(mine, minlength=width)[1:width].tolist()]
            rows[self.groups[int(code)]] = row
            total = [a + b for a, b in zip(total, row, strict=True)]
        ordered = sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return {"TOTAL": total, **dict(ordered)}

    # ------------------------------------------------------------ recoveries
    def storms(
        self,
        sessions: Callable[[str], Floats],
        intervals: dict[str, list[Interval]],
        relays: frozenset[str],
        relay_left: Floats,
    ) -> list[metrics.Storm]:
        """``metrics.recovery_storms`` over the columns: one ``Storm`` per recovery.

        *sessions* gives a server's SMTP session times (sorted); *relay_left*
        says per message when a backup MX passed it on or gave up (nan: never).
        """
        relay_numbers = [k for k, name in enumerate(self.servers) if name in relays]
        on_relay: Mask = np.isin(self.accepted_by, relay_numbers) if relay_numbers else np.zeros(self.n, dtype=bool)
        stopped = np.where(on_relay, relay_left, self.left)
        storms = []
        for at, server in recoveries(intervals):
            until = next((iv.end for iv in intervals[server] if iv.start == at), at)
            times = sessions(server)
            lo, hi = np.searchsorted(times, at, side="left"), np.searchsorted(times, until, side="left")
            minutes, counts = np.unique(((times[lo:hi] - at) // 60).astype(np.int64), return_counts=True)
            per_minute = dict(zip(minutes.tolist(), counts.tolist(), strict=True))
            code = self.destinations.index(server) if server in self.destinations else -1
            mine = self.dest == code
            queued = mine & self.in_queue_before(at)
            held = mine & on_relay & self.accepted & (self.accepted_at < at)
            held &= np.isnan(relay_left) | (relay_left >= at)
            leaves = np.concatenate([stopped[queued], stopped[held]])
            done = np.sort(leaves[~np.isnan(leaves) & (leaves <= until)])
            drained = _drain_time(done, len(leaves), at, 1.0)
            storm_minutes = math.ceil(max(3600.0, drained if drained is not None else until - at) / 60)
            peak_minute, peak = max(
                ((m, n) for m, n in per_minute.items() if m < storm_minutes),
                key=lambda kv: (kv[1], -kv[0]),
                default=(0, 0),
            )
            finite = np.sort(leaves[~np.isnan(leaves)]).tolist()
            storms.append(
                metrics.Storm(
                    server=server,
                    at=at,
                    until=until,
                    backlog=len(leaves),
                    backlog_senders=int(queued.sum()),
                    backlog_relays=int(held.sum()),
                    peak_per_minute=int(peak),
                    peak_at=at + 60 * peak_minute,
                    first_hour=int(sum(n for minute, n in per_minute.items() if minute < 60)),
                    drained_90=_drain_time(done, len(leaves), at, 0.9),
                    drained=drained,
                    per_minute=per_minute,
                    left=tuple(finite) + (None,) * int(np.isnan(leaves).sum()),
                )
            )
        return storms


def _drain_time(done: Floats, total: int, at: float, share: float) -> float | None:
    """``metrics._drain_time``: *done* are the sorted leave times up to the storm's end, of *total* messages."""
    if not total:
        return 0.0
    need = max(1, math.ceil(share * total))
    if len(done) < need:
        return None
    return float(done[need - 1]) - at
