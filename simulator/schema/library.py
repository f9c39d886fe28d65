"""The incident library: public mail outages as scenario files, found by name.

The library is ``scenarios/incidents/*.yaml`` in the repository; an installed
package carries the same files as ``simulator/incidents/`` (package data).
``incident:NAME`` names one of them wherever a scenario path is accepted
(``smtp-outage run incident:gmail-2020-12``); ``incidents()`` lists them with
their date, first source and one line on what happened, read from the files
without running or fully validating them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem, ScenarioError

__all__ = ["PREFIX", "Incident", "library_dir", "incidents", "incident_path", "resolve"]

PREFIX = "incident:"
"""How a scenario argument names an incident of the library instead of a file."""

_PACKAGE = Path(__file__).resolve().parents[1]
_CANDIDATES = (_PACKAGE.parent / "scenarios" / "incidents", _PACKAGE / "incidents")
"""Where the library is: the repository's folder (a clone, an editable install), then the installed package's copy."""


@dataclass(frozen=True)
class Incident:
    """One incident of the library, as the listing shows it."""

    name: str
    date: str
    source: str
    url: str
    summary: str
    path: Path


def library_dir(asked: str = "incidents") -> Path:
    """The folder holding the incident files; ``ScenarioError`` (naming what was *asked*) when this installation has none."""
    for folder in _CANDIDATES:
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    looked = " or ".join(str(p) for p in _CANDIDATES)
    raise ScenarioError(
        [
            Problem(
                asked,
                None,
                "",
                f"the incident library is not installed here (looked in {looked}); "
                "reinstall smtp-outage from its repository, or give the scenario file's path",
            )
        ]
    )


def _first_line(text: str) -> str:
    """What happened, in one line: the description's first sentence, up to its first semicolon."""
    text = text.strip()
    line = " ".join((text.split("\n\n") if "\n\n" in text else text.split("\n"))[0].split())
    line = line.partition(". ")[0].partition("; ")[0].rstrip(".")
    return line + "." if line else ""


def _date(data: dict[str, Any]) -> str:
    """The date the incident began: its first timeline entry's, else the clock's start."""
    when: Any = None
    timeline = data.get("timeline")
    if isinstance(timeline, list) and timeline and isinstance(timeline[0], dict):
        when = timeline[0].get("at")
    clock = data.get("clock")
    if when is None and isinstance(clock, dict):
        when = clock.get("start")
    if isinstance(when, (dt.date, dt.datetime)):
        return when.strftime("%Y-%m-%d")
    return str(when)[:10] if when is not None else ""


def _entry(path: Path) -> Incident:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError([Problem(str(path), None, "", f"cannot read this incident: {exc}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(str(path), 1, "", "an incident is a scenario: a YAML mapping")])
    sources = [s for s in data.get("sources") or [] if isinstance(s, dict)]
    first = sources[0] if sources else {}
    return Incident(
        name=path.stem,
        date=_date(data),
        source=str(first.get("title", "")),
        url=str(first.get("url", "")),
        summary=_first_line(str(data.get("description") or "")),
        path=path,
    )


def incidents() -> list[Incident]:
    """Every incident of the library, oldest first."""
    found = [_entry(path) for path in sorted(library_dir().glob("*.yaml"))]
    return sorted(found, key=lambda i: (i.date, i.name))


def incident_path(name: str) -> Path:
    """The file of the incident *name*; ``ScenarioError`` naming the incidents there are when it is not one."""
    folder = library_dir(f"{PREFIX}{name}")
    path = folder / f"{name}.yaml"
    if "/" in name or "\\" in name or not path.is_file():
        names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ScenarioError(
            [
                Problem(
                    f"{PREFIX}{name}", None, "", f"no such incident; the library has: {names} (smtp-outage incidents)"
                )
            ]
        )
    return path


def resolve(scenario: str | Path) -> Path:
    """A scenario argument as a file: ``incident:NAME`` from the library, anything else as given."""
    text = str(scenario)
    if text.startswith(PREFIX):
        return incident_path(text[len(PREFIX) :].strip())
    return Path(scenario)
