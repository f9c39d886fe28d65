"""What a run leaves behind that its numbers are computed from (``RunFacts``), and a window of submission time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..clock import SimClock
from ..events import Event
from ..ledger import MessageRecord
from .fold import EventFold

__all__ = ["ServerFacts", "SenderFacts", "RunFacts", "Window"]


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """A receiving server as the numbers need it."""

    name: str
    domains: tuple[str, ...]
    initially: str = "up"
    preference: int = 10
    relay: bool = False
    delivery_per_minute: float | None = None  #: the capacity of its delivery into the mailboxes (None: at once)


@dataclass(frozen=True, slots=True)
class SenderFacts:
    """A sender group: its size, its retry policy's label, and when that policy gives up on mail that never gets through."""

    name: str
    count: int | None
    policy: str
    gives_up_after: float | None


@dataclass
class RunFacts:
    """Everything a run leaves behind that its numbers are computed from."""

    scenario: str
    seed: int
    clock: SimClock
    servers: tuple[ServerFacts, ...]
    senders: tuple[SenderFacts, ...]
    windows: tuple[tuple[str, float, float], ...]
    records: Sequence[MessageRecord]
    events: Iterable[Event]
    description: str = ""
    timezone: str | None = None
    windows_declared: bool = False
    transport: str = "wire"
    wall_seconds: float = 0.0
    notifications: int = 0
    sources: tuple[dict[str, Any], ...] = ()
    interrupted_by: str = ""  #: what stopped the run before the clock's end (``SIGINT``, ``SIGTERM``)
    stopped_at: float | None = None  #: when an interrupted run stopped, in simulated seconds
    live: dict[str, Any] | None = None  #: how a live run was served: speed, second 0 on the wall clock, ports
    """The public reports the scenario encodes: ``title``, ``url``, ``published``, ``via``, ``quotes``."""
    fold: EventFold | None = None
    """The events already folded as they streamed (then ``events`` is not read)."""


@dataclass(frozen=True)
class Window:
    """A window of submission time with the states of the mail submitted in it."""

    label: str
    start: float
    end: float
    counts: dict[str, int]
    closed: bool = False  #: the window reaches the clock's end and holds mail sent at that very instant

    @property
    def total(self) -> int:
        """Messages submitted in the window."""
        return sum(self.counts.values())

    def holds(self, t: float) -> bool:
        """Whether mail submitted at *t* belongs to the window: ``[start, end)``, or ``[start, end]`` when closed."""
        return self.start <= t < self.end or (self.closed and t == self.end)
