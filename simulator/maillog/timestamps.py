"""Log timestamps to ``datetime``: BSD syslog (no year), ISO 8601 (rsyslog, journald) and Exim.

A traditional syslog line (``Mar  1 10:00:01``) has no year and no zone.
``Stamps`` takes the year of the first line it reads and counts a year
forward each time the date goes back by more than 30 days (December to
January: a *rollover*); a line that jumps more than 300 days forward right
after a rollover (a late December line written after the first January
ones) keeps the previous year. ``Stamps.rollovers`` lists where that
happened, so the year can be stated with the result.

Zones: with a stated ``zone`` every time is aware in that zone (a naive log
time is read as local time there, a time with an offset is converted).
Without one, times are naive: the log's own local time, and times with an
offset are put in the offset of the first such line.

Consecutive lines usually share a timestamp, so the last one is cached.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

__all__ = ["Stamps", "MONTHS"]

MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
"""Month abbreviations of syslog timestamps (always English, the C locale)."""

_BACK = timedelta(days=30)
_FORWARD = timedelta(days=300)


class Stamps:
    """Reads the timestamps of one log (its files in order), keeping the year across rollovers."""

    def __init__(self, year: int | None = None, zone: tzinfo | None = None) -> None:
        self.year = year  #: the year of the latest BSD timestamp read (None: not known, BSD lines are refused)
        self.first_year = year
        self.zone = zone
        self.offset: tzinfo | None = None  #: without a zone, the offset of the first line that had one
        self.rollovers: list[datetime] = []  #: the first time read in each new year
        self._last: datetime | None = None  # naive, for rollover decisions
        self._text = ""
        self._value: datetime | None = None

    def bsd(self, text: str) -> datetime:
        """``Mar  1 10:00:01`` (15 characters): raises ``ValueError`` for anything else."""
        if text == self._text and self._value is not None:
            return self._value
        if self.year is None:
            raise ValueError("a syslog timestamp has no year: state it (--year)")
        month = MONTHS.get(text[:3])
        if month is None or text[3] != " " or text[6] != " " or text[9] != ":" or text[12] != ":":
            raise ValueError(f"not a syslog timestamp: {text!r}")
        day, hour, minute, second = int(text[4:6]), int(text[7:9]), int(text[10:12]), int(text[13:15])
        when = _naive(self.year, month, day, hour, minute, second)
        last = self._last
        if last is not None:
            if when < last - _BACK:
                self.year += 1
                when = _naive(self.year, month, day, hour, minute, second)
                self.rollovers.append(when)
            elif when > last + _FORWARD:
                when = _naive(self.year - 1, month, day, hour, minute, second)
        if last is None or when > last:
            self._last = when
        value = when if self.zone is None else when.replace(tzinfo=self.zone)
        self._text, self._value = text, value
        return value

    def iso(self, text: str) -> datetime:
        """``2024-03-01T10:00:01.123456+01:00`` (or a space for the T, Z, +0100, no offset)."""
        if text == self._text and self._value is not None:
            return self._value
        when = datetime.fromisoformat(text)
        value = self._placed(when)
        self._text, self._value = text, value
        return value

    def exim(self, seconds: str, fraction: str | None, offset: str | None) -> datetime:
        """Exim's ``2024-03-01 10:00:01`` with ``+millisec``'s ``.123`` and ``log_timezone``'s ``+0100``."""
        key = seconds if fraction is None and offset is None else f"{seconds}{fraction or ''} {offset or ''}"
        if key == self._text and self._value is not None:
            return self._value
        when = datetime(
            int(seconds[0:4]),
            int(seconds[5:7]),
            int(seconds[8:10]),
            int(seconds[11:13]),
            int(seconds[14:16]),
            int(seconds[17:19]),
            int(fraction[1:4].ljust(3, "0")) * 1000 if fraction else 0,
        )
        if offset is not None:
            when = datetime.fromisoformat(f"{when.isoformat()}{offset[:3]}:{offset[3:]}")
        value = self._placed(when)
        self._text, self._value = key, value
        return value

    def _placed(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            return when if self.zone is None else when.replace(tzinfo=self.zone)
        if self.zone is not None:
            return when.astimezone(self.zone)
        if self.offset is None:
            self.offset = when.tzinfo
        return when.astimezone(self.offset).replace(tzinfo=None)


def _naive(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        if month == 2 and day == 29:
            raise ValueError(f"Feb 29 in {year}, which is not a leap year: state the log's year (--year)") from None
        raise
