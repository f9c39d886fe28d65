"""Bad scenario files: one clear line per problem, with file and line, exit code 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulator import ScenarioError, load_scenario

GOOD = """\
name: t
clock:
  start: 2011-10-26 00:00
  end: 2011-10-28 00:00
servers:
  - name: mx
    domains: [atnex.example]
timeline:
  - at: 2011-10-26 10:00
    server: mx
    event: backup
  - at: 2011-10-26 12:00
    server: mx
    event: crash
senders:
  - name: s
    policy: {retry: "30m", lifetime: 1d}
    traffic: {rate: 2/h}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


def test_good_file_loads(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.name == "t" and len(scenario.timeline) == 2


def test_unknown_key_is_reported_at_its_line(tmp_path):
    path = write(tmp_path, GOOD.replace("    event: crash", "    event: crash\n    mdoe: refuse"))
    assert problems(path) == [
        f"{path}:15: timeline.1.mdoe: unknown key 'mdoe' (did you mean 'mode'?); the keys here are: at, server, note, event, mode"
    ]


def test_wrong_type_is_reported_at_its_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  - name: s\n", "  - name: s\n    count: many\n"))
    assert problems(path) == [f"{path}:17: senders.0.count: expected a whole number, got 'many'"]


def test_timestamps_out_of_order(tmp_path):
    path = write(tmp_path, GOOD.replace("2011-10-26 12:00", "2011-10-26 09:00"))
    (line,) = problems(path)
    assert line.startswith(f"{path}:12: timeline.1.at: 2011-10-26 09:00:00 is earlier than the entry before it")


def test_unknown_server_name(tmp_path):
    path = write(tmp_path, GOOD.replace("    server: mx\n    event: crash", "    server: mx2\n    event: crash"))
    (line,) = problems(path)
    assert line == f"{path}:13: timeline.1.server: no server named 'mx2'; servers are: mx"


def test_several_problems_each_on_its_own_line(tmp_path):
    text = GOOD.replace("    event: backup", "    event: bakup").replace(
        'policy: {retry: "30m", lifetime: 1d}', 'policy: {retry: "-5m", lifetime: 1d}'
    )
    found = problems(write(tmp_path, text))
    assert len(found) == 2
    assert found[0].endswith(
        ":11: timeline.0.event: unknown value 'bakup' (did you mean 'backup'?); use one of: up, down, crash, backup, "
        "backups, restore, recover-disk, disk-lost, fault, clear-faults, dns"
    )
    assert ":17: senders.0.policy.retry: a duration cannot be negative" in found[1]


def test_restore_without_a_good_backup_and_up_without_a_disk(tmp_path):
    text = GOOD.replace("    event: backup", "    event: backup\n    ok: false") + textwrap.dedent(
        """\
        """
    )
    text = text.replace(
        "    event: crash\n",
        "    event: crash\n  - {at: 2011-10-26 13:00, server: mx, event: up}\n  - {at: 2011-10-26 14:00, server: mx, event: restore}\n",
    )
    found = problems(write(tmp_path, text))
    assert any("timeline.2.event: mx has no working disk" in p for p in found)
    assert any("timeline.3.backup: mx has no successful backup" in p for p in found)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  - name: mx\n", "  - name: [mx\n"))
    (line,) = problems(path)
    assert line.startswith(f"{path}:") and "not valid YAML" in line


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True, text=True, timeout=120)


def test_cli_exit_2_one_line_per_problem_and_no_traceback(tmp_path):
    path = write(
        tmp_path,
        GOOD.replace("    event: crash", "    event: crash\n    mdoe: refuse").replace(
            "server: mx\n    event: backup", "server: nope\n    event: backup"
        ),
    )
    for command in ("validate", "run"):
        proc = run_cli(command, str(path))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{path}:15: timeline.1.mdoe"), lines


def test_cli_missing_file_exit_2(tmp_path):
    proc = run_cli("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_run_writes_the_output_contract(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", str(write(tmp_path, GOOD)), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    import csv
    import json

    summary = json.loads(proc.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert set(summary["counts"]) == {"delivered", "stranded", "lost", "bounced", "queued"}
    assert sum(summary["counts"].values()) == summary["messages"] > 0
    with (out / "messages.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["messages"]
    for column in (
        "message_id",
        "sender",
        "policy",
        "submitted_at",
        "final_state",
        "final_at",
        "attempts",
        "accepted_at",
        "accepted_by",
        "copies",
        "delay_warnings",
    ):
        assert column in rows[0]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {"backup", "crash", "attempt", "reply"} <= {e["type"] for e in events}
    assert all("t" in e and "type" in e for e in events)
