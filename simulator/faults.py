"""Server fault modes: their scenario schema and what each does to a session.

A fault is switched on by a timeline entry (``event: fault``) for a window
of simulated time and applies to one server. Each kind changes what the
server decides for a session (its ``SessionPlan``): a reply code at a
command, a stall, a dropped connection after the message is committed,
latency charged in simulated time, or a 421 when the server is too busy.

Decisions that depend on chance (``fraction``) are drawn from a hash of the
scenario seed, the server, the message and its attempt number at that
server, so they do not depend on the order sockets complete in.

``recipients_fraction`` picks recipients instead of sessions: an address is
affected when a hash of the scenario seed and the address alone
(``address_chance``) falls below the fraction, so the same addresses are
affected at every attempt, on every server and by every fault with the same
fraction (a smaller fraction picks a subset of a larger one).

One kind does not change a session at all: ``delivery-queue`` slows the
server's internal delivery from its queue to the mailboxes
(``simulator.store``), so mail accepted with a 250 becomes readable late.
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
    "DeliveryQueueFault",
    "SessionPlan",
    "chance",
    "address_chance",
    "affects_address",
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


def _recipients_fraction() -> float | None:
    return Field(None, gt=0.0, le=1.0, description="share of recipient addresses affected (seeded by address)")


class ReplyFault(_Fault):
    """Answer ``code`` at ``stage`` (for some recipients, a fraction of addresses, or a fraction of sessions)."""

    kind: Literal["reply"]
    stage: Literal["ehlo", "mail", "rcpt", "data", "dot"]
    code: int = Field(ge=400, le=599)
    text: str | None = None
    fraction: float = _fraction()
    recipients: list[str] | None = None
    recipients_fraction: float | None = _recipients_fraction()

    @model_validator(mode="after")
    def _addresses_known(self) -> ReplyFault:
        if self.recipients_fraction is not None and self.stage in ("ehlo", "mail"):
            raise PydanticCustomError(
                "recipients_fraction",
                "recipients_fraction picks recipient addresses, which are known from RCPT on; use stage rcpt, data or dot",
            )
        return self


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


class DeliveryQueueFault(_Fault):
    """Mail is accepted with 250 at once, but reaches the mailboxes through a queue of ``per_minute`` capacity.

    While the fault is in force, mail committed for the affected recipients
    (all of them, or ``recipients_fraction`` of the addresses) joins a queue of
    its own that delivers ``per_minute`` messages per simulated minute to the
    mailboxes (0: held until the fault ends). When the fault ends, what is
    still queued joins the server's normal delivery (``delivery`` in the
    server's settings; immediate without one). Mail still queued when the run
    ends is ``queued``.
    """

    kind: Literal["delivery-queue"]
    per_minute: float = Field(ge=0.0, description="messages per simulated minute into the mailboxes; 0 holds them")
    recipients_fraction: float | None = _recipients_fraction()


FaultSpec = Annotated[
    ReplyFault
    | DropFault
    | SlowFault
    | DiskFullFault
    | GreylistFault
    | CapacityFault
    | FailFirstFault
    | DeliveryQueueFault,
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


def address_chance(seed: int, address: str) -> float:
    """A deterministic number in [0, 1) for a recipient address: the same for every session, server and fault."""
    digest = hashlib.blake2b(f"{seed}|address|{address.strip().lower()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def affects_address(fraction: float | None, seed: int, address: str) -> bool:
    """Whether a fault limited to ``recipients_fraction`` of the addresses (``None``: all) affects *address*."""
    return fraction is None or fraction >= 1 or address_chance(seed, address) < fraction
