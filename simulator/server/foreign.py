"""What a server remembers of sessions, per party, and the connections nobody announced.

In a replay only the engine's own sessions may change the ledger. The engine
announces each of them (``WireServer.expect``); any other connection is
*foreign*: a local process, a port scanner, a test client. A foreign session
meets the server's decisions as a real MTA would (its greeting, capacity
limits, greylisting, reply faults), but

* it is decided from a ``SessionBook`` of its own, so it can neither use up
  a capacity limit, nor start a greylisting period, nor count as an attempt
  of any of the run's sessions;
* the mail it gets a 250 for is kept apart (``ForeignTraffic``): it never
  reaches the mail stores the ledger reads, whatever its Message-ID says;
* each foreign session is recorded (``ForeignSession``), for the engine to
  log as an event when it ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["SessionBook", "ForeignSession", "ForeignTraffic", "KEPT_IDS"]

KEPT_IDS = 1000
"""At most this many Message-IDs are remembered per foreign session (all are counted)."""


@dataclass
class SessionBook:
    """One party's history at a server: the state its later decisions depend on.

    ``admitted`` holds when sessions were admitted under a capacity limit,
    ``greylist`` when a sender/recipient pair was first seen, ``attempts``
    how many sessions each key (a message, or what identifies it so far)
    has had.
    """

    sessions: int = 0
    turned_away: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    greylist: dict[tuple[str, str], float] = field(default_factory=dict)
    admitted: deque[float] = field(default_factory=deque)

    def count_attempt(self, key: str) -> int:
        """One more session for *key*; returns its number."""
        attempt = self.attempts.get(key, 0) + 1
        self.attempts[key] = attempt
        return attempt


@dataclass
class ForeignSession:
    """One connection nobody announced, and what it did."""

    server: str
    number: int  #: 1 for the server's first foreign session, and so on
    peer: str  #: the client's address, ``127.0.0.1:PORT`` on the wire
    at: float  #: simulated time when it connected
    received: int = 0  #: bytes the client sent
    messages: int = 0  #: messages it got a 250 for (kept apart)
    message_ids: list[str] = field(default_factory=list)  #: their ledger keys (the first ``KEPT_IDS``)
    turned_away: bool = False  #: refused at a capacity limit when it connected
    ended: str = ""  #: ``closed``, or ``open at the end of the run``
    error: str = ""  #: an exception the session's input caused, if any


class ForeignTraffic:
    """A server's foreign sessions and the mail they left, apart from the run's mail stores."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.book = SessionBook()
        self.sessions = 0
        self.messages = 0
        self._ended: list[ForeignSession] = []

    def open(self, peer: str, at: float) -> ForeignSession:
        """A foreign client connected at simulated time *at*."""
        self.sessions += 1
        return ForeignSession(self.server, self.sessions, peer, at)

    def keep(self, session: ForeignSession, message_id: str) -> None:
        """*session* got a 250 for a message: count it here, never in a mail store."""
        session.messages += 1
        self.messages += 1
        if len(session.message_ids) < KEPT_IDS:
            session.message_ids.append(message_id)

    def close(self, session: ForeignSession, how: str) -> None:
        """*session* is over (once; later calls are ignored)."""
        if not session.ended:
            session.ended = how
            self._ended.append(session)

    def take_ended(self) -> list[ForeignSession]:
        """The sessions that ended since the last call, in the order they ended."""
        ended, self._ended = self._ended, []
        return ended
