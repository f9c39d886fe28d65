"""``smtp-outage policies``: list the sender presets and show what one does in an outage.

``policies list`` prints every preset with its summary; ``policies show NAME``
drives the preset with a message whose every attempt fails
(``simulator.policies.simulate``) and prints the attempt offsets, delay
warnings and bounce, then the settings and their source. ``--json`` prints
the same as JSON. Tables go to stdout; errors are one line on stderr with
exit code 2.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from .durations import format_duration
from .policies import PRESETS, FailureKind, preset_names
from .policies._common import describe_params
from .policies.simulate import Outcome, all_attempts_fail

__all__ = ["policies_app"]

EXIT_BAD_INPUT = 2

policies_app = typer.Typer(
    name="policies",
    help="Sender retry presets of real MTAs and providers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _hm(seconds: float) -> str:
    return format_duration(seconds)


def _num(seconds: float) -> str:
    return f"{seconds:.0f}" if float(seconds).is_integer() else f"{seconds:.3f}"


def _overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--set takes KEY=VALUE (e.g. maximal_queue_lifetime=2d), got {item!r}")
        out[key.strip()] = value.strip()
    return out


@policies_app.command("list")
def list_presets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered presets."""
    rows = []
    for name in preset_names():
        preset = PRESETS[name]
        policy = preset.build(preset.params())
        rows.append({"name": name, "summary": preset.summary, "source": policy.source})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Sender retry presets")
    table.add_column("name", style="bold")
    table.add_column("summary")
    for row in rows:
        table.add_row(row["name"], row["summary"])
    Console().print(table)


def _show_table(name: str, summary: str, source: str, settings: dict[str, Any], outcome: Outcome) -> None:
    console = Console()
    console.print(f"[bold]{name}[/bold]: {summary}", highlight=False)
    console.print(f"source: {source}", markup=False, highlight=False)
    console.print(
        f"every attempt fails ({outcome.failure}; attempt cost {outcome.attempt_cost:g}s), "
        f"horizon {_hm(outcome.horizon)}",
        markup=False,
        highlight=False,
    )
    events: list[tuple[float, str]] = [(t, "attempt") for t in outcome.attempts]
    events += [(t, "deferred without connecting") for t in outcome.suspended]
    events += [(t, "delay warning") for t in outcome.warnings]
    if outcome.bounce_at is not None:
        events.append((outcome.bounce_at, f"bounce {outcome.bounce_status}: {outcome.bounce_reason}"))
    table = Table(title=f"{len(outcome.attempts)} attempts")
    for column in ("#", "offset s", "offset", "gap", "event"):
        table.add_column(column, justify="right" if column != "event" else "left")
    previous: float | None = None
    count = 0
    for t, what in sorted(events, key=lambda e: (e[0], e[1] != "attempt")):
        gap = ""
        if what == "attempt":
            count += 1
            gap = "" if previous is None else _hm(t - previous)
            previous = t
        table.add_row(str(count) if what == "attempt" else "", _num(t), _hm(t), gap, what)
    console.print(table)
    if outcome.bounce_at is None:
        console.print(f"no bounce within {_hm(outcome.horizon)}", highlight=False)
    settings_table = Table(title="settings")
    settings_table.add_column("name")
    settings_table.add_column("value")
    for key, value in settings.items():
        settings_table.add_row(key, str(value))
    console.print(settings_table)


@policies_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Preset name, e.g. postfix (see: policies list).")],
    hours: Annotated[float, typer.Option("--hours", help="How long to follow the message.")] = 72.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    failure: Annotated[
        str, typer.Option("--failure", help="How every attempt fails: refused, timeout, tempfail, dropped, permfail.")
    ] = "refused",
    cost: Annotated[float, typer.Option("--cost", help="Simulated seconds each attempt takes.")] = 0.0,
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for settings that say random.")] = 0,
) -> None:
    """Show when a preset retries, warns and bounces a message whose every attempt fails."""
    preset = PRESETS.get(name)
    if preset is None:
        raise _fail(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")
    try:
        kind = FailureKind(failure)
    except ValueError:
        raise _fail(
            f"--failure must be one of refused, timeout, tempfail, dropped, permfail; got {failure!r}"
        ) from None
    if kind is FailureKind.SUSPENDED:
        raise _fail("--failure suspended is decided by the policy itself; choose refused, timeout, ...")
    if hours <= 0 or cost < 0:
        raise _fail("--hours must be greater than 0 and --cost at least 0")
    try:
        params = preset.params.model_validate(_overrides(settings or []))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise _fail(f"{name}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    policy = preset.build(params)
    outcome = all_attempts_fail(policy, hours=hours, failure=kind, attempt_cost=cost, seed=seed)
    shown = describe_params(params)
    if as_json:
        data: dict[str, object] = {
            "name": name,
            "summary": preset.summary,
            "source": policy.source,
            "settings": shown,
        }
        data.update(outcome.as_dict())
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    _show_table(name, preset.summary, policy.source, shown, outcome)
