"""Real MTA presets driven by the engine over real sockets: shared retry state saves connections."""

from __future__ import annotations

import email
import mailbox

import pytest

from simulator import run_scenario_async

from .conftest import make_scenario, sender

pytestmark = [pytest.mark.wire, pytest.mark.asyncio]

DOWN_ALL_WEEK = {"clock": {"start": "2011-10-26 00:00", "end": "2011-11-03 00:00"}}
REFUSING = [{"name": "mx", "domains": ["atnex.example"], "initially": "refuse"}]


async def test_exchange_makes_its_295_attempts_and_returns_the_message_at_48h(tmp_path):
    scenario = make_scenario(
        **DOWN_ALL_WEEK, servers=REFUSING, senders=[sender("ex", "exchange", at=["2011-10-26 00:00"])]
    )
    result = await run_scenario_async(scenario, out=tmp_path)
    (record,) = result.records
    assert record.attempts == record.connections == 295  # retry-policies.md section 5
    assert record.bounced_at == 172800.0
    assert record.delay_warnings == 1
    # The warning and the bounce are RFC 3464 reports to the originator.
    box = mailbox.mbox(str(tmp_path / "notifications.mbox"))
    try:
        notes = list(box)
    finally:
        box.close()
    assert [n["Subject"] for n in notes] == [
        "Delayed Mail (still being retried)",
        "Undelivered Mail Returned to Sender",
    ]
    assert all(n["To"] == record.originator for n in notes)
    report = email.message_from_bytes(notes[1].as_bytes())
    assert report.get_content_type() == "multipart/report"
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "Action: failed" in text and "Status: 4.4.7" in text
    assert result.summary()["notifications"] == 2


async def test_exim_host_retry_state_is_shared_so_later_messages_wait_for_the_host():
    # The host fails at 00:00 (next try 00:15) and at the 00:30 queue run (next try 00:45).
    arrivals = ["2011-10-26 00:00", "2011-10-26 00:05", "2011-10-26 00:10", "2011-10-26 00:35", "2011-10-26 00:40"]
    one_mta = make_scenario(**DOWN_ALL_WEEK, servers=REFUSING, senders=[sender("exim", "exim", at=arrivals)])
    five_mtas = make_scenario(
        **DOWN_ALL_WEEK,
        servers=REFUSING,
        senders=[sender(f"exim{i}", "exim", at=[when]) for i, when in enumerate(arrivals)],
    )
    shared = await run_scenario_async(one_mta, transport="memory")
    separate = await run_scenario_async(five_mtas, transport="memory")
    shared_wire = await run_scenario_async(one_mta)
    assert shared_wire.messages_csv() == shared.messages_csv()
    assert {r.final_state for r in shared.records} == {"bounced"}
    assert shared.connections < separate.connections
    # Messages that arrive while the host is in retry wait are not tried on arrival.
    tries = ("attempt", "cached", "suspended")
    first_tries = [
        next(e for e in shared.events if e.type in tries and e.message == r.message_id) for r in shared.records
    ]
    assert [e.t > r.submitted_at for e, r in zip(first_tries, shared.records, strict=False)][1:] == [True] * 4
    # A message is tried at the first queue run past its own 4 days although the host waits
    # until 361800 s, and bounces: arrivals 0, 300, 600 -> 347400; 2100, 2400 -> 349200.
    bounced = [347400.0] * 3 + [349200.0] * 2
    assert [r.bounced_at for r in separate.records] == bounced
    # Sharing the host, the first three share one connection at 347400; the host record is
    # then past its cutoff, so the last two bounce at the next queue run without connecting.
    assert [r.bounced_at for r in shared.records] == bounced
    assert [r.bounce_reason for r in shared.records][3:] == [
        "retry time not reached for any host after a long failure period"
    ] * 2
    # In one queue run, messages after the first do not connect to the host that just failed.
    assert any(e.type == "cached" for e in shared.events)
    assert shared.connections < shared.attempts


async def test_postfix_dead_destination_defers_without_connecting():
    burst = ["2011-10-26 00:00"] * 6
    together = make_scenario(
        **DOWN_ALL_WEEK, servers=REFUSING, senders=[sender("pf", "postfix", at=[*burst, "2011-10-26 00:01"])]
    )
    apart = make_scenario(
        **DOWN_ALL_WEEK,
        servers=REFUSING,
        senders=[sender(f"pf{i}", "postfix", at=[when]) for i, when in enumerate([*burst, "2011-10-26 00:01"])],
    )
    result = await run_scenario_async(together)
    separate = await run_scenario_async(apart, transport="memory")
    late = result.records[-1]
    # New mail is tried as it arrives, each first delivery on its own: the message queued a
    # minute after six refusals connects too.
    first = next(e for e in result.events if e.message == late.message_id and e.type in ("suspended", "attempt"))
    assert first.type == "attempt"
    # The retry round at 300 s goes out one message at a time: the fourth refusal marks the
    # destination dead and the other two of the six are deferred without a connection
    # ("delivery temporarily suspended"); the seventh (60 s later) is due at the scan at 600.
    at_300 = [e.type for e in result.events if e.t == 300 and e.type in ("attempt", "suspended")]
    assert at_300 == ["attempt"] * 4 + ["suspended"] * 2
    suspended = sum(1 for e in result.events if e.type == "suspended")
    assert result.connections == result.attempts - suspended < separate.connections
    # Seven MTAs with one message each never hold anything.
    assert separate.connections == separate.attempts
