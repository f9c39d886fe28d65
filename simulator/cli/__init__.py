"""The ``smtp-outage`` command line: a thin client of ``simulator.run_scenario``.

Tables go to stdout, progress and errors to stderr (progress only on a
terminal). ``exit_code()`` is the one place that maps outcomes to codes:
0 ok, 1 run error, 2 bad input, 99 threshold breached (or a golden summary
that differs: a regression, like a breached threshold), 130 and 143 for a
run stopped by SIGINT or SIGTERM (its folder marked partial).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..analysis import Analysis
from ..api import FORMATS, Interrupt, Run, run_scenario
from ..errors import OutageError, Problem, RunError, ScenarioError
from ..golden import comparable, differences, load_golden, write_golden
from ..junit import write_junit
from ..loader import load_scenario
from ..regression import check_scenario
from ..scenario import Scenario
from ..schema.states import STATES
from ..thresholds import format_outcomes

__all__ = [
    "app",
    "main",
    "exit_code",
    "EXIT_OK",
    "EXIT_RUN_ERROR",
    "EXIT_BAD_INPUT",
    "EXIT_THRESHOLD",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
]

EXIT_OK, EXIT_RUN_ERROR, EXIT_BAD_INPUT, EXIT_THRESHOLD = 0, 1, 2, 99
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143: the shell's convention

app = typer.Typer(
    name="smtp-outage",
    help="Replay SMTP outages: simulated sending MTAs retry against real SMTP servers on loopback.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _console(stderr: bool = False) -> Console:
    """A console for stdout or stderr; in a pipe or a file, lines are never folded."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=4096, soft_wrap=True)
    return console


out = _console()
err = _console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"smtp-outage {version('smtp-outage')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Replay SMTP outages: simulated sending MTAs retry against real SMTP servers on loopback."""


from ..policies_cli import policies_app  # noqa: E402  (a sub-app; mounted below)

app.add_typer(policies_app, name="policies")


def exit_code(error: BaseException | None = None, *, thresholds_failed: bool = False, interrupted_by: str = "") -> int:
    """Map a run's outcome to the process exit code."""
    if isinstance(error, ScenarioError):
        return EXIT_BAD_INPUT
    if isinstance(error, (RunError, OutageError)) or error is not None:
        return EXIT_RUN_ERROR
    if interrupted_by:
        return EXIT_SIGTERM if interrupted_by == "SIGTERM" else EXIT_SIGINT
    return EXIT_THRESHOLD if thresholds_failed else EXIT_OK


@contextmanager
def stop_on_signals(interrupt: Interrupt) -> Iterator[None]:
    """While inside: SIGINT and SIGTERM ask the run to stop at the current simulated instant.

    After the first, the usual handlers are back, so a second signal stops
    the process at once (its folder then still says ``running``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def restore() -> None:
        for sig in signals:
            signal.signal(sig, previous[sig])

    def handle(signum: int, frame: FrameType | None) -> None:
        interrupt.request(signal.Signals(signum).name)
        restore()

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        restore()


def _fail(error: OutageError) -> typer.Exit:
    if isinstance(error, ScenarioError):
        for problem in error.problems:
            err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
    else:
        err.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(exit_code(error))


STATE_STYLE = {"delivered": "green", "stranded": "magenta", "lost": "red", "bounced": "yellow", "queued": "cyan"}


def _state_table(title: str, first: str, rows: list[tuple[str, dict[str, int]]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first, overflow="fold")
    table.add_column("messages", justify="right")
    for state in STATES:
        table.add_column(state, justify="right", style=STATE_STYLE[state])
    for label, counts in rows:
        total = sum(counts.values())
        cells = [f"{counts[s]}" + (f" ({100 * counts[s] / total:.0f}%)" if total and counts[s] else "") for s in STATES]
        table.add_row(label, str(total), *cells)
    return table


def render(run: Run, console: Console) -> None:
    """Print the run's tables: overall, by submission window, by sender group, delays, recoveries."""
    a = run.analysis
    s = run.scenario
    where = {"wire": "on the wire", "live": "on the wire, live"}.get(run.transport, "SMTP sessions, in memory")
    console.print(
        f"[bold]{s.name}[/bold] seed {run.seed}: {a.messages} messages, {a.attempts} attempts "
        f"({a.connections} {where}), {run.clock.iso(0)} to {run.clock.iso(run.clock.end)}, "
        f"{run.wall_seconds:.1f}s"
    )
    console.print(_state_table("What happened to the mail", "", [("all mail", a.counts)]))
    console.print(_state_table("By submission time", "sent or received", [(w.label, w.counts) for w in a.windows]))
    console.print(
        _state_table(
            "By sender",
            "sender group (policy)",
            [(g if a.policy_of(g) == g else f"{g} ({a.policy_of(g)})", c) for g, c in a.by_group.items()],
        )
    )
    _delay_and_recovery_tables(a, console)
    outside = {name: f for name, f in a.foreign.items() if f["sessions"]}
    if outside:
        where = ", ".join(
            f"{f['sessions']} at {name} ({f['messages']} message(s) kept apart)" for name, f in outside.items()
        )
        console.print(
            f"Foreign sessions (connections the run did not open): {where}; they change no row of the ledger.",
            highlight=False,
        )
    stranded = a.counts["stranded"]
    if stranded:
        console.print(
            f"{stranded} message(s) were accepted with a 250 and exist only on a failed disk: "
            "their senders believe they were delivered."
        )


def _delay_and_recovery_tables(a: Analysis, console: Console) -> None:
    from ..durations import format_duration

    def d(seconds: float | None) -> str:
        return "not drained" if seconds is None else format_duration(60 * round(seconds / 60))

    if a.delays:
        table = Table(title="Delivery delay (submission to first 250)", title_justify="left")
        for column in ("sender group", "delivered", "p50", "p95", "max"):
            table.add_column(column, justify="left" if column == "sender group" else "right")
        for group, v in a.delays.items():
            table.add_row(group, str(v["count"]), d(v["p50"]), d(v["p95"]), d(v["max"]))
        console.print(table)
    if a.recoveries:
        table = Table(title="Recovery storms", title_justify="left")
        columns = (
            "server",
            "back at",
            "backlog",
            "in senders' queues",
            "on backup MX",
            "peak/min",
            "first hour",
            "90% drained",
            "all drained",
            "turned away",
        )
        for column in columns:
            table.add_column(column, justify="left" if column in ("server", "back at") else "right")
        for r in a.recoveries:
            table.add_row(
                r["server"],
                r["at"].replace("T", " ")[:16],
                str(r["backlog"]),
                str(r["backlog_senders"]),
                str(r["backlog_relays"]),
                str(r["peak_attempts_per_minute"]),
                str(r["attempts_first_hour"]),
                d(r["drained_90_seconds"]),
                d(r["drained_seconds"]),
                str(r["turned_away_421"]),
            )
        console.print(table)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/<scenario name>)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print summary.json to stdout instead of tables")] = False,
    memory: Annotated[bool, typer.Option("--memory", help="in-memory transport, no sockets (quick what-ifs)")] = False,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="write report.html and its figures into the results folder")
    ] = True,
    golden: Annotated[
        Path | None,
        typer.Option("--golden", help="compare summary.json with this expected one (exit 99 if it differs)"),
    ] = None,
    update_golden: Annotated[
        bool, typer.Option("--update-golden", help="write the run's summary as the --golden file instead of comparing")
    ] = False,
    formats: Annotated[
        str,
        typer.Option(
            "--format",
            help="ledger and events as csv (messages.csv, events.jsonl), parquet (messages.parquet, events.parquet) or both",
        ),
    ] = "csv",
) -> None:
    """Replay SCENARIO and write messages.csv, summary.json, events.jsonl, timeline.json and report.html.

    Exits 99 when a threshold declared in the scenario fails or the summary
    differs from the --golden file.
    """
    try:
        if update_golden and golden is None:
            raise ScenarioError(
                [Problem("--update-golden", None, "", "needs --golden FILE to say which file to write")]
            )
        if formats not in FORMATS:
            raise ScenarioError(
                [Problem("--format", None, "", f"unknown format {formats!r}: use csv, parquet or both")]
            )
        loaded = load_scenario(scenario, seed=seed)
        expected = load_golden(golden) if golden is not None and not update_golden else None
    except ScenarioError as exc:
        raise _fail(exc) from None
    target = out_dir or Path("results") / loaded.name
    interrupt = Interrupt()
    try:
        with stop_on_signals(interrupt):
            result = _replay(loaded, seed, target, "memory" if memory else "wire", interrupt, formats)
    except OutageError as exc:
        raise _fail(exc) from None
    if result.interrupted_by:
        err.print(
            f"interrupted by {result.interrupted_by} at {result.clock.iso(result.stopped_at)} (simulated): "
            f"partial results in {target} (summary.json status: partial)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(exit_code(interrupted_by=result.interrupted_by))
    if as_json:
        sys.stdout.write(json.dumps(result.summary(), indent=2) + "\n")
    else:
        render(result, out)
    files = {
        "csv": "messages.csv, summary.json, events.jsonl, timeline.json",
        "parquet": "messages.parquet, summary.json, events.parquet, timeline.json",
        "both": "messages.csv, messages.parquet, summary.json, events.jsonl, events.parquet, timeline.json",
    }
    err.print(f"results: {target}/{files[formats]}", highlight=False, soft_wrap=True)
    tables = err if as_json else out
    outcomes = result.thresholds()
    _print_lines(tables, format_outcomes(outcomes), heading="Thresholds" if outcomes else None)
    mismatch = False
    if golden is not None and update_golden:
        write_golden(golden, result.summary())
        err.print(f"golden: wrote {golden}", highlight=False)
    elif golden is not None and expected is not None:
        diff = differences(expected, comparable(result.summary()))
        mismatch = bool(diff)
        lines = (
            [f"✗ summary differs from {golden}:", *(f"    {d}" for d in diff)]
            if diff
            else [f"✓ summary matches {golden}"]
        )
        _print_lines(tables, lines)
    if report:
        try:
            from ..report import write_report

            page = write_report(target)
        except OutageError as exc:
            raise _fail(exc) from None
        err.print(f"report: {page}", highlight=False)
    code = exit_code(thresholds_failed=mismatch or any(not o.ok for o in outcomes))
    if code:
        raise typer.Exit(code)


def _replay(
    loaded: Scenario, seed: int | None, target: Path, transport: str, interrupt: Interrupt, formats: str = "csv"
) -> Run:
    """Run the scenario into *target*, with a progress line on a terminal (``simulator.cli.progress``)."""
    if not err.is_terminal:
        return run_scenario(loaded, seed=seed, out=target, transport=transport, interrupt=interrupt, formats=formats)
    from .progress import live_progress

    with live_progress(err, loaded) as progress:
        return run_scenario(
            loaded,
            seed=seed,
            out=target,
            transport=transport,
            progress=progress,
            interrupt=interrupt,
            formats=formats,
        )


def _print_lines(console: Console, lines: list[str], heading: str | None = None) -> None:
    """Print check lines, failures in red."""
    if heading:
        console.print(heading, style="bold", highlight=False)
    for line in lines:
        console.print(
            line, style="red" if line.lstrip().startswith("✗") else None, markup=False, highlight=False, soft_wrap=True
        )


@app.command()
def check(
    scenario: Annotated[list[Path], typer.Argument(help="scenario YAML file(s) with thresholds or a golden summary")],
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML to this file")] = None,
    memory: Annotated[bool, typer.Option("--memory", help="in-memory transport, no sockets")] = False,
    seed: Annotated[int | None, typer.Option(help="override the scenarios' seeds")] = None,
) -> None:
    """Run each SCENARIO and check its thresholds (and NAME.golden.json beside it, if any).

    One line per threshold with the observed value. Exit 0 when all pass,
    99 when one fails, 1 when a run fails, 2 for bad input.
    """
    checks = []
    for path in scenario:
        result = check_scenario(path, transport="memory" if memory else "wire", seed=seed)
        checks.append(result)
        _print_lines(err if result.error else out, result.lines())
    if junit is not None:
        write_junit(junit, checks)
        err.print(f"junit: {junit}", highlight=False)
    codes = {exit_code(c.error, thresholds_failed=c.failed) for c in checks}
    code = next((c for c in (EXIT_BAD_INPUT, EXIT_RUN_ERROR, EXIT_THRESHOLD) if c in codes), EXIT_OK)
    if code:
        raise typer.Exit(code)


@app.command("report")
def report_command(
    results: Annotated[Path, typer.Argument(help="a results folder written by `smtp-outage run`")],
) -> None:
    """Write report.html and its figures (PNG) for an existing RESULTS folder (a run's or a sweep's)."""
    from ..report import write_report
    from ..report.sweep import is_sweep_folder, write_sweep_report

    try:
        page = write_sweep_report(results) if is_sweep_folder(results) else write_report(results)
    except OutageError as exc:
        raise _fail(exc) from None
    out.print(str(page), markup=False, highlight=False, soft_wrap=True)


@app.command("compare")
def compare_command(
    baseline: Annotated[Path, typer.Argument(help="the scenario as it happened")],
    variants: Annotated[list[Path], typer.Argument(help="what-if variants (same senders and seed)")],
    memory: Annotated[bool, typer.Option("--memory", help="in-memory transport, no sockets")] = False,
) -> None:
    """Run a baseline and its variants; show, message by message, what each variant changes."""
    from ..compare import compare

    try:
        loaded = [load_scenario(p) for p in (baseline, *variants)]
        transport = "memory" if memory else "wire"
        results = [run_scenario(s, transport=transport) for s in loaded]
    except OutageError as exc:
        raise _fail(exc) from None
    base = results[0]
    table = Table(title="Final states", title_justify="left")
    table.add_column("state")
    for r in results:
        table.add_column(r.scenario.name, justify="right")
    for state in STATES:
        table.add_row(state, *(str(r.counts[state]) for r in results))
    out.print(table)
    for variant in results[1:]:
        cmp = compare(base, variant)
        if not cmp.same_messages:
            out.print(
                f"{cmp.variant}: submits different messages than {cmp.baseline} (senders, traffic or seed differ); only totals compare"
            )
            continue
        out.print(
            f"{cmp.variant}: {cmp.saved} message(s) stranded, lost or bounced in {cmp.baseline} would have been delivered; "
            f"{cmp.worse} delivered there would not have been.",
            highlight=False,
        )
        for (a, b), n in sorted(cmp.moves.items(), key=lambda kv: -kv[1]):
            out.print(f"  {a} -> {b}: {n}", highlight=False)


@app.command()
def validate(scenario: Annotated[list[Path], typer.Argument(help="scenario YAML file(s)")]) -> None:
    """Check scenario files without running them; one line per problem."""
    failed: ScenarioError | None = None
    for path in scenario:
        try:
            loaded = load_scenario(path)
        except ScenarioError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
            failed = exc
            continue
        out.print(
            f"{path}: ok ({loaded.name}: {len(loaded.servers)} server(s), {len(loaded.timeline)} timeline entries, "
            f"{sum(s.count for s in loaded.senders)} sending MTA(s))",
            highlight=False,
        )
    if failed is not None:
        raise typer.Exit(exit_code(failed))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None


# Further commands live in modules of this package (simulator/cli/<name>.py), each
# registering itself on ``app`` when imported here, one line per module.
from . import fidelity as _fidelity  # noqa: E402, F401  (smtp-outage fidelity)
from . import importlog  # noqa: E402, F401  (smtp-outage import)
from . import incidents as _incidents  # noqa: E402,F401  (smtp-outage incidents)
from . import serve as _serve  # noqa: E402, F401  (smtp-outage serve)
from . import sweep as _sweep  # noqa: E402,F401  (smtp-outage sweep)
