"""The report on faults, bounces, duplicates, backup MX hosts and recovery storms, with numbers worked out by hand."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from simulator import MessageRecord, run_scenario
from simulator.analysis import Analysis, RunFacts, ServerFacts
from simulator.clock import SimClock
from simulator.events import DiskRecoveredEvent, RelayedEvent, RestoreEvent, ServerEvent
from simulator.report import figures, write_report
from simulator.report.data import ReportData
from simulator.report.tables import sentence

from .conftest import make_scenario, sender
from .test_report import tables

ROOT = Path(__file__).resolve().parent.parent
H = 3600.0


def report(scenario: Any, folder: Path) -> Path:
    run_scenario(scenario, transport="memory", out=folder)
    write_report(folder)
    return folder


def colours(png: Path) -> set[tuple[int, int, int]]:
    with Image.open(png) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert found is not None
    return {c for _, c in found}


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


# ---------------------------------------------------------------- a timeline of faults only
@pytest.fixture(scope="module")
def faults_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = make_scenario(
        timeline=[
            {
                "at": "2011-10-26 01:00",
                "server": "mx",
                "event": "fault",
                "until": "2011-10-26 02:00",
                "fault": {"kind": "capacity", "sessions": 2},
            },
            {
                "at": "2011-10-26 03:00",
                "server": "mx",
                "event": "fault",
                "until": "2011-10-26 04:00",
                "fault": {"kind": "reply", "stage": "rcpt", "code": 451, "fraction": 0.3},
            },
            {"at": "2011-10-26 05:00", "server": "mx", "event": "fault", "fault": {"kind": "slow", "latency": "30s"}},
            {"at": "2011-10-26 06:00", "server": "mx", "event": "clear-faults"},
        ],
        senders=[sender("s", {"retry": "10m", "lifetime": "1d"}, at=["2011-10-26 00:30", "2011-10-26 07:00"])],
    )
    return report(scenario, tmp_path_factory.mktemp("faults-only"))


def test_a_timeline_of_faults_lists_each_fault_in_words_until_when(faults_only: Path) -> None:
    page = (faults_only / "report.html").read_text(encoding="utf-8")
    assert "The timeline has no events" not in page
    assert tables(faults_only)["timeline-events"] == [
        ["when", "server", "event", "until", "note"],
        ["01:00 10/26", "mx", "fault: capacity: at most 2 sessions at once", "02:00 10/26", ""],
        ["03:00 10/26", "mx", "fault: 451 at RCPT for 30% of sessions", "04:00 10/26", ""],
        # No until of its own: it lasts until the clear-faults entry.
        ["05:00 10/26", "mx", "fault: slow: 30s per reply", "06:00 10/26", ""],
        ["06:00 10/26", "mx", "faults cleared", "", ""],
    ]


def test_fault_windows_are_drawn_on_the_timeline_figure(faults_only: Path) -> None:
    seen = colours(faults_only / "timeline.png")
    for kind in ("capacity", "reply", "slow"):
        assert rgb(figures.FAULT_COLORS[kind]) in seen, kind
    assert rgb(figures.FAULT_COLORS["accept-then-drop"]) not in seen


# ---------------------------------------------------------------- bounces and duplicates
def test_bounce_reasons_and_duplicates_are_shown(tmp_path: Path) -> None:
    scenario = make_scenario(
        timeline=[
            # 01:00: committed, then the connection drops; the 01:10 retry is accepted again: 1 duplicate.
            {
                "at": "2011-10-26 00:00",
                "server": "mx",
                "event": "fault",
                "until": "2011-10-26 01:05",
                "fault": {"kind": "accept-then-drop"},
            },
            # 02:30: 550 at RCPT, a permanent failure: bounced at once with the reply's own status, 5.1.1.
            {
                "at": "2011-10-26 02:00",
                "server": "mx",
                "event": "fault",
                "until": "2011-10-26 03:00",
                "fault": {"kind": "reply", "stage": "rcpt", "code": 550, "text": "5.1.1 No such user"},
            },
            # 04:30: refused until the 1h lifetime runs out at 05:30: 4.4.7.
            {"at": "2011-10-26 04:00", "server": "mx", "event": "down"},
        ],
        senders=[
            sender(
                "s", {"retry": "10m", "lifetime": "1h"}, at=["2011-10-26 01:00", "2011-10-26 02:30", "2011-10-26 04:30"]
            )
        ],
    )
    folder = report(scenario, tmp_path / "out")
    found = tables(folder)
    assert found["bounces-table"] == [
        ["status", "reason", "messages", "of the bounces", "what it means"],
        ["4.4.7", "retry lifetime exceeded", "1", "50%", "the sender retried until its retry lifetime ran out"],
        [
            "5.1.1",
            "permanent failure: 550 5.1.1 No such user",
            "1",
            "50%",
            "a server refused it with a permanent (5xx) reply; the sender did not retry",
        ],
    ]
    page = (folder / "report.html").read_text(encoding="utf-8")
    card = re.search(r'<div class="card" id="duplicates-card"[^>]*><b>(\d+)</b><span>([^<]*)</span>', page)
    assert card is not None and card.groups() == ("1", "accepted more than once")
    text = re.search(r'<p id="duplicates">([^<]*)</p>', page)
    assert text is not None
    assert text.group(1).startswith("1 message was accepted more than once (copies above 1 in messages.csv):")
    assert "the recipient finds two copies (RFC 1047)" in text.group(1)


# ---------------------------------------------------------------- a recovery through a capacity limit
@pytest.fixture(scope="module")
def recovery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mx is down 00:00-01:00 and takes at most 2 sessions at once; a backup MX holds mail for one of its domains.

    00:30: 3 messages for atnex.example go to the backup MX (its relay retries every 30 min), 2 for
    other.example wait in their sender's queue (retry every 30 min). At 01:00 mx is back: 5 sessions, 2 accepted,
    3 turned away; 01:30: 3 sessions, 2 accepted, 1 turned away; 02:00: the last one. Backlog 5 (2 in senders'
    queues, 3 on the backup MX), peak 5 sessions in the first minute, 8 in the first hour, drained after 1h,
    4 sessions turned away.
    """
    retry = {"retry": "30m", "lifetime": "1d"}
    scenario = make_scenario(
        servers=[
            {"name": "mx", "domains": ["atnex.example", "other.example"]},
            {"name": "backup", "domains": ["atnex.example"], "preference": 20, "relay": {"policy": retry}},
        ],
        timeline=[
            {"at": "2011-10-26 00:00", "server": "mx", "event": "fault", "fault": {"kind": "capacity", "sessions": 2}},
            {"at": "2011-10-26 00:00", "server": "mx", "event": "down"},
            {"at": "2011-10-26 01:00", "server": "mx", "event": "up"},
        ],
        senders=[
            sender("r", retry, at=["2011-10-26 00:30"] * 3, to="atnex.example"),
            sender("q", retry, at=["2011-10-26 00:30"] * 2, to="other.example"),
        ],
    )
    return report(scenario, tmp_path_factory.mktemp("recovery"))


def test_a_capacity_fault_is_on_the_incident_timeline(recovery: Path) -> None:
    assert tables(recovery)["timeline-events"] == [
        ["when", "server", "event", "until", "note"],
        ["00:00 10/26", "mx", "fault: capacity: at most 2 sessions at once", "the end of the run", ""],
        ["00:00 10/26", "mx", "down (refuse)", "", ""],
        ["01:00 10/26", "mx", "up", "", ""],
    ]
    assert rgb(figures.FAULT_COLORS["capacity"]) in colours(recovery / "timeline.png")


def test_recovery_table_shows_where_the_backlog_waited_and_what_was_turned_away(recovery: Path) -> None:
    assert tables(recovery)["storms-table"] == [
        [
            "server",
            "back at",
            "backlog",
            "in senders' queues",
            "on backup MX",
            "peak sessions/min",
            "peak at",
            "sessions, first hour",
            "90% drained after",
            "all drained after",
            "turned away",
        ],
        ["mx", "01:00 10/26", "5", "2", "3", "5", "01:00 10/26", "8", "1h", "1h", "4"],
    ]


def test_mail_held_on_a_backup_mx_says_where_it_waited(recovery: Path) -> None:
    rows = tables(recovery)["windows-table"]
    assert rows[1][1] == "sent while mx was down, 00:00 10/26 to 01:00 10/26"
    # The 3 relayed messages were accepted at 00:30 and reached mx from 01:00; the 2 that waited in their
    # sender's queue were accepted by mx itself, so they were never unreadable.
    assert rows[1][-1] == (
        "Mail sent before 01:00 on 10/26 (5 messages): all 5 are in a mailbox on a live server, "
        "3 of them held on the backup MX backup and delivered when mx came back at 01:00 on 10/26."
    )


# ---------------------------------------------------------------- sentences from records
class _Clock:
    start, end, timezone = datetime(2024, 3, 4), datetime(2024, 3, 6), None


def _data(*events: Any) -> ReportData:
    facts = RunFacts(
        scenario="s",
        seed=0,
        clock=SimClock(_Clock()),
        servers=(ServerFacts("mx", ("example.com",)), ServerFacts("mx2", ("example.com",), preference=20, relay=True)),
        senders=(),
        windows=(),
        records=[],
        events=list(events),
    )
    return ReportData(Path("."), Analysis(facts), None, datetime(2024, 3, 4))


def _delivered(n: int, by: str, accepted: float, final: float) -> MessageRecord:
    return MessageRecord(
        f"m{n}",
        "p-1",
        "postfix",
        "postfix",
        "a@x",
        "b@example.com",
        H,
        accepted_at=accepted,
        accepted_by=by,
        final_state="delivered",
        final_at=final,
    )


def test_mail_relayed_then_restored_says_both_and_disk_recovery_stays_as_it_was() -> None:
    down = ServerEvent(t=2 * H, time="", server="mx", state="refuse")
    up = ServerEvent(t=8 * H, time="", server="mx", state="up")
    relayed = RelayedEvent(t=9 * H, time="", message="m1", relay="mx2", server="mx", attempts=2)
    crash = ServerEvent(t=20 * H, time="", server="mx", state="refuse")
    restore = RestoreEvent(
        t=30 * H, time="", server="mx", from_server="mx", disk="mx-disk2", backup_taken_at="", messages=0, state="up"
    )
    records = [_delivered(1, "mx2", 3 * H, 30 * H), _delivered(2, "mx", 1.5 * H, 30 * H)]
    assert sentence(_data(down, up, relayed, crash, restore), 0, 4 * H, records) == (
        "Mail sent before 04:00 on 03/04 (2 messages): all 2 are in a mailbox on a live server, "
        "1 of them held on the backup MX mx2 and delivered when mx came back at 08:00 on 03/04, "
        "all of them readable again only from 06:00 on 03/05, restored from a backup."
    )
    recovered = DiskRecoveredEvent(t=30 * H, time="", server="mx", messages=1)
    assert sentence(_data(recovered), 0, 4 * H, [_delivered(2, "mx", 1.5 * H, 30 * H)] * 2) == (
        "Mail sent before 04:00 on 03/04 (2 messages): all 2 are in a mailbox on a live server, "
        "all of them readable again only from 06:00 on 03/05, read back from the failed disk."
    )


# ---------------------------------------------------------------- the AtNex mitigations
def test_recovery_table_of_atnex_mitigated_matches_the_summary(tmp_path: Path) -> None:
    folder = report(ROOT / "scenarios" / "atnex-2011-mitigated.yaml", tmp_path / "out")
    recoveries = json.loads((folder / "summary.json").read_text())["recoveries"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    rows = tables(folder)["storms-table"][1:]
    html_rows = re.findall(
        r"<tr><td class=\"l\">.*?</tr>", re.search(r'<table id="storms-table">.*?</table>', page).group(0)
    )
    assert len(rows) == len(recoveries) == len(html_rows) == 4
    for row, html_row, r in zip(rows, html_rows, recoveries, strict=True):
        at = datetime.fromisoformat(r["at"]).strftime("%H:%M %m/%d")
        peak_at = datetime.fromisoformat(r["peak_at"]).strftime("%H:%M %m/%d")
        assert row[0:8] == [
            r["server"],
            at,
            str(r["backlog"]),
            str(r["backlog_senders"]),
            str(r["backlog_relays"]),
            str(r["peak_attempts_per_minute"]),
            peak_at,
            str(r["attempts_first_hour"]),
        ]
        assert row[10] == str(r["turned_away_421"])
        drains = [float(s) for s in re.findall(r'data-seconds="([^"]+)"', html_row)]
        assert drains == [r["drained_90_seconds"], r["drained_seconds"]]
    # The first recovery, by hand from the summary: 621 messages held on the backup MX, drained in 1h05m.
    assert rows[0][2:5] == ["621", "0", "621"] and rows[0][8:10] == ["1h", "1h5m"]


def test_faults_for_a_share_of_addresses_and_delivery_queues_read_in_words():
    from simulator.report.tables import fault_words

    assert (
        fault_words({"kind": "reply", "stage": "rcpt", "code": 550, "recipients_fraction": 0.3})
        == "550 at RCPT for every session to 30% of addresses"
    )
    assert (
        fault_words({"kind": "delivery-queue", "per_minute": 0.0, "recipients_fraction": 0.01})
        == "delivery into the mailboxes held for 1% of addresses (accepted with 250 at once)"
    )
    assert (
        fault_words({"kind": "delivery-queue", "per_minute": 23.0})
        == "delivery into the mailboxes 23 per minute (accepted with 250 at once)"
    )
