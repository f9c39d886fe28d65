"""The replay engine: one SimPy environment, real SMTP, a ledger at the end.

``Replay`` builds the runtime entities from a ``Scenario`` (receiving servers
with their mail stores and DNS records, sending MTAs with their policy state,
one SimPy process per message, one for the timeline), drives them through
the time-frozen ``Bridge`` and returns a ``RunResult``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any

import simpy

from . import dsn
from .bridge import Bridge
from .clock import SimClock
from .delivery import Job, Mta, deliver
from .errors import RunError
from .ledger import MessageRecord, finalize
from .policies import Decision, RetryPolicy, build_policy
from .policies.simulate import all_attempts_fail
from .receiver import Mode, ReceivingServer
from .results import RunResult
from .routing import Dns, Resolver
from .scenario import Scenario
from .store import MailStores
from .timeline import timeline_process
from .traffic import Arrival, csv_arrivals, poisson_arrivals
from .transport import MemoryTransport, Outcome, SmtpTransport, Transport
from .wire import WireServer

__all__ = ["Replay", "Progress"]

Progress = Callable[[float, float], None]
"""Called with (simulated seconds done, simulated seconds in all)."""


class Replay:
    """One run of a scenario. Use ``await replay.run()`` or ``simulator.run_scenario``."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        transport: str = "wire",
        progress: Progress | None = None,
    ) -> None:
        if transport not in ("wire", "memory"):
            raise ValueError("transport is 'wire' or 'memory'")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.transport_kind = transport
        self.progress = progress
        self.clock = SimClock(scenario.clock)
        self.env = simpy.Environment()
        self.events: list[dict[str, Any]] = []
        relays = {s.name for s in scenario.servers if s.relay is not None}
        self.stores = MailStores([s.name for s in scenario.servers], relays)
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
                now=lambda: self.env.now,
                on_commit=self._on_commit,
                mode=Mode(spec.initially),
                seed=self.seed,
            )
            if spec.relay is not None:
                policy = build_policy(spec.relay.policy)
                rng = random.Random(f"{self.seed}/policy/relay/{spec.name}")
                self.relay_mtas[spec.name] = Mta(spec.name, spec.name, policy, policy.start(rng), Resolver(self.dns), relay_for=spec.name)
        self.jobs: list[Job] = []
        self.notifications: list[dsn.Notification] = []
        self._relay_inbox: list[tuple[str, str, float]] = []
        self._probes: dict[tuple[str, str], simpy.Event] = {}
        self._probes_at = -1.0
        self._lifetimes: dict[str, float] = {}

    # ------------------------------------------------------------------ records
    def log(self, event_type: str, /, **fields: Any) -> None:
        """Append one event to ``events.jsonl`` at the current simulated time."""
        t = self.env.now
        self.events.append({"t": round(t, 3), "time": self.clock.iso(t), "type": event_type, **fields})

    def _on_commit(self, message_id: str, server: str, now: float) -> None:
        record = self.records.get(message_id)
        if record is None:
            self.servers[server].errors.append(RunError(f"{server} stored an unknown message {message_id}"))
            return
        record.copies += 1
        if server in self.relay_mtas:
            self._relay_inbox.append((message_id, server, now))

    def accepted(self, job: Job, server: str, outcome: Outcome) -> None:
        """A 250 to the final dot."""
        r = job.record
        self.log("reply", message=r.message_id, server=server, attempt=job.attempts, kind="accepted", stage="dot", code=250, text=outcome.reply[:120])
        if job.relayed:
            assert job.mta.relay_for is not None
            self.stores.forwarded(job.mta.relay_for, r.message_id)
            self.log("relayed", message=r.message_id, relay=job.mta.relay_for, server=server, attempts=job.attempts)
            return
        if r.accepted_at is None:
            r.accepted_at, r.accepted_by = self.env.now, server
        self.log("accepted", message=r.message_id, server=server, attempts=job.attempts, delay=round(self.env.now - r.submitted_at, 3))

    def bounce(self, job: Job, decision: Decision) -> None:
        """The MTA gives up on the job and tells the originator."""
        r = job.record
        if job.relayed:
            assert job.mta.relay_for is not None
            self.stores.forwarded(job.mta.relay_for, r.message_id)  # leaves the relay's queue
        r.bounced_at = self.env.now
        r.bounce_status = decision.status
        r.bounce_reason = decision.bounce or ""
        self.log("bounce", message=r.message_id, sender=job.mta.name, originator=r.originator, status=r.bounce_status, reason=r.bounce_reason, attempts=job.attempts, last_error=job.last_error)
        self.notify(job, decision)

    def notify(self, job: Job, decision: Decision) -> None:
        """Build the RFC 3464 delay warning or bounce the MTA sends its originator."""
        r = job.record
        at = self.clock.datetime_at
        common = {
            "originator": r.originator,
            "recipients": r.recipient,
            "reporting_mta": f"{job.mta.name}.example",
            "arrival": at(job.arrival),
            "last_attempt": at(self.env.now),
            "diagnostic": job.last_error or "no attempt was made",
            "envelope_id": r.message_id,
        }
        original = job.content or self.content(r)
        if decision.bounce is not None:
            note = dsn.bounce(original, status=decision.status or "5.0.0", reason=decision.bounce, **common)
        else:
            until = job.arrival + self._give_up_after(job.mta.policy)
            note = dsn.delay_warning(original, will_retry_until=at(until), **common)
        if note is not None:
            self.notifications.append(note)

    def _give_up_after(self, policy: RetryPolicy) -> float:
        """When the policy returns a message whose every attempt fails (for Will-Retry-Until)."""
        if policy.name not in self._lifetimes:
            fate = all_attempts_fail(policy, hours=30 * 24)
            self._lifetimes[policy.name] = fate.bounce_at if fate.bounce_at is not None else 30 * 86400.0
        return self._lifetimes[policy.name]

    def host_probe(self, mta: Mta, host: str) -> simpy.Event | None:
        """The connection *mta* already opened to *host* at this instant, if any."""
        if self._probes_at != self.env.now:
            return None
        return self._probes.get((mta.name, host))

    def remember_probe(self, mta: Mta, host: str, event: simpy.Event) -> None:
        """Record the first connection of *mta* to *host* at this instant."""
        if self._probes_at != self.env.now:
            self._probes.clear()
            self._probes_at = self.env.now
        self._probes.setdefault((mta.name, host), event)

    # ------------------------------------------------------------------ setup
    def _build_jobs(self) -> None:
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
                found = csv_arrivals(t, self.clock, self.scenario.source, group.name, group.count)
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
                policy=mta.policy.name,
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
    async def _before_flush(self) -> None:
        for wire in self.wire.values():
            await wire.reconcile()

    def _after_flush(self) -> None:
        for server in self.servers.values():
            if server.errors:
                error = server.errors[0]
                raise RunError(
                    f"scenario {self.scenario.name}: server {server.name} at {self.clock.iso(self.env.now)}: "
                    f"{type(error).__name__}: {error}"
                ) from error
        if self._relay_inbox:
            inbox, self._relay_inbox = sorted(self._relay_inbox), []
            for message_id, relay, now in inbox:
                record = self.records[message_id]
                job = Job(record, self.relay_mtas[relay], record.recipient.rpartition("@")[2], now)
                self.env.process(self._guarded(job))

    def _guarded(self, job: Job) -> Any:
        try:
            yield from deliver(self, job)
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
        if self.transport_kind == "wire":
            for name, logic in self.servers.items():
                self.wire[name] = WireServer(logic)
            transport = SmtpTransport(self.scenario.engine.wire_timeout, self.wire)
        else:
            transport = MemoryTransport(self.servers)
        self.bridge = Bridge(self.env, transport, self.scenario.engine.concurrency)
        try:
            for wire in self.wire.values():
                await wire.start()
            self.env.process(timeline_process(self))
            for job in self.jobs:
                self.env.process(self._guarded(job))
            end = self.clock.end
            report = (lambda now: self.progress(now, end)) if self.progress else None
            await self.bridge.drive(end, self._before_flush, self._after_flush, report)
        finally:
            for wire in self.wire.values():
                await wire.stop()
        records = [job.record for job in self.jobs]
        counts = finalize(records, self.stores.holdings(), len(self.jobs))
        return RunResult(
            scenario=self.scenario,
            seed=self.seed,
            clock=self.clock,
            records=records,
            counts=counts,
            events=self.events,
            wall_seconds=time.perf_counter() - started,
            wire_seconds=self.bridge.wire_seconds,
            batches=self.bridge.batches,
            transport=self.transport_kind,
            notifications=self.notifications,
            turned_away={name: s.turned_away for name, s in self.servers.items()},
        )

