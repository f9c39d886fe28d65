"""Generic retry policies: an explicit schedule, and exponential backoff.

Both keep retry state per message only (no shared host state) and give up at
the first failed attempt at or after ``lifetime`` (the Postfix/qmail rule: the
expiry is checked after an attempt, so the bounce comes with an attempt).
A 5xx reply bounces at once with the reply's own status.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import cached_property

from ..durations import format_duration
from ._common import default_next_mx
from .base import Decision, Failure, MessageView, PolicyState, Timeouts
from .simulate import gives_up_after

__all__ = ["Schedule", "Exponential", "permanent_decision", "expired_decision"]

_TIMEOUT_KEYS = (
    ("connect_timeout", "connect"),
    ("greeting_timeout", "greeting"),
    ("command_timeout", "command"),
    ("data_done_timeout", "data_done"),
)


def _common_settings(
    lifetime: float, warn_after: float | None, timeouts: Timeouts, extra: dict[str, str] | None = None
) -> str:
    """``lifetime=30h`` then the other settings that differ from their defaults, sorted by key."""
    extra = dict(extra or {})
    if warn_after is not None:
        extra["warn_after"] = format_duration(warn_after)
    default = Timeouts()
    for key, attr in _TIMEOUT_KEYS:
        value: float = getattr(timeouts, attr)
        if value != getattr(default, attr):
            extra[key] = format_duration(value)
    return ",".join([f"lifetime={format_duration(lifetime)}"] + [f"{k}={extra[k]}" for k in sorted(extra)])


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")


def permanent_decision(failure: Failure) -> Decision:
    """Bounce for a 5xx reply, with the DSN status the reply gave.

    The reply's own enhanced status code (RFC 3463, ``550 5.1.1 ...``) when
    it has one of class 5, as Postfix and Exim report it; otherwise one made
    from the reply code's digits (``550`` -> ``5.5.0``).
    """
    code = failure.code or 550
    given = _ENHANCED.match(failure.text or "")
    if given is not None and given.group(1) == "5":
        status = ".".join(given.groups())
    else:
        status = f"5.{(code // 10) % 10}.{code % 10}" if 500 <= code < 600 else "5.0.0"
    return Decision.give_up(f"permanent failure: {failure.describe()}", status)


def expired_decision() -> Decision:
    """Bounce because the retry lifetime ran out (RFC 3463 4.4.7)."""
    return Decision.give_up("retry lifetime exceeded", "4.4.7")


class _PerMessageState:
    """State for policies whose next attempt depends on the message alone."""

    def __init__(self, policy: Schedule | Exponential) -> None:
        self._policy = policy

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        return Decision.retry(now)

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        return None

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        if failure.is_permanent:
            return permanent_decision(failure)
        if now - msg.arrival >= self._policy.lifetime:
            return expired_decision()
        nxt = self._policy.next_attempt(msg, now)
        if nxt is None:
            return Decision.give_up("retry schedule exhausted", "4.4.7")
        warn = self._policy.warn_after is not None and (
            msg.warnings == 0 and now - msg.arrival >= self._policy.warn_after
        )
        return Decision.retry(nxt, warn=warn)

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        return None


class _PerMessageQuirks:
    """What the generic policies answer alike: no shared host state, RFC 5321 MX fallback."""

    @property
    def shares_host_failure(self) -> bool:
        """Per-message state: no host status is shared."""
        return False

    @property
    def serial_rounds(self) -> bool:
        """Per-message state: a message's outcome never changes another's decision."""
        return False

    @cached_property
    def gives_up_after(self) -> float | None:
        """Seconds after arrival at which a message whose every attempt fails bounces (None: not in 30 days)."""
        return gives_up_after(self)  # type: ignore[arg-type]  # both subclasses are RetryPolicy objects

    def next_mx_allowed(self, failure: Failure) -> bool:
        """RFC 5321 section 5.1: the next MX host after a connection failure, a 4xx or a lost connection."""
        return not failure.expiry and default_next_mx(failure)


@dataclass(frozen=True)
class Schedule(_PerMessageQuirks):
    """Retry at fixed gaps (``intervals``, the last one repeating) until ``lifetime``.

    ``retry: "5m,15m,1h"`` means: wait 5 minutes after the first failure,
    15 after the second, then every hour. With ``repeat_last=False`` the
    schedule ends after the last gap and the message bounces at the next
    failure ("retry schedule exhausted").
    """

    intervals: tuple[float, ...]
    lifetime: float
    repeat_last: bool = True
    warn_after: float | None = None
    name: str = "schedule"
    source: str = "user-defined schedule"
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        if not self.intervals:
            raise ValueError("a schedule needs at least one retry interval")
        if any(gap <= 0 for gap in self.intervals):
            raise ValueError("retry intervals must be greater than 0")

    def next_attempt(self, msg: MessageView, now: float) -> float | None:
        """The time of the next attempt after failure number ``msg.attempts``."""
        index = msg.attempts - 1
        if index >= len(self.intervals):
            if not self.repeat_last:
                return None
            index = len(self.intervals) - 1
        return now + self.intervals[max(index, 0)]

    @cached_property
    def label(self) -> str:
        """``retry(5m,15m,1h;lifetime=30h)``, plus any other setting that is not the default."""
        gaps = ",".join(format_duration(gap) for gap in self.intervals)
        extra = {} if self.repeat_last else {"repeat_last": "false"}
        rest = _common_settings(self.lifetime, self.warn_after, self.timeouts, extra)
        return f"retry({gaps};{rest})"

    def offsets(self) -> list[float]:
        """Attempt offsets from arrival for a message whose every attempt fails."""
        out, t, n = [0.0], 0.0, 1
        while t < self.lifetime:
            gap_index = min(n - 1, len(self.intervals) - 1)
            if n - 1 >= len(self.intervals) and not self.repeat_last:
                break
            t += self.intervals[gap_index]
            out.append(t)
            n += 1
        return out

    def start(self, rng: random.Random) -> PolicyState:
        """Per-message state; the schedule has no per-host memory."""
        return _PerMessageState(self)


@dataclass(frozen=True)
class Exponential(_PerMessageQuirks):
    """Exponential backoff: ``initial * factor**(n-1)``, capped at ``cap``, until ``lifetime``."""

    initial: float
    factor: float
    cap: float
    lifetime: float
    warn_after: float | None = None
    name: str = "exponential"
    source: str = "user-defined exponential backoff"
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        if self.initial <= 0:
            raise ValueError("initial must be greater than 0")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if self.cap < self.initial:
            raise ValueError("cap must be at least initial")

    @cached_property
    def label(self) -> str:
        """``exponential(initial=5m,factor=2,cap=4h;lifetime=3d)``, plus any other non-default setting."""
        rest = _common_settings(self.lifetime, self.warn_after, self.timeouts)
        head = f"initial={format_duration(self.initial)},factor={self.factor:g},cap={format_duration(self.cap)}"
        return f"exponential({head};{rest})"

    def next_attempt(self, msg: MessageView, now: float) -> float:
        """The time of the next attempt after failure number ``msg.attempts``."""
        exponent = max(msg.attempts - 1, 0)
        gap = self.cap if exponent > 64 else min(self.cap, self.initial * self.factor**exponent)
        return now + gap

    def start(self, rng: random.Random) -> PolicyState:
        """Per-message state; no per-host memory."""
        return _PerMessageState(self)
