"""A 250 is not a mailbox: the server's delivery queue into the mailboxes, its capacity and its faults."""

from __future__ import annotations

import math

import pytest

from simulator import ScenarioError, run_scenario
from simulator.ledger import MessageRecord, finalize
from simulator.store import DeliveryQueue, MailStores

from .conftest import make_scenario, sender

ALL = None


def held(stores: MailStores, server: str = "mx") -> dict[str, float]:
    disk = stores.current[server]
    assert disk is not None
    return dict(disk.mail)


def test_without_a_capacity_mail_is_readable_when_accepted():
    stores = MailStores(["mx"])
    stores.accept("mx", "m1", 10.0, "a@x.example")
    stores.accept("mx", "m2", 10.0, "b@x.example")
    assert held(stores) == {"m1": 10.0, "m2": 10.0}


def test_a_capacity_delivers_first_in_first_out_one_turn_each():
    # 2 a minute: a 30 s turn. m1 at 0 is readable at 30; m2 at 10 waits for
    # m1 and is readable at 60; m3 at 100 finds the queue empty: 130.
    stores = MailStores(["mx"], delivery={"mx": 2})
    stores.accept("mx", "m1", 0.0)
    stores.accept("mx", "m2", 10.0)
    stores.accept("mx", "m3", 100.0)
    assert held(stores) == {"m1": 30.0, "m2": 60.0, "m3": 130.0}


def test_a_held_lane_releases_in_order_into_the_normal_delivery_when_its_fault_ends():
    # Held (0 a minute) from 100 until 400; the normal delivery takes 1 a
    # minute. m1 (100) and m2 (200) are held; at 400 they join the normal
    # lane: m1 at 460, m2 at 520. m3 at 300 is picked by no fault lane
    # (the lane selects b@ only) and goes at once through the normal lane: 360.
    stores = MailStores(["mx"], delivery={"mx": 1})
    stores.slow_delivery("mx", 0, lambda rcpt: rcpt.startswith("b@"), 100.0, 400.0)
    stores.accept("mx", "m1", 100.0, "b@x.example")
    stores.accept("mx", "m2", 200.0, "b@x.example")
    stores.accept("mx", "m3", 300.0, "c@x.example")
    assert held(stores)["m1"] == math.inf
    stores.settle("mx", 1000.0)
    assert held(stores) == {"m1": 460.0, "m2": 520.0, "m3": 360.0}


def test_copies_already_delivered_when_a_lane_closes_keep_their_time():
    # A 6-a-minute lane (10 s turns) from 0 until 25: m1 (0) at 10, m2 (0)
    # at 20, m3 (0) would be at 30, after the lane closed: it joins the
    # normal delivery (at once) at 25.
    stores = MailStores(["mx"])
    stores.slow_delivery("mx", 6, ALL, 0.0, 25.0)
    for m in ("m1", "m2", "m3"):
        stores.accept("mx", m, 0.0)
    stores.settle("mx", 100.0)
    assert held(stores) == {"m1": 10.0, "m2": 20.0, "m3": 25.0}


def test_the_first_lane_opened_that_selects_a_recipient_takes_the_copy():
    queue = DeliveryQueue()
    queue.open(0, lambda rcpt: rcpt == "a@x", 0.0, 100.0)  # held until 100
    queue.open(60, ALL, 0.0, 1000.0)  # 1 s turns until 1000
    assert queue.admit("m1", "a@x", 5.0) == math.inf
    assert queue.admit("m2", "b@x", 5.0) == 6.0
    assert queue.settle(200.0) == {"m1": 100.0}  # released at once: no capacity declared


def test_clearing_faults_closes_every_lane_at_that_instant():
    stores = MailStores(["mx"])
    stores.slow_delivery("mx", 0, ALL, 0.0, math.inf)
    stores.accept("mx", "m1", 10.0)
    stores.end_slow_delivery("mx", 50.0)
    stores.accept("mx", "m2", 60.0)
    assert held(stores) == {"m1": 50.0, "m2": 60.0}


def record(message_id: str, **kw) -> MessageRecord:
    return MessageRecord(message_id, "s-01", "s", "schedule", "a@s.example", "b@x.example", 0.0, **kw)


def test_mail_still_in_the_delivery_queue_at_the_end_is_queued_and_the_ledger_balances():
    stores = MailStores(["mx"], delivery={"mx": 1})  # 60 s turns
    stores.accept("mx", "m1", 0.0)  # readable at 60
    stores.accept("mx", "m2", 0.0)  # readable at 120, after the end (100)
    records = [record("m1", accepted_at=0.0, accepted_by="mx"), record("m2", accepted_at=0.0, accepted_by="mx")]
    counts = finalize(records, stores.holdings(100.0), 2)
    assert [(r.final_state, r.final_at) for r in records] == [("delivered", 60.0), ("queued", None)]
    assert counts["delivered"] == 1 and counts["queued"] == 1 and sum(counts.values()) == 2


def test_a_crash_strands_what_waits_and_a_recovery_makes_it_readable_then():
    stores = MailStores(["mx"])
    stores.slow_delivery("mx", 0, ALL, 0.0, math.inf)
    stores.accept("mx", "m1", 10.0)
    stores.crash("mx", 20.0)
    assert stores.holdings(30.0)["m1"].state == "stranded"
    stores.recover_failed("mx", 40.0)
    assert stores.holdings(50.0)["m1"].state == "delivered"
    assert stores.holdings(50.0)["m1"].since == 40.0


def test_a_backup_keeps_what_waits_and_a_restore_makes_it_readable():
    stores = MailStores(["mx"])
    stores.slow_delivery("mx", 0, ALL, 0.0, math.inf)
    stores.accept("mx", "m1", 10.0)
    stores.backup("mx", 20.0)
    stores.crash("mx", 30.0)
    stores.restore("mx", stores.latest_backup("mx"), 40.0)
    assert stores.holdings(100.0)["m1"].state == "delivered"


# ---------------------------------------------------------------- in a run
def _queue_scenario(until: str | None = "2024-03-04 03:00", **fault):
    return make_scenario(
        clock={"start": "2024-03-04 00:00", "end": "2024-03-04 06:00"},
        servers=[{"name": "mx", "domains": ["atnex.example"], "delivery": {"per_minute": 60}}],
        timeline=[
            {
                "at": "2024-03-04 01:00",
                "server": "mx",
                "event": "fault",
                "until": until,
                "fault": {"kind": "delivery-queue", "per_minute": 0, **fault},
            }
        ],
        senders=[sender("p", "postfix", at=["2024-03-04 00:30", "2024-03-04 01:30", "2024-03-04 03:30"])],
    )


def test_a_run_accepts_at_once_and_delivers_late_into_the_mailbox():
    run = run_scenario(_queue_scenario(), transport="memory")
    rows = {r.submitted_at: r for r in run.records}
    # 00:30 is readable 1 s later (60 a minute); 01:30 is held until 03:00,
    # then takes one 1 s turn; 03:30 after the fault: 1 s.
    assert [(t, r.accepted_at, r.final_state, r.final_at) for t, r in sorted(rows.items())] == [
        (1800.0, 1800.0, "delivered", 1801.0),
        (5400.0, 5400.0, "delivered", 10801.0),
        (12600.0, 12600.0, "delivered", 12601.0),
    ]
    a = run.analysis
    assert a.delivery_queues
    assert run.summary()["delayed"] == {"1m": 1, "5m": 1, "1h": 1, "2h": 0, "1d": 0}


def test_a_fault_that_never_ends_leaves_held_mail_queued_not_delivered():
    run = run_scenario(_queue_scenario(until=None), transport="memory")
    states = [r.final_state for r in sorted(run.records, key=lambda r: r.submitted_at)]
    assert states == ["delivered", "queued", "queued"]  # the fault holds every recipient from 01:00 to the end
    assert run.counts["queued"] == 2 and sum(run.counts.values()) == 3


def test_runs_without_delivery_queues_keep_their_summary_unchanged():
    run = run_scenario(make_scenario(senders=[sender("p", "postfix", at=["2011-10-26 01:00"])]), transport="memory")
    assert "delayed" not in run.summary()
    assert not run.analysis.delivery_queues


def test_delivery_does_not_apply_to_a_backup_mx():
    with pytest.raises(ScenarioError) as info:
        run_scenario(
            make_scenario(
                servers=[
                    {"name": "mx", "domains": ["atnex.example"]},
                    {
                        "name": "backup",
                        "domains": ["atnex.example"],
                        "preference": 20,
                        "relay": {"policy": "postfix"},
                        "delivery": {"per_minute": 5},
                    },
                ],
                timeline=[
                    {
                        "at": "2011-10-26 01:00",
                        "server": "backup",
                        "event": "fault",
                        "fault": {"kind": "delivery-queue", "per_minute": 1},
                    }
                ],
                senders=[sender("p", "postfix", at=["2011-10-26 01:00"])],
            ),
            transport="memory",
        )
    found = [f"{p.path}: {p.message}" for p in info.value.problems]
    assert found[0].startswith("servers.1.delivery: backup is a backup MX")
    assert found[1].startswith("timeline.0.fault.kind: backup is a backup MX")
