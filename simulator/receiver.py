"""The receiving server's decisions, in one place.

``ReceivingServer`` holds a server's state on the incident timeline (its
mode, its disk) and answers every question the SMTP dialogue asks: what to
do with a new connection, whether to take a recipient, and what to reply to
the final dot. Both the aiosmtpd handler (``simulator.wire``) and the
in-memory transport (``simulator.transport``) call these methods, so the wire
and an in-memory run cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum

from . import replies
from .store import MailStores

__all__ = ["Mode", "Greeting", "ReceivingServer", "message_id_of"]

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


def message_id_of(content: bytes) -> str | None:
    """The ledger key of a raw message: the Message-ID's part before ``@``."""
    match = _MESSAGE_ID.search(content)
    return match.group(1).decode("ascii", "replace").partition("@")[0] if match else None


class Mode(StrEnum):
    """A server's availability, as set by the timeline."""

    UP = "up"
    REFUSE = "refuse"  #: listener closed: connection refused
    BLACKHOLE = "blackhole"  #: TCP accepted, never greets
    UNREACHABLE = "unreachable"  #: no answer to the TCP handshake (see wire notes)
    TEMPFAIL = "tempfail"  #: 421 greeting, then close


class Greeting(StrEnum):
    """What the server does with a new TCP connection."""

    SERVE = "serve"
    SILENT = "silent"
    TEMPFAIL = "tempfail"


class ReceivingServer:
    """One simulated receiving MTA: mode, domains, and its mail store.

    *now* returns the current simulated time (frozen during real I/O);
    *on_commit* is told about every copy committed to a disk.
    """

    def __init__(
        self,
        name: str,
        domains: list[str],
        hostname: str,
        stores: MailStores,
        now: Callable[[], float],
        on_commit: Callable[[str, str, float], None],
        mode: Mode = Mode.UP,
    ) -> None:
        self.name = name
        self.domains = frozenset(d.lower() for d in domains)
        self.hostname = hostname
        self.mode = mode
        self._stores = stores
        self._now = now
        self._on_commit = on_commit
        self.errors: list[BaseException] = []

    @property
    def listening(self) -> bool:
        """False when the listener must be closed (connection refused)."""
        return self.mode is not Mode.REFUSE

    def greeting(self) -> Greeting:
        """What a new connection gets."""
        if self.mode is Mode.UP:
            return Greeting.SERVE
        if self.mode is Mode.TEMPFAIL:
            return Greeting.TEMPFAIL
        return Greeting.SILENT

    @property
    def tempfail_reply(self) -> str:
        """The reply a server in ``tempfail`` mode greets with before closing."""
        return replies.TEMPFAIL_GREETING

    def rcpt(self, address: str) -> str | None:
        """``None`` to accept the recipient, or the reply that refuses it."""
        domain = address.rpartition("@")[2].lower()
        if domain not in self.domains:
            return replies.NO_SUCH_DOMAIN
        return None

    def data(self, content: bytes) -> str:
        """Commit the message to the current disk and return the reply to the final dot."""
        message_id = message_id_of(content)
        if message_id is None:
            return "554 5.6.0 Message-ID header required"
        now = self._now()
        if not self._stores.has_disk(self.name):
            return replies.SERVICE_UNAVAILABLE
        disk = self._stores.accept(self.name, message_id, now)
        self._on_commit(message_id, self.name, now)
        return replies.OK_QUEUED.format(queue_id=f"{disk}/{message_id}")
