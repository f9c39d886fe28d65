"""The library entry points; the CLI and the pytest plugin are thin clients of these.

``run_scenario`` replays a scenario and returns a ``Run``: the engine's
``RunResult`` (ledger rows, typed events, DSNs) with its ``Analysis``, from
which every number is read. ``write_results`` writes the results folder.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .analysis import Analysis, RunFacts, SenderFacts, ServerFacts, Window
from .engine import Progress, Replay
from .events import write_events
from .loader import load_scenario
from .results import RunResult, messages_csv, write_messages, write_notifications
from .scenario import Scenario
from .schema.incident import scenario_windows
from .thresholds import Outcome, evaluate, to_json

__all__ = [
    "Run",
    "run_scenario",
    "run_scenario_async",
    "facts_of",
    "write_results",
    "prepare_results",
    "write_summary",
    "OUTPUT_FILES",
]

OUTPUT_FILES = (
    "messages.csv",
    "summary.json",
    "events.jsonl",
    "timeline.json",
    "notifications.mbox",
    "thresholds.json",
)
"""The files a run writes into its results folder (``thresholds.json`` only when the scenario declares thresholds)."""

_REPORT_FILES = ("report.html", "timeline.png", "outcomes.png", "queue.png", "delays.png", "recovery.png")


def _report_files() -> tuple[str, ...]:
    try:
        from .report import FIGURES
    except ImportError:  # pragma: no cover - the report's own dependencies missing
        return _REPORT_FILES
    return ("report.html", *FIGURES)


def prepare_results(out_dir: str | Path, scenario_name: str, seed: int) -> Path:
    """Before a run: remove what an earlier run wrote into *out_dir* and mark the folder as holding a running run.

    Only the files this tool writes are removed (``OUTPUT_FILES``, ``report.html`` and the report's
    figures); ``summary.json`` then says ``{"scenario": ..., "seed": ..., "status": "running"}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*OUTPUT_FILES, *_report_files()):
        (out / name).unlink(missing_ok=True)
    _write_json(out / "summary.json", {"scenario": scenario_name, "seed": seed, "status": "running"})
    return out


def _write_json(path: Path, document: Mapping[str, Any], indent: int = 2) -> None:
    """Write *document* atomically: a temporary file in the same folder, then ``os.replace``."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(document, indent=indent) + "\n", encoding="utf-8")
    os.replace(temp, path)


def write_summary(run: Run, out_dir: str | Path, status: Mapping[str, Any] | None = None) -> Path:
    """Replace ``summary.json`` atomically with the run's summary and its status (``complete`` by default).

    A run stopped early passes ``{"status": "partial", "interrupted_by": ..., "stopped_at": ...}``.
    """
    path = Path(out_dir) / "summary.json"
    _write_json(path, {**run.analysis.summary(), **(status or {"status": "complete"})})
    return path


def facts_of(result: RunResult) -> RunFacts:
    """What the analysis of a finished run starts from."""
    scenario = result.scenario
    servers = tuple(
        ServerFacts(
            s.name,
            tuple(s.domains),
            s.initially,
            s.preference,
            s.relay is not None,
            s.delivery.per_minute if s.delivery is not None else None,
        )
        for s in scenario.servers
    )
    senders = tuple(SenderFacts(g.name, g.count, *result.policies.get(g.name, ("", None))) for g in scenario.senders)
    return RunFacts(
        scenario=scenario.name,
        seed=result.seed,
        clock=result.clock,
        servers=servers,
        senders=senders,
        windows=tuple(scenario_windows(scenario, result.clock)),
        records=result.records,
        events=result.events,
        description=scenario.description,
        timezone=scenario.clock.timezone,
        windows_declared=bool(scenario.windows),
        transport=result.transport,
        wall_seconds=result.wall_seconds,
        notifications=len(result.notifications),
        sources=tuple(source.model_dump(mode="json", exclude_none=True) for source in scenario.sources),
    )


@dataclass
class Run(RunResult):
    """A finished run: its records (``RunResult``) and, computed once on first use, their ``analysis``."""

    @classmethod
    def of(cls, result: RunResult) -> Run:
        """Wrap the engine's result."""
        return cls(**{name: getattr(result, name) for name in RunResult.__dataclass_fields__})

    @cached_property
    def analysis(self) -> Analysis:
        """Every number of the run, computed once."""
        return Analysis(facts_of(self))

    @property
    def windows(self) -> list[Window]:
        """The windows of submission time with the states of their mail."""
        return self.analysis.windows

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return self.analysis.summary()

    def thresholds(self) -> list[Outcome]:
        """The scenario's thresholds checked against this run."""
        return evaluate(self.scenario, self.analysis)

    def messages_csv(self) -> str:
        """``messages.csv`` as text."""
        return messages_csv(self.records, self.clock, self.analysis.window_of)

    def write(self, out_dir: str | Path) -> Path:
        """Write the results folder (see ``write_results``)."""
        return write_results(self, out_dir)


def write_results(run: Run, out_dir: str | Path, status: Mapping[str, Any] | None = None) -> Path:
    """Write ``messages.csv``, ``summary.json``, ``events.jsonl``, ``notifications.mbox``, ``timeline.json``
    (and ``thresholds.json``) into *out_dir*; ``summary.json`` last, atomically, with its *status*
    (``"status": "complete"`` by default; see ``write_summary``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a = run.analysis
    write_messages(out / "messages.csv", run.records, run.clock, a.window_of)
    write_events(out / "events.jsonl", run.events)
    write_notifications(out / "notifications.mbox", run.notifications)
    (out / "timeline.json").write_text(json.dumps(a.timeline_document(), indent=1) + "\n", encoding="utf-8")
    thresholds = out / "thresholds.json"
    if run.scenario.thresholds:
        document = {"scenario": run.scenario.name, "thresholds": to_json(run.thresholds())}
        thresholds.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    elif thresholds.exists():
        thresholds.unlink()  # an earlier run's verdicts are not this run's
    write_summary(run, out, status)
    return out


async def run_scenario_async(
    scenario: Scenario | str | Path,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    transport: str = "wire",
    progress: Progress | None = None,
) -> Run:
    """Replay *scenario* (a ``Scenario`` or a path to a YAML file) inside a running event loop.

    *seed* overrides the scenario's seed; *out*, when given, receives the
    results folder. *transport* is ``"wire"`` (real SMTP on loopback, the
    default) or ``"memory"``. A ``Scenario`` built in code is validated
    exactly as a file is (``ScenarioError`` for bad input).
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, seed=seed)
    else:
        _check(scenario)
    result = await Replay(scenario, seed=seed, transport=transport, progress=progress).run()
    run = Run.of(result)
    if out is not None:
        write_results(run, out)
    return run


def _check(scenario: Scenario) -> None:
    """Validate a scenario built in code as the loader validates a file."""
    from .errors import ScenarioError
    from .schema.validate import validate

    problems = validate(scenario)
    if problems:
        raise ScenarioError(problems)


def run_scenario(
    scenario: Scenario | str | Path,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    transport: str = "wire",
    progress: Progress | None = None,
) -> Run:
    """Replay *scenario* on a fresh event loop and return its ``Run``.

    Raises ``ScenarioError`` for bad input and ``RunError`` when the run fails
    (including a ledger that does not balance).
    """
    return asyncio.run(run_scenario_async(scenario, seed=seed, out=out, transport=transport, progress=progress))
