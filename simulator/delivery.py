"""Sending MTAs and the life of one delivery job, as SimPy processes.

A ``Job`` is one message in one MTA's queue: an original sender's, or a
backup MX relaying a message it accepted. ``deliver()`` asks the MTA's
retry policy when to try, walks the domain's MX hosts in order (falling back
as the MTA does), runs each attempt through the bridge and charges the
simulated time the attempt took.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

from .faults import SessionPlan
from .ledger import MessageRecord
from .policies import Decision, Failure, FailureKind, MessageView, PolicyState, RetryPolicy, Stage, Timeouts
from .receiver import Mode, SessionContext
from .routing import MX_ADDRESS_LIMIT, Resolver, next_mx_allowed
from .transport import Attempt, Outcome
from .wire import LOOPBACK

if TYPE_CHECKING:
    from .engine import Replay

__all__ = ["Mta", "Job", "deliver", "STAGE_ORDER", "SHARES_HOST_STATUS"]

STAGE_ORDER = (Stage.GREETING, Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DOT)

SHARES_HOST_STATUS = frozenset({"exim", "sendmail", "exchange", "exchange-edge"})
"""MTAs that, within one queue run, do not connect again to a host that just failed.

Exim skips a host whose retry record was just written ("retry time not
reached"), Sendmail keeps host status for the rest of the queue run, and
Exchange retries a whole delivery queue with one connection
(retry-policies.md sections 2, 3 and 5). When several of their messages go
to one host at the same instant, the first connects and the others share
its host-level failure without a connection of their own."""


@dataclass
class Mta:
    """A simulated sending MTA: its policy, runtime retry state and DNS cache."""

    name: str
    group: str
    policy: RetryPolicy
    state: PolicyState
    resolver: Resolver
    relay_for: str | None = None  #: the backup MX server this MTA is the queue of


@dataclass
class Job:
    """One message in one MTA's queue."""

    record: MessageRecord
    mta: Mta
    domain: str
    arrival: float
    attempts: int = 0
    connections: int = 0
    warnings: int = 0
    last_error: str = ""
    content: bytes = field(default=b"", repr=False)

    @property
    def relayed(self) -> bool:
        """True for a backup MX forwarding the message."""
        return self.mta.relay_for is not None

    def view(self) -> MessageView:
        """What the retry policy sees."""
        return MessageView(self.record.message_id, self.arrival, self.attempts, self.warnings, self.domain)

    def sync(self) -> None:
        """Mirror an original sender's counters onto the ledger record."""
        if not self.relayed:
            r = self.record
            r.attempts, r.connections, r.last_error = self.attempts, self.connections, self.last_error


def _timeout_for(stage: Stage, t: Timeouts) -> float:
    if stage is Stage.CONNECT:
        return t.connect
    if stage is Stage.GREETING:
        return t.greeting
    if stage is Stage.DOT:
        return t.data_done
    return t.command


def with_client_timeouts(plan: SessionPlan, timeouts: Timeouts) -> SessionPlan:
    """A server slower than the client's timeout at a stage stalls there: the client gives up."""
    for stage in STAGE_ORDER:
        if plan.latency.get(stage, 0.0) > _timeout_for(stage, timeouts):
            plan.stall = stage
            break
    return plan


def charge(failure: Failure | None, plan: SessionPlan | None, timeouts: Timeouts) -> float:
    """Simulated seconds the attempt took: latency of the stages reached, plus a timeout if one fired."""
    end = failure.stage if failure is not None else Stage.DOT
    spent = 0.0
    if plan is not None:
        for stage in STAGE_ORDER:
            if failure is not None and failure.kind is FailureKind.TIMEOUT and stage is end:
                break
            spent += plan.latency.get(stage, 0.0)
            if stage is end:
                break
    if failure is not None and failure.kind is FailureKind.TIMEOUT:
        spent += _timeout_for(end, timeouts)
    return spent


def _submit(replay: Replay, job: Job, host: str) -> tuple[simpy.Event, SessionPlan | None]:
    r = job.record
    server = replay.servers[host]
    if not job.content:
        job.content = replay.content(r)
    mail_from = r.originator  # a relay forwards with the original envelope sender
    plan = None
    if server.listening:
        plan = with_client_timeouts(server.plan(SessionContext(r.message_id, mail_from, r.recipient)), job.mta.policy.timeouts)
    replay.log("attempt", message=r.message_id, sender=job.mta.name, server=host, attempt=job.attempts)
    address = replay.wire[host].address if replay.wire else (LOOPBACK, 0)
    attempt = Attempt(
        message_id=r.message_id,
        server=host,
        address=address,
        helo=f"{job.mta.name}.example",
        mail_from=mail_from,
        rcpt_to=r.recipient,
        content=job.content,
        plan=plan,
    )
    return replay.bridge.submit(attempt), plan


def _as_seen(replay: Replay, failure: Failure | None, host: str) -> Failure:
    """Map the wire's stand-ins back to the model's meaning."""
    assert failure is not None
    if failure.kind is FailureKind.TIMEOUT and failure.stage is Stage.GREETING and replay.servers[host].mode is Mode.UNREACHABLE:
        return Failure(FailureKind.TIMEOUT, Stage.CONNECT, failure.host, None, "connect timed out (host unreachable)")
    return failure


def _hosts(replay: Replay, job: Job) -> tuple[str, ...]:
    hosts = job.mta.resolver.mx(job.domain, replay.env.now)
    relay = job.mta.relay_for
    if relay is not None:
        # RFC 5321 5.1: a relay that is itself an MX discards records of equal or lower preference.
        hosts = hosts[: hosts.index(relay)] if relay in hosts else hosts
    return hosts[:MX_ADDRESS_LIMIT]


def deliver(replay: Replay, job: Job) -> Generator[simpy.Event, Any, None]:
    """The SimPy process of one job, from arrival to acceptance or bounce."""
    env = replay.env
    r, mta = job.record, job.mta
    if job.arrival > env.now:
        yield env.timeout(job.arrival - env.now)
    replay.log("submit" if not job.relayed else "relay_queued", message=r.message_id, sender=mta.name)
    decision = mta.state.on_arrival(job.view(), env.now)
    while True:
        if decision.warn:
            _warn(replay, job, decision)
        if decision.bounce is not None:
            replay.bounce(job, decision)
            return
        assert decision.retry_at is not None
        if decision.retry_at > env.now:
            yield env.timeout(decision.retry_at - env.now)
        hosts = _hosts(replay, job)
        if not hosts:
            job.attempts += 1
            failure = Failure.suspended(mta.relay_for or "", "no more preferred MX host to relay to")
            replay.log("suspended", message=r.message_id, sender=mta.name, server="", attempt=job.attempts, text=failure.text)
            job.last_error = failure.describe()
            job.sync()
            decision = mta.state.after_failure(job.view(), failure, env.now)
            continue
        for n, host in enumerate(hosts):
            job.attempts += 1
            failure = mta.state.before_connect(job.view(), host, env.now)
            probe = replay.host_probe(mta, host) if failure is None and mta.policy.name in SHARES_HOST_STATUS else None
            if probe is not None:
                seen: Outcome = yield probe
                if seen.failure is not None and seen.failure.is_host_error:
                    failure = _as_seen(replay, seen.failure, host)
                    replay.log("cached", message=r.message_id, sender=mta.name, server=host, attempt=job.attempts, kind=failure.kind.value, text=failure.describe()[:120])
            if failure is None:
                job.connections += 1
                job.sync()
                event, plan = _submit(replay, job, host)
                if mta.policy.name in SHARES_HOST_STATUS:
                    replay.remember_probe(mta, host, event)
                outcome: Outcome = yield event
                if outcome.accepted:
                    charged = charge(None, plan, mta.policy.timeouts)
                    if charged:
                        yield env.timeout(charged)
                    replay.accepted(job, host, outcome)
                    mta.state.after_success(job.view(), host, env.now)
                    return
                failure = _as_seen(replay, outcome.failure, host)
                replay.log("reply", message=r.message_id, server=host, attempt=job.attempts, kind=failure.kind.value, stage=failure.stage.value, code=failure.code, text=failure.text[:120])
                charged = charge(failure, plan, mta.policy.timeouts)
                if charged:
                    yield env.timeout(charged)
            elif probe is not None and failure.kind is not FailureKind.SUSPENDED:
                pass  # shared the first connection's host failure (logged as "cached")
            elif failure.expiry:
                job.attempts -= 1  # a lifetime wake-up: returned without connecting
                replay.log("expired", message=r.message_id, server=host, text=failure.text)
            else:
                replay.log("suspended", message=r.message_id, server=host, attempt=job.attempts, text=failure.text)
            job.last_error = failure.describe()
            job.sync()
            decision = mta.state.after_failure(job.view(), failure, env.now)
            last = n == len(hosts) - 1
            if decision.bounce is not None or failure.expiry or last or not next_mx_allowed(mta.policy.name, failure):
                break
            if decision.warn:
                _warn(replay, job, decision)
            replay.log("next_mx", message=r.message_id, sender=mta.name, after=host, to=hosts[n + 1])


def _warn(replay: Replay, job: Job, decision: Decision) -> None:
    job.warnings += 1
    job.record.delay_warnings += 1
    replay.log("warning", message=job.record.message_id, sender=job.mta.name, attempts=job.attempts, last_error=job.last_error)
    replay.notify(job, decision)
