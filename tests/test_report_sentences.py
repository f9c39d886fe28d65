"""The report's plain-language sentence per window, from counts alone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from simulator import MessageRecord
from simulator.analysis import Analysis, RunFacts, ServerFacts
from simulator.clock import SimClock
from simulator.events import RestoreEvent
from simulator.report.data import ReportData
from simulator.report.tables import sentence

H = 3600.0


class _Clock:
    start, end, timezone = datetime(2024, 3, 4), datetime(2024, 3, 6), None


def data() -> ReportData:
    restore = RestoreEvent(
        t=30 * H, time="", server="mx", from_server="mx", disk="mx-disk2", backup_taken_at="", messages=0, state="up"
    )
    facts = RunFacts(
        scenario="s",
        seed=0,
        clock=SimClock(_Clock()),
        servers=(ServerFacts("mx", ("example.com",)),),
        senders=(),
        windows=(),
        records=[],
        events=[restore],
    )
    return ReportData(Path("."), Analysis(facts), None, datetime(2024, 3, 4))


def message(
    n: int, state: str, group: str = "postfix", accepted: float | None = None, final: float | None = None
) -> MessageRecord:
    return MessageRecord(
        f"m{n}",
        f"{group}-1",
        group,
        group,
        "a@x",
        "b@example.com",
        H,
        accepted_at=accepted,
        final_state=state,
        final_at=final,
    )


def test_one_message_reads_in_the_singular():
    assert sentence(data(), 0, 2 * H, [message(1, "stranded", accepted=H)]) == (
        "Mail sent before 02:00 on 03/04 (1 message): it was accepted with a 250 but exists only on the failed disk, "
        "and its sender received no bounce."
    )


def test_mixed_window_lists_each_state_with_its_share_and_who_bounced():
    records = [message(i, "delivered", accepted=2 * H, final=30 * H) for i in range(6)]
    records += [
        message(10, "bounced", "ses"),
        message(11, "bounced", "ses"),
        message(12, "bounced", "mailgun"),
        message(13, "queued"),
    ]
    assert sentence(data(), H, 10 * H, records) == (
        "Mail sent between 01:00 on 03/04 and 10:00 on 03/04 (10 messages): 6 (60%) are in a mailbox on a live server, "
        "all of them readable again only from 06:00 on 03/05, restored from a backup; 3 (30%) bounced and their senders "
        "received a non-delivery report (ses 2, mailgun 1); 1 (10%) is still in a sender's queue at the end of the run."
    )
    assert sentence(data(), 40 * H, 48 * H, []) == "Mail sent after 16:00 on 03/05: no messages were sent."
