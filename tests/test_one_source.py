"""One fact, one place: routing, backlog, policy labels, event files and metrics agree everywhere.

Expected values are worked out by hand in each test from the scenario's
timeline and the policies' documented schedules.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from pathlib import Path

from typer.testing import CliRunner

from simulator import run_scenario
from simulator.cli import app
from simulator.events import AttemptEvent, read_events
from simulator.report.data import load_results
from simulator.schema.thresholds import METRICS
from simulator.thresholds import SAMPLERS

from .conftest import make_scenario, sender

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def relay_scenario(**changes):
    """A primary MX that refuses until 02:00 and a backup MX (relay, Postfix) that is down until 01:15.

    Message A (01:00) finds both down and waits in its sender's queue; its
    schedule retries at 02:00, when the primary is back. Message B (01:30) is
    refused by the primary and taken by the backup at 01:30. The backup's
    Postfix retries on its 5-minute scan grid with age-clamped backoff:
    01:30 refused (age 0, next not before 01:34:59) -> 01:35 (age 5m) -> 01:40
    (age 10m) -> 01:50 (age 20m, next not before 02:09:59) -> 02:10, accepted
    by the primary.
    """
    base = {
        "servers": [
            {"name": "primary", "domains": ["atnex.example"], "preference": 10, "initially": "refuse"},
            {
                "name": "backup",
                "domains": ["atnex.example"],
                "preference": 20,
                "initially": "refuse",
                "relay": {"policy": "postfix"},
            },
        ],
        "timeline": [
            {"at": "2011-10-26 01:15", "server": "backup", "event": "up"},
            {"at": "2011-10-26 02:00", "server": "primary", "event": "up"},
        ],
        "senders": [
            sender("a", {"retry": "1h", "lifetime": "1d"}, at=["2011-10-26 01:00"]),
            sender("b", {"retry": "1h", "lifetime": "1d"}, at=["2011-10-26 01:30"]),
        ],
    }
    base.update(changes)
    return make_scenario(**base)


def test_recovery_backlog_counts_mail_held_on_the_backup_mx(tmp_path):
    run = run_scenario(relay_scenario(), transport="memory", out=tmp_path)
    a, b = run.records
    assert (a.accepted_by, run.clock.iso(a.accepted_at)) == ("primary", "2011-10-26T02:00:00")
    assert (b.accepted_by, run.clock.iso(b.accepted_at)) == ("backup", "2011-10-26T01:30:00")
    # B passed through the backup: one copy for its reader, not a duplicate.
    assert [r.copies for r in run.records] == [1, 1] and run.summary()["duplicates"] == 0
    assert [s.server for s in run.analysis.storms] == ["backup", "primary"]
    (storm,) = [r for r in run.summary()["recoveries"] if r["server"] == "primary"]
    assert (storm["backlog_senders"], storm["backlog_relays"], storm["backlog"]) == (1, 1, 2)
    assert storm["drained_seconds"] == 600.0  # B left the backup at 02:10
    assert storm["drained_90_seconds"] == 600.0  # 90% of 2 is both
    # The same numbers from the folder alone, as the report reads them.
    folder = load_results(tmp_path).analysis
    assert folder.recoveries == run.analysis.recoveries
    assert json.loads((tmp_path / "summary.json").read_text())["recoveries"] == run.summary()["recoveries"]
    # ... and as thresholds measure them.
    scenario = relay_scenario(
        thresholds={
            "recovery_backlog{server:primary}": ["max==2"],
            "recovery_backlog_relays{server:primary}": ["max==1"],
            "recovery_backlog_senders{server:primary}": ["max==1"],
            "recovery_drain_time{server:primary}": ["max==10m"],
        }
    )
    outcomes = run_scenario(scenario, transport="memory").thresholds()
    assert [(o.observed, o.ok) for o in outcomes] == [(2.0, True), (1.0, True), (1.0, True), (600.0, True)]


def test_destination_is_the_primary_wherever_it_is_asked():
    """Report, thresholds and summary route a domain to its most preferred non-relay MX host, even when a
    relay is listed last or first in the file, and follow a DNS change on the timeline."""
    servers = [
        {"name": "backup", "domains": ["atnex.example"], "preference": 20, "relay": {"policy": "postfix"}},
        {"name": "old", "domains": ["atnex.example"], "preference": 10},
        {"name": "new", "domains": ["atnex.example"], "preference": 15},
    ]
    scenario = make_scenario(
        servers=servers,
        timeline=[{"at": "2011-10-26 12:00", "event": "dns", "domain": "atnex.example", "mx": ["new", "backup"]}],
        senders=[sender("s", "postfix", at=["2011-10-26 01:00", "2011-10-26 13:00"])],
    )
    run = run_scenario(scenario, transport="memory")
    early, late = run.records
    assert [run.analysis.destination(r) for r in (early, late)] == ["old", "new"]


def test_two_settings_of_one_preset_are_two_policies(tmp_path):
    """``{preset: postfix}`` and the same with a 1-day lifetime: distinct labels, give-up times and tags.

    With the server refusing all run long and ``delay_warning_time: 4h``, the
    short group's delay warning must promise retries only until its own
    give-up time: arrival + 1 day, rounded up to Postfix's next 5-minute scan
    after the first failure at or past 1 day (1d + 40m here: 88,800 s).
    """
    long_policy = {"preset": "postfix", "delay_warning_time": "4h"}
    short_policy = {"preset": "postfix", "delay_warning_time": "4h", "maximal_queue_lifetime": "1d"}
    short_label = "postfix(delay_warning_time=4h,maximal_queue_lifetime=1d)"
    scenario = make_scenario(
        servers=[{"name": "mx", "domains": ["atnex.example"], "initially": "refuse"}],
        clock={"start": "2011-10-26 00:00", "end": "2011-10-28 00:00"},
        senders=[
            sender("long", long_policy, at=["2011-10-26 00:00"]),
            sender("short", short_policy, at=["2011-10-26 00:00"]),
        ],
        thresholds={
            f'bounced{{policy:"{short_label}"}}': ["count==1"],
            "bounced{policy:postfix(delay_warning_time=4h)}": ["count==0"],
        },
    )
    run = run_scenario(scenario, transport="memory", out=tmp_path)
    by_group = {r.group: r for r in run.records}
    assert by_group["long"].policy == "postfix(delay_warning_time=4h)"
    assert by_group["short"].policy == short_label
    assert by_group["short"].final_state == "bounced" and by_group["long"].final_state == "queued"
    assert run.clock.iso(by_group["short"].final_at) == "2011-10-27T00:40:00"
    assert [(o.observed, o.ok) for o in run.thresholds()] == [(1.0, True), (0.0, True)]
    timeline = json.loads((tmp_path / "timeline.json").read_text())
    gives_up = {s["name"]: s["gives_up_after"] for s in timeline["senders"]}
    assert gives_up["short"] == 88800.0 and gives_up["long"] > 4 * 86400
    # The delay warnings in notifications.mbox: each promises its own group's give-up time.
    promised = {}
    for chunk in (tmp_path / "notifications.mbox").read_bytes().split(b"\nFrom MAILER-DAEMON ")[0:]:
        note = message_from_bytes(chunk.split(b"\n", 1)[1])
        for part in note.walk():
            if part.get_content_type() == "message/delivery-status":
                text = part.as_string()
                until = re.search(r"Will-Retry-Until: (.+)", text)
                rcpt = re.search(r"Original-Envelope-Id: (\S+)", text)
                if until and rcpt:
                    promised[rcpt.group(1)] = parsedate_to_datetime(until.group(1).strip())
    short_until = promised[by_group["short"].message_id].replace(tzinfo=None)
    assert short_until.isoformat() == "2011-10-27T00:40:00"
    assert promised[by_group["long"].message_id].replace(tzinfo=None).isoformat() > "2011-10-30"


def test_events_file_reads_the_same_whatever_its_json_spacing(tmp_path):
    run = run_scenario(relay_scenario(), transport="memory", out=tmp_path)
    compact = list(read_events(tmp_path / "events.jsonl"))
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text(
        "".join(
            json.dumps(json.loads(line), indent=None) + "\n"
            for line in (tmp_path / "events.jsonl").read_text().splitlines()
        )
    )
    assert ", " in spaced.read_text() and list(read_events(spaced)) == compact
    attempts = [e for e in compact if isinstance(e, AttemptEvent)]
    assert (
        len(attempts) == sum(r.connections for r in run.records) + len([e for e in compact if e.type == "relayed"]) + 4
    )  # the backup's forwards of B: four refused (01:30, 01:35, 01:40, 01:50), one relayed at 02:10
    # A rewritten file reports the same storms.
    (tmp_path / "events.jsonl").write_text(spaced.read_text())
    assert load_results(tmp_path).analysis.recoveries == run.analysis.recoveries


def test_every_metric_has_its_own_measure():
    assert set(SAMPLERS) == set(METRICS)
    names = {f.__qualname__ for f in SAMPLERS.values()}
    assert len(SAMPLERS) > 20 and names  # one sampler per name; none falls through to another metric


def test_attempts_per_message_and_a_counter_are_measured_as_themselves():
    scenario = relay_scenario(
        thresholds={"attempts_per_message": ["max==3"], "connections": ["count==5"], "messages": ["count==2"]}
    )
    run = run_scenario(scenario, transport="memory")
    # A: primary and backup refused at 01:00, primary accepts at 02:00 (3 attempts). B: primary refused at
    # 01:30, backup accepts (2 attempts). Connections of original senders: 3 + 2.
    assert [r.attempts for r in run.records] == [3, 2]
    assert [(o.observed, o.ok) for o in run.thresholds()] == [(3.0, True), (5.0, True), (2.0, True)]


def test_memory_run_output_does_not_claim_the_wire_and_is_not_folded(tmp_path):
    scenario = ROOT / "tests" / "data" / "small-incident.yaml"
    result = runner.invoke(app, ["run", str(scenario), "--memory", "--no-report", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "on the wire" not in result.stdout and "in memory" in result.stdout
    # In a pipe, no line is broken mid-phrase: the results line keeps its four file names on one line.
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("results: ")]
    assert line.endswith("messages.csv, summary.json, events.jsonl, timeline.json")


def test_version_and_plain_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"smtp-outage \d+\.\d+\.\d+\S*\n", result.stdout)
    helptext = runner.invoke(app, ["run", "--help"]).stdout
    assert "--memory" in helptext and "<bool>" not in helptext


def test_no_import_cycles_and_no_layer_broken():
    """The layers of DESIGN.md, checked by the project's layer tool, plus a cycle check of our own."""
    import ast

    package = ROOT / "simulator"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        module = ".".join(parts)
        base = parts if is_package else parts[:-1]
        found = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join([*anchor, *([node.module] if node.module else [])])
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("simulator"):
                found.add(node.module or "")
    modules = set(graph)
    edges = {m: {t for t in graph[m] if t in modules and t != m and not m.startswith(t + ".")} for m in modules}
    # Depth-first search for a cycle (a package's own __init__ re-exports excluded above).
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle.extend([*path[path.index(t) :], t] if t in path else [m, t])
                return True
            if t not in state and visit(t, [*path, t]):
                return True
        state[m] = 2
        return False

    assert not any(visit(m, [m]) for m in sorted(modules) if m not in state), " -> ".join(cycle)
    tool = ROOT.parent / "shared" / "tools" / "layers.py"
    if tool.is_file():
        done = subprocess.run([sys.executable, str(tool)], cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout


def fallback_scenario(policy):
    """The primary refuses all run long; a healthy backup MX (a relay) takes mail. Messages at 01:00, 01:05
    (while Exim's record for the primary is in retry wait: F,2h,15m puts its next try at 01:15) and 01:30."""
    return make_scenario(
        servers=[
            {"name": "primary", "domains": ["atnex.example"], "preference": 10, "initially": "refuse"},
            {"name": "backup", "domains": ["atnex.example"], "preference": 20, "relay": {"policy": "postfix"}},
        ],
        clock={"start": "2011-10-26 00:00", "end": "2011-10-26 06:00"},
        senders=[sender("s", policy, at=["2011-10-26 01:00", "2011-10-26 01:05", "2011-10-26 01:30"])],
    )


def test_every_mta_falls_back_to_a_healthy_backup_mx_at_once():
    """Exchange tries the next hop's MX hosts in turn before its queue goes to Retry; Exim skips only hosts in
    retry wait. Every message reaches the backup MX at its first attempt, whether or not the primary is then in
    the sender's retry wait."""
    for policy in ("exchange", "exim", "postfix", "sendmail", "qmail", "gmail"):
        run = run_scenario(fallback_scenario(policy), transport="memory")
        accepted = [(r.accepted_by, run.clock.iso(r.accepted_at)) for r in run.records]
        expected = [("backup", f"2011-10-26T01:{m}:00") for m in ("00", "05", "30")]
        assert accepted == expected, policy
        assert all(r.final_state == "queued" for r in run.records), policy  # held on the backup at the end
        suspended = [e for e in run.events if e.type == "suspended" and e.sender.startswith("s-")]
        assert all(e.server == "primary" for e in suspended), policy
