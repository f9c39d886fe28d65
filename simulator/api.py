"""The library entry points; the CLI and the pytest plugin are thin clients of these.

``run_scenario`` replays a scenario and returns a ``Run``: the engine's
``RunResult`` (ledger rows, typed events, DSNs) with its ``Analysis``, from
which every number is read. ``write_results`` writes the results folder.

A results folder only ever holds one run, complete or visibly not:

1. ``prepare_results`` (before the run starts) removes every file the tool
   writes there (``OUTPUT_FILES`` and ``REPORT_FILES``, nothing else) and
   writes ``summary.json`` as ``{"scenario", "seed", "status": "running"}``;
2. during a run, streaming writers may write the event and message files;
3. ``write_results`` writes the final files, then replaces ``summary.json``
   atomically, last of all, with ``"status": "complete"``, or ``"partial"``
   with ``interrupted_by`` and ``stopped_at`` for an interrupted run
   (``Interrupt``);
4. whatever reads a folder's verdicts (the report, thresholds, the golden
   comparison) refuses one that is not complete
   (``simulator.results.require_complete``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .analysis import Analysis, EventFold, RunFacts, SenderFacts, ServerFacts, Window
from .dsn import Notification
from .engine import Interrupt, Progress, Replay
from .errors import Problem, ScenarioError
from .events import EventSink, EventWriter, write_events
from .loader import load_scenario
from .results import (
    MESSAGE_COLUMNS,
    RunResult,
    ledger_rows,
    messages_csv,
    write_atomic,
    write_messages,
    write_notifications,
)
from .scenario import Scenario
from .schema.incident import scenario_windows
from .thresholds import Outcome, evaluate, to_json

__all__ = [
    "Run",
    "run_scenario",
    "run_scenario_async",
    "facts_of",
    "prepare_results",
    "write_results",
    "Interrupt",
    "OUTPUT_FILES",
    "REPORT_FILES",
    "FORMATS",
]

OUTPUT_FILES = (
    "messages.csv",
    "messages.parquet",
    "summary.json",
    "events.jsonl",
    "events.parquet",
    "timeline.json",
    "notifications.mbox",
    "thresholds.json",
)
"""The files a run writes into its results folder (``thresholds.json`` only when the scenario declares thresholds;
the ``.parquet`` files with ``formats="parquet"`` or ``"both"``)."""

FORMATS = ("csv", "parquet", "both")
"""``formats``: ``csv`` writes ``messages.csv`` and ``events.jsonl``, ``parquet`` their Parquet twins, ``both`` all four."""

REPORT_FILES = ("report.html", "timeline.png", "outcomes.png", "queue.png", "delays.png", "recovery.png")
"""The files ``smtp-outage report`` writes there (``report.html`` and ``simulator.report.FIGURES``)."""


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
        events=result.event_list if result.event_list is not None else (),
        fold=result.fold if isinstance(result, Run) else None,  # a streamed run's events, already folded
        description=scenario.description,
        timezone=scenario.clock.timezone,
        windows_declared=bool(scenario.windows),
        transport=result.transport,
        wall_seconds=result.wall_seconds,
        notifications=result.notification_count,
        interrupted_by=result.interrupted_by,
        stopped_at=result.stopped_at,
        live=result.live,
        sources=tuple(source.model_dump(mode="json", exclude_none=True) for source in scenario.sources),
    )


@dataclass(repr=False)
class Run(RunResult):
    """A finished run: its records (``RunResult``) and, computed once on first use, their ``analysis``."""

    fold: EventFold | None = field(default=None, compare=False)
    """The events folded as they streamed to the results folder (``None``: the run kept them in memory)."""

    @classmethod
    def of(cls, result: RunResult, fold: EventFold | None = None) -> Run:
        """Wrap the engine's result."""
        return cls(**{name: getattr(result, name) for name in RunResult.__dataclass_fields__}, fold=fold)

    @cached_property
    def analysis(self) -> Analysis:
        """Every number of the run, computed once."""
        return Analysis(facts_of(self))

    @property
    def windows(self) -> list[Window]:
        """The windows of submission time with the states of their mail."""
        return self.analysis.windows

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``, with the run's ``status`` (and, when partial, why and when it stopped)."""
        return self.analysis.summary()

    def thresholds(self) -> list[Outcome]:
        """The scenario's thresholds checked against this run (a complete run: ``ScenarioError`` otherwise)."""
        if self.interrupted_by:
            stopped = self.clock.iso(self.stopped_at)
            raise ScenarioError(
                [
                    Problem(
                        f"<run {self.scenario.name}>",
                        None,
                        "",
                        f"the run is partial (interrupted by {self.interrupted_by} at {stopped}); "
                        "thresholds need a complete run",
                    )
                ]
            )
        return evaluate(self.scenario, self.analysis)

    def messages_csv(self) -> str:
        """``messages.csv`` as text."""
        return messages_csv(self.ledger, self.clock, self.analysis.window_of)

    def write(self, out_dir: str | Path, formats: str = "csv") -> Path:
        """Write the results folder (see ``write_results``)."""
        return write_results(self, out_dir, formats)


def _bad_folder(out: Path, why: str) -> ScenarioError:
    return ScenarioError([Problem(str(out), None, "", f"cannot use this as the results folder: {why}")])


def prepare_results(out_dir: str | Path, scenario_name: str, seed: int) -> Path:
    """Make *out_dir* ready for a run, before it starts (step 1 of the folder's lifecycle, see above).

    Removes the files the tool writes there (``OUTPUT_FILES``, ``REPORT_FILES``)
    and nothing else, and writes ``summary.json`` with ``"status": "running"``.
    A folder that cannot be made, or written, is bad input (``ScenarioError``):
    found before the run, not after it.
    """
    out = Path(out_dir)
    if not str(out_dir).strip():
        raise _bad_folder(out, "the name is empty; give a folder such as results/my-run")
    try:
        if out.exists() and not out.is_dir():
            raise _bad_folder(out, "it is a file, not a folder; choose another --out or remove the file")
        out.mkdir(parents=True, exist_ok=True)
        for name in (*OUTPUT_FILES, *REPORT_FILES):
            path = out / name
            if path.is_dir() and not path.is_symlink():
                raise _bad_folder(out, f"{name} in it is a folder; remove it or choose another --out")
            path.unlink(missing_ok=True)
        running = {"scenario": scenario_name, "seed": seed, "status": "running"}
        write_atomic(out / "summary.json", json.dumps(running, indent=2) + "\n")
    except OSError as exc:
        raise _bad_folder(out, exc.strerror or str(exc)) from None
    return out


def _document(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def write_results(run: Run, out_dir: str | Path, formats: str = "csv") -> Path:
    """Write ``messages.csv``, ``events.jsonl``, ``notifications.mbox``, ``timeline.json`` (and
    ``thresholds.json``) into *out_dir*, then ``summary.json``, atomically and last of all.

    A partial run gets no ``thresholds.json``; report files beside the data
    are removed (the report is drawn from a complete folder afterwards).
    Events and notifications that the run streamed into the folder are not
    written again. *formats* (``FORMATS``) chooses CSV/JSON lines, Parquet or
    both for the ledger and the events.
    """
    if formats not in FORMATS:
        raise ValueError(f"formats is one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a = run.analysis
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)  # drawn from an earlier run
    if formats in ("csv", "both"):
        write_messages(out / "messages.csv", run.ledger, run.clock, a.window_of)
    if formats in ("parquet", "both"):
        from .records.parquet import write_messages_parquet

        rows = ledger_rows(run.ledger, run.clock, a.window_of)
        write_messages_parquet(out / "messages.parquet", MESSAGE_COLUMNS, rows)
    if run.event_list is not None:
        if formats in ("csv", "both"):
            write_events(out / "events.jsonl", run.event_list)
        if formats in ("parquet", "both"):
            from .records.parquet import ParquetEventWriter

            writer = ParquetEventWriter(out / "events.parquet")
            for event in run.event_list:
                writer.emit(event)
            writer.close()
        write_notifications(out / "notifications.mbox", run.notifications)
    (out / "timeline.json").write_text(json.dumps(a.timeline_document(), indent=1) + "\n", encoding="utf-8")
    thresholds = out / "thresholds.json"
    if run.scenario.thresholds and not run.interrupted_by:
        document = {"scenario": run.scenario.name, "thresholds": to_json(run.thresholds())}
        thresholds.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    else:
        thresholds.unlink(missing_ok=True)  # an earlier run's verdicts are not this run's
    write_atomic(out / "summary.json", _document(run.summary()))
    return out


class _Mbox:
    """Writes each DSN into ``notifications.mbox`` as it is made."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb", buffering=1 << 16)

    def add(self, note: Notification) -> None:
        """Append one notification."""
        self._fh.write(f"From MAILER-DAEMON {note.date}\n".encode())
        for line in note.as_bytes().replace(b"\r\n", b"\n").split(b"\n"):
            self._fh.write((b">" + line if line.startswith(b"From ") else line) + b"\n")
        self._fh.write(b"\n")

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()


async def run_scenario_async(
    scenario: Scenario | str | Path,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    transport: str = "wire",
    progress: Progress | None = None,
    interrupt: Interrupt | None = None,
    formats: str = "csv",
) -> Run:
    """Replay *scenario* (a ``Scenario`` or a path to a YAML file) inside a running event loop.

    *seed* overrides the scenario's seed; *out*, when given, receives the
    results folder (made ready before the run: ``prepare_results``).
    *transport* is ``"wire"`` (real SMTP on loopback, the default) or
    ``"memory"``. A ``Scenario`` built in code is validated exactly as a
    file is (``ScenarioError`` for bad input). An *interrupt* that is
    requested during the run stops it at the end of the current simulated
    instant: the ``Run`` (and the folder) is then partial.

    With *out*, events and notifications stream into the folder as they
    happen (nothing of them is kept in memory) and the ledger is written at
    the end (*formats*: ``FORMATS``).
    """
    if formats not in FORMATS:
        raise ValueError(f"formats is one of {', '.join(FORMATS)}")
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, seed=seed)
    else:
        _check(scenario)
    if out is None:
        result = await Replay(scenario, seed=seed, transport=transport, progress=progress, interrupt=interrupt).run()
        return Run.of(result)
    folder = prepare_results(out, scenario.name, scenario.seed if seed is None else seed)
    fold = EventFold()
    sink: EventSink = fold
    closers: list[Callable[[], None]] = []
    if formats in ("parquet", "both"):
        from .records.parquet import ParquetEventWriter

        parquet = ParquetEventWriter(folder / "events.parquet", then=sink)
        sink = parquet
        closers.append(parquet.close)
    if formats in ("csv", "both"):
        jsonl = EventWriter(folder / "events.jsonl", then=sink)
        sink = jsonl
        closers.append(jsonl.close)
    mbox = _Mbox(folder / "notifications.mbox")
    closers.append(mbox.close)
    try:
        replay = Replay(
            scenario, seed=seed, transport=transport, progress=progress, interrupt=interrupt, sink=sink, notes=mbox.add
        )
        result = await replay.run()
    finally:
        for close in closers:
            close()
    result.events_path = folder / ("events.jsonl" if formats in ("csv", "both") else "events.parquet")
    fold.source = result.events_path
    run = Run.of(result, fold)
    write_results(run, folder, formats)
    return run


def _check(scenario: Scenario) -> None:
    """Validate a scenario built in code as the loader validates a file (once: a loaded one is not read again)."""
    from .schema.validate import validate

    if scenario.validated:
        return
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
    interrupt: Interrupt | None = None,
    formats: str = "csv",
) -> Run:
    """Replay *scenario* on a fresh event loop and return its ``Run`` (see ``run_scenario_async``).

    Raises ``ScenarioError`` for bad input and ``RunError`` when the run fails
    (including a ledger that does not balance).
    """
    return asyncio.run(
        run_scenario_async(
            scenario,
            seed=seed,
            out=out,
            transport=transport,
            progress=progress,
            interrupt=interrupt,
            formats=formats,
        )
    )
