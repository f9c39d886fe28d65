"""Errors raised by smtp-outage, and how they map to exit codes.

The hierarchy::

    OutageError                 base of everything raised on purpose
    ├── ScenarioError           bad input: a scenario file, a CSV, a CLI value (exit 2).
    │                           Carries one ``Problem`` per mistake, each with file and line.
    └── RunError                the run itself failed (exit 1): an unexpected exception in
        │                       a simulated sender or server, a socket that could not bind.
        └── ConservationError   final states do not add up to the messages submitted.

SMTP outcomes (4xx, 5xx, refused, timeout, lost connection) are never
exceptions: they are values (``simulator.policies.Failure``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutageError", "ScenarioError", "RunError", "ConservationError", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in an input file: where it is and what to change."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class OutageError(Exception):
    """Base class of smtp-outage's own errors."""


class ScenarioError(OutageError):
    """The input is wrong; ``problems`` lists every mistake found, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RunError(OutageError):
    """The run failed for a reason that is not the input's fault."""


class ConservationError(RunError):
    """Final states do not add up to the number of messages submitted."""
