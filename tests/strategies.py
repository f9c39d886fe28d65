"""Hypothesis strategies for small random scenarios that the validator accepts.

``scenarios()`` draws a scenario as the plain data a YAML file holds: one
domain served by 1-3 servers with MX preferences (ties allowed, sometimes a
backup MX relay, sometimes a limited delivery into the mailboxes), outages,
crashes with a backup and a restore or a disk recovered or lost, faults,
1-3 sender groups with preset retry policies (sometimes with overrides)
sending at a few given times or at a small rate, sometimes declared windows
or a time zone whose clocks change during the run, and thresholds over every
counter, ratio and (when the timeline has a recovery) recovery metric. Each
is small: a clock of 6 to 48 hours and a few dozen messages, so that one
runs in memory in a fraction of a second.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from simulator.clock import SimClock
from simulator.scenario import Scenario
from simulator.schema.incident import recoveries, scenario_marks, scenario_windows, server_intervals
from simulator.schema.states import STATES

__all__ = ["scenarios", "thresholds_for", "DOMAIN", "START"]

START = datetime(2011, 10, 26, 0, 0)
DOMAIN = "atnex.example"
DOWN_MODES = ("refuse", "blackhole", "unreachable", "tempfail")

PRESETS = ("postfix", "exim", "sendmail", "qmail", "exchange", "gmail", "microsoft365", "mailgun", "ses")
OVERRIDES: dict[str, list[dict[str, Any]]] = {
    "postfix": [
        {"maximal_queue_lifetime": "6h"},
        {"queue_run_delay": "10m", "maximal_backoff_time": "1h"},
        {"delay_warning_time": "1h"},
    ],
    "exim": [{"queue_runner": "15m"}, {"retry_rule": "F,2h,15m; F,8h,1h"}, {"delay_warning": "1h"}],
    "sendmail": [{"queue_interval": "15m"}, {"timeout_queuereturn": "12h"}],
    "qmail": [{"queuelifetime": "12h"}],
    "exchange": [{"message_expiration_timeout": "12h"}],
    "gmail": [{"lifetime": "12h"}],
    "microsoft365": [{"lifetime": "12h"}],
    "mailgun": [{"lifetime": "6h"}],
    "ses": [{"lifetime": "10h"}],
}

COUNTERS = ("messages", "attempts", "connections", "duplicates", "delay_warnings", "turned_away", *STATES)
DELAY_MARKS = ("1m", "5m", "1h", "2h", "1d")  # the delays summary.json counts mail readable later than
RECOVERY = (
    "recovery_backlog",
    "recovery_backlog_senders",
    "recovery_backlog_relays",
    "recovery_peak_attempts",
    "recovery_drain_time",
)


# Where the clock may start, and in which time zone: mostly naive local time; sometimes a
# zone whose clocks go back (an hour of local time happens twice) or forward inside the run.
ORIGINS = (
    (START, None),
    (START, None),
    (START, None),
    (datetime(2011, 10, 29, 18, 0), "Europe/London"),
    (datetime(2011, 11, 5, 12, 0), "America/New_York"),
    (datetime(2012, 3, 24, 18, 0), "Europe/Berlin"),
)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")


def _shift(value: Any, delta: timedelta) -> Any:
    """*value* with every timestamp ``stamp()`` wrote moved by *delta*."""
    if isinstance(value, dict):
        return {k: _shift(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, delta) for v in value]
    if isinstance(value, str) and _STAMP.match(value):
        return (datetime.strptime(value, "%Y-%m-%d %H:%M") + delta).strftime("%Y-%m-%d %H:%M")
    return value


def stamp(minute: int) -> str:
    """The scenario timestamp *minute* minutes after ``START``."""
    return (START + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M")


@st.composite
def policies(draw: st.DrawFn) -> Any:
    """A preset by name, or a preset with one override."""
    name = draw(st.sampled_from(PRESETS))
    if draw(st.integers(0, 2)) == 0:
        return {"preset": name, **draw(st.sampled_from(OVERRIDES[name]))}
    return name


@st.composite
def faults(draw: st.DrawFn, mailboxes: bool = True) -> dict[str, Any]:
    """One fault of the kinds a capacity planner or a replay uses (``delivery-queue`` only where *mailboxes* are)."""
    kinds = ("capacity", "reply", "greylist", "accept-then-drop", "slow") + (("delivery-queue",) if mailboxes else ())
    kind = draw(st.sampled_from(kinds))
    if kind == "capacity":
        limits = draw(st.sampled_from(("sessions", "per_minute", "both")))
        fault: dict[str, Any] = {"kind": "capacity"}
        if limits in ("sessions", "both"):
            fault["sessions"] = draw(st.integers(1, 3))
        if limits in ("per_minute", "both"):
            fault["per_minute"] = draw(st.integers(1, 5))
        if draw(st.booleans()):
            fault["session_time"] = draw(st.sampled_from(("1s", "30s", "2m")))
        return fault
    if kind == "reply":
        fault = {"kind": "reply", "stage": "rcpt", "code": draw(st.sampled_from((451, 550)))}
        if draw(st.booleans()):
            fault["fraction"] = draw(st.sampled_from((0.25, 0.5, 1.0)))
        else:
            fault["recipients_fraction"] = draw(st.sampled_from((0.3, 1.0)))
        return fault
    if kind == "delivery-queue":
        fault = {"kind": "delivery-queue", "per_minute": draw(st.sampled_from((0, 0.5, 2)))}
        if draw(st.booleans()):
            fault["recipients_fraction"] = 0.5
        return fault
    if kind == "greylist":
        return {"kind": "greylist", "delay": draw(st.sampled_from(("5m", "15m", "1h")))}
    if kind == "accept-then-drop":
        return {"kind": "accept-then-drop", "fraction": draw(st.sampled_from((0.3, 1.0)))}
    return {
        "kind": "slow",
        "latency": draw(st.sampled_from(("30s", "5m"))),
        "stage": draw(st.sampled_from(("all", "data", "greeting"))),
    }


def _points(draw: st.DrawFn, n: int, end: int) -> list[int]:
    """*n* sorted minutes in ``[0, end]`` on a 5-minute grid (ties allowed)."""
    return sorted(draw(st.lists(st.integers(0, end // 5).map(lambda k: 5 * k), min_size=n, max_size=n)))


@st.composite
def server_story(draw: st.DrawFn, name: str, end: int, initially: str) -> list[tuple[int, dict[str, Any]]]:
    """What happens to one server: ``(minute, timeline entry)`` pairs in time order."""
    out: list[tuple[int, dict[str, Any]]] = []
    cursor = 0
    down = initially != "up"
    if down:
        (t,) = _points(draw, 1, end)
        out.append((t, {"event": "up"}))
        cursor = t
    for _ in range(draw(st.integers(0, 2))):
        if cursor >= end:
            break
        kind = draw(st.sampled_from(("outage", "outage", "crash")))
        if kind == "outage":
            t1, t2 = (cursor + p for p in _points(draw, 2, end - cursor))
            out.append((t1, {"event": "down", "mode": draw(st.sampled_from(DOWN_MODES))}))
            if draw(st.integers(0, 4)):
                out.append((t2, {"event": "up"}))
                cursor = t2
            else:
                break  # down until the end
            continue
        t0, t1, t2, t3 = (cursor + p for p in _points(draw, 4, end - cursor))
        out.append((t0, {"event": "backup"}))
        out.append((t1, {"event": "crash", "mode": draw(st.sampled_from(DOWN_MODES))}))
        after = draw(st.sampled_from(("restore", "recover", "lost-restore", "restore-recover", "nothing")))
        if after == "restore":
            out.append((t2, {"event": "restore"}))
        elif after == "recover":
            out.append((t2, {"event": "recover-disk"}))
            out.append((t3, {"event": "up"}))
        elif after == "lost-restore":
            out.append((t2, {"event": "disk-lost"}))
            out.append((t3, {"event": "restore"}))
        elif after == "restore-recover":
            out.append((t2, {"event": "restore"}))
            out.append((t3, {"event": "recover-disk"}))
        else:
            break  # crashed until the end
        cursor = t3
    return [(t, {"at": stamp(t), "server": name, **entry}) for t, entry in out]


@st.composite
def servers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 servers of one domain, MX preferences with ties, sometimes one backup MX relay."""
    n = draw(st.integers(1, 3))
    prefs = [draw(st.sampled_from((5, 10, 10, 20, 30))) for _ in range(n)]
    out: list[dict[str, Any]] = [
        {"name": f"mx{i + 1}", "domains": [DOMAIN], "preference": p} for i, p in enumerate(prefs)
    ]
    relayable = [i for i in range(n) if any(prefs[j] < prefs[i] for j in range(n) if j != i)]
    if relayable and draw(st.booleans()):
        i = draw(st.sampled_from(relayable))
        out[i]["relay"] = {
            "policy": draw(st.sampled_from(("postfix", "postfix", {"preset": "exim", "queue_runner": "15m"})))
        }
    for server in out:
        if draw(st.integers(0, 5)) == 0:
            server["initially"] = draw(st.sampled_from(DOWN_MODES))
        if "relay" not in server and draw(st.integers(0, 5)) == 0:
            server["delivery"] = {"per_minute": draw(st.sampled_from((0.5, 2)))}
    return out


@st.composite
def traffic(draw: st.DrawFn, end: int) -> tuple[int, dict[str, Any]]:
    """``(count, traffic)``: one or two MTAs sending at a few given times, or one at a small rate."""
    if draw(st.booleans()):
        minutes = draw(st.lists(st.integers(0, end), min_size=1, max_size=5))
        return draw(st.integers(1, 2)), {"at": [stamp(m) for m in sorted(minutes)]}
    hours = end / 60
    expected = draw(st.integers(1, 15))
    t: dict[str, Any] = {"rate": f"{expected / hours:.4f}/h"}
    if draw(st.integers(0, 3)) == 0:
        lo, hi = _points(draw, 2, end)
        if hi > lo:
            t["start"], t["until"] = stamp(lo), stamp(hi)
    return 1, t


@st.composite
def windows(draw: st.DrawFn, end: int) -> list[dict[str, Any]]:
    """1-3 declared windows of submission time (they may overlap)."""
    out = []
    for i in range(draw(st.integers(1, 3))):
        lo, hi = _points(draw, 2, end)
        if hi == lo:
            if hi < end:
                hi = end
            else:
                lo = 0
        w: dict[str, Any] = {"label": f"w{i + 1}"}
        w["from"] = "start" if lo == 0 and draw(st.booleans()) else stamp(lo)
        w["to"] = "end" if hi == end and draw(st.booleans()) else stamp(hi)
        out.append(w)
    return out


def thresholds_for(data: dict[str, Any]) -> dict[str, list[str]]:
    """Thresholds over every counter and ratio, per sender group, window and server, and every
    recovery metric when the timeline has a recovery. Expressions hold for any sane value: the
    test compares what each threshold observed, not whether it passed."""
    s = Scenario.model_validate(data)
    clock = SimClock(s.clock)
    out: dict[str, list[str]] = {name: ["count>=0"] for name in COUNTERS}
    out.update({f"{state}_ratio": ["rate>=0"] for state in STATES})
    for g in s.senders:
        out[f"messages{{sender:{g.name}}}"] = ["count>=0"]
        out.update({f"{state}{{sender:{g.name}}}": ["count>=0"] for state in STATES})
        out[f"delivery_delay{{sender:{g.name}}}"] = ["max>=0s", "p(50)>=0s", "p(95)>=0s"]
    for i, _ in enumerate(scenario_windows(s, clock), 1):
        out[f"messages{{window:{i}}}"] = ["count>=0"]
        out.update({f"{state}{{window:{i}}}": ["count>=0"] for state in STATES})
    for v in s.servers:
        out[f"turned_away{{server:{v.name}}}"] = ["count>=0"]
    for over in DELAY_MARKS:
        out[f"delayed{{over:{over}}}"] = ["count>=0"]
        out[f"delayed_ratio{{over:{over}}}"] = ["rate>=0"]
    marks = scenario_marks(s, clock.seconds)
    if recoveries(server_intervals(marks, {v.name: v.initially for v in s.servers}, clock.end)):
        for name in RECOVERY:
            out[name] = [
                "max>=0s" if name == "recovery_drain_time" else "max>=0",
                "min>=0s" if name == "recovery_drain_time" else "min>=0",
            ]
        for v in s.servers:
            out[f"recovery_backlog{{server:{v.name}}}"] = ["max>=0"]
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A small scenario as plain data (what a YAML file holds), with thresholds."""
    hours = draw(st.integers(6, 48))
    end = hours * 60
    servs = draw(servers())
    story: list[tuple[int, dict[str, Any]]] = []
    for server in servs:
        story += draw(server_story(server["name"], end, server.get("initially", "up")))
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from([s["name"] for s in servs]))
        # First at minute 0, while every disk still works.
        story.insert(
            0, (0, {"at": stamp(0), "server": name, "event": "backups", "every": draw(st.sampled_from(("2h", "6h")))})
        )
    for _ in range(draw(st.integers(0, 2))):
        lo, hi = _points(draw, 2, end)
        server = draw(st.sampled_from(servs))
        entry: dict[str, Any] = {
            "at": stamp(lo),
            "server": server["name"],
            "event": "fault",
            "fault": draw(faults(mailboxes="relay" not in server)),
        }
        if hi > lo and draw(st.integers(0, 3)):
            entry["until"] = stamp(hi)
        story.append((lo, entry))
    # A stable sort keeps each server's entries at the same minute in story order
    # (backup before crash, recover-disk before up).
    timeline = [entry for _, entry in sorted(story, key=lambda pair: pair[0])]
    senders = []
    for i in range(draw(st.integers(1, 3))):
        count, t = draw(traffic(end))
        senders.append({"name": f"g{i + 1}", "count": count, "policy": draw(policies()), "traffic": t})
    data: dict[str, Any] = {
        "name": "prop",
        "seed": draw(st.integers(0, 2**16)),
        "clock": {"start": stamp(0), "end": stamp(end)},
        "servers": servs,
        "timeline": timeline,
        "senders": senders,
    }
    if draw(st.integers(0, 3)) == 0:
        data["windows"] = draw(windows(end))
    origin, zone = draw(st.sampled_from(ORIGINS))
    if origin != START:
        data = _shift(data, origin - START)
    if zone is not None:
        data["clock"]["timezone"] = zone
    data["thresholds"] = thresholds_for(data)
    return data
