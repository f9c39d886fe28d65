"""The scenario's own wall clock, mapped onto SimPy's float seconds.

Simulated time 0 is ``clock.start``. Timestamps in a scenario are naive local
time unless a time zone is given; output times are ISO 8601 in the same
clock (with the UTC offset when a zone is set).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

__all__ = ["SimClock", "ClockSpec"]


class ClockSpec(Protocol):
    """What a clock is made from: a scenario's ``clock:`` entry (``simulator.scenario.Clock``)."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...

    @property
    def timezone(self) -> str | None: ...


class SimClock:
    """Converts between scenario timestamps and simulated seconds."""

    def __init__(self, clock: ClockSpec) -> None:
        self.zone = ZoneInfo(clock.timezone) if clock.timezone else None
        self._start = self._aware(clock.start)
        self.end = self.seconds(clock.end)

    def _aware(self, when: datetime) -> datetime:
        if self.zone is None:
            return when.replace(tzinfo=None)
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.zone)
        return when.astimezone(UTC)

    def seconds(self, when: datetime) -> float:
        """Simulated seconds of a scenario timestamp."""
        return (self._aware(when) - self._start).total_seconds()

    def datetime_at(self, t: float) -> datetime:
        """The scenario-clock datetime at simulated second *t*."""
        when = self._start + timedelta(seconds=t)
        return when.astimezone(self.zone) if self.zone is not None else when

    def iso(self, t: float | None) -> str:
        """ISO 8601 in the scenario's clock, whole seconds; empty for ``None``."""
        if t is None:
            return ""
        return self.datetime_at(round(t)).isoformat(timespec="seconds")

    def short(self, t: float) -> str:
        """A compact form for tables: ``10/26 10:38``."""
        return self.datetime_at(t).strftime("%m/%d %H:%M")
