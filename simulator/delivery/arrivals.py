"""Messages arrive when the clock reaches them, with one event in SimPy's queue at a time.

The design that made every message's process up front put one timeout per
distinct arrival time into SimPy's queue before the clock moved: each took
its place in SimPy's event order then (time, priority, and an event id
counted from the start). A million messages meant a million pending
timeouts, a quarter of a kilobyte each. ``Arrivals`` keeps that order and
holds one: it takes the same block of event ids at the start and puts
each arrival time's wake-up into the queue, with its own id from that
block, only when the one before it has run. Same scenario and seed, same
event order, same ledger.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable
from heapq import heappush
from typing import Any, cast

import simpy
from simpy.events import NORMAL

__all__ = ["Arrivals"]


class Arrivals:
    """Calls *arrive* at each distinct time of *submitted* (sorted), from *first* on, in SimPy's order.

    It stands in SimPy's queue as an event of its own (SimPy's ``step``
    needs only ``callbacks`` and ``_ok``). Made at the instant the old
    design made its timeouts, it reserves as many event ids as there are
    distinct arrival times, as making that many timeouts would have.
    """

    __slots__ = ("_arrive", "_base", "_eid", "_env", "_next", "_ok", "_submitted", "callbacks")

    def __init__(self, env: simpy.Environment, submitted: array[float], first: int, arrive: Callable[[], None]) -> None:
        self._env = env
        self._submitted = submitted
        self._arrive = arrive  #: starts the messages arriving now
        self._base = env.now  #: the old timeouts' delays were counted from here
        self.callbacks: tuple[Any, ...] | None = None
        self._ok = True
        times = _distinct_after(submitted, first, env.now)
        # SimPy (4.x) numbers events from one counter, ``env._eid``: take a block for the arrival times.
        counter = cast(Any, env)._eid
        self._eid = next(counter)
        cast(Any, env)._eid = itertools.count(self._eid + times) if times else itertools.count(self._eid)
        self._next = first
        while self._next < len(submitted) and submitted[self._next] == env.now:
            self._next += 1  # arrived already, at the start
        self._push()

    def _push(self) -> None:
        """Queue the wake-up for the next distinct arrival time, if any, and step past that time's messages."""
        submitted, i = self._submitted, self._next
        if i >= len(submitted):
            return
        base, at = self._base, submitted[i]
        while i < len(submitted) and submitted[i] == at:
            i += 1
        self._next = i
        self.callbacks = _FIRE
        heappush(cast(Any, self._env)._queue, (base + (at - base), NORMAL, self._eid, self))
        self._eid += 1

    def _fire(self) -> None:
        self._arrive()
        self._push()


def _fire(arrivals: Arrivals) -> None:
    arrivals._fire()


_FIRE: tuple[Any, ...] = (_fire,)


def _distinct_after(submitted: array[float], first: int, now: float) -> int:
    """How many distinct values ``submitted[first:]`` holds (sorted, each after *now*)."""
    count, last = 0, now
    for at in itertools.islice(submitted, first, None):
        if at != last:
            count += 1
            last = at
    return count
