"""End-to-end replays over real SMTP on 127.0.0.1 (aiosmtpd servers on port 0)."""

from __future__ import annotations

import pytest

from simulator import run_scenario_async
from simulator.ledger import STATES

from .conftest import make_scenario, sender

pytestmark = [pytest.mark.wire, pytest.mark.asyncio]

HOURLY_FOR_A_DAY = {"retry": "1h", "lifetime": "1d"}


def attempts_of(result, message_id: str) -> list[dict]:
    return [e for e in result.events if e.type == "attempt" and e.message == message_id]


def replies_of(result, message_id: str) -> list[dict]:
    return [e for e in result.events if e.type == "reply" and e.message == message_id]


async def test_refused_connection_defers_then_delivers_when_server_is_back():
    scenario = make_scenario(
        servers=[{"name": "mx", "domains": ["atnex.example"], "initially": "refuse"}],
        timeline=[{"at": "2011-10-26 02:00", "server": "mx", "event": "up"}],
        senders=[sender("s", {"retry": "30m", "lifetime": "1d"}, at=["2011-10-26 01:00"])],
    )
    result = await run_scenario_async(scenario)
    (record,) = result.records
    assert [r.kind for r in replies_of(result, record.message_id)] == ["refused", "refused", "accepted"]
    assert [a.time for a in attempts_of(result, record.message_id)] == [
        "2011-10-26T01:00:00",
        "2011-10-26T01:30:00",
        "2011-10-26T02:00:00",
    ]
    assert record.final_state == "delivered"
    assert result.clock.iso(record.accepted_at) == "2011-10-26T02:00:00"
    assert record.accepted_by == "mx"
    assert record.copies == 1


async def test_message_bounces_when_retry_lifetime_runs_out():
    scenario = make_scenario(
        servers=[{"name": "mx", "domains": ["atnex.example"], "initially": "refuse"}],
        senders=[sender("s", {"retry": "1h", "lifetime": "3h"}, at=["2011-10-26 01:00"])],
    )
    result = await run_scenario_async(scenario)
    (record,) = result.records
    assert record.final_state == "bounced"
    assert record.attempts == 4  # 01:00, 02:00, 03:00, and 04:00 when the age reaches 3h
    assert result.clock.iso(record.bounced_at) == "2011-10-26T04:00:00"
    assert record.bounce_status == "4.4.7"
    assert "lifetime" in record.bounce_reason
    assert record.accepted_at is None and record.copies == 0


async def test_crash_strands_exactly_the_mail_accepted_since_the_last_backup():
    times = ["2011-10-26 09:00", "2011-10-26 10:30", "2011-10-26 11:30", "2011-10-26 12:30"]
    scenario = make_scenario(
        timeline=[
            {"at": "2011-10-26 08:00", "server": "mx", "event": "backup"},
            {"at": "2011-10-26 10:00", "server": "mx", "event": "backup"},
            {"at": "2011-10-26 11:00", "server": "mx", "event": "backup", "ok": False},
            {"at": "2011-10-26 12:00", "server": "mx", "event": "crash"},
            {"at": "2011-10-26 14:00", "server": "mx", "event": "restore"},
        ],
        senders=[sender("s", {"retry": "30m", "lifetime": "1d"}, at=times)],
    )
    result = await run_scenario_async(scenario)
    state = {result.clock.iso(r.submitted_at)[11:16]: r for r in result.records}
    # Accepted before the last good backup (10:00): restored onto the new server.
    assert state["09:00"].final_state == "delivered"
    assert result.clock.iso(state["09:00"].final_at) == "2011-10-26T14:00:00"
    # Accepted after it (the 11:00 backup failed): only on the failed disk.
    assert state["10:30"].final_state == "stranded"
    assert state["11:30"].final_state == "stranded"
    assert {r.accepted_by for r in result.records} == {"mx"}
    # Sent while the server was down: retried, delivered to the restored server.
    assert state["12:30"].final_state == "delivered"
    assert result.clock.iso(state["12:30"].accepted_at) == "2011-10-26T14:00:00"
    assert result.counts["stranded"] == 2


async def test_recovered_disk_delivers_stranded_mail_late_and_lost_disk_loses_it():
    base_timeline = [
        {"at": "2011-10-26 10:00", "server": "mx", "event": "backup"},
        {"at": "2011-10-26 12:00", "server": "mx", "event": "crash"},
        {"at": "2011-10-26 14:00", "server": "mx", "event": "restore"},
    ]
    senders = [sender("s", HOURLY_FOR_A_DAY, at=["2011-10-26 11:00"])]
    recovered = await run_scenario_async(
        make_scenario(
            timeline=[*base_timeline, {"at": "2011-10-27 09:00", "server": "mx", "event": "recover-disk"}],
            senders=senders,
        )
    )
    lost = await run_scenario_async(
        make_scenario(
            timeline=[*base_timeline, {"at": "2011-10-27 09:00", "server": "mx", "event": "disk-lost"}], senders=senders
        )
    )
    (r1,) = recovered.records
    (r2,) = lost.records
    assert (r1.final_state, recovered.clock.iso(r1.final_at)) == ("delivered", "2011-10-27T09:00:00")
    assert (r2.final_state, lost.clock.iso(r2.final_at)) == ("lost", "2011-10-27T09:00:00")


async def test_blackhole_and_unreachable_charge_the_senders_timeouts_in_simulated_time():
    policy = {"retry": "30m", "lifetime": "1d", "connect_timeout": "30s", "greeting_timeout": "5m"}
    for mode, first_retry in (("blackhole", "01:35:00"), ("unreachable", "01:30:30")):
        scenario = make_scenario(
            servers=[{"name": "mx", "domains": ["atnex.example"], "initially": mode}],
            timeline=[{"at": "2011-10-26 03:00", "server": "mx", "event": "up"}],
            senders=[sender("s", policy, at=["2011-10-26 01:00"])],
            engine={"wire_timeout": 0.02},
        )
        result = await run_scenario_async(scenario)
        (record,) = result.records
        replies = replies_of(result, record.message_id)
        assert replies[0].kind == "timeout"
        assert replies[0].stage == ("greeting" if mode == "blackhole" else "connect")
        times = [a.time[11:] for a in attempts_of(result, record.message_id)]
        assert times[:2] == ["01:00:00", first_retry], mode
        assert record.final_state == "delivered"


async def test_tempfail_greeting_is_a_421_and_defers():
    scenario = make_scenario(
        servers=[{"name": "mx", "domains": ["atnex.example"], "initially": "tempfail"}],
        timeline=[{"at": "2011-10-26 02:00", "server": "mx", "event": "up"}],
        senders=[sender("s", {"retry": "1h", "lifetime": "1d"}, at=["2011-10-26 01:00"])],
    )
    result = await run_scenario_async(scenario)
    (record,) = result.records
    first = replies_of(result, record.message_id)[0]
    assert (first.kind, first.stage, first.code) == ("tempfail", "greeting", 421)
    assert record.final_state == "delivered" and record.attempts == 2


async def test_same_seed_same_ledger_and_wire_agrees_with_memory():
    scenario = make_scenario(
        timeline=[
            {"at": "2011-10-26 06:00", "server": "mx", "event": "backup"},
            {"at": "2011-10-26 09:00", "server": "mx", "event": "crash"},
            {"at": "2011-10-26 20:00", "server": "mx", "event": "restore"},
        ],
        senders=[
            sender("short", {"retry": "10m,20m,40m", "lifetime": "4h"}, rate="3/h", count=3),
            sender("long", {"exponential": {"initial": "5m", "cap": "2h"}, "lifetime": "2d"}, rate="3/h", count=3),
        ],
    )
    first = await run_scenario_async(scenario)
    second = await run_scenario_async(scenario)
    memory = await run_scenario_async(scenario, transport="memory")
    assert first.messages_csv() == second.messages_csv()
    assert first.events == second.events
    assert memory.messages_csv() == first.messages_csv()
    other_seed = await run_scenario_async(scenario, seed=8, transport="memory")
    assert other_seed.messages_csv() != first.messages_csv()
    # Every outcome class shows up, and the states add up.
    assert {s for s in STATES if first.counts[s]} >= {"delivered", "stranded", "bounced"}
    assert sum(first.counts.values()) == first.messages == len(first.records) > 50
