"""The report's figures, drawn with matplotlib's object API (Agg, no pyplot, no global state).

Each function draws one PNG and returns its path. Time axes are the
scenario's own clock, with every outage shaded so the figures line up with
the incident timeline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.dates import DateLocator
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import Formatter, NullLocator

from .. import metrics
from ..events import BackupEvent, CrashEvent, DiskLostEvent, DiskRecoveredEvent, Event, FaultEvent, RestoreEvent
from ..ledger import STATES
from .data import ReportData
from .tables import backup_runs, duration, fault_words

__all__ = [
    "STATE_COLORS",
    "SERVER_COLORS",
    "FAULT_COLORS",
    "timeline_png",
    "outcomes_png",
    "queue_png",
    "delays_png",
    "storms_png",
]

STATE_COLORS = {
    "delivered": "#2e7d32",
    "stranded": "#ad1457",
    "lost": "#b71c1c",
    "bounced": "#f9a825",
    "queued": "#0277bd",
}
SERVER_COLORS = {
    "up": "#81c784",
    "refuse": "#e57373",
    "blackhole": "#424242",
    "unreachable": "#9e9e9e",
    "tempfail": "#ffb74d",
}
DISK_COLORS = {"live": "#90caf9", "failed": "#6d4c41"}
OUTAGE = "#e53935"
DPI = 110
# matplotlib.dates has no annotations: typed views of the three parts used here.
_date2num: Callable[[datetime], float] = mdates.date2num
_date_locator: Callable[..., DateLocator] = mdates.AutoDateLocator
_date_formatter: Callable[[DateLocator], Formatter] = mdates.ConciseDateFormatter
GROUP_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    # A million messages make paths of millions of vertices (queue depth, delay CDFs): Agg draws them in
    # chunks instead of failing with "Exceeded cell block limit".
    with rc_context({"agg.path.chunksize": 20000}):
        fig.savefig(path, dpi=DPI, facecolor="white", metadata={"Software": None})
    return path


def _x(data: ReportData, t: float) -> float:
    """Simulated second *t* as a matplotlib date number on the scenario's clock."""
    return _date2num(data.when(t))


def _time_axis(ax: Axes, data: ReportData, lo: float = 0.0, hi: float | None = None) -> None:
    ax.set_xlim(_x(data, lo), _x(data, data.horizon if hi is None else hi))
    locator = _date_locator(minticks=6, maxticks=16)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(_date_formatter(locator))


def _shade_outages(ax: Axes, data: ReportData) -> None:
    for _, iv in metrics.outages(data.intervals("states")):
        ax.axvspan(_x(data, iv.start), _x(data, iv.end), color=OUTAGE, alpha=0.10, lw=0, zorder=0)


def _group_colors(data: ReportData) -> dict[str, str]:
    return {g: GROUP_COLORS[i % len(GROUP_COLORS)] for i, g in enumerate(data.groups)}


def _group_label(data: ReportData, group: str) -> str:
    gives_up = data.gives_up(group)
    return f"{group} (gives up after {duration(gives_up)})" if gives_up else group


# ---------------------------------------------------------------- 1. incident timeline
_MARKS: dict[tuple[str, bool | None], tuple[str, str, str]] = {
    ("backup", True): ("^", "#1b5e20", "backup ok"),
    ("backup", False): ("v", "#c62828", "backup failed"),
    ("crash", None): ("X", "#b71c1c", "crash (disk fails)"),
    ("restore", None): ("D", "#0d47a1", "restore from backup"),
    ("disk_recovered", None): ("*", "#2e7d32", "disk recovered"),
    ("disk_lost", None): ("x", "#000000", "disk lost"),
}
FAULT_COLORS = {
    "capacity": "#7e57c2",
    "reply": "#ef6c00",
    "accept-then-drop": "#d81b60",
    "slow": "#00897b",
    "disk-full": "#5d4037",
    "greylist": "#546e7a",
    "fail-first": "#9e9d24",
    "delivery-queue": "#0277bd",
}


def _mark_key(event: Event) -> tuple[str, bool | None] | None:
    """The marker an event of the timeline is drawn with, or ``None``."""
    if isinstance(event, BackupEvent):
        return ("backup", event.ok)
    if isinstance(event, (CrashEvent, RestoreEvent, DiskRecoveredEvent, DiskLostEvent)):
        return (event.type, None)
    return None


def _routine(group: list[Event]) -> bool:
    """A run of backups, or a scheduled one: drawn small and not labelled."""
    return len(group) > 1 or (isinstance(group[0], BackupEvent) and group[0].scheduled)


def _span(data: ReportData, iv: metrics.Interval) -> tuple[float, float]:
    """An interval as matplotlib date numbers: (start, width in days)."""
    return _x(data, iv.start), (iv.end - iv.start) / 86400


def _levels(xs: list[float], gap: float, most: int = 4) -> list[int]:
    """Stagger labels at positions *xs* (sorted) so that labels on one level are *gap* apart."""
    last: list[float] = []
    out = []
    for x in xs:
        level = next((i for i, seen in enumerate(last) if x - seen >= gap), None)
        if level is None:
            level = len(last) if len(last) < most else min(range(len(last)), key=lambda i: last[i])
            if level == len(last):
                last.append(x)
        last[level] = x
        out.append(level)
    return out


def _lanes(spans: list[tuple[float, float]]) -> list[int]:
    """A lane for each ``(start, stop)`` span (in start order) so that spans in one lane do not overlap."""
    ends: list[float] = []
    out = []
    for start, stop in spans:
        lane = next((i for i, end in enumerate(ends) if end <= start), len(ends))
        if lane == len(ends):
            ends.append(stop)
        ends[lane] = stop
        out.append(lane)
    return out


def _draw_faults(ax: Axes, data: ReportData, y: int, spans: list[tuple[FaultEvent, float]]) -> set[str]:
    """Each fault of one server as a bar on its row, labelled in words where there is room; returns the kinds drawn."""
    lanes = _lanes([(e.t, stop) for e, stop in spans])
    count = max(lanes) + 1 if lanes else 1
    height = 0.8 / count
    room = 0.06 * max(data.horizon, 1.0)
    kinds = set()
    for (event, stop), lane in zip(spans, lanes, strict=True):
        kind = str(event.fault.get("kind", ""))
        kinds.add(kind)
        x0, width = _span(data, metrics.Interval(event.t, max(stop, event.t + 1.0), kind))
        bottom = y - 0.4 + lane * height
        bar = Rectangle((x0, bottom), width, height, facecolor=FAULT_COLORS.get(kind, "#8d6e63"), lw=0, zorder=2)
        ax.add_patch(bar)
        if stop - event.t >= room:
            label = ax.text(
                _x(data, event.t),
                bottom + height / 2,
                f" {fault_words(event.fault)}",
                va="center",
                ha="left",
                fontsize=8 if count == 1 else 7,
                color="white",
                zorder=3,
                clip_on=True,
            )
            label.set_clip_path(bar)
    return kinds


def timeline_png(data: ReportData, path: Path) -> Path:
    """Each server's listening state, disk and faults over time, with backups, crashes, restores and recoveries marked.

    Runs of alike backups (a backup schedule) are drawn small and labelled once.
    """
    a = data.analysis
    servers = data.servers
    states, disks = data.intervals("states"), data.intervals("disks")
    faults: dict[str, list[tuple[FaultEvent, float]]] = {}
    for event, stop in a.fault_spans:
        faults.setdefault(event.server, []).append((event, stop))
    rows: list[str] = []
    where: dict[str, dict[str, int]] = {}
    for name in servers:
        where[name] = {"state": len(rows), "disk": len(rows) + 1}
        rows += [f"{name}: accepting mail", f"{name}: disk"]
        if name in faults:
            where[name]["faults"] = len(rows)
            rows.append(f"{name}: faults")
    groups = [
        g
        for g in backup_runs(a.timeline_events)
        if _mark_key(g[0]) is not None and getattr(g[0], "server", "") in where
    ]
    # Labelled: crashes, restores, disks and backups taken by hand that worked; scheduled backups are small marks.
    notes = [g for g in groups if not _routine(g) and _mark_key(g[0]) != ("backup", False)]
    levels = _levels([g[0].t for g in notes], 0.13 * data.end)
    depth = (max(levels) + 1) if levels else 0
    fig = _figure(12, 1.5 + 0.55 * len(rows) + 0.32 * depth)
    ax = fig.add_subplot()
    for name in servers:
        for iv in states.get(name, []):
            y = where[name]["state"]
            ax.broken_barh([_span(data, iv)], (y - 0.35, 0.7), color=SERVER_COLORS.get(iv.state, "#bdbdbd"), lw=0)
        for iv in disks.get(name, []):
            y = where[name]["disk"]
            ax.broken_barh([_span(data, iv)], (y - 0.25, 0.5), color=DISK_COLORS.get(iv.state, "#bdbdbd"), lw=0)
    fault_kinds: set[str] = set()
    for name, spans in faults.items():
        if name in where:
            fault_kinds |= _draw_faults(ax, data, where[name]["faults"], spans)
    used: dict[str, tuple[str, str]] = {}
    for group in groups:
        key = _mark_key(group[0])
        assert key is not None
        marker, color, label = _MARKS[key]
        y = where[getattr(group[0], "server", "")]["disk"]
        small = _routine(group)
        ax.plot(
            [_x(data, e.t) for e in group],
            [y] * len(group),
            marker=marker,
            color=color,
            markersize=6 if small else 11,
            markeredgecolor="white",
            markeredgewidth=0.5 if small else 1.0,
            linestyle="none",
            zorder=3,
        )
        used[label] = (marker, color)
    for group, level in zip(notes, levels, strict=True):
        key = _mark_key(group[0])
        assert key is not None
        _, color, label = _MARKS[key]
        first = group[0]
        y = where[getattr(first, "server", "")]["disk"]
        text = f"{label.split(' (')[0]} {data.short(first.t)}"
        ax.annotate(
            text,
            (_x(data, first.t), y),
            xytext=(_x(data, first.t), -0.75 - 0.55 * level),
            ha="center",
            va="bottom",
            fontsize=8.5,
            color=color,
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.7, "alpha": 0.7},
            zorder=4,
        )
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(len(rows) - 0.4, -0.95 - 0.55 * depth)
    _time_axis(
        ax,
        data,
        0.0,
        max([data.horizon] + [min(data.end, stop * 1.03) for _, stop in a.fault_spans if stop < data.end]),
    )
    ax.grid(axis="x", color="#e0e0e0", lw=0.6)
    ax.set_axisbelow(True)
    order = list(SERVER_COLORS)
    shown_states = sorted(
        {iv.state for ivs in states.values() for iv in ivs}, key=lambda s: order.index(s) if s in order else 99
    )
    handles: list[Artist] = [
        Patch(color=SERVER_COLORS.get(s, "#bdbdbd"), label="up" if s == "up" else f"down ({s})") for s in shown_states
    ]
    handles += [
        Patch(color=DISK_COLORS[s], label=f"disk {s}")
        for s in ("live", "failed")
        if any(iv.state == s for ivs in disks.values() for iv in ivs)
    ]
    handles += [Patch(color=FAULT_COLORS.get(k, "#8d6e63"), label=f"fault: {k}") for k in sorted(fault_kinds)]
    handles += [
        Line2D([], [], marker=mk, color=c, linestyle="none", markersize=9, label=label)
        for label, (mk, c) in used.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    ax.set_title("Incident timeline", loc="left", fontsize=12, fontweight="bold")
    return _save(fig, path)


# ---------------------------------------------------------------- 3. outcome by submission time
_BINS = (600, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _bin_width(span: float, most: int = 200) -> int:
    return next((b for b in _BINS if span / b <= most), _BINS[-1])


def outcomes_png(data: ReportData, path: Path) -> Path:
    """Messages by submission time (stacked bars), coloured by what finally became of them."""
    fig = _figure(12, 3.6)
    ax = fig.add_subplot()
    cols = data.analysis.cols
    last = float(cols.submitted.max()) if cols.n else data.end
    width = _bin_width(max(last, 1.0))
    bins: dict[str, Counter[int]] = {s: Counter() for s in STATES}
    slot_of = (cols.submitted // width).astype("int64")
    for k, state in enumerate(STATES):
        found, counts = np.unique(slot_of[cols.state == k], return_counts=True)
        bins[state].update(dict(zip(found.tolist(), counts.tolist(), strict=True)))
    slots = range(int(last // width) + 1)
    xs = [_x(data, i * width) for i in slots]
    bottom = [0] * len(xs)
    bar_width = width / 86400 * 0.95
    for state in STATES:
        heights = [bins[state][i] for i in slots]
        if any(heights):
            ax.bar(
                xs, heights, width=bar_width, bottom=bottom, align="edge", color=STATE_COLORS[state], label=state, lw=0
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    _shade_outages(ax, data)
    _time_axis(ax, data, 0.0, max(data.horizon, min(data.end, (int(last // width) + 1) * width)))
    ax.set_ylabel(f"messages per {duration(width)}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, ncols=5, frameon=False)
    ax.set_title(
        "What became of the mail, by when it was sent (shaded: a server was down)",
        loc="left",
        fontsize=12,
        fontweight="bold",
    )
    ax.grid(axis="y", color="#e0e0e0", lw=0.6)
    ax.set_axisbelow(True)
    return _save(fig, path)


# ---------------------------------------------------------------- 4. queue depth
MOST_POINTS = 2000
"""The most points a curve is drawn with: past that, a figure 12 inches wide shows no more (and a million-message run
would otherwise hand matplotlib millions)."""


def _binned_peaks(times: np.ndarray, stacks: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Step series at *times*, thinned to ``MOST_POINTS`` bins of equal time when longer: each bin drawn from its first
    instant at the highest value each series reaches in it (so no peak is lost)."""
    if len(times) <= MOST_POINTS:
        return times, stacks
    edges = np.linspace(times[0], times[-1], MOST_POINTS + 1)[:-1]
    starts = np.unique(np.searchsorted(times, edges, side="left"))
    starts = starts[starts < len(times)]
    return times[starts], [np.maximum.reduceat(values, starts) for values in stacks]


def _thinned_cdf(delays: np.ndarray, mine: int) -> tuple[np.ndarray, np.ndarray]:
    """The points of a sorted sample's CDF (share of *mine* at or below each delay), at most ``MOST_POINTS`` of them:
    evenly spaced ranks, the first and last kept (a step between two is under 1/``MOST_POINTS`` of the height)."""
    ranks = np.arange(len(delays))
    if len(delays) > MOST_POINTS:
        ranks = np.unique(np.linspace(0, len(delays) - 1, MOST_POINTS).round().astype(np.int64))
    return delays[ranks], (ranks + 1) / mine


def queue_png(data: ReportData, path: Path) -> Path:
    """Messages waiting in sender queues over time, stacked per sender group."""
    fig = _figure(12, 3.8)
    ax = fig.add_subplot()
    series = data.analysis.queue_depth_arrays()
    times = np.unique(np.concatenate([t for t, _ in series.values()] + [np.array([0.0, data.end])]))
    colors = _group_colors(data)
    stacks, labels, shades = [], [], []
    for g in data.groups:
        if g not in series or not series[g][1].max(initial=0):
            continue
        changes, depth = series[g]
        at = np.searchsorted(changes, times, side="right") - 1  # the last change at or before each instant
        stacks.append(np.where(at >= 0, depth[np.maximum(at, 0)], 0))
        labels.append(_group_label(data, g))
        shades.append(colors[g])
    times, stacks = _binned_peaks(times, stacks)
    xs = [_x(data, t) for t in times.tolist()]
    if stacks:
        ax.stackplot(xs, stacks, labels=labels, colors=shades, step="post", lw=0)
        ax.legend(loc="upper left", fontsize=8, ncols=3, frameon=False)
    _shade_outages(ax, data)
    _time_axis(ax, data)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("messages queued at senders")
    ax.set_title(
        "Queue depth at the senders (submitted, not yet accepted or bounced)",
        loc="left",
        fontsize=12,
        fontweight="bold",
    )
    ax.grid(axis="y", color="#e0e0e0", lw=0.6)
    ax.set_axisbelow(True)
    return _save(fig, path)


# ---------------------------------------------------------------- 5. delays and recovery storms
_DELAY_TICKS = (
    (60, "1m"),
    (600, "10m"),
    (3600, "1h"),
    (6 * 3600, "6h"),
    (86400, "1d"),
    (3 * 86400, "3d"),
    (7 * 86400, "7d"),
)


def delays_png(data: ReportData, path: Path) -> Path:
    """Delivery delay (submission to the first 250) as a CDF per sender group, as a share of all its mail."""
    fig = _figure(12, 4.2)
    ax = fig.add_subplot()
    colors = _group_colors(data)
    floor = 30.0
    top = floor * 10
    lowest = 1.0
    for g in data.groups:
        mine = sum(data.analysis.by_group.get(g, {}).values())
        delays = np.maximum(np.asarray(data.analysis.delay_values(g), dtype=np.float64), floor)
        if not len(delays):
            continue
        top = max(top, float(delays[-1]))
        at, shares = _thinned_cdf(delays, mine)
        xs = np.concatenate([[floor], at])
        ys = np.concatenate([[np.count_nonzero(delays <= floor) / mine], shares])
        lowest = min(lowest, float(ys[0]))
        ax.step(
            xs,
            ys,
            where="post",
            color=colors[g],
            lw=1.6,
            label=f"{_group_label(data, g)}: {len(delays)}/{mine} accepted",
        )
    ax.set_xscale("log")
    ax.set_xlim(floor, top * 1.5)
    ticks = [(s, label) for s, label in _DELAY_TICKS if floor <= s <= top * 1.5]
    ax.set_xticks([s for s, _ in ticks], [label for _, label in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    bottom = max(0.0, math.floor((lowest - 0.05) * 10) / 10)
    ax.set_ylim(bottom, 1.02)
    ax.set_xlabel("delay from submission to the first 250 (log scale; at most 30 s counts as 30 s)")
    ax.set_ylabel("share of the group's messages" + (f" (axis starts at {bottom:.1f})" if bottom else ""))
    ax.grid(color="#e0e0e0", lw=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, frameon=True)
    ax.set_title(
        "Delivery delay per sender group (the curve stops at the share ever accepted)",
        loc="left",
        fontsize=12,
        fontweight="bold",
    )
    return _save(fig, path)


def _horizon(storm: metrics.Storm) -> float:
    span = storm.until - storm.at
    if storm.drained is not None:
        return max(3600.0, min(span, storm.drained * 1.15 + 1800, 86400.0))
    return max(3600.0, min(span, 12 * 3600.0))


def storms_png(data: ReportData, storms: list[metrics.Storm], path: Path) -> Path:
    """After each recovery: SMTP sessions per simulated minute, and the backlog still waiting."""
    fig = _figure(12, 2.0 + 2.6 * len(storms))
    backlog_color = "#6a1b9a"
    for n, storm in enumerate(storms):
        ax = fig.add_subplot(len(storms), 1, n + 1)
        horizon = _horizon(storm)
        minutes = math.ceil(horizon / 60)
        hours = [m / 60 for m in range(minutes)]
        ax.bar(
            hours,
            [storm.per_minute.get(m, 0) for m in range(minutes)],
            width=1 / 60,
            align="edge",
            color="#455a64",
            lw=0,
            label="SMTP sessions per minute",
        )
        ax.set_xlim(0, horizon / 3600)
        ax.set_ylabel("sessions / minute")
        ax.set_xlabel(f"hours after {storm.server} came back at {data.short(storm.at)}")
        twin = ax.twinx()
        gone = 0  # backlog messages that left within the horizon (``storm.left`` is in time order, None last)
        while gone < len(storm.left) and (left := storm.left[gone]) is not None and left - storm.at <= horizon:
            gone += 1
        ranks = np.arange(gone) if gone <= MOST_POINTS else np.linspace(0, gone - 1, MOST_POINTS).round()
        lefts = np.asarray(storm.left[:gone], dtype=np.float64)[ranks.astype(np.int64)]
        steps_x = np.concatenate([[0.0], (lefts - storm.at) / 3600, [horizon / 3600]])
        steps_y = np.concatenate([[storm.backlog], storm.backlog - 1 - ranks, [storm.backlog - gone]])
        twin.step(steps_x, steps_y, where="post", color=backlog_color, lw=2, label="backlog still waiting")
        twin.set_ylim(0, max(1, storm.backlog) * 1.1)
        twin.set_ylabel("backlog", color=backlog_color)
        # 90% to the left of its line, all to the right, so that close drain times do not overprint.
        lines = [(storm.drained_90, "90% drained", ":", -4, "right"), (storm.drained, "all drained", "--", 4, "left")]
        if storm.drained_90 == storm.drained:
            lines = [(storm.drained, "90% and all drained", "--", 4, "left")]
        for value, label, style, offset, side in lines:
            if value is not None and value <= horizon:
                ax.axvline(value / 3600, color=backlog_color, ls=style, lw=1.2)
                ax.annotate(
                    f"{label}\n{duration(value)}",
                    (value / 3600, 0.62),
                    xycoords=("data", "axes fraction"),
                    xytext=(offset, 0),
                    textcoords="offset points",
                    fontsize=8,
                    va="top",
                    ha=side,
                    color=backlog_color,
                )
        peak = f"peak {storm.peak_per_minute}/min at {data.short(storm.peak_at)}"
        ax.set_title(
            f"Recovery {n + 1}: {storm.backlog} messages waiting; {peak}", loc="left", fontsize=11, fontweight="bold"
        )
        handles = [
            Patch(color="#455a64", label="SMTP sessions per minute"),
            Line2D([], [], color=backlog_color, lw=2, label="backlog still waiting"),
        ]
        ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
        ax.grid(axis="y", color="#e0e0e0", lw=0.6)
        ax.set_axisbelow(True)
    return _save(fig, path)
