"""The replay engine: one SimPy environment, real SMTP, a ledger at the end.

``Replay`` is the composition root: it builds the runtime entities from a
``Scenario`` (receiving servers with their mail stores and DNS records,
sending MTAs with their policy state, one SimPy process per message, one for
the timeline), hands each process only the collaborators it needs, drives
them through the time-frozen ``Bridge`` and returns a ``RunResult``.

A ``LiveLink`` makes a replay a live run (``simulator.live``): the same
servers on fixed ports and timeline, SimPy still the only clock but stepped
no faster than the wall clock allows; outside MTAs connect when they like,
and their mail is recorded beside the simulated senders'.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any

import simpy

from . import dsn
from .bridge import Bridge
from .clock import SimClock
from .delivery import Couriers, HostProbes, Job, Mta, Rounds, deliver, with_client_timeouts
from .errors import RunError
from .events import (
    AcceptedEvent,
    BounceEvent,
    Event,
    EventLog,
    ForeignEvent,
    RelayedEvent,
    ReplyEvent,
    WarningEvent,
)
from .faults import SessionPlan
from .ledger import MessageRecord, finalize
from .policies import Decision, Timeouts, build_policy
from .receiver import Mode, ReceivingServer, SessionContext, SessionNote
from .results import RunResult
from .routing import Dns, Resolver, hosts_to_try
from .scenario import Scenario
from .store import MailStores
from .timeline import Scene, timeline_process
from .traffic import Arrival, csv_arrivals, poisson_arrivals
from .transport import Attempt, MemoryTransport, Outcome, SmtpTransport, Transport
from .wire import LOOPBACK, WireServer

__all__ = ["Replay", "Progress", "Interrupt", "LiveLink"]

Progress = Callable[[float, float], None]
"""Called with (simulated seconds done, simulated seconds in all)."""


class Interrupt:
    """Asks a running replay to stop at the end of the current simulated instant.

    A signal handler calls ``request("SIGINT")``; the replay then ends with
    what it has: the messages submitted so far, each in its state at that
    instant (``queued`` for those still being retried), and a result marked
    ``interrupted_by`` with its ``stopped_at`` time.
    """

    def __init__(self) -> None:
        self.reason = ""

    def request(self, reason: str) -> None:
        """Stop at the end of the current instant; *reason* names why (the first request wins)."""
        self.reason = self.reason or reason

    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return bool(self.reason)


@dataclass
class LiveLink:
    """What a live run plugs into a replay.

    ``wall`` says which simulated second the wall clock has reached; the
    servers read their time from it, never past the next event SimPy has
    not run. ``pace`` waits until the wall clock reaches a simulated time
    (False: stop there, the run's ``Interrupt`` says why). ``commit`` makes
    the ledger row of a message stored that no simulated sender submitted
    (outside mail); ``watch`` hears each step of the connections nobody
    announced; ``listen`` every event as it is emitted; ``ready`` each
    server's address once all listen (simulated time 0 starts then).
    ``ports`` fixes each server's loopback port (0: any free one);
    ``senders`` runs the scenario's simulated senders alongside; ``facts``
    goes into ``summary.json`` as ``live``.
    """

    wall: Callable[[], float]
    pace: Callable[[float], Awaitable[bool]]
    commit: Callable[[str, str, float], MessageRecord]
    watch: Callable[[SessionNote], None]
    ports: Mapping[str, int] = field(default_factory=dict)
    listen: Callable[[Event], None] | None = None
    ready: Callable[[dict[str, tuple[str, int]]], None] | None = None
    senders: bool = True
    facts: dict[str, Any] = field(default_factory=dict)


class _ListenedLog(EventLog):
    """An event log that also tells a listener of each event."""

    def __init__(self, listen: Callable[[Event], None]) -> None:
        super().__init__()
        self._listen = listen

    def emit(self, event: Event) -> None:
        """Keep *event* and tell the listener."""
        super().emit(event)
        self._listen(event)


class _Keeper:
    """The ledger keeper: records acceptances, bounces and warnings, and writes the DSNs."""

    def __init__(self, replay: Replay) -> None:
        self._clock = replay.clock
        self._stores = replay.stores
        self._env = replay.env
        self._emit: Callable[[Event], None] = replay.log.emit
        self._stamp: Callable[[], dict[str, Any]] = replay.stamp
        self._content: Callable[[MessageRecord], bytes] = replay.content
        self.notifications: list[dsn.Notification] = []

    def accepted(self, job: Job, server: str, outcome: Outcome) -> None:
        """A 250 to the final dot."""
        r = job.record
        stamp = self._stamp()
        self._emit(
            ReplyEvent(
                **stamp,
                message=r.message_id,
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
            self._stores.forwarded(job.mta.relay_for, r.message_id)
            r.copies -= 1  # the relay's copy was handed on, not duplicated: the reader sees one
            self._emit(
                RelayedEvent(
                    **stamp, message=r.message_id, relay=job.mta.relay_for, server=server, attempts=job.attempts
                )
            )
            return
        now = self._env.now
        if r.accepted_at is None:
            r.accepted_at, r.accepted_by = now, server
        self._emit(
            AcceptedEvent(
                **stamp,
                message=r.message_id,
                server=server,
                attempts=job.attempts,
                delay=round(now - r.submitted_at, 3),
            )
        )

    def bounce(self, job: Job, decision: Decision) -> None:
        """The MTA gives up on the job and tells the originator."""
        r = job.record
        if job.relayed:
            assert job.mta.relay_for is not None
            self._stores.forwarded(job.mta.relay_for, r.message_id)  # leaves the relay's queue
        r.bounced_at = self._env.now
        r.bounce_status = decision.status
        r.bounce_reason = decision.bounce or ""
        self._emit(
            BounceEvent(
                **self._stamp(),
                message=r.message_id,
                sender=job.mta.name,
                originator=r.originator,
                status=r.bounce_status,
                reason=r.bounce_reason,
                attempts=job.attempts,
                last_error=job.last_error,
                relay=job.mta.relay_for or "",
            )
        )
        self._notify(job, decision)

    def warn(self, job: Job, decision: Decision) -> None:
        """A delay warning to the originator."""
        job.warnings += 1
        job.record.delay_warnings += 1
        self._emit(
            WarningEvent(
                **self._stamp(),
                message=job.record.message_id,
                sender=job.mta.name,
                attempts=job.attempts,
                last_error=job.last_error,
            )
        )
        self._notify(job, decision)

    def _notify(self, job: Job, decision: Decision) -> None:
        """Build the RFC 3464 delay warning or bounce the MTA sends its originator."""
        r = job.record
        at = self._clock.datetime_at
        original = job.content or self._content(r)
        reporting = f"{job.mta.name}.example"
        diagnostic = job.last_error or "no attempt was made"
        arrival, last = at(job.arrival), at(self._env.now)
        note: dsn.Notification | None
        if decision.bounce is not None:
            note = dsn.bounce(
                original,
                status=decision.status or "5.0.0",
                reason=decision.bounce,
                originator=r.originator,
                recipients=r.recipient,
                reporting_mta=reporting,
                arrival=arrival,
                last_attempt=last,
                diagnostic=diagnostic,
                envelope_id=r.message_id,
            )
        else:
            gives_up = job.mta.policy.gives_up_after
            until = job.arrival + (gives_up if gives_up is not None else 30 * 86400.0)
            note = dsn.delay_warning(
                original,
                will_retry_until=at(until),
                originator=r.originator,
                recipients=r.recipient,
                reporting_mta=reporting,
                arrival=arrival,
                last_attempt=last,
                diagnostic=diagnostic,
                envelope_id=r.message_id,
            )
        if note is not None:
            self.notifications.append(note)


class Replay:
    """One run of a scenario. Use ``await replay.run()`` or ``simulator.run_scenario``."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        transport: str = "wire",
        progress: Progress | None = None,
        interrupt: Interrupt | None = None,
        live: LiveLink | None = None,
    ) -> None:
        if transport not in ("wire", "memory") or (live is not None and transport != "wire"):
            raise ValueError("transport is 'wire' or 'memory'; a live run is on the wire")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.transport_kind = "live" if live is not None else transport
        self.progress = progress
        self.interrupt = interrupt
        self.live = live
        self.clock = SimClock(scenario.clock)
        self.env = simpy.Environment()
        self.log = EventLog() if live is None or live.listen is None else _ListenedLog(live.listen)
        self.outside: list[MessageRecord] = []
        relays = {s.name for s in scenario.servers if s.relay is not None}
        delivery = {s.name: s.delivery.per_minute for s in scenario.servers if s.delivery is not None}
        self.stores = MailStores([s.name for s in scenario.servers], relays, delivery)
        self.dns = Dns(scenario.servers)
        self.records: dict[str, MessageRecord] = {}
        self.servers: dict[str, ReceivingServer] = {}
        self.wire: dict[str, WireServer] = {}
        self.relay_mtas: dict[str, Mta] = {}
        for spec in scenario.servers:
            self.servers[spec.name] = ReceivingServer(
                name=spec.name,
                domains=spec.domains,
                hostname=spec.hostname or f"{spec.name}.{spec.domains[0]}",
                stores=self.stores,
                now=self.server_now if live is not None else lambda: self.env.now,
                on_commit=self._on_commit,
                mode=Mode(spec.initially),
                seed=self.seed,
            )
            if live is not None:
                self.servers[spec.name].watch = live.watch
            if spec.relay is not None:
                policy = build_policy(spec.relay.policy)
                rng = random.Random(f"{self.seed}/policy/relay/{spec.name}")
                self.relay_mtas[spec.name] = Mta(
                    spec.name, spec.name, policy, policy.start(rng), Resolver(self.dns), relay_for=spec.name
                )
        self.jobs: list[Job] = []
        self.keeper = _Keeper(self)
        self.probes = HostProbes(self.env)
        self.rounds = Rounds(self.env)
        self._relay_inbox: list[tuple[str, str, float]] = []
        self._late: list[tuple[SessionPlan, ReceivingServer, SessionContext, Timeouts]] = []
        self._stamp_at = -1.0
        self._stamp: dict[str, Any] = {}

    # ------------------------------------------------------------------ collaborators
    def stamp(self) -> dict[str, Any]:
        """``t`` and ``time`` of the current instant, for an event (formatted once per instant)."""
        now = self.env.now
        if now != self._stamp_at:
            self._stamp_at = now
            self._stamp = {"t": round(now, 3), "time": self.clock.iso(now)}
        return self._stamp

    def server_now(self) -> float:
        """A live run's time for the servers: the wall clock's, between the last instant run and the next one."""
        assert self.live is not None
        env = self.env
        return max(env.now, min(self.live.wall(), env.peek()))

    def _on_commit(self, message_id: str, server: str, now: float) -> None:
        record = self.records.get(message_id)
        if record is None and self.live is not None:
            record = self.records[message_id] = self.live.commit(message_id, server, now)
            self.outside.append(record)
        if record is None:
            self.servers[server].errors.append(RunError(f"{server} stored an unknown message {message_id}"))
            return
        record.copies += 1
        if server in self.relay_mtas:
            self._relay_inbox.append((message_id, server, now))

    def _route(self, job: Job) -> tuple[str, ...]:
        return hosts_to_try(job.mta.resolver, job.domain, self.env.now, job.mta.relay_for)

    def _submit(self, job: Job, host: str) -> tuple[simpy.Event, SessionPlan | None]:
        r = job.record
        server = self.servers[host]
        if not job.content:
            job.content = self.content(r)
        mail_from = r.originator  # a relay forwards with the original envelope sender
        ctx = SessionContext(r.message_id, mail_from, r.recipient)
        if server.listening:
            plan = with_client_timeouts(server.plan(ctx), job.mta.policy.timeouts)
        else:
            # Down now; the timeline may bring it up later in this instant. The session is
            # planned when it goes on the wire (``_plan_late``): every session the engine
            # opens is announced, so none is taken for foreign traffic.
            plan = SessionPlan()
            self._late.append((plan, server, ctx, job.mta.policy.timeouts))
        address = self.wire[host].address if self.wire else (LOOPBACK, 0)
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
        return self.bridge.submit(attempt), plan

    def _unreachable(self, host: str) -> bool:
        return self.servers[host].mode is Mode.UNREACHABLE

    def _couriers(self) -> Couriers:
        return Couriers(
            env=self.env,
            route=self._route,
            submit=self._submit,
            emit=self.log.emit,
            stamp=self.stamp,
            keeper=self.keeper,
            probes=self.probes,
            rounds=self.rounds,
            unreachable=self._unreachable,
        )

    # ------------------------------------------------------------------ setup
    def _build_jobs(self) -> None:
        if self.live is not None and not self.live.senders:
            return
        arrivals: list[tuple[float, int, int, int, Arrival, Mta, str]] = []
        end = self.clock.end
        domains = self.dns.domains
        for gi, group in enumerate(self.scenario.senders):
            policy = build_policy(group.policy)
            domain = (group.traffic.to or domains[0]).lower()
            width = max(2, len(str(group.count)))
            mtas = []
            for i in range(group.count):
                name = f"{group.name}-{i + 1:0{width}d}"
                rng = random.Random(f"{self.seed}/policy/{name}")
                mtas.append(Mta(name, group.name, policy, policy.start(rng), Resolver(self.dns)))
            t = group.traffic
            if t.csv is not None:
                found = csv_arrivals(t, self.clock, self.scenario.source, group.name, group.count, domain=domain)
            elif t.at is not None:
                found = [
                    Arrival(at=float(int(self.clock.seconds(when))), mta=i, rcpt_local=f"user{k + 1}")
                    for k, when in enumerate(t.at)
                    for i in range(group.count)
                ]
            else:
                lo = self.clock.seconds(t.start) if t.start else 0.0
                hi = self.clock.seconds(t.until) if t.until else end
                found = []
                for i, mta in enumerate(mtas):
                    rng = random.Random(f"{self.seed}/traffic/{mta.name}")
                    found.extend(poisson_arrivals(t, self.clock, lo, hi, i, rng))
            for n, arrival in enumerate(found):
                arrivals.append((arrival.at, gi, arrival.mta, n, arrival, mtas[arrival.mta], domain))
        arrivals.sort(key=lambda a: a[:4])
        width = max(6, len(str(len(arrivals))))
        for n, (at, _, _, _, arrival, mta, domain) in enumerate(arrivals, start=1):
            message_id = f"m{n:0{width}d}"
            record = MessageRecord(
                message_id=message_id,
                sender=mta.name,
                group=mta.group,
                policy=mta.policy.label,
                originator=f"{arrival.rcpt_local.replace('user', 'sender')}@{mta.name}.example",
                recipient=f"{arrival.rcpt_local}@{domain}",
                submitted_at=at,
            )
            self.records[message_id] = record
            self.jobs.append(Job(record, mta, domain, at))

    def content(self, r: MessageRecord) -> bytes:
        """The message's RFC 5322 text (CRLF line endings, no line starting with a dot)."""
        date = format_datetime(self.clock.datetime_at(r.submitted_at))
        return (
            f"From: <{r.originator}>\r\nTo: <{r.recipient}>\r\n"
            f"Subject: {r.message_id} from {r.sender}\r\nDate: {date}\r\n"
            f"Message-ID: <{r.message_id}@smtp-outage.invalid>\r\n\r\n"
            f"Submitted at {self.clock.iso(r.submitted_at)} by {r.sender}.\r\n"
        ).encode("ascii")

    # ------------------------------------------------------------------ run
    def _plan_late(self) -> None:
        """Plan, in submission order, the sessions submitted to a server that was down then and is up now."""
        late, self._late = self._late, []
        for plan, server, ctx, timeouts in late:
            if server.listening:
                made = with_client_timeouts(server.plan(ctx), timeouts)
                for f in dataclasses.fields(made):
                    setattr(plan, f.name, getattr(made, f.name))

    async def _before_flush(self) -> None:
        self._plan_late()
        for wire in self.wire.values():
            await wire.reconcile()

    def _log_foreign(self) -> None:
        """Log the foreign sessions that ended: outside traffic, kept apart from the ledger.

        In a live run outside traffic is what the run records (``outside`` events, ledger rows).
        """
        for name, server in self.servers.items():
            ended = server.foreign.take_ended()
            if self.live is not None:
                continue
            for s in sorted(ended, key=lambda s: s.number):
                self.log.emit(
                    ForeignEvent(
                        **self.stamp(),
                        server=name,
                        session=s.number,
                        peer=s.peer,
                        connected=self.clock.iso(s.at),
                        received=s.received,
                        messages=s.messages,
                        run_ids=sum(1 for m in s.message_ids if m in self.records),
                        turned_away=s.turned_away,
                        ended=s.ended,
                        error=s.error,
                    )
                )

    def _after_flush(self) -> None:
        self._log_foreign()
        for server in self.servers.values():
            if server.errors:
                error = server.errors[0]
                raise RunError(
                    f"scenario {self.scenario.name}: server {server.name} at {self.clock.iso(self.env.now)}: "
                    f"{type(error).__name__}: {error}"
                ) from error
        if self._relay_inbox:
            inbox, self._relay_inbox = sorted(self._relay_inbox), []
            couriers = self._couriers()
            for message_id, relay, now in inbox:
                record = self.records[message_id]
                job = Job(record, self.relay_mtas[relay], record.recipient.rpartition("@")[2], now)
                self.env.process(self._guarded(couriers, job))

    def _guarded(self, couriers: Couriers, job: Job) -> Generator[simpy.Event, Any, None]:
        try:
            yield from deliver(couriers, job)
        except RunError:
            raise
        except Exception as exc:
            raise RunError(
                f"scenario {self.scenario.name}: message {job.record.message_id} ({job.mta.name}) at "
                f"{self.clock.iso(self.env.now)}: {type(exc).__name__}: {exc}"
            ) from exc

    async def run(self) -> RunResult:
        """Replay the scenario and return its result."""
        started = time.perf_counter()
        self._build_jobs()
        transport: Transport
        if self.transport_kind != "memory":
            ports = self.live.ports if self.live is not None else {}
            for name, logic in self.servers.items():
                self.wire[name] = WireServer(logic, port=ports.get(name, 0))
            transport = SmtpTransport(self.scenario.engine.wire_timeout, self.wire)
        else:
            transport = MemoryTransport(self.servers)
        self.bridge = Bridge(self.env, transport, self.scenario.engine.concurrency)
        try:
            for wire in self.wire.values():
                await wire.start()
            if self.live is not None and self.live.ready is not None:
                self.live.ready({name: wire.address for name, wire in self.wire.items()})
            scene = Scene(self.env, self.clock, self.servers, self.stores, self.dns, self.log.emit, self.stamp)
            self.env.process(timeline_process(scene, self.scenario.timeline))
            couriers = self._couriers()
            for job in self.jobs:
                self.env.process(self._guarded(couriers, job))
            end = self.clock.end
            progress = self.progress
            report = (lambda now: progress(now, end)) if progress is not None else None
            interrupt = self.interrupt
            pace = None
            if self.live is not None:
                pace = self.live.pace
                self.env.timeout(end)  # a live run serves until its clock ends, events or not
            stopped = await self.bridge.drive(
                end,
                self._before_flush,
                self._after_flush,
                report,
                interrupt.requested if interrupt is not None else None,
                pace=pace,
            )
            # A live run stops at the wall clock's moment (its servers went on serving until then).
            now = self.server_now() if stopped and self.live is not None else self.env.now
        finally:
            for wire in self.wire.values():
                await wire.stop()
        self._log_foreign()
        # Interrupted: the messages submitted so far, each as it stands at this instant.
        records = [job.record for job in self.jobs if not stopped or job.record.submitted_at <= self.env.now]
        records += self.outside
        counts = finalize(records, self.stores.holdings(now if stopped else self.clock.end), len(records))
        policies: dict[str, tuple[str, float | None]] = {}
        for job in self.jobs:
            policies.setdefault(job.mta.group, (job.mta.policy.label, job.mta.policy.gives_up_after))
        for group in self.scenario.senders:
            if group.name not in policies:
                policy = build_policy(group.policy)
                policies[group.name] = (policy.label, policy.gives_up_after)
        return RunResult(
            scenario=self.scenario,
            seed=self.seed,
            clock=self.clock,
            records=records,
            counts=counts,
            events=self.log.events,
            wall_seconds=time.perf_counter() - started,
            wire_seconds=self.bridge.wire_seconds,
            batches=self.bridge.batches,
            transport=self.transport_kind,
            notifications=self.keeper.notifications,
            policies=policies,
            interrupted_by=interrupt.reason if stopped and interrupt is not None else "",
            stopped_at=now if stopped else None,
            live=self.live.facts if self.live is not None else None,
        )
