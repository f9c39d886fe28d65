"""Every problem of a scenario that parsed, each with file, line and what to change.

``validate(scenario)`` runs the cross-field rules (``check_semantics``) and
reads the files the scenario names (traffic CSVs, ``simulator.schema.inputs``).
The loader calls it after the schema accepted the file; ``run_scenario``
calls it for a ``Scenario`` built in code, which has no file: its problems
name ``<scenario NAME>`` and no line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..clock import SimClock
from ..errors import Problem
from ..scenario import Scenario
from .budget import budget_problems
from .document import DocumentError, parse
from .inputs import Site, read_group_csv
from .semantics import check_semantics

__all__ = ["validate", "line_of", "dotted"]


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at *loc*, or of its nearest existing parent.

    Location parts that are not keys of the current mapping (pydantic's union
    tags, for example) are skipped.
    """
    node = root
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # An unknown key is reported at the key itself.
                    best = key.start_mark.line + 1
                    node = value
                    if isinstance(value, yaml.SequenceNode):
                        best = max(best, value.start_mark.line + 1)
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                best = node.start_mark.line + 1
            else:
                break
    return best


def dotted(loc: tuple[Any, ...]) -> str:
    """A location as the path users see: ``timeline.1.mode``."""
    return ".".join(str(p) for p in loc)


def validate(scenario: Scenario, *, root: yaml.Node | None = None, shown: str | None = None) -> list[Problem]:
    """Every problem of *scenario* in file order of the rules: cross-field rules, then traffic files, then
    the work it asks for (``simulator.schema.budget``), each stage only when the one before found nothing.

    *root* (the file's ``yaml.compose()`` tree) and *shown* (the file name as
    the user gave it) come from the loader; without them a scenario loaded
    from a file is read again for its lines, and one built in code is named
    ``<scenario NAME>`` without lines. An empty list means the scenario can run.
    """
    if shown is None:
        shown, root = _source_of(scenario)

    def site(loc: tuple[Any, ...]) -> Site:
        return Site(shown, line_of(root, loc) if root is not None else None, dotted(loc))

    problems = [site(loc).problem(message) for loc, message in check_semantics(scenario)]
    if problems:
        return problems
    clock = SimClock(scenario.clock)
    rows: dict[int, int] = {}
    for i, sender in enumerate(scenario.senders):
        if sender.traffic.csv is not None:
            found = read_group_csv(scenario, i, clock, site(("senders", i, "traffic", "csv")))
            problems.extend(found.problems)
            rows[i] = len(found.arrivals)
    if problems:
        return problems
    return [site(loc).problem(message) for loc, message in budget_problems(scenario, rows)]


def _source_of(scenario: Scenario) -> tuple[str, yaml.Node | None]:
    """The file name to show and its YAML tree, or ``<scenario NAME>`` for a scenario built in code."""
    source = scenario.source
    if source is None:
        return f"<scenario {scenario.name}>", None
    try:
        shown = str(source.relative_to(Path.cwd()))
    except ValueError:
        shown = str(source)
    try:
        return shown, parse(source.read_text(encoding="utf-8-sig")).root
    except (OSError, UnicodeDecodeError, yaml.YAMLError, DocumentError):
        return shown, None
