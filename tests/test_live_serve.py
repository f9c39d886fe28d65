"""Live mode: an outside SMTP client against ``serve_scenario`` on 127.0.0.1, the timeline in scaled real time.

The client acts when the server announces a change (``on_event``), never
after a sleep; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from simulator.engine import Interrupt
from simulator.events import Event, OutsideEvent, read_events
from simulator.live import OUTSIDE, serve_scenario

from .conftest import make_scenario, sender

pytestmark = pytest.mark.wire

BOUND = 60.0  # real seconds any single wait may take at most

TIMELINE = [
    {"at": "2024-03-04 10:05", "server": "mx", "event": "backup"},
    {"at": "2024-03-04 10:10", "server": "mx", "event": "down", "mode": "tempfail"},
    {"at": "2024-03-04 10:20", "server": "mx", "event": "up"},
    {
        "at": "2024-03-04 10:20",
        "server": "mx",
        "event": "fault",
        "fault": {"kind": "greylist", "delay": "5m"},
    },
    {"at": "2024-03-04 10:30", "server": "mx", "event": "backup", "ok": False, "note": "the retry cue"},
    {"at": "2024-03-04 10:40", "server": "mx", "event": "crash", "mode": "refuse"},
]


def _scenario(**changes: Any):
    data: dict[str, Any] = {
        "clock": {"start": "2024-03-04 10:00", "end": "2024-03-04 11:00"},
        "servers": [{"name": "mx", "domains": ["example.net"], "initially": "refuse"}],
        "timeline": TIMELINE,
        "senders": [sender("sim", "postfix", at=["2024-03-04 10:25"])],
    }
    data.update(changes)
    return make_scenario(**data)


def _message(message_id: str) -> bytes:
    return (
        f"From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: live\r\nMessage-ID: <{message_id}>\r\n\r\nhi\r\n"
    ).encode()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


class Cues:
    """Timeline events as asyncio cues for the client."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._waiters: dict[str, asyncio.Event] = {}
        self.address: tuple[str, int] | None = None
        self.ready = asyncio.Event()

    def key(self, event: Event) -> str:
        state = getattr(event, "state", None)
        if state is None and hasattr(event, "ok"):
            state = "ok" if event.ok else "failed"
        return f"{event.type}:{state}" if state else event.type

    def on_event(self, event: Event) -> None:
        self.seen.append(event)
        self._waiters.setdefault(self.key(event), asyncio.Event()).set()

    def on_ready(self, addresses: dict[str, tuple[str, int]]) -> None:
        self.address = addresses["mx"]
        self.ready.set()

    async def wait(self, key: str) -> None:
        await asyncio.wait_for(self._waiters.setdefault(key, asyncio.Event()).wait(), BOUND)


async def _send(address: tuple[str, int], message_id: str) -> str:
    host, port = address
    try:
        _, reply = await aiosmtplib.send(
            _message(message_id),
            sender="a@example.org",
            recipients=["b@example.net"],
            hostname=host,
            port=port,
            local_hostname="probe.example",
            timeout=10,
        )
    except aiosmtplib.SMTPConnectResponseError as exc:
        return f"{exc.code}"
    except aiosmtplib.SMTPConnectError:
        return "refused"
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return f"{exc.recipients[0].code}"
    except aiosmtplib.SMTPResponseException as exc:
        return f"{exc.code}"
    return reply


@pytest.mark.asyncio
async def test_an_outside_mta_meets_the_timeline_and_its_mail_is_recorded(tmp_path: Path) -> None:
    cues = Cues()
    run = asyncio.create_task(
        serve_scenario(
            _scenario(),
            speed=1200,
            senders=True,
            out=tmp_path,
            on_ready=cues.on_ready,
            on_event=cues.on_event,
            report=True,
        )
    )
    await asyncio.wait_for(cues.ready.wait(), BOUND)
    assert cues.address is not None
    replies = [await _send(cues.address, "early@probe.example")]  # refusing from the start
    await cues.wait("server:tempfail")
    replies.append(await _send(cues.address, "x1@probe.example"))  # 421 greeting
    await cues.wait("server:up")
    replies.append(await _send(cues.address, "x1@probe.example"))  # greylisted at RCPT
    await cues.wait("backup:failed")  # 10:30, the failed backup: ten minutes later, past the greylist
    replies.append(await _send(cues.address, "x1@probe.example"))
    live = await asyncio.wait_for(run, BOUND)
    assert replies[:3] == ["refused", "421", "451"]
    assert replies[3].startswith("2.0.0 Ok: queued")
    assert live.stopped_at is None
    rows = {r["message_id"]: r for r in _rows(tmp_path / "messages.csv")}
    # Keyed by the whole Message-ID the client sent, kept apart from the simulated sender's mail.
    outside = rows["x1@probe.example"]
    assert (outside["sender"], outside["group"], outside["policy"]) == ("probe.example", OUTSIDE, OUTSIDE)
    assert (outside["originator"], outside["recipient"]) == ("a@example.org", "b@example.net")
    assert outside["attempts"] == "1"  # the refused, turned-away and greylisted tries carried no Message-ID
    assert outside["accepted_by"] == "mx"
    # Accepted after the 10:05 backup, on the disk that crashed at 10:40: stranded, like the
    # simulated sender's message of 10:25.
    assert outside["final_state"] == "stranded"
    assert rows["m000001"]["group"] == "sim" and rows["m000001"]["final_state"] == "stranded"
    assert set(rows) == {"x1@probe.example", "m000001"}
    events = list(read_events(tmp_path / "events.jsonl"))
    seen = [(e.stage, e.code) for e in events if isinstance(e, OutsideEvent)]
    assert seen == [("greeting", 421), ("rcpt", 451), ("dot", 250)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["transport"] == "live"
    assert summary["by_policy"][OUTSIDE]["stranded"] == 1
    assert summary["live"]["ports"] == {"mx": cues.address[1]}
    assert (tmp_path / "report.html").exists()


@pytest.mark.asyncio
async def test_stopping_writes_what_was_received_marked_partial(tmp_path: Path) -> None:
    cues = Cues()
    interrupt, stop = Interrupt(), asyncio.Event()
    scenario = _scenario(timeline=TIMELINE[:3])
    run = asyncio.create_task(
        serve_scenario(
            scenario,
            speed=300,
            out=tmp_path,
            interrupt=interrupt,
            stop=stop,
            on_ready=cues.on_ready,
            on_event=cues.on_event,
            report=False,
        )
    )
    await cues.wait("server:up")  # 10:20, four real seconds in; the clock ends eight seconds later
    assert cues.address is not None
    reply = await _send(cues.address, "kept@probe.example")
    interrupt.request("SIGINT")
    stop.set()
    live = await asyncio.wait_for(run, BOUND)
    assert reply.startswith("2.0.0")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "partial" and summary["interrupted_by"] == "SIGINT"
    assert live.stopped_at is not None and 1200 <= live.stopped_at < 3600
    assert summary["stopped_at"] == live.run.clock.iso(live.stopped_at)
    assert not (tmp_path / "report.html").exists()  # the report is drawn from a complete run only
    # The simulated senders were off: only the outside message, delivered.
    rows = _rows(tmp_path / "messages.csv")
    assert [(r["message_id"], r["final_state"]) for r in rows] == [("kept@probe.example", "delivered")]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    scenario = tmp_path / "live.yaml"
    scenario.write_text(
        "name: live\nclock: {start: 2024-03-04 10:00, end: 2024-03-05 10:00}\n"
        "servers: [{name: mx, domains: [example.net]}]\n"
        "senders: [{name: sim, policy: postfix, traffic: {at: ['2024-03-04 12:00']}}]\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", str(scenario), "--out", str(tmp_path / "out"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_cli_prints_its_ports_and_a_signal_stops_it_partial(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    port = _free_port()
    proc = _serve(tmp_path, "--speed", "1", "--port-base", str(port), "--no-report")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the server listens (or the process ends)
        assert first.startswith(f"mx  127.0.0.1:{port}  example.net (MX 10, up)"), first
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"interrupted by {sig.name} at 2024-03-04T10:00:")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["status"], summary["interrupted_by"]) == ("partial", sig.name)
    assert summary["messages"] == 0


def test_a_port_in_use_is_bad_input(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _serve(tmp_path, "--speed", "1", "--port-base", str(port))
        _, stderr = proc.communicate(timeout=BOUND)
    assert proc.returncode == 2
    assert stderr.strip() == f"--port-base: 127.0.0.1:{port} (for mx) is in use; choose another port base"


def test_ports_out_of_range_are_bad_input() -> None:
    from simulator.errors import ScenarioError
    from simulator.live import check_ports

    with pytest.raises(ScenarioError) as found:
        check_ports(_scenario(), 65536)
    assert str(found.value) == "--port-base: ports 65536-65536 are out of range; choose 1024 to 65535"
