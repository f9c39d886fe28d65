"""Read a results folder back: the ledger, the summary, the timeline, the wire attempts.

Only the files in the folder are read: ``summary.json``, ``messages.csv``,
``events.jsonl`` and, when present, ``timeline.json`` and
``thresholds.json``. A folder written before ``timeline.json`` existed still
works: the timeline is rebuilt from ``events.jsonl`` (servers assumed up at
the start).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import ScenarioError, Problem
from ..ledger import STATES, MessageRecord
from .. import metrics

__all__ = ["ReportData", "load_results"]

REQUIRED = ("summary.json", "messages.csv", "events.jsonl")


@dataclass
class ReportData:
    """A results folder in memory, times in simulated seconds from the clock's start."""

    folder: Path
    summary: dict[str, Any]
    timeline: dict[str, Any]
    records: list[MessageRecord]
    attempts: list[tuple[float, str]]
    thresholds: list[dict[str, Any]] | None = None
    start: datetime = field(default_factory=lambda: datetime(2000, 1, 1))

    @property
    def name(self) -> str:
        """The scenario's name."""
        return str(self.summary.get("scenario", self.folder.name))

    @property
    def end(self) -> float:
        """The clock's end in simulated seconds."""
        return float(self.timeline["clock"]["seconds"])

    @property
    def servers(self) -> list[str]:
        """Server names, in scenario order."""
        return [s["name"] for s in self.timeline["servers"]]

    @property
    def groups(self) -> list[str]:
        """Sender group names, in scenario order (then any others found in the ledger)."""
        names = [s["name"] for s in self.timeline["senders"]]
        return names + sorted({r.group for r in self.records} - set(names))

    def gives_up(self, group: str) -> float | None:
        """Seconds after which the group's policy bounces mail that never gets through."""
        for s in self.timeline["senders"]:
            if s["name"] == group:
                return s.get("gives_up_after")
        return None

    @property
    def windows(self) -> list[tuple[str, float, float]]:
        """``(label, start, end)`` windows of submission time."""
        return [(w["label"], float(w["start"]), float(w["end"])) for w in self.timeline["windows"]]

    @property
    def marks(self) -> list[dict[str, Any]]:
        """The timeline's events as logged."""
        return list(self.timeline["marks"])

    def intervals(self, kind: str = "states") -> dict[str, list[metrics.Interval]]:
        """Each server's listening (``states``) or disk (``disks``) state over time."""
        return {
            name: [metrics.Interval(float(i["from"]), float(i["to"]), i["state"]) for i in ivs]
            for name, ivs in self.timeline[kind].items()
        }

    @property
    def horizon(self) -> float:
        """Where time axes end: a little after the last submission, delivery, bounce or timeline event."""
        last = max(
            [r.submitted_at for r in self.records]
            + [t for r in self.records for t in (r.accepted_at, r.bounced_at) if t is not None]
            + [float(m["t"]) for m in self.marks],
            default=self.end,
        )
        return min(self.end, last + 0.03 * max(last, 1.0))

    def when(self, t: float) -> datetime:
        """The scenario-clock time at simulated second *t* (naive, for plotting)."""
        when = self.start + timedelta(seconds=t)
        zone = self.timeline["clock"].get("timezone")
        if zone and when.tzinfo is not None:
            when = when.astimezone(ZoneInfo(zone))
        return when.replace(tzinfo=None)

    def short(self, t: float) -> str:
        """``10:38 10/26``: the post-mortem's way of writing a time."""
        return self.when(t).strftime("%H:%M %m/%d")

    def long(self, t: float) -> str:
        """``10:38 on 10/26``."""
        return self.when(t).strftime("%H:%M on %m/%d")

    def destination(self, record: Any) -> str:
        """The server a record's recipient domain routes to."""
        routes = {d.lower(): s["name"] for s in self.timeline["servers"] for d in s.get("domains", [])}
        return routes.get(record.recipient.rpartition("@")[2].lower(), record.accepted_by or self.servers[0])


def _seconds(start: datetime, text: str) -> float | None:
    if not text:
        return None
    return (datetime.fromisoformat(text) - start).total_seconds()


def _records(path: Path, start: datetime) -> list[MessageRecord]:
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            final_at = _seconds(start, row["final_at"])
            state = row["final_state"]
            if state not in STATES:
                raise ScenarioError([Problem(str(path), None, "", f"unknown final_state {state!r} for {row['message_id']}")])
            out.append(
                MessageRecord(
                    message_id=row["message_id"],
                    sender=row["sender"],
                    group=row.get("group") or row["policy"],
                    policy=row["policy"],
                    originator=row.get("originator", ""),
                    recipient=row.get("recipient", ""),
                    submitted_at=_seconds(start, row["submitted_at"]) or 0.0,
                    attempts=int(row["attempts"] or 0),
                    connections=int(row.get("connections") or 0),
                    delay_warnings=int(row["delay_warnings"] or 0),
                    accepted_at=_seconds(start, row["accepted_at"]),
                    accepted_by=row["accepted_by"],
                    copies=int(row["copies"] or 0),
                    bounced_at=final_at if state == "bounced" else None,
                    bounce_status=row.get("bounce_status", ""),
                    bounce_reason=row.get("bounce_reason", ""),
                    last_error=row.get("last_error", ""),
                    final_state=state,
                    final_at=final_at,
                )
            )
    return out


def _events(path: Path) -> tuple[list[tuple[float, str]], list[dict[str, Any]]]:
    attempts: list[tuple[float, str]] = []
    marks: list[dict[str, Any]] = []
    wanted = tuple(f'"type":"{t}"' for t in metrics.MARK_TYPES)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if '"type":"attempt"' in line:
                event = json.loads(line)
                attempts.append((float(event["t"]), event["server"]))
            elif any(w in line for w in wanted):
                event = json.loads(line)
                if event.get("type") in metrics.MARK_TYPES:
                    marks.append(event)
    return attempts, marks


def _rebuilt_timeline(summary: dict[str, Any], marks: list[dict[str, Any]], records: list[MessageRecord], start: datetime) -> dict[str, Any]:
    """A ``timeline.json`` for a folder that has none, from the event log and the summary."""
    end = _seconds(start, summary["clock"]["end"]) or 0.0
    names = list(dict.fromkeys([m["server"] for m in marks] + [r.accepted_by for r in records if r.accepted_by]))
    initial = {name: "up" for name in names or ["server"]}
    states = metrics.server_intervals(marks, initial, end)
    groups = {r.group: r.policy for r in records}

    def spans(intervals: dict[str, list[metrics.Interval]]) -> dict[str, list[dict[str, Any]]]:
        return {n: [{"from": i.start, "to": i.end, "state": i.state} for i in ivs] for n, ivs in intervals.items()}

    return {
        "scenario": summary.get("scenario"),
        "clock": {"start": summary["clock"]["start"], "end": summary["clock"]["end"], "seconds": end, "timezone": None},
        "servers": [{"name": n, "domains": [], "initially": "up"} for n in initial],
        "senders": [{"name": g, "count": None, "policy": p, "gives_up_after": None} for g, p in groups.items()],
        "windows_declared": True,
        "windows": [
            {"label": w["label"], "start": _seconds(start, w["from"]), "end": _seconds(start, w["to"])}
            for w in summary.get("windows", [])
        ],
        "marks": marks,
        "states": spans(states),
        "disks": spans(metrics.disk_intervals(marks, initial, end)),
        "recoveries": [{"t": t, "server": n} for t, n in metrics.recoveries(states)],
    }


def load_results(folder: str | Path) -> ReportData:
    """Read a results folder written by ``smtp-outage run``.

    Raises ``ScenarioError`` (bad input) when a required file is missing.
    """
    folder = Path(folder)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise ScenarioError(
            [Problem(str(folder), None, "", f"not a results folder: {', '.join(missing)} missing (run `smtp-outage run SCENARIO --out {folder}` first)")]
        )
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    start = datetime.fromisoformat(summary["clock"]["start"])
    records = _records(folder / "messages.csv", start)
    attempts, marks = _events(folder / "events.jsonl")
    timeline_path = folder / "timeline.json"
    if timeline_path.is_file():
        timeline = json.loads(timeline_path.read_text(encoding="utf-8"))
    else:
        timeline = _rebuilt_timeline(summary, marks, records, start)
    thresholds = None
    if (folder / "thresholds.json").is_file():
        thresholds = json.loads((folder / "thresholds.json").read_text(encoding="utf-8")).get("thresholds")
    return ReportData(folder, summary, timeline, records, attempts, thresholds, start)
