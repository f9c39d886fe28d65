"""The post-mortem report: files, the "What happened to the mail?" table, the CLI."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from simulator.cli import app
from simulator.report import FIGURES, write_report

runner = CliRunner()


class _Tables(HTMLParser):
    """Collect the text of every cell of every <table id=...>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(folder: Path) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed((folder / "report.html").read_text(encoding="utf-8"))
    return parser.tables


def test_report_writes_readable_figures(small_report):
    for name in FIGURES:
        with Image.open(small_report / name) as image:
            assert image.format == "PNG"
            assert image.width >= 1200 and image.height >= 250
    page = (small_report / "report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(FIGURES)
    assert "http://" not in page and "https://" not in page


def test_what_happened_table_matches_the_summary(small_report):
    summary = json.loads((small_report / "summary.json").read_text())
    rows = tables(small_report)["windows-table"]
    header, body = rows[0], rows[1:]
    assert header == ["#", "sent", "messages", "delivered", "stranded", "lost", "bounced", "queued", "what that means"]
    assert [r[1] for r in body] == [w["label"] for w in summary["windows"]]
    for row, window in zip(body, summary["windows"], strict=True):
        assert int(row[2]) == window["messages"]
        assert [int(cell.split()[0]) for cell in row[3:8]] == list(window["counts"].values())
    # No declared windows: derived from the timeline, like the post-mortem's.
    assert [r[1] for r in body] == [
        "sent before the 06:00 03/04 backup",
        "sent after the 06:00 03/04 backup, before the crash at 12:00 03/04",
        "sent during the outage, 12:00 03/04 to 00:00 03/05",
        "sent after recovery at 00:00 03/05",
    ]


def test_each_window_gets_a_plain_language_sentence(small_report):
    summary = json.loads((small_report / "summary.json").read_text())
    body = tables(small_report)["windows-table"][1:]
    stranded = summary["windows"][1]["counts"]["stranded"]
    assert body[1][-1] == (
        f"Mail sent between 06:00 on 03/04 and 12:00 on 03/04 ({stranded} messages): all {stranded} were accepted "
        "with a 250 but exist only on the failed disk, and their senders received no bounce."
    )
    assert "readable again only from 00:00 on 03/05, restored from a backup" in body[0][-1]
    assert "bounced and their senders received a non-delivery report (mailgun" in body[2][-1]


def test_queue_ages_and_recovery_storm_are_tabulated(small_report):
    found = tables(small_report)
    page = (small_report / "report.html").read_text(encoding="utf-8")
    assert "just before recovery at 00:00 03/05" in page
    (storm,) = found["storms-table"][1:]
    assert storm[:2] == ["mx", "00:00 03/05"] and int(storm[2]) > 0
    senders = {row[0]: row for row in found["senders-table"][1:]}
    assert senders["mailgun"][2] == "8h" and senders["postfix"][2] == "5d20m"


def test_report_command_rebuilds_from_the_folder_alone(small_report, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(small_report, copy)
    for name in ("report.html", "timeline.json", *FIGURES):
        (copy / name).unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(copy / "report.html")
    rebuilt = tables(copy)
    assert rebuilt["windows-table"] == tables(small_report)["windows-table"]
    assert all((copy / name).is_file() for name in FIGURES)


def test_report_of_a_folder_that_is_not_results_is_bad_input(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a results folder: summary.json, messages.csv, events.jsonl missing" in result.stderr


def test_no_recovery_means_no_storm_figure(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: s\nclock: {start: 2024-03-04 00:00, end: 2024-03-05 00:00}\nservers: [{name: mx, domains: [example.com]}]\n"
        "timeline: [{at: 2024-03-04 06:00, server: mx, event: down}]\n"
        "senders: [{name: p, policy: postfix, traffic: {rate: 2/h}}]\n"
    )
    result = runner.invoke(app, ["run", str(scenario), "--memory", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "recovery.png").exists()
    page = write_report(tmp_path / "out").read_text(encoding="utf-8")
    assert 'id="recovery"' not in page and "at the deepest queue" in page and "at the end of the run" in page
