"""Scenario regressions: run a scenario, check its thresholds and its golden summary.

``check_scenario`` is what ``smtp-outage check`` and the pytest plugin run;
``CheckResult.lines()`` is the text both show (one ✓/✗ line per threshold,
then the golden differences).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import run_scenario
from .errors import OutageError
from .golden import comparable, differences, golden_path, load_golden
from .loader import load_scenario
from .thresholds import Outcome, format_outcomes

__all__ = ["CheckResult", "check_scenario", "declares_checks"]


@dataclass
class CheckResult:
    """The outcome of checking one scenario file."""

    path: Path
    name: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    golden: Path | None = None
    golden_diff: list[str] = field(default_factory=list)
    error: OutageError | None = None
    seconds: float = 0.0
    result: Any = None

    @property
    def breached(self) -> list[Outcome]:
        """Thresholds that failed."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def failed(self) -> bool:
        """A threshold failed or the golden summary differs (not counting errors)."""
        return bool(self.breached or self.golden_diff)

    def lines(self) -> list[str]:
        """The report people read: a verdict, the threshold table, the golden differences."""
        if self.error is not None:
            return [f"{self.path}: error", *(f"  {line}" for line in str(self.error).splitlines())]
        head = f"{self.path} ({self.name})"
        checks = len(self.outcomes) + (1 if self.golden else 0)
        failed = len(self.breached) + (1 if self.golden_diff else 0)
        if not checks:
            return [f"{head}: nothing to check (no thresholds, no golden summary beside it)"]
        noun = "check" if checks == 1 else "checks"
        out = [
            f"{head}: {failed} of {checks} {noun} failed"
            if failed
            else f"{head}: {'all ' if checks > 1 else ''}{checks} {noun} passed"
        ]
        out += [f"  {line}" for line in format_outcomes(self.outcomes)]
        if self.golden is not None:
            if self.golden_diff:
                out.append(f"  ✗ golden summary differs from {self.golden}:")
                out += [f"      {line}" for line in self.golden_diff]
                out.append("    (if the change is intended: smtp-outage run SCENARIO --golden FILE --update-golden)")
            else:
                out.append(f"  ✓ golden summary matches {self.golden}")
        return out


def declares_checks(path: Path) -> bool:
    """Whether a YAML file has a top-level ``thresholds:`` key or a golden summary beside it (cheap, no parsing)."""
    if golden_path(path).is_file():
        return True
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith("thresholds:") for line in text.splitlines())


def check_scenario(
    path: str | Path, *, transport: str = "wire", seed: int | None = None, golden: Path | None = None
) -> CheckResult:
    """Run the scenario at *path* and check its thresholds and golden summary.

    *golden* defaults to ``name.golden.json`` beside the scenario, when it
    exists. Errors (bad input, a failed run) are kept in ``error``, not raised.
    """
    path = Path(path)
    check = CheckResult(path)
    started = time.perf_counter()
    try:
        scenario = load_scenario(path, seed=seed)
        check.name = scenario.name
        expected_path = golden if golden is not None else golden_path(path)
        expected = load_golden(expected_path) if golden is not None or expected_path.is_file() else None
        result = run_scenario(scenario, seed=seed, transport=transport)
        check.result = result
        check.outcomes = result.thresholds()
        if expected is not None:
            check.golden = expected_path
            check.golden_diff = differences(expected, comparable(result.summary()))
    except OutageError as exc:
        check.error = exc
    check.seconds = time.perf_counter() - started
    return check
