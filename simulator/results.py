"""A run's flat records as data, the one writer and reader of ``messages.csv``, and a folder's status.

``RunResult`` is what the engine hands back: the ledger rows with their final
states, the typed events, the DSNs sent, and how the run went. It holds no
analysis: ``simulator.analysis`` computes every number from it, and
``simulator.api`` writes the results folder.

A results folder says in ``summary.json`` whether it holds a ``complete``
run, a ``partial`` one (interrupted) or one still ``running`` (or killed
before it could say more); ``require_complete`` is what every reader of a
folder's verdicts calls first. ``write_atomic`` replaces a file so that no
reader ever sees it half written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .clock import SimClock
from .errors import Problem, ScenarioError
from .events import Event, read_events
from .ledger import Ledger, LedgerBuilder, LedgerRows, MessageRecord
from .scenario import Scenario
from .schema.states import STATES

__all__ = [
    "RunResult",
    "MESSAGE_COLUMNS",
    "messages_csv",
    "write_messages",
    "read_messages",
    "read_ledger",
    "iter_messages",
    "ledger_rows",
    "write_notifications",
    "write_atomic",
    "folder_status",
    "require_complete",
]

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


@dataclass(repr=False)
class RunResult:
    """Everything a run produced: the ledger, events, DSNs. ``counts`` balanced when it was made.

    ``event_list`` holds the events when the run kept them in memory;
    a run that streamed them to a file has ``events_path`` instead, and
    ``events`` reads them back from it. ``notifications`` holds the DSNs when
    the run kept them (``notification_count`` says how many were sent).
    """

    scenario: Scenario
    seed: int
    clock: SimClock
    ledger: Ledger
    counts: Counter[str]
    event_list: list[Event] | None
    wall_seconds: float
    wire_seconds: float = 0.0
    batches: int = 0
    transport: str = "wire"
    notifications: list[Any] = field(default_factory=list)
    notification_count: int = 0
    policies: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    """Per sender group: its policy's label and when that policy gives up on mail that never gets through."""
    interrupted_by: str = ""
    """What stopped the run before the clock's end (``SIGINT``, ``SIGTERM``); empty for a complete run."""
    stopped_at: float | None = None
    """The simulated second an interrupted run stopped at."""
    live: dict[str, Any] | None = None
    """How a live run was served (``simulator.live``: speed, the wall-clock moment of second 0, ports)."""

    events_path: Path | None = None

    def __repr__(self) -> str:
        # Short on purpose: asyncio formats a finished task's result, and a ledger can hold a million rows.
        return f"<{type(self).__name__} {self.scenario.name} seed {self.seed}: {len(self.ledger)} messages>"

    @property
    def records(self) -> LedgerRows:
        """The ledger rows, as ``MessageRecord`` objects made when read."""
        return LedgerRows(self.ledger)

    @property
    def events(self) -> list[Event]:
        """The typed events, in the order they happened (read back from the file when they were streamed)."""
        if self.event_list is not None:
            return self.event_list
        if self.events_path is None:
            return []
        if self.events_path.suffix == ".parquet":
            from .records.parquet import iter_parquet_events

            return list(iter_parquet_events(self.events_path))
        return list(read_events(self.events_path))

    @property
    def status(self) -> str:
        """``complete``, or ``partial`` for an interrupted run."""
        return "partial" if self.interrupted_by else "complete"

    @property
    def messages(self) -> int:
        """Messages submitted."""
        return len(self.ledger)

    @property
    def attempts(self) -> int:
        """Delivery attempts, including those deferred without connecting."""
        return sum(self.ledger.attempts)

    @property
    def connections(self) -> int:
        """Attempts that reached the wire (real SMTP sessions or connects)."""
        return sum(self.ledger.connections)


def _rows(
    records: Iterable[MessageRecord], clock: SimClock, window_of: Callable[[float], str]
) -> Iterator[tuple[Any, ...]]:
    iso = clock.iso
    for r in records:
        yield (
            r.message_id,
            r.sender,
            r.policy,
            iso(r.submitted_at),
            r.final_state,
            iso(r.final_at),
            r.attempts,
            iso(r.accepted_at),
            r.accepted_by,
            r.copies,
            r.delay_warnings,
            r.group,
            r.originator,
            r.recipient,
            r.connections,
            r.bounce_status,
            r.bounce_reason,
            r.last_error,
            window_of(r.submitted_at),
        )


def ledger_rows(ledger: Ledger, clock: SimClock, window_of: Callable[[float], str]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``messages.csv`` straight from the ledger's columns, formatted as they are written."""
    iso = clock.iso
    texts = ledger.texts.items
    senders, servers = ledger.senders, ledger.servers
    states = STATES
    submitted, accepted_at, final_at = ledger.submitted, ledger.accepted_at, ledger.final_at
    for i in range(len(ledger)):
        sender = senders[ledger.mta[i]]
        at, accepted, final = submitted[i], accepted_at[i], final_at[i]
        by = ledger.accepted_by[i]
        yield (
            ledger.message_id(i),
            sender.name,
            sender.policy,
            iso(at),
            states[ledger.final_state[i]],
            "" if final != final else iso(final),
            ledger.attempts[i],
            "" if accepted != accepted else iso(accepted),
            servers[by] if by >= 0 else "",
            ledger.copies[i],
            ledger.warnings[i],
            sender.group,
            ledger.originator(i),
            ledger.recipient(i),
            ledger.connections[i],
            texts[ledger.bounce_status[i]],
            texts[ledger.bounce_reason[i]],
            texts[ledger.last_error[i]],
            window_of(at),
        )


def _any_rows(
    records: Ledger | Iterable[MessageRecord], clock: SimClock, window_of: Callable[[float], str]
) -> Iterator[tuple[Any, ...]]:
    if isinstance(records, Ledger):
        return ledger_rows(records, clock, window_of)
    return _rows(records, clock, window_of)


def messages_csv(records: Ledger | Iterable[MessageRecord], clock: SimClock, window_of: Callable[[float], str]) -> str:
    """The ledger as CSV text (deterministic: same scenario and seed, same bytes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MESSAGE_COLUMNS)
    writer.writerows(_any_rows(records, clock, window_of))
    return buf.getvalue()


def write_messages(
    path: Path, records: Ledger | Iterable[MessageRecord], clock: SimClock, window_of: Callable[[float], str]
) -> None:
    """Write ``messages.csv``, row by row (a ledger of any size in bounded memory)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MESSAGE_COLUMNS)
        writer.writerows(_any_rows(records, clock, window_of))


_MISSING = object()


def _seconds(start: datetime, text: str) -> float | None:
    if not text:
        return None
    return (datetime.fromisoformat(text) - start).total_seconds()


def read_messages(path: Path, start: datetime) -> list[MessageRecord]:
    """The ledger rows of a ``messages.csv``, times in simulated seconds from *start* (the clock's start)."""
    return list(iter_messages(path, start))


def read_ledger(path: Path, start: datetime, servers: Sequence[str] = ()) -> Ledger:
    """A ``messages.csv`` (or ``messages.parquet``) as the ledger's columns, read row by row in bounded memory."""
    builder = LedgerBuilder(servers)
    rows = iter_parquet_messages(path, start) if path.suffix == ".parquet" else iter_messages(path, start)
    for row in rows:
        builder.add(row)
    return builder.finish()


def iter_messages(path: Path, start: datetime) -> Iterator[MessageRecord]:
    """The ledger rows of a ``messages.csv``, one at a time (see ``read_messages``)."""
    cache: dict[str, float | None] = {}

    def seconds(text: str) -> float | None:
        found = cache.get(text, _MISSING)
        if found is _MISSING:
            found = _seconds(start, text)
            if len(cache) < 100_000:
                cache[text] = found
        return found  # type: ignore[return-value]

    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MESSAGE_COLUMNS[:11] if c not in (reader.fieldnames or [])]
        if missing:
            raise ScenarioError([Problem(str(path), 1, "", f"not a ledger: column(s) {', '.join(missing)} missing")])
        for row in reader:
            state = row["final_state"]
            if state not in STATES:
                raise ScenarioError(
                    [Problem(str(path), reader.line_num, "", f"unknown final_state {state!r} for {row['message_id']}")]
                )
            final_at = seconds(row["final_at"])
            yield (
                MessageRecord(
                    message_id=row["message_id"],
                    sender=row["sender"],
                    group=row.get("group") or row["policy"],
                    policy=row["policy"],
                    originator=row.get("originator", ""),
                    recipient=row.get("recipient", ""),
                    submitted_at=seconds(row["submitted_at"]) or 0.0,
                    attempts=int(row["attempts"] or 0),
                    connections=int(row.get("connections") or 0),
                    delay_warnings=int(row["delay_warnings"] or 0),
                    accepted_at=seconds(row["accepted_at"]),
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


def write_notifications(path: Path, notifications: Iterable[Any]) -> None:
    """Every delay warning and bounce as an mbox (envelope sender ``MAILER-DAEMON``: null)."""
    with path.open("wb") as fh:
        for note in notifications:
            fh.write(f"From MAILER-DAEMON {note.date}\n".encode())
            body = note.as_bytes().replace(b"\r\n", b"\n")
            for line in body.split(b"\n"):
                fh.write((b">" + line if line.startswith(b"From ") else line) + b"\n")
            fh.write(b"\n")


def iter_parquet_messages(path: Path, start: datetime) -> Iterator[MessageRecord]:
    """The ledger rows of a ``messages.parquet``, one batch at a time (see ``simulator.records.parquet``)."""
    from .records.parquet import iter_parquet_rows

    for row in iter_parquet_rows(path):
        yield _record_of(row, start, path, 0)


def _record_of(row: dict[str, Any], start: datetime, path: Path, line: int) -> MessageRecord:
    state = row["final_state"]
    if state not in STATES:
        raise ScenarioError(
            [Problem(str(path), line or None, "", f"unknown final_state {state!r} for {row['message_id']}")]
        )
    final_at = _seconds(start, row["final_at"] or "")
    return MessageRecord(
        message_id=row["message_id"],
        sender=row["sender"],
        group=row.get("group") or row["policy"],
        policy=row["policy"],
        originator=row.get("originator") or "",
        recipient=row.get("recipient") or "",
        submitted_at=_seconds(start, row["submitted_at"]) or 0.0,
        attempts=int(row["attempts"] or 0),
        connections=int(row.get("connections") or 0),
        delay_warnings=int(row["delay_warnings"] or 0),
        accepted_at=_seconds(start, row["accepted_at"] or ""),
        accepted_by=row["accepted_by"] or "",
        copies=int(row["copies"] or 0),
        bounced_at=final_at if state == "bounced" else None,
        bounce_status=row.get("bounce_status") or "",
        bounce_reason=row.get("bounce_reason") or "",
        last_error=row.get("last_error") or "",
        final_state=state,
        final_at=final_at,
    )


def write_atomic(path: Path, text: str) -> None:
    """Write *text* to *path* through a temporary file in the same folder and ``os.replace``."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def folder_status(folder: Path) -> dict[str, Any]:
    """``status`` (``complete``, ``partial`` or ``running``), ``interrupted_by`` and ``stopped_at`` of a
    results folder, from its ``summary.json``; an empty dict when it has none or cannot be read.

    A summary written before folders carried a status counts as ``complete``.
    """
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict):
        return {}
    status = {k: summary[k] for k in ("status", "interrupted_by", "stopped_at") if k in summary}
    status.setdefault("status", "complete")
    return status


def require_complete(folder: Path, needs: str) -> None:
    """Refuse (``ScenarioError``) a results *folder* whose run is not complete; *needs* says what wanted it."""
    status = folder_status(folder)
    state = status.get("status", "complete")
    if state == "complete":
        return
    if state == "partial":
        why = (
            f"holds a partial run (interrupted by {status.get('interrupted_by', '?')} "
            f"at {status.get('stopped_at', '?')})"
        )
    elif state == "running":
        why = "holds a run that has not finished (still running, or killed before it could finish)"
    else:
        why = f"holds a run whose status is {state!r}"
    raise ScenarioError(
        [
            Problem(
                str(folder / "summary.json"), None, "", f"the folder {why}; {needs} needs a complete run: run it again"
            )
        ]
    )
