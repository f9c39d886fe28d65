"""A results folder only ever holds one run, complete or visibly not: stale files never pass as this run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator import api, report
from simulator.api import Interrupt, Run, prepare_results, run_scenario
from simulator.cli import app
from simulator.engine import Replay
from simulator.errors import ScenarioError
from simulator.golden import comparable

from .conftest import make_scenario, sender

DATA = Path(__file__).parent / "data"


def test_the_report_files_are_the_reports_own():
    assert ("report.html", *report.FIGURES) == api.REPORT_FILES


def test_prepare_removes_only_what_the_tool_writes_and_says_running(tmp_path: Path):
    for name in (*api.OUTPUT_FILES, *api.REPORT_FILES, "notes.txt", "messages.csv.bak"):
        (tmp_path / name).write_text("old")
    prepare_results(tmp_path, "small-incident", 21)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messages.csv.bak", "notes.txt", "summary.json"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "scenario": "small-incident",
        "seed": 21,
        "status": "running",
    }


def test_a_new_run_in_an_old_folder_leaves_nothing_of_the_old_run(tmp_path: Path):
    """An earlier run of another scenario, with thresholds and a report; then a run without either."""
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(DATA / "passing-threshold.yaml"), "--out", str(tmp_path), "--memory"])
    assert first.exit_code == 0, first.output
    assert {"thresholds.json", "report.html", "timeline.png"} <= {p.name for p in tmp_path.iterdir()}
    (tmp_path / "notes.txt").write_text("mine")
    plain = tmp_path / "plain.yaml"
    text = (DATA / "small-incident.yaml").read_text()
    plain.write_text(text[: text.index("thresholds:")].replace("name: small-incident", "name: plain"))
    second = runner.invoke(app, ["run", str(plain), "--out", str(tmp_path), "--memory", "--no-report"])
    assert second.exit_code == 0, second.output
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "plain.yaml")
    assert names == ["events.jsonl", "messages.csv", "notes.txt", "notifications.mbox", "summary.json", "timeline.json"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["scenario"], summary["status"]) == ("plain", "complete")
    # summary.json is written last, through a temporary file that does not stay behind.
    latest = max((tmp_path / n).stat().st_mtime_ns for n in names)
    assert (tmp_path / "summary.json").stat().st_mtime_ns == latest


def test_a_folder_that_is_still_running_is_refused_by_the_report(tmp_path: Path):
    prepare_results(tmp_path, "t", 7)
    refused = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert refused.exit_code == 2
    assert refused.output == (
        f"{tmp_path / 'summary.json'}: the folder holds a run that has not finished (still running, or killed "
        "before it could finish); a report needs a complete run: run it again\n"
    )


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_an_output_folder_that_cannot_be_one_is_bad_input_before_the_run(tmp_path: Path, where: str):
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    out = existing if where == "a file" else existing / "results"
    result = CliRunner().invoke(app, ["run", str(DATA / "small-incident.yaml"), "--out", str(out), "--memory"])
    assert result.exit_code == 2
    why = (
        "it is a file, not a folder; choose another --out or remove the file"
        if where == "a file"
        else "Not a directory"
    )
    assert result.output == f"{out}: cannot use this as the results folder: {why}\n"
    assert existing.read_text() == "keep me"


def scenario():
    return make_scenario(
        senders=[sender("s", "postfix", at=["2011-10-26 01:00", "2011-10-26 02:00", "2011-10-26 03:00"])],
        thresholds={"delivered": ["count==3"]},
    )


class StopAt(Interrupt):
    """Requests a stop once the replay's clock reaches *at* (as a signal arriving then would)."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at
        self.replay: Replay | None = None

    def requested(self) -> bool:
        assert self.replay is not None
        if self.replay.env.now >= self.at:
            self.request("SIGINT")
        return super().requested()


@pytest.mark.asyncio
async def test_an_interrupted_run_ends_at_the_instant_with_the_mail_submitted_so_far(tmp_path: Path):
    stop = StopAt(2 * 3600.0)
    replay = Replay(scenario(), transport="memory", interrupt=stop)
    stop.replay = replay
    run = Run.of(await replay.run())
    # The 02:00 instant ran to its end (its attempt was made and accepted); 03:00 never came.
    assert [run.clock.iso(r.submitted_at) for r in run.records] == ["2011-10-26T01:00:00", "2011-10-26T02:00:00"]
    assert [r.final_state for r in run.records] == ["delivered", "delivered"]
    summary = run.summary()
    assert (summary["status"], summary["interrupted_by"], summary["stopped_at"]) == (
        "partial",
        "SIGINT",
        "2011-10-26T02:00:00",
    )
    assert summary["messages"] == 2
    with pytest.raises(ScenarioError, match="thresholds need a complete run"):
        run.thresholds()
    api.write_results(run, tmp_path)
    assert not (tmp_path / "thresholds.json").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "partial"


def test_a_complete_run_says_so_and_the_golden_comparison_ignores_it():
    run = run_scenario(scenario(), transport="memory")
    summary = run.summary()
    assert summary["status"] == "complete" and "interrupted_by" not in summary
    assert "status" not in comparable(summary) and "foreign" not in comparable(summary)
    assert [o.ok for o in run.thresholds()] == [True]
