"""Building blocks shared by the MTA presets.

* ``PresetParams``: the base of every preset's settings model (frozen,
  ``extra="forbid"``), so a typo in a scenario file is an error.
* ``Phase``: a scan or queue-runner phase, a duration or ``"random"``.
* ``next_tick``: the first tick of a periodic queue scan after a time.
* ``bounces_at_once``: the per-MTA reading of a 5xx reply (reference
  section 8: Postfix treats a 5xx greeting like a 4xx one, Exim bounces).
* ``warning_due``: when the next delay warning of a time list is due.
* ``PresetPolicy``: the frozen runtime policy object every preset builds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..durations import format_duration, parse_duration, parse_duration_list
from .base import Failure, PolicyState, Stage, Timeouts

__all__ = [
    "DurationOrRandom",
    "Phase",
    "PresetParams",
    "PresetPolicy",
    "bounces_at_once",
    "describe_params",
    "next_tick",
    "parse_phase",
    "resolve_phase",
    "shows_durations",
    "warning_due",
]


class PresetParams(BaseModel):
    """Base of every preset's settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def shows_durations(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Mark a field parser whose values are seconds, for ``describe_params``."""
    func.shows_durations = True  # type: ignore[attr-defined]
    return func


@shows_durations
def parse_phase(value: Any) -> float | str:
    """A phase is ``"random"`` or a duration (``0``, ``150s``, ``15m``)."""
    if isinstance(value, str) and value.strip().lower() == "random":
        return "random"
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"a phase is a duration such as 0, 150s or 15m, or the word random; got {value!r}") from None


DurationOrRandom = Annotated[float | Literal["random"], BeforeValidator(parse_phase)]
"""A pydantic field type: seconds (``"15m"``-style accepted) or the word ``random``."""

Phase = DurationOrRandom
"""Where a periodic scan's grid sits, relative to time 0 (or ``random``)."""


def resolve_phase(phase: float | str, period: float, rng: random.Random) -> float:
    """The phase in seconds; ``"random"`` draws a whole second in ``[0, period)``."""
    if phase == "random":
        return float(rng.randrange(max(1, int(period))))
    return float(phase) % period


def next_tick(after: float, period: float, phase: float, not_before: float | None = None) -> float:
    """First tick ``s = phase + k*period`` with ``s > after`` and ``s >= not_before``.

    Ticks are counted from the sending MTA's start (time 0), so a message
    that arrives mid-interval waits for the grid, as it does for a real
    queue manager or queue runner.
    """
    lower = after if not_before is None else max(after, not_before)
    k = math.floor((lower - phase) / period)
    tick = phase + k * period
    while tick <= after or (not_before is not None and tick < not_before):
        k += 1
        tick = phase + k * period
    return tick


def bounces_at_once(failure: Failure, *, soft_stages: frozenset[Stage] = frozenset()) -> bool:
    """True when a 5xx reply makes this MTA bounce now.

    *soft_stages* are the stages at which this MTA treats a 5xx like a 4xx
    (Postfix's ``smtp_skip_5xx_greeting``; qmail's greeting and HELO).
    """
    return failure.is_permanent and failure.stage not in soft_stages


def warning_due(times: tuple[float, ...], sent: int) -> float | None:
    """Age at which warning number ``sent + 1`` is due, or ``None`` if off.

    *times* is a list of ages, as Exim's ``delay_warning`` (``4h:8h:24h``):
    a warning at each, then repeating the gap between the last two (or the
    single value). An empty list or a single ``0`` means no warnings.
    """
    if not times or times[-1] <= 0:
        return None
    if sent < len(times):
        return times[sent]
    step = times[-1] - times[-2] if len(times) > 1 else times[0]
    if step <= 0:
        return None
    return times[-1] + (sent - len(times) + 1) * step


def _is_duration_parser(func: Any) -> bool:
    return func in (parse_duration, parse_duration_list) or getattr(func, "shows_durations", False)


def describe_params(params: BaseModel) -> dict[str, Any]:
    """Settings as shown by ``policies show``: durations formatted (``5m``), the rest as is."""
    out: dict[str, Any] = {}
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        durations = any(isinstance(m, BeforeValidator) and _is_duration_parser(m.func) for m in info.metadata)
        if durations and isinstance(value, float):
            out[name] = format_duration(value)
        elif durations and isinstance(value, tuple):
            out[name] = ",".join(format_duration(v) for v in value) or "none"
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class PresetPolicy:
    """A named MTA's retry behaviour: what ``Preset.build`` returns.

    ``make_state`` is the MTA's runtime state class; it gets the policy and
    the per-sender ``random.Random``.
    """

    name: str
    source: str
    params: BaseModel
    make_state: Callable[[Any, random.Random], PolicyState]
    timeouts: Timeouts = field(default_factory=Timeouts)

    def start(self, rng: random.Random) -> PolicyState:
        """Fresh runtime state for one sending MTA."""
        return self.make_state(self, rng)
