"""Every fault mode on real sockets: what the client saw, and what the sender did about it."""

from __future__ import annotations

import pytest

from simulator import run_scenario_async

from .conftest import make_scenario, sender

pytestmark = [pytest.mark.wire, pytest.mark.asyncio]

EVERY_10M = {"retry": "10m", "lifetime": "1d"}
T0 = "2011-10-26 01:00"


def fault(spec: dict, at: str = T0, until: str | None = "2011-10-26 02:00", server: str = "mx") -> dict:
    entry = {"at": at, "server": server, "event": "fault", "fault": spec}
    if until:
        entry["until"] = until
    return entry


async def run(timeline: list[dict], senders: list[dict] | None = None, **kw):
    scenario = make_scenario(timeline=timeline, senders=senders or [sender("s", EVERY_10M, at=[T0])], **kw)
    wire = await run_scenario_async(scenario)
    memory = await run_scenario_async(scenario, transport="memory")
    assert wire.messages_csv() == memory.messages_csv()  # the wire and the model agree
    return wire


def replies(result, message_id: str | None = None) -> list[tuple]:
    return [
        (e.kind, e.stage, e.code)
        for e in result.events
        if e.type == "reply" and (message_id is None or e.message == message_id)
    ]


def hhmm(result, t: float | None) -> str:
    return result.clock.iso(t)[11:16]


async def test_tempfail_at_rcpt_defers_until_the_window_ends():
    result = await run([fault({"kind": "reply", "stage": "rcpt", "code": 451})])
    (r,) = result.records
    assert replies(result)[0] == ("tempfail", "rcpt", 451)
    assert r.final_state == "delivered" and hhmm(result, r.accepted_at) == "02:00"
    assert r.attempts == 7 and r.copies == 1


async def test_5xx_at_mail_bounces_at_once():
    result = await run([fault({"kind": "reply", "stage": "mail", "code": 550, "text": "5.7.1 go away"})])
    (r,) = result.records
    assert replies(result) == [("permfail", "mail", 550)]
    assert r.final_state == "bounced" and r.attempts == 1 and r.bounce_status.startswith("5.")
    assert "go away" in r.last_error


@pytest.mark.parametrize("stage,code", [("ehlo", 421), ("data", 451), ("dot", 451)])
async def test_4xx_at_ehlo_data_and_dot_defer_without_storing(stage, code):
    result = await run([fault({"kind": "reply", "stage": stage, "code": code}, until="2011-10-26 01:05")])
    (r,) = result.records
    assert replies(result)[0] == ("tempfail", stage, code)
    assert r.final_state == "delivered" and hhmm(result, r.accepted_at) == "01:10" and r.copies == 1


async def test_reply_fault_for_some_recipients_only():
    senders = [sender("s", EVERY_10M, at=[T0, T0])]  # user1 and user2
    result = await run(
        [fault({"kind": "reply", "stage": "rcpt", "code": 550, "recipients": ["user2@atnex.example"]})], senders
    )
    by_rcpt = {r.recipient: r for r in result.records}
    assert by_rcpt["user1@atnex.example"].final_state == "delivered"
    assert by_rcpt["user2@atnex.example"].final_state == "bounced"


async def test_fraction_of_sessions_is_seeded_and_partial():
    senders = [sender("s", EVERY_10M, at=[T0] * 40)]
    result = await run([fault({"kind": "reply", "stage": "rcpt", "code": 451, "fraction": 0.5})], senders)
    first = [r for r in result.records if r.attempts == 1]
    assert 8 < len(first) < 32  # about half got through at the first attempt
    again = await run_scenario_async(
        make_scenario(
            timeline=[fault({"kind": "reply", "stage": "rcpt", "code": 451, "fraction": 0.5})], senders=senders
        )
    )
    assert again.messages_csv() == result.messages_csv()


async def test_accept_then_drop_delivers_a_duplicate():
    result = await run([fault({"kind": "accept-then-drop"}, until="2011-10-26 01:05")])
    (r,) = result.records
    assert replies(result)[0] == ("dropped", "dot", None)
    assert r.copies == 2 and r.final_state == "delivered" and r.attempts == 2
    assert hhmm(result, r.accepted_at) == "01:10"  # the sender saw its first 250 on the retry
    assert result.summary()["duplicates"] == 1


async def test_slow_server_charges_latency_and_turns_into_a_timeout_beyond_the_senders_limit():
    policy = {**EVERY_10M, "greeting_timeout": "5m"}
    slow = await run([fault({"kind": "slow", "latency": "1m"})], [sender("s", policy, at=[T0])])
    (r,) = slow.records
    assert r.attempts == 1 and hhmm(slow, r.accepted_at) == "01:06"  # greeting, EHLO, MAIL, RCPT, DATA, dot: 6 x 1m
    stuck = await run(
        [fault({"kind": "slow", "latency": "10m", "stage": "greeting"}, until="2011-10-26 01:30")],
        [sender("s", policy, at=[T0])],
    )
    (r,) = stuck.records
    assert replies(stuck)[0] == ("timeout", "greeting", None)
    attempts = [e.time[11:16] for e in stuck.events if e.type == "attempt"]
    assert attempts[:2] == ["01:00", "01:15"]  # a 5 minute greeting timeout, then the 10 minute retry


async def test_disk_full_is_452_at_rcpt():
    result = await run([fault({"kind": "disk-full"}, until="2011-10-26 01:05")])
    assert replies(result)[0] == ("tempfail", "rcpt", 452)
    assert result.records[0].final_state == "delivered"


async def test_greylisting_defers_the_first_attempt_only():
    result = await run([fault({"kind": "greylist", "delay": "5m"}, until=None)])
    (r,) = result.records
    assert [k for k, _, _ in replies(result)] == ["tempfail", "accepted"]
    assert replies(result)[0][2] == 451 and hhmm(result, r.accepted_at) == "01:10"


async def test_capacity_turns_away_sessions_beyond_the_limit():
    senders = [sender("s", EVERY_10M, at=[T0] * 5)]
    result = await run([fault({"kind": "capacity", "sessions": 2, "session_time": "1m"}, until=None)], senders)
    first_round = [e for e in result.events if e.type == "reply" and e.time.endswith("01:00:00")]
    assert sorted((e.kind, e.code) for e in first_round) == [("accepted", 250)] * 2 + [("tempfail", 421)] * 3
    # At the 01:10 retry the limit holds again: two of the three get in.
    assert result.analysis.turned_away == {"mx": 4}
    assert all(r.final_state == "delivered" for r in result.records)


async def test_fail_first_n_attempts_then_succeed():
    result = await run([fault({"kind": "fail-first", "attempts": 2}, until=None)])
    (r,) = result.records
    assert [k for k, _, _ in replies(result)] == ["tempfail", "tempfail", "accepted"]
    assert r.attempts == 3 and hhmm(result, r.accepted_at) == "01:20"


TWO_MX = [
    {"name": "mx1", "domains": ["atnex.example"], "preference": 10, "initially": "refuse"},
    {"name": "mx2", "domains": ["atnex.example"], "preference": 20},
]


async def test_next_mx_in_the_same_attempt():
    result = await run([], servers=TWO_MX)
    (r,) = result.records
    assert replies(result) == [("refused", "connect", None), ("accepted", "dot", 250)]
    assert r.accepted_by == "mx2" and hhmm(result, r.accepted_at) == "01:00"
    assert any(e.type == "next_mx" for e in result.events)


async def test_qmail_does_not_fall_back_once_connected_but_postfix_does():
    servers = [dict(TWO_MX[0], initially="tempfail"), TWO_MX[1]]
    pf = await run([], [sender("pf", "postfix", at=[T0])], servers=servers)
    qm = await run([], [sender("qm", "qmail", at=[T0])], servers=servers)
    assert pf.records[0].accepted_by == "mx2" and pf.records[0].attempts == 2
    assert replies(qm)[0] == ("tempfail", "greeting", 421)
    assert qm.records[0].accepted_by == "" or hhmm(qm, qm.records[0].accepted_at) != "01:00"


async def test_backup_mx_queues_and_relays_when_the_primary_returns():
    servers = [
        {"name": "mx1", "domains": ["atnex.example"], "preference": 10, "initially": "refuse"},
        {
            "name": "backup",
            "domains": ["atnex.example"],
            "preference": 20,
            "relay": {"policy": {"retry": "15m", "lifetime": "5d"}},
        },
    ]
    back = await run([{"at": "2011-10-26 03:00", "server": "mx1", "event": "up"}], servers=servers)
    (r,) = back.records
    assert r.accepted_by == "backup" and hhmm(back, r.accepted_at) == "01:00"
    assert r.final_state == "delivered" and hhmm(back, r.final_at) == "03:00"
    assert [e.server for e in back.events if e.type == "relayed"] == ["mx1"]
    never = await run([], servers=servers)
    assert never.records[0].final_state == "queued"  # still in the backup MX's queue


async def test_dns_change_reaches_a_sender_only_when_its_cached_answer_expires():
    servers = [
        {"name": "old", "domains": ["atnex.example"], "initially": "refuse"},
        {"name": "new", "domains": ["atnex.example"], "preference": 50, "initially": "refuse"},
    ]
    timeline = [
        {"at": "2011-10-26 01:00", "server": "new", "event": "up"},
        {"at": "2011-10-26 01:30", "event": "dns", "domain": "atnex.example", "mx": ["new"], "ttl": "1h"},
    ]
    # The sender resolves at 00:50 (old first, then new: both refuse), caching for the default 1 h TTL.
    result = await run(timeline, [sender("s", EVERY_10M, at=["2011-10-26 00:50"])], servers=servers)
    (r,) = result.records
    # new is up from 01:00 and is in the cached list as the second MX: reached by fallback at 01:00.
    assert r.accepted_by == "new" and hhmm(result, r.accepted_at) == "01:00"


async def test_scheduled_backups_bound_what_a_crash_strands():
    timeline = [
        {"at": "2011-10-26 00:00", "server": "mx", "event": "backups", "every": "1h"},
        {"at": "2011-10-26 02:30", "server": "mx", "event": "crash"},
        {"at": "2011-10-26 04:00", "server": "mx", "event": "restore"},
    ]
    result = await run(timeline, [sender("s", EVERY_10M, at=["2011-10-26 01:10", "2011-10-26 02:10"])])
    early, late = result.records
    assert early.final_state == "delivered"  # in the 02:00 backup
    assert late.final_state == "stranded"  # accepted after the last backup before the crash
    before_crash = [e.time[11:16] for e in result.events if e.type == "backup" and e.ok and e.t < 2.5 * 3600]
    assert before_crash == ["00:00", "01:00", "02:00"]
    assert any(
        e.type == "backup" and not e.ok and getattr(e, "reason", None) == "no working disk" for e in result.events
    )


async def test_restore_onto_a_new_server_with_a_dns_change():
    servers = [
        {"name": "old", "domains": ["atnex.example"]},
        {"name": "new", "domains": ["atnex.example"], "preference": 50, "initially": "refuse"},
    ]
    timeline = [
        {"at": "2011-10-26 00:30", "server": "old", "event": "backup"},
        {"at": "2011-10-26 02:00", "server": "old", "event": "crash"},
        {"at": "2011-10-26 05:00", "server": "new", "event": "restore", "from_server": "old"},
        {"at": "2011-10-26 05:00", "event": "dns", "domain": "atnex.example", "mx": ["new"], "ttl": "5m"},
    ]
    result = await run(
        timeline,
        [sender("s", EVERY_10M, at=["2011-10-26 00:10", "2011-10-26 01:00", "2011-10-26 03:00"])],
        servers=servers,
    )
    a, b, c = result.records
    assert (a.final_state, hhmm(result, a.final_at)) == ("delivered", "05:00")  # restored from old's backup
    assert b.final_state == "stranded"
    assert c.accepted_by == "new" and c.final_state == "delivered"
