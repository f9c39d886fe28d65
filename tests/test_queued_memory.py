"""A message waiting in a queue is a few small objects: no generator and no SimPy process.

At the end of a run whose only MX is down throughout, every message is
still queued. The design with a SimPy process per message held 5,916
generators and processes there, and 12.9 MB of traced memory (2,175 bytes
per queued message, all of the run's data included); a ``Flight`` standing
in SimPy's queue holds 5.2 MB (877 bytes).

Messages yet to arrive hold one event in SimPy's queue between them, and
arrive in the order one timeout per arrival time, made at the start, gave.
"""

from __future__ import annotations

import gc
import tracemalloc
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simpy

from simulator import run_scenario
from simulator.delivery import Arrivals
from simulator.engine import Pulse

QUEUED = """\
# 3,000 messages, all sent while the only MX is down; it stays down past the clock's end.
name: all-queued
seed: 3
clock: {start: 2024-03-04 00:00, end: 2024-03-05 00:00}
servers:
  - {name: mx, domains: [example.com]}
timeline:
  - {at: 2024-03-04 00:00, server: mx, event: down}
senders:
  - {name: postfix, count: 10, policy: postfix, traffic: {rate: 300/d}}
  - {name: exim, count: 10, policy: exim, traffic: {rate: 300/d}}
"""


def test_a_queued_message_holds_no_generator_and_no_process(tmp_path: Path) -> None:
    path = tmp_path / "queued.yaml"
    path.write_text(QUEUED, encoding="utf-8")
    seen: dict[str, int] = {}

    def at_the_end(pulse: Pulse) -> None:
        if pulse.now < pulse.end or seen:
            return
        gc.collect()
        objects = gc.get_objects()
        seen["generators"] = sum(1 for o in objects if type(o).__name__ == "generator")
        seen["processes"] = sum(1 for o in objects if isinstance(o, simpy.Process))
        seen["queued"] = pulse.queued
        seen["bytes"], _ = tracemalloc.get_traced_memory()

    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        run = run_scenario(path, transport="memory", out=tmp_path / "out", progress=at_the_end)
    finally:
        tracemalloc.stop()
    assert run.counts["queued"] == seen["queued"] == 5916
    assert seen["generators"] == 0
    assert seen["processes"] == 0
    assert (seen["bytes"] - before) / seen["queued"] < 1500, seen


def _arrival_log(one_at_a_time: bool) -> tuple[list[tuple[str, float]], int]:
    """Arrivals at 0, 0, 5, 5, 7, 9, 9, 12 beside other events at the same times; the order they run in.

    The other events: a timeout at 5 made before the arrivals (it runs
    first), and timeouts at 5, 9 and 12 made after them (they run after).
    Returns the log and the most arrival wake-ups SimPy's queue ever held.
    """
    env = simpy.Environment()
    submitted = array("d", [0, 0, 5, 5, 7, 9, 9, 12])
    log: list[tuple[str, float]] = []
    state = {"next": 0, "most": 0}

    def arrive() -> None:
        while state["next"] < len(submitted) and submitted[state["next"]] == env.now:
            log.append((f"message {state['next']}", env.now))
            state["next"] += 1

    def other(name: str) -> Callable[[Any], None]:
        return lambda _event: log.append((name, env.now))

    env.timeout(5).callbacks.append(other("made before, at 5"))
    arrive()
    if one_at_a_time:
        Arrivals(env, submitted, state["next"], arrive)
    else:  # the design before: a timeout per distinct arrival time, made up front
        last = env.now
        for at in submitted[state["next"] :]:
            if at != last:
                last = at
                env.timeout(at - env.now).callbacks.append(lambda _event: arrive())
    for at in (5, 9, 12):
        env.timeout(at).callbacks.append(other(f"made after, at {at}"))
    while env.peek() < float("inf"):
        state["most"] = max(state["most"], sum(1 for entry in env._queue if entry[3].__class__ is not simpy.Timeout))
        env.step()
    return log, state["most"]


def test_arrivals_run_in_the_order_a_timeout_per_arrival_time_had() -> None:
    log, most = _arrival_log(one_at_a_time=True)
    before, _ = _arrival_log(one_at_a_time=False)
    assert log == before
    assert [name for name, t in log if t == 5] == ["made before, at 5", "message 2", "message 3", "made after, at 5"]
    assert [name for name, t in log if t == 12] == ["message 7", "made after, at 12"]
    assert most == 1  # one arrival wake-up in SimPy's queue at a time, not one per arrival time
