"""Message arrivals: seeded Poisson traffic with an hourly profile, or a CSV list.

Arrival times are whole simulated seconds (MTAs stamp queue files in whole
seconds). Each sending MTA draws from its own ``random.Random`` seeded from
the scenario seed and its name, so adding a sender does not shift the
others' traffic.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .clock import SimClock
from .errors import Problem, ScenarioError
from .scenario import TrafficSpec

__all__ = ["Arrival", "poisson_arrivals", "csv_arrivals", "BUSINESS_PROFILE"]

BUSINESS_PROFILE = (
    [0.2] * 7 + [0.6, 1.5, 2.0, 2.0, 1.8, 1.2, 1.8, 2.0, 1.8, 1.5, 1.0, 0.6] + [0.4] * 5
)
"""Hourly weights of a working day: quiet nights, busy mornings and afternoons."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message entering a sender's queue."""

    at: float
    mta: int  #: index of the MTA within its sender group
    rcpt_local: str


def _profile(spec: TrafficSpec) -> list[float]:
    if spec.profile == "flat":
        return [1.0] * 24
    if spec.profile == "business":
        return list(BUSINESS_PROFILE)
    return list(spec.profile)


def poisson_arrivals(
    spec: TrafficSpec, clock: SimClock, start: float, until: float, mta: int, rng: random.Random
) -> list[Arrival]:
    """Poisson arrivals for one MTA, thinned by the hourly profile (local time)."""
    assert spec.rate is not None
    weights = _profile(spec)
    mean = sum(weights) / 24
    peak = max(weights) / mean
    rate_per_s = spec.rate / 3600.0
    out: list[Arrival] = []
    t = start
    seen: set[float] = set()
    while True:
        t += rng.expovariate(rate_per_s * peak)
        if t >= until:
            break
        hour = clock.datetime_at(t).hour
        if rng.random() * peak > weights[hour] / mean:
            continue
        at = float(math.floor(t))
        if at in seen:  # one arrival per second per MTA keeps ids and order simple
            continue
        seen.add(at)
        out.append(Arrival(at=at, mta=mta, rcpt_local=f"user{rng.randrange(1, 500)}"))
    return out


def csv_arrivals(spec: TrafficSpec, clock: SimClock, base: Path | None, group: str, count: int) -> list[Arrival]:
    """Arrivals listed in a CSV file with columns ``at`` and optionally ``mta`` and ``rcpt``.

    ``at`` is a timestamp in the scenario's clock; ``mta`` the 0-based MTA
    index within the group (default 0). Errors name the file and line.
    """
    assert spec.csv is not None
    path = Path(spec.csv)
    if not path.is_absolute() and base is not None:
        path = base.parent / path
    shown = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([Problem(shown, None, "", f"cannot read traffic CSV: {exc.strerror or exc}")]) from None
    problems: list[Problem] = []
    out: list[Arrival] = []
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "at" not in reader.fieldnames:
            raise ScenarioError([Problem(shown, 1, "", "the header needs an 'at' column (and optionally mta, rcpt)")])
        for row in reader:
            line = reader.line_num
            try:
                when = datetime.fromisoformat((row.get("at") or "").strip())
            except ValueError:
                problems.append(Problem(shown, line, "at", f"expected a timestamp such as 2011-10-26 10:38, got {row.get('at')!r}"))
                continue
            t = clock.seconds(when)
            if not 0 <= t <= clock.end:
                problems.append(Problem(shown, line, "at", f"{when} is outside the scenario clock"))
                continue
            mta_text = (row.get("mta") or "0").strip()
            if not mta_text.isdigit() or int(mta_text) >= count:
                problems.append(Problem(shown, line, "mta", f"mta must be an index from 0 to {count - 1} for sender {group}, got {mta_text!r}"))
                continue
            rcpt = (row.get("rcpt") or f"user{line}").strip()
            out.append(Arrival(at=float(math.floor(t)), mta=int(mta_text), rcpt_local=rcpt.partition("@")[0]))
    if problems:
        raise ScenarioError(problems)
    return out
