"""The numbers behind the report: windows with their plain-language sentence, senders, qshape, storms."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..durations import format_duration
from ..ledger import STATES
from .data import ReportData

__all__ = ["WindowRow", "SenderRow", "QShape", "window_rows", "sender_rows", "qshape_tables", "storms", "pct", "duration"]


def pct(n: int, total: int) -> str:
    """``"12%"``, with one decimal below 1% so that small non-zero shares do not read as 0."""
    if not total:
        return ""
    share = 100 * n / total
    return f"{share:.1f}%" if 0 < share < 1 else f"{share:.0f}%"


def duration(seconds: float | None) -> str:
    """A duration for a table cell: ``1h23m``; a dash for none."""
    if seconds is None:
        return "–"
    if seconds >= 600:
        return format_duration(round(seconds / 60) * 60)
    return format_duration(round(seconds)) if seconds >= 60 else f"{seconds:.0f}s"


def _counts(records: list[Any]) -> dict[str, int]:
    counts = {s: 0 for s in STATES}
    for r in records:
        counts[r.final_state] += 1
    return counts


@dataclass
class WindowRow:
    """One window of submission time: what became of the mail sent in it."""

    number: int
    label: str
    start: float
    end: float
    counts: dict[str, int]
    by_group: dict[str, dict[str, int]]
    sentence: str

    @property
    def total(self) -> int:
        """Messages submitted in the window."""
        return sum(self.counts.values())


def _span(data: ReportData, lo: float, hi: float) -> str:
    if lo <= 0:
        return f"Mail sent before {data.long(hi)}"
    if hi >= data.end:
        return f"Mail sent after {data.long(lo)}"
    return f"Mail sent between {data.long(lo)} and {data.long(hi)}"


def _late_note(data: ReportData, late: list[Any], delivered: int) -> str:
    """Why delivered mail was unreadable for a while: restored from a backup or recovered from the failed disk."""
    if not late:
        return ""
    when, _ = Counter(r.final_at for r in late).most_common(1)[0]
    kinds = {m["type"] for m in data.marks if m["t"] == when}
    how = "restored from a backup" if "restore" in kinds else "read back from the failed disk" if "disk_recovered" in kinds else "back on a live disk"
    share = "all" if len(late) == delivered else f"{len(late)}"
    mostly = "" if all(r.final_at == when for r in late) else " (most)"
    return f", {share} of them readable again only from {data.long(when)}{mostly}, {how}"


def _who(n: int, total: int, plural: str, singular: str) -> str:
    """``all 73 were`` / ``12 (10%) were`` / ``it was`` / ``1 (50%) was``: the subject of a clause."""
    if n == total:
        return f"all {n} {plural}" if n > 1 else f"it {singular}"
    return f"{n} ({pct(n, total)}) {plural if n > 1 else singular}"


def sentence(data: ReportData, lo: float, hi: float, records: list[Any]) -> str:
    """One plain-language sentence: what happened to the mail sent between *lo* and *hi*."""
    counts = _counts(records)
    total = len(records)
    head = _span(data, lo, hi)
    if not total:
        return f"{head}: no messages were sent."
    parts = []
    d = counts["delivered"]
    if d:
        late = [r for r in records if r.final_state == "delivered" and r.accepted_at is not None and r.final_at is not None and r.final_at > r.accepted_at]
        parts.append(f"{_who(d, total, 'are', 'is')} in a mailbox on a live server{_late_note(data, late, d)}")
    s = counts["stranded"]
    if s:
        their = "their senders" if s > 1 else "its sender"
        parts.append(f"{_who(s, total, 'were', 'was')} accepted with a 250 but {'exist' if s > 1 else 'exists'} only on the failed disk, and {their} received no bounce")
    lost = counts["lost"]
    if lost:
        their = "their senders" if lost > 1 else "its sender"
        parts.append(f"{_who(lost, total, 'were', 'was')} accepted and then lost with every copy, and {their} received no bounce")
    b = counts["bounced"]
    if b:
        groups = Counter(r.group for r in records if r.final_state == "bounced").most_common(3)
        who = ", ".join(f"{g} {n}" for g, n in groups)
        their = "their senders" if b > 1 else "its sender"
        parts.append(f"{_who(b, total, 'bounced', 'bounced')} and {their} received a non-delivery report ({who})")
    q = counts["queued"]
    if q:
        parts.append(f"{_who(q, total, 'are', 'is')} still in a sender's queue at the end of the run")
    noun = "messages" if total > 1 else "message"
    return f"{head} ({total} {noun}): " + "; ".join(parts) + "."


def window_rows(data: ReportData) -> list[WindowRow]:
    """The post-mortem's table: one row per window, with counts per state and per sender group."""
    rows = []
    for n, (label, lo, hi) in enumerate(data.windows, 1):
        inside = [r for r in data.records if lo <= r.submitted_at < hi]
        by_group: dict[str, dict[str, int]] = {}
        for g in data.groups:
            mine = [r for r in inside if r.group == g]
            if mine:
                by_group[g] = _counts(mine)
        rows.append(WindowRow(n, label, lo, hi, _counts(inside), by_group, sentence(data, lo, hi, inside)))
    return rows


@dataclass
class SenderRow:
    """A sender group: its policy, when it gives up, its outcomes and delivery delays."""

    group: str
    policy: str
    gives_up: float | None
    counts: dict[str, int]
    delays: dict[str, float]

    @property
    def total(self) -> int:
        """Messages the group submitted."""
        return sum(self.counts.values())


def sender_rows(data: ReportData) -> list[SenderRow]:
    """One row per sender group, in scenario order."""
    rows = []
    for g in data.groups:
        mine = [r for r in data.records if r.group == g]
        if not mine:
            continue
        delays = [d for d in map(metrics.delivery_delay, mine) if d is not None]
        rows.append(SenderRow(g, mine[0].policy, data.gives_up(g), _counts(mine), metrics.describe(delays)))
    return rows


@dataclass
class QShape:
    """Queue ages at one instant, like Postfix's qshape: rows of ``[total, per bucket..., older]``."""

    title: str
    t: float
    buckets: tuple[int, ...]
    rows: dict[str, list[int]]


def qshape_tables(data: ReportData, limit: int = 4) -> list[QShape]:
    """qshape just before each recovery, at the deepest queue if there is none, and at the end if mail is still queued."""
    instants: list[tuple[str, float]] = []
    several = len(data.servers) > 1
    for rec in data.timeline.get("recoveries", []):
        who = f"{rec['server']} " if several else ""
        instants.append((f"just before {who}recovery at {data.short(rec['t'])}", float(rec["t"])))
    if not instants:
        depth = metrics.queue_depth(data.records, key=lambda r: "all").get("all", [])
        if depth:
            t, most = max(depth, key=lambda p: p[1])
            if most > 0:
                instants.append((f"at the deepest queue, {data.short(t)}", t + 1e-3))
    if any(r.final_state == "queued" for r in data.records):
        instants.append(("at the end of the run", data.end))
    instants = instants[:limit]
    oldest = max(
        (t - r.submitted_at for _, t in instants for r in data.records if metrics.in_queue_before(r, t)),
        default=0.0,
    )
    buckets = metrics.qshape_buckets(oldest)
    return [QShape(title, t, buckets, metrics.qshape(data.records, t, buckets)) for title, t in instants]


def storms(data: ReportData) -> list[metrics.Storm]:
    """The recovery storms: load and backlog drain after each recovery."""
    return data.analysis.storms
