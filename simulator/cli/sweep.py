"""``smtp-outage sweep``: many runs of a scenario's variants and seeds, on a process pool or a Dask cluster."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import OutageError
from ..sweep import SweepResult, load_sweep, run_sweep
from ..sweep.spec import show_value
from . import _fail, app, err, out

__all__ = ["sweep_command"]

EXIT_INTERRUPTED = 130


def _cell(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ratio" and isinstance(value, float) and math.isfinite(value):
        return f"{100 * value:.1f}%"
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer() and unit != "duration":
        return f"{value:.2f}"
    return show_value(value, "duration" if unit == "duration" else "number")


def render_points(result: SweepResult) -> Table:
    """The points of a sweep: axes, then each metric's mean and 95% interval over the seeds."""
    sweep = result.sweep
    axes = [(a.name, a.unit) for a in sweep.axes]
    if sweep.goal is not None:
        axes.append((sweep.goal.axis.name, sweep.goal.axis.unit))
    table = Table(
        title=f"{sweep.name}: {len(result.points)} point(s) x {len(sweep.seeds)} seed(s)", title_justify="left"
    )
    for name, _ in axes:
        table.add_column(name)
    for m in sweep.metrics:
        table.add_column(f"{m.column} mean [95% CI]", justify="right")
    for p in result.points:
        cells = [_cell(p.get(name), unit) for name, unit in axes]
        for m in sweep.metrics:
            unit = m.threshold.metric.unit
            mean, lo, hi = (p.get(f"{m.column}.{k}") for k in ("mean", "ci_low", "ci_high"))
            ci = f" [{_cell(lo, unit)}, {_cell(hi, unit)}]" if lo is not None and hi is not None else ""
            cells.append(_cell(mean, unit) + ci)
        table.add_row(*cells)
    return table


@app.command("sweep")
def sweep_command(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML file (scenarios/sweeps/)")],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="local worker processes (default: one per core)")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/sweeps/<sweep name>)")
    ] = None,
    wire: Annotated[
        bool, typer.Option("--wire", help="real SMTP on loopback instead of the in-memory transport")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="keep the runs already in the folder; run only what is missing")
    ] = False,
) -> None:
    """Run every point of SWEEP_FILE with every seed (or search its goal) and write runs, points and a report.

    Exits 0 when done, 2 for a bad sweep file, 1 when a run fails, 130 when
    interrupted (what finished is written; --resume continues).
    """
    try:
        sweep = load_sweep(sweep_file)
    except OutageError as exc:
        raise _fail(exc) from None
    transport = "wire" if wire else None
    try:
        if err.is_terminal:
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("runs, {task.fields[running]} running"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=err, transient=True) as bar:
                task = bar.add_task(f"sweep {sweep.name}", total=None, running=0)

                def progress(done: int, running: int, total: int) -> None:
                    bar.update(task, completed=done, total=total, running=running)

                result = run_sweep(
                    sweep,
                    out=out_dir,
                    workers=workers,
                    scheduler=scheduler,
                    resume=resume,
                    transport=transport,
                    progress=progress,
                )
        else:
            result = run_sweep(
                sweep, out=out_dir, workers=workers, scheduler=scheduler, resume=resume, transport=transport
            )
    except OutageError as exc:
        raise _fail(exc) from None
    out.print(render_points(result))
    for label, answer in result.answers:
        if label != "base":
            out.print(f"{label}:", highlight=False)
        for sentence in answer.sentences:
            out.print(sentence, highlight=False, soft_wrap=True, markup=False)
    reused = len(result.runs) - result.ran
    err.print(
        f"{len(result.runs)} run(s) ({result.ran} now, {reused} from the journal) in {result.wall_seconds:.1f}s; "
        f"results: {result.out}/runs.parquet, runs.csv, points.parquet, points.csv, sweep.json, report.html",
        highlight=False,
        soft_wrap=True,
    )
    if result.interrupted:
        err.print(f"interrupted: {len(result.runs)} finished run(s) kept; --resume runs the rest", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
