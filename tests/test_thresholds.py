"""Thresholds in scenario files: checked when the file loads, evaluated against a run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simulator import ScenarioError, load_scenario, run_scenario
from simulator.thresholds import format_outcomes, parse_expression

BASE = """\
name: t
seed: 5
clock: {start: 2024-03-04 00:00, end: 2024-03-06 00:00}
servers:
  - {name: mx, domains: [example.com]}
timeline:
  - {at: 2024-03-04 06:00, server: mx, event: backup}
  - {at: 2024-03-04 12:00, server: mx, event: crash, mode: refuse}
  - {at: 2024-03-04 18:00, server: mx, event: restore}
senders:
  - {name: postfix, count: 2, policy: postfix, traffic: {rate: 2/h, until: 2024-03-05 00:00}}
  - {name: mailgun, count: 1, policy: mailgun, traffic: {rate: 2/h, until: 2024-03-05 00:00}}
thresholds:
"""


def write(tmp_path: Path, thresholds: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(thresholds), "  "))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


def test_unknown_metric_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, 'stranded: ["count==0"]\ndelivred_ratio: ["rate>0.99"]\n')
    (line,) = problems(path)
    assert line.startswith(
        f"{path}:15: thresholds.delivred_ratio: unknown metric 'delivred_ratio'; did you mean 'delivered_ratio'?"
    )


def test_malformed_expressions_name_the_fix(tmp_path):
    path = write(
        tmp_path,
        """\
        stranded: ["count=0"]
        delivered: ["rate>0.5"]
        delivery_delay:
          - p(95)<2h
          - p(95)<2 hours
        bounced_ratio: "rate<120%"
        """,
    )
    assert problems(path) == [
        f"{path}:14: thresholds.stranded.0: cannot read 'count=0'; write an aggregation, an operator and a value, e.g. count==0 (stranded takes count)",
        f'{path}:15: thresholds.delivered.0: delivered counts messages; for a fraction of messages use delivered_ratio: ["rate>0.99"]',
        f"{path}:18: thresholds.delivery_delay.1: delivery_delay is a duration: expected a duration such as 30s, 5m, 2h, 4d or 1h30m, got '2 hours'",
        f"{path}:19: thresholds.bounced_ratio.0: a rate is between 0 and 1 (or 0% and 100%), got '120%'",
    ]


def test_tags_must_name_things_the_scenario_has(tmp_path):
    path = write(
        tmp_path,
        """\
        delivery_delay{sender:exim}: ["p(95)<2h"]
        stranded{window:9}: ["count==0"]
        bounced{colour:red}: ["count==0"]
        recovery_drain_time{sender:postfix}: ["max<1h"]
        """,
    )
    found = problems(path)
    assert (
        found[0]
        == f"{path}:14: thresholds.delivery_delay{{sender:exim}}: no sender 'exim'; senders are: postfix, mailgun"
    )
    assert found[1].startswith(
        f"{path}:15: thresholds.stranded{{window:9}}: no window '9'; windows are: 1 'sent before the 06:00 03/04 backup'; 2 "
    )
    assert (
        found[2]
        == f"{path}:16: thresholds.bounced{{colour:red}}: unknown tag 'colour' in 'bounced{{colour:red}}'; tags are: sender, policy, window, server, over"
    )
    assert (
        found[3]
        == f"{path}:17: thresholds.recovery_drain_time{{sender:postfix}}: recovery_drain_time is measured per recovery; only the server tag applies"
    )


def test_recovery_metrics_need_a_recovery(tmp_path):
    path = tmp_path / "s.yaml"
    text = (
        BASE.replace("  - {at: 2024-03-04 18:00, server: mx, event: restore}\n", "")
        + '  recovery_drain_time: ["max<1h"]\n'
    )
    path.write_text(text)
    (line,) = problems(path)
    assert line.endswith("recovery_drain_time needs a recovery (a server coming back up), and the timeline has none")


def test_expressions_parse_to_numbers_in_seconds_and_fractions():
    assert parse_expression("delivery_delay", 0, "p(99.9) <= 1h30m").value == 5400
    assert parse_expression("delivered_ratio", 0, "rate>99%").value == pytest.approx(0.99)
    t = parse_expression('stranded{window:"after the backup, before the crash"}', 0, "count!=0")
    assert t.tags == (("window", "after the backup, before the crash"),) and t.holds(3) and not t.holds(0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = write(
        tmp_path_factory.mktemp("thr"),
        """\
        delivered_ratio{window:1}: ["rate==1"]
        stranded: ["count==0", "count<1000"]
        stranded_ratio{window:2}: ["rate==1"]
        bounced{sender:postfix}: ["count==0"]
        delivery_delay{sender:mailgun}: ["max<8h", "p(50)>=0"]
        recovery_backlog: ["max>0"]
        recovery_drain_time: ["max<1s"]
        """,
    )
    return path, run_scenario(path, transport="memory")


def test_evaluation_reports_observed_values_and_the_failing_lines(run):
    path, result = run
    outcomes = {(o.threshold.key, o.threshold.expression): o for o in result.thresholds()}
    stranded = result.counts["stranded"]
    assert stranded > 0
    assert outcomes[("stranded", "count==0")].ok is False
    assert outcomes[("stranded", "count==0")].observed == stranded
    assert outcomes[("stranded", "count==0")].where == f"{path}:15"
    assert outcomes[("stranded", "count<1000")].ok
    assert outcomes[("delivered_ratio{window:1}", "rate==1")].ok
    assert outcomes[("stranded_ratio{window:2}", "rate==1")].ok
    assert outcomes[("bounced{sender:postfix}", "count==0")].ok
    assert outcomes[("delivery_delay{sender:mailgun}", "max<8h")].ok
    assert outcomes[("recovery_backlog", "max>0")].ok
    assert not outcomes[("recovery_drain_time", "max<1s")].ok


def test_threshold_table_marks_each_line(run):
    _, result = run
    lines = format_outcomes(result.thresholds())
    assert len(lines) == 9
    failing = [line for line in lines if line.startswith("✗")]
    assert [line.split()[1] for line in failing] == ["stranded", "recovery_drain_time"]
    assert all(":15" in line or ":20" in line for line in failing)
    assert any(line.startswith("✓ delivered_ratio{window:1}") and "observed 1.0000 (100.0%)" in line for line in lines)
