"""Nothing from outside changes a replay's ledger: hostile clients during a wire run.

While simulated time stands still at the run's first instant on the wire,
local clients the engine never announced attack the server: garbage bytes, a
1 MB line, a pipelined flood of RCPTs, idle sockets, a connection dropped in
the middle of DATA, a message without a Message-ID, and injected messages,
one carrying the Message-ID of a message the run bounces (the ids are
predictable) and one with an id the run does not know. The ledger must be
byte-identical to a clean run of the same seed, and the summary must count
every foreign session. All on 127.0.0.1, every count and wait bounded.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import textwrap

import aiosmtplib
import pytest

from simulator.api import Run
from simulator.engine import Replay
from simulator.events import ForeignEvent

from .conftest import make_scenario, sender

IDLE_SOCKETS = 50
FLOOD_RCPTS = 5000
DEADLINE = 20.0  # real seconds any one attack may take at most
FOREIGN_SESSIONS = 7 + IDLE_SOCKETS  # see attack(): seven sessions that talk, and the idle ones


def scenario():
    """An outage from 02:00 to 14:00: the 8-hour sender bounces what it sent at 03:00, the others deliver."""
    return make_scenario(
        timeline=[
            {"at": "2011-10-26 02:00", "server": "mx", "event": "down"},
            {"at": "2011-10-26 14:00", "server": "mx", "event": "up"},
        ],
        senders=[
            sender("patient", {"retry": "30m", "lifetime": "5d"}, at=["2011-10-26 01:00", "2011-10-26 03:00"]),
            sender("hasty", {"retry": "1h", "lifetime": "8h"}, at=["2011-10-26 01:00", "2011-10-26 03:00"]),
        ],
    )


def content(message_id: str) -> bytes:
    return (
        f"From: <intruder@evil.example>\r\nTo: <user1@atnex.example>\r\n"
        f"Message-ID: <{message_id}>\r\nSubject: not from the run\r\n\r\ndelivered, honest\r\n"
    ).encode()


async def talk(port: int, payload: bytes, *, abort: bool = False, eof: bool = False) -> bytes:
    """Send *payload* on a raw connection and read until the server closes.

    *eof*: then shut the sending side (the server closes at end of input);
    *abort*: then hang up at once (a reset).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        if abort:
            writer.transport.abort()
            return b""
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(-1), DEADLINE)
    finally:
        writer.close()


async def inject(port: int, message_id: str | None) -> int:
    """One well-formed SMTP transaction; returns the reply code to the final dot."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="evil.example", timeout=DEADLINE)
    await client.connect()
    try:
        body = content(message_id) if message_id else content("x").replace(b"Message-ID: <x>\r\n", b"")
        try:
            await client.sendmail("intruder@evil.example", ["user1@atnex.example"], body)
        except aiosmtplib.SMTPDataError as refused:
            return refused.code
        return 250
    finally:
        await client.quit()


async def attack(port: int, known_id: str, idle: list[asyncio.StreamWriter]) -> dict[str, object]:
    """Every attack once, against the server at *port*; the idle sockets stay open in *idle*."""
    garbage = random.Random(13).randbytes(64 * 1024)
    seen: dict[str, object] = {}
    seen["garbage"] = await talk(port, garbage, eof=True)
    seen["long line"] = await talk(port, b"EHLO " + b"x" * 1_000_000 + b"\r\nQUIT\r\n")
    flood = b"EHLO flood.example\r\nMAIL FROM:<a@evil.example>\r\n"
    flood += b"RCPT TO:<user1@atnex.example>\r\n" * FLOOD_RCPTS + b"QUIT\r\n"
    seen["flood"] = await talk(port, flood)
    seen["dropped in DATA"] = await talk(
        port,
        b"EHLO evil.example\r\nMAIL FROM:<a@evil.example>\r\nRCPT TO:<user1@atnex.example>\r\nDATA\r\n"
        + content(known_id)[:40],
        abort=True,
    )
    seen["no id"] = await inject(port, None)
    seen["known id"] = await inject(port, f"{known_id}@smtp-outage.invalid")
    seen["unknown id"] = await inject(port, "intruder-1@evil.example")
    for _ in range(IDLE_SOCKETS):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        idle.append(writer)
    return seen


async def replay(*, hostile: bool, known_id: str = "") -> tuple[Run, dict[str, object]]:
    """A wire replay; with *hostile*, the attacks run at its first flush (servers up, time frozen)."""
    run = Replay(scenario(), transport="wire")
    seen: dict[str, object] = {}
    idle: list[asyncio.StreamWriter] = []
    if hostile:
        before = run._before_flush

        async def gated() -> None:
            await before()
            if not seen:
                seen.update(await asyncio.wait_for(attack(run.wire["mx"].port, known_id, idle), 4 * DEADLINE))

        run._before_flush = gated  # type: ignore[method-assign]
    try:
        result = Run.of(await run.run())
    finally:
        for writer in idle:
            writer.close()
    return result, seen


@pytest.mark.wire
@pytest.mark.asyncio
async def test_hostile_clients_change_not_one_byte_of_the_ledger():
    clean, _ = await replay(hostile=False)
    bounced = next(r for r in clean.records if r.final_state == "bounced")
    attacked, seen = await replay(hostile=True, known_id=bounced.message_id)

    assert attacked.messages_csv() == clean.messages_csv()
    assert attacked.counts == clean.counts
    # What the intruders were told: refusals, and a 250 for each message kept apart.
    assert seen["no id"] == 554
    assert seen["known id"] == seen["unknown id"] == 250
    assert seen["garbage"].startswith(b"220 mx.atnex.example smtp-outage")
    assert b"500 Command line too long" in seen["long line"]
    assert seen["flood"].count(b"250 2.1.5 Ok") == FLOOD_RCPTS
    # Counted as foreign traffic, through the events and the analysis.
    summary = attacked.summary()
    assert summary["foreign"] == {"mx": {"sessions": FOREIGN_SESSIONS, "messages": 2, "run_ids": 1}}
    assert clean.summary()["foreign"] == {"mx": {"sessions": 0, "messages": 0, "run_ids": 0}}
    foreign = [e for e in attacked.events if isinstance(e, ForeignEvent)]
    assert [e.session for e in foreign] == sorted(e.session for e in foreign)
    assert sum(e.ended == "open at the end of the run" for e in foreign) == IDLE_SOCKETS
    assert max(e.received for e in foreign) > 1_000_000
    assert all(e.error == "" for e in foreign)


def test_aiosmtpd_does_not_echo_a_clients_bytes_to_stderr(tmp_path):
    """A server in a plain process (no logging configured): an unknown command is answered, not logged."""
    script = textwrap.dedent(
        """
        import asyncio
        from simulator.receiver import ReceivingServer
        from simulator.store import MailStores
        from simulator.wire import WireServer

        async def main():
            logic = ReceivingServer("mx", ["a.example"], "mx.a.example", MailStores(["mx"]), lambda: 0.0,
                                    lambda *a: None)
            server = WireServer(logic)
            await server.start()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"XYZZY-SECRET-BYTES\\r\\n" * 6)
            print((await asyncio.wait_for(reader.read(-1), 10)).decode().splitlines()[-1])
            writer.close()
            await server.stop()

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "502 5.5.1 Too many unrecognized commands, goodbye."
    assert done.stderr == ""
