"""Thresholds on mail readable late (``delayed{over:...}``, ``delayed_ratio``) and on time to a bounce."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from simulator.analysis import Analysis, RunFacts, ServerFacts
from simulator.clock import SimClock
from simulator.ledger import MessageRecord
from simulator.schema.thresholds import ThresholdSyntaxError, parse_expression
from simulator.thresholds import evaluate_all


@dataclass(frozen=True)
class _Clock:
    start: datetime = datetime(2024, 3, 4)
    end: datetime = datetime(2024, 3, 5)  # 86,400 s
    timezone: str | None = None


def rec(n: int, state: str, submitted: float, final: float | None, **kw) -> MessageRecord:
    return MessageRecord(
        f"m{n}", "p-01", "p", "postfix", "a@p.example", f"u{n}@x.example", submitted,
        final_state=state, final_at=final, **kw,
    )  # fmt: skip


RECORDS = [
    rec(1, "delivered", 0.0, 30.0),  # readable after 30 s
    rec(2, "delivered", 0.0, 7200.0),  # exactly 2 h: not *more* than 2 h
    rec(3, "delivered", 100.0, 10000.0),  # 9,900 s
    rec(4, "queued", 80000.0, None),  # still waiting at the end: 6,400 s so far
    rec(5, "queued", 86000.0, None),  # 400 s so far
    rec(6, "bounced", 50.0, 60.0, bounced_at=60.0),  # failed, not delayed; bounced after 10 s
    rec(7, "stranded", 0.0, 5000.0),  # failed, not delayed
    rec(8, "bounced", 0.0, 3600.0, bounced_at=3600.0),  # bounced after 1 h
]


def analysis() -> Analysis:
    facts = RunFacts(
        scenario="s",
        seed=0,
        clock=SimClock(_Clock()),
        servers=(ServerFacts("mx", ("x.example",)),),
        senders=(),
        windows=(),
        records=list(RECORDS),
        events=[],
    )
    return Analysis(facts)


def observed(key: str, expression: str) -> float | None:
    (outcome,) = evaluate_all([parse_expression(key, 0, expression)], analysis(), lambda t: "")
    return outcome.observed


def test_delayed_counts_late_and_still_waiting_mail_but_not_failures():
    # over 1m: m3 (9,900 s), m2 (7,200 s), m4 (6,400 s waiting), m5 (400 s waiting): 4 of 8
    assert observed("delayed{over:1m}", "count>0") == 4
    assert observed("delayed_ratio{over:1m}", "rate>0") == 0.5
    # over 2h: m3 only (m2 is exactly 2 h, m4 has waited 6,400 s < 7,200 s)
    assert observed("delayed{over:2h}", "count>0") == 1
    assert observed("delayed_ratio{over:2h}", "rate>0") == 1 / 8
    # over 10s: m1 (30 s) joins
    assert observed("delayed{over:10s}", "count>0") == 5


def test_bounce_delay_is_submission_to_bounce():
    assert observed("bounce_delay", "max<1h") == 3600.0
    assert observed("bounce_delay", "min<1h") == 10.0


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("delayed_ratio", "delayed_ratio needs the delay it counts from, e.g. delayed_ratio{over:2h}"),
        ("delayed{sender:p}", "delayed needs the delay it counts from"),
        ("bounced{over:2h}", "the over tag applies to delayed and delayed_ratio only, not bounced"),
        ("delayed{over:soon}", "over in 'delayed{over:soon}' is a duration such as 2h"),
    ],
)
def test_the_over_tag_is_required_where_it_applies_and_refused_elsewhere(key, says):
    with pytest.raises(ThresholdSyntaxError, match=says.replace("{", r"\{").replace("}", r"\}")):
        parse_expression(key, 0, "count==0" if "ratio" not in key else "rate<0.1")
