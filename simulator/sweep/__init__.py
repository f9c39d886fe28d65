"""Sweeps: many runs of one scenario's variants and seeds, on a process pool or a Dask cluster.

``run_sweep("scenarios/sweeps/recovery-capacity.yaml")`` loads the sweep file
(``simulator.sweep.spec``), runs every point with every seed (or searches the
goal's axis, ``simulator.sweep.seek``) on a local process pool or, given a
scheduler address, an existing Dask distributed cluster
(``simulator.sweep.run``), and writes into the results folder:

* ``runs.jsonl``: the journal, one line per finished run (``--resume`` reads it);
* ``runs.parquet`` / ``runs.csv``: one row per run; ``points.parquet`` /
  ``points.csv``: per point the mean and 95% confidence interval across seeds
  (``simulator.sweep.tables``);
* ``sweep.json``: the sweep, its axes and metrics, and the goal's answer;
* ``report.html``: the sweep report (``simulator.report.sweep``);
* ``runs/NNNN-seedS/``: each run's own results folder, when the sweep says ``keep: true``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .run import Journal, Pool, Task, execute, open_pool
from .seek import Answer, seek
from .spec import Axis, Point, Sweep, goal_value, load_sweep, run_key
from .tables import point_table, write_table

__all__ = ["run_sweep", "load_sweep", "SweepResult", "Sweep", "Answer", "OUTPUT_FILES"]

OUTPUT_FILES = ("runs.jsonl", "runs.parquet", "runs.csv", "points.parquet", "points.csv", "sweep.json", "report.html")
"""The files a sweep writes into its results folder."""

Progress = Callable[[int, int, int], None]


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: its rows, its points, the goal's answers."""

    sweep: Sweep
    out: Path
    runs: list[dict[str, Any]]
    points: list[dict[str, Any]]
    answers: list[tuple[str, Answer]] = field(default_factory=list)
    interrupted: bool = False
    ran: int = 0  #: runs carried out now (not read back from the journal)
    transport: str = "memory"
    run_seconds: float = 0.0  #: from the first run submitted to the last one back (pool start-up included)
    wall_seconds: float = 0.0


class _Counter:
    """Progress across several batches of tasks (a goal search submits a batch per round)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0
        self.total = 0

    def batch(self, size: int) -> Progress | None:
        if self.progress is None:
            return None
        done, total, report = self.done, self.total + size, self.progress
        self.total = total

        def inner(d: int, running: int, t: int) -> None:
            report(done + d, running, total)

        return inner

    def finished(self, size: int) -> None:
        self.done += size


def _row(task: Task, result: dict[str, Any], columns: dict[str, Any]) -> dict[str, Any]:
    return {
        "point": task.point,
        **columns,
        "seed": task.seed,
        **result["metrics"],
        "messages": result["messages"],
        "wall_seconds": result["wall_seconds"],
        "key": task.key,
        "kept": result.get("kept"),
        "floors": result.get("floors", []),
        "x": task.x,
    }


def run_sweep(
    sweep: Sweep | str | Path,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    transport: str | None = None,
    progress: Progress | None = None,
    pool: Pool | None = None,
) -> SweepResult:
    """Run a sweep and write its results folder; ``ScenarioError`` for a bad sweep file (nothing runs then).

    *workers* sizes the local process pool; *scheduler* (``tcp://host:8786``) uses an
    existing Dask cluster instead; *resume* keeps the runs of an earlier sweep into
    the same folder; *transport* overrides the sweep's (``memory`` or ``wire``).
    A ``KeyboardInterrupt`` stops the sweep: what finished is written and the result
    says ``interrupted``.
    """
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    started = time.perf_counter()
    target = Path(out) if out is not None else Path("results") / "sweeps" / sweep.name
    target.mkdir(parents=True, exist_ok=True)
    journal = Journal(target / "runs.jsonl", resume)
    mode = transport or sweep.spec.transport
    tool = version("smtp-outage")
    metrics = tuple((m.column, m.threshold) for m in sweep.metrics)
    counter = _Counter(progress)
    runs: list[dict[str, Any]] = []
    answers: list[tuple[str, Answer]] = []
    next_point = [0]

    def task(values: tuple[tuple[Axis, Any], ...], point: int, seed: int, x: float | None = None) -> Task:
        scenario = sweep.variant(values)
        keep = str(target / "runs" / f"{point:04d}-seed{seed}") if sweep.spec.keep else None
        return Task(run_key(scenario, seed, mode, tool), point, seed, scenario, mode, metrics, keep, x)

    def carry_out(batch: list[tuple[Task, dict[str, Any]]], the_pool: Pool) -> list[dict[str, Any]]:
        tasks = [t for t, _ in batch]
        results = {r["key"]: r for r in execute(tasks, the_pool, journal, counter.batch(len(tasks)))}
        counter.finished(len(tasks))
        rows = [_row(t, results[t.key], columns) for t, columns in batch]
        runs.extend(rows)
        return rows

    owned = pool is None
    the_pool = pool if pool is not None else open_pool(workers, scheduler)
    running = time.perf_counter()
    interrupted = False
    try:
        if sweep.goal is None:
            batch = [(task(p.values, p.index, seed), p.columns()) for p in sweep.points for seed in sweep.seeds]
            carry_out(batch, the_pool)
        else:
            goal = sweep.goal
            per_round = max(1, the_pool.slots // max(1, len(sweep.seeds)))
            for p in sweep.points:

                def evaluate(xs: list[float], p: Point = p) -> dict[float, list[dict[str, Any]]]:
                    batch = []
                    ids = {}
                    for x in xs:
                        ids[x] = next_point[0]
                        next_point[0] += 1
                        value = goal_value(goal, x)
                        columns = {**p.columns(), goal.axis.name: goal.axis.column(value)}
                        for seed in sweep.seeds:
                            batch.append((task((*p.values, (goal.axis, value)), ids[x], seed, x), columns))
                    rows = carry_out(batch, the_pool)
                    return {x: [r for r in rows if r["point"] == ids[x]] for x in xs}

                answer, _ = seek(goal, evaluate, per_round)
                answers.append((p.label(), answer))
    except KeyboardInterrupt:
        interrupted = True
        runs = _journal_rows(sweep, journal, runs)
    finally:
        if owned:
            the_pool.close(cancel=interrupted)
    result = SweepResult(
        sweep,
        target,
        sorted(runs, key=lambda r: (r["point"], r["seed"])),
        [],
        answers,
        interrupted,
        journal.added,
        mode,
    )
    result.run_seconds = time.perf_counter() - running
    write_sweep(result)
    result.wall_seconds = time.perf_counter() - started
    return result


def _journal_rows(sweep: Sweep, journal: Journal, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """After an interruption: the rows already collected plus the grid runs the journal holds."""
    if sweep.goal is not None:
        return runs
    seen = {(r["point"], r["seed"]) for r in runs}
    mode_rows = []
    for p in sweep.points:
        for seed in sweep.seeds:
            if (p.index, seed) in seen:
                continue
            # the journal knows runs by key; rebuild the key of each grid run to find it
            for row in journal.rows.values():
                if row["point"] == p.index and row["seed"] == seed:
                    mode_rows.append(
                        {
                            "point": p.index,
                            **p.columns(),
                            "seed": seed,
                            **row["metrics"],
                            "messages": row["messages"],
                            "wall_seconds": row["wall_seconds"],
                            "key": row["key"],
                            "kept": row.get("kept"),
                            "floors": row.get("floors", []),
                            "x": None,
                        }
                    )
                    break
    return runs + mode_rows


def axis_columns(sweep: Sweep) -> list[str]:
    """The axis columns of the tables: the grid's axes, then the goal's."""
    names = [a.name for a in sweep.axes]
    if sweep.goal is not None:
        names.append(sweep.goal.axis.name)
    return names


def _plain(value: Any) -> Any:
    """JSON-ready data: infinities as the strings ``inf`` / ``-inf``."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_sweep(result: SweepResult) -> Path:
    """Write the tables, ``sweep.json`` and the report of *result* into its folder."""
    sweep, out = result.sweep, result.out
    axes = axis_columns(sweep)
    metrics = [m.column for m in sweep.metrics]
    write_table(result.runs, ["point", *axes, "seed", *metrics, "messages", "wall_seconds", "key"], out / "runs")
    ratios = {m.column: 1.0 for m in sweep.metrics if m.threshold.metric.unit == "ratio"}
    result.points = point_table(result.runs, axes, metrics, ratios)
    if sweep.goal is not None:  # goal points in the order of the grid, then of the searched axis
        order = {a.name: [a.column(v) for v in a.values] for a in sweep.axes}
        result.points.sort(
            key=lambda p: (*(order[n].index(p[n]) if p[n] in order[n] else 0 for n in order), p[sweep.goal.axis.name])  # type: ignore[union-attr]
        )
    stats = [f"{m}.{k}" for m in metrics for k in ("mean", "ci_low", "ci_high", "min", "max")]
    write_table(result.points, ["point", *axes, "runs", *stats], out / "points")
    kept: dict[int, list[str]] = {}
    for r in result.runs:
        if r.get("kept"):
            kept.setdefault(r["point"], []).append(f"runs/{Path(r['kept']).name}")
    document = {
        "sweep": sweep.name,
        "description": sweep.spec.description,
        "file": sweep.shown,
        "scenario": sweep.base.name,
        "scenario_file": sweep.base_shown,
        "seeds": sweep.seeds,
        "transport": result.transport,
        "axes": [
            {"name": a.name, "path": a.target.path, "unit": a.unit, "values": [a.column(v) for v in a.values]}
            for a in sweep.axes
        ]
        + (
            [
                {
                    "name": sweep.goal.axis.name,
                    "path": sweep.goal.axis.target.path,
                    "unit": sweep.goal.axis.unit,
                    "values": [],
                }
            ]
            if sweep.goal is not None
            else []
        ),
        "metrics": [
            {
                "column": m.column,
                "metric": m.threshold.metric.name,
                "unit": m.threshold.metric.unit,
                "kind": m.threshold.metric.kind,
            }
            for m in sweep.metrics
        ],
        "goal": [{"point": label, **answer.to_json(sweep.goal)} for label, answer in result.answers]
        if sweep.goal
        else [],
        "runs": len(result.runs),
        "points": len(result.points),
        "ran": result.ran,
        "interrupted": result.interrupted,
        "kept": {str(k): v for k, v in kept.items()},
        "version": version("smtp-outage"),
    }
    (out / "sweep.json").write_text(json.dumps(_plain(document), indent=1) + "\n", encoding="utf-8")
    from ..report.sweep import write_sweep_report

    return write_sweep_report(out)
