"""SIGINT and SIGTERM stop a run at the current simulated instant; its folder says it is partial.

``smtp-outage run`` runs as a subprocess on a scenario far too long to
finish; the test waits (polling, with a deadline) for the first file the run
writes, the ``running`` summary, then sends the signal.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app

LONG = """\
# Far too long to finish in a test: about 19,000 messages over 20 days.
name: interrupted
seed: 5
clock: {start: 2011-10-26 00:00, end: 2011-11-15 00:00}
servers:
  - {name: mx, domains: [atnex.example]}
timeline:
  - {at: 2011-10-26 00:30, server: mx, event: down}
  - {at: 2011-11-01 00:00, server: mx, event: up}
senders:
  - {name: postfix, count: 10, policy: postfix, traffic: {rate: 4/h}}
thresholds:
  delivered_ratio: ["rate>0.5"]
"""
DEADLINE = 60.0  # real seconds: the most any wait here may take


def wait_for(path: Path, status: str, process: subprocess.Popen[str]) -> None:
    """Poll until *path* is a summary with *status* (bounded by ``DEADLINE``)."""
    until = time.monotonic() + DEADLINE
    while time.monotonic() < until:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("status") == status:
                return
        except (OSError, ValueError):
            pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError(f"{path} never said {status!r}")


@pytest.mark.parametrize(
    ("sig", "code", "transport"),
    [(signal.SIGINT, 130, "--memory"), (signal.SIGTERM, 143, "--wire")],
    ids=["SIGINT-memory", "SIGTERM-wire"],
)
def test_a_signal_stops_the_run_and_marks_the_folder_partial(tmp_path: Path, sig: int, code: int, transport: str):
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("an earlier run's report")  # stale: must not survive
    args = [sys.executable, "-m", "simulator", "run", str(scenario), "--out", str(out), "--no-report"]
    args += [transport] if transport == "--memory" else []
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_for(out / "summary.json", "running", process)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    name = signal.Signals(sig).name
    assert process.returncode == code, stderr
    assert stdout == ""
    (line,) = stderr.splitlines()
    assert line.startswith(f"interrupted by {name} at 2011-")
    assert line.endswith(f"(simulated): partial results in {out} (summary.json status: partial)")

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["interrupted_by"]) == ("partial", name)
    stopped = datetime.fromisoformat(summary["stopped_at"])
    assert datetime(2011, 10, 26) <= stopped < datetime(2011, 11, 15)
    assert stopped.isoformat() in line
    with (out / "messages.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["messages"] == sum(summary["counts"].values())
    assert all(datetime.fromisoformat(r["submitted_at"]) <= stopped for r in rows)
    assert sorted(p.name for p in out.iterdir()) == [
        "events.jsonl",
        "messages.csv",
        "notifications.mbox",
        "summary.json",
        "timeline.json",
    ]  # no thresholds.json for a partial run, and the old report is gone

    refused = CliRunner().invoke(app, ["report", str(out)])
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        f"{out / 'summary.json'}: the folder holds a partial run (interrupted by {name} at {summary['stopped_at']}); "
        "a report needs a complete run: run it again"
    )
