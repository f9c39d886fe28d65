"""The replay engine: one SimPy environment, real SMTP, a ledger at the end.

``Replay`` is the composition root: it builds the runtime entities from a
``Scenario`` (receiving servers with their mail stores and DNS records,
sending MTAs with their policy state, the ledger's columns, one SimPy process
for the timeline), starts each message's SimPy process when the clock reaches
its arrival, hands each process only the collaborators it needs, drives them
through the time-frozen ``Bridge`` and returns a ``RunResult``.

A ``LiveLink`` makes a replay a live run (``simulator.live``): the same
servers on fixed ports and timeline, SimPy still the only clock but stepped
no faster than the wall clock allows; outside MTAs connect when they like,
and their mail is recorded beside the simulated senders'.

Memory stays small at any size: the ledger is a few numbers per message
(``simulator.ledger.Ledger``), only queued messages have a ``Job`` and a
process, events go to an ``EventSink`` as they happen (a file, when the
caller streams them), and DSNs to a notification sink as bytes.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from functools import partial
from typing import Any

import simpy

from . import dsn
from .bridge import Bridge
from .clock import SimClock
from .delivery import Arrivals, Couriers, Flight, HostProbes, Job, LedgerKeeper, Mta, Rounds, with_client_timeouts
from .errors import RunError
from .events import (
    Event,
    EventLog,
    EventSink,
    ForeignEvent,
)
from .faults import SessionPlan
from .ledger import LedgerBuilder, MessageRecord
from .policies import Timeouts, build_policy
from .receiver import Mode, ReceivingServer, SessionContext, SessionNote
from .results import RunResult
from .routing import Dns, Resolver, hosts_to_try
from .scenario import Scenario
from .store import MailStores
from .timeline import Scene, timeline_process
from .traffic import plan_arrivals
from .transport import Attempt, MemoryTransport, SmtpTransport, Transport
from .wire import LOOPBACK, WireServer

__all__ = ["Replay", "Progress", "Pulse", "Interrupt", "LiveLink"]


@dataclass(frozen=True, slots=True)
class Pulse:
    """How a run is going, for a progress display."""

    now: float  #: simulated seconds done
    end: float  #: simulated seconds in all
    queued: int  #: messages in senders' (and backup MX hosts') queues
    attempts: int  #: SMTP sessions (attempts that reached a server's address) so far
    submitted: int  #: messages submitted so far


Progress = Callable[[Pulse], None]
"""Called now and then with a ``Pulse``."""


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


class Replay:
    """One run of a scenario. Use ``await replay.run()`` or ``simulator.run_scenario``.

    *sink* receives every event as it happens (default: an ``EventLog`` in
    memory, returned with the result); *notes* receives every DSN (default:
    a list, returned with the result).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        transport: str = "wire",
        progress: Progress | None = None,
        sink: EventSink | None = None,
        notes: Callable[[dsn.Notification], None] | None = None,
        interrupt: Interrupt | None = None,
        live: LiveLink | None = None,
    ) -> None:
        if transport not in ("wire", "memory") or (live is not None and transport != "wire"):
            raise ValueError("transport is 'wire' or 'memory'; a live run is on the wire")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.transport_kind = "live" if live is not None else transport
        self.live = live
        self.progress = progress
        self.interrupt = interrupt
        self.clock = SimClock(scenario.clock)
        self.env = simpy.Environment()
        if sink is None:
            sink = EventLog() if live is None or live.listen is None else _ListenedLog(live.listen)
        self.log: EventSink = sink
        #: outside mail of a live run (a message stored that no simulated sender submitted), by message id
        self.outside: dict[str, MessageRecord] = {}
        self.notifications: list[dsn.Notification] = []
        self.notes = _Notes(notes if notes is not None else self.notifications.append)
        relays = {s.name for s in scenario.servers if s.relay is not None}
        delivery = {s.name: s.delivery.per_minute for s in scenario.servers if s.delivery is not None}
        self.stores = MailStores(
            [s.name for s in scenario.servers], relays, delivery, keep=_backups_named(scenario, self.clock)
        )
        self.dns = Dns(scenario.servers)
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
        self.ledger, self.mtas = plan_arrivals(scenario, self.clock, self.dns, self.seed)
        if live is not None and not live.senders:
            self.ledger.truncate(0)
        self.arrived = 0  #: messages whose arrival the clock has reached
        self.started = 0  #: jobs started (each message's, and each relay hand-off)
        self.keeper = LedgerKeeper(self)
        self.probes = HostProbes(self.env)
        self.rounds = Rounds(self.env)
        self._relay_inbox: list[tuple[str, str, float]] = []
        self._late: list[tuple[SessionPlan, ReceivingServer, SessionContext, Timeouts]] = []
        self._stamp_at = -1.0
        self._stamp: dict[str, Any] = {}
        self._iso_at = -1
        self._courier_set: Couriers | None = None
        self._iso = ""

    # ------------------------------------------------------------------ collaborators
    def stamp(self) -> dict[str, Any]:
        """``t`` and ``time`` of the current instant, for an event (formatted once per instant)."""
        now = self.env.now
        if now != self._stamp_at:
            self._stamp_at = now
            second = round(now)
            if second != self._iso_at:  # instants a fraction of a second apart share the text
                self._iso_at, self._iso = second, self.clock.iso(second)
            self._stamp = {"t": float(round(now, 3)), "time": self._iso}
        return self._stamp

    def server_now(self) -> float:
        """A live run's time for the servers: the wall clock's, between the last instant run and the next one."""
        assert self.live is not None
        env = self.env
        return max(env.now, min(self.live.wall(), env.peek()))

    def _known(self, message_id: str) -> bool:
        """Whether *message_id* names one of this run's messages (arrived or not)."""
        return self.ledger.index_of(message_id) is not None

    def _on_commit(self, message_id: str, server: str, now: float) -> None:
        i = self.ledger.index_of(message_id)
        if (i is None or i >= self.arrived) and self.live is not None:
            record = self.outside.get(message_id)
            if record is None:
                record = self.outside[message_id] = self.live.commit(message_id, server, now)
            record.copies += 1
            return
        if i is None or i >= self.arrived:
            self.servers[server].errors.append(RunError(f"{server} stored an unknown message {message_id}"))
            return
        self.ledger.copies[i] += 1
        if server in self.relay_mtas:
            self._relay_inbox.append((message_id, server, now))

    def _route(self, job: Job) -> tuple[str, ...]:
        return hosts_to_try(job.mta.resolver, job.domain, self.env.now, job.mta.relay_for)

    def _submit(self, job: Job, host: str) -> tuple[simpy.Event, SessionPlan | None]:
        server = self.servers[host]
        mail_from = job.originator  # a relay forwards with the original envelope sender
        ctx = SessionContext(job.message_id, mail_from, job.recipient)
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
            message_id=job.message_id,
            server=host,
            address=address,
            helo=f"{job.mta.name}.example",
            mail_from=mail_from,
            rcpt_to=job.recipient,
            content=partial(self.content, job.index),
            plan=plan,
        )
        return self.bridge.submit(attempt), plan

    def _unreachable(self, host: str) -> bool:
        return self.servers[host].mode is Mode.UNREACHABLE

    def _couriers(self) -> Couriers:
        """What every delivery of this run works with (made once: each queued job holds it)."""
        if self._courier_set is None:
            self._courier_set = self._make_couriers()
        return self._courier_set

    def _make_couriers(self) -> Couriers:
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
            failed=self._failed,
        )

    # ------------------------------------------------------------------ setup
    def content(self, i: int) -> bytes:
        """Message *i*'s RFC 5322 text (CRLF line endings, no line starting with a dot)."""
        ledger = self.ledger
        submitted = ledger.submitted[i]
        sender = ledger.senders[ledger.mta[i]].name
        message_id = ledger.message_id(i)
        date = format_datetime(self.clock.datetime_at(submitted))
        return (
            f"From: <{ledger.originator(i)}>\r\nTo: <{ledger.recipient(i)}>\r\n"
            f"Subject: {message_id} from {sender}\r\nDate: {date}\r\n"
            f"Message-ID: <{message_id}@smtp-outage.invalid>\r\n\r\n"
            f"Submitted at {self.clock.iso(submitted)} by {sender}.\r\n"
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
                        run_ids=sum(1 for m in s.message_ids if self._known(m)),
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
            ledger = self.ledger
            for message_id, relay, now in inbox:
                i = ledger.index_of(message_id)
                assert i is not None
                job = Job(ledger, i, self.relay_mtas[relay], ledger.senders[ledger.mta[i]].domain, now)
                self._start(couriers, job)

    def _failed(self, job: Job, exc: Exception) -> Exception:
        """The error a job's process ends the run with: a ``RunError`` with the scenario, message and time."""
        if isinstance(exc, RunError):
            return exc
        return RunError(
            f"scenario {self.scenario.name}: message {job.message_id} ({job.mta.name}) at "
            f"{self.clock.iso(self.env.now)}: {type(exc).__name__}: {exc}"
        )

    def _start(self, couriers: Couriers, job: Job) -> None:
        """Start the process of *job* (it ends when the keeper records an acceptance or a bounce)."""
        Flight(couriers, job)
        self.started += 1

    def _arrive(self, couriers: Couriers) -> None:
        """Start the process of every message arriving now (in submission order)."""
        ledger, now = self.ledger, self.env.now
        submitted, mtas, i = ledger.submitted, self.mtas, self.arrived
        n = len(submitted)
        while i < n and submitted[i] == now:
            mta = mtas[ledger.mta[i]]
            self.arrived = i + 1
            self._start(couriers, Job(ledger, i, mta, ledger.senders[ledger.mta[i]].domain, now))
            i += 1

    def _schedule_arrivals(self, couriers: Couriers) -> Generator[simpy.Event, Any, None]:
        """Start the messages arriving at the start now, and wake up at each later arrival time (``Arrivals``).

        The wake-ups take the place in SimPy's event order that each
        message's own process waiting for its arrival had, so the same
        scenario and seed give the same ledger as one process per message
        made up front.
        """
        self._arrive(couriers)
        Arrivals(self.env, self.ledger.submitted, self.arrived, lambda: self._arrive(couriers))
        return
        yield  # a generator, so that SimPy runs it as a process

    def pulse(self) -> Pulse:
        """How the run is going."""
        return Pulse(self.env.now, self.clock.end, self.started - self.keeper.done, self.bridge.submitted, self.arrived)

    async def run(self) -> RunResult:
        """Replay the scenario and return its result."""
        started = time.perf_counter()
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
            self._arrive(couriers)  # arrivals at the start: processes made before the clock moves, as before
            self.env.process(self._schedule_arrivals(couriers))
            progress = self.progress
            report = (lambda now: progress(self.pulse())) if progress is not None else None
            interrupt = self.interrupt
            pace = None
            if self.live is not None:
                pace = self.live.pace
                self.env.timeout(self.clock.end)  # a live run serves until its clock ends, events or not
            collect = gc.get_threshold()
            # Millions of short-lived events and few reference cycles: collect the young generation less often,
            # and never rescan what was built before the clock started (the scenario, the ledger's tables).
            gc.freeze()
            gc.set_threshold(max(collect[0], 50_000), *collect[1:])
            try:
                stopped = await self.bridge.drive(
                    self.clock.end,
                    self._before_flush,
                    self._after_flush,
                    report,
                    interrupt.requested if interrupt is not None else None,
                    pace=pace,
                )
            finally:
                gc.set_threshold(*collect)
                gc.unfreeze()
            # A live run stops at the wall clock's moment (its servers went on serving until then).
            now = self.server_now() if stopped and self.live is not None else self.env.now
        finally:
            for wire in self.wire.values():
                await wire.stop()
        self._log_foreign()
        ledger = self.ledger
        if stopped:
            # Interrupted: the messages submitted so far, each as it stands at this instant.
            ledger.truncate(self.arrived)
        elif self.arrived != len(ledger):  # pragma: no cover - arrivals after the end are not made
            raise RunError(f"scenario {self.scenario.name}: {len(ledger) - self.arrived} message(s) never arrived")
        if self.outside:
            # A live run's outside mail: rows of their own after the simulated senders' (named as they came).
            builder = LedgerBuilder(ledger.servers)
            for record in (*ledger.rows(), *self.outside.values()):
                builder.add(record)
            ledger = self.ledger = builder.finish()
        counts = ledger.finalize(self.stores.holdings(now if stopped else self.clock.end))
        policies: dict[str, tuple[str, float | None]] = {}
        for mta in self.mtas:
            policies.setdefault(mta.group, (mta.policy.label, mta.policy.gives_up_after))
        for group in self.scenario.senders:
            if group.name not in policies:
                policy = build_policy(group.policy)
                policies[group.name] = (policy.label, policy.gives_up_after)
        return RunResult(
            scenario=self.scenario,
            seed=self.seed,
            clock=self.clock,
            ledger=ledger,
            counts=counts,
            event_list=self.log.events if isinstance(self.log, EventLog) else None,
            wall_seconds=time.perf_counter() - started,
            wire_seconds=self.bridge.wire_seconds,
            batches=self.bridge.batches,
            transport=self.transport_kind,
            notifications=self.notifications,
            notification_count=self.keeper.notifications,
            policies=policies,
            interrupted_by=interrupt.reason if stopped and interrupt is not None else "",
            stopped_at=now if stopped else None,
            live=self.live.facts if self.live is not None else None,
        )


class _Notes:
    """Where the keeper sends each DSN."""

    __slots__ = ("append",)

    def __init__(self, append: Callable[[dsn.Notification], None]) -> None:
        self.append = append


def _backups_named(scenario: Scenario, clock: SimClock) -> frozenset[float]:
    """The times of the backups a ``restore`` names (``backup: <time>``); the stores keep those and the latest."""
    from .scenario import RestoreEvent as Restore

    return frozenset(
        clock.seconds(e.backup) for e in scenario.timeline if isinstance(e, Restore) and e.backup != "latest"
    )
