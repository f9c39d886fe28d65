"""Durations as mail engineers write them: ``30s``, ``5m``, ``2h``, ``4d``, ``1w``, ``1h30m``.

A bare number is seconds. Used by the scenario files and by retry policies,
so ``retry: "5m,15m,1h"`` and ``retry: [300, 900, 3600]`` mean the same.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["parse_duration", "format_duration", "Duration", "parse_duration_list", "MAX_DURATION"]

MAX_DURATION = 3650 * 86400.0
"""The longest duration accepted (ten years): anything longer is a mistake, not a setting."""

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(value: Any) -> float:
    """Return *value* in seconds; accepts numbers and strings like ``"1h30m"``.

    Raises ``ValueError`` with a message that says what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 4d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.startswith("-"):
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(f"expected a duration such as 30s, 5m, 2h, 4d or 1h30m, got {value!r}") from None
    else:
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 4d, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if math.isnan(seconds):
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 4d, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration is at most 3650d (ten years), got {value!r}")
    return seconds


def parse_duration_list(value: Any) -> tuple[float, ...]:
    """Parse ``"5m,15m,1h"`` or ``[300, "15m"]`` into a tuple of seconds."""
    if isinstance(value, str):
        items: list[Any] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f'expected a list of durations such as "5m,15m,1h", got {value!r}')
    if not items:
        raise ValueError("the list of durations is empty")
    return tuple(parse_duration(item) for item in items)


def format_duration(seconds: float) -> str:
    """Format seconds compactly: ``5400`` -> ``"1h30m"``, ``0`` -> ``"0s"``."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    rest = abs(seconds)
    out = []
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        count = int(rest // size)
        if count:
            out.append(f"{count}{unit}")
            rest -= count * size
    if rest:
        out.append(f"{rest:g}s")
    return sign + "".join(out)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: seconds, accepting ``"5m"``-style strings."""
