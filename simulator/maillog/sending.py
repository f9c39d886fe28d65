"""The sending side of a mail log: what a sending MTA did with each message it queued.

A receiving server's log is read for arrivals (``simulator.maillog.importer``);
a *sending* MTA's log, read with the same parsers, tells how each message
it queued was tried: its arrival (``Accepted``), every delivery attempt
(``Delivery``: connected, or deferred without connecting, ``suspended``)
and how it ended: ``sent``, ``bounced`` (a 5xx, or Exim's "retry timeout
exceeded"), ``expired`` (Postfix's ``status=expired, returned to sender``),
or still ``queued`` when the log ends.

One delivery attempt logs one line per recipient; lines of one message at
the same time by the same agent are one attempt. ``sending_history``
keeps the order of arrival.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from .records import Accepted, Delivery, Expired, Record

__all__ = ["Try", "SentMessage", "sending_history"]


@dataclass(frozen=True)
class Try:
    """One delivery attempt as the sending MTA logged it."""

    at: datetime
    connected: bool  #: False for a deferral without a connection (``suspended``)
    status: str  #: sent, deferred or bounced
    relay: str
    text: str


@dataclass
class SentMessage:
    """One message a sending MTA queued: its attempts and its end."""

    queue_id: str
    arrived: datetime
    sender: str  #: the envelope sender ("" for the MTA's own bounces)
    message_id: str | None
    recipient: str = ""
    tries: list[Try] = field(default_factory=list)
    final: str = "queued"  #: sent, bounced, expired, or queued (still there when the log ends)
    final_at: datetime | None = None

    @property
    def connections(self) -> int:
        """Attempts that connected (or tried to)."""
        return sum(1 for t in self.tries if t.connected)


def sending_history(records: Iterable[Record]) -> list[SentMessage]:
    """Each message of a sending MTA's log, in order of arrival, with its attempts and its end.

    Deliveries and expiries of messages whose arrival is not in the log (an
    earlier, rotated file) are left out.
    """
    messages: dict[str, SentMessage] = {}
    for record in records:
        if isinstance(record, Accepted):
            if record.queue_id not in messages:
                messages[record.queue_id] = SentMessage(record.queue_id, record.at, record.sender, record.message_id)
        elif isinstance(record, Delivery):
            message = messages.get(record.queue_id)
            if message is None:
                continue
            message.recipient = message.recipient or record.recipient
            last = message.tries[-1] if message.tries else None
            connected = not record.suspended
            if last is None or last.at != record.at or last.connected != connected:
                message.tries.append(Try(record.at, connected, record.status, record.relay, record.text))
            if record.status in ("sent", "bounced") and message.final == "queued":
                message.final, message.final_at = record.status, record.at
        elif isinstance(record, Expired):
            message = messages.get(record.queue_id)
            if message is not None and message.final == "queued":
                message.final, message.final_at = "expired", record.at
    return list(messages.values())
