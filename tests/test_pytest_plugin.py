"""The pytest plugin: scenario files with thresholds are test items with readable failures."""

from __future__ import annotations

from pathlib import Path

from simulator import run_scenario
from simulator.golden import write_golden

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data"


def scenario_dir(pytester, *names: str) -> Path:
    target = pytester.path / "scenarios"
    target.mkdir(exist_ok=True)
    for name in names:
        (target / name).write_text((DATA / name).read_text())
    return target


def run(pytester, *args: str):
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "--scenario-transport=memory", *args
    )


def test_failing_threshold_item_shows_the_table_and_the_line(pytester):
    scenario_dir(pytester, "failing-threshold.yaml")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*scenarios/failing-threshold.yaml (failing-threshold): 1 of 3 checks failed",
            "*✓ delivered_ratio{window:1}*rate==1*observed 1.0000 (100.0%)",
            "*✗ stranded*count==0*observed *scenarios/failing-threshold.yaml:18",
            "*✓ delivery_delay*p(95)<1d*",
            "FAILED scenarios/failing-threshold.yaml::failing-threshold*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_passing_scenario_is_one_passing_item(pytester):
    scenario_dir(pytester, "passing-threshold.yaml")
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["scenarios/passing-threshold.yaml::passing-threshold PASSED*"])


def test_only_scenarios_with_checks_under_a_scenarios_folder_are_collected(pytester):
    folder = scenario_dir(pytester, "passing-threshold.yaml")
    (folder / "plain.yaml").write_text((DATA / "passing-threshold.yaml").read_text().split("thresholds:")[0])
    (pytester.path / "elsewhere.yaml").write_text((DATA / "failing-threshold.yaml").read_text())
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "--collect-only", "-q", "scenarios", "."
    )
    result.stdout.fnmatch_lines(
        ["scenarios/passing-threshold.yaml::passing-threshold", "test_one.py::test_one", "2 tests collected*"]
    )


def test_bad_scenario_item_lists_its_problems(pytester):
    folder = scenario_dir(pytester)
    (folder / "bad.yaml").write_text((DATA / "failing-threshold.yaml").read_text().replace("count==0", "count=0"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["bad scenario:", "  scenarios/bad.yaml:18: thresholds.stranded.0: cannot read 'count=0'*"]
    )


def test_golden_file_beside_a_scenario_is_compared(pytester):
    folder = scenario_dir(pytester, "passing-threshold.yaml")
    golden = folder / "passing-threshold.golden.json"
    write_golden(golden, run_scenario(folder / "passing-threshold.yaml", transport="memory").summary())
    run(pytester).assert_outcomes(passed=1)

    golden.write_text(golden.read_text().replace('"stranded": 26', '"stranded": 25', 1))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*✗ golden summary differs from scenarios/passing-threshold.golden.json:",
            "*counts.stranded: expected 25, got 26",
            "*(if the change is intended: smtp-outage run SCENARIO --golden FILE --update-golden)",
        ]
    )
