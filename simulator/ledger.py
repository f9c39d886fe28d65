"""Runtime message records and the final ledger.

Every submitted message ends in exactly one of five states:

``delivered``  in the mail store of a server whose disk is live at the end
``stranded``   the sender got a 250, but the only copy is on a failed disk
``lost``       accepted, and every copy is destroyed
``bounced``    the sender gave up (retry lifetime exceeded, or a 5xx)
``queued``     still in a sender's queue when the run ends (a backup MX's queue included, and a
               receiving server's delivery queue: accepted, not yet readable in a mailbox)

``finalize`` assigns the states and checks conservation; a run whose states
do not add up fails with ``ConservationError``. ``Ledger`` keeps the same
facts as columns (a few numbers per message) for runs of any size, and
``LedgerRows`` reads it back as ``MessageRecord`` rows.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from .errors import ConservationError
from .schema.states import STATES
from .store import Holding

__all__ = [
    "STATES",
    "MessageRecord",
    "finalize",
    "Ledger",
    "LedgerRows",
    "LedgerBuilder",
    "Sender",
    "as_numpy",
    "Texts",
    "NOT_YET",
]


@dataclass(slots=True)
class MessageRecord:
    """One message's life, filled in by the engine as it happens."""

    message_id: str
    sender: str  #: the sending MTA, e.g. "postfix-03"
    group: str  #: the sender group's name
    policy: str  #: the retry policy's name
    originator: str
    recipient: str
    submitted_at: float
    attempts: int = 0
    connections: int = 0
    delay_warnings: int = 0
    accepted_at: float | None = None
    accepted_by: str = ""
    copies: int = (
        0  #: accepted copies its reader gets; a backup MX's copy counts until it is passed on (>1: duplicates)
    )
    bounced_at: float | None = None
    bounce_status: str = ""
    bounce_reason: str = ""
    last_error: str = ""
    final_state: str = ""
    final_at: float | None = None


def finalize(records: list[MessageRecord], holdings: dict[str, Holding], submitted: int) -> Counter[str]:
    """Assign each record its final state; check that nothing is lost or double-counted."""
    known = {r.message_id for r in records}
    strangers = sorted(set(holdings) - known)
    if strangers:
        raise ConservationError(f"mail stores hold {len(strangers)} unknown message(s), e.g. {strangers[0]}")
    for r in records:
        held = holdings.get(r.message_id)
        if r.accepted_at is not None and held is None and r.bounced_at is None:
            # (a backup MX that accepted a message and then gave up on it holds no copy: it bounced)
            raise ConservationError(f"{r.message_id} got a 250 from {r.accepted_by} but no store ever held it")
        if held is not None:
            r.final_state, r.final_at = held.state, (None if held.state == "queued" else held.since)
        elif r.bounced_at is not None:
            r.final_state, r.final_at = "bounced", r.bounced_at
        else:
            r.final_state, r.final_at = "queued", None
    counts = Counter(dict.fromkeys(STATES, 0))
    counts.update(r.final_state for r in records)
    if len(known) != len(records) or sum(counts.values()) != submitted or len(counts) != len(STATES):
        raise ConservationError(
            f"final states add up to {sum(counts.values())} for {submitted} messages submitted ({dict(counts)})"
        )
    return counts


def as_numpy(column: array[Any], dtype: Any) -> Any:
    """A numpy view of an ``array.array`` column (no copy)."""
    import numpy as np

    if not len(column):
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(column, dtype=dtype)


class Texts:
    """Interned strings (errors, bounce reasons): each distinct text stored once, referred to by number."""

    __slots__ = ("_index", "items")

    def __init__(self) -> None:
        self.items: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def number(self, text: str) -> int:
        """The number of *text*, adding it the first time."""
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.items)
            self.items.append(text)
        return found


@dataclass(frozen=True, slots=True)
class Sender:
    """A sending MTA as the ledger names it."""

    name: str
    group: str
    policy: str
    domain: str  #: where its mail goes


NOT_YET = math.nan
"""A time column's value for "never" (no 250, no bounce, still queued)."""


class Ledger:
    """The run's ledger as columns: a few numbers per message, indexed by submission order.

    Message *i* (0-based) is ``m{i+1}`` zero-padded to ``width`` digits; its
    sender, group, policy and recipient domain come from ``senders[mta[i]]``,
    its recipient's local part from ``locals[rcpt[i]]``. Times are simulated
    seconds, ``nan`` for none; texts (last error, bounce status and reason)
    are numbers into ``texts``; ``accepted_by`` is a number into ``servers``
    (-1 for none). ``final_state`` (a number into ``STATES``) and ``final_at``
    are set by ``finalize``. ``record(i)`` and ``rows()`` give ``MessageRecord``
    rows one at a time, for readers that want rows.
    """

    def __init__(
        self,
        submitted: array[float],
        mta: array[int],
        rcpt: array[int],
        senders: list[Sender],
        locals_: list[str],
        servers: list[str],
    ) -> None:
        n = len(submitted)
        self.width = max(6, len(str(n)))
        self.submitted = submitted
        self.mta = mta
        self.rcpt = rcpt
        self.senders = senders
        self.locals = locals_
        self.servers = servers
        self.texts = Texts()
        zeros = bytes(4 * n)
        self.attempts = array("i", zeros)
        self.connections = array("i", zeros)
        self.warnings = array("i", zeros)
        self.copies = array("i", zeros)
        self.last_error = array("i", zeros)
        self.bounce_status = array("i", zeros)
        self.bounce_reason = array("i", zeros)
        nans = array("d", [NOT_YET]) * n
        self.accepted_at = nans
        self.bounced_at = array("d", nans)
        self.final_at = array("d", nans)
        self.accepted_by = array("b", [-1]) * n
        self.final_state = array("b", [-1]) * n
        self._server_number = {name: i for i, name in enumerate(servers)}
        #: ids and addresses read from a file that does not follow the engine's naming (else ``None``)
        self.explicit: tuple[list[str], list[str], list[str]] | None = None
        self._explicit_index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.submitted)

    # ------------------------------------------------------------------ names
    def message_id(self, i: int) -> str:
        """The message's id: ``m`` and its number, zero-padded."""
        if self.explicit is not None:
            return self.explicit[0][i]
        return f"m{i + 1:0{self.width}d}"

    def index_of(self, message_id: str) -> int | None:
        """The row of *message_id*, or ``None`` for an id this ledger never issued."""
        if self.explicit is not None:
            return self._explicit_index.get(message_id)
        digits = message_id[1:]
        if message_id[:1] != "m" or len(digits) != self.width or not digits.isdigit():
            return None
        i = int(digits) - 1
        return i if 0 <= i < len(self.submitted) else None

    def originator(self, i: int) -> str:
        """The envelope sender of message *i*."""
        if self.explicit is not None:
            return self.explicit[1][i]
        return f"{self.locals[self.rcpt[i]].replace('user', 'sender')}@{self.senders[self.mta[i]].name}.example"

    def recipient(self, i: int) -> str:
        """The envelope recipient of message *i*."""
        if self.explicit is not None:
            return self.explicit[2][i]
        return f"{self.locals[self.rcpt[i]]}@{self.senders[self.mta[i]].domain}"

    def server_number(self, name: str) -> int:
        """The number of server *name* in ``accepted_by`` (added to ``servers`` the first time)."""
        found = self._server_number.get(name)
        if found is None:
            found = self._server_number[name] = len(self.servers)
            self.servers.append(name)
        return found

    def group_of(self) -> list[str]:
        """The sender group of each entry of ``senders``."""
        return [s.group for s in self.senders]

    # ------------------------------------------------------------------ rows
    def record(self, i: int) -> MessageRecord:
        """Message *i* as a ``MessageRecord``."""
        sender = self.senders[self.mta[i]]
        texts = self.texts.items
        state = self.final_state[i]
        return MessageRecord(
            message_id=self.message_id(i),
            sender=sender.name,
            group=sender.group,
            policy=sender.policy,
            originator=self.originator(i),
            recipient=self.recipient(i),
            submitted_at=self.submitted[i],
            attempts=self.attempts[i],
            connections=self.connections[i],
            delay_warnings=self.warnings[i],
            accepted_at=_time(self.accepted_at[i]),
            accepted_by=self.servers[self.accepted_by[i]] if self.accepted_by[i] >= 0 else "",
            copies=self.copies[i],
            bounced_at=_time(self.bounced_at[i]),
            bounce_status=texts[self.bounce_status[i]],
            bounce_reason=texts[self.bounce_reason[i]],
            last_error=texts[self.last_error[i]],
            final_state=STATES[state] if state >= 0 else "",
            final_at=_time(self.final_at[i]),
        )

    def rows(self) -> Iterator[MessageRecord]:
        """Every message as a ``MessageRecord``, in submission order, one at a time."""
        for i in range(len(self.submitted)):
            yield self.record(i)

    # ------------------------------------------------------------------ the end
    def truncate(self, n: int) -> None:
        """Keep only the first *n* messages (an interrupted run: those submitted by the time it stopped)."""
        for name in (
            "submitted",
            "mta",
            "rcpt",
            "attempts",
            "connections",
            "warnings",
            "copies",
            "last_error",
            "bounce_status",
            "bounce_reason",
            "accepted_at",
            "bounced_at",
            "final_at",
            "accepted_by",
            "final_state",
        ):
            column = getattr(self, name)
            setattr(self, name, column[:n])

    def finalize(self, holdings: dict[str, Holding]) -> Counter[str]:
        """Assign each message its final state; check that nothing is lost or double-counted."""
        n = len(self.submitted)
        held: dict[int, Holding] = {}
        for message_id, holds in holdings.items():
            i = self.index_of(message_id)
            if i is None:
                raise ConservationError(f"mail stores hold an unknown message, e.g. {message_id}")
            held[i] = holds
        number = {state: k for k, state in enumerate(STATES)}
        bounced, queued = number["bounced"], number["queued"]
        accepted_at, bounced_at = self.accepted_at, self.bounced_at
        final_state, final_at = self.final_state, self.final_at
        for i in range(n):
            holding = held.get(i)
            if holding is not None:
                final_state[i] = number[holding.state]
                final_at[i] = NOT_YET if holding.state == "queued" else holding.since
            elif accepted_at[i] == accepted_at[i] and bounced_at[i] != bounced_at[i]:
                # a 250 with no stored copy (a backup MX that accepted a message and then gave up on it
                # holds no copy: it bounced)
                by = self.servers[self.accepted_by[i]] if self.accepted_by[i] >= 0 else "?"
                raise ConservationError(f"{self.message_id(i)} got a 250 from {by} but no store ever held it")
            elif bounced_at[i] == bounced_at[i]:
                final_state[i], final_at[i] = bounced, bounced_at[i]
            else:
                final_state[i] = queued
        counts = Counter(dict.fromkeys(STATES, 0))
        for k, state in enumerate(STATES):
            counts[state] = final_state.count(k)
        if sum(counts.values()) != n:
            raise ConservationError(f"final states add up to {sum(counts.values())} for {n} messages submitted")
        return counts


class LedgerBuilder:
    """Builds a ``Ledger`` row by row (from a ``messages.csv`` or ``MessageRecord`` objects), without keeping rows."""

    def __init__(self, servers: Sequence[str] = ()) -> None:
        self.submitted: array[float] = array("d")
        self.mta: array[int] = array("i")
        self.rcpt: array[int] = array("i")
        self._senders: dict[Sender, int] = {}
        self._locals: dict[str, int] = {}
        self._servers = list(servers)
        self._rows: list[array[Any]] = []
        self._ids: list[str] = []
        self._originators: list[str] = []
        self._recipients: list[str] = []
        self._texts = Texts()
        self._cols: dict[str, array[Any]] = {
            name: array(code)
            for name, code in (
                ("attempts", "i"),
                ("connections", "i"),
                ("warnings", "i"),
                ("copies", "i"),
                ("last_error", "i"),
                ("bounce_status", "i"),
                ("bounce_reason", "i"),
                ("accepted_at", "d"),
                ("bounced_at", "d"),
                ("final_at", "d"),
                ("accepted_by", "b"),
                ("final_state", "b"),
            )
        }
        self._state_number = {state: k for k, state in enumerate(STATES)}
        #: the digits of the ids so far while every row is named as the engine names them (else None)
        self._width: int | None = -1

    def add(self, r: MessageRecord) -> None:
        """Append one row."""
        local, _, domain = r.recipient.rpartition("@")
        sender = Sender(r.sender, r.group, r.policy, domain.lower() if local else "")
        k = self._senders.setdefault(sender, len(self._senders))
        self.submitted.append(r.submitted_at)
        self.mta.append(k)
        self.rcpt.append(self._locals.setdefault(local if local else r.recipient, len(self._locals)))
        self._names(r, sender, local)
        c, texts = self._cols, self._texts
        c["attempts"].append(r.attempts)
        c["connections"].append(r.connections)
        c["warnings"].append(r.delay_warnings)
        c["copies"].append(r.copies)
        c["last_error"].append(texts.number(r.last_error))
        c["bounce_status"].append(texts.number(r.bounce_status))
        c["bounce_reason"].append(texts.number(r.bounce_reason))
        c["accepted_at"].append(NOT_YET if r.accepted_at is None else r.accepted_at)
        c["bounced_at"].append(NOT_YET if r.bounced_at is None else r.bounced_at)
        c["final_at"].append(NOT_YET if r.final_at is None else r.final_at)
        if r.accepted_by and r.accepted_by not in self._servers:
            self._servers.append(r.accepted_by)
        c["accepted_by"].append(self._servers.index(r.accepted_by) if r.accepted_by else -1)
        c["final_state"].append(self._state_number.get(r.final_state, -1))

    def _names(self, r: MessageRecord, sender: Sender, local: str) -> None:
        """Keep the row's id and addresses only once a row does not follow the engine's naming.

        Rows named as the engine names them (``m`` and the row's number, all of one width; the
        originator and recipient made from the recipient's local part) keep nothing: a million rows
        read back hold no strings. The first row that differs makes the builder keep them all.
        """
        n = len(self.submitted)  # this row's number, counting from 1
        if self._width == -1:  # the first row says the width
            self._width = len(r.message_id) - 1
        if self._width is not None:
            digits = r.message_id[1:]
            named = (
                r.message_id[:1] == "m"
                and digits.isdigit()
                and len(digits) == self._width
                and int(digits) == n
                and r.recipient == f"{local}@{sender.domain}"
                and r.originator == f"{local.replace('user', 'sender')}@{sender.name}.example"
            )
            if named:
                return
            # Back-fill what the rows so far were (named as the engine names them), then keep every name.
            senders, locals_ = list(self._senders), list(self._locals)
            for i in range(n - 1):
                back_sender = senders[self.mta[i]]
                back_local = locals_[self.rcpt[i]]
                self._ids.append(f"m{i + 1:0{self._width}d}")
                self._originators.append(f"{back_local.replace('user', 'sender')}@{back_sender.name}.example")
                self._recipients.append(f"{back_local}@{back_sender.domain}")
            self._width = None
        self._ids.append(r.message_id)
        self._originators.append(r.originator)
        self._recipients.append(r.recipient)

    def finish(self) -> Ledger:
        """The ledger of the rows added."""
        ledger = Ledger(self.submitted, self.mta, self.rcpt, list(self._senders), list(self._locals), self._servers)
        for name, column in self._cols.items():
            setattr(ledger, name, column)
        ledger.texts = self._texts
        if self._width is not None and self._width != ledger.width:
            # every row was named alike, but not at the width a ledger of this size uses
            self._ids = [f"m{i + 1:0{self._width}d}" for i in range(len(ledger))]
            self._originators = [ledger.originator(i) for i in range(len(ledger))]
            self._recipients = [ledger.recipient(i) for i in range(len(ledger))]
            self._width = None
        if self._width is None and len(ledger):
            ledger.explicit = (self._ids, self._originators, self._recipients)
            ledger._explicit_index = {m: i for i, m in enumerate(self._ids)}
        return ledger


def _time(value: float) -> float | None:
    return None if value != value else value


class LedgerRows(Sequence[MessageRecord]):
    """A ``Ledger`` read as a sequence of ``MessageRecord`` rows, each made when it is read."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def __len__(self) -> int:
        return len(self.ledger)

    @overload
    def __getitem__(self, index: int) -> MessageRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[MessageRecord]: ...

    def __getitem__(self, index: int | slice) -> MessageRecord | list[MessageRecord]:
        if isinstance(index, slice):
            return [self.ledger.record(i) for i in range(*index.indices(len(self.ledger)))]
        n = len(self.ledger)
        if not -n <= index < n:
            raise IndexError("ledger row out of range")
        return self.ledger.record(index % n)

    def __iter__(self) -> Iterator[MessageRecord]:
        return self.ledger.rows()
