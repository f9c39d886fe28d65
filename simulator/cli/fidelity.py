"""``smtp-outage fidelity``: a real sending MTA's log next to what a preset predicts on the same server timeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import OutageError
from . import EXIT_OK, EXIT_THRESHOLD, _fail, app, out

__all__ = ["fidelity_command"]


@app.command("fidelity")
def fidelity_command(
    log: Annotated[list[Path], typer.Argument(help="the sending MTA's maillog (rotated files in any order)")],
    preset: Annotated[
        str,
        typer.Option(
            "--preset", help="the policy to hold it to, e.g. '{preset: postfix, minimal_backoff_time: 4s, ...}'"
        ),
    ],
    results: Annotated[Path, typer.Option("--results", help="the results folder of the serve run it delivered to")],
    server: Annotated[
        str | None, typer.Option("--server", help="the server it relayed to (default: found from the log's port)")
    ] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="seconds an attempt may be off")] = 1.0,
    log_format: Annotated[str, typer.Option("--format", help="postfix or exim")] = "postfix",
    year: Annotated[int | None, typer.Option("--year", help="the year of the log's first line")] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="the log's time zone, e.g. Europe/Berlin (default: this machine's)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
) -> None:
    """Print, message by message, a real MTA's attempts next to the preset's prediction, with verdicts and totals.

    Exit 0 when every message agrees (attempts within the tolerance, the
    same end) and every retry round is within one connection of the model;
    99 when not (like a failed threshold); 2 for bad input.
    """
    from ..errors import Problem, ScenarioError
    from ..live.fidelity import compare_log, parse_preset

    try:
        if log_format not in ("postfix", "exim"):
            raise ScenarioError([Problem("--format", None, "", f"is postfix or exim, got {log_format!r}")])
        missing = [str(p) for p in log if not p.is_file()]
        if missing:
            raise ScenarioError([Problem(missing[0], None, "", "no such log file")])
        zone = None
        if timezone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                zone = ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ScenarioError(
                    [
                        Problem(
                            "--timezone",
                            None,
                            "",
                            f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin",
                        )
                    ]
                ) from None
        spec = parse_preset(preset)
        result = compare_log(
            log,
            spec,
            results,
            server=server,
            tolerance=tolerance,
            log_format="exim" if log_format == "exim" else "postfix",
            year=year,
            zone=zone,
        )
    except OutageError as exc:
        raise _fail(exc) from None
    if as_json:
        document = {
            "log": result.log,
            "policy": result.policy,
            "server": result.server,
            "speed": result.speed,
            "scan_phase": result.phase,
            "totals": result.totals(),
            "messages": [
                {
                    "queue_id": m.queue_id,
                    "arrived": m.arrived,
                    "real": [[t, c] for t, c in m.real],
                    "model": [[t, c] for t, c in m.model],
                    "end": [m.real_final, m.real_final_at, m.model_final, m.model_final_at],
                    "verdict": m.verdict,
                }
                for m in result.messages
            ],
            "rounds": [
                [r.at, r.real_connected, r.real_suspended, r.model_connected, r.model_suspended] for r in result.rounds
            ],
        }
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
    else:
        for line in result.lines():
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    totals = result.totals()
    good = totals["agree"] == totals["messages"] and totals["rounds_within_one"] == totals["rounds"]
    raise typer.Exit(EXIT_OK if good else EXIT_THRESHOLD)
