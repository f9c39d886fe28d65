"""The time-frozen bridge between SimPy and asyncio.

SimPy owns the clock. ``drive()`` steps the environment; whenever every
event of the current instant has run and attempts are waiting, it runs them
on the wire concurrently (``asyncio.gather`` under a concurrency cap) while
simulated time stands still, then resolves their SimPy events in submission
order, never in socket completion order. Same scenario, same seed: same
ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import simpy

from .transport import Attempt, Outcome, Transport

__all__ = ["Bridge"]


class Bridge:
    """Collects attempts submitted at one instant and runs them together."""

    def __init__(self, env: simpy.Environment, transport: Transport, concurrency: int = 64) -> None:
        self.env = env
        self.transport = transport
        self.concurrency = concurrency
        self._pending: list[tuple[Attempt, simpy.Event]] = []
        self.batches = 0
        self.submitted = 0
        self.wire_seconds = 0.0
        #: a transport that never waits (the in-memory one) runs each batch without the event loop
        self._now: Callable[[Attempt], Outcome] | None = getattr(transport, "attempt_now", None)

    def submit(self, attempt: Attempt) -> simpy.Event:
        """Queue *attempt* for the current instant; the event's value is its ``Outcome``."""
        event = self.env.event()
        self._pending.append((attempt, event))
        self.submitted += 1
        return event

    async def _run(self, batch: list[tuple[Attempt, simpy.Event]]) -> list[Outcome]:
        if len(batch) == 1:
            return [await self.transport.attempt(batch[0][0])]
        if len(batch) <= self.concurrency:
            return list(await asyncio.gather(*(self.transport.attempt(a) for a, _ in batch)))
        # More attempts than the cap: a fixed pool of workers takes them in
        # submission order (as a FIFO semaphore would, without a task per
        # attempt); outcomes go to their submission index.
        outcomes: list[Outcome | None] = [None] * len(batch)
        todo = iter(enumerate(batch))
        attempt = self.transport.attempt

        async def worker() -> None:
            for i, (a, _) in todo:
                outcomes[i] = await attempt(a)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return outcomes  # type: ignore[return-value]

    async def flush(self) -> None:
        """Run every pending attempt on the wire and resolve them in submission order."""
        batch, self._pending = self._pending, []
        started = time.perf_counter()
        outcomes = await self._run(batch)
        self.wire_seconds += time.perf_counter() - started
        self.batches += 1
        for (_, event), outcome in zip(batch, outcomes, strict=True):
            event.succeed(outcome)

    def flush_now(self, attempt_now: Callable[[Attempt], Outcome]) -> None:
        """``flush`` for a transport that never waits: each attempt in submission order, then resolved in that order."""
        batch, self._pending = self._pending, []
        started = time.perf_counter()
        outcomes = [attempt_now(a) for a, _ in batch]
        self.wire_seconds += time.perf_counter() - started
        self.batches += 1
        for (_, event), outcome in zip(batch, outcomes, strict=True):
            event.succeed(outcome)

    async def drive(
        self,
        until: float,
        before_flush: Callable[[], Awaitable[None]] | None,
        after_flush: Callable[[], None],
        progress: Callable[[float], None] | None = None,
        stop: Callable[[], bool] | None = None,
        *,
        pace: Callable[[float], Awaitable[bool]] | None = None,
    ) -> bool:
        """Run the simulation to *until*, flushing attempts at the end of each instant.

        *before_flush* brings the servers' listeners in line with the model
        (timeline changes of this instant); *after_flush* checks for server
        errors. *progress* gets the simulated time now and then. *stop* is
        asked after each complete instant (its events run, its attempts
        flushed); when it says so, the run ends there. Returns True when it
        was stopped before *until*.

        With *pace* (a live run) each instant waits until ``pace(t)`` lets it
        run (False: stop there), and every instant ends with *before_flush*,
        attempts or not, so that the listeners follow the timeline as it
        happens.
        With a transport that never waits (the in-memory one), batches run
        without the event loop.
        """
        env = self.env
        step, peek = env.step, env.peek
        last_report = time.monotonic()
        steps = 0
        run_now = self._now
        while True:
            if peek() > until:
                break
            if pace is not None and peek() > env.now and not await pace(peek()):
                return True
            step()
            if peek() > env.now:  # the instant is complete
                if self._pending:
                    if before_flush is not None:
                        await before_flush()
                    if run_now is not None:
                        self.flush_now(run_now)
                    else:
                        await self.flush()
                    after_flush()
                elif pace is not None:
                    if before_flush is not None:
                        await before_flush()
                    after_flush()
                if stop is not None and stop():
                    return True
            steps += 1
            if progress is not None and steps % 4096 == 0:
                now = time.monotonic()
                if now - last_report > 0.1:
                    last_report = now
                    progress(env.now)
        if progress is not None:
            progress(until)
        return False
