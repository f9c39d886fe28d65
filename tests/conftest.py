"""Shared helpers: scenarios built in code, small enough to run in a blink."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from simulator import Scenario

BASE: dict[str, Any] = {
    "name": "t",
    "seed": 7,
    "clock": {"start": "2011-10-26 00:00", "end": "2011-10-29 00:00"},
    "servers": [{"name": "mx", "domains": ["atnex.example"]}],
    "timeline": [],
    "senders": [],
}


def make_scenario(**changes: Any) -> Scenario:
    """A scenario from ``BASE`` with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(changes)
    return Scenario.model_validate(data)


def sender(
    name: str, policy: Any, at: list[str] | None = None, rate: str | None = None, count: int = 1, **traffic: Any
) -> dict[str, Any]:
    """A sender group entry with explicit arrival times or a Poisson rate."""
    t: dict[str, Any] = dict(traffic)
    if at is not None:
        t["at"] = at
    if rate is not None:
        t["rate"] = rate
    return {"name": name, "count": count, "policy": policy, "traffic": t}


@pytest.fixture
def scenario_factory():
    """Build scenarios in code: ``scenario_factory(timeline=[...], senders=[...])``."""
    return make_scenario


@pytest.fixture(scope="session")
def small_report(tmp_path_factory):
    """A results folder with its report, from ``tests/data/small-incident.yaml`` (in memory)."""
    from pathlib import Path

    from simulator import run_scenario
    from simulator.report import write_report

    folder = tmp_path_factory.mktemp("small-incident")
    run_scenario(Path(__file__).parent / "data" / "small-incident.yaml", out=folder, transport="memory")
    write_report(folder)
    return folder
