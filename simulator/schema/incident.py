"""The incident as the scenario describes it: marks, state intervals, recoveries and windows.

Pure functions of the timeline (no run needed), so the loader can check a
threshold's ``window`` tag and the analysis of a finished run reads the very
same windows and intervals:

* marks: the timeline's entries that change a server's state or disk, as
  dicts with ``t``, ``type`` (one of ``MARK_TYPES``), ``server`` and ``state``
  or ``ok`` where they apply; the engine logs the same marks as events;
* intervals: each server's listening state (``up``, ``refuse``, ...) or disk
  state (``live``, ``failed``) over time;
* windows: the post-mortem's windows of submission time, cut at failures,
  recoveries and the last good backup before a crash.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..clock import SimClock

__all__ = [
    "MARK_TYPES",
    "UP",
    "Interval",
    "scenario_marks",
    "server_intervals",
    "disk_intervals",
    "outages",
    "recoveries",
    "incident_windows",
    "scenario_windows",
    "short_time",
]

MARK_TYPES = ("server", "crash", "backup", "restore", "disk_recovered", "disk_lost")
"""Event types that describe the incident's timeline rather than a message."""

UP = "up"


@dataclass(frozen=True)
class Interval:
    """A stretch of simulated time ``[start, end)`` in one state."""

    start: float
    end: float
    state: str


_SCENARIO_TYPES = {
    "up": "server",
    "down": "server",
    "crash": "crash",
    "backup": "backup",
    "restore": "restore",
    "recover-disk": "disk_recovered",
    "disk-lost": "disk_lost",
}


def scenario_marks(scenario: Any, seconds: Callable[[Any], float]) -> list[dict[str, Any]]:
    """The marks a scenario's timeline will log, without running it (*seconds* maps a timestamp).

    Entries that do not change a server's state or disk (faults, DNS changes)
    are left out; periodic ``backups`` become one mark per backup.
    """
    marks: list[dict[str, Any]] = []
    end = seconds(scenario.clock.end)
    for ev in scenario.timeline:
        kind = _SCENARIO_TYPES.get(ev.event)
        server = getattr(ev, "server", None)
        if server is None:
            continue
        t = seconds(ev.at)
        if ev.event == "backups":
            last = seconds(ev.until) if getattr(ev, "until", None) is not None else end
            step = max(float(ev.every), 60.0)
            while t <= last:
                marks.append({"t": t, "type": "backup", "server": server, "ok": ev.ok})
                t += step
            continue
        if kind is None:
            continue
        mark: dict[str, Any] = {"t": t, "type": kind, "server": server}
        if ev.event == "up":
            mark["state"] = UP
        elif ev.event in ("down", "crash"):
            mark["state"] = ev.mode
        elif ev.event == "restore" and ev.bring_up:
            mark["state"] = UP
        elif ev.event == "backup":
            mark["ok"] = ev.ok
        marks.append(mark)
    return sorted(marks, key=lambda m: m["t"])


def _ordered(marks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((m for m in marks if m.get("type") in MARK_TYPES), key=lambda m: m["t"])


def _intervals(
    changes: Iterable[tuple[str, float, str]], initial: dict[str, str], end: float
) -> dict[str, list[Interval]]:
    """Fold ``(server, t, new state)`` changes, in time order, into each server's intervals over ``[0, end)``."""
    state = dict(initial)
    since = dict.fromkeys(state, 0.0)
    out: dict[str, list[Interval]] = {name: [] for name in state}
    for name, t, new in changes:
        if name not in state or new == state[name]:
            continue
        if t > since[name]:
            out[name].append(Interval(since[name], t, state[name]))
        state[name], since[name] = new, t
    for name in state:
        if end > since[name]:
            out[name].append(Interval(since[name], end, state[name]))
    return out


def server_intervals(marks: Iterable[dict[str, Any]], initial: dict[str, str], end: float) -> dict[str, list[Interval]]:
    """Each server's listening state over ``[0, end)``: ``up`` or how it is down (``refuse``, ...)."""
    changes = ((m["server"], m["t"], m["state"]) for m in _ordered(marks) if m.get("state") is not None)
    return _intervals(changes, initial, end)


_DISK_STATE = {"crash": "failed", "disk_recovered": "live", "restore": "live"}


def disk_intervals(marks: Iterable[dict[str, Any]], servers: Iterable[str], end: float) -> dict[str, list[Interval]]:
    """Each server's current disk over ``[0, end)``: ``live`` or ``failed`` (between a crash and a recovery or restore)."""
    changes = ((m["server"], m["t"], _DISK_STATE[m["type"]]) for m in _ordered(marks) if m["type"] in _DISK_STATE)
    return _intervals(changes, dict.fromkeys(servers, "live"), end)


def outages(intervals: dict[str, list[Interval]]) -> list[tuple[str, Interval]]:
    """Every stretch in which a server did not accept mail, in time order."""
    found = [(name, iv) for name, ivs in intervals.items() for iv in ivs if iv.state != UP]
    return sorted(found, key=lambda x: (x[1].start, x[0]))


def recoveries(intervals: dict[str, list[Interval]]) -> list[tuple[float, str]]:
    """``(t, server)`` for every moment a server that was down accepts mail again."""
    found = []
    for name, ivs in intervals.items():
        for before, after in itertools.pairwise(ivs):
            if before.state != UP and after.state == UP:
                found.append((after.start, name))
    return sorted(found)


def incident_windows(
    marks: Iterable[dict[str, Any]],
    initial: dict[str, str],
    end: float,
    fmt: Callable[[float], str],
) -> list[tuple[str, float, float]]:
    """The post-mortem's windows of submission time, derived from the timeline.

    Cuts at every failure and every recovery, and at the last good backup
    before each crash (mail accepted after it exists only on the disk that
    fails). Labels read like the post-mortem's: ``sent before the crash at
    10:38 10/26``, ``sent during the outage, ...``, ``sent after the 18:30
    10/27 backup, before the crash at 06:00 10/28``, ``sent after recovery at
    11:40 10/30``. *fmt* formats a simulated time.
    """
    several = len(initial) > 1
    state = dict(initial)
    last_good: dict[str, float | None] = dict.fromkeys(initial)
    cuts: dict[float, tuple[int, str, str]] = {}

    def cut(t: float, rank: int, kind: str, server: str) -> None:
        if 0 < t < end and (t not in cuts or rank < cuts[t][0]):
            cuts[t] = (rank, kind, server)

    for m in _ordered(marks):
        name, t = m["server"], m["t"]
        if name not in state:
            continue
        if m["type"] == "crash":
            good = last_good[name]
            if good is not None:
                cut(good, 3, "backup", name)
            last_good[name] = None
        elif m["type"] == "restore":
            last_good[name] = None
        elif m["type"] == "backup" and m.get("ok"):
            # Mail accepted after a good backup taken while the server was up is
            # what a later crash strands; one taken while it was down cuts nothing.
            last_good[name] = t if state[name] == UP else None
        new = m.get("state")
        if new is None or new == state[name]:
            continue
        if state[name] == UP:
            cut(t, 0 if m["type"] == "crash" else 1, "crash" if m["type"] == "crash" else "outage", name)
        elif new == UP:
            cut(t, 2, "recovery", name)
        state[name] = new
    if not cuts:
        return [("all mail", 0.0, end)]
    down = server_intervals(marks, initial, end)

    def said(t: float) -> str:
        _, kind, server = cuts[t]
        who = f"{server} " if several else ""
        if kind == "backup":
            return f"the {fmt(t)} {who}backup"
        if kind == "recovery":
            return f"{server}'s recovery at {fmt(t)}" if several else f"recovery at {fmt(t)}"
        return f"the {who}{kind} at {fmt(t)}"

    def down_at(t: float) -> list[str]:
        return [name for name, ivs in down.items() for iv in ivs if iv.start <= t < iv.end and iv.state != UP]

    points = [0.0, *sorted(cuts), end]
    out = []
    for lo, hi in itertools.pairwise(points):
        names = down_at(lo)
        if names and (not several or len(names) == len(initial)):
            label = f"sent during the outage, {fmt(lo)} to {fmt(hi)}"
        elif names:
            label = (
                f"sent while {' and '.join(names)} {'was' if len(names) == 1 else 'were'} down, {fmt(lo)} to {fmt(hi)}"
            )
        elif lo == 0.0:
            label = f"sent before {said(hi)}"
        elif hi == end:
            label = f"sent after {said(lo)}"
        else:
            label = f"sent after {said(lo)}, before {said(hi)}"
        out.append((label, lo, hi))
    return out


def short_time(clock: SimClock, t: float) -> str:
    """``10:38 10/26``: the post-mortem's way of writing a simulated time."""
    return clock.datetime_at(t).strftime("%H:%M %m/%d")


def scenario_windows(scenario: Any, clock: SimClock | None = None) -> list[tuple[str, float, float]]:
    """The windows of submission time: the scenario's own, or the post-mortem's derived from the timeline."""
    clock = clock or SimClock(scenario.clock)
    if scenario.windows:
        out = []
        for w in scenario.windows:
            lo = 0.0 if w.start == "start" else clock.seconds(w.start)
            hi = clock.end if w.end == "end" else clock.seconds(w.end)
            out.append((w.label, lo, hi))
        return out
    initial = {v.name: v.initially for v in scenario.servers}
    marks = scenario_marks(scenario, clock.seconds)
    return incident_windows(marks, initial, clock.end, lambda t: short_time(clock, t))
