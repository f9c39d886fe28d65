"""Running a sweep's runs: one task per (variant, seed), on a local process pool or a Dask cluster.

Both pools take the same ``Task`` objects and return the same row from
``run_task``, a plain function a worker process imports: the variant is
replayed with ``run_scenario`` (in memory unless the sweep says wire) and its
metrics are read from the run's ``Analysis`` with ``simulator.thresholds.observe``,
as a threshold would read them. Nothing here decides anything about a run's
content; a pool only carries tasks out.

Finished runs are appended to a journal (``runs.jsonl``) the moment they
arrive, keyed by ``run_key`` (variant, traffic files, seed, transport, tool
version), so an interrupted sweep keeps what finished and ``--resume`` runs
only what is missing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..api import run_scenario
from ..errors import RunError
from ..scenario import Scenario
from ..schema.thresholds import Threshold
from ..thresholds import observe

__all__ = ["Task", "run_task", "Pool", "local_pool", "dask_pool", "open_pool", "Journal", "execute"]


@dataclass(frozen=True)
class Task:
    """One run of a sweep: a validated variant and a seed, with the metrics to read from it."""

    key: str
    point: int
    seed: int
    scenario: Scenario
    transport: str
    metrics: tuple[tuple[str, Threshold], ...]
    keep: str | None = None  #: a folder for the run's results, when the sweep keeps them
    x: float | None = None  #: the goal axis's value, for goal-seeking runs


def _floors(run: Any) -> list[dict[str, Any]]:
    """For each recovery: when its backlog drained, when its last backlog message was first tried again."""
    a = run.analysis
    out = []
    for storm, floor in zip(a.storms, a.retry_floors, strict=True):
        out.append(
            {
                "server": storm.server,
                "at": a.clock.iso(storm.at),
                "backlog": storm.backlog,
                "drained": storm.drained,
                "last_retry": None if floor is None else floor.after,
                "last_retry_group": None if floor is None else floor.group,
                "last_retry_policy": None if floor is None else floor.policy,
                "turned_away": a.turned_away_between(storm.server, storm.at, storm.until),
            }
        )
    return out


def run_task(task: Task) -> dict[str, Any]:
    """Replay one task and return its row: metrics, wall time, and what limited each recovery."""
    started = time.perf_counter()
    run = run_scenario(task.scenario, seed=task.seed, transport=task.transport)
    values = {column: observe(threshold, run.analysis) for column, threshold in task.metrics}
    if task.keep is not None:
        from ..report import write_report

        write_report(run.write(task.keep))
    return {
        "key": task.key,
        "point": task.point,
        "seed": task.seed,
        "x": task.x,
        "metrics": values,
        "messages": run.analysis.messages,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "floors": _floors(run),
        "kept": task.keep,
    }


class Pool:
    """Workers behind a ``concurrent.futures`` executor: a local process pool or a Dask cluster's.

    Both kinds are driven by the same code (``execute``): submit every task,
    wait for the first to finish, record it, repeat.
    """

    def __init__(self, executor: Executor, slots: int, on_close: Callable[[], None] | None = None) -> None:
        self.executor = executor
        self.slots = slots  #: how many runs go on at once
        self._on_close = on_close

    def submit(self, task: Task) -> Future[dict[str, Any]]:
        """Start *task* on a worker."""
        return self.executor.submit(run_task, task)

    def close(self, cancel: bool = False) -> None:
        """Stop using the workers; with *cancel*, drop what has not started."""
        if cancel:
            # a local pool's workers are still busy with runs nobody will read: stop them now
            processes: dict[int, Any] = getattr(self.executor, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
            if isinstance(self.executor, ProcessPoolExecutor):
                self.executor.shutdown(wait=False, cancel_futures=True)
            else:  # Dask's executor cancels what it holds when it does not wait
                self.executor.shutdown(wait=False)
        else:
            self.executor.shutdown(wait=True)
        if self._on_close is not None:
            self._on_close()


def _quiet_worker() -> None:
    """Workers leave Ctrl-C to the parent, which stops them and keeps what finished."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Set for worker processes (as Dask's nanny does): a run is single-threaded Python, and numerical
libraries' idle threads spinning beside several workers made each run several times slower."""


def local_pool(workers: int | None = None) -> Pool:
    """A process pool on this machine (spawned worker processes that ignore Ctrl-C, numerical libraries
    single-threaded unless the environment says otherwise)."""
    for name, value in ONE_THREAD.items():
        os.environ.setdefault(name, value)  # inherited by the workers, which are spawned on demand
    slots = workers or os.cpu_count() or 1
    executor = ProcessPoolExecutor(slots, mp_context=get_context("spawn"), initializer=_quiet_worker)
    return Pool(executor, slots)


def dask_pool(address: str) -> Pool:
    """An existing Dask distributed cluster, reached at its scheduler's address (``tcp://host:8786``)."""
    from distributed import Client

    try:
        client = Client(address, set_as_default=False, timeout=30)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise RunError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    slots = max(1, sum(client.nthreads().values()))  # type: ignore[no-untyped-call]
    return Pool(client.get_executor(pure=False), slots, client.close)  # type: ignore[no-untyped-call]


def open_pool(workers: int | None = None, scheduler: str | None = None) -> Pool:
    """A Dask pool when a scheduler address is given, else a local process pool of *workers*."""
    if scheduler is not None:
        return dask_pool(scheduler)
    return local_pool(workers)


class Journal:
    """``runs.jsonl``: one line per finished run, appended as runs finish; read back by ``--resume``."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        self.added = 0  #: runs recorded since the journal was opened
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption
                if isinstance(row, dict) and "key" in row:
                    self.rows[row["key"]] = row
            self._rewrite()
        else:
            path.write_text("", encoding="utf-8")

    def _rewrite(self) -> None:
        with self.path.open("w", encoding="utf-8") as f:
            for row in self.rows.values():
                f.write(json.dumps(row) + "\n")

    def has(self, task: Task) -> bool:
        """Whether *task* finished before, with every metric it asks for."""
        row = self.rows.get(task.key)
        return row is not None and all(column in row["metrics"] for column, _ in task.metrics)

    def add(self, row: dict[str, Any]) -> None:
        """Record a finished run, on disk at once."""
        self.rows[row["key"]] = row
        self.added += 1
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


Progress = Callable[[int, int, int], None]
"""``progress(done, running, total)``, called as runs start and finish."""


def execute(
    tasks: Iterable[Task], pool: Pool, journal: Journal, progress: Progress | None = None, total: int | None = None
) -> Iterator[dict[str, Any]]:
    """Run *tasks* (those not in the journal) on *pool*, yielding each task's row as it is known.

    Rows come back in completion order; callers sort them. A ``KeyboardInterrupt``
    cancels what has not finished and propagates: the journal holds every run
    that finished.
    """
    tasks = list(tasks)
    todo: dict[str, Task] = {}
    for task in tasks:
        if journal.has(task):
            yield journal.rows[task.key]
        else:
            todo.setdefault(task.key, task)  # the same variant and seed twice runs once
    done_count = len(tasks) - len(todo)
    shown_total = total if total is not None else len(tasks)
    futures: dict[Any, Task] = {pool.submit(task): task for task in todo.values()}
    pending = set(futures)
    if progress is not None:
        progress(done_count, min(len(pending), pool.slots), shown_total)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = futures[future]
                try:
                    row = future.result()
                except Exception as exc:
                    raise RunError(f"run of point {task.point} seed {task.seed} failed: {exc}") from exc
                journal.add(row)
                done_count += 1
                yield row
            if progress is not None:
                progress(done_count, min(len(pending), pool.slots), shown_total)
    except BaseException:
        for future in pending:
            future.cancel()
        raise


def finite(value: float | None) -> float | None:
    """``None`` for NaN (no data); infinities stay (a backlog that never drained)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
