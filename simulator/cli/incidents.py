"""``smtp-outage incidents``: the incident library, one line per incident."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from ..errors import OutageError
from ..schema.library import PREFIX, incidents
from . import _fail, app, out


@app.command("incidents")
def incidents_command(
    as_json: Annotated[bool, typer.Option("--json", help="print the list as JSON")] = False,
) -> None:
    """List the incident library: name, date, source and what happened. Run one with `run incident:NAME`."""
    try:
        found = incidents()
    except OutageError as exc:
        raise _fail(exc) from None
    if as_json:
        rows = [
            {
                "name": i.name,
                "date": i.date,
                "source": i.source,
                "url": i.url,
                "summary": i.summary,
                "file": str(i.path),
            }
            for i in found
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"Incident library ({len(found)}): smtp-outage run {PREFIX}NAME", title_justify="left")
    for column in ("name", "date", "source", "what happened"):
        table.add_column(column, overflow="fold")
    for i in found:
        table.add_row(i.name, i.date, f"{i.source}\n{i.url}", i.summary)
    out.print(table)
