"""Sendmail 8: every queue run retries every queued message.

Source: Sendmail 8.17.1.9 ``cf/README`` and the Installation and Operation
Guide (``op.txt``); retry-policies.md section 3.

* New mail is delivered at once (``DeliveryMode=background``).
* No per-message backoff: each queue run (``-q30m``; sendmail has no
  built-in interval, 15 min to 1 h is typical) tries every message that has
  waited at least ``MinQueueAge`` since its last attempt.
* Within one queue run, once a host has failed, later messages to it are
  deferred from the cached host status without connecting (no
  ``HostStatusDirectory``, so the cache lives for one run only).
* ``Timeout.queuewarn`` (4h): one "deferred" warning at the first failure at
  or after that age. ``Timeout.queuereturn`` (5d): the first queue run at or
  after that age returns the message without trying it again.

[I] The check points (warning and return at a queue run) are read from the
operation guide, not from the sendmail source. The kernel connect timeout
(``Timeout.connect=0``) is taken as Linux's 127 s (6 SYN retries) [I]. A 5xx
greeting is a permanent error (usersmtp.c's "unavailable" path) [I].
"""

from __future__ import annotations

import random

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from ..durations import Duration
from ._common import Phase, PresetParams, PresetPolicy, bounces_at_once, next_tick, per_host_next_mx, resolve_phase
from .base import Decision, Failure, MessageView, Timeouts
from .simple import permanent_decision

__all__ = ["SendmailParams", "build_sendmail"]

SOURCE = (
    "Sendmail 8.17.1.9 cf/README and Installation and Operation Guide (Timeout.queuewarn 4h, "
    "Timeout.queuereturn 5d, -q30m example, host status per queue run); retry-policies.md section 3. "
    "Check points at queue runs, 127 s kernel connect timeout and 5xx-greeting bounce are [I]."
)


class SendmailParams(PresetParams):
    """Sendmail options that shape retries (m4 names in the descriptions)."""

    queue_interval: Duration = Field(1800.0, description="queue run interval, sendmail -q30m")
    queue_phase: Phase = Field(0.0, description="offset of the queue runs from time 0, or random")
    timeout_queuewarn: Duration = Field(14400.0, description="confTO_QUEUEWARN: one delay warning; 0 = off")
    timeout_queuereturn: Duration = Field(432000.0, description="confTO_QUEUERETURN: return after this age")
    min_queue_age: Duration = Field(0.0, description="confMIN_QUEUE_AGE: least time between tries")
    timeout_connect: Duration = Field(127.0, description="confTO_CONNECT 0 = kernel limit, 127 s on Linux [I]")
    timeout_initial: Duration = Field(300.0, description="confTO_INITIAL: wait for the greeting")
    timeout_mail: Duration = Field(600.0, description="confTO_MAIL: wait for a command reply")
    timeout_datafinal: Duration = Field(3600.0, description="confTO_DATAFINAL: wait for the reply to the dot")

    @field_validator("queue_interval", "timeout_queuereturn")
    @classmethod
    def _positive(cls, value: float, info: object) -> float:
        if value <= 0:
            name = getattr(info, "field_name", "value")
            raise PydanticCustomError("sendmail_positive", "{name} must be greater than 0s", {"name": name})
        return value


class SendmailState:
    """One sendmail daemon: the queue-run grid and the per-run host status cache."""

    def __init__(self, policy: PresetPolicy[SendmailParams], rng: random.Random) -> None:
        self._p = policy.params
        self._phase = resolve_phase(self._p.queue_phase, self._p.queue_interval, rng)
        self._started: dict[str, float] = {}
        self._down: dict[str, float] = {}

    def _is_run(self, t: float) -> bool:
        return next_tick(t - self._p.queue_interval, self._p.queue_interval, self._phase) == t

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """Delivered at once (background delivery mode)."""
        return Decision.retry(now)

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """Return an expired message; skip a host that already failed in this queue run."""
        self._started[msg.id] = now
        if now - msg.arrival >= self._p.timeout_queuereturn:
            days = self._p.timeout_queuereturn / 86400
            return Failure.expired(host, f"Cannot send message for {days:g} days")
        if self._down.get(host) == now:
            return Failure.suspended(host, "Deferred: host status cached in this queue run")
        return None

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Bounce on 5xx or expiry; otherwise wait for the next queue run."""
        started = self._started.pop(msg.id, now)
        if failure.expiry:
            return Decision.give_up(failure.text, "4.4.7")
        if bounces_at_once(failure):
            return permanent_decision(failure)
        if failure.is_host_error and self._is_run(started):
            self._down[failure.host] = started
        warn_at = self._p.timeout_queuewarn
        warn = warn_at > 0 and msg.warnings == 0 and now - msg.arrival >= warn_at
        at = next_tick(now, self._p.queue_interval, self._phase, not_before=started + self._p.min_queue_age)
        return Decision.retry(at, warn=warn)

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """The host answered: forget its cached status."""
        self._started.pop(msg.id, None)
        self._down.pop(host, None)


def build_sendmail(params: SendmailParams) -> PresetPolicy[SendmailParams]:
    """The ``sendmail`` preset."""
    timeouts = Timeouts(
        connect=params.timeout_connect,
        greeting=params.timeout_initial,
        command=params.timeout_mail,
        data_done=params.timeout_datafinal,
    )
    return PresetPolicy(
        "sendmail", SOURCE, params, SendmailState, timeouts, mx_rule=per_host_next_mx, shares_host_failure=True
    )
