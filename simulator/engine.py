"""The replay engine: one SimPy environment, real SMTP, a ledger at the end.

``Replay`` builds the runtime entities from a ``Scenario`` (receiving servers
with their mail stores, sending MTAs with their policy state, one SimPy
process per message, one for the timeline), drives them through the
time-frozen ``Bridge`` and returns a ``RunResult``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any

import simpy

from . import dsn
from .bridge import Bridge
from .clock import SimClock
from .errors import RunError
from .ledger import MessageRecord, finalize
from .policies.simulate import all_attempts_fail
from .policies import Decision, Failure, FailureKind, MessageView, PolicyState, RetryPolicy, Stage, build_policy
from .receiver import Mode, ReceivingServer
from .results import RunResult
from .scenario import (
    BackupEvent,
    CrashEvent,
    DiskLostEvent,
    DownEvent,
    RecoverDiskEvent,
    RestoreEvent,
    Scenario,
    UpEvent,
)
from .store import MailStores
from .traffic import Arrival, csv_arrivals, poisson_arrivals
from .transport import Attempt, MemoryTransport, Outcome, SmtpTransport, Transport
from .wire import LOOPBACK, WireServer

__all__ = ["Replay"]

Progress = Callable[[float, float], None]
"""Called with (simulated seconds done, simulated seconds in all)."""


@dataclass
class _Mta:
    """A simulated sending MTA: its name, policy and runtime retry state."""

    name: str
    group: str
    domain: str
    policy: RetryPolicy
    state: PolicyState


@dataclass
class _Message:
    record: MessageRecord
    mta: _Mta
    domain: str
    content: bytes = field(repr=False, default=b"")


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
        self.stores = MailStores([s.name for s in scenario.servers])
        self.records: dict[str, MessageRecord] = {}
        self.servers: dict[str, ReceivingServer] = {}
        self.wire: dict[str, WireServer] = {}
        self.routes: dict[str, str] = {}
        for spec in scenario.servers:
            self.servers[spec.name] = ReceivingServer(
                name=spec.name,
                domains=spec.domains,
                hostname=spec.hostname or f"{spec.name}.{spec.domains[0]}",
                stores=self.stores,
                now=lambda: self.env.now,
                on_commit=self._on_commit,
                mode=Mode(spec.initially),
            )
            for domain in spec.domains:
                self.routes[domain.lower()] = spec.name
        self.messages: list[_Message] = []
        self.notifications: list[dsn.Notification] = []
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

    # ------------------------------------------------------------------ setup
    def _build_messages(self) -> None:
        arrivals: list[tuple[float, int, int, int, Arrival, _Mta]] = []
        start, end = 0.0, self.clock.end
        domains = sorted(self.routes)
        for gi, group in enumerate(self.scenario.senders):
            policy = build_policy(group.policy)
            domain = (group.traffic.to or domains[0]).lower()
            width = max(2, len(str(group.count)))
            mtas = []
            for i in range(group.count):
                name = f"{group.name}-{i + 1:0{width}d}"
                rng = random.Random(f"{self.seed}/policy/{name}")
                mtas.append(_Mta(name, group.name, domain, policy, policy.start(rng)))
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
                lo = self.clock.seconds(t.start) if t.start else start
                hi = self.clock.seconds(t.until) if t.until else end
                found = []
                for i, mta in enumerate(mtas):
                    rng = random.Random(f"{self.seed}/traffic/{mta.name}")
                    found.extend(poisson_arrivals(t, self.clock, lo, hi, i, rng))
            for n, arrival in enumerate(found):
                arrivals.append((arrival.at, gi, arrival.mta, n, arrival, mtas[arrival.mta]))
        arrivals.sort(key=lambda a: a[:4])
        width = max(6, len(str(len(arrivals))))
        for n, (at, _, _, _, arrival, mta) in enumerate(arrivals, start=1):
            message_id = f"m{n:0{width}d}"
            originator = f"{arrival.rcpt_local.replace('user', 'sender')}@{mta.name}.example"
            record = MessageRecord(
                message_id=message_id,
                sender=mta.name,
                group=mta.group,
                policy=mta.policy.name,
                originator=originator,
                recipient=f"{arrival.rcpt_local}@{mta.domain}",
                submitted_at=at,
            )
            self.records[message_id] = record
            self.messages.append(_Message(record, mta, mta.domain))

    def _content(self, msg: _Message) -> bytes:
        r = msg.record
        when = self.clock.datetime_at(r.submitted_at)
        date = format_datetime(when)
        return (
            f"From: <{r.originator}>\r\nTo: <{r.recipient}>\r\n"
            f"Subject: {r.message_id} from {r.sender}\r\nDate: {date}\r\n"
            f"Message-ID: <{r.message_id}@smtp-outage.invalid>\r\n\r\n"
            f"Submitted at {self.clock.iso(r.submitted_at)} by {r.sender}.\r\n"
        ).encode("ascii")

    # ------------------------------------------------------------------ processes
    def _timeline(self) -> Generator[simpy.Event, None, None]:
        env = self.env
        for ev in self.scenario.timeline:
            at = self.clock.seconds(ev.at)
            if at > env.now:
                yield env.timeout(at - env.now)
            self._apply(ev)

    def _apply(self, ev: Any) -> None:
        server = self.servers[ev.server]
        stores = self.stores
        name = ev.server
        note = {"note": ev.note} if ev.note else {}
        if isinstance(ev, UpEvent):
            server.mode = Mode.UP
            self.log("server", server=name, state="up", **note)
        elif isinstance(ev, DownEvent):
            server.mode = Mode(ev.mode)
            self.log("server", server=name, state=ev.mode, **note)
        elif isinstance(ev, CrashEvent):
            disk = stores.crash(name, self.env.now)
            server.mode = Mode(ev.mode)
            self.log("crash", server=name, disk=disk.label if disk else "", messages_on_disk=len(disk.mail) if disk else 0, state=ev.mode, **note)
        elif isinstance(ev, BackupEvent):
            if ev.ok:
                snap = stores.backup(name, self.env.now)
                self.log("backup", server=name, ok=True, messages=len(snap.mail), **note)
            else:
                self.log("backup", server=name, ok=False, messages=0, **note)
        elif isinstance(ev, RestoreEvent):
            taken = None if ev.backup == "latest" else self.clock.seconds(ev.backup)
            snap = stores.latest_backup(name, taken)
            if snap is None:
                raise RunError(f"{name}: no backup to restore from at {self.clock.iso(self.env.now)}")
            disk = stores.restore(name, snap, self.env.now)
            if ev.bring_up:
                server.mode = Mode.UP
            self.log("restore", server=name, disk=disk.label, backup_taken_at=self.clock.iso(snap.taken_at), messages=len(snap.mail), state=server.mode.value, **note)
        elif isinstance(ev, RecoverDiskEvent):
            count = stores.recover_failed(name, self.env.now)
            self.log("disk_recovered", server=name, messages=count, **note)
        elif isinstance(ev, DiskLostEvent):
            count = stores.lose_failed(name, self.env.now)
            self.log("disk_lost", server=name, messages=count, **note)

    def _view(self, msg: _Message) -> MessageView:
        r = msg.record
        return MessageView(r.message_id, r.submitted_at, r.attempts, r.delay_warnings, msg.domain)

    def _deliver(self, msg: _Message) -> Generator[simpy.Event, Any, None]:
        try:
            yield from self._deliver_steps(msg)
        except (RunError, simpy.Interrupt):
            raise
        except Exception as exc:
            raise RunError(
                f"scenario {self.scenario.name}: message {msg.record.message_id} at "
                f"{self.clock.iso(self.env.now)}: {type(exc).__name__}: {exc}"
            ) from exc

    def _deliver_steps(self, msg: _Message) -> Generator[simpy.Event, Any, None]:
        env, r, mta = self.env, msg.record, msg.mta
        if r.submitted_at > env.now:
            yield env.timeout(r.submitted_at - env.now)
        self.log("submit", message=r.message_id, sender=r.sender)
        decision = mta.state.on_arrival(self._view(msg), env.now)
        while True:
            if decision.warn:
                r.delay_warnings += 1
                self.log("warning", message=r.message_id, sender=r.sender, attempts=r.attempts, last_error=r.last_error)
                self._notify(msg, decision)
            if decision.bounce is not None:
                self._bounce(msg, decision)
                return
            assert decision.retry_at is not None
            if decision.retry_at > env.now:
                yield env.timeout(decision.retry_at - env.now)
            server_name = self.routes[msg.domain]
            r.attempts += 1
            failure = mta.state.before_connect(self._view(msg), server_name, env.now)
            if failure is None:
                r.connections += 1
                outcome = yield self._submit(msg, server_name)
                if outcome.accepted:
                    self._accepted(msg, server_name, outcome)
                    mta.state.after_success(self._view(msg), server_name, env.now)
                    return
                failure = self._as_seen(outcome.failure, server_name)
                self.log("reply", message=r.message_id, server=server_name, attempt=r.attempts, kind=failure.kind.value, stage=failure.stage.value, code=failure.code, text=failure.text[:120])
                charge = self._charge(failure, mta.policy)
                if charge:
                    yield env.timeout(charge)
            elif failure.expiry:
                # A lifetime wake-up: the MTA returns the message without connecting.
                r.attempts -= 1
                self.log("expired", message=r.message_id, server=server_name, text=failure.text)
            else:
                self.log("suspended", message=r.message_id, server=server_name, attempt=r.attempts, text=failure.text)
            r.last_error = failure.describe()
            decision = mta.state.after_failure(self._view(msg), failure, env.now)

    def _submit(self, msg: _Message, server_name: str) -> simpy.Event:
        r = msg.record
        if not msg.content:
            msg.content = self._content(msg)
        self.log("attempt", message=r.message_id, sender=r.sender, server=server_name, attempt=r.attempts)
        address = self.wire[server_name].address if self.wire else (LOOPBACK, 0)
        return self.bridge.submit(
            Attempt(
                message_id=r.message_id,
                server=server_name,
                address=address,
                helo=f"{r.sender}.example",
                mail_from=r.originator,
                rcpt_to=r.recipient,
                content=msg.content,
            )
        )

    def _as_seen(self, failure: Failure | None, server_name: str) -> Failure:
        """Map the wire's stand-ins back to the model's meaning."""
        assert failure is not None
        if (
            failure.kind is FailureKind.TIMEOUT
            and failure.stage is Stage.GREETING
            and self.servers[server_name].mode is Mode.UNREACHABLE
        ):
            return Failure(FailureKind.TIMEOUT, Stage.CONNECT, failure.host, None, "connect timed out (host unreachable)")
        return failure

    @staticmethod
    def _charge(failure: Failure, policy: RetryPolicy) -> float:
        """Simulated seconds the failure took."""
        if failure.kind is not FailureKind.TIMEOUT:
            return 0.0
        t = policy.timeouts
        if failure.stage is Stage.CONNECT:
            return t.connect
        if failure.stage is Stage.GREETING:
            return t.greeting
        if failure.stage is Stage.DOT:
            return t.data_done
        return t.command

    def _accepted(self, msg: _Message, server_name: str, outcome: Outcome) -> None:
        r = msg.record
        if r.accepted_at is None:
            r.accepted_at, r.accepted_by = self.env.now, server_name
        self.log("reply", message=r.message_id, server=server_name, attempt=r.attempts, kind="accepted", stage="dot", code=250, text=outcome.reply[:120])
        self.log("accepted", message=r.message_id, server=server_name, attempts=r.attempts, delay=round(self.env.now - r.submitted_at, 3))

    def _bounce(self, msg: _Message, decision: Decision) -> None:
        r = msg.record
        r.bounced_at = self.env.now
        r.bounce_status = decision.status
        r.bounce_reason = decision.bounce or ""
        self.log("bounce", message=r.message_id, sender=r.sender, originator=r.originator, status=r.bounce_status, reason=r.bounce_reason, attempts=r.attempts, last_error=r.last_error)
        self._notify(msg, decision)

    def _notify(self, msg: _Message, decision: Decision) -> None:
        """Build the RFC 3464 delay warning or bounce the MTA sends its originator."""
        r = msg.record
        at = self.clock.datetime_at
        common = {
            "originator": r.originator,
            "recipients": r.recipient,
            "reporting_mta": f"{r.sender}.example",
            "arrival": at(r.submitted_at),
            "last_attempt": at(self.env.now),
            "diagnostic": r.last_error or "no attempt was made",
            "envelope_id": r.message_id,
        }
        if decision.bounce is not None:
            note = dsn.bounce(msg.content or self._content(msg), status=decision.status or "5.0.0", reason=decision.bounce, **common)
        else:
            until = r.submitted_at + self._give_up_after(msg.mta.policy)
            note = dsn.delay_warning(msg.content or self._content(msg), will_retry_until=at(until), **common)
        if note is not None:
            self.notifications.append(note)

    def _give_up_after(self, policy: RetryPolicy) -> float:
        """When the policy returns a message whose every attempt fails (for Will-Retry-Until)."""
        if policy.name not in self._lifetimes:
            fate = all_attempts_fail(policy, hours=30 * 24)
            self._lifetimes[policy.name] = fate.bounce_at if fate.bounce_at is not None else 30 * 86400.0
        return self._lifetimes[policy.name]

    # ------------------------------------------------------------------ run
    async def _reconcile(self) -> None:
        for wire in self.wire.values():
            await wire.reconcile()

    def _check_servers(self) -> None:
        for server in self.servers.values():
            if server.errors:
                error = server.errors[0]
                raise RunError(
                    f"scenario {self.scenario.name}: server {server.name} at {self.clock.iso(self.env.now)}: "
                    f"{type(error).__name__}: {error}"
                ) from error

    async def run(self) -> RunResult:
        """Replay the scenario and return its result."""
        started = time.perf_counter()
        self._build_messages()
        transport: Transport
        if self.transport_kind == "wire":
            transport = SmtpTransport(self.scenario.engine.wire_timeout)
            for name, logic in self.servers.items():
                self.wire[name] = WireServer(logic)
        else:
            transport = MemoryTransport(self.servers)
        self.bridge = Bridge(self.env, transport, self.scenario.engine.concurrency)
        try:
            for wire in self.wire.values():
                await wire.start()
            self.env.process(self._timeline())
            for msg in self.messages:
                self.env.process(self._deliver(msg))
            end = self.clock.end
            report = (lambda now: self.progress(now, end)) if self.progress else None
            await self.bridge.drive(end, self._reconcile, self._check_servers, report)
        finally:
            for wire in self.wire.values():
                await wire.stop()
        records = [m.record for m in self.messages]
        counts = finalize(records, self.stores.holdings(), len(self.messages))
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
        )


def run_replay(scenario: Scenario, **kwargs: Any) -> RunResult:
    """Run a replay on a fresh event loop (for callers without one)."""
    return asyncio.run(Replay(scenario, **kwargs).run())
