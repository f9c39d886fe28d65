"""`smtp-outage import` on the sample logs: the skeleton validates and runs, the CSV reads, errors are one line."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator import run_scenario
from simulator.cli import app
from simulator.clock import SimClock
from simulator.loader import load_scenario
from simulator.maillog import synth
from simulator.scenario import Clock, TrafficSpec
from simulator.schema.inputs import read_traffic_csv

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "sample-maillog"
EXIM_SAMPLE = DATA / "sample-mainlog"
runner = CliRunner()
SAMPLE_ARGS = ("--format", "postfix", "--year", "2024", "--timezone", "Europe/Berlin")


def invoke(*args: object):
    return runner.invoke(app, ["import", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    """The sample imported as a scenario skeleton, outages left commented."""
    folder = tmp_path_factory.mktemp("skeleton")
    result = invoke(SAMPLE, *SAMPLE_ARGS, "--scenario", folder / "sample.yaml")
    assert result.exit_code == 0, result.stderr
    return folder / "sample.yaml", result.stdout


def test_the_sample_generator_is_deterministic_and_wrote_the_committed_samples():
    for path, fmt in ((SAMPLE, "postfix"), (EXIM_SAMPLE, "exim")):
        out = io.StringIO()
        synth.write_sample(out, synth.SampleLog(format=fmt))
        assert out.getvalue().encode("utf-8") == path.read_bytes(), (
            f"regenerate {path} with python -m simulator.maillog.synth"
        )


def test_the_skeleton_names_groups_rules_and_the_crash(skeleton):
    path, stdout = skeleton
    assert "sample-maillog (Postfix, host mx1): 5213 lines" in stdout
    assert "sample-maillog:2770: 'Mar  5 13:52:07 mx1 postfix/sm': not a syslog line" in stdout
    assert re.search(
        r"^  google +\d+ +\d+  gmail +rdns \*\.google\.com \(built-in organisations\.yaml\)$", stdout, re.M
    )
    assert re.search(r"^  other +\d+ +\d+  postfix +no organisation matched: --default-policy$", stdout, re.M)
    assert re.search(
        r"Postfix started again \(\S*sample-maillog:2772\) with no stop logged before it \(a crash or a reboot\)",
        stdout,
    )
    scenario = load_scenario(path)
    assert [s.name for s in scenario.servers] == ["mx1"] and scenario.servers[0].domains == [
        "example.org",
        "example.net",
    ]
    assert scenario.clock.timezone == "Europe/Berlin" and scenario.timeline == []
    assert {g.name for g in scenario.senders} == {
        "google",
        "microsoft365",
        "amazon-ses",
        "sendgrid",
        "mailgun",
        "yahoo",
        "other",
    }
    assert (path.parent / "sample-traffic" / "google.csv").is_file()


def test_the_skeleton_runs_and_its_uncommented_timeline_validates(skeleton, tmp_path):
    path, stdout = skeleton
    messages = int(re.search(r"^messages from other servers: (\d+),", stdout, re.M).group(1))
    run = run_scenario(path, transport="memory")
    assert run.analysis.messages == messages and run.counts["delivered"] == messages  # no outage applied
    text = path.read_text(encoding="utf-8")
    stub = re.findall(r"^  # (- \{at: .*)$", text, re.M)
    assert len(stub) == 3  # the full disk (a fault) and the crash (down, up)
    uncommented = re.sub(r"^  # (- \{at: .*)$", r"  \1", text, flags=re.M).replace("\n  []\n", "\n")
    edited = path.with_name("edited.yaml")
    edited.write_text(uncommented, encoding="utf-8")
    timeline = load_scenario(edited).timeline
    assert [e.event for e in timeline] == ["fault", "down", "up"]


def sent_during_the_outage(monkeypatch) -> int:
    """What the generator knows: messages sent while the disk was full or the server down, then delivered."""
    log, seen = synth.SampleLog(), []
    arrival = synth._arrival

    def spy(log, org, t, w, host, sender):
        found = arrival(log, org, t, w, host, sender)
        seen.append((t, found))
        return found

    monkeypatch.setattr(synth, "_arrival", spy)
    synth.write_sample(io.StringIO(), log)
    start, end = log.start + log.disk_full, log.start + log.restart
    return sum(1 for t, arrived in seen if start <= t < end and arrived is not None)


def test_backfill_moves_about_as_much_mail_into_the_crash_as_its_senders_had_queued(tmp_path, monkeypatch):
    truth = sent_during_the_outage(monkeypatch)
    assert truth == 94
    result = invoke(SAMPLE, *SAMPLE_ARGS, "--scenario", tmp_path / "sample.yaml", "--backfill")
    assert result.exit_code == 0, result.stderr
    moved = int(re.search(r"^  (\d+) of them moved from after an outage into it", result.stdout, re.M).group(1))
    # The log cannot say when a message was sent; the estimate from the rates before and after the
    # outage is within 20 % of what the generator knows.
    assert 0.8 * truth <= moved <= 1.2 * truth
    run = run_scenario(tmp_path / "sample.yaml", transport="memory")
    (recovery,) = run.analysis.recoveries
    assert recovery["server"] == "mx1" and recovery["backlog"] > 0
    assert run.counts["delivered"] == run.analysis.messages


def test_the_example_scenario_is_what_the_import_writes(tmp_path, monkeypatch):
    root = Path(__file__).parent.parent
    monkeypatch.chdir(root)
    target = tmp_path / "sample-maillog.yaml"
    result = invoke(SAMPLE.relative_to(root), *SAMPLE_ARGS, "--backfill", "--scenario", target)
    assert result.exit_code == 0, result.stderr
    example = root / "scenarios" / "sample-maillog.yaml"
    assert target.read_text(encoding="utf-8") == example.read_text(encoding="utf-8")
    written = sorted(p.name for p in (tmp_path / "sample-maillog-traffic").iterdir())
    committed = sorted(p.name for p in (root / "scenarios" / "sample-maillog-traffic").iterdir())
    assert written == committed
    for name in written:
        assert (tmp_path / "sample-maillog-traffic" / name).read_bytes() == (
            root / "scenarios" / "sample-maillog-traffic" / name
        ).read_bytes()


def test_one_traffic_csv_reads_as_a_group_with_one_mta_per_host(tmp_path):
    out = tmp_path / "traffic.csv"
    result = invoke(SAMPLE, *SAMPLE_ARGS, "--out", out)
    assert result.exit_code == 0, result.stderr
    count = int(re.search(r"give the sender group that reads it count: (\d+) ", result.stdout).group(1))
    clock = SimClock(Clock(start="2024-03-05 00:00", end="2024-03-07 00:00", timezone="Europe/Berlin"))
    found = read_traffic_csv(TrafficSpec(csv=str(out)), clock, base=None, group="g", count=count, domain="example.org")
    assert found.problems == []
    messages = int(re.search(r"^messages from other servers: (\d+),", result.stdout, re.M).group(1))
    assert len(found.arrivals) == messages and max(a.mta for a in found.arrivals) == count - 1


def test_a_rotated_and_gzipped_log_gives_the_same_traffic(tmp_path):
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    with gzip.open(tmp_path / "maillog.1.gz", "wb") as f:
        f.writelines(lines[:2500])
    (tmp_path / "maillog").write_bytes(b"".join(lines[2500:]))
    whole, rotated = tmp_path / "whole.csv", tmp_path / "rotated.csv"
    assert invoke(SAMPLE, *SAMPLE_ARGS, "--out", whole, "--key", "k").exit_code == 0
    result = invoke(tmp_path / "maillog", tmp_path / "maillog.1.gz", *SAMPLE_ARGS, "--out", rotated, "--key", "k")
    assert result.exit_code == 0, result.stderr
    assert rotated.read_bytes() == whole.read_bytes()


def test_the_exim_sample_imports_too(tmp_path):
    result = invoke(EXIM_SAMPLE, "--format", "exim", "--scenario", tmp_path / "exim.yaml")
    assert result.exit_code == 0, result.stderr
    assert re.search(
        r"Exim started again \(\S*sample-mainlog:19\) with no stop logged before it \(Exim logs no stop\)",
        result.stdout,
    )
    assert load_scenario(tmp_path / "exim.yaml").clock.timezone is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "--format", "postfix", "--out", "x.csv"), "nope: cannot read the log: no such file"),
        ((SAMPLE, "--format", "qmail", "--out", "x.csv"), "--format: expected postfix or exim, got 'qmail'"),
        ((SAMPLE, "--format", "postfix"), "import: give either --out traffic.csv or --scenario NEW.yaml"),
        (
            (SAMPLE, "--format", "postfix", "--timezone", "Mars/Olympus", "--out", "x.csv"),
            "--timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin",
        ),
        (
            (SAMPLE, "--format", "postfix", "--from", "yesterday", "--out", "x.csv"),
            "--from: expected a timestamp such as 2024-03-05 08:00, got 'yesterday'",
        ),
        (
            (SAMPLE, "--format", "postfix", "--default-policy", "gmial", "--out", "x.csv"),
            "--default-policy: unknown preset 'gmial'; see smtp-outage policies list",
        ),
        (
            (EXIM_SAMPLE, "--format", "postfix", "--out", "x.csv"),
            "no Postfix log lines in 1916 line(s) of 1 file(s): is it another log, or another MTA's (try --format exim)?",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.endswith(message)
