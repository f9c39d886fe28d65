"""The aiosmtpd server side on real sockets: every mode as a client sees it."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from simulator.faults import SessionPlan
from simulator.policies import FailureKind, Stage
from simulator.receiver import Mode, ReceivingServer, SessionContext
from simulator.store import MailStores
from simulator.transport import Attempt, SmtpTransport
from simulator.wire import WireServer

pytestmark = [pytest.mark.wire, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def served():
    stores = MailStores(["mx"])
    commits: list[str] = []
    logic = ReceivingServer(
        "mx",
        ["atnex.example"],
        "mx.atnex.example",
        stores,
        now=lambda: 0.0,
        on_commit=lambda m, s, t: commits.append(m),
    )
    server = WireServer(logic)
    await server.start()
    try:
        yield logic, server, stores, commits
    finally:
        await server.stop()


def attempt_to(server: WireServer, rcpt: str = "user1@atnex.example", message_id: str | None = "m1") -> Attempt:
    header = f"Message-ID: <{message_id}@smtp-outage.invalid>\r\n" if message_id else ""
    return Attempt(
        message_id=message_id or "",
        server="mx",
        address=server.address,
        helo="client.example",
        mail_from="sender@client.example",
        rcpt_to=rcpt,
        content=f"From: <sender@client.example>\r\n{header}Subject: t\r\n\r\nhello\r\n".encode(),
    )


async def test_up_accepts_and_stores_the_message(served):
    logic, server, stores, commits = served
    plan = logic.plan(SessionContext("m1", "sender@client.example", "user1@atnex.example"))
    announced = attempt_to(server)._replace(plan=plan)
    outcome = await SmtpTransport(servers={"mx": server}).attempt(announced)
    assert outcome.accepted and outcome.reply.startswith("250")
    assert commits == ["m1"]
    assert stores.holdings()["m1"].state == "delivered"


async def test_a_session_nobody_announced_is_answered_alike_but_its_mail_is_kept_apart(served):
    logic, server, stores, commits = served
    outcome = await SmtpTransport().attempt(attempt_to(server))
    assert outcome.accepted and outcome.reply == "250 2.0.0 Ok: queued as foreign/m1"
    assert commits == [] and stores.holdings() == {}
    await server.stop()  # the client has quit; stopping waits for the server's side to close
    (session,) = logic.foreign.take_ended()
    assert (session.number, session.messages, session.message_ids) == (1, 1, ["m1"])
    assert session.ended == "closed"  # the client quit
    assert session.peer.startswith("127.0.0.1:") and session.received > 0


async def test_refuse_closes_the_listener_and_up_listens_again_on_the_same_port(served):
    logic, server, _stores, _commits = served
    port = server.port
    logic.mode = Mode.REFUSE
    await server.reconcile()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    outcome = await SmtpTransport().attempt(attempt_to(server))
    assert (outcome.failure.kind, outcome.failure.stage) == (FailureKind.REFUSED, Stage.CONNECT)
    logic.mode = Mode.UP
    await server.reconcile()
    assert server.port == port
    assert (await SmtpTransport().attempt(attempt_to(server))).accepted


async def test_blackhole_accepts_tcp_but_never_greets(served):
    logic, server, _stores, commits = served
    logic.mode = Mode.BLACKHOLE
    await server.reconcile()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), 0.1)
    finally:
        writer.close()
        await writer.wait_closed()
    attempt = attempt_to(server)._replace(plan=SessionPlan(greeting="silent"))
    outcome = await SmtpTransport(wire_timeout=0.02).attempt(attempt)
    assert (outcome.failure.kind, outcome.failure.stage) == (FailureKind.TIMEOUT, Stage.GREETING)
    assert commits == []


async def test_tempfail_greets_421_and_really_closes(served):
    logic, server, _stores, _commits = served
    logic.mode = Mode.TEMPFAIL
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        line = await asyncio.wait_for(reader.readline(), 1)
        assert line.startswith(b"421 ")
        assert await asyncio.wait_for(reader.read(), 1) == b""  # EOF: the server hung up
    finally:
        writer.close()
        await writer.wait_closed()
    outcome = await SmtpTransport().attempt(attempt_to(server))
    assert (outcome.failure.kind, outcome.failure.stage, outcome.failure.code) == (
        FailureKind.TEMPFAIL,
        Stage.GREETING,
        421,
    )


async def test_recipient_in_a_domain_not_served_is_a_5xx_at_rcpt(served):
    _logic, server, _stores, commits = served
    outcome = await SmtpTransport().attempt(attempt_to(server, rcpt="user@elsewhere.example"))
    assert (outcome.failure.kind, outcome.failure.stage, outcome.failure.code) == (
        FailureKind.PERMFAIL,
        Stage.RCPT,
        550,
    )
    assert commits == []


async def test_message_without_message_id_is_refused_after_the_dot(served):
    _logic, server, _stores, _commits = served
    outcome = await SmtpTransport().attempt(attempt_to(server, message_id=None))
    assert (outcome.failure.kind, outcome.failure.stage, outcome.failure.code) == (FailureKind.PERMFAIL, Stage.DOT, 554)


async def test_crashed_server_with_no_disk_tempfails_after_the_dot(served):
    _logic, server, stores, _commits = served
    stores.crash("mx", 0.0)
    outcome = await SmtpTransport().attempt(attempt_to(server))
    assert (outcome.failure.kind, outcome.failure.stage, outcome.failure.code) == (FailureKind.TEMPFAIL, Stage.DOT, 451)
