"""The incident library: files, sources and claims, `incident:NAME`, `smtp-outage incidents`, packaging.

The incidents' thresholds themselves run as scenario items (the pytest plugin
collects ``scenarios/incidents/*.yaml``); here: that the library is whole and
findable, and that a report names its sources.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages
from typer.testing import CliRunner

from simulator import ScenarioError, load_scenario, run_scenario
from simulator.cli import app
from simulator.report import write_report
from simulator.schema import library

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "scenarios" / "incidents"
NAMES = sorted(p.stem for p in FOLDER.glob("*.yaml"))

runner = CliRunner()


def test_the_library_has_at_least_five_incidents_listed_oldest_first():
    found = library.incidents()
    assert len(found) >= 5
    assert [i.name for i in found] == [i.name for i in sorted(found, key=lambda i: (i.date, i.name))]
    assert {i.name for i in found} == set(NAMES)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", i.date) for i in found)
    assert all(i.source and i.url.startswith("http") and i.summary.endswith(".") for i in found)


@pytest.mark.parametrize("name", NAMES)
def test_each_incident_names_its_sources_states_claims_and_marks_choices(name):
    scenario = load_scenario(f"incident:{name}")
    text = (FOLDER / f"{name}.yaml").read_text(encoding="utf-8")
    assert scenario.name == name
    assert scenario.source == FOLDER / f"{name}.yaml"
    assert scenario.sources, "no sources"
    for source in scenario.sources:
        assert source.url.startswith("http") and source.quotes
    assert scenario.thresholds
    assert "ASSUMPTION" in text
    assert "PREDICTED" in text  # each claim is marked PREDICTED or CALIBRATED
    assert "Sources:" in scenario.description or "Source:" in scenario.description


def test_incident_names_resolve_and_unknown_ones_list_the_library():
    assert library.resolve("incident:yahoo-2013-12") == FOLDER / "yahoo-2013-12.yaml"
    assert library.resolve("some/file.yaml") == Path("some/file.yaml")
    with pytest.raises(ScenarioError) as info:
        library.resolve("incident:gmail-1999")
    (problem,) = info.value.problems
    assert (
        str(problem)
        == f"incident:gmail-1999: no such incident; the library has: {', '.join(NAMES)} (smtp-outage incidents)"
    )


def test_a_missing_library_says_so_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(library, "_CANDIDATES", (tmp_path / "a", tmp_path / "b"))
    result = runner.invoke(app, ["run", "incident:yahoo-2013-12", "--memory"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("incident:yahoo-2013-12: the incident library is not installed here (looked in ")


def test_run_of_an_unknown_incident_exits_2_with_one_line():
    result = runner.invoke(app, ["run", "incident:nope", "--memory"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"incident:nope: no such incident; the library has: {', '.join(NAMES)} (smtp-outage incidents)"
    ]


def test_incidents_command_lists_name_date_source_and_what_happened():
    result = runner.invoke(app, ["incidents"])
    assert result.exit_code == 0
    for name in NAMES:
        assert name in result.stdout
    assert "FastMail Outage, August 1st" in result.stdout
    listed = json.loads(runner.invoke(app, ["incidents", "--json"]).stdout)
    assert [row["name"] for row in listed] == [i.name for i in library.incidents()]
    fastmail = next(row for row in listed if row["name"] == "fastmail-2018-08")
    assert fastmail["date"] == "2018-08-01"
    assert fastmail["url"] == "https://fastmail.blog/2018/08/08/fastmail-outage-2018-08-01/"


def test_the_package_ships_the_library():
    """pyproject lists every package under simulator/ and maps simulator.incidents onto scenarios/incidents."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = find_packages(where=str(ROOT), include=["simulator*"])
    assert sorted(config["packages"]) == sorted([*found, "simulator.incidents"])
    assert config["package-dir"]["simulator.incidents"] == "scenarios/incidents"
    assert config["package-data"]["simulator.incidents"] == ["*.yaml"]


def test_a_report_names_its_sources_and_shows_mail_readable_late(tmp_path):
    run_scenario("incident:gmail-2013-09", out=tmp_path, transport="memory")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    timeline = json.loads((tmp_path / "timeline.json").read_text(encoding="utf-8"))
    assert [s["title"] for s in timeline["sources"]] == [
        "More on Gmail's delivery delays",
        "Google Apps status dashboard statement, 23 September 2013",
    ]
    assert '<section id="sources"><h2>Sources</h2>' in html
    assert "http://googleenterprise.blogspot.com/2013/09/more-on-gmails-delivery-delays.html" in html
    assert "about 1.5% of messages were delayed more than two hours" in html
    assert '<section id="mailbox"><h2>Readable in the mailbox</h2>' in html
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["delayed"]["2h"] > 0 and summary["counts"]["queued"] == 0


def test_a_description_reads_as_paragraphs_folded_or_literal():
    from simulator.report.sources import paragraphs

    assert paragraphs("First one, wrapped here.\nSources: a report.\n") == [
        "First one, wrapped here.",
        "Sources: a report.",
    ]
    assert paragraphs("First one,\nwrapped here.\n\nSources:\na report.\n") == [
        "First one, wrapped here.",
        "Sources: a report.",
    ]
