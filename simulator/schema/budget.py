"""How much work a scenario asks for, estimated before it runs, and refused when it cannot finish.

A replay builds every message up front and retries each as its policy says;
the report draws the timeline. A scenario that asks for billions of
messages, a retry every microsecond, or a backup every minute for a year
would run out of memory or never end, so ``budget_problems`` estimates:

* messages: per sender group, ``count`` x ``rate`` x the hours its traffic
  runs (the ``at`` lists and CSV rows as given), at most ``MAX_MESSAGES``
  in all;
* attempts for one message that never gets through: the group's policy
  driven to the end of the clock (or its lifetime), at most
  ``MAX_ATTEMPTS_PER_MESSAGE``;
* scheduled backups: at most ``MAX_BACKUPS`` in all.

Each problem says what to change. The estimates are upper bounds on what a
scenario can cost, checked in milliseconds.
"""

from __future__ import annotations

from typing import Any

from ..clock import SimClock
from ..policies import build_policy
from ..policies.simulate import all_attempts_fail
from ..scenario import BackupsEvent, Scenario

__all__ = ["budget_problems", "estimated_messages", "MAX_MESSAGES", "MAX_ATTEMPTS_PER_MESSAGE", "MAX_BACKUPS"]

MAX_MESSAGES = 1_000_000
MAX_ATTEMPTS_PER_MESSAGE = 20_000
MAX_BACKUPS = 10_000


def estimated_messages(s: Scenario, group: int, clock: SimClock, csv_rows: int | None = None) -> float:
    """Messages sender group number *group* submits (expected, for rate traffic)."""
    sender = s.senders[group]
    t = sender.traffic
    if t.at is not None:
        return float(sender.count * len(t.at))
    if t.csv is not None:
        return float(csv_rows or 0)
    assert t.rate is not None
    lo = clock.seconds(t.start) if t.start is not None else 0.0
    hi = clock.seconds(t.until) if t.until is not None else clock.end
    return sender.count * t.rate * max(0.0, hi - lo) / 3600.0


def budget_problems(s: Scenario, csv_rows: dict[int, int] | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """``(location, message)`` for each estimate over its limit; *csv_rows* counts each CSV group's rows."""
    clock = SimClock(s.clock)
    errors: list[tuple[tuple[Any, ...], str]] = []
    counts = [estimated_messages(s, i, clock, (csv_rows or {}).get(i)) for i in range(len(s.senders))]
    total = sum(counts)
    if total > MAX_MESSAGES:
        worst = max(range(len(counts)), key=counts.__getitem__)
        errors.append(
            (
                ("senders", worst, "traffic"),
                f"the senders would submit about {total:,.0f} messages ({s.senders[worst].name}: {counts[worst]:,.0f}); "
                f"a replay takes at most {MAX_MESSAGES:,}: lower the rate or the count, or shorten the clock",
            )
        )
    hours = max(clock.end / 3600.0, 1 / 3600)
    policies: list[tuple[tuple[Any, ...], Any]] = [
        (("senders", i, "policy"), g.policy) for i, g in enumerate(s.senders)
    ]
    policies += [(("servers", i, "relay", "policy"), v.relay.policy) for i, v in enumerate(s.servers) if v.relay]
    seen: set[str] = set()
    for loc, spec in policies:
        key = repr(spec)
        if key in seen:
            continue
        seen.add(key)
        tries = all_attempts_fail(build_policy(spec), hours=hours, max_attempts=MAX_ATTEMPTS_PER_MESSAGE)
        if len(tries.attempts) + len(tries.suspended) >= MAX_ATTEMPTS_PER_MESSAGE:
            errors.append(
                (
                    loc,
                    f"this policy would try one message more than {MAX_ATTEMPTS_PER_MESSAGE:,} times within the clock "
                    "(its retry gaps are too short); lengthen the gaps or shorten the lifetime",
                )
            )
    backups = 0.0
    for i, ev in enumerate(s.timeline):
        if isinstance(ev, BackupsEvent):
            until = clock.seconds(ev.until) if ev.until is not None else clock.end
            backups += max(0.0, until - clock.seconds(ev.at)) / ev.every
            if backups > MAX_BACKUPS:
                errors.append(
                    (
                        ("timeline", i, "every"),
                        f"the scheduled backups come to more than {MAX_BACKUPS:,}; back up less often or for a shorter time",
                    )
                )
                break
    return errors
