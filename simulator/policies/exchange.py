"""Microsoft Exchange Server 2016/2019 transport: per-queue glitch, transient and outbound retries.

Source: Microsoft Learn "Message retry, resubmit, and expiration intervals"
(Exchange 2016/2019; MicrosoftDocs/OfficeDocs-Exchange
``mail-flow/queues/message-intervals.md``) and the Set-TransportService
reference pages for the defaults [V]; retry-policies.md section 5.

[I] The sequencing is inferred from the parameter descriptions (Microsoft
publishes no pseudo-code; a third-party flowchart agrees): retry state is
per delivery queue (the next hop, here the recipient domain). After the
queue's connection fails, it retries ``QueueGlitchRetryCount`` times every
``QueueGlitchRetryInterval``, then ``TransientFailureRetryCount`` times every
``TransientFailureRetryInterval``, then every
``OutboundConnectionFailureRetryInterval``. Every message in the queue waits
for the queue's next attempt, new ones included.

MX failover: a connection round tries the next hop's hosts in turn
("Attempted failover to alternate host", reference section 8 note). The
queue goes to Retry at the first failure of a round, but in the same
instant the hosts that have not failed in the round may still be tried;
a host that already failed is not connected again by the queue's other
messages (one connection per queue, host and round; they skip it with a
``host_only`` suspension and move on). A failure that comes while the queue
is in Retry belongs to the current round (a failover host, or a connection
the round shares) and does not advance the retry sequence. A 4xx to one message while
the queue is connected retries that message after ``MessageRetryInterval``
[I]. ``MessageExpirationTimeout`` returns the message with an NDR (4.4.7) at
exactly that age, without another connection. ``DelayNotificationTimeout``:
one delay DSN at the first failure at or after that age (Exchange's timer
sends it at the exact age; the simulator can only send it with a failure).
A 5xx to MAIL, RCPT, DATA or the dot is an NDR; a 5xx greeting is treated as
a connection failure [I]. The connect timeout (30 s) and the 10-minute
ConnectionInactivityTimeOut used for stalled replies are [I].
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from ..durations import Duration
from ._common import PresetParams, PresetPolicy, bounces_at_once, default_next_mx
from .base import Decision, Failure, FailureKind, MessageView, Stage, Timeouts
from .simple import permanent_decision

__all__ = ["ExchangeEdgeParams", "ExchangeParams", "build_exchange", "build_exchange_edge"]

SOURCE = (
    "Microsoft Learn: Message retry, resubmit, and expiration intervals (Exchange 2016/2019), "
    "Set-TransportService reference (Mailbox server defaults) [V]; retry-policies.md section 5. "
    "Per-queue sequencing of glitch/transient/outbound retries is inferred [I]."
)
EDGE_SOURCE = SOURCE.replace("Mailbox server defaults", "Edge Transport defaults: transient 10 min, outbound 30 min")


class ExchangeParams(PresetParams):
    """Exchange Mailbox-server transport defaults (Set-TransportService / EdgeTransport.exe.config names)."""

    queue_glitch_retry_count: int = Field(4, ge=0, description="QueueGlitchRetryCount")
    queue_glitch_retry_interval: Duration = Field(60.0, description="QueueGlitchRetryInterval")
    transient_failure_retry_count: int = Field(6, ge=0, le=15, description="TransientFailureRetryCount (0-15)")
    transient_failure_retry_interval: Duration = Field(300.0, description="TransientFailureRetryInterval")
    outbound_connection_failure_retry_interval: Duration = Field(
        600.0, description="OutboundConnectionFailureRetryInterval"
    )
    message_retry_interval: Duration = Field(900.0, description="MessageRetryInterval (per-message 4xx)")
    message_expiration_timeout: Duration = Field(172800.0, description="MessageExpirationTimeout: NDR at this age")
    delay_notification_timeout: Duration = Field(14400.0, description="DelayNotificationTimeout; 0 = off")
    connect_timeout: Duration = Field(30.0, description="charged for an unreachable host [I]")
    connection_inactivity_timeout: Duration = Field(600.0, description="charged for a stalled reply [I]")

    @model_validator(mode="after")
    def _positive(self) -> ExchangeParams:
        for name in (
            "queue_glitch_retry_interval",
            "transient_failure_retry_interval",
            "outbound_connection_failure_retry_interval",
            "message_retry_interval",
            "message_expiration_timeout",
        ):
            if getattr(self, name) <= 0:
                raise PydanticCustomError("exchange_positive", "{name} must be greater than 0s", {"name": name})
        return self


class ExchangeEdgeParams(ExchangeParams):
    """Exchange Edge Transport defaults: transient 10 min, outbound 30 min."""

    transient_failure_retry_interval: Duration = Field(600.0, description="TransientFailureRetryInterval")
    outbound_connection_failure_retry_interval: Duration = Field(
        1800.0, description="OutboundConnectionFailureRetryInterval"
    )


@dataclass
class _Queue:
    """One delivery queue (next hop) in status Retry."""

    failures: int = 0  #: failed connection rounds so far
    last_failure: float | None = None  #: the latest instant at which a host failed in the current round
    next_try: float | None = None  #: the queue's next connection attempt
    failed_hosts: set[str] = field(default_factory=set)  #: hosts that failed in the current round

    def in_retry(self, now: float) -> bool:
        """True while the queue waits for its next connection attempt."""
        return self.next_try is not None and self.next_try > now


class ExchangeState:
    """One Exchange transport service: its delivery queues."""

    def __init__(self, policy: PresetPolicy[ExchangeParams], rng: random.Random) -> None:
        self._p = policy.params
        self._queues: dict[str, _Queue] = {}

    def _gap(self, failures: int) -> float:
        p = self._p
        if failures <= p.queue_glitch_retry_count:
            return p.queue_glitch_retry_interval
        if failures <= p.queue_glitch_retry_count + p.transient_failure_retry_count:
            return p.transient_failure_retry_interval
        return p.outbound_connection_failure_retry_interval

    def _retry(self, msg: MessageView, at: float, now: float) -> Decision:
        expires = msg.arrival + self._p.message_expiration_timeout
        warn_at = self._p.delay_notification_timeout
        warn = warn_at > 0 and msg.warnings == 0 and now - msg.arrival >= warn_at
        return Decision.retry(min(at, expires), warn=warn)

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """A queue in Retry holds new messages until its next connection attempt."""
        queue = self._queues.get(msg.destination)
        if queue is not None and queue.next_try is not None and queue.in_retry(now):
            return Decision.retry(queue.next_try)
        return Decision.retry(now)

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """Expire the message at its expiration age; wait while the queue is in Retry.

        In the instant of a failed round, the hosts that have not failed in
        it may still be tried (failover); a host that has is skipped.
        """
        if now - msg.arrival >= self._p.message_expiration_timeout:
            return Failure.expired(host, "QUEUE.Expired; message expired")
        queue = self._queues.get(msg.destination)
        if queue is None or not queue.in_retry(now):
            return None
        if queue.last_failure == now:
            if host not in queue.failed_hosts:
                return None
            return Failure.suspended(host, "host already failed in this connection attempt", host_only=True)
        return Failure.suspended(host, "queue is in Retry")

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Advance the queue's retry sequence on a connection failure; NDR on 5xx or expiry."""
        if failure.expiry:
            return Decision.give_up("message expired (QUEUE.Expired)", "4.4.7")
        if bounces_at_once(failure, soft_stages=frozenset({Stage.GREETING, Stage.EHLO})):
            return permanent_decision(failure)
        queue = self._queues.setdefault(msg.destination, _Queue())
        if failure.kind is FailureKind.SUSPENDED:
            return self._retry(msg, queue.next_try if queue.next_try is not None else now, now)
        if not failure.is_host_error:
            return self._retry(msg, now + self._p.message_retry_interval, now)
        if queue.next_try is not None and queue.in_retry(now):
            # The current round: a failover host, or a connection the queue's messages share.
            queue.failed_hosts.add(failure.host)
            if queue.last_failure is None or now > queue.last_failure:
                queue.last_failure = now
            return self._retry(msg, queue.next_try, now)
        # A new connection round failed: the queue goes to Retry.
        queue.failures += 1
        queue.last_failure = now
        queue.failed_hosts = {failure.host}
        queue.next_try = now + self._gap(queue.failures)
        return self._retry(msg, queue.next_try, now)

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """A delivery through the queue's next hop takes the queue out of Retry."""
        self._queues.pop(msg.destination, None)


def exchange_next_mx(failure: Failure) -> bool:
    """The next hop's other hosts are tried after a connection failure (reference section 8 note).

    A queue in Retry holds every host of the next hop, so a deferral without
    connecting does not move on, except when only this host was skipped
    because it already failed in the same connection round (``host_only``).
    """
    if failure.kind is FailureKind.SUSPENDED:
        return failure.host_only and not failure.expiry
    return default_next_mx(failure)


def _timeouts(p: ExchangeParams) -> Timeouts:
    return Timeouts(
        connect=p.connect_timeout,
        greeting=p.connection_inactivity_timeout,
        command=p.connection_inactivity_timeout,
        data_done=p.connection_inactivity_timeout,
    )


def build_exchange(params: ExchangeParams) -> PresetPolicy[ExchangeParams]:
    """The ``exchange`` preset (Mailbox server)."""
    return PresetPolicy(
        "exchange",
        SOURCE,
        params,
        ExchangeState,
        _timeouts(params),
        mx_rule=exchange_next_mx,
        shares_host_failure=True,
    )


def build_exchange_edge(params: ExchangeEdgeParams) -> PresetPolicy[ExchangeParams]:
    """The ``exchange-edge`` preset (Edge Transport server)."""
    return PresetPolicy(
        "exchange-edge",
        EDGE_SOURCE,
        params,
        ExchangeState,
        _timeouts(params),
        mx_rule=exchange_next_mx,
        shares_host_failure=True,
    )
