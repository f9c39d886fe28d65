"""pytest plugin: scenario files with thresholds or a golden summary are test items.

Registered through the ``pytest11`` entry point (``smtp_outage``), so it is
active wherever smtp-outage is installed; ``-p no:smtp_outage`` turns it off.
A YAML file under a directory named ``scenarios`` is collected when it has a
top-level ``thresholds:`` key or a ``NAME.golden.json`` beside it; each such
file is one item that runs the scenario once, like ``smtp-outage check``. A
failing item shows the threshold table, the file:line of each breached
threshold and the golden differences.

Options: ``--scenario-transport=wire|memory`` (ini ``scenario_transport``;
default ``wire``, real SMTP on loopback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .errors import ScenarioError
from .regression import CheckResult, check_scenario, declares_checks

__all__ = ["ScenarioFile", "ScenarioItem", "ScenarioCheckFailed"]

SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--scenario-transport`` and its ini twin."""
    group = parser.getgroup("smtp-outage", "smtp-outage scenario regressions")
    group.addoption(
        "--scenario-transport",
        choices=("wire", "memory"),
        default=None,
        help="run scenario items over real SMTP on loopback (wire, the default) or in memory",
    )
    parser.addini("scenario_transport", "transport for scenario items: wire or memory", default="wire")


def _under_scenarios(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    return "scenarios" in parts[:-1]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect ``scenarios/**/*.yaml`` files that declare thresholds or have a golden summary."""
    if file_path.suffix not in SUFFIXES or file_path.name.startswith("."):
        return None
    if not _under_scenarios(file_path, parent.config.rootpath) or not declares_checks(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioCheckFailed(Exception):
    """A scenario item's thresholds or golden summary failed."""

    def __init__(self, check: CheckResult) -> None:
        self.check = check
        super().__init__("\n".join(check.lines()))


class ScenarioFile(pytest.File):
    """A scenario file: one item that runs it and checks it."""

    def collect(self) -> Any:
        """Yield the file's single item, named after the file."""
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    """Runs a scenario once; fails when a threshold is breached or the golden summary differs."""

    def runtest(self) -> None:
        """Run the scenario and check it."""
        config = self.config
        transport = config.getoption("scenario_transport") or config.getini("scenario_transport") or "wire"
        try:
            shown = self.path.relative_to(Path.cwd())
        except ValueError:
            shown = self.path
        check = check_scenario(shown, transport=transport)
        if check.error is not None:
            raise check.error
        if check.failed:
            raise ScenarioCheckFailed(check)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        """The threshold table and golden diff, or the scenario's problems with file:line."""
        if isinstance(excinfo.value, ScenarioCheckFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, ScenarioError):
            return "bad scenario:\n" + "\n".join(f"  {p}" for p in excinfo.value.problems)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the item comes from, for pytest's report headers."""
        return self.path, None, f"scenario {self.path.name}"
