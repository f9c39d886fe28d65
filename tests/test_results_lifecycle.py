"""The results folder's lifecycle: prepared (running), then complete, written last and atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.api import prepare_results, run_scenario, write_summary
from simulator.errors import ScenarioError
from simulator.golden import comparable
from simulator.live import check_ports

from .conftest import make_scenario, sender


def test_prepare_removes_only_the_tools_files_and_marks_the_folder_running(tmp_path: Path) -> None:
    for name in ("messages.csv", "events.jsonl", "report.html", "timeline.png", "thresholds.json", "notes.txt"):
        (tmp_path / name).write_text("old")
    (tmp_path / "keep").mkdir()
    prepare_results(tmp_path, "t", 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "notes.txt", "summary.json"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"scenario": "t", "seed": 7, "status": "running"}


def test_a_finished_run_is_complete_and_the_golden_comparison_ignores_the_status(tmp_path: Path) -> None:
    scenario = make_scenario(senders=[sender("pf", "postfix", at=["2011-10-26 01:00"])])
    run = run_scenario(scenario, transport="memory", out=tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["status"] == "complete"
    assert comparable(written) == comparable(run.summary())
    write_summary(
        run, tmp_path, {"status": "partial", "interrupted_by": "SIGTERM", "stopped_at": "2011-10-26T02:00:00"}
    )
    partial = json.loads((tmp_path / "summary.json").read_text())
    assert (partial["status"], partial["interrupted_by"]) == ("partial", "SIGTERM")
    assert comparable(partial) == comparable(run.summary())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_serve_ports_out_of_range_are_bad_input() -> None:
    scenario = make_scenario(senders=[sender("pf", "postfix", at=["2011-10-26 01:00"])])
    with pytest.raises(ScenarioError) as found:
        check_ports(scenario, 65535 + 1)
    assert str(found.value) == "--port-base: ports 65536-65536 are out of range; choose 1024 to 65535"
