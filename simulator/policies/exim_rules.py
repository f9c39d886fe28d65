"""Exim retry rules: parsing ``F,2h,15m; G,16h,1h,1.5; F,4d,6h`` and computing the next try.

Source: Exim ``src/src/retry.c`` (``retry_update``) and the Exim specification,
chapter "Retry configuration"; retry-policies.md section 2.2.

A rule list is read left to right; the first rule whose cutoff is not yet
passed by the failing interval applies:

``F,<cutoff>,<interval>``
    fixed: retry every *interval*.
``G,<cutoff>,<interval>,<multiplier>``
    geometric: the next gap is the last gap times *multiplier*, at least
    *interval*. The last gap is the smaller of the predicted and the actual
    one, so a late queue runner does not inflate the growth.
``H,<cutoff>,<interval>,<multiplier>``
    like G, but the gap beyond *interval* is randomised between half and all
    of it (Exim's ``random_number``), to spread clusters of senders.

Multipliers are kept as integer thousandths and gaps computed in whole
seconds, as Exim does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise

from ..durations import format_duration, parse_duration

__all__ = ["DEFAULT_RULES", "RetryRule", "format_retry_rules", "next_gap", "parse_retry_rules"]

DEFAULT_RULES = "F,2h,15m; G,16h,1h,1.5; F,4d,6h"
"""Exim's default retry rule (``src/src/configure.default``; Debian's is identical)."""

_EXAMPLE = 'e.g. "F,2h,15m; G,16h,1h,1.5; F,4d,6h"'


@dataclass(frozen=True)
class RetryRule:
    """One Exim retry rule: kind F, G or H, cutoff, interval and multiplier (thousandths)."""

    kind: str
    cutoff: float
    interval: float
    multiplier: int = 1000

    def __str__(self) -> str:
        parts = [self.kind, format_duration(self.cutoff), format_duration(self.interval)]
        if self.kind != "F":
            parts.append(f"{self.multiplier / 1000:g}")
        return ",".join(parts)


def _duration(text: str, what: str, item: str) -> float:
    if text.strip().startswith("-"):
        raise ValueError(f"retry rule {item!r}: the {what} cannot be negative; write e.g. 15m")
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(
            f"retry rule {item!r}: the {what} {text.strip()!r} is not a duration such as 15m, 2h or 4d"
        ) from None


def _parse_one(item: str) -> RetryRule:
    fields = [f.strip() for f in item.split(",")]
    kind = fields[0].upper()
    if kind not in ("F", "G", "H"):
        raise ValueError(
            f"retry rule {item!r} must start with F (fixed), G (geometric) or H (randomised geometric), {_EXAMPLE}"
        )
    want = 3 if kind == "F" else 4
    if len(fields) != want:
        form = f"{kind},<cutoff>,<interval>" + ("" if kind == "F" else ",<multiplier>")
        raise ValueError(f"retry rule {item!r} must have the form {form}, {_EXAMPLE}")
    cutoff = _duration(fields[1], "cutoff", item)
    interval = _duration(fields[2], "interval", item)
    if interval <= 0:
        raise ValueError(f"retry rule {item!r}: the interval must be greater than 0s")
    multiplier = 1000
    if kind != "F":
        try:
            factor = float(fields[3])
        except ValueError:
            raise ValueError(f"retry rule {item!r}: the multiplier {fields[3]!r} is not a number such as 1.5") from None
        if not factor >= 1:
            raise ValueError(f"retry rule {item!r}: the multiplier must be at least 1, e.g. 1.5")
        multiplier = round(factor * 1000)
    return RetryRule(kind, cutoff, interval, multiplier)


def parse_retry_rules(text: str) -> tuple[RetryRule, ...]:
    """Parse a rule list separated by ``;``. Raises ``ValueError`` saying what to fix.

    An empty list is allowed: as in Exim, every temporary failure then times
    out at once (the message bounces at its first failure).
    """
    if not isinstance(text, str):
        raise ValueError(f"an Exim retry rule is a string such as {_EXAMPLE}, got {text!r}")
    items = [item.strip() for item in text.split(";") if item.strip()]
    rules = tuple(_parse_one(item) for item in items)
    for before, after in pairwise(rules):
        if after.cutoff <= before.cutoff:
            raise ValueError(
                f"retry rule cutoffs must increase from left to right: {after} can never apply after {before}"
            )
    return rules


def format_retry_rules(rules: tuple[RetryRule, ...]) -> str:
    """The canonical text of a rule list."""
    return "; ".join(str(rule) for rule in rules)


def next_gap(rule: RetryRule, last_predicted: float, last_actual: float, rng: random.Random) -> float:
    """Seconds from now to the next try under *rule* (before ``retry_interval_max``)."""
    if rule.kind == "F":
        return rule.interval
    lastgap = int(min(last_predicted, last_actual))
    grown = (lastgap * rule.multiplier) // 1000
    if rule.kind == "G":
        return rule.interval if lastgap < rule.interval else float(grown)
    gap = rule.interval
    spread = int(grown - rule.interval)
    if spread > 0:
        gap += rng.randrange(spread) // 2 + spread // 2
    return float(gap)
