"""Flat output records of a run: the ledger, the summary, the event log.

``RunResult`` is what ``run_scenario`` returns. ``write()`` produces the
files other tools read (fixed names, see DESIGN): ``messages.csv``,
``summary.json`` and ``events.jsonl``, plus ``timeline.json`` (the incident
as intervals and marks, for reports) and ``thresholds.json`` when the
scenario declares thresholds.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import SimClock
from .ledger import STATES, MessageRecord
from .metrics import incident_windows, scenario_marks, timeline_document
from .scenario import Scenario

__all__ = ["RunResult", "Window", "MESSAGE_COLUMNS"]

MESSAGE_COLUMNS = (
    "message_id",
    "sender",
    "policy",
    "submitted_at",
    "final_state",
    "final_at",
    "attempts",
    "accepted_at",
    "accepted_by",
    "copies",
    "delay_warnings",
    "group",
    "originator",
    "recipient",
    "connections",
    "bounce_status",
    "bounce_reason",
    "last_error",
    "window",
)


@dataclass(frozen=True)
class Window:
    """A window of submission time with the states of the mail submitted in it."""

    label: str
    start: float
    end: float
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Messages submitted in the window."""
        return sum(self.counts.values())


def _windows(scenario: Scenario, clock: SimClock) -> list[tuple[str, float, float]]:
    """The scenario's own windows, or the post-mortem's, derived from the timeline (``incident_windows``)."""
    if scenario.windows:
        out = []
        for w in scenario.windows:
            lo = 0.0 if w.start == "start" else clock.seconds(w.start)
            hi = clock.end if w.end == "end" else clock.seconds(w.end)
            out.append((w.label, lo, hi))
        return out
    initial = {v.name: v.initially for v in scenario.servers}

    def fmt(t: float) -> str:
        return clock.datetime_at(t).strftime("%H:%M %m/%d")

    return incident_windows(scenario_marks(scenario, clock.seconds), initial, clock.end, fmt)


@dataclass
class RunResult:
    """Everything a run produced. ``ok`` is True once the ledger balanced."""

    scenario: Scenario
    seed: int
    clock: SimClock
    records: list[MessageRecord]
    counts: Counter[str]
    events: list[dict[str, Any]]
    wall_seconds: float
    wire_seconds: float = 0.0
    batches: int = 0
    transport: str = "wire"
    windows: list[Window] = field(default_factory=list)
    notifications: list[Any] = field(default_factory=list)
    turned_away: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.windows:
            spans = _windows(self.scenario, self.clock)
            self.windows = []
            for label, lo, hi in spans:
                counts = {s: 0 for s in STATES}
                for r in self.records:
                    if lo <= r.submitted_at < hi:
                        counts[r.final_state] += 1
                self.windows.append(Window(label, lo, hi, counts))

    @property
    def messages(self) -> int:
        """Messages submitted."""
        return len(self.records)

    @property
    def attempts(self) -> int:
        """Delivery attempts, including those deferred without connecting."""
        return sum(r.attempts for r in self.records)

    @property
    def connections(self) -> int:
        """Attempts that reached the wire (real SMTP sessions or connects)."""
        return sum(r.connections for r in self.records)

    def window_of(self, t: float) -> str:
        """The label of the first window containing submission time *t*."""
        for w in self.windows:
            if w.start <= t < w.end:
                return w.label
        return ""

    def by_policy(self) -> dict[str, dict[str, int]]:
        """Final-state counts per sender group."""
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            out.setdefault(r.group, {s: 0 for s in STATES})[r.final_state] += 1
        return out

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "messages": self.messages,
            "attempts": self.attempts,
            "connections": self.connections,
            "counts": {s: self.counts[s] for s in STATES},
            "wall_seconds": round(self.wall_seconds, 3),
            "transport": self.transport,
            "clock": {"start": self.clock.iso(0), "end": self.clock.iso(self.clock.end)},
            "by_policy": self.by_policy(),
            "windows": [
                {"label": w.label, "from": self.clock.iso(w.start), "to": self.clock.iso(w.end), "messages": w.total, "counts": w.counts}
                for w in self.windows
            ],
            "delay_warnings": sum(r.delay_warnings for r in self.records),
            "notifications": len(self.notifications),
            "duplicates": sum(1 for r in self.records if r.copies > 1),
            "turned_away": dict(self.turned_away),
            "delivery_delay": self.delivery_delays(),
            "recoveries": self.recoveries(),
        }

    def delivery_delays(self) -> dict[str, dict[str, float]]:
        """Seconds from submission to the first 250, per sender group: p50, p95, max (accepted mail only)."""
        from .metrics import delivery_delay, percentile

        by_group: dict[str, list[float]] = {}
        for r in self.records:
            delay = delivery_delay(r)
            if delay is not None:
                by_group.setdefault(r.group, []).append(delay)
        return {
            group: {"count": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95), "max": max(v)}
            for group, v in by_group.items()
        }

    def recoveries(self) -> list[dict[str, Any]]:
        """Each recovery storm: backlog, peak attempts per simulated minute, drain time, turned away."""
        from .thresholds import storms_of

        out = []
        for storm in storms_of(self):
            window = [e for e in self.events if e["type"] == "reply" and e.get("server") == storm.server
                      and storm.at <= e["t"] < storm.until and e.get("code") == 421 and e.get("stage") == "greeting"]
            out.append(
                {
                    "server": storm.server,
                    "at": self.clock.iso(storm.at),
                    "backlog": storm.backlog,
                    "peak_attempts_per_minute": storm.peak_per_minute,
                    "peak_at": self.clock.iso(storm.peak_at),
                    "attempts_first_hour": storm.first_hour,
                    "drained_90_seconds": storm.drained_90,
                    "drained_seconds": storm.drained,
                    "turned_away_421": len(window),
                }
            )
        return out

    def messages_csv(self) -> str:
        """The ledger as CSV text (deterministic: same scenario and seed, same bytes)."""
        iso = self.clock.iso
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(MESSAGE_COLUMNS)
        for r in self.records:
            writer.writerow(
                (
                    r.message_id, r.sender, r.policy, iso(r.submitted_at), r.final_state, iso(r.final_at),
                    r.attempts, iso(r.accepted_at), r.accepted_by, r.copies, r.delay_warnings, r.group,
                    r.originator, r.recipient, r.connections, r.bounce_status, r.bounce_reason, r.last_error,
                    self.window_of(r.submitted_at),
                )
            )
        return buf.getvalue()

    def write(self, out_dir: str | Path) -> Path:
        """Write ``messages.csv``, ``summary.json``, ``events.jsonl``, ``timeline.json`` (and ``thresholds.json``) into *out_dir*."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "messages.csv").write_text(self.messages_csv(), encoding="utf-8")
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        with (out / "events.jsonl").open("w", encoding="utf-8") as fh:
            for event in self.events:
                fh.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._write_notifications(out / "notifications.mbox")
        (out / "timeline.json").write_text(json.dumps(timeline_document(self), indent=1) + "\n", encoding="utf-8")
        if self.scenario.thresholds:
            from .thresholds import evaluate, to_json

            document = {"scenario": self.scenario.name, "thresholds": to_json(evaluate(self))}
            (out / "thresholds.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return out

    def _write_notifications(self, path: Path) -> None:
        """Every delay warning and bounce as an mbox (envelope sender ``MAILER-DAEMON``: null)."""
        with path.open("wb") as fh:
            for note in self.notifications:
                fh.write(f"From MAILER-DAEMON {note.message['Date']}\n".encode())
                body = note.message.as_bytes().replace(b"\r\n", b"\n")
                for line in body.split(b"\n"):
                    fh.write((b">" + line if line.startswith(b"From ") else line) + b"\n")
                fh.write(b"\n")
