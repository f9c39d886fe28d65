"""Throughput of the replay engine against raw aiosmtplib -> aiosmtpd, measured side by side.

Run:  python bench/bench_engine.py [--quick]

Everything runs on 127.0.0.1, bounded in message count; nothing here passes
or fails on timing. The script prints one table (stdout) with:

1. raw references: aiosmtplib clients -> an aiosmtpd server, one connection
   per message (EHLO, MAIL, RCPT, DATA, QUIT), a fixed pool of concurrent
   clients, with the server in the same event loop (as in the engine), in a
   process of its own, and (same loop) the engine's own ``WireServer``;
   "best raw" is the largest of these;
2. the engine: SMTP attempts per second of ``run_scenario_async`` on scenarios
   built in code whose arrivals fall on whole-minute instants, so that many
   attempts share one simulated instant (up the whole time; and down for ten
   minutes then up, so the retry backlog lands on shared instants);
3. refused connections: the engine against a listener that is closed, and
   raw refused connects, to show what a refused attempt costs.

Rates are medians over rounds that interleave raw and engine measurements, so
that slow and busy periods of the machine affect both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

if TYPE_CHECKING:
    from simulator import Scenario

LOOPBACK = "127.0.0.1"
BACKLOG = 1024
SERVER_HOSTNAME = "sink.bench.example"
CLIENT_HOSTNAME = "client.bench.example"
DOMAIN = "bench.example"
START = datetime(2026, 1, 5, 0, 0)


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    rounds: int  #: measurements of each row; the table shows the median
    messages: int  #: full transactions per raw or engine measurement
    per_instant: int  #: engine attempts that share one simulated instant
    refused: int  #: refused attempts per measurement (about)
    outage_minutes: int  #: length of the outage in the backlog scenario
    outage_per_minute: int  #: arrivals per minute during that outage


FULL = Sizes(rounds=3, messages=1024, per_instant=256, refused=4096, outage_minutes=10, outage_per_minute=64)
QUICK = Sizes(rounds=1, messages=512, per_instant=128, refused=2048, outage_minutes=5, outage_per_minute=64)
CONCURRENCIES = (1, 16, 64)


# --------------------------------------------------------------------------- raw server


class _SinkHandler:
    """Accepts every message; the raw reference's server does no other work."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Take the message."""
        return "250 2.0.0 Ok: queued"


async def start_sink() -> tuple[asyncio.Server, int]:
    """An aiosmtpd server on 127.0.0.1 port 0 in the running loop; returns it and its port."""
    loop = asyncio.get_running_loop()
    handler = _SinkHandler()

    def protocol() -> SMTP:
        return SMTP(handler, hostname=SERVER_HOSTNAME, ident="bench", loop=loop, timeout=30)

    server = await loop.create_server(protocol, LOOPBACK, 0, backlog=BACKLOG)
    return server, server.sockets[0].getsockname()[1]


def sink_process(conn: Connection) -> None:
    """Body of the separate server process: serve until the parent sends anything."""

    async def main() -> None:
        server, port = await start_sink()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), stop.set)
        conn.send(port)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        server.close()
        await server.wait_closed()

    asyncio.run(main())


class SinkProcess:
    """An aiosmtpd server in a process of its own (the machine's other core)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=sink_process, args=(child,), daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(30):
            self.stop()
            raise RuntimeError("the server process did not report its port")
        self.port: int = self._conn.recv()

    def stop(self) -> None:
        """Ask the process to end, and end it if it does not."""
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()


# --------------------------------------------------------------------------- raw clients


CONTENT = (
    "From: <sender@client.bench.example>\r\nTo: <user1@bench.example>\r\n"
    "Subject: m000001 from s-01\r\nDate: Mon, 05 Jan 2026 00:00:00 -0000\r\n"
    "Message-ID: <m000001@smtp-outage.invalid>\r\n\r\n"
    "Submitted at 2026-01-05T00:00:00 by s-01.\r\n"
).encode("ascii")


def _client(port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=LOOPBACK,
        port=port,
        local_hostname=CLIENT_HOSTNAME,
        timeout=10,
        start_tls=False,
        use_tls=False,
    )


async def transaction(port: int) -> None:
    """One message on its own connection: connect, EHLO, MAIL, RCPT, DATA, QUIT."""
    smtp = _client(port)
    await smtp.connect()
    await smtp.ehlo()
    await smtp.mail("sender@client.bench.example")
    await smtp.rcpt("user1@" + DOMAIN)
    await smtp.data(CONTENT)
    await smtp.quit()


async def refused_connect(port: int) -> None:
    """One connect to a closed port; connection refused is the expected outcome."""
    try:
        await _client(port).connect()
    except aiosmtplib.SMTPConnectError:
        return
    raise RuntimeError(f"port {port} accepted a connection; expected connection refused")


async def pool(total: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> float:
    """Run *one* *total* times with *concurrency* clients at a time; returns operations per second."""
    todo = iter(range(total))

    async def worker() -> None:
        for _ in todo:
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def raw_same_loop(total: int, concurrency: int) -> float:
    """Full transactions per second, server and clients in this event loop."""
    server, port = await start_sink()
    try:
        return await pool(total, concurrency, lambda: transaction(port))
    finally:
        server.close()
        await server.wait_closed()


async def raw_engine_server(total: int, concurrency: int) -> float:
    """Full transactions per second against the engine's own server, in this event loop.

    A ``WireServer`` with its ``ReceivingServer`` and mail store, as a replay
    builds it, but driven by the plain client pool instead of the engine.
    """
    from simulator.receiver import ReceivingServer
    from simulator.store import MailStores
    from simulator.wire import WireServer

    logic = ReceivingServer(
        name="mx",
        domains=[DOMAIN],
        hostname=SERVER_HOSTNAME,
        stores=MailStores(["mx"]),
        now=lambda: 0.0,
        on_commit=lambda message_id, server, now: None,
    )
    wire = WireServer(logic)
    await wire.start()
    try:
        return await pool(total, concurrency, lambda: transaction(wire.port))
    finally:
        await wire.stop()


async def raw_refused(total: int, concurrency: int) -> float:
    """Refused connects per second against a port nobody listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    try:  # bound but not listening: connects are refused, and no one else gets the port
        return await pool(total, concurrency, lambda: refused_connect(port))
    finally:
        sock.close()


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class EngineRun:
    """One engine run, reduced to what the table needs."""

    connections: int
    accepted: int
    wire_seconds: float
    wall_seconds: float
    batches: int
    failures: Counter[str]  #: failed attempts by "kind at stage"

    @property
    def wire_rate(self) -> float:
        """Attempts on the wire per second of wire time."""
        return self.connections / self.wire_seconds

    @property
    def whole_rate(self) -> float:
        """Attempts per second of the whole run, SimPy and bookkeeping included."""
        return self.connections / self.wall_seconds

    @property
    def overhead_us(self) -> float:
        """Microseconds per attempt spent outside the wire part."""
        return (self.wall_seconds - self.wire_seconds) / self.connections * 1e6


def write_arrivals(path: Path, instants: list[int], per_instant: int, senders: int) -> Path:
    """A traffic CSV with *per_instant* arrivals at each whole minute in *instants*."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["at", "mta"])
        n = 0
        for minute in instants:
            at = (START + timedelta(minutes=minute)).isoformat(sep=" ")
            for _ in range(per_instant):
                writer.writerow([at, n % senders])
                n += 1
    return path


def scenario(
    name: str,
    arrivals: Path,
    *,
    senders: int,
    minutes: int,
    concurrency: int,
    retry: str,
    lifetime: str,
    initially: str = "up",
    up_at: int | None = None,
) -> Scenario:
    """A one-server scenario built in code around a traffic CSV."""
    from simulator import Scenario

    timeline = []
    if up_at is not None:
        timeline.append({"at": START + timedelta(minutes=up_at), "server": "mx", "event": "up"})
    return Scenario.model_validate(
        {
            "name": name,
            "seed": 1,
            "clock": {"start": START, "end": START + timedelta(minutes=minutes)},
            "servers": [{"name": "mx", "domains": [DOMAIN], "hostname": "mx." + DOMAIN, "initially": initially}],
            "timeline": timeline,
            "senders": [
                {
                    "name": "s",
                    "count": senders,
                    "policy": {"retry": retry, "lifetime": lifetime},
                    "traffic": {"csv": str(arrivals)},
                }
            ],
            "engine": {"concurrency": concurrency},
        }
    )


async def run_engine(scn: Scenario, expect_messages: int) -> EngineRun:
    """Run *scn* on the wire; check that every message was submitted."""
    from simulator import run_scenario_async

    started = time.perf_counter()
    from simulator.events import ReplyEvent

    result = await run_scenario_async(scn)
    wall = time.perf_counter() - started
    if result.messages != expect_messages:
        raise RuntimeError(f"{result.scenario.name}: {result.messages} messages, expected {expect_messages}")
    accepted = sum(1 for r in result.records if r.accepted_at is not None)
    failures = Counter(
        f"{e.kind} at {e.stage}" for e in result.events if isinstance(e, ReplyEvent) and e.kind != "accepted"
    )
    return EngineRun(result.connections, accepted, result.wire_seconds, wall, result.batches, failures)


# --------------------------------------------------------------------------- the run


class Rows:
    """Samples per row label, in first-seen order."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def add(self, label: str, value: float) -> None:
        """Record one measurement of *label*."""
        self.samples.setdefault(label, []).append(value)

    def __getitem__(self, label: str) -> float:
        return statistics.median(self.samples[label])


def note(text: str) -> None:
    """Progress on stderr, only for a terminal."""
    if sys.stderr.isatty():
        print(f"  {text}", file=sys.stderr, flush=True)


def surprises(label: str, run: EngineRun, expected: str | None) -> list[str]:
    """Failed attempts other than the *expected* kind, as report lines."""
    return [
        f"{label}: {n} attempt(s) failed with {kind}"
        + (
            " (the real-time wire_timeout ran out under load: such a run is slower and its ledger differs)"
            if kind == "timeout at greeting"
            else ""
        )
        for kind, n in sorted(run.failures.items())
        if kind != expected
    ]


async def measure(sizes: Sizes, workdir: Path, separate: bool) -> tuple[Rows, dict[str, EngineRun], list[str]]:
    """All measurements, interleaved by round."""
    rows = Rows()
    last: dict[str, EngineRun] = {}
    notes: list[str] = []
    senders = 64
    instants = -(-sizes.messages // sizes.per_instant)
    total = instants * sizes.per_instant
    up_csv = write_arrivals(workdir / "up.csv", list(range(instants)), sizes.per_instant, senders)

    # Refused: arrivals at minute 0, retried every minute while the listener stays closed.
    refused_attempts = max(2, sizes.refused // sizes.per_instant)
    refused_csv = write_arrivals(workdir / "refused.csv", [0], sizes.per_instant, senders)

    # Outage backlog: refuse for outage_minutes while mail arrives every minute, retry every
    # 5 minutes; when the server comes back the backlog lands on five shared instants.
    down = sizes.outage_minutes
    outage_csv = write_arrivals(workdir / "outage.csv", list(range(down)), sizes.outage_per_minute, senders)

    sink = SinkProcess() if separate else None
    try:
        for round_no in range(sizes.rounds):
            note(f"round {round_no + 1} of {sizes.rounds}")
            for c in CONCURRENCIES:
                gc.collect()
                rows.add(f"raw same loop @{c}", await raw_same_loop(total, c))
                gc.collect()
                rows.add(f"raw engine server @{c}", await raw_engine_server(total, c))
                if sink is not None:
                    gc.collect()
                    port = sink.port
                    rows.add(f"raw server process @{c}", await pool(total, c, lambda port=port: transaction(port)))
                gc.collect()
                run = await run_engine(
                    scenario(
                        f"bench-up-{c}",
                        up_csv,
                        senders=senders,
                        minutes=instants + 1,
                        concurrency=c,
                        retry="1m",
                        lifetime="1h",
                    ),
                    total,
                )
                notes += surprises(f"round {round_no + 1}, engine @{c}", run, None)
                rows.add(f"engine wire @{c}", run.wire_rate)
                rows.add(f"engine whole @{c}", run.whole_rate)
                rows.add(f"engine overhead @{c}", run.overhead_us)
                last[f"up@{c}"] = run

            c = 64
            gc.collect()
            run = await run_engine(
                scenario(
                    "bench-refused",
                    refused_csv,
                    senders=senders,
                    minutes=refused_attempts,
                    concurrency=c,
                    retry="1m",
                    lifetime="1d",
                    initially="refuse",
                ),
                sizes.per_instant,
            )
            if run.accepted:
                raise RuntimeError("a closed listener accepted mail")
            notes += surprises(f"round {round_no + 1}, engine refused", run, "refused at connect")
            rows.add(f"engine refused wire @{c}", run.wire_rate)
            rows.add(f"engine refused whole @{c}", run.whole_rate)
            rows.add(f"engine refused overhead @{c}", run.overhead_us)
            last["refused"] = run
            gc.collect()
            rows.add(f"raw refused @{c}", await raw_refused(run.connections, c))

            gc.collect()
            messages = down * sizes.outage_per_minute
            run = await run_engine(
                scenario(
                    "bench-outage",
                    outage_csv,
                    senders=senders,
                    minutes=down + 10,
                    concurrency=c,
                    retry="5m",
                    lifetime="1d",
                    initially="refuse",
                    up_at=down,
                ),
                messages,
            )
            notes += surprises(f"round {round_no + 1}, engine outage", run, "refused at connect")
            rows.add(f"engine outage wire @{c}", run.wire_rate)
            rows.add(f"engine outage whole @{c}", run.whole_rate)
            last["outage"] = run
    finally:
        if sink is not None:
            sink.stop()
    return rows, last, notes


def report(rows: Rows, last: dict[str, EngineRun], notes: list[str], sizes: Sizes, wall: float) -> None:
    """The table."""
    has = rows.samples.__contains__
    out: list[str] = []
    put = out.append
    put(
        f"smtp-outage engine benchmark: loopback, {sizes.rounds} round(s), medians; "
        f"{sizes.messages} messages per full-transaction row, {sizes.per_instant} per simulated instant"
    )
    put("")
    put(f"{'full SMTP transactions (msg/s)':<34}" + "".join(f"{'@' + str(c):>10}" for c in CONCURRENCIES))

    def line(label: str, key: str, fmt: str = "{:>10.0f}") -> None:
        if all(has(f"{key} @{c}") for c in CONCURRENCIES):
            put(f"{label:<34}" + "".join(fmt.format(rows[f"{key} @{c}"]) for c in CONCURRENCIES))

    line("raw, server in same loop", "raw same loop")
    line("raw, server in own process", "raw server process")
    line("raw, engine's server, same loop", "raw engine server")
    raws = ("raw same loop", "raw server process", "raw engine server")
    best = {c: max(rows[f"{key} @{c}"] for key in raws if has(f"{key} @{c}")) for c in CONCURRENCIES}
    put(f"{'best raw':<34}" + "".join(f"{best[c]:>10.0f}" for c in CONCURRENCIES))
    line("engine, wire part", "engine wire")
    line("engine, whole run", "engine whole")
    line("engine overhead (us/attempt)", "engine overhead")
    put("")
    put(f"{'ratios':<34}" + "".join(f"{'@' + str(c):>10}" for c in CONCURRENCIES))

    def ratio(label: str, num: str, den: Callable[[int], float]) -> None:
        put(f"{label:<34}" + "".join(f"{rows[f'{num} @{c}'] / den(c):>10.2f}" for c in CONCURRENCIES))

    ratio("engine / raw", "engine wire", lambda c: rows[f"raw same loop @{c}"])
    ratio("engine / raw, engine's server", "engine wire", lambda c: rows[f"raw engine server @{c}"])
    ratio("engine / best raw", "engine wire", lambda c: best[c])
    ratio("whole run / raw", "engine whole", lambda c: rows[f"raw same loop @{c}"])
    ratio("whole run / best raw", "engine whole", lambda c: best[c])
    put("")
    put(
        f"engine / raw @64: {rows['engine wire @64'] / rows['raw same loop @64']:.2f}   "
        f"engine / best raw @64: {rows['engine wire @64'] / best[64]:.2f}   "
        f"engine @64 / best raw of all rows ({max(best.values()):.0f}/s): {rows['engine wire @64'] / max(best.values()):.2f}"
    )
    put("")
    r, o = last["refused"], last["outage"]
    put(f"refused connections @64 (listener closed; {r.connections} attempts in {r.batches} instants)")
    put(f"  engine, wire part     {rows['engine refused wire @64']:>8.0f} attempts/s")
    put(
        f"  engine, whole run     {rows['engine refused whole @64']:>8.0f} attempts/s "
        f"(overhead {rows['engine refused overhead @64']:.0f} us/attempt)"
    )
    put(f"  raw refused connects  {rows['raw refused @64']:>8.0f} /s")
    put(
        f"  refused rate / full rate (engine wire) @64: {rows['engine refused wire @64'] / rows['engine wire @64']:.1f}x"
        f"   engine refused / raw refused @64: {rows['engine refused wire @64'] / rows['raw refused @64']:.2f}"
    )
    put("")
    put(
        f"outage backlog @64 (down {sizes.outage_minutes} min, retry every 5 min; {o.connections} attempts = "
        f"{o.failures['refused at connect']} refused + {o.accepted} full, {o.batches} instants)"
    )
    put(f"  engine, wire part     {rows['engine outage wire @64']:>8.0f} attempts/s")
    put(f"  engine, whole run     {rows['engine outage whole @64']:>8.0f} attempts/s")
    put("")
    for line_ in notes:
        put(f"note: {line_}")
    put(f"wall time {wall:.1f} s")
    print("\n".join(out))


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of smaller runs (under 10 s)")
    parser.add_argument("--no-process", action="store_true", help="skip the raw row with the server in its own process")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        rows, last, notes = asyncio.run(measure(sizes, Path(tmp), separate=not args.no_process))
    report(rows, last, notes, sizes, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
