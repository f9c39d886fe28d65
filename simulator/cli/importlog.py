"""``smtp-outage import``: a receiving server's mail log to a traffic CSV or a scenario skeleton."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from ..durations import parse_duration
from ..errors import OutageError, Problem, ScenarioError
from ..maillog import FORMATS, ImportOptions, import_files
from ..policies import preset_names
from . import _fail, app, out

__all__ = ["import_command"]

KEY_ENV = "SMTP_OUTAGE_PSEUDONYM_KEY"


def _bad(option: str, message: str) -> ScenarioError:
    return ScenarioError([Problem(option, None, "", message)])


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad("--timezone", f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin") from None


def _when(option: str, text: str | None, zone: tzinfo | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad(option, f"expected a timestamp such as 2024-03-05 08:00, got {text!r}") from None
    if zone is not None:
        return when.replace(tzinfo=zone) if when.tzinfo is None else when.astimezone(zone)
    return when.replace(tzinfo=None)


@app.command("import")
def import_command(
    logs: Annotated[list[Path], typer.Argument(help="the log files (rotated .1, .2.gz ... too); read oldest first")],
    log_format: Annotated[str, typer.Option("--format", help="postfix (maillog) or exim (mainlog)")],
    out_csv: Annotated[
        Path | None, typer.Option("--out", help="write one traffic CSV (at,mta,rcpt) for an existing scenario")
    ] = None,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="write a scenario skeleton and its CSVs (NAME-traffic/)")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="keep arrivals from this time (the log's clock)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="keep arrivals before this time")] = None,
    year: Annotated[
        int | None, typer.Option("--year", help="year of the first syslog line (default: from the file's date)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="the log's time zone, e.g. Europe/Berlin (default: unstated)")
    ] = None,
    default_policy: Annotated[
        str, typer.Option("--default-policy", help="preset for clients no organisation matches")
    ] = "postfix",
    organisations: Annotated[
        Path | None,
        typer.Option("--organisations", help="your organisation table (YAML), read before the built-in one"),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", envvar=KEY_ENV, help="pseudonym key, to keep tokens stable across imports"),
    ] = None,
    raw_addresses: Annotated[
        bool, typer.Option("--raw-addresses", help="write real recipient local parts instead of pseudonyms")
    ] = False,
    hide_domains: Annotated[bool, typer.Option("--hide-domains", help="pseudonymise domains too")] = False,
    min_gap: Annotated[
        str, typer.Option("--min-gap", help="propose gaps in arrivals at least this long as outages")
    ] = "30m",
    backfill: Annotated[
        bool,
        typer.Option("--backfill", help="move the backlog after each proposed outage into it, and apply the outages"),
    ] = False,
    server: Annotated[
        str | None, typer.Option("--server", help="name of the server in the scenario (default: the log's host)")
    ] = None,
    max_mtas: Annotated[int, typer.Option("--max-mtas", help="sending hosts per group beyond this share MTAs")] = 200,
) -> None:
    """Read a receiving server's mail log and write the traffic it received.

    Arrivals from other servers (not local or logged-in submissions) become a
    traffic CSV (--out) or a scenario skeleton (--scenario): one sender group
    per sending organisation, a commented timeline of proposed outages.
    Recipients are pseudonymous unless --raw-addresses. Unreadable lines are
    counted and shown, never fatal.
    """
    try:
        if log_format not in FORMATS:
            raise _bad("--format", f"expected postfix or exim, got {log_format!r}")
        if default_policy not in preset_names():
            raise _bad("--default-policy", f"unknown preset {default_policy!r}; see smtp-outage policies list")
        if server is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", server):
            raise _bad("--server", f"names use lowercase letters, digits, '.', '_' and '-', got {server!r}")
        if year is not None and not 1970 <= year <= 2100:
            raise _bad("--year", f"expected a year such as 2024, got {year}")
        try:
            gap = parse_duration(min_gap)
        except ValueError as exc:
            raise _bad("--min-gap", str(exc)) from None
        if gap < 60:
            raise _bad("--min-gap", f"must be at least 1m, got {min_gap!r}")
        zone = _zone(timezone)
        options = ImportOptions(
            format="postfix" if log_format == "postfix" else "exim",
            year=year,
            zone=zone,
            start=_when("--from", start, zone),
            end=_when("--to", end, zone),
            default_policy=default_policy,
            organisations=organisations,
            key=key.encode("utf-8") if key else None,
            raw_addresses=raw_addresses,
            hide_domains=hide_domains,
            max_mtas=max_mtas,
        )
        done = import_files(
            logs,
            options,
            out=out_csv,
            scenario=scenario,
            server=server,
            min_gap=timedelta(seconds=gap),
            move_backlog=backfill,
        )
    except OutageError as exc:
        raise _fail(exc) from None
    for line in done.lines():
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if out_csv is not None:
        out.print(
            f"wrote {out_csv}: give the sender group that reads it count: {done.mtas} (one MTA per sending host)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        shown = ", ".join(str(p) for p in done.written[:4]) + (", ..." if len(done.written) > 4 else "")
        out.print(
            f"wrote {shown} ({len(done.written)} files; the scenario validates)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
