"""Message arrivals: seeded Poisson traffic with an hourly profile, or a CSV list.

Arrival times are whole simulated seconds (MTAs stamp queue files in whole
seconds). Each sending MTA draws from its own ``random.Random`` seeded from
the scenario seed and its name, so adding a sender does not shift the
others' traffic.
"""

from __future__ import annotations

import math
import random
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from .clock import SimClock
from .delivery import Mta
from .errors import ScenarioError
from .ledger import Ledger, Sender, as_numpy
from .policies import build_policy
from .routing import Dns, Resolver
from .scenario import Scenario, TrafficSpec
from .schema.inputs import Arrival, read_traffic_csv

__all__ = ["Arrival", "poisson_arrivals", "csv_arrivals", "plan_arrivals", "BUSINESS_PROFILE"]

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


def plan_arrivals(scenario: Scenario, clock: SimClock, dns: Dns, seed: int) -> tuple[Ledger, list[Mta]]:
    """Every message's arrival, sender and recipient as the ledger's first columns, and the sending MTAs.

    Messages are numbered in submission order (by time, then sender group,
    MTA and position in the group's list of arrivals), without an object per
    message: arrivals are collected in arrays and sorted with numpy.
    """
    mtas: list[Mta] = []
    times: array[float] = array("d")
    keys: array[int] = array("q")  #: group, MTA and position in the group's list, packed to sort by
    mta_of: array[int] = array("i")
    rcpt_of: array[int] = array("i")
    locals_: dict[str, int] = {}
    senders: list[Sender] = []
    end = clock.end
    domains = dns.domains
    for gi, group in enumerate(scenario.senders):
        policy = build_policy(group.policy)
        domain = (group.traffic.to or domains[0]).lower()
        width = max(2, len(str(group.count)))
        first = len(mtas)
        for i in range(group.count):
            name = f"{group.name}-{i + 1:0{width}d}"
            rng = random.Random(f"{seed}/policy/{name}")
            mtas.append(Mta(name, group.name, policy, policy.start(rng), Resolver(dns)))
            senders.append(Sender(name, group.name, policy.label, domain))
        t = group.traffic
        if t.csv is not None:
            found = csv_arrivals(t, clock, scenario.source, group.name, group.count, domain=domain)
        elif t.at is not None:
            found = [
                Arrival(at=float(int(clock.seconds(when))), mta=i, rcpt_local=f"user{k + 1}")
                for k, when in enumerate(t.at)
                for i in range(group.count)
            ]
        else:
            lo = clock.seconds(t.start) if t.start else 0.0
            hi = clock.seconds(t.until) if t.until else end
            found = []
            for i in range(group.count):
                rng = random.Random(f"{seed}/traffic/{mtas[first + i].name}")
                found.extend(poisson_arrivals(t, clock, lo, hi, i, rng))
        for n, arrival in enumerate(found):
            times.append(arrival.at)
            keys.append((gi << 48) | (arrival.mta << 28) | n)
            mta_of.append(first + arrival.mta)
            rcpt_of.append(locals_.setdefault(arrival.rcpt_local, len(locals_)))
        del found
    # Submission order: by time, then group, MTA and position in the group's list (no object per message).
    order = np.lexsort((as_numpy(keys, np.int64), as_numpy(times, np.float64)))
    ledger = Ledger(
        _take(times, order, np.float64),
        _take(mta_of, order, np.int32),
        _take(rcpt_of, order, np.int32),
        senders,
        list(locals_),
        [s.name for s in scenario.servers],
    )
    return ledger, mtas


def _take(column: array[Any], order: Any, dtype: Any) -> array[Any]:
    """*column* reordered by the index array *order*, as an ``array.array`` of the same type."""
    out = array(column.typecode)
    out.frombytes(as_numpy(column, dtype)[order].tobytes())
    return out
