"""Postfix: age-clamped backoff on the deferred-queue scan grid, and dead destinations.

Source: Postfix source (``qmgr_active.c``, ``qmgr_queue.c``, ``qmgr.c``,
``mail_params.h``, ``smtp_proto.c``, ``smtp_trouble.c``) and postconf(5), as
summarised in ``retry-policies.md`` section 1, and a real Postfix 3.7.11
observed with scaled-down timers (the reference's addendum).

After a failed attempt at ``t`` (arrival = queue file creation)::

    if t - arrival >= maximal_queue_lifetime: bounce ("expired"), stop
    not_before = t + clamp(t - arrival, minimal_backoff_time, maximal_backoff_time) - 1
    next attempt = first deferred-queue scan s > t with s >= not_before

The scan grid runs every ``queue_run_delay`` from the queue manager's start
(time 0) plus ``scan_phase``. New mail is tried at once.

Dead destinations: site-level failures (no connection, any greeting or HELO
error, a lost connection or a timeout) feed the destination's in-core queue;
each adds ``1/window`` to its failed pseudo-cohorts and shrinks the window by
one. At ``default_destination_concurrency_failed_cohort_limit`` (1) the
destination is dead for ``minimal_backoff_time``: every attempt in that time
is deferred without connecting, "delivery temporarily suspended". The
in-core queue, and with it the count, goes away when no delivery to it is in
flight at a later instant. The window arithmetic (one step per failure) is
the reference's simplification [I]; Postfix before 2.5 (``postfix-legacy``)
declares the destination dead when the window reaches 0 (the
``qmgr_queue.c`` of that time).

Rounds, as a real Postfix 3.7.11 was seen to run them (real-mtas.md):

* The deferred-queue scan hands a round's messages to delivery one at a
  time, and a refused connection or a 421 greeting is reported back before
  the next message goes out (``serial_rounds``; the engine dispatches the
  round in order, each message after the outcome of the one before, or
  beside the ones in flight while ``decides_alike`` says that even their
  failure could not mark the destination dead). So the
  failures of one round accumulate: with the window at 5 the fourth failure
  (1/5 + 1/4 + 1/3 + 1/2 >= 1) marks the destination dead and the rest of
  the round is suspended. Ten messages due together for a refusing server:
  four connect per retry round, six are deferred without connecting (the
  real one: "about 4", 35-40 connections in 8 rounds). A failure that takes
  simulated time (a connect or greeting timeout) lets the next message go
  out beside it, as the concurrency window would.
* New mail is tried as it arrives, one message at a time: pickup and smtpd
  hand messages over more slowly than a refused connection fails, so a new
  message's first delivery is isolated. Its failure does not count towards
  the destination's failed cohorts (the in-core queue is freed after it),
  even when the scenario's clock puts several arrivals in the same second;
  it is suspended only while the destination is already dead. Ten messages
  submitted together all connect in their first round, and mail arriving a
  second after others failed on arrival connects too, as in the real one.

Known limits: the real scan grid slips by +1 s now and then and stays
slipped (the queue manager re-arms its scan timer from the whole-second
``time()``; the sub-second firing moment creeps 20-40 ms per wake-up). The
model keeps the grid fixed at ``scan_phase``, so a prediction can be a
second early after such a slip; take the phase from the first retry when
comparing with a real log. Which messages of a round connect depends on the
order of the real scan (queue file names); the model keeps the order of its
own round, so only the counts per round compare. A round of many
messages takes real time in the queue manager (fifty messages: more than a
second), and a message handed out after the clock's second changed counts
its next retry from that later second; the model's round takes no time.
The concurrency window does not limit how many deliveries are in flight.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from ..durations import Duration, format_duration
from ._common import Phase, PresetParams, PresetPolicy, bounces_at_once, default_next_mx, next_tick, resolve_phase
from .base import Decision, Failure, FailureKind, MessageView, Stage, Timeouts
from .simple import permanent_decision

__all__ = ["PostfixLegacyParams", "PostfixParams", "build_postfix", "build_postfix_legacy"]

SOURCE = (
    "Postfix source (vdukhovni/postfix 3.12: qmgr_active.c, qmgr_queue.c, qmgr.c, mail_params.h, "
    "smtp_proto.c) and postconf(5); retry-policies.md section 1. Scan grid, -1 s slack, rounds "
    "dispatched one message at a time and isolated new mail checked against a real Postfix 3.7.11 "
    "(real-mtas.md); the scan grid's occasional +1 s slip is not modelled. Dead-destination window "
    "arithmetic simplified [I]."
)
LEGACY_SOURCE = (
    "Postfix before 2.4 defaults (queue_run_delay = minimal_backoff_time = 1000s), same qmgr "
    "algorithm; retry-policies.md section 1.1/1.4. Dead destination when the window reaches 0 "
    "(pre-2.5 qmgr_queue.c)."
)


class PostfixParams(PresetParams):
    """Postfix ≥ 2.4 main.cf defaults that shape retries (names as in postconf(5))."""

    queue_run_delay: Duration = Field(300.0, description="deferred-queue scan interval")
    minimal_backoff_time: Duration = Field(300.0, description="least gap; also the dead-destination hold")
    maximal_backoff_time: Duration = Field(4000.0, description="largest gap before grid rounding")
    maximal_queue_lifetime: Duration = Field(432000.0, description="bounce at the first failure this old; 0 = try once")
    delay_warning_time: Duration = Field(0.0, description="one delay warning after this age; 0 = off")
    smtp_connect_timeout: Duration = Field(30.0, description="charged for an unreachable host")
    smtp_helo_timeout: Duration = Field(300.0, description="charged for a host that never greets")
    smtp_mail_timeout: Duration = Field(300.0, description="charged for a stalled command reply")
    smtp_data_done_timeout: Duration = Field(600.0, description="charged for a stalled reply to the final dot")
    smtp_skip_5xx_greeting: bool = Field(True, description="treat a 5xx greeting as 4xx (defer, not bounce)")
    initial_destination_concurrency: int = Field(5, ge=1, description="starting concurrency window")
    default_destination_concurrency_failed_cohort_limit: float = Field(
        1.0, ge=0, description="failed pseudo-cohorts that make a destination dead; 0 = never"
    )
    scan_phase: Phase = Field(0.0, description="offset of the scan grid from time 0, or random")

    @model_validator(mode="after")
    def _sane(self) -> PostfixParams:
        for name in ("queue_run_delay", "minimal_backoff_time", "maximal_backoff_time"):
            if getattr(self, name) < 1:
                raise PydanticCustomError(
                    "postfix_min", "{name} must be at least 1s (Postfix enforces a 1 second minimum)", {"name": name}
                )
        if self.minimal_backoff_time > self.maximal_backoff_time:
            raise PydanticCustomError(
                "postfix_backoff",
                "minimal_backoff_time ({lo}) is larger than maximal_backoff_time ({hi}); raise the maximum",
                {"lo": format_duration(self.minimal_backoff_time), "hi": format_duration(self.maximal_backoff_time)},
            )
        return self


class PostfixLegacyParams(PostfixParams):
    """Postfix ≤ 2.3 defaults: 1000 s scans and minimal backoff, no failed-cohort limit."""

    queue_run_delay: Duration = Field(1000.0, description="deferred-queue scan interval")
    minimal_backoff_time: Duration = Field(1000.0, description="least gap; also the dead-destination hold")
    default_destination_concurrency_failed_cohort_limit: float = Field(
        0.0, ge=0, description="0: the pre-2.5 rule (dead when the window reaches 0)"
    )


def _site_level(failure: Failure) -> bool:
    """Failures that throttle the destination (``SMTP_MISC_FAIL_THROTTLE``)."""
    if failure.kind in (FailureKind.REFUSED, FailureKind.TIMEOUT, FailureKind.DROPPED):
        return True
    return failure.stage in (Stage.CONNECT, Stage.GREETING, Stage.EHLO)


@dataclass
class _DestQueue:
    """Postfix's in-core queue for one destination (``QMGR_QUEUE``)."""

    window: int
    fail_cohorts: float = 0.0
    busy: int = 0
    last_done: float = float("-inf")
    dead_until: float | None = None
    reason: str = ""


class PostfixState:
    """One Postfix instance: the scan grid and its per-destination in-core queues."""

    def __init__(self, policy: PresetPolicy[PostfixParams], rng: random.Random) -> None:
        self._p = policy.params
        self._phase = resolve_phase(self._p.scan_phase, self._p.queue_run_delay, rng)
        self._queues: dict[str, _DestQueue] = {}
        self._in_flight: dict[str, bool] = {}  # message id -> a new message's first delivery

    def _queue(self, dest: str, now: float) -> _DestQueue:
        queue = self._queues.get(dest)
        if queue is not None and queue.dead_until is not None and now >= queue.dead_until:
            queue.dead_until, queue.fail_cohorts = None, 0.0  # the unthrottle timer fired
            queue.window = queue.busy or self._p.initial_destination_concurrency
        if queue is not None and queue.dead_until is None and queue.busy == 0 and now > queue.last_done:
            queue = None  # an empty in-core queue is freed
        if queue is None:
            queue = self._queues[dest] = _DestQueue(window=self._p.initial_destination_concurrency)
        return queue

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """New mail is tried at once (``incoming`` is scanned immediately)."""
        return Decision.retry(now)

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """Defer without connecting while the destination is dead."""
        queue = self._queue(msg.destination, now)
        if queue.dead_until is not None:
            return Failure.suspended(host, f"delivery temporarily suspended: {queue.reason}")
        queue.busy += 1
        self._in_flight[msg.id] = now == msg.arrival
        return None

    def decides_alike(self, destination: str, failures: int, now: float) -> bool:
        """True when *failures* more site-level failures could not mark *destination* dead (or it already is).

        The engine then lets the next message of a round go out beside the
        ones in flight: ``before_connect`` would connect whatever they meet.
        """
        queue = self._queue(destination, now)
        if queue.dead_until is not None:
            return True
        limit = self._p.default_destination_concurrency_failed_cohort_limit
        if limit <= 0:
            return queue.window - failures > 0
        cohorts, window = queue.fail_cohorts, queue.window
        for _ in range(failures):
            cohorts += 1.0 / window
            if cohorts >= limit:
                return False
            window = max(1, window - 1)
        return True

    def _done(self, msg: MessageView, failure: Failure | None, now: float) -> None:
        new_mail = self._in_flight.pop(msg.id, False)
        queue = self._queues.get(msg.destination)
        if queue is None:
            return
        queue.busy = max(0, queue.busy - 1)
        queue.last_done = now
        if queue.dead_until is not None:
            return
        if new_mail and failure is not None:
            return  # an isolated first delivery: its in-core queue is freed, the failure forgotten
        if failure is None or not _site_level(failure):
            queue.fail_cohorts = 0.0  # positive feedback (qmgr_queue_unthrottle)
            return
        limit = self._p.default_destination_concurrency_failed_cohort_limit
        if limit > 0:
            queue.fail_cohorts += 1.0 / queue.window
            dead = queue.fail_cohorts >= limit
            queue.window = max(1, queue.window - 1)
        else:
            queue.window -= 1
            dead = queue.window <= 0
        if dead:
            queue.dead_until = now + self._p.minimal_backoff_time
            queue.reason = failure.describe()

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Bounce on 5xx or expiry; otherwise the age-clamped backoff on the scan grid."""
        if failure.kind is not FailureKind.SUSPENDED:
            self._done(msg, failure, now)
        soft = frozenset({Stage.GREETING}) if self._p.smtp_skip_5xx_greeting else frozenset()
        if bounces_at_once(failure, soft_stages=soft):
            return permanent_decision(failure)
        age = now - msg.arrival
        if age >= self._p.maximal_queue_lifetime:
            return Decision.give_up("message expired: status=expired, returned to sender", "4.4.7")
        warn_at = self._p.delay_warning_time
        warn = warn_at > 0 and msg.warnings == 0 and now >= msg.arrival + warn_at - 1
        delay = min(max(age, self._p.minimal_backoff_time), self._p.maximal_backoff_time)
        at = next_tick(now, self._p.queue_run_delay, self._phase, not_before=now + delay - 1)
        return Decision.retry(at, warn=warn)

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """A delivery that worked is positive feedback for its destination."""
        self._done(msg, None, now)


def postfix_next_mx(failure: Failure) -> bool:
    """Postfix moves on like RFC 5321, and also after a 5xx greeting (``smtp_skip_5xx_greeting``).

    A deferral without connecting is a dead destination: the whole nexthop
    domain is suspended, so no other MX host is tried.
    """
    if failure.kind is FailureKind.PERMFAIL and failure.stage is Stage.GREETING:
        return True
    return default_next_mx(failure)


def _timeouts(p: PostfixParams) -> Timeouts:
    return Timeouts(
        connect=p.smtp_connect_timeout,
        greeting=p.smtp_helo_timeout,
        command=p.smtp_mail_timeout,
        data_done=p.smtp_data_done_timeout,
    )


def build_postfix(params: PostfixParams) -> PresetPolicy[PostfixParams]:
    """The ``postfix`` preset (Postfix ≥ 2.4 defaults)."""
    return PresetPolicy(
        "postfix", SOURCE, params, PostfixState, _timeouts(params), mx_rule=postfix_next_mx, serial_rounds=True
    )


def build_postfix_legacy(params: PostfixLegacyParams) -> PresetPolicy[PostfixParams]:
    """The ``postfix-legacy`` preset (Postfix ≤ 2.3 defaults)."""
    return PresetPolicy(
        "postfix-legacy",
        LEGACY_SOURCE,
        params,
        PostfixState,
        _timeouts(params),
        mx_rule=postfix_next_mx,
        serial_rounds=True,
    )
