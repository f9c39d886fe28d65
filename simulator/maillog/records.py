"""The typed records a mail log line becomes, the same for Postfix and Exim.

Every record starts with ``at`` (the line's time), ``source`` (the file as
shown) and ``line`` (its 1-based number in that file), so that whoever reads
a record can point back at the line it came from. Records are named tuples:
immutable, typed, and cheap enough to make one per log line at hundreds of
thousands of lines a second.

Times are ``datetime`` objects: naive in the log's own local time when no
time zone was stated, aware in the stated zone otherwise (see
``simulator.maillog.timestamps``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

__all__ = [
    "Client",
    "Connect",
    "Disconnect",
    "Accepted",
    "Delivery",
    "Removed",
    "Expired",
    "Rejected",
    "DaemonStart",
    "DaemonStop",
    "Fatal",
    "Panic",
    "NoSpace",
    "BadLine",
    "Record",
    "Failure",
    "FAILURES",
    "LOOPBACK_PREFIXES",
]


class Client(NamedTuple):
    """An SMTP client as the receiving server saw it: its reverse DNS name and IP address.

    ``name`` is ``"unknown"`` (Postfix) or empty (Exim) when the address has
    no verified reverse DNS name.
    """

    name: str
    ip: str

    @property
    def known(self) -> bool:
        """True when the client has a verified reverse DNS name."""
        return bool(self.name) and self.name != "unknown"

    @property
    def loopback(self) -> bool:
        """True for 127.0.0.0/8 and ::1: a local content filter handing mail back, not a sender."""
        return self.ip.startswith(LOOPBACK_PREFIXES) or self.ip == "::1"


LOOPBACK_PREFIXES = ("127.", "::ffff:127.")


class Connect(NamedTuple):
    """An SMTP client connected (Postfix ``connect from``, Exim ``SMTP connection from``)."""

    at: datetime
    source: str
    line: int
    client: Client
    session: str  #: the receiving process (pid) that serves the session, or ""


class Disconnect(NamedTuple):
    """An SMTP session ended (``disconnect from``, ``lost connection``, Exim ``closed by QUIT``)."""

    at: datetime
    source: str
    line: int
    client: Client
    session: str
    how: str  #: the rest of the line: the command counts, or why the connection was lost


class Accepted(NamedTuple):
    """A message entered the queue: what a sender's 250 to DATA (or a local submission) created.

    Postfix logs this over several lines (``client=``, ``message-id=``, then
    the queue manager's ``from=<..>, size=N, nrcpt=N``); the parser joins them
    and emits this record once, at the queue manager's first line. Exim logs
    it in one ``<=`` line.
    """

    at: datetime
    source: str
    line: int
    queue_id: str
    client: Client | None  #: None for mail submitted locally (Postfix pickup, Exim P=local)
    helo: str | None  #: the HELO/EHLO name, when the log shows it
    sender: str  #: the envelope sender, "" for the null sender <>
    size: int | None
    nrcpt: int | None
    message_id: str | None
    authenticated: bool  #: the client logged in (SASL, Exim A=): a submission, not inbound mail


class Delivery(NamedTuple):
    """A delivery attempt for one recipient: sent, deferred or bounced.

    On a sending MTA's log these are its attempts. A Postfix queue manager
    that holds a dead destination defers without connecting: the ``error``
    agent logs ``status=deferred (delivery temporarily suspended: ...)``
    (``suspended``); ``smtp`` logs the attempts that connected or tried to.
    """

    at: datetime
    source: str
    line: int
    queue_id: str
    recipient: str  #: the envelope recipient (Postfix orig_to when present, Exim's <parent>)
    relay: str  #: where it went: local, a host[ip]:port, a transport
    status: str  #: "sent", "deferred" or "bounced"
    dsn: str  #: the enhanced status code, when logged
    text: str  #: the reply or reason in parentheses
    agent: str = ""  #: the Postfix delivery agent that logged it (smtp, error, lmtp, local, ...); "" for Exim

    @property
    def suspended(self) -> bool:
        """True for a deferral without a connection: Postfix held the destination as dead
        ("delivery temporarily suspended"), Exim's host was in retry wait ("retry time not reached")."""
        return self.status == "deferred" and (
            self.text.startswith("delivery temporarily suspended") or "retry time not reached" in self.text
        )


class Removed(NamedTuple):
    """The message left the queue (Postfix ``removed``, Exim ``Completed``)."""

    at: datetime
    source: str
    line: int
    queue_id: str


class Expired(NamedTuple):
    """The message's queue lifetime ran out and it was returned (Postfix ``status=expired``)."""

    at: datetime
    source: str
    line: int
    queue_id: str
    sender: str


class Rejected(NamedTuple):
    """The server refused a command (Postfix ``NOQUEUE: reject:``, Exim ``rejected RCPT``)."""

    at: datetime
    source: str
    line: int
    client: Client
    helo: str | None
    stage: str  #: the SMTP command: CONNECT, EHLO, MAIL, RCPT, DATA, END-OF-MESSAGE
    code: int  #: the SMTP reply code (0 when the log does not give one)
    text: str
    sender: str | None
    recipient: str | None


class DaemonStart(NamedTuple):
    """The mail system started (Postfix master ``daemon started``, Exim ``daemon started``)."""

    at: datetime
    source: str
    line: int
    text: str


class DaemonStop(NamedTuple):
    """The mail system was stopped on purpose (``terminating on signal``, ``stopping the Postfix mail system``)."""

    at: datetime
    source: str
    line: int
    text: str


class Fatal(NamedTuple):
    """A ``fatal:`` line: a process gave up."""

    at: datetime
    source: str
    line: int
    program: str
    text: str


class Panic(NamedTuple):
    """A ``panic:`` line (or any line of Exim's paniclog)."""

    at: datetime
    source: str
    line: int
    program: str
    text: str


class NoSpace(NamedTuple):
    """The disk or the queue file system was full ("No space left on device", a failed space check)."""

    at: datetime
    source: str
    line: int
    program: str
    text: str


class BadLine(NamedTuple):
    """A line that could not be read: counted and reported, never fatal."""

    at: datetime | None
    source: str
    line: int
    text: str
    why: str


Failure = Fatal | Panic | NoSpace
FAILURES = (Fatal, Panic, NoSpace)
"""The records that point at an outage (with restarts, ``DaemonStart``/``DaemonStop``)."""

Record = (
    Connect
    | Disconnect
    | Accepted
    | Delivery
    | Removed
    | Expired
    | Rejected
    | DaemonStart
    | DaemonStop
    | Fatal
    | Panic
    | NoSpace
    | BadLine
)
"""Any record a parser yields."""
