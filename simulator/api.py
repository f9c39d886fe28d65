"""The library entry points; the CLI and the pytest plugin are thin clients of these."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .engine import Progress, Replay
from .loader import load_scenario
from .results import RunResult
from .scenario import Scenario

__all__ = ["run_scenario", "run_scenario_async"]


async def run_scenario_async(
    scenario: Scenario | str | Path,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    transport: str = "wire",
    progress: Progress | None = None,
) -> RunResult:
    """Replay *scenario* (a ``Scenario`` or a path to a YAML file) inside a running event loop.

    *seed* overrides the scenario's seed; *out*, when given, receives
    ``messages.csv``, ``summary.json`` and ``events.jsonl``. *transport* is
    ``"wire"`` (real SMTP on loopback, the default) or ``"memory"``.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, seed=seed)
    result = await Replay(scenario, seed=seed, transport=transport, progress=progress).run()
    if out is not None:
        result.write(out)
    return result


def run_scenario(
    scenario: Scenario | str | Path,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    transport: str = "wire",
    progress: Progress | None = None,
) -> RunResult:
    """Replay *scenario* on a fresh event loop and return its ``RunResult``.

    Raises ``ScenarioError`` for bad input and ``RunError`` when the run fails
    (including a ledger that does not balance).
    """
    return asyncio.run(run_scenario_async(scenario, seed=seed, out=out, transport=transport, progress=progress))
