"""The life of one delivery job: ``deliver()`` and the light process that runs it (``Flight``).

``deliver()`` asks the MTA's retry policy when to try, walks the MX hosts
the router gives (falling back as the MTA does), runs each attempt through
the submit function and charges the simulated time the attempt took.

A job waiting in its queue holds no generator and no SimPy process: its
``Flight`` is itself the event in SimPy's queue (a few slots), and a new
stretch of ``deliver()`` starts when it fires. A million queued messages
cost a million small objects, not a million suspended frames. The events
are scheduled exactly where ``env.process()`` and ``env.timeout()`` would
put them, so SimPy's event order, and with it the ledger, is the same.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, cast

import simpy
from simpy.events import NORMAL, URGENT

from ..events import (
    AttemptEvent,
    CachedEvent,
    ExpiredEvent,
    NextMxEvent,
    RelayQueuedEvent,
    ReplyEvent,
    SubmitEvent,
    SuspendedEvent,
)
from ..faults import SessionPlan
from ..policies import Decision, Failure, FailureKind, Stage, Timeouts
from ..transport import Outcome
from .jobs import Couriers, Job, Rounds

__all__ = ["Flight", "STAGE_ORDER", "charge", "deliver", "with_client_timeouts"]

STAGE_ORDER = (Stage.GREETING, Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DOT)


class Flight:
    """A job's process, light enough for a million queued jobs.

    It stands in SimPy's queue as an event of its own (SimPy's ``step``
    needs only ``callbacks`` and ``_ok``): first as the start of the
    process (``URGENT``, as ``env.process()`` schedules it), then as each
    wake-up from a wait in the queue (``NORMAL``, as ``env.timeout()``).
    While a stretch of ``deliver()`` runs, it waits on the events that
    stretch yields, as a SimPy process does. An error inside the model
    propagates out of ``env.step()`` and ends the run.
    """

    __slots__ = ("_couriers", "_job", "_ok", "_steps", "callbacks")

    def __init__(self, couriers: Couriers, job: Job) -> None:
        self.callbacks: tuple[Any, ...] | None = _ARRIVE
        self._ok = True
        self._couriers = couriers
        self._job = job
        self._steps: Generator[simpy.Event, Any, float | None] | None = None
        couriers.env.schedule(cast(simpy.Event, self), URGENT)

    def _run(self, arriving: bool) -> None:
        self._steps = deliver(self._couriers, self._job, arriving)
        self._advance(None)

    def _resume(self, event: simpy.Event) -> None:
        if event.ok:
            self._advance(event.value)
        else:  # as a SimPy process: the generator sees the failure (and fails with it)
            event.defused = True
            self._advance(None, cast(BaseException, event.value))

    def _advance(self, value: Any, error: BaseException | None = None) -> None:
        steps = self._steps
        assert steps is not None
        while True:
            try:
                event = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                self._steps = None
                wake_at: float | None = stop.value
                if wake_at is not None:
                    env = self._couriers.env
                    self.callbacks = _WAKE
                    env.schedule(cast(simpy.Event, self), NORMAL, wake_at - env.now)
                return
            if event.callbacks is not None:
                event.callbacks.append(self._resume)
                return
            if event.ok:  # already processed: go on at once, as a SimPy process does
                value, error = event.value, None
            else:
                value, error = None, cast(BaseException, event.value)


def _arrive(flight: Flight) -> None:
    flight._run(True)


def _wake(flight: Flight) -> None:
    flight._run(False)


_ARRIVE: tuple[Any, ...] = (_arrive,)
_WAKE: tuple[Any, ...] = (_wake,)


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


def deliver(c: Couriers, job: Job, arriving: bool) -> Generator[simpy.Event, Any, float | None]:
    """One stretch of a job's life, up to its next wait in the queue; returns when to wake it, or None when done.

    *arriving*: the job has just arrived (it asks its policy first);
    otherwise it wakes from a wait and goes straight to its next attempt.
    A job waiting in its queue has no generator: ``Flight`` starts a new
    stretch when the clock reaches the time returned. Done means the keeper
    has recorded an acceptance or a bounce.
    """
    try:
        env, emit, stamp = c.env, c.emit, c.stamp
        mta = job.mta
        message_id = job.message_id
        policy = mta.policy
        decision: Decision | None = None
        if arriving:
            if job.relayed:
                emit(RelayQueuedEvent(**stamp(), message=message_id, sender=mta.name))
            else:
                emit(SubmitEvent(**stamp(), message=message_id, sender=mta.name))
            decision = mta.state.on_arrival(job.view(), env.now)
        while True:
            if decision is not None:
                if decision.warn:
                    c.keeper.warn(job, decision)
                if decision.bounce is not None:
                    c.keeper.bounce(job, decision)
                    return None
                assert decision.retry_at is not None
                if decision.retry_at > env.now:
                    return decision.retry_at
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
                        return None
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
