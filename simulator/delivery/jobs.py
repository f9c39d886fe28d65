"""Sending MTAs, their queued jobs, and what a delivery works with (``Couriers``)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import simpy

from ..events import Event
from ..faults import SessionPlan
from ..ledger import Ledger
from ..policies import Decision, MessageView, PolicyState, RetryPolicy
from ..routing import Resolver
from ..transport import Outcome

__all__ = ["Couriers", "HostProbes", "Job", "Keeper", "Mta", "Rounds"]


@dataclass
class Mta:
    """A simulated sending MTA: its policy, runtime retry state and DNS cache."""

    name: str
    group: str
    policy: RetryPolicy
    state: PolicyState
    resolver: Resolver
    relay_for: str | None = None  #: the backup MX server this MTA is the queue of


class Job:
    """One message in one MTA's queue: row *index* of the ledger, and the MTA's counters for it.

    Only messages in a queue have a ``Job``: it is made when the message
    arrives (or a backup MX accepts it) and dropped when the MTA is done.
    """

    __slots__ = (
        "_error",
        "arrival",
        "attempts",
        "connections",
        "domain",
        "index",
        "ledger",
        "message_id",
        "mta",
        "warnings",
    )

    def __init__(self, ledger: Ledger, index: int, mta: Mta, domain: str, arrival: float) -> None:
        self.ledger = ledger
        self.index = index
        self.message_id = ledger.message_id(index)
        self.mta = mta
        self.domain = domain
        self.arrival = arrival
        self.attempts = 0
        self.connections = 0
        self.warnings = 0
        self._error = ledger.texts.number("")  #: the last error, as a number in the ledger's table of texts

    @property
    def last_error(self) -> str:
        """How the last attempt failed ("" before any)."""
        return self.ledger.texts.items[self._error]

    @last_error.setter
    def last_error(self, text: str) -> None:
        self._error = self.ledger.texts.number(text)

    @property
    def originator(self) -> str:
        """The envelope sender (made when asked: a million queued jobs need not hold it)."""
        return self.ledger.originator(self.index)

    @property
    def recipient(self) -> str:
        """The envelope recipient."""
        return self.ledger.recipient(self.index)

    @property
    def relayed(self) -> bool:
        """True for a backup MX forwarding the message."""
        return self.mta.relay_for is not None

    def view(self) -> MessageView:
        """What the retry policy sees."""
        return MessageView(self.message_id, self.arrival, self.attempts, self.warnings, self.domain)

    def sync(self) -> None:
        """Mirror an original sender's counters onto the ledger."""
        if self.mta.relay_for is None:
            ledger, i = self.ledger, self.index
            ledger.attempts[i] = self.attempts
            ledger.connections[i] = self.connections
            ledger.last_error[i] = self._error


class Keeper(Protocol):
    """Records what the sender's decisions mean for the ledger and the originator."""

    def accepted(self, job: Job, server: str, outcome: Outcome) -> None:
        """A 250 to the final dot."""

    def bounce(self, job: Job, decision: Decision) -> None:
        """The MTA gives up on the job and tells the originator."""

    def warn(self, job: Job, decision: Decision) -> None:
        """The MTA sends its originator a delay warning."""


class HostProbes:
    """The first connection each MTA opened to each host at the current instant.

    MTAs whose policy shares a host's failure (``RetryPolicy.shares_host_failure``)
    wait for that connection instead of opening another.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._probes: dict[tuple[str, str], simpy.Event] = {}
        self._at = -1.0

    def find(self, mta: Mta, host: str) -> simpy.Event | None:
        """The connection *mta* already opened to *host* at this instant, if any."""
        if self._at != self._env.now:
            return None
        return self._probes.get((mta.name, host))

    def remember(self, mta: Mta, host: str, event: simpy.Event) -> None:
        """Record the first connection of *mta* to *host* at this instant."""
        if self._at != self._env.now:
            self._probes.clear()
            self._at = self._env.now
        self._probes.setdefault((mta.name, host), event)


class Rounds:
    """Retry rounds that go out one message at a time (``RetryPolicy.serial_rounds``).

    Within one simulated instant, the messages of one MTA to one
    destination form a queue: each asks its policy whether to connect only
    once the message ahead of it has had its outcome applied to the retry
    state, or has gone on to spend simulated time on an open connection (a
    timeout, a slow server), when the next one may go out beside it. A
    Postfix queue manager does this: its deferred-queue scan hands out one
    message at a time, and a refused connection is reported back before the
    next message is dispatched, so failures accumulate and mark the
    destination dead part way through the round. New mail of the same
    instant queues up behind the round (the scan runs at the start of its
    second, new mail arrives during it): a round that marks the
    destination dead holds the new mail too.
    """

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._rounds: dict[tuple[str, str], _Round] = {}
        self._at = -1.0
        self._waiting: dict[simpy.Event, tuple[_Round, list[_Gate]]] = {}

    def line_up(self, mta: Mta, domain: str, counted: bool) -> Generator[simpy.Event, Any, simpy.Event]:
        """Wait until this message may ask its policy; returns its turn, to be given with ``done``.

        A message waits while the attempts still out ahead of it could change
        its policy's answer. A policy state that can tell (``RoundState``:
        Postfix knows how many failures its destination can take before it
        is dead) lets messages go out together as long as even the failure
        of every attempt ahead would not change it: the same answers from
        its policy as one at a time, in fewer trips to the wire (servers
        shared with other senders may see the sessions in another order).
        *counted* says whether
        this message's failure feeds that state (a retry; not new mail).

        A waiting message waits for the last turn out ahead of it. When that
        turn is given, its waiters look again in the order they came
        (``_release``); once one must wait on, so must all behind it, and
        they move to the new last turn without being woken.
        """
        env = self._env
        if self._at != env.now:
            self._rounds.clear()
            self._at = env.now
        key = (mta.name, domain)
        rnd = self._rounds.get(key)
        if rnd is None:
            rnd = self._rounds[key] = _Round(domain, getattr(mta.state, "decides_alike", None))
        if rnd.blocked(env.now):
            gate = _Gate()
            self._wait(rnd, rnd.out[-1][0], [gate])
            yield cast(simpy.Event, gate)  # fired by ``_release`` only once this message may go
        turn = env.event()
        rnd.out.append((turn, counted))
        return turn

    def _wait(self, rnd: _Round, turn: simpy.Event, gates: list[_Gate]) -> None:
        waiting = self._waiting.get(turn)
        if waiting is None:
            self._waiting[turn] = (rnd, gates)
            assert turn.callbacks is not None
            turn.callbacks.append(self._release)
        else:
            waiting[1].extend(gates)

    def _release(self, turn: simpy.Event) -> None:
        rnd, gates = self._waiting.pop(turn)
        for i, gate in enumerate(gates):
            if rnd.blocked(self._env.now):
                self._wait(rnd, rnd.out[-1][0], gates[i:])
                return
            gate.fire()

    @staticmethod
    def done(turn: simpy.Event | None) -> None:
        """Let the next message of the round go (no-op when there is no turn or it was given)."""
        if turn is not None and not turn.triggered:
            turn.succeed()


@dataclass(frozen=True)
class Couriers:
    """What a delivery process works with, and nothing more."""

    env: simpy.Environment
    route: Callable[[Job], tuple[str, ...]]  #: the MX hosts to try now, in order
    submit: Callable[[Job, str], tuple[simpy.Event, SessionPlan | None]]  #: one attempt on the wire
    emit: Callable[[Event], None]  #: the event sink
    stamp: Callable[[], dict[str, Any]]  #: ``t`` and ``time`` of the current instant, for events
    keeper: Keeper
    probes: HostProbes
    rounds: Rounds
    unreachable: Callable[[str], bool]  #: whether a host is down as "unreachable" (for the wire's stand-in)
    failed: Callable[[Job, Exception], Exception]  #: the error that aborts the run when a job's process fails


class _Round:
    """The attempts of one MTA to one destination still out in this instant, and its policy's test."""

    __slots__ = ("alike", "domain", "out")

    def __init__(self, domain: str, alike: Callable[[str, int, float], bool] | None) -> None:
        self.domain = domain
        self.alike = alike
        self.out: list[tuple[simpy.Event, bool]] = []  #: (turn, whether its failure counts)

    def blocked(self, now: float) -> bool:
        """True while the attempts out ahead could change the policy's answer (drops the turns given)."""
        out = self.out
        out[:] = [(turn, c) for turn, c in out if not turn.triggered]
        if not out:
            return False
        alike = self.alike
        return alike is None or not alike(self.domain, sum(1 for _, c in out if c), now)


class _Gate:
    """A waiting message's wake-up, fired by ``Rounds._release`` at once (the turn's own step)."""

    __slots__ = ("callbacks", "ok", "value")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] | None = []
        self.ok = True
        self.value = None

    def fire(self) -> None:
        callbacks, self.callbacks = self.callbacks, None
        assert callbacks is not None
        for callback in callbacks:
            callback(self)
