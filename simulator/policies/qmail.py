"""qmail 1.03 / netqmail / notqmail: the quadratic schedule and the TCP timeout table.

Source: notqmail ``qmail-send.c`` (``nextretry``, ``lifetime = 604800``,
``chanskip = {10, 20}``), ``qmail-remote.c``, ``tcpto.c`` and the man pages
qmail-send(8), qmail-remote(8), qmail-tcpto(8); retry-policies.md section 4.

When a delivery pass opens the job at ``recent``::

    nextretry = birth + (isqrt(recent - birth) + chanskip)^2
    dying     = recent > birth + queuelifetime

so remote attempts land at 400·k² seconds after queueing. A dying job gets
one more attempt and a temporary failure then bounces. Any greeting or HELO
reply other than 2xx is temporary (qmail has no MX fallback once connected);
5xx to MAIL, RCPT, DATA or the dot bounces. qmail sends no delay warnings.

The TCP timeout table (``tcpto``): a connect timeout records the host; a
second one at least 2 minutes later marks it, and while marked the host is
skipped without connecting for ``(60 + (pid & 31)) << 6`` seconds (3840 s
with ``tcpto_hold`` at its default, the low end; ``random`` draws the pid
bits). A connection that succeeds, or is refused, clears the entry.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pydantic import Field

from ..durations import Duration
from ._common import DurationOrRandom, PresetParams, PresetPolicy, bounces_at_once
from .base import Decision, Failure, FailureKind, MessageView, Stage, Timeouts
from .simple import permanent_decision

__all__ = ["QmailParams", "build_qmail"]

SOURCE = (
    "notqmail (qmail 1.03 scheduler) qmail-send.c nextretry/lifetime/chanskip, qmail-remote.c, tcpto.c; "
    "qmail-send(8), qmail-remote(8), qmail-tcpto(8). retry-policies.md section 4."
)


class QmailParams(PresetParams):
    """qmail's control files and constants that shape retries."""

    queuelifetime: Duration = Field(604800.0, description="control/queuelifetime: then one last try")
    chanskip: int = Field(20, ge=1, description="schedule constant: 20 remote, 10 local")
    timeoutconnect: Duration = Field(60.0, description="control/timeoutconnect, charged for an unreachable host")
    timeoutremote: Duration = Field(1200.0, description="control/timeoutremote, charged for a stalled reply")
    tcpto: bool = Field(True, description="skip hosts that timed out twice (qmail-tcpto)")
    tcpto_hold: DurationOrRandom = Field(3840.0, description="how long a timed-out host is skipped, or random")


@dataclass
class _TcptoEntry:
    count: int
    when: float


class QmailState:
    """One qmail-send: per-message quadratic schedule plus the shared ``tcpto`` table."""

    def __init__(self, policy: PresetPolicy[QmailParams], rng: random.Random) -> None:
        self._p = policy.params
        self._rng = rng
        self._opened: dict[str, float] = {}
        self._tcpto: dict[str, _TcptoEntry] = {}

    def _hold(self) -> float:
        if self._p.tcpto_hold == "random":
            return float((60 + self._rng.randrange(32)) << 6)
        return float(self._p.tcpto_hold)

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """qmail-send starts a new job at once."""
        return Decision.retry(now)

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """Note when the job was opened; skip a host the TCP timeout table marks as down."""
        self._opened[msg.id] = now
        entry = self._tcpto.get(host)
        if self._p.tcpto and entry is not None and entry.count >= 2 and now - entry.when < self._hold():
            return Failure.suspended(host, "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)")
        return None

    def _note_connect(self, failure: Failure | None, host: str, now: float) -> None:
        timed_out = failure is not None and failure.kind is FailureKind.TIMEOUT and failure.stage is Stage.CONNECT
        entry = self._tcpto.get(host)
        if not timed_out:
            if entry is not None and (failure is None or failure.kind is not FailureKind.SUSPENDED):
                entry.count = 0
            return
        if entry is None:
            self._tcpto[host] = _TcptoEntry(1, now)
        elif not (entry.count and now < entry.when + 120):
            entry.count, entry.when = min(entry.count + 1, 10), now

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Bounce on 5xx past the greeting, or on any failure of a dying job."""
        self._note_connect(failure, failure.host, now)
        recent = self._opened.pop(msg.id, now)
        if bounces_at_once(failure, soft_stages=frozenset({Stage.GREETING, Stage.EHLO})):
            return permanent_decision(failure)
        if recent > msg.arrival + self._p.queuelifetime:
            return Decision.give_up("queue lifetime exceeded: temporary failure treated as permanent", "4.4.7")
        age = max(0, int(recent - msg.arrival))
        nextretry = msg.arrival + (math.isqrt(age) + self._p.chanskip) ** 2
        return Decision.retry(max(nextretry, now))  # a job already due is picked up at once

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """A connection worked: clear the host's TCP timeout entry."""
        self._opened.pop(msg.id, None)
        self._note_connect(None, host, now)


def qmail_next_mx(failure: Failure) -> bool:
    """qmail-remote moves on only when it could not connect; once connected, never (reference section 4)."""
    return failure.kind in (FailureKind.REFUSED, FailureKind.TIMEOUT) and failure.stage in (
        Stage.CONNECT,
        Stage.GREETING,
    )


def build_qmail(params: QmailParams) -> PresetPolicy[QmailParams]:
    """The ``qmail`` preset."""
    timeouts = Timeouts(
        connect=params.timeoutconnect,
        greeting=params.timeoutremote,
        command=params.timeoutremote,
        data_done=params.timeoutremote,
    )
    return PresetPolicy("qmail", SOURCE, params, QmailState, timeouts, mx_rule=qmail_next_mx)
