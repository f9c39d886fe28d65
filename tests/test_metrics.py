"""Metrics from flat records: delays, percentiles, queues, qshape, incident windows, recovery storms."""

from __future__ import annotations

import pytest

from simulator import MessageRecord, load_scenario
from simulator.clock import SimClock
from simulator.metrics import (
    availability_delay,
    delivery_delay,
    describe,
    disk_intervals,
    incident_windows,
    percentile,
    qshape,
    qshape_buckets,
    queue_depth,
    recoveries,
    recovery_storms,
    scenario_marks,
    server_intervals,
)

H = 3600.0


def record(
    n: int,
    submitted: float,
    state: str = "delivered",
    accepted: float | None = None,
    bounced: float | None = None,
    final: float | None = None,
    group: str = "postfix",
) -> MessageRecord:
    return MessageRecord(
        message_id=f"m{n}",
        sender=f"{group}-1",
        group=group,
        policy=group,
        originator="a@x",
        recipient="b@example.com",
        submitted_at=submitted,
        accepted_at=accepted,
        bounced_at=bounced,
        final_state=state,
        final_at=final if final is not None else (accepted if accepted is not None else bounced),
    )


def test_percentiles_interpolate_between_ranks():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([10, 20, 30, 40], 100) == 40
    assert percentile([5], 95) == 5
    assert percentile([1, float("inf")], 100) == float("inf")
    with pytest.raises(ValueError):
        percentile([], 50)
    assert describe([1, 2, 3])["med"] == 2 and describe([]) == {}


def test_delays_count_from_submission():
    late = record(1, 100, accepted=400, final=9000)
    bounced = record(2, 100, "bounced", bounced=5000)
    assert delivery_delay(late) == 300 and availability_delay(late) == 8900
    assert delivery_delay(bounced) is None and availability_delay(bounced) is None


def test_queue_depth_and_qshape_count_mail_waiting_at_senders():
    records = [
        record(1, 0, accepted=10 * 60),
        record(2, 0, "bounced", bounced=3 * H),
        record(3, 60 * 60, accepted=2 * H, group="exim"),
        record(4, 90 * 60, "queued", group="exim"),
    ]
    depth = queue_depth(records)
    assert depth["postfix"] == [(0, 2), (600, 1), (3 * H, 0)]
    assert depth["exim"][-1] == (2 * H, 1)
    # Just before 2h: m2 is 120 min old, m3 60 min, m4 30 min; m1 has left.
    shape = qshape(records, 2 * H, buckets=(5, 10, 20, 40, 80, 160))
    assert shape["TOTAL"] == [3, 0, 0, 0, 1, 1, 1, 0]
    assert list(shape) == ["TOTAL", "exim", "postfix"]
    assert shape["postfix"] == [1, 0, 0, 0, 0, 0, 1, 0]


def test_qshape_buckets_double_until_the_oldest_message():
    assert qshape_buckets(0) == (5, 10, 20, 40, 80, 160, 320, 640, 1280)
    assert qshape_buckets(3 * 86400)[-1] == 5120


ATNEX_WINDOWS = [
    "sent before the crash at 10:38 10/26",
    "sent during the outage, 10:38 10/26 to 15:00 10/27",
    "sent after recovery at 15:00 10/27, before the 18:30 10/27 backup",
    "sent after the 18:30 10/27 backup, before the crash at 06:00 10/28",
    "sent during the outage, 06:00 10/28 to 11:40 10/30",
    "sent after recovery at 11:40 10/30",
]


def test_windows_derived_from_the_atnex_timeline_are_the_post_mortems():
    scenario = load_scenario("scenarios/atnex-2011.yaml")
    # The post-mortem's events: everything up to the new server coming online.
    restored = next(i for i, ev in enumerate(scenario.timeline) if ev.event == "restore")
    scenario = scenario.model_copy(update={"timeline": scenario.timeline[: restored + 1]})
    clock = SimClock(scenario.clock)
    marks = scenario_marks(scenario, clock.seconds)
    derived = incident_windows(marks, {"mail": "up"}, clock.end, lambda t: clock.datetime_at(t).strftime("%H:%M %m/%d"))
    assert [label for label, _, _ in derived] == ATNEX_WINDOWS
    # Same boundaries as the windows the scenario declares from the post-mortem's text.
    declared = [
        (0.0 if w.start == "start" else clock.seconds(w.start), clock.end if w.end == "end" else clock.seconds(w.end))
        for w in scenario.windows
    ]
    assert [(lo, hi) for _, lo, hi in derived] == declared


def test_windows_name_the_server_when_there_are_several():
    marks = [
        {"t": 100.0, "type": "server", "server": "mx1", "state": "refuse"},
        {"t": 200.0, "type": "server", "server": "mx1", "state": "up"},
    ]
    labels = [w[0] for w in incident_windows(marks, {"mx1": "up", "mx2": "up"}, 1000.0, lambda t: f"t{t:g}")]
    assert labels == [
        "sent before the mx1 outage at t100",
        "sent while mx1 was down, t100 to t200",
        "sent after mx1's recovery at t200",
    ]
    assert incident_windows([], {"mx": "up"}, 50.0, str) == [("all mail", 0.0, 50.0)]


def test_server_and_disk_intervals_follow_the_marks():
    marks = [
        {"t": 10.0, "type": "crash", "server": "mx", "state": "refuse"},
        {"t": 20.0, "type": "disk_recovered", "server": "mx"},
        {"t": 20.0, "type": "server", "server": "mx", "state": "up"},
    ]
    states = server_intervals(marks, {"mx": "up"}, 30.0)
    assert [(i.start, i.end, i.state) for i in states["mx"]] == [(0, 10, "up"), (10, 20, "refuse"), (20, 30, "up")]
    disks = disk_intervals(marks, ["mx"], 30.0)
    assert [i.state for i in disks["mx"]] == ["live", "failed", "live"]
    assert recoveries(states) == [(20.0, "mx")]


def test_recovery_storm_measures_peak_load_and_backlog_drain():
    marks = [
        {"t": H, "type": "server", "server": "mx", "state": "refuse"},
        {"t": 2 * H, "type": "server", "server": "mx", "state": "up"},
    ]
    intervals = server_intervals(marks, {"mx": "up"}, 10 * H)
    records = [record(i, H + i, accepted=2 * H + 60 * i) for i in range(10)]  # accepted 0..9 min after recovery
    records.append(record(99, 3 * H, accepted=3 * H))  # new mail, not backlog
    attempts = [(2 * H + 5, "mx")] * 7 + [(2 * H + 65, "mx")] * 3 + [(H + 30, "mx")] * 50
    (storm,) = recovery_storms(records, attempts, intervals, lambda r: "mx")
    assert storm.at == 2 * H and storm.until == 10 * H and storm.backlog == 10
    assert (storm.peak_per_minute, storm.peak_at, storm.first_hour) == (7, 2 * H, 10)
    assert storm.drained == 9 * 60 and storm.drained_90 == 8 * 60


def test_backlog_not_drained_before_the_next_outage_is_reported_as_such():
    marks = [
        {"t": H, "type": "crash", "server": "mx", "state": "refuse"},
        {"t": 2 * H, "type": "restore", "server": "mx", "state": "up"},
        {"t": 3 * H, "type": "crash", "server": "mx", "state": "refuse"},
    ]
    intervals = server_intervals(marks, {"mx": "up"}, 10 * H)
    records = [record(1, 1.5 * H, "queued"), record(2, 1.5 * H, accepted=2 * H + 60)]
    (storm,) = recovery_storms(records, [], intervals, lambda r: "mx")
    assert storm.until == 3 * H and storm.drained is None and storm.drained_90 is None
