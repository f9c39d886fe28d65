"""`smtp-outage check`, `run --golden` and JUnit XML: what CI sees."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from simulator.cli import app
from simulator.golden import differences

DATA = Path(__file__).parent / "data"
FAILING = DATA / "failing-threshold.yaml"
PASSING = DATA / "passing-threshold.yaml"

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_failing_threshold_exits_99_with_observed_value_and_line(tmp_path):
    junit = tmp_path / "junit.xml"
    result = invoke("check", FAILING, "--memory", "--junit", junit)
    assert result.exit_code == 99
    lines = result.stdout.splitlines()
    assert lines[0] == f"{FAILING} (failing-threshold): 1 of 3 checks failed"
    (failed,) = [line for line in lines if line.lstrip().startswith("✗")]
    assert failed.split()[1:3] == ["stranded", "count==0"]
    assert f"{FAILING.relative_to(Path.cwd())}:18" in failed or f"{FAILING}:18" in failed
    assert sum(line.lstrip().startswith("✓") for line in lines) == 2

    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    (failure,) = root.iter("failure")
    assert failure.get("type") == "threshold"
    assert failure.get("message").startswith("stranded count==0: observed ")
    case = next(c for c in root.iter("testcase") if c.find("failure") is not None)
    assert (case.get("name"), case.get("line")) == ("stranded: count==0", "18")


def test_passing_scenario_exits_0(tmp_path):
    result = invoke("check", PASSING, "--memory")
    assert result.exit_code == 0, result.output
    assert "all 3 checks passed" in result.stdout


def test_bad_input_beats_a_breach_and_is_a_junit_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(FAILING.read_text().replace("stranded:", "strandd:"))
    junit = tmp_path / "junit.xml"
    result = invoke("check", FAILING, broken, "--memory", "--junit", junit)
    assert result.exit_code == 2
    assert f"{broken}:18: thresholds.strandd: unknown metric 'strandd'" in result.stderr
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    (error,) = root.iter("error")
    assert error.get("type") == "ScenarioError" and error.get("message").startswith("bad input: ")


def test_golden_summary_round_trip_and_readable_diff(tmp_path):
    golden = tmp_path / "expected.json"
    out = tmp_path / "out"
    written = invoke("run", PASSING, "--memory", "--no-report", "--out", out, "--golden", golden, "--update-golden")
    assert written.exit_code == 0, written.output
    expected = json.loads(golden.read_text())
    assert "wall_seconds" not in expected and "transport" not in expected
    assert invoke("run", PASSING, "--memory", "--no-report", "--out", out, "--golden", golden).exit_code == 0

    expected["counts"]["stranded"] += 1
    expected["windows"][0]["messages"] = 0
    golden.write_text(json.dumps(expected))
    result = invoke("run", PASSING, "--memory", "--no-report", "--out", out, "--golden", golden)
    assert result.exit_code == 99
    stranded = expected["counts"]["stranded"]
    assert f"counts.stranded: expected {stranded}, got {stranded - 1}" in result.stdout
    assert "windows[0].messages: expected 0, got " in result.stdout


def test_missing_golden_file_is_bad_input(tmp_path):
    result = invoke("run", PASSING, "--memory", "--no-report", "--out", tmp_path, "--golden", tmp_path / "nope.json")
    assert result.exit_code == 2
    assert "no such golden file; write it with --update-golden" in result.stderr
    assert invoke("run", PASSING, "--memory", "--update-golden").exit_code == 2


def test_golden_beside_the_scenario_is_checked_by_check(tmp_path):
    scenario = tmp_path / "s.yaml"
    shutil.copy(PASSING, scenario)
    assert (
        invoke(
            "run",
            scenario,
            "--memory",
            "--no-report",
            "--out",
            tmp_path / "o",
            "--golden",
            tmp_path / "s.golden.json",
            "--update-golden",
        ).exit_code
        == 0
    )
    assert "✓ golden summary matches" in invoke("check", scenario, "--memory").stdout
    scenario.write_text(scenario.read_text().replace("seed: 5", "seed: 6"))
    result = invoke("check", scenario, "--memory")
    assert result.exit_code == 99
    assert "✗ golden summary differs from" in result.stdout and "seed: expected 5, got 6" in result.stdout


def test_differences_walk_nested_values():
    assert differences({"a": 1, "b": [1, 2]}, {"a": 1.0, "b": [1, 3, 4], "c": True}) == [
        "b[1]: expected 2, got 3",
        "b[2]: not expected, got 4",
        "c: not expected, got true",
    ]


def test_run_with_a_breached_threshold_exits_99_and_writes_thresholds_json(tmp_path):
    result = invoke("run", FAILING, "--memory", "--no-report", "--out", tmp_path)
    assert result.exit_code == 99
    assert "Thresholds" in result.stdout and "✗ stranded" in result.stdout
    document = json.loads((tmp_path / "thresholds.json").read_text())
    assert [t["ok"] for t in document["thresholds"]] == [True, False, True]
