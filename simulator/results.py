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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .clock import SimClock
from .errors import Problem, ScenarioError
from .events import Event
from .ledger import MessageRecord
from .scenario import Scenario
from .schema.states import STATES

__all__ = [
    "RunResult",
    "MESSAGE_COLUMNS",
    "messages_csv",
    "write_messages",
    "read_messages",
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


@dataclass
class RunResult:
    """Everything a run produced: ledger rows, events, DSNs. ``counts`` balanced when it was made."""

    scenario: Scenario
    seed: int
    clock: SimClock
    records: list[MessageRecord]
    counts: Counter[str]
    events: list[Event]
    wall_seconds: float
    wire_seconds: float = 0.0
    batches: int = 0
    transport: str = "wire"
    notifications: list[Any] = field(default_factory=list)
    policies: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    """Per sender group: its policy's label and when that policy gives up on mail that never gets through."""
    interrupted_by: str = ""
    """What stopped the run before the clock's end (``SIGINT``, ``SIGTERM``); empty for a complete run."""
    stopped_at: float | None = None
    """The simulated second an interrupted run stopped at."""
    live: dict[str, Any] | None = None
    """How a live run was served (``simulator.live``: speed, the wall-clock moment of second 0, ports)."""

    @property
    def status(self) -> str:
        """``complete``, or ``partial`` for an interrupted run."""
        return "partial" if self.interrupted_by else "complete"

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


def messages_csv(records: Iterable[MessageRecord], clock: SimClock, window_of: Callable[[float], str]) -> str:
    """The ledger as CSV text (deterministic: same scenario and seed, same bytes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MESSAGE_COLUMNS)
    writer.writerows(_rows(records, clock, window_of))
    return buf.getvalue()


def write_messages(
    path: Path, records: Iterable[MessageRecord], clock: SimClock, window_of: Callable[[float], str]
) -> None:
    """Write ``messages.csv``."""
    path.write_text(messages_csv(records, clock, window_of), encoding="utf-8")


def _seconds(start: datetime, text: str) -> float | None:
    if not text:
        return None
    return (datetime.fromisoformat(text) - start).total_seconds()


def read_messages(path: Path, start: datetime) -> list[MessageRecord]:
    """The ledger rows of a ``messages.csv``, times in simulated seconds from *start* (the clock's start)."""
    out = []
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
            final_at = _seconds(start, row["final_at"])
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


def write_notifications(path: Path, notifications: Iterable[Any]) -> None:
    """Every delay warning and bounce as an mbox (envelope sender ``MAILER-DAEMON``: null)."""
    with path.open("wb") as fh:
        for note in notifications:
            fh.write(f"From MAILER-DAEMON {note.message['Date']}\n".encode())
            body = note.message.as_bytes().replace(b"\r\n", b"\n")
            for line in body.split(b"\n"):
                fh.write((b">" + line if line.startswith(b"From ") else line) + b"\n")
            fh.write(b"\n")


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
