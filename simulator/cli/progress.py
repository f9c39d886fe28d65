"""The progress display of a long run: simulated time, messages in queues, attempts per second (rich, stderr).

Shown only on a terminal (the caller decides); transient, so the tables
printed after the run are all that stays on the screen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..clock import SimClock
from ..engine import Progress as ProgressCallback
from ..engine import Pulse
from ..scenario import Scenario

__all__ = ["live_progress", "describe"]


def describe(pulse: Pulse, clock: SimClock, rate: float) -> str:
    """One line about a run in progress: ``2024-03-05T11:00:00  41,230 queued  1,200,000 attempts  52,000/s``."""
    return (
        f"{clock.iso(pulse.now)}  {pulse.submitted:,} submitted  {pulse.queued:,} in queues  "
        f"{pulse.attempts:,} SMTP attempts  {rate:,.0f}/s"
    )


@contextmanager
def live_progress(console: Console, scenario: Scenario) -> Iterator[ProgressCallback]:
    """A progress bar on *console* while the block runs; yields the ``Progress`` callback for ``run_scenario``."""
    clock = SimClock(scenario.clock)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"replaying {scenario.name}", total=1.0, line="")
        last = [time.monotonic(), 0]

        def progress(pulse: Pulse) -> None:
            now = time.monotonic()
            elapsed, done = now - last[0], pulse.attempts - last[1]
            rate = done / elapsed if elapsed > 0 else 0.0
            last[0], last[1] = now, pulse.attempts
            share = pulse.now / pulse.end if pulse.end else 1.0
            bar.update(task, completed=share, line=describe(pulse, clock, rate))

        yield progress
