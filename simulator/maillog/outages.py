"""Outage windows proposed from a log: restarts, stops, fatal and panic lines, a full disk, gaps in arrivals.

A receiving server's log shows an outage indirectly: the MTA started again
with no stop before it (a crash or a reboot: the outage ran from the last
line before the start), or was stopped and started; mail stopped arriving
after a ``fatal``/``panic`` line; the disk filled up; or simply no mail
arrived for a long while when the hour before had plenty (``min_gap``, and at
least ``MIN_EXPECTED`` messages expected at that hour's rate). Each
``Proposal`` carries its reasons with the file and line they come from.

``backfill`` answers the question a replay needs: mail sent *during* an
outage reached the log only after it, when its senders retried. The arrivals
in the ``HORIZON`` after the server came back, beyond the rate of the hour
before the outage, are taken as that backlog and moved, evenly spread, into
the outage: an estimate, stated with its numbers, never applied unasked.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..durations import format_duration
from .importer import LogImport, Signal

__all__ = ["Proposal", "Outages", "propose", "backfill", "MIN_EXPECTED", "BEFORE", "HORIZON"]

MIN_EXPECTED = 10
"""A gap is proposed when at least this many messages were expected in it (at the rate of the two
hours before). At Poisson arrivals a gap that long happens by chance with probability e**-10, about
1 in 22,000 gaps: well under once in a year of a small server's quiet nights."""
BEFORE = timedelta(hours=2)
"""The time before a gap whose arrival rate says how many messages were expected in it."""
HORIZON = timedelta(hours=2)
"""How long after an outage the backlog is looked for."""
_MIN_OUTAGE = timedelta(minutes=1)


@dataclass
class Proposal:
    """A proposed outage window (``down``/``up``) or full-disk period (``fault``), with its reasons."""

    start: datetime
    end: datetime
    event: str  #: "down" or "fault" (disk-full)
    title: str
    reasons: list[str] = field(default_factory=list)
    moved: int = 0  #: arrivals moved into it by ``backfill``
    backfill_note: str = ""
    applied: bool = False  #: ``backfill`` moved the backlog: the window belongs in the timeline


@dataclass
class Outages:
    """What ``propose`` found: windows to propose, and what it looked at and left out."""

    proposals: list[Proposal]
    notes: list[str]  #: signals and quiet gaps not proposed, and why


def _t(when: datetime) -> str:
    return when.strftime("%m/%d %H:%M:%S")


def _d(delta: timedelta) -> str:
    return format_duration(60 * max(1, round(delta.total_seconds() / 60)))


def propose(imp: LogImport, min_gap: timedelta = timedelta(minutes=30)) -> Outages:
    """The outage windows the log points at, merged where they overlap, in time order."""
    mta = "Postfix" if imp.options.format == "postfix" else "Exim"
    times = [r.at for r in imp.rows]
    windows: list[Proposal] = []
    faults: list[Proposal] = []
    notes: list[str] = []
    stop: Signal | None = None
    for s in sorted(imp.signals, key=lambda s: s.first):
        if s.kind == "stop":
            stop = s
        elif s.kind == "start":
            if stop is not None:
                begin, reason = (
                    stop.first,
                    f"{mta} was stopped ({stop.where}: {stop.text}) and started again ({s.where})",
                )
            elif s.before is not None:
                why = "Exim logs no stop" if mta == "Exim" else "a crash or a reboot"
                begin = s.before
                reason = f"{mta} started again ({s.where}) with no stop logged before it ({why}); its last line before was at {_t(s.before)}"
            else:
                continue  # the log begins with the start
            stop = None
            if s.first - begin < _MIN_OUTAGE:
                notes.append(f"{s.where}: {mta} restarted within a minute at {_t(s.first)}: not an outage to replay")
                continue
            windows.append(Proposal(begin, s.first, "down", f"{mta} down {_d(s.first - begin)}", [reason]))
        elif s.kind == "no-space":
            end = max(s.last, s.first + _MIN_OUTAGE)
            faults.append(
                Proposal(
                    s.first,
                    end,
                    "fault",
                    "disk full",
                    [
                        f"{s.count} line(s) saying the disk was full, {_t(s.first)} to {_t(s.last)}, first {s.where}: {s.text}"
                    ],
                )
            )
    for s in imp.signals:
        if s.kind in ("fatal", "panic"):
            line = f"{s.kind} at {s.where} ({_t(s.first)}, {s.count} line(s)): {s.text}"
            inside = _covering(windows, s.first, min_gap)
            if inside is not None:
                inside.reasons.append(line)
                continue
            i = bisect_left(times, s.first)
            resumed = times[i] if i < len(times) else imp.last_at or s.first
            if resumed - s.first >= min_gap:
                windows.append(
                    Proposal(
                        s.first,
                        resumed,
                        "down",
                        f"no mail after a {s.kind}",
                        [line + f"; no mail accepted until {_t(resumed)}"],
                    )
                )
            else:
                notes.append(line + f"; mail kept arriving ({_t(resumed)}): not proposed")
    _gaps(imp, times, windows, notes, min_gap)
    return Outages(sorted(_merged(windows) + faults, key=lambda p: p.start), notes)


def _covering(windows: list[Proposal], when: datetime, slack: timedelta) -> Proposal | None:
    for w in windows:
        if w.start - slack <= when <= w.end:
            return w
    return None


def _gaps(imp: LogImport, times: list[datetime], windows: list[Proposal], notes: list[str], min_gap: timedelta) -> None:
    edges = [*times]
    if imp.last_at is not None and times and imp.last_at > times[-1]:
        edges.append(imp.last_at)
    quiet = 0
    for a, b in itertools.pairwise(edges):
        if b - a < min_gap:
            continue
        before = bisect_left(times, a) - bisect_left(times, a - BEFORE) + 1  # a itself included
        expected = before * (b - a) / BEFORE
        ending = " (the log ends)" if b is edges[-1] and b is not times[-1] else ""
        line = (
            f"no mail accepted from {_t(a)} to {_t(b)}{ending}, {_d(b - a)}: {before} arrived in the "
            f"{_d(BEFORE)} before, so about {expected:.0f} were expected"
        )
        overlap = next((w for w in windows if w.start < b and a < w.end), None)
        if overlap is not None:
            overlap.reasons.append(line)
        elif expected >= MIN_EXPECTED:
            windows.append(Proposal(a, b, "down", f"no mail for {_d(b - a)}", [line]))
        elif quiet < 10:
            quiet += 1
            notes.append(line + ": a quiet time, not proposed")


def _merged(windows: list[Proposal]) -> list[Proposal]:
    out: list[Proposal] = []
    for w in sorted(windows, key=lambda w: w.start):
        if out and w.start <= out[-1].end:
            last = out[-1]
            last.end = max(last.end, w.end)
            last.reasons.extend(w.reasons)
            last.title = f"{last.title}; {w.title}"
        else:
            out.append(w)
    return out


def _spans(proposals: list[Proposal]) -> list[list[Proposal]]:
    """Proposals chained where they overlap or follow within a minute (a full disk, then a crash)."""
    spans: list[list[Proposal]] = []
    for p in sorted(proposals, key=lambda p: p.start):
        if spans and p.start <= max(q.end for q in spans[-1]) + _MIN_OUTAGE:
            spans[-1].append(p)
        else:
            spans.append([p])
    return spans


def backfill(imp: LogImport, proposals: list[Proposal]) -> int:
    """Apply every proposal and move each outage's backlog into it; returns how many arrivals moved.

    An outage is a run of proposals that touch (a full disk, then a crash).
    Its backlog is the arrivals in the ``HORIZON`` after it beyond the rate
    of the ``BEFORE`` before it; they are spread evenly over the outage, in
    the order they arrived. The rows keep their logged time in
    ``moved_from``; ``imp.rows`` is sorted again.
    """
    total = 0
    for span in _spans(proposals):
        start, end = min(p.start for p in span), max(p.end for p in span)
        for p in span:
            p.applied = True
        times = [r.at for r in imp.rows]
        rate = (bisect_left(times, start) - bisect_left(times, start - BEFORE)) / BEFORE.total_seconds()
        length = (end - start).total_seconds()
        first, after = bisect_left(times, end), bisect_left(times, end + HORIZON)
        candidates = [r for r in imp.rows[first:after] if r.moved_from is None]
        usual = rate * HORIZON.total_seconds()
        k = max(0, len(candidates) - round(usual))
        note = span[-1]
        note.backfill_note = (
            f"{len(candidates)} arrived in the {_d(HORIZON)} after {_t(end)}, {usual:.0f} expected at the rate of the "
            f"{_d(BEFORE)} before {_t(start)} ({rate * 3600:.0f}/h, so about {rate * length:.0f} sent during the "
            f"{_d(end - start)} from {_t(start)})"
        )
        if k == 0:
            continue
        for i, row in enumerate(candidates[:k]):
            row.moved_from = row.at
            row.at = start + timedelta(seconds=math.floor((i + 0.5) * length / k))
        note.moved = k
        total += k
        imp.rows.sort(key=lambda r: r.at)
    return total
