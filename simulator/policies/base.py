"""The contract between a sending MTA's retry policy and the replay engine.

A *policy* is a frozen description (``RetryPolicy``): its name, where its
figures come from, the simulated timeouts it charges, and a factory for its
runtime state. Every simulated sending MTA gets its own ``PolicyState`` from
``RetryPolicy.start()``; the state is where per-host retry records (Exim),
dead-destination caches (Postfix) or per-queue timers (Exchange) live.

The engine asks the state four questions, always with the simulated time:

``on_arrival(msg, now)``
    When is the first attempt? (Exim does not try a new message to a host
    that is in retry wait; it may even bounce it at once.)
``before_connect(msg, host, now)``
    May the MTA connect now, or does it defer without connecting? Returning
    a ``Failure`` of kind ``SUSPENDED`` is an attempt that never touched the
    wire (Postfix's "delivery temporarily suspended").
``after_failure(msg, failure, now)``
    Retry when, bounce, and is a delay warning due now?
``after_success(msg, host, now)``
    A 250 to the final dot: clear host retry state and the like.

A policy whose queue lifetime runs out while a message waits (Exchange,
Sendmail, the providers) asks for a wake-up at that moment and answers
``before_connect`` with ``Failure.expired(...)`` (``expiry=True``); its
``after_failure`` then bounces. No connection is made, and an engine may
leave such a wake-up out of the attempt count.

Protocol outcomes (refused, timeout, 4xx, 5xx, lost connection) reach the
policy as ``Failure`` values, never as exceptions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "FailureKind",
    "Stage",
    "Failure",
    "MessageView",
    "Decision",
    "Timeouts",
    "PolicyState",
    "RoundState",
    "RetryPolicy",
]


class FailureKind(StrEnum):
    """How a delivery attempt failed."""

    REFUSED = "refused"  #: TCP connection refused (listener closed)
    TIMEOUT = "timeout"  #: no answer in time (connect, greeting or a command)
    TEMPFAIL = "tempfail"  #: a 4xx reply
    PERMFAIL = "permfail"  #: a 5xx reply
    DROPPED = "dropped"  #: connection lost in mid-session
    SUSPENDED = "suspended"  #: the sender did not connect (its own retry state said wait)


class Stage(StrEnum):
    """Where in the SMTP dialogue an attempt ended."""

    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    DOT = "dot"  #: the reply to the final ``.`` of DATA
    QUIT = "quit"


class Failure(NamedTuple):
    """A failed attempt as the sending MTA saw it (a named tuple: made for nearly every attempt, it is cheap)."""

    kind: FailureKind
    stage: Stage
    host: str
    code: int | None = None
    text: str = ""
    #: True for a wake-up at the end of the queue lifetime: no connection was
    #: made and the policy will bounce the message. An engine may leave it out
    #: of the attempt count (the real MTA only looked at its queue file).
    expiry: bool = False
    #: For a ``SUSPENDED`` failure: only this host was skipped (it failed a
    #: moment ago, in the same connection round); the MTA may still try its
    #: other MX hosts now. See ``RetryPolicy.next_mx_allowed``.
    host_only: bool = False

    @classmethod
    def suspended(cls, host: str, text: str, *, host_only: bool = False) -> Failure:
        """A deferral without a connection, decided by the sender's own retry state."""
        return cls(FailureKind.SUSPENDED, Stage.CONNECT, host, None, text, host_only=host_only)

    @classmethod
    def expired(cls, host: str, text: str) -> Failure:
        """The message's queue lifetime ended while it waited: bounce without connecting."""
        return cls(FailureKind.SUSPENDED, Stage.CONNECT, host, None, text, expiry=True)

    @property
    def is_permanent(self) -> bool:
        """True for a 5xx reply."""
        return self.kind is FailureKind.PERMFAIL

    @property
    def is_host_error(self) -> bool:
        """True when the failure says the host, not the message, is the problem.

        Exim's classification: refused, connect or greeting timeouts, any
        error to the greeting or EHLO, and a lost connection before the final
        dot are host errors; replies to MAIL, RCPT, DATA and the dot are not.
        """
        if self.kind in (FailureKind.REFUSED, FailureKind.SUSPENDED):
            return True
        if self.stage in (Stage.CONNECT, Stage.GREETING, Stage.EHLO):
            return True
        return self.kind is FailureKind.DROPPED and self.stage is not Stage.DOT

    def describe(self) -> str:
        """One line for logs and DSN Diagnostic-Code fields."""
        if self.code is not None:
            return f"{self.code} {self.text}".strip()
        return f"{self.kind.value} at {self.stage.value}" + (f": {self.text}" if self.text else "")


class MessageView(NamedTuple):
    """What a policy may know about a message (a named tuple: made several times per attempt, it is cheap)."""

    id: str
    arrival: float  #: simulated seconds when the sender queued it
    attempts: int  #: attempts made so far (including suspended ones)
    warnings: int  #: delay warnings already sent
    destination: str  #: the recipient domain (the next hop)


class Decision(NamedTuple):
    """What the sender does next: retry at a time, or bounce.

    Exactly one of ``retry_at`` and ``bounce`` is set: a decision is made
    with ``retry()`` or ``give_up()``, never directly. ``warn`` asks the
    engine to send a delay warning (RFC 3464 ``Action: delayed``) now. A
    named tuple: made after nearly every attempt, it is cheap.
    """

    retry_at: float | None = None
    bounce: str | None = None  #: the reason, e.g. "retry lifetime exceeded"
    status: str = ""  #: RFC 3463 status for a bounce, e.g. "4.4.7" / "5.1.1"
    warn: bool = False

    @classmethod
    def retry(cls, at: float, *, warn: bool = False) -> Decision:
        """Try again at simulated time *at*."""
        return cls(retry_at=at, warn=warn)

    @classmethod
    def give_up(cls, reason: str, status: str) -> Decision:
        """Bounce the message with an RFC 3463 status."""
        return cls(bounce=reason, status=status)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Simulated seconds charged when the receiving side does not answer.

    ``connect`` is charged for an unreachable host, ``greeting`` for a host
    that accepts TCP but never greets (blackhole), ``command`` for a stalled
    reply to a command, ``data_done`` for a stalled reply to the final dot.
    """

    connect: float = 30.0
    greeting: float = 300.0
    command: float = 300.0
    data_done: float = 600.0


class PolicyState(Protocol):
    """Runtime retry state of one simulated sending MTA."""

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """When to make the first attempt (usually ``now``)."""

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """``None`` to connect; a ``SUSPENDED`` failure to defer without connecting."""

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Retry time or bounce after a failed attempt at *now*."""

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """The message was accepted by *host* at *now*."""


@runtime_checkable
class RoundState(PolicyState, Protocol):
    """The state of an MTA whose retry rounds go out one message at a time (``serial_rounds``).

    ``decides_alike`` lets the engine send a round's messages out together
    for as long as it cannot matter: True when ``before_connect`` for
    *destination* at *now* answers the same whatever the outcome of
    *failures* attempts to it still in flight (even if every one fails).
    """

    def decides_alike(self, destination: str, failures: int, now: float) -> bool:
        """True when *failures* more failed attempts to *destination* could not change ``before_connect``."""


class RetryPolicy(Protocol):
    """A frozen description of a sending MTA's retry behaviour.

    Besides the retry state it starts, a policy answers the questions that
    depend on the MTA but not on its state:

    ``label``
        Unique per distinct settings: the preset name alone for a preset at
        its defaults (``postfix``), the changed settings in parentheses
        otherwise (``postfix(maximal_queue_lifetime=1d)``).
    ``next_mx_allowed(failure)``
        Whether the MTA tries the next MX host after *failure*
        (retry-policies.md section 8).
    ``shares_host_failure``
        True for MTAs that, within one queue run, do not connect again to a
        host that just failed: later messages to it share that failure.
    ``serial_rounds``
        True for MTAs whose queue manager hands the messages of a retry
        round to delivery one at a time, so that the outcome of one
        message's attempt is known before the next message to the same
        destination goes out (Postfix's deferred-queue scan): failures
        accumulate within the round and can stop the rest of it.
    ``gives_up_after``
        Seconds after arrival at which a message whose every attempt fails
        is returned, or ``None`` if not within 30 days.
    """

    @property
    def name(self) -> str:
        """The preset or policy kind (``postfix``, ``schedule``, ...)."""

    @property
    def source(self) -> str:
        """Where the figures come from (cited in docs and ``policies show``)."""

    @property
    def timeouts(self) -> Timeouts:
        """Simulated seconds charged when the receiver does not answer."""

    @property
    def label(self) -> str:
        """The name plus the settings that differ from its defaults, unique per distinct settings."""

    @property
    def shares_host_failure(self) -> bool:
        """True when later messages of one queue run share a host's failure without connecting."""

    @property
    def serial_rounds(self) -> bool:
        """True when a retry round's messages go out one at a time, each after the one before has its outcome."""

    @property
    def gives_up_after(self) -> float | None:
        """Seconds after arrival at which a message whose every attempt fails bounces (None: not in 30 days)."""

    def next_mx_allowed(self, failure: Failure) -> bool:
        """Whether the MTA tries the next MX host after *failure* (never after an expiry)."""

    def start(self, rng: random.Random) -> PolicyState:
        """Fresh runtime state for one sending MTA; *rng* is seeded per sender."""
