"""Files a scenario names, read and checked the same way by ``validate`` and by the engine.

Today that is a sender group's traffic CSV (``traffic: {csv: arrivals.csv}``),
a file with a header line and one arrival per row::

    at,mta,rcpt
    2011-10-26 10:38,0,alice
    2011-10-26 10:40,1,bob@atnex.example

``at`` is a timestamp in the scenario's clock; ``mta`` the 0-based index of
the MTA within the group (default 0); ``rcpt`` a local part, or an address in
the group's destination domain (default ``user<line>``). A relative path
starts at the scenario file's folder, and must stay inside it (a scenario
names files next to it, not anywhere on the machine). Times have no UTC
offset: they are read in the scenario's clock, as the scenario's own are. ``read_traffic_csv`` returns the
arrivals or every problem, each with the CSV's own file and line, so the
check before a run and the run itself can never disagree.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..clock import SimClock
from ..errors import Problem
from ..scenario import Scenario, TrafficSpec

__all__ = ["Arrival", "Site", "TrafficCsv", "read_traffic_csv", "read_group_csv", "destination_domain", "csv_path"]

_MAX_BYTES = 256 * 1024 * 1024
"""A traffic CSV larger than this is refused before it is read."""

COLUMNS = ("at", "mta", "rcpt")
"""The columns a traffic CSV may have; ``at`` is required."""

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
"""RFC 5321's dot-atom: what a local part may be without quoting."""
_LOCAL_PART_MAX = 64  # RFC 5321 section 4.5.3.1.1


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message entering a sender's queue."""

    at: float
    mta: int  #: index of the MTA within its sender group
    rcpt_local: str


@dataclass(frozen=True, slots=True)
class Site:
    """Where a scenario file sets a value: the file as shown, the line and the dotted path."""

    file: str
    line: int | None
    path: str

    def problem(self, message: str) -> Problem:
        """A problem reported at this place."""
        return Problem(self.file, self.line, self.path, message)


@dataclass(frozen=True, slots=True)
class TrafficCsv:
    """What reading a traffic CSV gave: its arrivals, or the problems that keep it from being used."""

    path: Path
    arrivals: list[Arrival] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def csv_path(spec: TrafficSpec, base: Path | None) -> Path:
    """The CSV file of *spec*; a relative path starts at the folder of *base* (the scenario file)."""
    assert spec.csv is not None
    path = Path(spec.csv)
    if not path.is_absolute() and base is not None:
        path = base.parent / path
    return path


def destination_domain(scenario: Scenario, group: int) -> str | None:
    """The domain a sender group's mail goes to: ``traffic.to``, or the one domain served.

    ``None`` when several domains are served and ``to`` does not pick one
    (``check_semantics`` reports that).
    """
    to = scenario.senders[group].traffic.to
    if to is not None:
        return to.lower()
    served = {d.lower() for server in scenario.servers for d in server.domains}
    return served.pop() if len(served) == 1 else None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_group_csv(scenario: Scenario, group: int, clock: SimClock, site: Site | None = None) -> TrafficCsv:
    """Read the traffic CSV of sender group number *group* of *scenario*.

    *site* is where the scenario names the file (``senders.N.traffic.csv``);
    a file that cannot be opened is reported there.
    """
    sender = scenario.senders[group]
    return read_traffic_csv(
        sender.traffic,
        clock,
        base=scenario.source,
        group=sender.name,
        count=sender.count,
        domain=destination_domain(scenario, group),
        site=site,
    )


def read_traffic_csv(
    spec: TrafficSpec,
    clock: SimClock,
    *,
    base: Path | None,
    group: str,
    count: int,
    domain: str | None,
    site: Site | None = None,
) -> TrafficCsv:
    """Read and check the CSV of *spec* for sender group *group* of *count* MTAs sending to *domain*.

    Problems in the file name the CSV and its line; a file that cannot be
    opened is reported at *site* when given. Without a *domain*, recipients'
    domains are not compared.
    """
    path = csv_path(spec, base)
    shown = _shown(path)
    if base is not None and not path.resolve().is_relative_to(base.resolve().parent):
        message = (
            f"the traffic CSV {spec.csv} is outside the scenario's folder ({base.parent}); "
            "put it next to the scenario, or in a folder below it"
        )
        return TrafficCsv(
            path, problems=[site.problem(message) if site is not None else Problem(shown, None, "", message)]
        )
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise OSError(f"larger than {_MAX_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            why = "no such file"
        elif isinstance(exc, UnicodeDecodeError):
            utf16 = " (it looks like UTF-16: save it as UTF-8)" if exc.object[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            why = f"not UTF-8 text ({exc.reason} at byte {exc.start}){utf16}"
        elif not exc.strerror:
            why = str(exc)
        else:
            why = exc.strerror or str(exc)
        where = f"the traffic CSV {shown}" if site is not None else "the traffic CSV"
        message = f"cannot read {where}: {why}"
        problem = site.problem(message) if site is not None else Problem(shown, None, "", message)
        return TrafficCsv(path, problems=[problem])
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        return TrafficCsv(path, problems=[Problem(shown, line, "", "a NUL character: this is not a CSV text file")])
    return _parse(text, path, shown, clock, group=group, count=count, domain=domain)


def _parse(
    text: str, path: Path, shown: str, clock: SimClock, *, group: str, count: int, domain: str | None
) -> TrafficCsv:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        return TrafficCsv(path, problems=[Problem(shown, reader.line_num or 1, "", f"not valid CSV: {exc}")])
    if not header:
        return TrafficCsv(
            path, problems=[Problem(shown, 1, "", "the file is empty; start it with a header line: at,mta,rcpt")]
        )
    problems = _header_problems(shown, [name.strip() for name in header])
    if problems:
        return TrafficCsv(path, problems=problems)
    reader.fieldnames = [name.strip() for name in header]
    arrivals: list[Arrival] = []
    last = clock.datetime_at(clock.end)
    first = clock.datetime_at(0)
    try:
        for row in reader:
            line = reader.line_num
            found = _row(row, line, clock, first, last, group=group, count=count, domain=domain)
            if isinstance(found, Arrival):
                arrivals.append(found)
            else:
                problems.extend(Problem(shown, line, column, message) for column, message in found)
    except csv.Error as exc:
        problems.append(Problem(shown, reader.line_num, "", f"not valid CSV: {exc}"))
    if not arrivals and not problems:
        problems.append(
            Problem(shown, 1, "", f"no arrivals after the header, so sender group {group} sends nothing; add rows")
        )
    return TrafficCsv(path, [] if problems else arrivals, problems)


def _header_problems(shown: str, names: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    for name in names:
        if not name:
            problems.append(Problem(shown, 1, "", "the header has an empty column name (a stray comma?)"))
        elif name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(Problem(shown, 1, "", f"unknown column {name!r}{hint}; the columns are at, mta and rcpt"))
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(shown, 1, "", f"column {name!r} appears twice in the header"))
    if "at" not in names:
        problems.append(Problem(shown, 1, "", "the header needs an 'at' column (and optionally mta, rcpt)"))
    return problems


def _row(
    row: dict[str | None, str | list[str] | None],
    line: int,
    clock: SimClock,
    first: datetime,
    last: datetime,
    *,
    group: str,
    count: int,
    domain: str | None,
) -> Arrival | list[tuple[str, str]]:
    """One row's arrival, or its problems as ``(column, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    if row.get(None):
        problems.append(("", f"more fields than the header's columns ({', '.join(k for k in row if k)})"))
    raw_at = _cell(row, "at")
    t = math.nan
    try:
        when = datetime.fromisoformat(raw_at)
    except ValueError:
        problems.append(("at", f"expected a timestamp such as 2011-10-26 10:38, got {raw_at!r}"))
    else:
        if when.tzinfo is not None and clock.zone is None:
            problems.append(
                (
                    "at",
                    f"{raw_at!r} has a UTC offset, but the scenario's clock has no timezone, so the offset would be "
                    "dropped; remove it, or set clock.timezone",
                )
            )
            return problems
        t = clock.seconds(when)
        if not 0 <= t <= clock.end:
            problems.append(("at", f"{when} is outside the clock ({first} to {last})"))
    raw_mta = _cell(row, "mta") or "0"
    if not re.fullmatch(r"[0-9]+", raw_mta) or int(raw_mta) >= count:
        problems.append(
            (
                "mta",
                f"expected an MTA index from 0 to {count - 1} (sender group {group} has count: {count}), got {raw_mta!r}",
            )
        )
    rcpt = _cell(row, "rcpt") or f"user{line}"
    local, message = _recipient(rcpt, domain, group)
    if message:
        problems.append(("rcpt", message))
    if problems:
        return problems
    return Arrival(at=float(math.floor(t)), mta=int(raw_mta), rcpt_local=local)


def _cell(row: dict[str | None, str | list[str] | None], column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


def _recipient(rcpt: str, domain: str | None, group: str) -> tuple[str, str | None]:
    """The local part of *rcpt*, or a message saying what is wrong with it."""
    local, at, rest = rcpt.rpartition("@")
    if not at:
        local = rcpt
    example = f"user12@{domain}" if domain else "user12@example.com"
    if not _LOCAL_PART.fullmatch(local) or (at and not rest):
        return local, f"{rcpt!r} is not a recipient: give a local part such as user12 or an address such as {example}"
    if len(local) > _LOCAL_PART_MAX:
        return local, f"the local part of {rcpt!r} is longer than {_LOCAL_PART_MAX} characters (RFC 5321)"
    if at and domain is not None and rest.lower() != domain.lower():
        return local, (
            f"{rcpt!r} is not in {domain}, the domain sender group {group} sends to; "
            f"give just the local part ({local}) or an address @{domain}"
        )
    return local, None
