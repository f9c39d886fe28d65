"""Message arrivals: seeded Poisson traffic with an hourly profile, or a CSV list.

Arrival times are whole simulated seconds (MTAs stamp queue files in whole
seconds). Each sending MTA draws from its own ``random.Random`` seeded from
the scenario seed and its name, so adding a sender does not shift the
others' traffic.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from .clock import SimClock
from .errors import ScenarioError
from .scenario import TrafficSpec
from .schema.inputs import Arrival, read_traffic_csv

__all__ = ["Arrival", "poisson_arrivals", "csv_arrivals", "BUSINESS_PROFILE"]

BUSINESS_PROFILE = [0.2] * 7 + [0.6, 1.5, 2.0, 2.0, 1.8, 1.2, 1.8, 2.0, 1.8, 1.5, 1.0, 0.6] + [0.4] * 5
"""Hourly weights of a working day: quiet nights, busy mornings and afternoons."""


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


def csv_arrivals(
    spec: TrafficSpec,
    clock: SimClock,
    base: Path | None,
    group: str,
    count: int,
    *,
    domain: str | None = None,
) -> list[Arrival]:
    """Arrivals listed in a CSV file with columns ``at`` and optionally ``mta`` and ``rcpt``.

    The file is read by ``simulator.schema.inputs.read_traffic_csv``, the
    reader ``validate`` uses, so a file that validates is a file that runs.
    *domain* is the group's destination domain (recipients' domains must
    match it). Raises ``ScenarioError`` naming the file and line.
    """
    found = read_traffic_csv(spec, clock, base=base, group=group, count=count, domain=domain)
    if found.problems:
        raise ScenarioError(found.problems)
    return found.arrivals
