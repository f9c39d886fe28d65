"""Server fault modes: their scenario schema and what each does to a session.

A fault is switched on by a timeline entry (``event: fault``) for a window
of simulated time and applies to one server. Each kind changes what the
server decides for a session (its ``SessionPlan``): a reply code at a
command, a stall, a dropped connection after the message is committed,
latency charged in simulated time, or a 421 when the server is too busy.

Decisions that depend on chance (``fraction``) are drawn from a hash of the
scenario seed, the server, the message and its attempt number at that
server, so they do not depend on the order sockets complete in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .durations import Duration
from .policies import Stage

__all__ = [
    "FaultSpec",
    "ReplyFault",
    "DropFault",
    "SlowFault",
    "DiskFullFault",
    "GreylistFault",
    "CapacityFault",
    "FailFirstFault",
    "SessionPlan",
    "chance",
    "default_text",
]

_COMMAND_STAGES = ("ehlo", "mail", "rcpt", "data", "dot")


def default_text(code: int) -> str:
    """A plausible enhanced-status text for a reply code."""
    return {
        421: "4.3.2 Service shutting down, closing transmission channel",
        450: "4.2.1 Mailbox temporarily unavailable",
        451: "4.3.0 Local error in processing, try again later",
        452: "4.3.1 Insufficient system storage",
        550: "5.1.1 Mailbox unavailable",
        552: "5.3.4 Message too big for system",
        554: "5.7.1 Transaction failed",
    }.get(code, f"{code // 100}.0.0 Fault injected by smtp-outage")


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _fraction() -> float:
    return Field(1.0, gt=0.0, le=1.0, description="share of sessions affected (seeded)")


class ReplyFault(_Fault):
    """Answer ``code`` at ``stage`` (for some recipients or a fraction of sessions)."""

    kind: Literal["reply"]
    stage: Literal["ehlo", "mail", "rcpt", "data", "dot"]
    code: int = Field(ge=400, le=599)
    text: str | None = None
    fraction: float = _fraction()
    recipients: list[str] | None = None


class DropFault(_Fault):
    """Commit the message, then drop the connection before the 250 (RFC 1047 duplicates)."""

    kind: Literal["accept-then-drop"]
    fraction: float = _fraction()


class SlowFault(_Fault):
    """Each reply at ``stage`` (or every reply) takes ``latency`` of simulated time."""

    kind: Literal["slow"]
    latency: Duration
    stage: Literal["greeting", "ehlo", "mail", "rcpt", "data", "dot", "all"] = "all"

    @model_validator(mode="after")
    def _positive(self) -> SlowFault:
        if self.latency <= 0:
            raise PydanticCustomError("latency", "latency must be greater than 0s, e.g. 30s")
        return self


class DiskFullFault(_Fault):
    """``452 4.3.1 Insufficient system storage`` at RCPT or DATA."""

    kind: Literal["disk-full"]
    stage: Literal["rcpt", "data"] = "rcpt"


class GreylistFault(_Fault):
    """The first attempt of a sender/recipient pair gets 451; attempts after ``delay`` pass."""

    kind: Literal["greylist"]
    delay: Duration = 300.0


class CapacityFault(_Fault):
    """At most ``sessions`` at once and ``per_minute`` per simulated minute; beyond that ``421 too busy``.

    A session occupies the server for ``session_time`` of simulated time.
    """

    kind: Literal["capacity"]
    sessions: int | None = Field(None, ge=1)
    per_minute: int | None = Field(None, ge=1)
    session_time: Duration = 1.0

    @model_validator(mode="after")
    def _some_limit(self) -> CapacityFault:
        if self.sessions is None and self.per_minute is None:
            raise PydanticCustomError("capacity", "give sessions (concurrent) and/or per_minute, each at least 1")
        if self.session_time <= 0:
            raise PydanticCustomError("capacity", "session_time must be greater than 0s")
        return self


class FailFirstFault(_Fault):
    """Each message's first ``attempts`` sessions at this server fail with ``code`` at ``stage``."""

    kind: Literal["fail-first"]
    attempts: int = Field(ge=1)
    stage: Literal["ehlo", "mail", "rcpt", "data", "dot"] = "rcpt"
    code: int = Field(451, ge=400, le=599)


FaultSpec = Annotated[
    ReplyFault | DropFault | SlowFault | DiskFullFault | GreylistFault | CapacityFault | FailFirstFault,
    Field(discriminator="kind"),
]


@dataclass
class SessionPlan:
    """What the server will do in one SMTP session.

    The engine's sessions are planned whole when it submits the attempt; for
    a connection nobody announced, the server fills in the greeting part when
    the client connects and decides the rest step by step
    (``simulator.receiver``).

    ``greeting``: ``serve``, ``silent`` or ``tempfail`` (send ``greeting_reply``
    and close). ``replies`` overrides the reply at a stage; ``stall`` is a
    stage where the server never answers; ``drop_after_commit`` commits the
    message and closes before the 250; ``latency`` is simulated seconds per
    stage, charged by the engine.
    """

    greeting: str = "serve"
    greeting_reply: str = ""
    replies: dict[Stage, str] = field(default_factory=dict)
    stall: Stage | None = None
    drop_after_commit: bool = False
    latency: dict[Stage, float] = field(default_factory=dict)
    turned_away: bool = False

    def reply_at(self, stage: Stage) -> str | None:
        """The overriding reply at *stage*, if any."""
        return self.replies.get(stage)


def chance(seed: int, server: str, message_id: str, attempt: int, salt: str) -> float:
    """A deterministic number in [0, 1) for one session's dice roll."""
    digest = hashlib.blake2b(f"{seed}|{server}|{message_id}|{attempt}|{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
