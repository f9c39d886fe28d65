"""Loading a large scenario: the loader against the two-pass pure-Python parse it replaced, side by side.

Run:  python bench/bench_loader.py [--entries N] [--rounds R]

Writes one scenario with N timeline entries (backups a minute apart, 250,000
by default) into a temporary folder and measures, in interleaved rounds:

* ``reference``: what the loader used to do before it validated anything,
  ``yaml.compose()`` and ``yaml.safe_load()`` of the same text with PyYAML's
  pure-Python ``SafeLoader`` (two parses);
* ``parse``: ``simulator.schema.document.parse``, one parse (libyaml's C
  parser when PyYAML has it), with the checks for duplicate keys, depth and
  aliases;
* ``load_scenario``: the whole loader: that parse, the schema, the
  cross-field rules and the work estimate.

Prints milliseconds per timeline entry (medians) and the ratios against the
reference. Nothing here passes or fails on timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from simulator.loader import load_scenario
from simulator.schema.document import LOADER, parse


def scenario_text(entries: int) -> str:
    """A valid scenario whose timeline has *entries* backups, one a minute."""
    start = datetime(2011, 1, 1)
    lines = [
        "name: large-timeline",
        f"clock: {{start: {start:%Y-%m-%d %H:%M}, end: {start + timedelta(minutes=entries + 1):%Y-%m-%d %H:%M}}}",
        "servers:",
        "  - {name: mx, domains: [atnex.example]}",
        "senders:",
        "  - {name: s, policy: postfix, traffic: {at: [2011-01-01 00:30]}}",
        "timeline:",
    ]
    for i in range(entries):
        when = start + timedelta(minutes=i + 1)
        lines.append(f"  - {{at: {when:%Y-%m-%d %H:%M}, server: mx, event: backup, note: scheduled backup {i}}}")
    return "\n".join(lines) + "\n"


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.yaml"
        text = scenario_text(args.entries)
        path.write_text(text, encoding="utf-8")
        print(
            f"{args.entries:,} timeline entries, {len(text) / 2**20:.1f} MB; parser: {LOADER.__name__}", file=sys.stderr
        )

        def reference() -> None:
            yaml.compose(text, Loader=yaml.SafeLoader)
            yaml.safe_load(text)

        work = {"reference": reference, "parse": lambda: parse(text), "load_scenario": lambda: load_scenario(path)}
        seconds: dict[str, list[float]] = {name: [] for name in work}
        for _ in range(args.rounds):
            for name, job in work.items():
                seconds[name].append(timed(job))
    ref = statistics.median(seconds["reference"])
    print(f"{'':<16}{'ms/entry':>10}{'x reference':>14}")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        print(f"{name:<16}{1000 * median / args.entries:>10.4f}{median / ref:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
