"""A message waiting in a queue is a few small objects: no generator and no SimPy process.

At the end of a run whose only MX is down throughout, every message is
still queued. The design with a SimPy process per message held 5,916
generators and processes there, and 12.9 MB of traced memory (2,175 bytes
per queued message, all of the run's data included); a ``Flight`` standing
in SimPy's queue holds 5.2 MB (877 bytes).
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import simpy

from simulator import run_scenario
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
