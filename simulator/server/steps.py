"""The vocabulary of a session's steps: what the server does at each, and what a watcher hears.

``Step`` is the server's answer at one step of the SMTP dialogue (an
``Act`` and its reply); ``ServerSession`` (``simulator.receiver``) makes
them, the wire and the in-memory transport translate them. ``SessionNote``
is what a server's watcher (the live mode) hears of a connection nobody
announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..policies import Stage
from ..replies import reply_code

__all__ = ["Act", "Step", "SessionNote"]


class Act(StrEnum):
    """How the server answers one step."""

    REPLY = "reply"  #: send the reply and carry on
    CLOSE = "close"  #: send the refusal, then hang up (a 421 greeting)
    SILENT = "silent"  #: never answer: the client times out
    DROP = "drop"  #: the message is committed, then the connection drops before the reply


@dataclass(frozen=True, slots=True)
class Step:
    """What the server does at one step of the dialogue: an ``Act`` and its reply."""

    act: Act
    reply: str = ""

    @classmethod
    def say(cls, reply: str) -> Step:
        """Send *reply* and carry on."""
        return cls(Act.REPLY, reply)

    @property
    def positive(self) -> bool:
        """True when the client hears a 2xx or 3xx reply and the dialogue goes on."""
        return self.act is Act.REPLY and self.reply[:1] in ("2", "3")

    @property
    def code(self) -> int | None:
        """The reply code, or None when the client hears nothing."""
        return reply_code(self.reply) if self.act in (Act.REPLY, Act.CLOSE) else None


@dataclass(frozen=True, slots=True)
class SessionNote:
    """A step of a connection nobody announced, as a watcher hears of it.

    ``stage`` is where it happened (``greeting`` for a connection turned
    away or never greeted), ``step`` what the server did; ``helo``,
    ``mail_from`` and ``rcpt`` what the client had said by then;
    ``message_id`` the ledger key of the message handed over at the dot.
    """

    server: str
    peer: str
    stage: Stage
    step: Step
    helo: str = ""
    mail_from: str = ""
    rcpt: tuple[str, ...] = ()
    message_id: str | None = None
    turned_away: bool = False
