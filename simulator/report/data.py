"""Read a results folder back into the run's ``Analysis``: the report's only source of numbers.

Only the files in the folder are read: ``summary.json`` (the run's name, seed
and transport), ``timeline.json`` (servers with their MX preferences, sender
groups, windows, clock), ``messages.csv`` and ``events.jsonl`` (through their
one reader each), and ``thresholds.json`` when present. A folder without
``timeline.json`` still works: servers are taken from the events (assumed up
at the start, preference by order) and the windows from ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .. import metrics
from ..analysis import Analysis, EventFold, RunFacts, SenderFacts, ServerFacts
from ..clock import SimClock
from ..errors import Problem, ScenarioError
from ..ledger import LedgerRows, MessageRecord
from ..results import read_ledger, require_complete

__all__ = ["ReportData", "load_results", "REQUIRED"]

REQUIRED = ("summary.json", "messages.csv", "events.jsonl")
"""What a results folder holds (``messages.parquet`` and ``events.parquet`` stand in for the CSV and JSON lines)."""

_TWINS = {"messages.csv": "messages.parquet", "events.jsonl": "events.parquet"}


@dataclass(frozen=True)
class _ClockSpec:
    start: datetime
    end: datetime
    timezone: str | None


@dataclass
class ReportData:
    """A results folder in memory: its analysis, and what the report shows beside it."""

    folder: Path
    analysis: Analysis
    thresholds: list[dict[str, Any]] | None = None
    start: datetime = field(default_factory=lambda: datetime(2000, 1, 1))

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The run's summary, as ``summary.json`` has it."""
        return self.analysis.summary()

    @cached_property
    def timeline(self) -> dict[str, Any]:
        """The run's incident document, as ``timeline.json`` has it."""
        return self.analysis.timeline_document()

    @property
    def records(self) -> Sequence[MessageRecord]:
        """The ledger rows."""
        return self.analysis.records

    @property
    def attempts(self) -> list[tuple[float, str]]:
        """``(t, server)`` of every SMTP session that reached a server."""
        return self.analysis.attempts_on_wire

    @property
    def name(self) -> str:
        """The scenario's name."""
        return self.analysis.name

    @property
    def end(self) -> float:
        """The clock's end in simulated seconds."""
        return self.analysis.end

    @property
    def servers(self) -> list[str]:
        """Server names, in scenario order."""
        return self.analysis.servers

    @property
    def groups(self) -> list[str]:
        """Sender group names, in scenario order (then any others found in the ledger)."""
        return self.analysis.groups

    def gives_up(self, group: str) -> float | None:
        """Seconds after which the group's policy bounces mail that never gets through."""
        return self.analysis.gives_up(group)

    @property
    def windows(self) -> list[tuple[str, float, float]]:
        """``(label, start, end)`` windows of submission time."""
        return [(w.label, w.start, w.end) for w in self.analysis.windows]

    @property
    def marks(self) -> list[dict[str, Any]]:
        """The timeline's marks as logged."""
        return list(self.analysis.marks)

    def intervals(self, kind: str = "states") -> dict[str, list[metrics.Interval]]:
        """Each server's listening (``states``) or disk (``disks``) state over time."""
        return self.analysis.intervals(kind)

    @property
    def horizon(self) -> float:
        """Where time axes end: a little after the last submission, delivery, bounce, relay hand-off or mark."""
        last = self.analysis.last_activity or self.end
        return min(self.end, last + 0.03 * max(last, 1.0))

    def when(self, t: float) -> datetime:
        """The scenario-clock time at simulated second *t* (naive, for plotting)."""
        when = self.start + timedelta(seconds=t)
        zone = self.analysis.facts.timezone
        if zone and when.tzinfo is not None:
            when = when.astimezone(ZoneInfo(zone))
        return when.replace(tzinfo=None)

    def short(self, t: float) -> str:
        """``10:38 10/26``: the post-mortem's way of writing a time."""
        return self.when(t).strftime("%H:%M %m/%d")

    def long(self, t: float) -> str:
        """``10:38 on 10/26``."""
        return self.when(t).strftime("%H:%M on %m/%d")

    def destination(self, record: MessageRecord) -> str:
        """The server a message was meant for (the analysis's routing)."""
        return self.analysis.destination(record)


def _seconds(start: datetime, text: str) -> float:
    return (datetime.fromisoformat(text) - start).total_seconds()


def _facts_without_timeline(
    summary: dict[str, Any], records: LedgerRows, fold: EventFold, start: datetime
) -> tuple[tuple[ServerFacts, ...], tuple[SenderFacts, ...], tuple[tuple[str, float, float], ...]]:
    """Servers, senders and windows of a folder that has no ``timeline.json``."""
    named: list[str] = list(fold.servers_seen)
    named += [r.accepted_by for r in records if r.accepted_by]
    names = list(dict.fromkeys(named)) or ["server"]
    domains = tuple(sorted({r.recipient.rpartition("@")[2].lower() for r in records}))
    servers = tuple(ServerFacts(n, domains, "up", 10 + i) for i, n in enumerate(names))
    groups = dict.fromkeys(r.group for r in records)
    policies = {r.group: r.policy for r in records}
    senders = tuple(SenderFacts(g, None, policies[g], None) for g in groups)
    windows = tuple(
        (w["label"], _seconds(start, w["from"]), _seconds(start, w["to"])) for w in summary.get("windows", [])
    )
    return servers, senders, windows


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a malformed results file into a ``ScenarioError`` naming it (no traceback)."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ScenarioError(
            [
                Problem(
                    str(path), None, "", f"not a results file smtp-outage wrote ({what[:120]}); run the scenario again"
                )
            ]
        ) from None


def _json(path: Path, kind: type) -> Any:
    """A JSON document of *kind* (``dict``), or a ``ScenarioError`` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError([Problem(str(path), None, "", f"cannot read the results: {exc}")]) from None
    if not isinstance(data, kind):
        raise ScenarioError(
            [Problem(str(path), None, "", f"not a results file smtp-outage wrote (not a JSON {kind.__name__})")]
        )
    return data


def load_results(folder: str | Path) -> ReportData:
    """Read a results folder written by ``smtp-outage run``.

    Raises ``ScenarioError`` (bad input) when a required file is missing or
    unreadable, or when the folder holds a run that is not complete.
    """
    folder = Path(folder)
    require_complete(folder, "a report")
    missing = [
        name for name in REQUIRED if not (folder / name).is_file() and not (folder / _TWINS.get(name, name)).is_file()
    ]
    if missing:
        raise ScenarioError(
            [
                Problem(
                    str(folder),
                    None,
                    "",
                    f"not a results folder: {', '.join(missing)} missing "
                    f"(run `smtp-outage run SCENARIO --out {folder}` first)",
                )
            ]
        )
    summary = _json(folder / "summary.json", dict)
    timeline_path = folder / "timeline.json"
    timeline = _json(timeline_path, dict) if timeline_path.is_file() else None
    with _reading(folder / "summary.json"):
        start = datetime.fromisoformat(summary["clock"]["start"])
        end = datetime.fromisoformat(summary["clock"]["end"])
    with _reading(timeline_path):
        zone = timeline["clock"].get("timezone") if timeline else None
        clock = SimClock(_ClockSpec(start, end, zone))
    ledger_file = folder / "messages.csv"
    if not ledger_file.is_file():
        ledger_file = folder / "messages.parquet"
    with _reading(ledger_file):
        ledger = read_ledger(ledger_file, start)
    records = LedgerRows(ledger)
    fold = EventFold()
    events_file = folder / "events.jsonl"
    if events_file.is_file():
        fold.read_jsonl(events_file)
    else:
        fold.read_parquet(folder / "events.parquet")
    # messages.csv has a bounce time only for mail whose final state is bounced; a message that
    # bounced after an accept-then-drop commit ends delivered, and left its sender's queue at the bounce.
    for message_id, t in fold.bounced.items():
        i = ledger.index_of(message_id)
        if i is not None and ledger.bounced_at[i] != ledger.bounced_at[i]:
            ledger.bounced_at[i] = t
    if timeline is not None:
        with _reading(timeline_path):
            servers = tuple(
                ServerFacts(
                    s["name"],
                    tuple(s.get("domains", [])),
                    s.get("initially", "up"),
                    int(s.get("preference", 10)),
                    bool(s.get("relay", False)),
                    s.get("delivery_per_minute"),
                )
                for s in timeline["servers"]
            )
            senders = tuple(
                SenderFacts(s["name"], s.get("count"), s.get("policy", ""), s.get("gives_up_after"))
                for s in timeline["senders"]
            )
            windows = tuple((w["label"], float(w["start"]), float(w["end"])) for w in timeline["windows"])
            declared = bool(timeline.get("windows_declared"))
            description = timeline.get("description") or ""
            sources = tuple(s for s in timeline.get("sources", []) if isinstance(s, dict))
    else:
        with _reading(folder / "summary.json"):
            servers, senders, windows = _facts_without_timeline(summary, records, fold, start)
        declared, description, sources = True, "", ()
    with _reading(folder / "summary.json"):
        facts = RunFacts(
            scenario=str(summary.get("scenario", folder.name)),
            seed=int(summary.get("seed", 0)),
            clock=clock,
            servers=servers,
            senders=senders,
            windows=windows,
            records=records,
            events=(),
            fold=fold,
            description=description,
            timezone=zone,
            windows_declared=declared,
            transport=str(summary.get("transport", "")),
            wall_seconds=float(summary.get("wall_seconds", 0.0)),
            notifications=int(summary.get("notifications", 0)),
            sources=sources,
            interrupted_by=str(summary.get("interrupted_by", "")),
            stopped_at=_seconds(start, summary["stopped_at"]) if summary.get("stopped_at") else None,
            live=summary.get("live"),
        )
    thresholds = None
    if (folder / "thresholds.json").is_file():
        with _reading(folder / "thresholds.json"):
            thresholds = _json(folder / "thresholds.json", dict).get("thresholds")
    return ReportData(folder, Analysis(facts), thresholds, start)
