"""``smtp-outage serve``: the scenario's servers on fixed loopback ports, its timeline in scaled real time."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from ..clock import SimClock
from ..engine import Interrupt
from ..errors import OutageError, Problem, ScenarioError
from ..events import Event
from ..live import describe, serve_scenario
from ..loader import load_scenario
from . import EXIT_OK, _fail, app, err, exit_code, out, render

__all__ = ["serve_command"]


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("serve")
def serve_command(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    speed: Annotated[float, typer.Option("--speed", help="simulated seconds per real second (60: a minute a second)")],
    port_base: Annotated[
        int, typer.Option("--port-base", help="the first server's port on 127.0.0.1, the next one +1, ... (0: any)")
    ] = 2525,
    senders: Annotated[
        str,
        typer.Option("--senders", help="on: the scenario's simulated senders run alongside; off: only outside MTAs"),
    ] = "off",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/<scenario name>-live)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="write report.html when the run ends")] = True,
) -> None:
    """Serve SCENARIO's servers on 127.0.0.1 with its timeline in scaled real time, for real MTAs to deliver to.

    Prints which port is which server and each change as it happens. Every
    message received is recorded; when the clock ends (or on Ctrl-C, marked
    partial) the results folder is written as `run` writes it. Exit 130 on
    SIGINT, 143 on SIGTERM.
    """
    try:
        if senders not in ("on", "off"):
            raise ScenarioError([Problem("--senders", None, "", f"is on or off, got {senders!r}")])
        loaded = load_scenario(scenario, seed=seed)
    except ScenarioError as exc:
        raise _fail(exc) from None
    target = out_dir or Path("results") / f"{loaded.name}-live"
    clock = SimClock(loaded.clock)
    domains = {s.name: s for s in loaded.servers}

    def ready(addresses: dict[str, tuple[str, int]]) -> None:
        for name, (host, port) in addresses.items():
            spec = domains[name]
            _say(f"{name}  {host}:{port}  {', '.join(spec.domains)} (MX {spec.preference}, {spec.initially})")
        real = timedelta(seconds=round(clock.end / speed))
        _say(
            f"{loaded.name}: {clock.iso(0)} to {clock.iso(clock.end)} at {speed:g}x, {real} real time; "
            f"simulated senders {senders}; Ctrl-C stops and writes what was received"
        )

    def changed(event: Event) -> None:
        line = describe(event, clock)
        if line is not None:
            _say(line)

    async def main() -> object:
        interrupt, stop = Interrupt(), asyncio.Event()
        loop = asyncio.get_running_loop()

        def interrupted(name: str) -> None:
            interrupt.request(name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupted, sig.name)
        try:
            return await serve_scenario(
                loaded,
                speed=speed,
                port_base=port_base,
                senders=senders == "on",
                out=target,
                interrupt=interrupt,
                stop=stop,
                on_ready=ready,
                on_event=changed,
                report=report,
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        result = asyncio.run(main())
    except OutageError as exc:
        raise _fail(exc) from None
    from ..live import LiveResult

    assert isinstance(result, LiveResult)
    render(result.run, out)
    if result.stopped_at is not None:
        err.print(
            f"interrupted by {result.stopped_by or 'a stop'} at {clock.iso(result.stopped_at)}: "
            f"partial results in {target}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(exit_code(interrupted_by=result.stopped_by))
    err.print(f"results: {target}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_OK)
