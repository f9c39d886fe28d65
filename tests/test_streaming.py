"""Runs of any size: the ledger as columns, events and DSNs streamed to the results folder, Parquet twins.

The memory test runs a 24k-message scenario in a child process (memory
transport) and bounds how much its peak RSS grows during the run; the
design before streaming (every event kept as an object, a record, job and
process per message from the start, DSNs as ``email`` objects) grew by
134 MB on this scenario, the streaming one by about 35 MB. No timing is
asserted anywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulator import run_scenario
from simulator.analysis import Analysis, EventFold, RunFacts
from simulator.api import OUTPUT_FILES, REPORT_FILES, prepare_results
from simulator.engine import Pulse
from simulator.errors import ScenarioError
from simulator.events import read_event_rows, read_events
from simulator.ledger import LedgerBuilder, LedgerRows
from simulator.records.parquet import iter_parquet_events, iter_parquet_rows
from simulator.report import FIGURES, load_results

STREAMING = """\
name: streaming
seed: 3
clock: {start: 2024-03-04 00:00, end: 2024-03-06 00:00}
servers:
  - {name: mx, domains: [example.com]}
timeline:
  - {at: 2024-03-04 06:00, server: mx, event: backups, every: 6h}
  - {at: 2024-03-04 10:00, server: mx, event: crash, mode: refuse}
  - {at: 2024-03-04 12:00, server: mx, event: restore, backup: latest}
senders:
  - {name: postfix, count: 100, policy: postfix, traffic: {rate: 10/h, until: 2024-03-05 00:00}}
"""

SMALL = """\
name: small
seed: 7
clock: {start: 2024-03-04 00:00, end: 2024-03-06 00:00}
servers:
  - {name: mx1, domains: [example.com, example.org], preference: 10}
  - {name: mx2, domains: [example.com], preference: 20, relay: {policy: postfix}}
timeline:
  - {at: 2024-03-04 06:00, server: mx1, event: backup}
  - {at: 2024-03-04 09:00, server: mx1, event: crash, mode: refuse}
  - {at: 2024-03-04 10:00, server: mx2, event: fault, until: 2024-03-04 12:00, fault: {kind: capacity, sessions: 1, per_minute: 2}}
  - {at: 2024-03-04 15:00, server: mx1, event: restore, backup: latest}
senders:
  - {name: postfix, count: 3, policy: postfix, traffic: {rate: 4/h, until: 2024-03-05 00:00, to: example.com}}
  - {name: m365, count: 2, policy: microsoft365, traffic: {rate: 4/h, until: 2024-03-05 00:00, to: example.com}}
  - {name: short, count: 1, policy: {retry: "20m", lifetime: 2h}, traffic: {rate: 2/h, until: 2024-03-05 00:00, to: example.org}}
thresholds:
  delivered: ["count>0"]
  delivery_delay{sender:postfix}: ["p(95)<2d"]
"""

CHILD = textwrap.dedent(
    """
    import json, resource, sys, tempfile
    from simulator import run_scenario
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as out:
        run = run_scenario(sys.argv[1], transport="memory", out=out)
        messages = run.messages
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"messages": messages, "growth_kb": peak - before}))
    """
)


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_24k_message_run_stays_under_a_memory_ceiling(tmp_path):
    """Peak RSS grows by less than 80 MB over the run (the design before streaming: 134 MB on this scenario)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(write(tmp_path, STREAMING))],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["messages"] == 23964
    assert found["growth_kb"] < 80 * 1024, found


def test_events_stream_to_the_folder_and_nothing_is_kept(tmp_path):
    out = tmp_path / "out"
    run = run_scenario(write(tmp_path, SMALL), transport="memory", out=out)
    assert run.event_list is None and run.notifications == []
    assert run.fold is not None
    kept = run_scenario(write(tmp_path, SMALL), transport="memory")
    # the events read back from the file are the events a run keeps in memory
    assert run.events == kept.events
    assert run.messages_csv() == kept.messages_csv() == (out / "messages.csv").read_text()
    assert run.summary() == {**kept.summary(), "wall_seconds": run.summary()["wall_seconds"]}
    # every DSN made was written, as the run counted them
    mbox = (out / "notifications.mbox").read_bytes()
    assert mbox.count(b"From MAILER-DAEMON ") == run.summary()["notifications"] > 0


def test_parquet_holds_what_csv_holds(tmp_path):
    both = tmp_path / "both"
    run = run_scenario(write(tmp_path, SMALL), transport="memory", out=both, formats="both")
    csv_rows = (both / "messages.csv").read_text().splitlines()
    parquet_rows = list(iter_parquet_rows(both / "messages.parquet"))
    assert len(parquet_rows) == len(csv_rows) - 1 == run.messages
    header = csv_rows[0].split(",")
    first = dict(zip(header, csv_rows[1].split(","), strict=True))
    assert {k: str(v) for k, v in parquet_rows[0].items()} == first
    assert list(iter_parquet_events(both / "events.parquet")) == run.events
    # the report's reader gets the same analysis from either pair of files
    from_csv = load_results(both).summary
    only = tmp_path / "parquet"
    run_scenario(write(tmp_path, SMALL), transport="memory", out=only, formats="parquet")
    assert not (only / "messages.csv").exists() and not (only / "events.jsonl").exists()
    from_parquet = load_results(only).summary
    assert from_parquet == {**from_csv, "wall_seconds": from_parquet["wall_seconds"]}


def test_fold_reads_every_format_alike(tmp_path):
    out = tmp_path / "out"
    run = run_scenario(write(tmp_path, SMALL), transport="memory", out=out, formats="both")
    live = EventFold()
    for event in run.events:
        live.emit(event)
    from_jsonl, from_parquet = EventFold(), EventFold()
    from_jsonl.read_jsonl(out / "events.jsonl")
    from_parquet.read_parquet(out / "events.parquet")
    assert len(live.all_sessions()) > run.connections  # original senders, and the backup MX relaying
    for fold in (from_jsonl, from_parquet):
        assert fold.all_sessions() == live.all_sessions()
        assert {s: list(fold.turned_away(s)) for s in ("mx1", "mx2")} == {
            s: list(live.turned_away(s)) for s in ("mx1", "mx2")
        }
        assert fold.relay_left == live.relay_left and fold.marks == live.marks and fold.timeline == live.timeline
    assert sum(len(live.turned_away(s)) for s in ("mx1", "mx2")) > 0
    assert live.relay_left  # the backup MX passed mail on


def test_analysis_of_rows_equals_analysis_of_the_ledger(tmp_path):
    run = run_scenario(write(tmp_path, SMALL), transport="memory")
    builder = LedgerBuilder()
    for row in run.records:
        builder.add(row)
    rebuilt = builder.finish()
    facts = RunFacts(**{**vars(run.analysis.facts), "records": LedgerRows(rebuilt)})
    again = Analysis(facts)
    assert again.summary() == run.analysis.summary()
    assert again.queue_depth() == run.analysis.queue_depth()
    t = run.analysis.recovery_times[0][0]
    assert again.qshape(t, (5, 10, 20)) == run.analysis.qshape(t, (5, 10, 20))
    assert [r.message_id for r in again.records] == [r.message_id for r in run.records]


def test_prepare_results_clears_only_the_tools_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in (*OUTPUT_FILES, *REPORT_FILES, "notes.txt"):
        (out / name).write_text("old")
    prepare_results(out, "small", 7)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "summary.json"]
    assert json.loads((out / "summary.json").read_text()) == {"scenario": "small", "seed": 7, "status": "running"}
    run_scenario(write(tmp_path, SMALL), transport="memory", out=out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["messages"] > 0
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_report_files_are_the_reports_own():
    assert ("report.html", *FIGURES) == REPORT_FILES


def test_progress_line_says_where_the_run_is(tmp_path):
    from simulator.cli.progress import describe
    from simulator.clock import SimClock
    from simulator.loader import load_scenario

    clock = SimClock(load_scenario(write(tmp_path, SMALL)).clock)
    line = describe(Pulse(now=3600.0, end=7200.0, queued=41230, attempts=1200000, submitted=90000), clock, 52000.4)
    assert line == "2024-03-04T01:00:00  90,000 submitted  41,230 in queues  1,200,000 SMTP attempts  52,000/s"


@pytest.mark.parametrize("formats", ["xml"])
def test_an_unknown_format_is_refused(tmp_path, formats):
    with pytest.raises(ValueError, match="csv, parquet, both"):
        run_scenario(write(tmp_path, SMALL), transport="memory", out=tmp_path / "o", formats=formats)


def test_rows_named_otherwise_are_kept_as_they_are(tmp_path):
    """A ledger read back keeps no names while rows follow the engine's naming, and every name once one does not."""
    import dataclasses

    run = run_scenario(write(tmp_path, SMALL), transport="memory")
    rows = list(run.records)
    named = LedgerBuilder()
    for row in rows:
        named.add(row)
    assert named.finish().explicit is None
    odd = LedgerBuilder()
    changed = [*rows[:3], dataclasses.replace(rows[3], message_id="from-a-log-17", originator="x@y.example"), *rows[4:]]
    for row in changed:
        odd.add(row)
    ledger = odd.finish()
    assert ledger.explicit is not None
    assert [ledger.record(i).message_id for i in range(len(ledger))] == [r.message_id for r in changed]
    assert [ledger.originator(i) for i in range(len(ledger))] == [r.originator for r in changed]
    assert [ledger.recipient(i) for i in range(len(ledger))] == [r.recipient for r in changed]
    assert ledger.index_of("from-a-log-17") == 3


def test_both_event_readers_name_the_file_and_line_of_a_bad_event(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"t":0,"time":"2024-03-04T00:00:00","type":"submit","message":"m1","sender":"a"}\n'
        '{"t":1,"time":"2024-03-04T00:00:01","type":"attempt","message":"m1"}\n',
        encoding="utf-8",
    )
    expected = f"{path}:2: not an event of smtp-outage: attempt.sender: Field required"
    with pytest.raises(ScenarioError) as whole:
        list(read_events(path))
    with pytest.raises(ScenarioError) as rows:
        list(read_event_rows(path, frozenset({"attempt"})))
    assert str(whole.value) == str(rows.value) == expected
