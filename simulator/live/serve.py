"""Live mode: the scenario's servers on fixed loopback ports, its timeline in scaled real time.

``serve_scenario`` runs a scenario's receiving servers as real SMTP servers
on ``127.0.0.1`` (``port_base``, ``port_base + 1``, ... in the scenario's
order) while its timeline plays out at ``speed`` simulated seconds per real
second. Real MTAs (a local Postfix or Exim, swaks, anything that speaks
SMTP) deliver to them and meet what the engine's senders meet: the same
modes, faults, capacity limits, greylisting, crashes, backups and restores,
decided by the same ``ReceivingServer`` (a connection nobody announced is
decided step by step as it goes). The scenario's simulated senders may run
alongside (``senders=True``).

The clock. SimPy stays the only clock: a normal ``simpy.Environment``
stepped from the asyncio loop, each instant no earlier than the wall clock
allows (``engine.LiveLink``). ``simpy.rt.RealtimeEnvironment`` was not used:
it blocks in ``time.sleep`` and would need a thread of its own, and every
timeline change would then have to be handed to the loop's thread; stepping
from the loop keeps one thread, in which the servers read simulated time
from the wall clock, never past the next event SimPy has not run.

The record. Every message an outside client hands over is a row of
``messages.csv``, keyed by its Message-ID (whole), ``sender`` the name the
client gave in EHLO, group and policy ``outside``: kept apart from the
simulated senders' rows. ``attempts`` counts the sessions that carried it to
the final dot (a connection refused, turned away or greylisted before DATA
carries no Message-ID); every such refusal is an ``outside`` event. Its
final state comes from the mail stores, as for the engine's mail: a crash
strands it, a restore brings back what the backup held. A message that
never got its 250 is ``queued`` (the outside MTA still holds it, as far as
the servers can tell).

Stopping. The run ends with the scenario's clock, or earlier when its
``Interrupt`` is requested (the CLI does on SIGINT or SIGTERM): it stops at
the current simulated instant and writes what it has, ``summary.json``
marked ``partial`` with ``interrupted_by`` and ``stopped_at``
(``api.prepare_results`` / ``api.write_results``); the report is drawn
for a complete run only. ``summary.json`` also says how the run was
served (``live``: the speed, the wall-clock moment of simulated second 0,
the ports), for ``smtp-outage fidelity``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..api import Run, prepare_results, write_results
from ..clock import SimClock
from ..engine import Interrupt, LiveLink, Replay
from ..errors import Problem, ScenarioError
from ..events import (
    MARK_EVENTS,
    BackupScheduleEvent,
    DnsEvent,
    Event,
    FaultClearedEvent,
    FaultEvent,
    OutsideEvent,
)
from ..ledger import MessageRecord
from ..receiver import Act, SessionNote
from ..scenario import Scenario
from ..wire import LOOPBACK

__all__ = ["OUTSIDE", "LiveResult", "OutsideMail", "serve_scenario", "describe", "check_ports"]

OUTSIDE = "outside"
"""The group and policy of mail that outside MTAs handed over in a live run."""


class OutsideMail:
    """The ledger rows of mail handed over by outside MTAs, and their ``outside`` events."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.records: dict[str, MessageRecord] = {}
        self._emit: Callable[[Event], None] = lambda event: None
        self._now: Callable[[], float] = lambda: 0.0

    def attach(self, emit: Callable[[Event], None], now: Callable[[], float]) -> None:
        """Send events to *emit*, stamped with the live clock *now*."""
        self._emit, self._now = emit, now

    def _row(self, message_id: str, now: float) -> MessageRecord:
        record = self.records.get(message_id)
        if record is None:
            record = self.records[message_id] = MessageRecord(
                message_id=message_id,
                sender="",
                group=OUTSIDE,
                policy=OUTSIDE,
                originator="",
                recipient="",
                submitted_at=now,
            )
        return record

    def commit(self, message_id: str, server: str, now: float) -> MessageRecord:
        """A server stored a message no simulated sender submitted: its row (made on first sight)."""
        return self._row(message_id, now)

    def watch(self, note: SessionNote) -> None:
        """A step of a connection nobody announced: an event, and at the dot the message's row."""
        now = self._now()
        step = note.step
        code = step.code
        self._emit(
            OutsideEvent(
                t=round(now, 3),
                time=self.clock.iso(now),
                server=note.server,
                peer=note.peer,
                client=note.helo,
                stage=note.stage.value,
                act=step.act.value,
                code=code,
                text=step.reply[:120],
                mail_from=note.mail_from,
                rcpt=list(note.rcpt),
                message=note.message_id or "",
                turned_away=note.turned_away,
            )
        )
        if note.message_id is None:
            return
        r = self._row(note.message_id, now)
        r.sender = r.sender or note.helo or note.peer.rpartition(":")[0] or "unknown"
        r.originator = r.originator or note.mail_from
        r.recipient = r.recipient or (note.rcpt[0] if note.rcpt else "")
        r.attempts += 1
        r.connections += 1
        if step.act is Act.REPLY and code == 250:
            if r.accepted_at is None:
                r.accepted_at, r.accepted_by = now, note.server
        else:
            r.last_error = f"{step.reply}".strip() or f"{step.act.value} at dot"


def describe(event: Event, clock: SimClock) -> str | None:
    """One line for a change worth printing as it happens (timeline entries, outside sessions)."""
    when = clock.iso(event.t).replace("T", " ")
    if isinstance(event, OutsideEvent):
        who = event.client or event.peer
        reply = (
            event.text
            if event.code is not None
            else {"silent": "no reply", "drop": "hung up"}.get(event.act, event.act)
        )
        what = f"message {event.message}" if event.message else event.stage
        return f"{when}  {event.server} <- {who}: {what}: {reply}"
    if isinstance(event, (*MARK_EVENTS, FaultEvent, FaultClearedEvent, BackupScheduleEvent)):
        fields = {k: getattr(event, k) for k in event.__dataclass_fields__ if k not in ("t", "time", "type", "server")}
        detail = ", ".join(f"{k} {v}" for k, v in fields.items() if v not in ("", None, {}, []))
        return f"{when}  {getattr(event, 'server', '')}: {event.type}" + (f" ({detail})" if detail else "")
    if isinstance(event, DnsEvent):
        return f"{when}  dns: {event.domain} -> {', '.join(event.mx)} (ttl {event.ttl:g}s)"
    return None


def check_ports(scenario: Scenario, port_base: int) -> dict[str, int]:
    """The fixed port of each server (``port_base`` + its index; 0: any free port), checked free now."""
    if port_base == 0:
        return {s.name: 0 for s in scenario.servers}
    last = port_base + len(scenario.servers) - 1
    if port_base < 1024 or last > 65535:
        raise ScenarioError(
            [Problem("--port-base", None, "", f"ports {port_base}-{last} are out of range; choose 1024 to 65535")]
        )
    ports = {s.name: port_base + i for i, s in enumerate(scenario.servers)}
    for name, port in ports.items():
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            raise ScenarioError(
                [
                    Problem(
                        "--port-base", None, "", f"{LOOPBACK}:{port} (for {name}) is in use; choose another port base"
                    )
                ]
            ) from None
        finally:
            probe.close()
    return ports


@dataclass
class LiveResult:
    """A live run: its ``Run`` (``run.interrupted_by``, ``run.stopped_at`` when stopped early) and how it was served."""

    run: Run
    ports: dict[str, int]
    speed: float
    started: datetime  #: the wall-clock moment of simulated second 0 (UTC)
    out: Path | None = None

    @property
    def stopped_at(self) -> float | None:
        """Simulated seconds at which the run was stopped before its clock's end (None: it ran to the end)."""
        return self.run.stopped_at

    @property
    def stopped_by(self) -> str:
        """What stopped it (``SIGINT``, ``SIGTERM``), or ""."""
        return self.run.interrupted_by


async def serve_scenario(
    scenario: Scenario,
    *,
    speed: float,
    port_base: int = 0,
    senders: bool = False,
    seed: int | None = None,
    out: str | Path | None = None,
    interrupt: Interrupt | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    report: bool = True,
) -> LiveResult:
    """Serve *scenario* live until its clock ends or it is interrupted; write the results folder into *out*.

    *speed* is simulated seconds per real second. To stop it early, request
    the *interrupt* (its reason is recorded: ``SIGINT``) and set *stop*,
    which wakes the run if it is waiting for the wall clock. *on_ready*
    gets each server's address once all listen; *on_event* every event as
    it is emitted. The report is drawn when the run is complete.
    """
    if speed <= 0:
        raise ScenarioError([Problem("--speed", None, "", f"must be greater than 0, got {speed:g}")])
    ports = check_ports(scenario, port_base)
    interrupt = interrupt or Interrupt()
    stop = stop or asyncio.Event()
    seed = scenario.seed if seed is None else seed
    if out is not None:
        prepare_results(out, scenario.name, seed)
    clock = SimClock(scenario.clock)
    outside = OutsideMail(clock)
    started = time.monotonic()
    facts: dict[str, Any] = {"speed": speed}

    def wall() -> float:
        return (time.monotonic() - started) * speed

    async def pace(t: float) -> bool:
        while not (stop.is_set() or interrupt.requested()):
            delay = t / speed - (time.monotonic() - started)
            if delay <= 0:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        interrupt.request("stop")  # the first reason given wins
        return False

    def ready(addresses: dict[str, tuple[str, int]]) -> None:
        nonlocal started
        started = time.monotonic()  # simulated second 0: every server listens
        facts["started"] = datetime.now(UTC).isoformat(timespec="microseconds")
        facts["ports"] = {name: port for name, (_, port) in addresses.items()}
        if on_ready is not None:
            on_ready(addresses)

    link = LiveLink(
        wall=wall,
        pace=pace,
        commit=outside.commit,
        watch=outside.watch,
        ports=ports,
        listen=on_event,
        senders=senders,
        ready=ready,
        facts=facts,
    )
    replay = Replay(scenario, seed=seed, interrupt=interrupt, live=link)
    outside.attach(replay.log.emit, replay.server_now)
    result = await replay.run()
    live = LiveResult(
        run=Run.of(result),
        ports=dict(facts.get("ports", {})),
        speed=speed,
        started=datetime.fromisoformat(facts["started"]) if "started" in facts else datetime.now(UTC),
    )
    if out is not None:
        live.out = Path(out)
        write_results(live.run, out)
        if report and not live.run.interrupted_by:
            from ..report import write_report

            write_report(out)
    return live
