"""Sending MTAs and the life of one delivery job, as SimPy processes.

A ``Job`` is one message in one MTA's queue: an original sender's, or a
backup MX relaying a message it accepted. ``deliver()`` asks the MTA's
retry policy when to try, walks the MX hosts the router gives (falling back
as the MTA does), runs each attempt through the submit function and charges
the simulated time the attempt took.

A delivery process knows only its collaborators (``Couriers``): the SimPy
environment, a router, a submit function, an event sink, the ledger keeper
that records acceptances, bounces and warnings, the instant's host probes
and its serial rounds. MTA quirks (falling back to the next MX, sharing a
host's failure, sending a retry round out one message at a time) are the
policy's own answers.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import simpy

from . import dsn
from .events import (
    AcceptedEvent,
    AttemptEvent,
    BounceEvent,
    CachedEvent,
    Event,
    ExpiredEvent,
    NextMxEvent,
    RelayedEvent,
    RelayQueuedEvent,
    ReplyEvent,
    SubmitEvent,
    SuspendedEvent,
    WarningEvent,
)
from .faults import SessionPlan
from .ledger import Ledger
from .policies import Decision, Failure, FailureKind, MessageView, PolicyState, RetryPolicy, RoundState, Stage, Timeouts
from .routing import Resolver
from .transport import Outcome

__all__ = [
    "LedgerKeeper",
    "Mta",
    "Job",
    "Couriers",
    "Keeper",
    "HostProbes",
    "Rounds",
    "deliver",
    "STAGE_ORDER",
    "charge",
]

STAGE_ORDER = (Stage.GREETING, Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DOT)


@dataclass
class Mta:
    """A simulated sending MTA: its policy, runtime retry state and DNS cache."""

    name: str
    group: str
    policy: RetryPolicy
    state: PolicyState
    resolver: Resolver
    relay_for: str | None = None  #: the backup MX server this MTA is the queue of


class Job:
    """One message in one MTA's queue: row *index* of the ledger, and the MTA's counters for it.

    Only messages in a queue have a ``Job``: it is made when the message
    arrives (or a backup MX accepts it) and dropped when the MTA is done.
    """

    __slots__ = (
        "arrival",
        "attempts",
        "connections",
        "domain",
        "index",
        "last_error",
        "ledger",
        "message_id",
        "mta",
        "warnings",
    )

    def __init__(self, ledger: Ledger, index: int, mta: Mta, domain: str, arrival: float) -> None:
        self.ledger = ledger
        self.index = index
        self.message_id = ledger.message_id(index)
        self.mta = mta
        self.domain = domain
        self.arrival = arrival
        self.attempts = 0
        self.connections = 0
        self.warnings = 0
        self.last_error = ""

    @property
    def originator(self) -> str:
        """The envelope sender (made when asked: a million queued jobs need not hold it)."""
        return self.ledger.originator(self.index)

    @property
    def recipient(self) -> str:
        """The envelope recipient."""
        return self.ledger.recipient(self.index)

    @property
    def relayed(self) -> bool:
        """True for a backup MX forwarding the message."""
        return self.mta.relay_for is not None

    def view(self) -> MessageView:
        """What the retry policy sees."""
        return MessageView(self.message_id, self.arrival, self.attempts, self.warnings, self.domain)

    def sync(self) -> None:
        """Mirror an original sender's counters onto the ledger."""
        if self.mta.relay_for is None:
            ledger, i = self.ledger, self.index
            ledger.attempts[i] = self.attempts
            ledger.connections[i] = self.connections
            ledger.last_error[i] = ledger.texts.number(self.last_error)


class Keeper(Protocol):
    """Records what the sender's decisions mean for the ledger and the originator."""

    def accepted(self, job: Job, server: str, outcome: Outcome) -> None:
        """A 250 to the final dot."""

    def bounce(self, job: Job, decision: Decision) -> None:
        """The MTA gives up on the job and tells the originator."""

    def warn(self, job: Job, decision: Decision) -> None:
        """The MTA sends its originator a delay warning."""


class HostProbes:
    """The first connection each MTA opened to each host at the current instant.

    MTAs whose policy shares a host's failure (``RetryPolicy.shares_host_failure``)
    wait for that connection instead of opening another.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._probes: dict[tuple[str, str], simpy.Event] = {}
        self._at = -1.0

    def find(self, mta: Mta, host: str) -> simpy.Event | None:
        """The connection *mta* already opened to *host* at this instant, if any."""
        if self._at != self._env.now:
            return None
        return self._probes.get((mta.name, host))

    def remember(self, mta: Mta, host: str, event: simpy.Event) -> None:
        """Record the first connection of *mta* to *host* at this instant."""
        if self._at != self._env.now:
            self._probes.clear()
            self._at = self._env.now
        self._probes.setdefault((mta.name, host), event)


class Rounds:
    """Retry rounds that go out one message at a time (``RetryPolicy.serial_rounds``).

    Within one simulated instant, the messages of one MTA to one
    destination form a queue: each asks its policy whether to connect only
    once the message ahead of it has had its outcome applied to the retry
    state, or has gone on to spend simulated time on an open connection (a
    timeout, a slow server), when the next one may go out beside it. A
    Postfix queue manager does this: its deferred-queue scan hands out one
    message at a time, and a refused connection is reported back before the
    next message is dispatched, so failures accumulate and mark the
    destination dead part way through the round. New mail of the same
    instant queues up behind the round (the scan runs at the start of its
    second, new mail arrives during it): a round that marks the
    destination dead holds the new mail too.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._out: dict[tuple[str, str], list[tuple[simpy.Event, bool]]] = {}
        self._at = -1.0

    def line_up(self, mta: Mta, domain: str, counted: bool) -> Generator[simpy.Event, Any, simpy.Event]:
        """Wait until this message may ask its policy; returns its turn, to be given with ``done``.

        A message waits while the attempts still out ahead of it could change
        its policy's answer. A policy state that can tell (``RoundState``:
        Postfix knows how many failures its destination can take before it
        is dead) lets messages go out together as long as even the failure
        of every attempt ahead would not change it: the same answers from
        its policy as one at a time, in fewer trips to the wire (servers
        shared with other senders may see the sessions in another order).
        *counted* says whether
        this message's failure feeds that state (a retry; not new mail).
        """
        env = self._env
        if self._at != env.now:
            self._out.clear()
            self._at = env.now
        out = self._out.setdefault((mta.name, domain), [])
        state = mta.state
        while True:
            out[:] = [(turn, c) for turn, c in out if not turn.triggered]
            if not out:
                break
            failures = sum(1 for _, c in out if c)
            if isinstance(state, RoundState) and state.decides_alike(domain, failures, env.now):
                break
            yield out[-1][0]
        turn = env.event()
        out.append((turn, counted))
        return turn

    @staticmethod
    def done(turn: simpy.Event | None) -> None:
        """Let the next message of the round go (no-op when there is no turn or it was given)."""
        if turn is not None and not turn.triggered:
            turn.succeed()


@dataclass(frozen=True)
class Couriers:
    """What a delivery process works with, and nothing more."""

    env: simpy.Environment
    route: Callable[[Job], tuple[str, ...]]  #: the MX hosts to try now, in order
    submit: Callable[[Job, str], tuple[simpy.Event, SessionPlan | None]]  #: one attempt on the wire
    emit: Callable[[Event], None]  #: the event sink
    stamp: Callable[[], dict[str, Any]]  #: ``t`` and ``time`` of the current instant, for events
    keeper: Keeper
    probes: HostProbes
    rounds: Rounds
    unreachable: Callable[[str], bool]  #: whether a host is down as "unreachable" (for the wire's stand-in)
    failed: Callable[[Job, Exception], Exception]  #: the error that aborts the run when a job's process fails


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
    if not plan.latency:
        return plan
    for stage in STAGE_ORDER:
        if plan.latency.get(stage, 0.0) > _timeout_for(stage, timeouts):
            plan.stall = stage
            break
    return plan


def charge(failure: Failure | None, plan: SessionPlan | None, timeouts: Timeouts) -> float:
    """Simulated seconds the attempt took: latency of the stages reached, plus a timeout if one fired."""
    if (plan is None or not plan.latency) and (failure is None or failure.kind is not FailureKind.TIMEOUT):
        return 0.0
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


def _as_seen(c: Couriers, failure: Failure | None, host: str) -> Failure:
    """Map the wire's stand-ins back to the model's meaning."""
    assert failure is not None
    if failure.kind is FailureKind.TIMEOUT and failure.stage is Stage.GREETING and c.unreachable(host):
        return Failure(FailureKind.TIMEOUT, Stage.CONNECT, failure.host, None, "connect timed out (host unreachable)")
    return failure


def deliver(c: Couriers, job: Job) -> Generator[simpy.Event, Any, None]:
    """The SimPy process of one job, from arrival to acceptance or bounce (then the keeper has recorded it)."""
    try:
        env, emit, stamp = c.env, c.emit, c.stamp
        mta = job.mta
        message_id = job.message_id
        policy = mta.policy
        if job.arrival > env.now:
            yield env.timeout(job.arrival - env.now)
        if job.relayed:
            emit(RelayQueuedEvent(**stamp(), message=message_id, sender=mta.name))
        else:
            emit(SubmitEvent(**stamp(), message=message_id, sender=mta.name))
        decision = mta.state.on_arrival(job.view(), env.now)
        while True:
            if decision.warn:
                c.keeper.warn(job, decision)
            if decision.bounce is not None:
                c.keeper.bounce(job, decision)
                return
            assert decision.retry_at is not None
            if decision.retry_at > env.now:
                yield env.timeout(decision.retry_at - env.now)
            hosts = c.route(job)
            if not hosts:
                job.attempts += 1
                nowhere = Failure.suspended(mta.relay_for or "", "no more preferred MX host to relay to")
                emit(
                    SuspendedEvent(
                        **stamp(),
                        message=message_id,
                        sender=mta.name,
                        server="",
                        attempt=job.attempts,
                        text=nowhere.text,
                    )
                )
                job.last_error = nowhere.describe()
                job.sync()
                decision = mta.state.after_failure(job.view(), nowhere, env.now)
                continue
            turn = None
            if policy.serial_rounds:
                if not job.attempts:
                    yield env.timeout(0)  # new mail comes in after the instant's retry round has started
                turn = yield from c.rounds.line_up(mta, job.domain, counted=bool(job.attempts))
            for n, host in enumerate(hosts):
                job.attempts += 1
                failure = mta.state.before_connect(job.view(), host, env.now)
                probe = c.probes.find(mta, host) if failure is None and policy.shares_host_failure else None
                if probe is not None:
                    seen: Outcome = yield probe
                    if seen.failure is not None and seen.failure.is_host_error:
                        failure = _as_seen(c, seen.failure, host)
                        emit(
                            CachedEvent(
                                **stamp(),
                                message=message_id,
                                sender=mta.name,
                                server=host,
                                attempt=job.attempts,
                                kind=failure.kind.value,
                                text=failure.describe()[:120],
                            )
                        )
                if failure is None:
                    job.connections += 1
                    job.sync()
                    emit(
                        AttemptEvent(**stamp(), message=message_id, sender=mta.name, server=host, attempt=job.attempts)
                    )
                    event, plan = c.submit(job, host)
                    if policy.shares_host_failure:
                        c.probes.remember(mta, host, event)
                    outcome: Outcome = yield event
                    if outcome.accepted:
                        charged = charge(None, plan, policy.timeouts)
                        if charged:
                            Rounds.done(turn)
                            yield env.timeout(charged)
                        c.keeper.accepted(job, host, outcome)
                        mta.state.after_success(job.view(), host, env.now)
                        Rounds.done(turn)
                        return
                    failure = _as_seen(c, outcome.failure, host)
                    emit(
                        ReplyEvent(
                            **stamp(),
                            message=message_id,
                            server=host,
                            attempt=job.attempts,
                            kind=failure.kind.value,
                            stage=failure.stage.value,
                            code=failure.code,
                            text=failure.text[:120],
                            turned_away=plan is not None and plan.turned_away,
                        )
                    )
                    charged = charge(failure, plan, policy.timeouts)
                    if charged:
                        Rounds.done(turn)
                        yield env.timeout(charged)
                elif probe is not None and failure.kind is not FailureKind.SUSPENDED:
                    pass  # shared the first connection's host failure (logged as "cached")
                elif failure.expiry:
                    job.attempts -= 1  # a lifetime wake-up: returned without connecting
                    emit(ExpiredEvent(**stamp(), message=message_id, sender=mta.name, server=host, text=failure.text))
                else:
                    emit(
                        SuspendedEvent(
                            **stamp(),
                            message=message_id,
                            sender=mta.name,
                            server=host,
                            attempt=job.attempts,
                            text=failure.text,
                        )
                    )
                job.last_error = failure.describe()
                job.sync()
                decision = mta.state.after_failure(job.view(), failure, env.now)
                last = n == len(hosts) - 1
                if decision.bounce is not None or failure.expiry or last or not policy.next_mx_allowed(failure):
                    break
                if decision.warn:
                    c.keeper.warn(job, decision)
                emit(NextMxEvent(**stamp(), message=message_id, sender=mta.name, after=host, to=hosts[n + 1]))
            Rounds.done(turn)
    except Exception as exc:  # an unexpected error inside the model aborts the run, with context
        raise c.failed(job, exc) from exc


class LedgerKeeper:
    """The ledger keeper: records acceptances, bounces and warnings on the ledger, and makes the DSNs.

    *replay* is the run (``simulator.engine.Replay``): its clock, stores, environment, event sink,
    stamp, message text, ledger and notification sink.
    """

    def __init__(self, replay: Any) -> None:
        self._clock = replay.clock
        self._stores = replay.stores
        self._env = replay.env
        self._emit: Callable[[Event], None] = replay.log.emit
        self._stamp: Callable[[], dict[str, Any]] = replay.stamp
        self._content: Callable[[int], bytes] = replay.content
        self._ledger = replay.ledger
        self._notify_sink: Callable[[dsn.Notification], None] = replay.notes.append
        self.notifications = 0
        self.done = 0  #: jobs that ended (accepted or bounced)

    def accepted(self, job: Job, server: str, outcome: Outcome) -> None:
        """A 250 to the final dot."""
        ledger, i = self._ledger, job.index
        self.done += 1
        stamp = self._stamp()
        self._emit(
            ReplyEvent(
                **stamp,
                message=job.message_id,
                server=server,
                attempt=job.attempts,
                kind="accepted",
                stage="dot",
                code=250,
                text=outcome.reply[:120],
            )
        )
        if job.relayed:
            assert job.mta.relay_for is not None
            self._stores.forwarded(job.mta.relay_for, job.message_id)
            ledger.copies[i] -= 1  # the relay's copy was handed on, not duplicated: the reader sees one
            self._emit(
                RelayedEvent(
                    **stamp, message=job.message_id, relay=job.mta.relay_for, server=server, attempts=job.attempts
                )
            )
            return
        now = self._env.now
        if ledger.accepted_at[i] != ledger.accepted_at[i]:  # nan: the first 250
            ledger.accepted_at[i], ledger.accepted_by[i] = now, ledger.server_number(server)
        self._emit(
            AcceptedEvent(
                **stamp,
                message=job.message_id,
                server=server,
                attempts=job.attempts,
                delay=round(now - ledger.submitted[i], 3),
            )
        )

    def bounce(self, job: Job, decision: Decision) -> None:
        """The MTA gives up on the job and tells the originator."""
        ledger, i = self._ledger, job.index
        self.done += 1
        if job.relayed:
            assert job.mta.relay_for is not None
            self._stores.forwarded(job.mta.relay_for, job.message_id)  # leaves the relay's queue
        status, reason = decision.status, decision.bounce or ""
        ledger.bounced_at[i] = self._env.now
        ledger.bounce_status[i] = ledger.texts.number(status)
        ledger.bounce_reason[i] = ledger.texts.number(reason)
        self._emit(
            BounceEvent(
                **self._stamp(),
                message=job.message_id,
                sender=job.mta.name,
                originator=job.originator,
                status=status,
                reason=reason,
                attempts=job.attempts,
                last_error=job.last_error,
                relay=job.mta.relay_for or "",
            )
        )
        self._notify(job, decision)

    def warn(self, job: Job, decision: Decision) -> None:
        """A delay warning to the originator."""
        job.warnings += 1
        self._ledger.warnings[job.index] += 1
        self._emit(
            WarningEvent(
                **self._stamp(),
                message=job.message_id,
                sender=job.mta.name,
                attempts=job.attempts,
                last_error=job.last_error,
            )
        )
        self._notify(job, decision)

    def _notify(self, job: Job, decision: Decision) -> None:
        """Build the RFC 3464 delay warning or bounce the MTA sends its originator."""
        at = self._clock.datetime_at
        original = self._content(job.index)
        reporting = f"{job.mta.name}.example"
        diagnostic = job.last_error or "no attempt was made"
        arrival, last = at(job.arrival), at(self._env.now)
        note: dsn.Notification | None
        if decision.bounce is not None:
            note = dsn.bounce(
                original,
                status=decision.status or "5.0.0",
                reason=decision.bounce,
                originator=job.originator,
                recipients=job.recipient,
                reporting_mta=reporting,
                arrival=arrival,
                last_attempt=last,
                diagnostic=diagnostic,
                envelope_id=job.message_id,
            )
        else:
            gives_up = job.mta.policy.gives_up_after
            until = job.arrival + (gives_up if gives_up is not None else 30 * 86400.0)
            note = dsn.delay_warning(
                original,
                will_retry_until=at(until),
                originator=job.originator,
                recipients=job.recipient,
                reporting_mta=reporting,
                arrival=arrival,
                last_attempt=last,
                diagnostic=diagnostic,
                envelope_id=job.message_id,
            )
        if note is not None:
            self.notifications += 1
            self._notify_sink(note)
