"""Every output of a run agrees with every other, for small random scenarios.

Hypothesis draws scenarios (``tests.strategies``): 1-3 MX hosts of one
domain, outages, crashes with backups, restores and disks recovered or lost,
faults, mixed sender presets. Each runs in memory; then the ledger, the
summary (in memory and as ``summary.json``), the threshold metrics, the CLI's
tables (from ``smtp-outage run`` on the scenario written as YAML), and the
report's tables must all give the same numbers. A few scenarios also run over
real SMTP, and their ledger must be byte-identical to the in-memory one.
The smallest disagreements found so far are kept below as plain tests.
"""

from __future__ import annotations

import json
import math
import re
import struct
import tempfile
import zlib
from collections import Counter
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from matplotlib.figure import Figure
from rich.console import Console
from typer.testing import CliRunner

from simulator import Scenario, cli, run_scenario
from simulator.api import Run
from simulator.cli import app
from simulator.report import write_report
from simulator.report.data import load_results
from simulator.schema.states import STATES

from .strategies import DOMAIN, scenarios, thresholds_for

runner = CliRunner()

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------- reading the outputs back
def _png() -> bytes:
    """A 1x1 white PNG: what the report's figures are replaced with where only its tables matter."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
        + chunk(b"IEND", b"")
    )


PNG = _png()


def _placeholder(fig: Figure, path: Any, *args: Any, **kwargs: Any) -> None:
    Path(path).write_bytes(PNG)


class _HtmlTables(HTMLParser):
    """Every cell of every ``<table id=...>``, header row first: its text, and its ``data-seconds`` if any."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._seconds: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id"):
            self._table = found["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            self._seconds = found.get("data-seconds")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append((" ".join("".join(self._cell).split()), self._seconds))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(page: Path) -> dict[str, list[dict[str, tuple[str, str | None]]]]:
    """Each id'd table of *page* as rows keyed by header text; a cell is ``(text, data-seconds)``."""
    parser = _HtmlTables()
    parser.feed(page.read_text(encoding="utf-8"))
    out = {}
    for name, rows in parser.tables.items():
        head, *body = rows
        out[name] = [dict(zip((text for text, _ in head), row, strict=True)) for row in body]
    return out


def rich_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The tables rich drew in *text*, by title, as rows keyed by header text."""
    lines = text.splitlines()
    out: dict[str, list[dict[str, str]]] = {}
    i = 0
    while i < len(lines):
        if not lines[i].startswith("┏"):
            i += 1
            continue
        title = lines[i - 1].strip()
        i += 1
        head: list[str] = []
        while lines[i].startswith("┃"):
            cells = [c.strip() for c in lines[i].strip()[1:-1].split("┃")]
            head = cells if not head else [f"{a} {b}".strip() for a, b in zip(head, cells, strict=True)]
            i += 1
        rows = []
        while i < len(lines) and not lines[i].startswith(("└", "┗")):
            if lines[i].startswith("│"):
                rows.append(dict(zip(head, [c.strip() for c in lines[i].strip()[1:-1].split("│")], strict=True)))
            i += 1
        out[title] = rows
    return out


def number(cell: str) -> int:
    """The count in a table cell such as ``12 (40%)``."""
    match = re.match(r"^(\d+)", cell)
    assert match, f"no count in table cell {cell!r}"
    return int(match.group(1))


# ---------------------------------------------------------------- what each threshold must observe
NO_SUMMARY_NUMBER = object()
"""What ``expected_observation`` returns for a threshold that summary.json has no number for."""

RECOVERY_FIELDS = {
    "recovery_backlog": "backlog",
    "recovery_backlog_senders": "backlog_senders",
    "recovery_backlog_relays": "backlog_relays",
    "recovery_peak_attempts": "peak_attempts_per_minute",
    "recovery_drain_time": "drained_seconds",
}


def expected_observation(key: str, aggregation: str, summary: dict[str, Any]) -> Any:
    """The value a threshold on *key* must observe, read from ``summary.json`` alone."""
    name, _, tag = key.partition("{")
    kind, _, value = tag.rstrip("}").partition(":")
    counts, messages = summary["counts"], summary["messages"]
    if name in RECOVERY_FIELDS:
        storms = [r for r in summary["recoveries"] if kind != "server" or r["server"] == value]
        values = [math.inf if r[RECOVERY_FIELDS[name]] is None else float(r[RECOVERY_FIELDS[name]]) for r in storms]
        if not values:
            return None
        return max(values) if aggregation == "max" else min(values)
    if name == "delivery_delay":
        delays = summary["delivery_delay"].get(value)
        return None if delays is None else delays[{"max": "max", "p(50)": "p50", "p(95)": "p95"}[aggregation]]
    if name in ("delayed", "delayed_ratio"):
        if "delayed" not in summary:  # only when a server's delivery into the mailboxes was not immediate
            return NO_SUMMARY_NUMBER
        n = summary["delayed"][value]
        return float(n) if name == "delayed" else (n / messages if messages else None)
    if name == "turned_away":
        return float(summary["turned_away"][value] if kind == "server" else sum(summary["turned_away"].values()))
    if kind == "sender":
        scoped = summary["by_policy"].get(value, dict.fromkeys(STATES, 0))
        return float(sum(scoped.values()) if name == "messages" else scoped[name])
    if kind == "window":
        window = summary["windows"][int(value) - 1]
        return float(window["messages"] if name == "messages" else window["counts"][name])
    assert not kind, key
    if name in STATES:
        return float(counts[name])
    if name.endswith("_ratio"):
        return counts[name.removesuffix("_ratio")] / messages if messages else None
    return float(summary[name])


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as JSON holds it, without the one number that differs from run to run."""
    return {k: v for k, v in json.loads(json.dumps(summary)).items() if k != "wall_seconds"}


# ---------------------------------------------------------------- the checks
def check_ledger(run: Run, summary: dict[str, Any]) -> None:
    """1. Every message in exactly one of the five states; the counts add up."""
    ids = [r.message_id for r in run.records]
    assert len(ids) == len(set(ids)), "a message appears twice in the ledger"
    assert all(r.final_state in STATES for r in run.records)
    counted = Counter(r.final_state for r in run.records)
    assert summary["counts"] == {s: counted.get(s, 0) for s in STATES}
    assert sum(summary["counts"].values()) == len(run.records) == summary["messages"]
    assert summary["attempts"] == sum(r.attempts for r in run.records)
    assert summary["connections"] == sum(r.connections for r in run.records)
    assert summary["duplicates"] == sum(1 for r in run.records if r.copies > 1)
    assert summary["delay_warnings"] == sum(r.delay_warnings for r in run.records)


def check_summary(run: Run, summary: dict[str, Any], folder: Path) -> None:
    """2. summary.json is run.summary(); windows and sender groups add up."""
    assert json.loads((folder / "summary.json").read_text(encoding="utf-8")) == json.loads(json.dumps(run.summary()))
    ledger = (folder / "messages.csv").read_text(encoding="utf-8")
    assert ledger == run.messages_csv()
    assert len(ledger.splitlines()) == 1 + summary["messages"]
    for w in summary["windows"]:
        assert sum(w["counts"].values()) == w["messages"], w["label"]
        lo, hi = (run.clock.seconds(datetime.fromisoformat(w[k])) for k in ("from", "to"))
        inside = [r for r in run.records if lo <= r.submitted_at < hi]
        assert w["messages"] == len(inside), w["label"]
        assert w["counts"] == {s: sum(1 for r in inside if r.final_state == s) for s in STATES}, w["label"]
    by_policy = summary["by_policy"]
    assert {s: sum(c[s] for c in by_policy.values()) for s in STATES} == summary["counts"]
    assert list(summary["policies"]) == list(by_policy)
    for group, delays in summary["delivery_delay"].items():
        mine = [r.accepted_at - r.submitted_at for r in run.records if r.group == group and r.accepted_at is not None]
        assert delays["count"] == len(mine), group
        assert delays["max"] == max(mine), group


def check_windows_cover_the_clock(run: Run, summary: dict[str, Any], *, until_end: bool = False) -> None:
    """Windows derived from the timeline cut the whole clock: every message sent before its end
    (or, with *until_end*, at its end too) falls in exactly one."""
    if run.scenario.windows:
        return
    sent = [r for r in run.records if until_end or r.submitted_at < run.clock.end]
    outside = [run.clock.iso(r.submitted_at) for r in sent if not run.analysis.window_of(r.submitted_at)]
    held = sum(w["messages"] for w in summary["windows"])
    assert held == len(sent), f"{len(sent)} messages, {held} in the windows; sent outside every window: {outside}"


def check_thresholds(run: Run, summary: dict[str, Any], folder: Path) -> None:
    """3. Each threshold observes the number summary.json shows for it."""
    outcomes = run.thresholds()
    assert len(outcomes) == sum(len(v) for v in run.scenario.thresholds.values())
    written = json.loads((folder / "thresholds.json").read_text(encoding="utf-8"))["thresholds"]
    assert [(o["metric"], o["expression"]) for o in written] == [
        (o.threshold.key, o.threshold.expression) for o in outcomes
    ]
    for o, w in zip(outcomes, written, strict=True):
        want = expected_observation(o.threshold.key, o.threshold.aggregation, summary)
        assert w["ok"] == o.ok, o.threshold.key
        if want is NO_SUMMARY_NUMBER:
            continue
        assert o.observed == want, (
            f"{o.threshold.key} {o.threshold.expression}: observed {o.observed}, summary.json says {want}"
        )
        assert w["observed"] == (None if want is None or math.isinf(want) else want), o.threshold.key


def check_cli(run: Run, summary: dict[str, Any], data: dict[str, Any], folder: Path) -> None:
    """4. ``smtp-outage run SCENARIO.yaml --memory`` gives the same results, and its tables the same numbers."""
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out = folder / "cli"
    # The CLI's own console where stdout is not a terminal, whatever stdout was when it was imported.
    with mock.patch.object(cli, "out", Console(width=4096, soft_wrap=True)):
        result = runner.invoke(app, ["run", str(path), "--memory", "--out", str(out), "--no-report"])
    failed = any(not o.ok for o in run.thresholds())
    assert result.exit_code == (99 if failed else 0), result.output
    assert comparable(json.loads((out / "summary.json").read_text(encoding="utf-8"))) == comparable(summary)
    assert (out / "messages.csv").read_text(encoding="utf-8") == run.messages_csv()

    text = result.stdout
    head = re.search(r"(\d+) messages, (\d+) attempts \((\d+) ", text)
    assert head, text
    assert tuple(map(int, head.groups())) == (summary["messages"], summary["attempts"], summary["connections"])
    tables = rich_tables(text)
    (overall,) = tables["What happened to the mail"]
    assert number(overall["messages"]) == summary["messages"]
    assert {s: number(overall[s]) for s in STATES} == summary["counts"]

    by_time = tables["By submission time"]
    assert [row["sent or received"] for row in by_time] == [w["label"] for w in summary["windows"]]
    for row, w in zip(by_time, summary["windows"], strict=True):
        assert number(row["messages"]) == w["messages"], w["label"]
        assert {s: number(row[s]) for s in STATES} == w["counts"], w["label"]

    by_sender = tables["By sender"]
    labels = [g if p == g else f"{g} ({p})" for g, p in summary["policies"].items()]
    assert [row["sender group (policy)"] for row in by_sender] == labels
    for row, counts in zip(by_sender, summary["by_policy"].values(), strict=True):
        assert number(row["messages"]) == sum(counts.values())
        assert {s: number(row[s]) for s in STATES} == counts

    delays = tables.get("Delivery delay (submission to first 250)", [])
    assert [row["sender group"] for row in delays] == list(summary["delivery_delay"])
    for row, d in zip(delays, summary["delivery_delay"].values(), strict=True):
        assert number(row["delivered"]) == d["count"]

    storms = tables.get("Recovery storms", [])
    assert len(storms) == len(summary["recoveries"])
    for row, r in zip(storms, summary["recoveries"], strict=True):
        assert row["server"] == r["server"]
        assert row["back at"] == r["at"].replace("T", " ")[:16]
        assert number(row["backlog"]) == r["backlog"], r
        assert number(row["in senders' queues"]) == r["backlog_senders"], r
        assert number(row["on backup MX"]) == r["backlog_relays"], r
        assert number(row["peak/min"]) == r["peak_attempts_per_minute"], r
        assert number(row["first hour"]) == r["attempts_first_hour"], r
        assert number(row["turned away"]) == r["turned_away_421"], r
        assert (row["all drained"] == "not drained") == (r["drained_seconds"] is None), r


def check_report(summary: dict[str, Any], folder: Path) -> None:
    """5. The results folder read back, and report.html made from it, show the summary's numbers."""
    assert comparable(load_results(folder).analysis.summary()) == comparable(summary)
    page = write_report(folder)
    tables = html_tables(page)

    windows = tables["windows-table"]
    assert [row["sent"][0] for row in windows] == [w["label"] for w in summary["windows"]]
    for row, w in zip(windows, summary["windows"], strict=True):
        assert number(row["messages"][0]) == w["messages"], w["label"]
        assert {s: number(row[s][0]) for s in STATES} == w["counts"], w["label"]

    senders = tables["senders-table"]
    assert [row["sender group"][0] for row in senders] == list(summary["by_policy"])
    for row, (group, counts) in zip(senders, summary["by_policy"].items(), strict=True):
        assert row["policy"][0] == summary["policies"][group]
        assert number(row["messages"][0]) == sum(counts.values())
        assert {s: number(row[s][0]) for s in STATES} == counts, group

    storms = tables.get("storms-table", [])
    assert len(storms) == len(summary["recoveries"])
    for row, r in zip(storms, summary["recoveries"], strict=True):
        assert row["server"][0] == r["server"]
        assert number(row["backlog"][0]) == r["backlog"], r
        assert number(row["in senders' queues"][0]) == r["backlog_senders"], r
        assert number(row["on backup MX"][0]) == r["backlog_relays"], r
        assert number(row["peak sessions/min"][0]) == r["peak_attempts_per_minute"], r
        assert number(row["sessions, first hour"][0]) == r["attempts_first_hour"], r
        assert number(row["turned away"][0]) == r["turned_away_421"], r
        for column, key in (("90% drained after", "drained_90_seconds"), ("all drained after", "drained_seconds")):
            seconds = row[column][1]
            assert (float(seconds) if seconds else None) == r[key], (column, r)


def check_all(data: dict[str, Any]) -> None:
    """Run *data* in memory and check that every output agrees with every other (1-5)."""
    scenario = Scenario.model_validate(data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = run_scenario(scenario, transport="memory", out=folder)
        summary = run.summary()
        check_ledger(run, summary)
        check_summary(run, summary, folder)
        check_windows_cover_the_clock(run, summary)
        check_thresholds(run, summary, folder)
        check_cli(run, summary, data, folder)
        # The figures are drawn but not rasterised: only the report's tables are read here.
        with mock.patch.object(Figure, "savefig", _placeholder):
            check_report(summary, folder)


# ---------------------------------------------------------------- the properties
@PROPERTY
@given(data=scenarios())
def test_every_output_agrees(data: dict[str, Any]) -> None:
    check_all(data)


def eventful(data: dict[str, Any]) -> bool:
    """A scenario worth the sockets: a server goes down or crashes, among other entries."""
    return len(data["timeline"]) >= 3 and any(e["event"] in ("down", "crash") for e in data["timeline"])


@pytest.mark.wire
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=scenarios().filter(eventful))
def test_wire_ledger_is_byte_identical_to_memory(data: dict[str, Any]) -> None:
    scenario = Scenario.model_validate(data)
    memory = run_scenario(scenario, transport="memory")
    wire = run_scenario(scenario, transport="wire")
    assert wire.messages_csv().encode() == memory.messages_csv().encode()


# ---------------------------------------------------------------- the smallest disagreements found
def small(
    servers: list[dict[str, Any]], timeline: list[dict[str, Any]], senders: list[dict[str, Any]], end: str
) -> dict[str, Any]:
    """A scenario as the strategy draws them, with its thresholds."""
    data = {
        "name": "prop",
        "seed": 0,
        "clock": {"start": "2011-10-26 00:00", "end": end},
        "servers": servers,
        "timeline": timeline,
        "senders": senders,
    }
    data["thresholds"] = thresholds_for(data)
    return data


DROPPED_AFTER_COMMIT_THEN_BOUNCED = small(
    servers=[{"name": "mx", "domains": [DOMAIN]}],
    timeline=[
        {
            "at": "2011-10-26 00:00",
            "server": "mx",
            "event": "fault",
            "fault": {"kind": "accept-then-drop"},
            "until": "2011-10-26 01:00",
        },
        {"at": "2011-10-26 02:00", "server": "mx", "event": "down"},
        {"at": "2011-10-26 03:00", "server": "mx", "event": "up"},
    ],
    senders=[{"name": "s", "policy": {"retry": "10m", "lifetime": "30m"}, "traffic": {"at": ["2011-10-26 00:00"]}}],
    end="2011-10-26 06:00",
)

BACKUP_MX_GETS_A_550 = small(
    servers=[
        {"name": "mx", "domains": [DOMAIN], "preference": 10},
        {"name": "backup", "domains": [DOMAIN], "preference": 20, "relay": {"policy": "postfix"}},
    ],
    timeline=[
        {"at": "2011-10-26 00:00", "server": "mx", "event": "down"},
        {
            "at": "2011-10-26 00:00",
            "server": "mx",
            "event": "fault",
            "fault": {"kind": "reply", "stage": "rcpt", "code": 550},
        },
        {"at": "2011-10-26 01:00", "server": "mx", "event": "up"},
    ],
    senders=[{"name": "s", "policy": "postfix", "traffic": {"at": ["2011-10-26 00:30"]}}],
    end="2011-10-26 06:00",
)

SENT_AT_THE_CLOCKS_END = small(
    servers=[{"name": "mx", "domains": [DOMAIN]}],
    timeline=[],
    senders=[{"name": "s", "policy": "postfix", "traffic": {"at": ["2011-10-26 00:00", "2011-10-26 06:00"]}}],
    end="2011-10-26 06:00",
)


def test_a_message_the_sender_gave_up_on_after_dropped_commits_agrees_everywhere() -> None:
    """The sender bounces at 00:30 a message the server committed four times (00:00 to 00:30, each
    connection dropped before the 250), so it is delivered, with copies, and bounced. summary.json counts no backlog when mx
    comes back at 03:00; the folder's messages.csv has no bounce time for a delivered message, and the
    report counts it waiting in the sender's queue, never drained."""
    check_all(DROPPED_AFTER_COMMIT_THEN_BOUNCED)


def test_a_backup_mx_that_gets_a_550_when_it_forwards_leaves_a_final_state() -> None:
    """The backup MX accepts at 00:30 while mx is down and forwards at 01:00 into a 550 at RCPT."""
    check_all(BACKUP_MX_GETS_A_550)


def test_windows_hold_a_message_sent_at_the_clocks_end() -> None:
    """Sent at 00:00 and at 06:00, the clock's end: summary.json counts 2 messages, and its one window
    ("all mail", 00:00 to 06:00, closed at the clock's end) holds both; messages.csv gives both a window."""
    run = run_scenario(Scenario.model_validate(SENT_AT_THE_CLOCKS_END), transport="memory")
    check_windows_cover_the_clock(run, run.summary(), until_end=True)
