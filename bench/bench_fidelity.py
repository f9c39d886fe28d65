"""The ``postfix`` preset held to a real Postfix: 1, 10 and 50 messages through a short outage.

Run as root on a machine with Debian's postfix package (``.ci/run`` installs
it)::

    python bench/bench_fidelity.py [--counts 1,10,50] [--speed 10] [--keep DIR]

For each count, ``serve`` plays ``scenarios/live/short-outage.yaml`` on
127.0.0.1 (at --speed 10: refused for 12 s, then 421 at the greeting for
12 s, then up; served for 45 s), a private
Postfix (``simulator.live.postfix``: timers 4 s / 32 s / 4 s, lifetime
2 min) relays the messages to it, and its maillog is compared with the
preset on the same timeline (``smtp-outage fidelity``). Prints each
comparison's rounds and one table: attempts and connections real vs model,
the timing error, how many messages end the same, the rounds within one
connection. The reference is the real Postfix itself, measured in the same
run; ``every-attempt-connects`` is what a model without the dead-destination
hold would have connected (the preset before rounds went out one message at
a time connected every attempt of a retry round). Not a test: nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from simulator import Scenario
from simulator.live.fidelity import compare_log, parse_preset
from simulator.live.postfix import SCALED_TIMERS, relay_through_postfix, unavailable
from simulator.loader import load_scenario

PRESET = (
    "{preset: postfix, "
    + ", ".join(f"{k}: {v}" for k, v in SCALED_TIMERS.items() if k != "bounce_queue_lifetime")
    + "}"
)


def outage() -> Scenario:
    """scenarios/live/short-outage.yaml: at --speed 10, refused 0-12 s, 421 12-24 s, up from 24 s, served 45 s."""
    return load_scenario(Path(__file__).parents[1] / "scenarios" / "live" / "short-outage.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50", help="message counts, comma-separated")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per real second")
    parser.add_argument("--keep", type=Path, help="keep each run's maillog and results folder here")
    args = parser.parse_args()
    reason = unavailable()
    if reason is not None:
        print(f"cannot run a private Postfix here: {reason}", file=sys.stderr)
        return 2
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        folder = (args.keep or Path(tempfile.mkdtemp(prefix="bench-fidelity-"))) / f"{count}-messages"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        _, log = asyncio.run(relay_through_postfix(outage(), speed=args.speed, messages=count, out=folder))
        wall = time.perf_counter() - started
        fidelity = compare_log(log, parse_preset(PRESET), folder / "served")
        print(f"== {count} message(s), {wall:.0f}s of real time")
        print("\n".join(line for line in fidelity.lines() if not line.startswith(("queue id", " ")) or "real" in line))
        t = fidelity.totals()
        rows.append((count, t))
    print()
    print(
        "| messages | attempts real / model | connections real / model | every attempt connects | timing error max / median | same end | rounds within 1 |"
    )
    print("|---|---|---|---|---|---|---|")
    for count, t in rows:
        print(
            f"| {count} | {t['real_attempts']} / {t['model_attempts']} | {t['real_connections']} / "
            f"{t['model_connections']} ({t['real_connections'] / max(1, t['model_connections']):.2f}) | "
            f"{t['model_attempts']} | {t['timing_error_max']:g}s / {t['timing_error_median']:g}s | "
            f"{t['same_final']} of {t['messages']} | {t['rounds_within_one']} of {t['rounds']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
