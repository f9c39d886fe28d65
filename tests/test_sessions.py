"""The server decides its own sessions: one interpreter for the wire and the memory transport.

Clients here connect with aiosmtplib directly, as a real MTA would: nobody
announces their sessions, yet they meet the same kinds of capacity limits,
greylisting and reply faults as the engine's, from a history of their own
(a foreign client never changes what the engine's sessions meet), and the
mail they get a 250 for is kept apart from the mail stores. The table at the
end checks that the in-memory transport and the wire give the same
``Outcome`` for the same plan, for every fault kind.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest
import pytest_asyncio
from pydantic import TypeAdapter

from simulator import replies
from simulator.faults import FaultSpec
from simulator.policies import Stage
from simulator.receiver import Act, Mode, ReceivingServer, SessionContext
from simulator.store import MailStores
from simulator.transport import Attempt, MemoryTransport, Outcome, SmtpTransport
from simulator.wire import LOOPBACK, WireServer

SENDER = "sender@client.example"
RCPT = "user1@atnex.example"
FOREVER = math.inf


class Clock:
    """The server's simulated ``now``, driven by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Mx:
    """One receiving server, its clock, and the copies it committed."""

    clock: Clock = field(default_factory=Clock)
    commits: list[str] = field(default_factory=list)
    logic: ReceivingServer = field(init=False)

    def __post_init__(self) -> None:
        self.logic = ReceivingServer(
            "mx",
            ["atnex.example"],
            "mx.atnex.example",
            MailStores(["mx"]),
            now=self.clock,
            on_commit=lambda message_id, server, at: self.commits.append(message_id),
            seed=7,
        )


@dataclass
class Served(Mx):
    """A receiving server listening on a real aiosmtpd socket."""

    wire: WireServer = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.wire = WireServer(self.logic)


@pytest_asyncio.fixture
async def mx() -> AsyncIterator[Served]:
    served = Served()
    await served.wire.start()
    try:
        yield served
    finally:
        await served.wire.stop()


def fault(**spec: Any) -> FaultSpec:
    """A fault as a timeline entry would give it."""
    return TypeAdapter(FaultSpec).validate_python(spec)


def message(message_id: str) -> bytes:
    return f"From: <{SENDER}>\r\nMessage-ID: <{message_id}@client.example>\r\nSubject: t\r\n\r\nhello\r\n".encode()


@asynccontextmanager
async def raw_client(served: Served) -> AsyncIterator[aiosmtplib.SMTP]:
    """An SMTP client the engine did not announce; closed however the test ends."""
    client = aiosmtplib.SMTP(
        hostname=LOOPBACK, port=served.wire.port, local_hostname="client.example", start_tls=False, timeout=5
    )
    try:
        yield client
    finally:
        client.close()


def reply_of(error: aiosmtplib.SMTPResponseException) -> str:
    return f"{error.code} {error.message}"


# ------------------------------------------------------------ unannounced clients


@pytest.mark.wire
@pytest.mark.asyncio
async def test_unannounced_client_is_turned_away_beyond_the_capacity_limit(mx: Served) -> None:
    mx.logic.add_fault(fault(kind="capacity", sessions=2, session_time=60), until=FOREVER)
    async with raw_client(mx) as first, raw_client(mx) as second, raw_client(mx) as third:
        assert (await first.connect()).code == 220
        assert (await second.connect()).code == 220
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as busy:
            await third.connect()
        assert reply_of(busy.value) == replies.TOO_BUSY
        assert mx.logic.foreign.book.turned_away == 1
        # The foreign clients filled their own limit, not the engine's.
        assert not mx.logic.plan(SessionContext("m9", SENDER, RCPT)).turned_away
    mx.clock.now = 60.0  # the two admitted sessions' simulated time is over
    async with raw_client(mx) as later:
        await later.connect()
        refused, _ = await later.sendmail(SENDER, [RCPT], message("m1"))
        assert refused == {}
    assert (mx.logic.foreign.book.turned_away, mx.logic.turned_away) == (1, 0)
    assert mx.commits == []  # kept apart: nothing reached the mail store
    assert mx.logic.foreign.messages == 1


@pytest.mark.wire
@pytest.mark.asyncio
async def test_unannounced_client_is_greylisted_then_accepted_after_the_delay(mx: Served) -> None:
    mx.logic.add_fault(fault(kind="greylist", delay=300), until=FOREVER)
    async with raw_client(mx) as client:
        await client.connect()
        await client.ehlo()
        await client.mail(SENDER)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as greylisted:
            await client.rcpt(RCPT)
        assert reply_of(greylisted.value) == replies.GREYLISTED
    mx.clock.now = 300.0
    async with raw_client(mx) as client:
        await client.connect()
        refused, _ = await client.sendmail(SENDER, [RCPT], message("m1"))
        assert refused == {}
    assert mx.commits == [] and mx.logic.foreign.messages == 1
    # The engine's sessions have their own greylist record: the pair is new to them at 300.
    assert mx.logic.plan(SessionContext("m9", SENDER, RCPT)).reply_at(Stage.RCPT) == replies.GREYLISTED
    mx.clock.now = 600.0
    assert mx.logic.plan(SessionContext("m9", SENDER, RCPT)).reply_at(Stage.RCPT) is None


@pytest.mark.wire
@pytest.mark.asyncio
async def test_unannounced_client_meets_a_reply_fault_for_listed_recipients_only(mx: Served) -> None:
    listed = "user2@atnex.example"
    mx.logic.add_fault(
        fault(kind="reply", stage="rcpt", code=550, text="5.1.1 No such user", recipients=[listed]), until=FOREVER
    )
    async with raw_client(mx) as client:
        await client.connect()
        await client.ehlo()
        await client.mail(SENDER)
        assert (await client.rcpt(RCPT)).code == 250
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt(listed)
        assert (refused.value.code, refused.value.message) == (550, "5.1.1 No such user")
        assert (await client.data(message("m1"))).code == 250
    assert mx.commits == [] and mx.logic.foreign.messages == 1


@pytest.mark.asyncio
async def test_the_server_decides_an_unannounced_session_as_the_engine_plans_it() -> None:
    """No sockets: the same envelopes at the same times, planned by the engine or decided as they come."""
    faults = [
        fault(kind="greylist", delay=300),
        fault(kind="reply", stage="rcpt", code=550, recipients=["user2@atnex.example"]),
        fault(kind="fail-first", attempts=3, stage="dot"),
    ]
    planned, unannounced = Mx(), Mx()
    for server in (planned, unannounced):
        for spec in faults:
            server.logic.add_fault(spec, until=FOREVER)
    tries = [(0, "m1", RCPT), (0, "m2", "user2@atnex.example"), (100, "m1", RCPT), (400, "m1", RCPT)]
    tries += [(400, "m2", "user2@atnex.example"), (500, "m1", RCPT), (500, "m3", "user3@atnex.example")]
    seen: dict[str, list[tuple[str, str | None, int | None]]] = {"planned": [], "unannounced": []}
    for at, message_id, rcpt in tries:
        for name, server in (("planned", planned), ("unannounced", unannounced)):
            server.clock.now = at
            plan = server.logic.plan(SessionContext(message_id, SENDER, rcpt)) if name == "planned" else None
            outcome = await MemoryTransport({"mx": server.logic}).attempt(attempt(message_id, rcpt, plan=plan))
            seen[name].append(summary(outcome))
    assert seen["planned"] == seen["unannounced"]
    assert seen["planned"] == [
        ("tempfail", "rcpt", 451),  # greylisted
        ("tempfail", "rcpt", 451),
        ("tempfail", "rcpt", 451),  # still within the 5 minutes
        ("tempfail", "dot", 451),  # third session of m1: fail-first
        ("permfail", "rcpt", 550),  # past greylisting: the listed recipient
        ("accepted", "dot", 250),
        ("tempfail", "rcpt", 451),  # a new pair is greylisted
    ]


# ------------------------------------------------------ memory and wire agree
def attempt(
    message_id: str = "m1", rcpt: str = RCPT, plan: Any = None, address: tuple[str, int] = (LOOPBACK, 0)
) -> Attempt:
    return Attempt(
        message_id=message_id,
        server="mx",
        address=address,
        helo="client.example",
        mail_from=SENDER,
        rcpt_to=rcpt,
        content=message(message_id),
        plan=plan,
    )


def summary(outcome: Outcome) -> tuple[str, str | None, int | None]:
    if outcome.accepted:
        return ("accepted", "dot", int(outcome.reply[:3]))
    assert outcome.failure is not None
    return (outcome.failure.kind.value, outcome.failure.stage.value, outcome.failure.code)


@dataclass(frozen=True)
class Case:
    """One row of the table: the server's faults and mode, and what the client sees."""

    expect: tuple[str, str | None, int | None]
    faults: tuple[dict[str, Any], ...] = ()
    mode: Mode = Mode.UP
    stall: Stage | None = None  #: the sender's timeout at this stage is shorter than the server's latency
    warm_up: int = 0  #: sessions admitted before this one (to fill a capacity limit)


def slow_at(stage: str) -> Case:
    return Case(("timeout", stage, None), ({"kind": "slow", "latency": 600, "stage": stage},), stall=Stage(stage))


CASES: dict[str, Case] = {
    "no fault": Case(("accepted", "dot", 250)),
    "blackhole": Case(("timeout", "greeting", None), mode=Mode.BLACKHOLE),
    "tempfail mode": Case(("tempfail", "greeting", 421), mode=Mode.TEMPFAIL),
    "reply at ehlo": Case(("tempfail", "ehlo", 421), ({"kind": "reply", "stage": "ehlo", "code": 421},)),
    "reply at mail": Case(("permfail", "mail", 550), ({"kind": "reply", "stage": "mail", "code": 550},)),
    "reply at rcpt": Case(("tempfail", "rcpt", 451), ({"kind": "reply", "stage": "rcpt", "code": 451},)),
    "reply at data": Case(("tempfail", "data", 451), ({"kind": "reply", "stage": "data", "code": 451},)),
    "reply at dot": Case(("permfail", "dot", 554), ({"kind": "reply", "stage": "dot", "code": 554},)),
    "reply for a listed recipient": Case(
        ("permfail", "rcpt", 550), ({"kind": "reply", "stage": "rcpt", "code": 550, "recipients": [RCPT]},)
    ),
    "reply for other recipients": Case(
        ("accepted", "dot", 250),
        ({"kind": "reply", "stage": "rcpt", "code": 550, "recipients": ["user2@atnex.example"]},),
    ),
    "accept-then-drop": Case(("dropped", "dot", None), ({"kind": "accept-then-drop"},)),
    "slow within the sender's timeouts": Case(("accepted", "dot", 250), ({"kind": "slow", "latency": 60},)),
    **{
        f"slow past the sender's timeout at {s}": slow_at(s)
        for s in ("greeting", "ehlo", "mail", "rcpt", "data", "dot")
    },
    "disk-full at rcpt": Case(("tempfail", "rcpt", 452), ({"kind": "disk-full"},)),
    "disk-full at data": Case(("tempfail", "data", 452), ({"kind": "disk-full", "stage": "data"},)),
    "greylist": Case(("tempfail", "rcpt", 451), ({"kind": "greylist", "delay": 300},)),
    "capacity": Case(("tempfail", "greeting", 421), ({"kind": "capacity", "sessions": 1},), warm_up=1),
    "fail-first": Case(("tempfail", "rcpt", 451), ({"kind": "fail-first", "attempts": 1},)),
    "fail-first at dot": Case(
        ("permfail", "dot", 552), ({"kind": "fail-first", "attempts": 1, "stage": "dot", "code": 552},)
    ),
}


def configure(server: ReceivingServer, case: Case) -> None:
    server.mode = case.mode
    for spec in case.faults:
        server.add_fault(fault(**spec), until=FOREVER)


@pytest.mark.wire
@pytest.mark.asyncio
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_memory_and_wire_give_the_same_outcome_for_the_same_plan(mx: Served, case: Case) -> None:
    configure(mx.logic, case)
    await mx.wire.reconcile()
    for n in range(case.warm_up):
        mx.logic.plan(SessionContext(f"w{n}", SENDER, RCPT))
    plan = mx.logic.plan(SessionContext("m1", SENDER, RCPT))
    if case.stall is not None:
        plan = dataclasses.replace(plan, stall=case.stall)
    announced = attempt(plan=plan, address=mx.wire.address)
    memory = await MemoryTransport({"mx": mx.logic}).attempt(announced)
    wire = await SmtpTransport(wire_timeout=0.05, servers={"mx": mx.wire}).attempt(announced)
    assert memory == wire
    assert summary(wire) == case.expect


UNANNOUNCED = {k: c for k, c in CASES.items() if c.stall is None and c.mode is not Mode.BLACKHOLE}
"""Rows a client nobody announced can meet (it has no timeouts the server knows of: no stalls, and
SmtpTransport waits its full answer timeout for a silent server)."""


@pytest.mark.wire
@pytest.mark.asyncio
@pytest.mark.parametrize("case", UNANNOUNCED.values(), ids=UNANNOUNCED.keys())
async def test_memory_and_wire_give_the_same_outcome_to_a_client_nobody_announced(mx: Served, case: Case) -> None:
    in_memory = Mx()
    for server in (in_memory.logic, mx.logic):
        configure(server, case)
        for _ in range(case.warm_up):
            server.session()  # admitted on connect, occupying the server
    await mx.wire.reconcile()
    memory = await MemoryTransport({"mx": in_memory.logic}).attempt(attempt())
    wire = await SmtpTransport(servers={"mx": mx.wire}).attempt(attempt(address=mx.wire.address))
    assert memory == wire
    assert summary(wire) == case.expect
    assert in_memory.logic.foreign.book.turned_away == mx.logic.foreign.book.turned_away
    kept = case.expect[:2] in (("accepted", "dot"), ("dropped", "dot"))  # a drop comes after the commit
    assert in_memory.logic.foreign.messages == mx.logic.foreign.messages == kept
    assert in_memory.commits == mx.commits == []


def test_steps_of_a_plan_that_drops_after_the_commit() -> None:
    """The interpreter commits, then says to drop the connection instead of sending the 250."""
    server = Mx()
    server.logic.add_fault(fault(kind="accept-then-drop"), until=FOREVER)
    session = server.logic.session(server.logic.plan(SessionContext("m1", SENDER, RCPT)))
    assert [session.greeting().code, session.ehlo("client.example").code, session.mail(SENDER).code] == [220, 250, 250]
    assert (session.rcpt(RCPT).code, session.data().code) == (250, 354)
    step = session.dot(message("m1"))
    assert step.act is Act.DROP and step.code is None and step.reply.startswith("250 ")
    assert server.commits == ["m1@client.example"]  # a Message-ID of its own domain is kept whole
