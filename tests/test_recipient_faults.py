"""Faults for a fraction of recipient addresses: the same addresses are affected at every attempt."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter

from simulator import ScenarioError, load_scenario, run_scenario
from simulator.faults import FaultSpec, address_chance, affects_address
from simulator.policies import Stage
from simulator.receiver import ReceivingServer, SessionContext
from simulator.store import MailStores

from .conftest import make_scenario, sender

FAULT: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)
ADDRESSES = [f"user{i}@atnex.example" for i in range(1, 201)]


def server(name: str = "mx", seed: int = 7) -> ReceivingServer:
    return ReceivingServer(
        name, ["atnex.example"], f"{name}.atnex.example", MailStores([name]), lambda: 0.0, lambda *a: None, seed=seed
    )


def nosuchuser(fraction: float) -> FaultSpec:
    return FAULT.validate_python({"kind": "reply", "stage": "rcpt", "code": 550, "recipients_fraction": fraction})


def test_an_address_draws_the_same_number_whatever_its_case_and_spacing():
    assert address_chance(7, "User1@Atnex.Example ") == address_chance(7, "user1@atnex.example")
    assert address_chance(7, "user1@atnex.example") != address_chance(8, "user1@atnex.example")
    assert 0 <= address_chance(7, "user1@atnex.example") < 1


def test_a_smaller_fraction_picks_a_subset_of_a_larger_one():
    small = {a for a in ADDRESSES if affects_address(0.1, 7, a)}
    large = {a for a in ADDRESSES if affects_address(0.4, 7, a)}
    assert small < large
    assert all(affects_address(None, 7, a) and affects_address(1.0, 7, a) for a in ADDRESSES)


def test_the_same_addresses_are_refused_at_every_attempt_on_every_server():
    expected = {a for a in ADDRESSES if address_chance(7, a) < 0.3}
    for name in ("mx1", "mx2"):
        mx = server(name)
        mx.add_fault(nosuchuser(0.3), math.inf)
        for attempt in range(1, 4):
            refused = set()
            for n, address in enumerate(ADDRESSES):
                plan = mx.plan(SessionContext(f"m{n}-{attempt}", "s@client.example", address))
                if plan.reply_at(Stage.RCPT) is not None:
                    refused.add(address)
            assert refused == expected
    # about 30% of 200 addresses, as drawn (not a statistical claim: the exact set is above)
    assert 40 <= len(expected) <= 80


def test_a_session_nobody_announced_refuses_the_same_addresses():
    mx = server()
    mx.add_fault(nosuchuser(0.3), math.inf)
    for address in ADDRESSES[:40]:
        session = mx.session()
        session.ehlo("client.example")
        session.mail("s@client.example")
        refused = session.rcpt(address).code == 550
        assert refused == (address_chance(7, address) < 0.3)


def test_recipients_fraction_needs_a_stage_where_the_recipient_is_known(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text(
        "name: f\n"
        "clock: {start: 2011-10-26 00:00, end: 2011-10-27 00:00}\n"
        "servers: [{name: mx, domains: [atnex.example]}]\n"
        "timeline:\n"
        "  - at: 2011-10-26 01:00\n"
        "    server: mx\n"
        "    event: fault\n"
        "    fault: {kind: reply, stage: mail, code: 451, recipients_fraction: 0.5}\n"
        "senders: [{name: p, policy: postfix, traffic: {at: [2011-10-26 01:00]}}]\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:8: timeline.0.fault: recipients_fraction picks recipient addresses, which are known from RCPT on; "
        "use stage rcpt, data or dot"
    ]


def test_a_deferral_for_some_addresses_holds_their_mail_until_the_fault_ends():
    # 451 for half the addresses from 01:00 to 05:00; Postfix retries, so mail
    # to an affected address is accepted only after 05:00, the rest at once.
    scenario = make_scenario(
        timeline=[
            {
                "at": "2011-10-26 01:00",
                "server": "mx",
                "event": "fault",
                "until": "2011-10-26 05:00",
                "fault": {"kind": "reply", "stage": "rcpt", "code": 451, "recipients_fraction": 0.5},
            }
        ],
        senders=[sender("p", "postfix", rate="30/h", count=2, start="2011-10-26 01:00", until="2011-10-26 02:00")],
    )
    run = run_scenario(scenario, transport="memory")
    assert run.counts["delivered"] == len(run.records) > 20
    five = 4 * 3600.0 + 3600.0
    for r in run.records:
        affected = address_chance(scenario.seed, r.recipient) < 0.5
        assert r.accepted_at is not None
        if affected:
            assert r.accepted_at >= five and r.attempts > 1
        else:
            assert r.accepted_at == r.submitted_at and r.attempts == 1
