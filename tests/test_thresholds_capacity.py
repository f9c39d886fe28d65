"""Thresholds on what a capacity limit turned away, and on a domain with a backup MX."""

from __future__ import annotations

from simulator import run_scenario

from .conftest import make_scenario, sender


def test_turned_away_counts_421s_from_a_capacity_limit_per_server():
    scenario = make_scenario(
        timeline=[
            {"at": "2011-10-26 00:00", "server": "mx", "event": "fault", "fault": {"kind": "capacity", "sessions": 2}}
        ],
        senders=[sender("s", {"retry": "10m", "lifetime": "1d"}, at=["2011-10-26 01:00"] * 5)],
        thresholds={"turned_away": ["count==4"], "turned_away{server:mx}": ["count<3"]},
    )
    result = run_scenario(scenario, transport="memory")
    assert result.analysis.turned_away == {"mx": 4}  # 3 at 01:00, 1 at the 01:10 retry
    outcomes = result.thresholds()
    assert [(o.observed, o.ok) for o in outcomes] == [(4.0, True), (4.0, False)]


def test_destination_is_the_most_preferred_mx_that_is_not_a_relay():
    scenario = make_scenario(
        servers=[
            {"name": "backup", "domains": ["atnex.example"], "preference": 20, "relay": {"policy": "postfix"}},
            {"name": "primary", "domains": ["atnex.example"], "preference": 10},
        ],
        senders=[sender("s", "postfix", at=["2011-10-26 01:00"])],
    )
    result = run_scenario(scenario, transport="memory")
    assert result.analysis.destination(result.records[0]) == "primary"
