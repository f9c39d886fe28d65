"""Postfix retry rounds against the real Postfix 3.7.11 runs in real-mtas.md, through the engine.

Timers scaled as in those runs: queue_run_delay = minimal_backoff_time = 4 s,
maximal_backoff_time = 32 s, maximal_queue_lifetime = 2 min; the scan grid at
phase 2 s (the real queue manager's first retry came 6 s after arrival).
Expected rounds, worked out from the age rule (next scan s > t with
s >= t + clamp(age, 4, 32) - 1): 0, 6, 14, 30, 62, 94, 126, and the message
expires at 126 (age >= 120).
"""

from __future__ import annotations

from collections import Counter

import pytest

from simulator import run_scenario_async

from .conftest import make_scenario, sender

pytestmark = pytest.mark.asyncio

SCALED = {
    "preset": "postfix",
    "queue_run_delay": "4s",
    "minimal_backoff_time": "4s",
    "maximal_backoff_time": "32s",
    "maximal_queue_lifetime": "2m",
    "scan_phase": "2s",
}
CLOCK = {"start": "2024-03-04 10:00", "end": "2024-03-04 10:10"}
ROUNDS = [0.0, 6.0, 14.0, 30.0, 62.0, 94.0, 126.0]


def _scenario(initially: str, timeline: list[dict[str, object]] | None = None, arrivals: list[str] | None = None):
    return make_scenario(
        clock=CLOCK,
        servers=[{"name": "mx", "domains": ["example.net"], "initially": initially}],
        timeline=timeline or [],
        senders=[sender("pf", SCALED, at=arrivals or ["2024-03-04 10:00:00"] * 10)],
    )


def _per_round(events: list, kind: str) -> dict[float, int]:
    return dict(Counter(e.t for e in events if e.type == kind))


@pytest.mark.parametrize("initially", ["refuse", "tempfail"])
async def test_ten_messages_for_a_dead_destination_four_connect_per_retry_round(initially: str) -> None:
    run = await run_scenario_async(_scenario(initially), transport="memory")
    # Ten new messages all connect; every retry round four connect, six are suspended.
    assert _per_round(run.events, "attempt") == {0.0: 10} | dict.fromkeys(ROUNDS[1:], 4)
    assert _per_round(run.events, "suspended") == dict.fromkeys(ROUNDS[1:], 6)
    assert run.connections == 10 + 6 * 4 == 34  # the real one: 35-40; the old model: 70
    assert {(r.final_state, r.bounced_at, r.bounce_status) for r in run.records} == {("bounced", 126.0, "4.4.7")}


@pytest.mark.wire
async def test_the_wire_agrees_with_memory_on_serial_rounds() -> None:
    scenario = _scenario("refuse", [{"at": "2024-03-04 10:01:00", "server": "mx", "event": "up"}])
    wire = await run_scenario_async(scenario)
    memory = await run_scenario_async(scenario, transport="memory")
    assert wire.messages_csv() == memory.messages_csv()
    # Up at 60 s: the round at 62 delivers all ten, one after the other, each success
    # keeping the destination alive (no early retry on recovery).
    assert {r.accepted_at for r in wire.records} == {62.0}
    assert _per_round(wire.events, "attempt")[62.0] == 10


async def test_message_level_failures_never_stop_a_round() -> None:
    fault = {"kind": "reply", "stage": "rcpt", "code": 450}
    run = await run_scenario_async(
        _scenario("up", [{"at": "2024-03-04 10:00", "server": "mx", "event": "fault", "fault": fault}]),
        transport="memory",
    )
    # 450 at RCPT: every message connects every round, as the real one did.
    assert _per_round(run.events, "attempt") == dict.fromkeys(ROUNDS, 10)
    assert "suspended" not in {e.type for e in run.events}


async def test_mail_arriving_a_second_after_others_failed_on_arrival_connects() -> None:
    arrivals = ["2024-03-04 10:00:00"] * 6 + ["2024-03-04 10:00:01"] * 4
    run = await run_scenario_async(_scenario("tempfail", arrivals=arrivals), transport="memory")
    assert _per_round(run.events, "attempt")[1.0] == 4  # the old model suspended all four


async def test_new_mail_in_the_second_of_a_round_that_kills_the_destination_is_suspended() -> None:
    # The real Postfix with 50 messages: the scan at the start of a second marked the
    # destination dead; mail arriving later in that second was deferred without connecting.
    arrivals = ["2024-03-04 10:00:00"] * 10 + ["2024-03-04 10:00:06"]
    run = await run_scenario_async(_scenario("refuse", arrivals=arrivals), transport="memory")
    at_6 = [(e.type, e.message) for e in run.events if e.t == 6.0 and e.type in ("attempt", "suspended")]
    assert [kind for kind, _ in at_6] == ["attempt"] * 4 + ["suspended"] * 7
    assert at_6[-1][1] == run.records[-1].message_id  # the new message, after the round


async def test_a_round_goes_out_together_while_no_failure_could_kill_the_destination() -> None:
    # Every message fails once at MAIL (a message-level 451: no throttle), then is accepted.
    fault = {"kind": "fail-first", "attempts": 1, "stage": "mail", "code": 451}
    run = await run_scenario_async(
        _scenario("up", [{"at": "2024-03-04 10:00", "server": "mx", "event": "fault", "fault": fault}]),
        transport="memory",
    )
    assert {r.accepted_at for r in run.records} == {6.0}
    # New mail at 0 goes out in one trip. In the round at 6 four attempts can be in flight
    # (1/5 + 1/4 + 1/3 < 1: three failures cannot kill the destination, a fourth can), so the
    # ten retries go out as 4 + 4 + 2: four trips to the wire in all, not eleven.
    assert run.batches == 4
