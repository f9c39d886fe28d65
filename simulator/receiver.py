"""The receiving server's decisions, in one place.

``ReceivingServer`` holds a server's state on the incident timeline (its
mode, its disk) and answers every question the SMTP dialogue asks: what to
do with a new connection, whether to take a recipient, and what to reply to
the final dot. Both the aiosmtpd handler (``simulator.wire``) and the
in-memory transport (``simulator.transport``) call these methods, so the wire
and an in-memory run cannot disagree.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from . import replies
from .faults import (
    CapacityFault,
    DiskFullFault,
    DropFault,
    FailFirstFault,
    FaultSpec,
    GreylistFault,
    ReplyFault,
    SessionPlan,
    SlowFault,
    chance,
    default_text,
)
from .policies import Stage
from .store import MailStores

__all__ = ["Mode", "Greeting", "ReceivingServer", "SessionContext", "message_id_of"]

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


def message_id_of(content: bytes) -> str | None:
    """The ledger key of a raw message: the Message-ID's part before ``@``."""
    match = _MESSAGE_ID.search(content)
    return match.group(1).decode("ascii", "replace").partition("@")[0] if match else None


class Mode(StrEnum):
    """A server's availability, as set by the timeline."""

    UP = "up"
    REFUSE = "refuse"  #: listener closed: connection refused
    BLACKHOLE = "blackhole"  #: TCP accepted, never greets
    UNREACHABLE = "unreachable"  #: no answer to the TCP handshake (see wire notes)
    TEMPFAIL = "tempfail"  #: 421 greeting, then close


class Greeting(StrEnum):
    """What the server does with a new TCP connection."""

    SERVE = "serve"
    SILENT = "silent"
    TEMPFAIL = "tempfail"


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Who is connecting: the message and envelope the session will carry."""

    message_id: str
    mail_from: str
    rcpt_to: str


@dataclass
class _ActiveFault:
    spec: FaultSpec
    until: float


class ReceivingServer:
    """One simulated receiving MTA: mode, domains, and its mail store.

    *now* returns the current simulated time (frozen during real I/O);
    *on_commit* is told about every copy committed to a disk.
    """

    def __init__(
        self,
        name: str,
        domains: list[str],
        hostname: str,
        stores: MailStores,
        now: Callable[[], float],
        on_commit: Callable[[str, str, float], None],
        mode: Mode = Mode.UP,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.domains = frozenset(d.lower() for d in domains)
        self.hostname = hostname
        self.mode = mode
        self._stores = stores
        self._now = now
        self._on_commit = on_commit
        self.seed = seed
        self.errors: list[BaseException] = []
        self.faults: list[_ActiveFault] = []
        self.sessions_planned = 0
        self.turned_away = 0
        self._attempts: dict[str, int] = {}
        self._greylist: dict[tuple[str, str], float] = {}
        self._admitted: deque[float] = deque()

    # ------------------------------------------------------------------ faults
    def add_fault(self, spec: FaultSpec, until: float) -> None:
        """Switch a fault on until simulated time *until*."""
        self.faults.append(_ActiveFault(spec, until))

    def clear_faults(self) -> None:
        """Switch every fault off."""
        self.faults.clear()

    def plan(self, ctx: SessionContext) -> SessionPlan:
        """Decide, when a client connects, what this session will meet.

        Called in submission order (deterministic); the wire and the
        in-memory transport both execute the plan.
        """
        now = self._now()
        self.faults = [f for f in self.faults if f.until > now]
        self.sessions_planned += 1
        attempt = self._attempts.get(ctx.message_id, 0) + 1
        self._attempts[ctx.message_id] = attempt
        plan = SessionPlan()
        greeting = self.greeting()
        if greeting is Greeting.SILENT:
            plan.greeting = "silent"
            return plan
        if greeting is Greeting.TEMPFAIL:
            plan.greeting, plan.greeting_reply = "tempfail", self.tempfail_reply
            return plan
        for active in self.faults:
            self._apply(active.spec, ctx, attempt, now, plan)
            if plan.greeting != "serve":
                return plan
        return plan

    def _apply(self, fault: FaultSpec, ctx: SessionContext, attempt: int, now: float, plan: SessionPlan) -> None:
        if isinstance(fault, CapacityFault):
            window = max(fault.session_time, 60.0 if fault.per_minute else 0.0)
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            busy = sum(1 for t in self._admitted if t > now - fault.session_time)
            last_minute = sum(1 for t in self._admitted if t > now - 60.0)
            if (fault.sessions is not None and busy >= fault.sessions) or (
                fault.per_minute is not None and last_minute >= fault.per_minute
            ):
                plan.greeting, plan.greeting_reply, plan.turned_away = "tempfail", replies.TOO_BUSY, True
                self.turned_away += 1
                return
            self._admitted.append(now)
        elif isinstance(fault, ReplyFault):
            if fault.recipients is not None and ctx.rcpt_to.lower() not in {r.lower() for r in fault.recipients}:
                return
            if fault.fraction < 1 and chance(self.seed, self.name, ctx.message_id, attempt, "reply") >= fault.fraction:
                return
            plan.replies.setdefault(Stage(fault.stage), f"{fault.code} {fault.text or default_text(fault.code)}")
        elif isinstance(fault, DropFault):
            if fault.fraction >= 1 or chance(self.seed, self.name, ctx.message_id, attempt, "drop") < fault.fraction:
                plan.drop_after_commit = True
        elif isinstance(fault, SlowFault):
            stages = list(Stage) if fault.stage == "all" else [Stage(fault.stage)]
            for stage in stages:
                if stage not in (Stage.CONNECT, Stage.QUIT):
                    plan.latency[stage] = plan.latency.get(stage, 0.0) + fault.latency
        elif isinstance(fault, DiskFullFault):
            plan.replies.setdefault(Stage(fault.stage), replies.DISK_FULL)
        elif isinstance(fault, GreylistFault):
            key = (ctx.mail_from.lower(), ctx.rcpt_to.lower())
            first = self._greylist.setdefault(key, now)
            if now - first < fault.delay:
                plan.replies.setdefault(Stage.RCPT, replies.GREYLISTED)
        elif isinstance(fault, FailFirstFault):
            if attempt <= fault.attempts:
                plan.replies.setdefault(Stage(fault.stage), f"{fault.code} {default_text(fault.code)}")

    @property
    def listening(self) -> bool:
        """False when the listener must be closed (connection refused)."""
        return self.mode is not Mode.REFUSE

    def greeting(self) -> Greeting:
        """What a new connection gets."""
        if self.mode is Mode.UP:
            return Greeting.SERVE
        if self.mode is Mode.TEMPFAIL:
            return Greeting.TEMPFAIL
        return Greeting.SILENT

    @property
    def tempfail_reply(self) -> str:
        """The reply a server in ``tempfail`` mode greets with before closing."""
        return replies.TEMPFAIL_GREETING

    def rcpt(self, address: str) -> str | None:
        """``None`` to accept the recipient, or the reply that refuses it."""
        domain = address.rpartition("@")[2].lower()
        if domain not in self.domains:
            return replies.NO_SUCH_DOMAIN
        return None

    def data(self, content: bytes) -> str:
        """Commit the message to the current disk and return the reply to the final dot."""
        message_id = message_id_of(content)
        if message_id is None:
            return "554 5.6.0 Message-ID header required"
        now = self._now()
        if not self._stores.has_disk(self.name):
            return replies.SERVICE_UNAVAILABLE
        disk = self._stores.accept(self.name, message_id, now)
        self._on_commit(message_id, self.name, now)
        return replies.OK_QUEUED.format(queue_id=f"{disk}/{message_id}")
