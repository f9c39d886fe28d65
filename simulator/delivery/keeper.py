"""The ledger keeper: what an acceptance, a bounce or a warning means for the ledger and the originator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import dsn
from ..events import AcceptedEvent, BounceEvent, Event, RelayedEvent, ReplyEvent, WarningEvent
from ..policies import Decision
from ..transport import Outcome
from .jobs import Job

__all__ = ["LedgerKeeper"]


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
