"""Which organisation sent a message, from its client's reverse DNS or HELO name: a table that is data.

The built-in table is ``organisations.yaml`` beside this module; users put
their own entries (same layout) in a file that is read first. ``Organisations``
answers ``match(client, helo)`` with the organisation and the rule that
matched, and remembers answers per name, since a log repeats few clients
many times.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import Problem, ScenarioError
from ..policies import preset_names
from ..schema.validate import dotted, line_of
from .records import Client

__all__ = ["Organisation", "Organisations", "Match", "load_organisations", "BUILTIN"]

BUILTIN = "organisations.yaml"


class _Patterns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rdns: list[str] = Field(default_factory=list)
    helo: list[str] = Field(default_factory=list)


class Organisation(BaseModel):
    """One sending organisation: its group name, preset (or ``None``), patterns and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    preset: str | None
    match: _Patterns
    source: str

    @field_validator("name")
    @classmethod
    def _not_other(cls, value: str) -> str:
        if value == "other":
            raise ValueError("'other' is the group of clients no organisation matches; choose another name")
        return value

    @field_validator("preset")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in preset_names():
            close = difflib.get_close_matches(value, preset_names(), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown preset {value!r}{hint}; see smtp-outage policies list, or null for none")
        return value


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    organisations: list[Organisation]


@dataclass(frozen=True, slots=True)
class Match:
    """An organisation recognised, and how: ``rdns *.google.com`` and the table it came from."""

    organisation: Organisation
    rule: str
    table: str


class Organisations:
    """Organisation tables, first match wins; ``match`` is memoised per (name, HELO)."""

    def __init__(self, tables: list[tuple[str, list[Organisation]]]) -> None:
        self.tables = tables
        self._memo: dict[tuple[str, str], Match | None] = {}

    def match(self, client: Client | None, helo: str | None) -> Match | None:
        """The first organisation whose rdns pattern matches the client's name or helo pattern its HELO."""
        name = client.name.lower() if client is not None and client.known else ""
        hello = (helo or "").lower()
        key = (name, hello)
        if key in self._memo:
            return self._memo[key]
        found = None
        for table, organisations in self.tables:
            for org in organisations:
                rule = _first(name, org.match.rdns, "rdns") or _first(hello, org.match.helo, "helo")
                if rule is not None:
                    found = Match(org, rule, table)
                    break
            if found is not None:
                break
        if len(self._memo) < 100_000:
            self._memo[key] = found
        return found


def _first(name: str, patterns: list[str], kind: str) -> str | None:
    if not name:
        return None
    for pattern in patterns:
        if fnmatchcase(name, pattern.lower()):
            return f"{kind} {pattern}"
    return None


def _read(text: str, shown: str) -> list[Organisation]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(
            [Problem(shown, mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
        ) from None
    try:
        return _Table.model_validate(data).organisations
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (an organisation has name, preset, match {rdns, helo} and source)"
            problems.append(Problem(shown, line_of(root, loc) if root is not None else None, dotted(loc), message))
        raise ScenarioError(problems) from None


def load_organisations(extra: Path | None = None) -> Organisations:
    """The built-in table, after the entries of *extra* (a user's file) when given."""
    tables: list[tuple[str, list[Organisation]]] = []
    if extra is not None:
        try:
            text = extra.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(
                [Problem(str(extra), None, "", f"cannot read the organisations table: {exc}")]
            ) from None
        tables.append((str(extra), _read(text, str(extra))))
    builtin = files("simulator.maillog").joinpath(BUILTIN).read_text(encoding="utf-8")
    tables.append((f"built-in {BUILTIN}", _read(builtin, BUILTIN)))
    return Organisations(tables)
