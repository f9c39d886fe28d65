"""Bad inputs read by the scenario: traffic CSVs, traffic outside the clock, values in the tool's own words."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from simulator import ScenarioError, load_scenario, run_scenario
from simulator.clock import SimClock
from simulator.scenario import Scenario
from simulator.schema.validate import validate
from simulator.traffic import csv_arrivals

SCENARIO = """\
name: t
clock: {start: 2011-10-26 00:00, end: 2011-10-27 00:00}
servers:
  - {name: mx, domains: [atnex.example]}
senders:
  - name: corp
    count: 2
    policy: {retry: 30m, lifetime: 1d}
    traffic: {csv: arrivals.csv}
"""

GOOD_ROWS = "at,mta,rcpt\n2011-10-26 10:00,0,alice\n2011-10-26 10:05,1,bob@ATNEX.example\n2011-10-26 10:10,1,\n"


def write(tmp_path: Path, rows: str | None, scenario: str = SCENARIO) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(scenario)
    if rows is not None:
        (tmp_path / "arrivals.csv").write_text(rows)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p).replace(str(path.parent) + "/", "") for p in info.value.problems]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- traffic CSVs
def test_missing_csv_is_reported_at_the_scenario_line_of_csv(tmp_path):
    path = write(tmp_path, None)
    assert problems(path) == ["t.yaml:9: senders.0.traffic.csv: cannot read the traffic CSV arrivals.csv: no such file"]


def test_validate_fails_like_run_on_a_missing_csv(tmp_path):
    path = write(tmp_path, None)
    for command in ("validate", "run"):
        proc = run_cli(command, str(path), "--memory") if command == "run" else run_cli(command, str(path))
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert proc.stderr.strip().splitlines() == [
            f"{path}:9: senders.0.traffic.csv: cannot read the traffic CSV {tmp_path}/arrivals.csv: no such file"
        ]


def test_bad_rows_are_reported_with_the_csv_file_and_line(tmp_path):
    path = write(
        tmp_path,
        "at,mta,rcpt\n2011-10-26 10:00,0,alice\nyesterday,0,bob\n2011-10-28 10:00,2,carol\n2011-10-26 11:00,x,dan\n",
    )
    assert problems(path) == [
        "arrivals.csv:3: at: expected a timestamp such as 2011-10-26 10:38, got 'yesterday'",
        "arrivals.csv:4: at: 2011-10-28 10:00:00 is outside the clock (2011-10-26 00:00:00 to 2011-10-27 00:00:00)",
        "arrivals.csv:4: mta: expected an MTA index from 0 to 1 (sender group corp has count: 2), got '2'",
        "arrivals.csv:5: mta: expected an MTA index from 0 to 1 (sender group corp has count: 2), got 'x'",
    ]


def test_recipient_in_another_domain_or_not_an_address_is_an_error(tmp_path):
    path = write(
        tmp_path,
        "at,rcpt\n2011-10-26 10:00,someone@other.example\n2011-10-26 10:01,not an address\n"
        "2011-10-26 10:02,two@@atnex.example\n2011-10-26 10:03,a..b\n2011-10-26 10:04,nobody@\n",
    )
    hint = "give a local part such as user12 or an address such as user12@atnex.example"
    assert problems(path) == [
        "arrivals.csv:2: rcpt: 'someone@other.example' is not in atnex.example, the domain sender group corp sends to; "
        "give just the local part (someone) or an address @atnex.example",
        f"arrivals.csv:3: rcpt: 'not an address' is not a recipient: {hint}",
        f"arrivals.csv:4: rcpt: 'two@@atnex.example' is not a recipient: {hint}",
        f"arrivals.csv:5: rcpt: 'a..b' is not a recipient: {hint}",
        f"arrivals.csv:6: rcpt: 'nobody@' is not a recipient: {hint}",
    ]


def test_header_problems_name_the_columns(tmp_path):
    assert problems(write(tmp_path, "at,mta,rcp\n2011-10-26 10:00,0,alice\n")) == [
        "arrivals.csv:1: unknown column 'rcp' (did you mean rcpt?); the columns are at, mta and rcpt"
    ]
    assert problems(write(tmp_path, "when,mta\n2011-10-26 10:00,0\n")) == [
        "arrivals.csv:1: unknown column 'when'; the columns are at, mta and rcpt",
        "arrivals.csv:1: the header needs an 'at' column (and optionally mta, rcpt)",
    ]
    assert problems(write(tmp_path, "")) == [
        "arrivals.csv:1: the file is empty; start it with a header line: at,mta,rcpt"
    ]
    assert problems(write(tmp_path, "at,mta\n")) == [
        "arrivals.csv:1: no arrivals after the header, so sender group corp sends nothing; add rows"
    ]
    assert problems(write(tmp_path, "at\n2011-10-26 10:00,1\n")) == [
        "arrivals.csv:2: more fields than the header's columns (at)"
    ]


def test_a_good_csv_runs_with_the_rows_recipients(tmp_path):
    path = write(tmp_path, GOOD_ROWS)
    run_scenario(path, transport="memory", out=tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "messages.csv").read_text())))
    assert [(r["sender"], r["submitted_at"]) for r in rows] == [
        ("corp-01", "2011-10-26T10:00:00"),
        ("corp-02", "2011-10-26T10:05:00"),
        ("corp-02", "2011-10-26T10:10:00"),
    ]
    assert all(r["final_state"] == "delivered" for r in rows)


def test_the_engine_reads_the_csv_with_the_same_reader(tmp_path):
    path = write(tmp_path, GOOD_ROWS.replace("bob@ATNEX.example", "bob@other.example"))
    scenario = Scenario.model_validate(_plain(SCENARIO))
    t = scenario.senders[0].traffic
    with pytest.raises(ScenarioError) as info:
        csv_arrivals(t, SimClock(scenario.clock), path, "corp", 2, domain="atnex.example")
    assert [p.line for p in info.value.problems] == [3]
    found = csv_arrivals(t, SimClock(scenario.clock), path, "corp", 2, domain="other.example")
    assert [(a.at, a.mta, a.rcpt_local) for a in found] == [
        (36000.0, 0, "alice"),
        (36300.0, 1, "bob"),
        (36600.0, 1, "user4"),
    ]


def _plain(text: str) -> dict[str, object]:
    import yaml

    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


# ---------------------------------------------------------------- traffic outside the clock
def test_traffic_that_ends_before_the_clock_starts_or_starts_after_it_ends(tmp_path):
    text = SCENARIO.replace("{csv: arrivals.csv}", "{rate: 2/h, until: 2011-10-25 12:00}") + (
        "  - {name: late, policy: postfix, traffic: {rate: 2/h, start: 2011-10-27 00:00}}\n"
    )
    assert problems(write(tmp_path, None, text)) == [
        "t.yaml:9: senders.0.traffic.until: the traffic ends (2011-10-25 12:00:00) before the clock starts "
        "(2011-10-26 00:00:00), so this group sends nothing; set until after 2011-10-26 00:00:00 or remove it",
        "t.yaml:10: senders.1.traffic.start: the traffic starts (2011-10-27 00:00:00) after the clock ends "
        "(2011-10-27 00:00:00), so this group sends nothing; set start before 2011-10-27 00:00:00 or remove it",
    ]


def test_traffic_partly_outside_the_clock_or_shaping_listed_times(tmp_path):
    text = SCENARIO.replace("{csv: arrivals.csv}", "{rate: 2/h, start: 2011-10-25 20:00, until: 2011-10-28 00:00}") + (
        "  - {name: listed, policy: postfix, traffic: {at: [2011-10-26 10:00], until: 2011-10-26 12:00}}\n"
    )
    assert problems(write(tmp_path, None, text)) == [
        "t.yaml:9: senders.0.traffic.start: 2011-10-25 20:00:00 is before the clock starts (2011-10-26 00:00:00); "
        "set start to 2011-10-26 00:00:00 or later, or remove it to send from the start",
        "t.yaml:9: senders.0.traffic.until: 2011-10-28 00:00:00 is after the clock's end (2011-10-27 00:00:00); "
        "set until to 2011-10-27 00:00:00 or earlier, or remove it to send until the end",
        "t.yaml:10: senders.1.traffic.until: until only shapes rate traffic; at lists its own times, so remove until",
    ]


def test_a_scenario_built_in_code_is_named_and_has_no_lines(tmp_path):
    data = _plain(SCENARIO.replace("{csv: arrivals.csv}", "{rate: 2/h, until: 2011-10-25 12:00}"))
    found = [str(p) for p in validate(Scenario.model_validate(data))]
    assert found == [
        "<scenario t>: senders.0.traffic.until: the traffic ends (2011-10-25 12:00:00) before the clock starts "
        "(2011-10-26 00:00:00), so this group sends nothing; set until after 2011-10-26 00:00:00 or remove it"
    ]
    assert validate(load_scenario(write(tmp_path, GOOD_ROWS))) == []


# ---------------------------------------------------------------- values in the tool's words
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{csv: arrivals.csv}",
            "{rate: lots}",
            "t.yaml:9: senders.0.traffic.rate: expected a rate such as 12/h or 300/d, got 'lots'",
        ),
        (
            "{csv: arrivals.csv}",
            "{rate: true}",
            "t.yaml:9: senders.0.traffic.rate: expected a rate such as 12/h or 300/d, got True",
        ),
        ("name: t\n", "name: T\n", "t.yaml:1: name: names use lowercase letters, digits, '.', '_' and '-', got 'T'"),
        (
            "start: 2011-10-26 00:00",
            "start: soon",
            "t.yaml:2: clock.start: expected a timestamp such as 2011-10-26 10:38, got 'soon'",
        ),
        (
            "end: 2011-10-27 00:00}",
            "end: 2011-10-27 00:00, timezone: Mars/Base}",
            "t.yaml:2: clock.timezone: unknown time zone 'Mars/Base'; use an IANA name such as America/New_York",
        ),
        (
            "{csv: arrivals.csv}",
            "{rate: 2/h, profile: 3}",
            "t.yaml:9: senders.0.traffic.profile: expected flat, business or a list of 24 numbers, e.g. [0.2, 0.2, ...], got 3",
        ),
        (
            "{csv: arrivals.csv}",
            "{rate: 2/h, profile: [1, many]}",
            "t.yaml:9: senders.0.traffic.profile.1: expected a number, got 'many'",
        ),
        (
            "domains: [atnex.example]",
            "domains: atnex.example",
            "t.yaml:4: servers.0.domains: expected a list of domains, e.g. [atnex.example], got 'atnex.example'",
        ),
        (
            "domains: [atnex.example]}",
            "domains: [atnex.example], initially: dwon}",
            "t.yaml:4: servers.0.initially: unknown value 'dwon'; use one of: up, refuse, blackhole, unreachable, tempfail",
        ),
        (
            "domains: [atnex.example]}",
            "domains: [atnex.example], preference: lots}",
            "t.yaml:4: servers.0.preference: expected a whole number, got 'lots'",
        ),
        (
            "  - {name: mx, domains: [atnex.example]}",
            "  - mx",
            "t.yaml:4: servers.0: expected a mapping with the keys "
            "name, domains, hostname, initially, preference, relay, delivery (name, domains required), got 'mx'",
        ),
        (
            "domains: [atnex.example]}",
            "domain: [atnex.example]}",
            "t.yaml:4: servers.0.domain: unknown key 'domain' "
            "(did you mean 'domains'?); the keys here are: name, domains, hostname, initially, preference, relay, delivery",
        ),
        (
            "domains: [atnex.example]}",
            "domain: [atnex.example]}",
            "t.yaml:4: servers.0.domains: required key is missing",
        ),
        (
            "name: t\n",
            "name: t\nsed: 4\n",
            "t.yaml:2: sed: unknown key 'sed' (did you mean 'seed'?); the keys here are: "
            "name, description, seed, clock, servers, timeline, senders, windows, engine, thresholds, sources",
        ),
        (
            "policy: {retry: 30m, lifetime: 1d}",
            "policy: {preset: postfix, maximal_queue_lifetim: 2d}",
            "t.yaml:8: senders.0.policy.maximal_queue_lifetim: unknown key 'maximal_queue_lifetim' (did you mean "
            "'maximal_queue_lifetime'?); the keys here are: ",
        ),
        (
            "policy: {retry: 30m, lifetime: 1d}",
            "policy: {preset: postfx}",
            "t.yaml:8: senders.0.policy: unknown retry policy preset 'postfx'; choose one of: ",
        ),
    ],
    ids=[
        "rate-word",
        "rate-bool",
        "name-case",
        "timestamp",
        "timezone",
        "profile-shape",
        "profile-item",
        "list",
        "literal",
        "whole-number",
        "mapping",
        "unknown-key",
        "missing-key",
        "top-level-key",
        "preset-override",
        "preset-name",
    ],
)
def test_schema_errors_are_in_the_tools_words(tmp_path, old, new, expected):
    assert old in SCENARIO
    found = problems(write(tmp_path, GOOD_ROWS, SCENARIO.replace(old, new)))
    assert any(p == expected or (expected.endswith(" ") and p.startswith(expected)) for p in found), found
    for p in found:
        assert "Input should" not in p and "Field required" not in p and "Extra inputs" not in p, p
        assert "{value" not in p and "list[" not in p and "literal[" not in p and "function-" not in p, p


def test_unknown_preset_suggests_the_close_one(tmp_path):
    found = problems(
        write(tmp_path, GOOD_ROWS, SCENARIO.replace("policy: {retry: 30m, lifetime: 1d}", "policy: postfx"))
    )
    assert len(found) == 1 and found[0].endswith(" (did you mean 'postfix'?)"), found


def test_restore_backup_and_window_bounds_name_both_forms(tmp_path):
    text = SCENARIO + (
        "timeline:\n  - {at: 2011-10-26 01:00, server: mx, event: restore, backup: yesterday}\n"
        "windows:\n  - {label: a, from: later}\n"
    )
    assert problems(write(tmp_path, GOOD_ROWS, text)) == [
        "t.yaml:11: timeline.0.backup: expected latest or a timestamp such as 2011-10-26 10:38, got 'yesterday'",
        "t.yaml:13: windows.0.from: expected start or a timestamp such as 2011-10-26 10:38, got 'later'",
    ]


def test_a_key_written_twice_is_an_error_not_a_silent_replacement(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(
        "name: t\n"
        "clock: {start: 2024-03-04 00:00, end: 2024-03-05 00:00}\n"
        "servers: [{name: mx, domains: [x.example]}]\n"
        "senders: [{name: p, policy: postfix, traffic: &t {rate: 1/h}}, {name: q, policy: exim, traffic: *t}]\n"
        "thresholds:\n"
        '  delivery_delay: ["p(95)<2h"]\n'
        '  stranded: ["count==0"]\n'
        '  delivery_delay: ["max<1d"]\n'
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:8: thresholds.delivery_delay: written twice (first on line 6); "
        "YAML would keep only this one, so merge the two into one entry"
    ]
