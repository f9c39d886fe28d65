"""What a policy does with one message when every attempt fails.

``all_attempts_fail()`` drives a ``PolicyState`` exactly as the replay
engine does (``on_arrival``, ``before_connect``, ``after_failure``), with no
sockets: each attempt fails the same way (connection refused by default),
optionally charging a simulated attempt cost. It returns the attempt
offsets, the delay warnings and the bounce, which is what
``smtp-outage policies show`` prints and what the preset tests compare with
the reference schedules.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import pairwise

from .base import Failure, FailureKind, MessageView, RetryPolicy, Stage

__all__ = ["Outcome", "all_attempts_fail", "default_failure", "gives_up_after", "GIVE_UP_HORIZON_HOURS"]

GIVE_UP_HORIZON_HOURS = 30 * 24
"""How far ``gives_up_after`` follows a message (30 days)."""


@dataclass(frozen=True)
class Outcome:
    """The fate of one message whose every attempt fails.

    Times are offsets in seconds from the message's arrival. ``attempts``
    are connection attempts; ``suspended`` are attempts the policy deferred
    without connecting (a dead destination, a host in retry wait). A
    lifetime wake-up that returns the message without connecting (Exchange,
    Sendmail, providers) is not an attempt: it is ``bounce_at``.
    """

    policy: str
    horizon: float
    attempts: tuple[float, ...]
    suspended: tuple[float, ...] = ()
    warnings: tuple[float, ...] = ()
    bounce_at: float | None = None
    bounce_reason: str | None = None
    bounce_status: str | None = None
    failure: str = ""
    attempt_cost: float = 0.0

    @property
    def gaps(self) -> tuple[float, ...]:
        """Seconds between consecutive connection attempts."""
        return tuple(b - a for a, b in pairwise(self.attempts))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready mapping (``policies show --json``)."""
        return {
            "policy": self.policy,
            "horizon_s": self.horizon,
            "failure": self.failure,
            "attempt_cost_s": self.attempt_cost,
            "attempts": list(self.attempts),
            "suspended": list(self.suspended),
            "warnings": list(self.warnings),
            "bounce": None
            if self.bounce_at is None
            else {"at": self.bounce_at, "reason": self.bounce_reason, "status": self.bounce_status},
        }


def default_failure(kind: FailureKind, host: str) -> Failure:
    """A representative failure of *kind* (refused at connect, 421 greeting, ...)."""
    if kind is FailureKind.REFUSED:
        return Failure(kind, Stage.CONNECT, host, text="Connection refused")
    if kind is FailureKind.TIMEOUT:
        return Failure(kind, Stage.CONNECT, host, text="Connection timed out")
    if kind is FailureKind.TEMPFAIL:
        return Failure(kind, Stage.GREETING, host, 421, "4.3.2 Service not available")
    if kind is FailureKind.PERMFAIL:
        return Failure(kind, Stage.RCPT, host, 550, "5.1.1 User unknown")
    if kind is FailureKind.DROPPED:
        return Failure(kind, Stage.DATA, host, text="lost connection")
    raise ValueError(f"cannot simulate a {kind.value} failure; choose refused, timeout, tempfail, permfail or dropped")


@dataclass
class _Run:
    attempts: list[float] = field(default_factory=list)
    suspended: list[float] = field(default_factory=list)
    warnings: list[float] = field(default_factory=list)


def all_attempts_fail(
    policy: RetryPolicy,
    *,
    hours: float = 72.0,
    failure: Failure | FailureKind = FailureKind.REFUSED,
    attempt_cost: float = 0.0,
    arrival: float = 0.0,
    seed: int = 0,
    host: str = "mx.example.net",
    destination: str = "example.net",
    max_attempts: int | None = None,
) -> Outcome:
    """Drive one message through *policy* until it bounces or *hours* pass.

    *attempt_cost* is the simulated time each connection attempt takes
    before the policy hears of the failure (e.g. 30 for a connect timeout).
    Events after ``arrival + hours`` are not reported. With *max_attempts*,
    it also stops after that many tries (connections and suspended ones):
    a bound for estimating a policy's work.
    """
    if hours <= 0:
        raise ValueError("hours must be greater than 0")
    if attempt_cost < 0:
        raise ValueError("attempt_cost cannot be negative")
    fail = failure if isinstance(failure, Failure) else default_failure(failure, host)
    state = policy.start(random.Random(seed))
    end = arrival + hours * 3600.0
    msg = MessageView(id="msg-1", arrival=arrival, attempts=0, warnings=0, destination=destination)
    run = _Run()
    decision = state.on_arrival(msg, arrival)
    bounce: tuple[float, str, str] | None = None
    now = arrival
    while True:
        if decision.bounce is not None:
            bounce = (now - arrival, decision.bounce, decision.status)
            break
        now = decision.retry_at if decision.retry_at is not None else now
        if now > end or (max_attempts is not None and len(run.attempts) + len(run.suspended) >= max_attempts):
            break
        msg = msg._replace(attempts=msg.attempts + 1)  # counted before before_connect, as the engine does
        held = state.before_connect(msg, fail.host, now)
        if held is not None and held.expiry:
            decision = state.after_failure(msg, held, now)
            continue
        if held is None:
            run.attempts.append(now - arrival)
            now += attempt_cost
            outcome = fail
        else:
            run.suspended.append(now - arrival)
            outcome = held
        decision = state.after_failure(msg, outcome, now)
        if decision.warn and decision.bounce is None:
            run.warnings.append(now - arrival)
            msg = msg._replace(warnings=msg.warnings + 1)
    if bounce is not None and bounce[0] > hours * 3600.0:
        bounce = None
    return Outcome(
        policy=policy.name,
        horizon=hours * 3600.0,
        attempts=tuple(run.attempts),
        suspended=tuple(run.suspended),
        warnings=tuple(run.warnings),
        bounce_at=None if bounce is None else bounce[0],
        bounce_reason=None if bounce is None else bounce[1],
        bounce_status=None if bounce is None else bounce[2],
        failure=fail.describe(),
        attempt_cost=attempt_cost,
    )


def gives_up_after(policy: RetryPolicy) -> float | None:
    """Seconds after arrival at which *policy* bounces a message whose every attempt is refused.

    ``None`` when it does not give up within ``GIVE_UP_HORIZON_HOURS``. The
    policies cache this per policy object (``RetryPolicy.gives_up_after``).
    """
    return all_attempts_fail(policy, hours=GIVE_UP_HORIZON_HOURS).bounce_at
