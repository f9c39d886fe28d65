"""The receiving server's decisions, in one place.

``ReceivingServer`` holds a server's state on the incident timeline (its
mode, its disk, the faults in force) and decides what every session meets.
``ServerSession`` is the one interpreter of those decisions: made per
connection, it answers each step of the dialogue (greeting, EHLO, MAIL,
RCPT, DATA, the final dot) with a ``Step``: a reply, a reply and a hang-up,
silence, or a connection dropped after the commit. The in-memory transport
(``simulator.transport``) and the aiosmtpd handler (``simulator.wire``) only
translate steps, into an ``Outcome`` or onto a socket, so the wire and an
in-memory run cannot disagree.

A session's decisions come in two parts:

* at connect (``ReceivingServer.connect``): the mode's greeting, admission
  under capacity limits (counting the sessions turned away), and the latency
  of slow faults;
* for an envelope (``ReceivingServer.decide``): reply faults, disk full,
  greylisting, fail-first and accept-then-drop, which depend on the sender,
  the recipient, or the message and its attempt number at this server.

The engine announces its sessions: ``ReceivingServer.plan`` makes both parts
when it submits an attempt, in submission order, with the whole envelope
known (a ``SessionContext``). A connection nobody announced (a real MTA, a
test client) is *foreign* (``simulator.server.foreign``): it is admitted
when it connects, and each envelope decision is made at the step that needs
it, from what the client has said by then, in a ``SessionBook`` of its own,
so that it never changes what the engine's sessions meet; the mail it gets
a 250 for is kept apart from the mail stores:

=========  ==========================================================
step       what the decision is keyed by (its ``SessionContext``)
=========  ==========================================================
EHLO       the client's EHLO name
MAIL       the envelope sender
RCPT       sender and this recipient (recipient lists, greylisting)
DATA, dot  sender and the first accepted recipient
=========  ==========================================================

The key stands in for the message: dice rolls (``chance``) and fail-first's
attempt numbers count sessions per key, as the engine counts them per
message, so one message per sender/recipient pair meets the same decisions
either way (except for the dice, rolled on a different key, and sessions
that end before RCPT, turned away for instance, which the engine counts as
attempts of their message). A fault
listed for some recipients cannot match before RCPT. Latency is simulated
time the engine charges to its senders; a client that is not on the
simulated clock sees no delay, and no stall. Foreign and announced sessions
have separate histories: a foreign client neither fills a capacity limit
for the engine's sessions nor starts their greylisting period.

A server may be *watched* (``ReceivingServer.watch``, the live mode): then
foreign connections are the outside MTAs the run is about. They share the
engine's history (capacity limits and greylisting count every client, as a
real server's do), their mail is committed to the disks like the engine's,
and each step at which one ends, is refused or hands over a message is
reported as a ``SessionNote`` with what the client has said so far.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from . import replies
from .faults import (
    CapacityFault,
    DeliveryQueueFault,
    DiskFullFault,
    DropFault,
    FailFirstFault,
    FaultSpec,
    GreylistFault,
    ReplyFault,
    SessionPlan,
    SlowFault,
    affects_address,
    chance,
    default_text,
)
from .policies import Stage
from .replies import reply_code
from .server.foreign import ForeignSession, ForeignTraffic, SessionBook
from .server.ids import OWN_DOMAIN, message_id_of
from .server.steps import Act, SessionNote, Step
from .store import MailStores

__all__ = [
    "Mode",
    "Greeting",
    "ReceivingServer",
    "SessionContext",
    "Admission",
    "ServerSession",
    "Step",
    "Act",
    "SessionNote",
    "message_id_of",
    "OWN_DOMAIN",
]

_FOREIGN_ID_MAX = 64  # a foreign Message-ID is kept (and echoed) at most this long

_ENVELOPE_STAGES = frozenset({Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.DOT})
"""The stages an envelope decision can answer at."""


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


class SessionContext(NamedTuple):
    """Who is connecting: the message and envelope the session will carry.

    ``message_id`` keys the session's dice rolls and attempt count; for a
    connection nobody announced it is whatever identifies the mail so far.
    """

    message_id: str
    mail_from: str
    rcpt_to: str


@dataclass(frozen=True, slots=True)
class Admission:
    """What a new connection met when it connected.

    ``plan`` holds the greeting (mode, capacity) and the latency of slow
    faults; ``faults`` are the faults in force that the envelope decisions
    of this session use (up to the capacity limit that turned it away, if
    one did).
    """

    plan: SessionPlan
    faults: tuple[FaultSpec, ...]


_SILENT = Step(Act.SILENT)
_SENDER_OK = Step(Act.REPLY, replies.SENDER_OK)
_RECIPIENT_OK = Step(Act.REPLY, replies.RECIPIENT_OK)
_START_DATA = Step(Act.REPLY, replies.START_DATA)
_RESET_OK = Step(Act.REPLY, replies.RESET_OK)


def _stage_of(fault: FaultSpec) -> Stage | None:
    """Where an envelope decision answers; None for what is decided at connect (capacity, slow)."""
    if isinstance(fault, (ReplyFault, DiskFullFault, FailFirstFault)):
        return Stage(fault.stage)
    if isinstance(fault, GreylistFault):
        return Stage.RCPT
    if isinstance(fault, DropFault):
        return Stage.DOT
    return None


@dataclass
class _ActiveFault:
    spec: FaultSpec
    until: float


class ReceivingServer:
    """One simulated receiving MTA: mode, domains, faults and its mail store.

    *now* returns the current simulated time (frozen during real I/O);
    *on_commit* is told about every copy committed to a disk (by the
    engine's sessions only). ``book`` is the history of the engine's
    sessions; ``foreign`` the connections nobody announced, with their own.
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
        self.book = SessionBook()
        self.foreign = ForeignTraffic(name)
        self.watch: Callable[[SessionNote], None] | None = None

    @property
    def sessions_planned(self) -> int:
        """Sessions of the engine's that connected."""
        return self.book.sessions

    @property
    def turned_away(self) -> int:
        """Sessions of the engine's turned away at a capacity limit."""
        return self.book.turned_away

    # ------------------------------------------------------------------ faults
    def add_fault(self, spec: FaultSpec, until: float) -> None:
        """Switch a fault on until simulated time *until*.

        A ``delivery-queue`` fault changes no session: it opens a slower way
        into the mailboxes in the server's mail store.
        """
        if isinstance(spec, DeliveryQueueFault):
            fraction, seed = spec.recipients_fraction, self.seed
            selects = None if fraction is None else (lambda rcpt: affects_address(fraction, seed, rcpt))
            self._stores.slow_delivery(self.name, spec.per_minute, selects, self._now(), until)
            return
        self.faults.append(_ActiveFault(spec, until))

    def clear_faults(self) -> None:
        """Switch every fault off (``delivery-queue`` faults included)."""
        self.faults.clear()
        self._stores.end_slow_delivery(self.name, self._now())

    # ---------------------------------------------------------------- sessions
    def plan(self, ctx: SessionContext) -> SessionPlan:
        """Decide, when the engine submits an attempt, everything its session will meet.

        Called in submission order (deterministic), with the whole envelope
        known: the admission at connect, then every envelope decision. A
        session turned away still has its envelope decided over the faults
        switched on before the capacity limit (a greylist among them
        remembers the pair), though the client never hears those replies.
        """
        admission = self.connect()
        attempt = self.count_attempt(ctx.message_id)
        plan = admission.plan
        if admission.faults:
            decided = self.decide(admission.faults, ctx, attempt, _ENVELOPE_STAGES)
            plan.replies.update(decided.replies)
            plan.drop_after_commit = decided.drop_after_commit
        return plan

    def session(self, plan: SessionPlan | None = None, peer: str = "") -> ServerSession:
        """The interpreter of one connection: of *plan*, or of a foreign connection from *peer*."""
        return ServerSession(self, plan, peer)

    def connect(self, book: SessionBook | None = None) -> Admission:
        """A client connects: the mode's greeting, capacity admission, slow latency.

        Expired faults are dropped; a session over a capacity limit is turned
        away (counted in the *book*'s ``turned_away``; the engine's by
        default) and later faults are not looked at.
        """
        book = self.book if book is None else book
        now = self._now()
        if self.faults:
            self.faults = [f for f in self.faults if f.until > now]
        book.sessions += 1
        plan = SessionPlan()
        greeting = self.greeting()
        if greeting is Greeting.SILENT:
            plan.greeting = "silent"
            return Admission(plan, ())
        if greeting is Greeting.TEMPFAIL:
            plan.greeting, plan.greeting_reply = "tempfail", self.tempfail_reply
            return Admission(plan, ())
        reached: list[FaultSpec] = []
        for active in self.faults:
            fault = active.spec
            reached.append(fault)
            if isinstance(fault, CapacityFault):
                if not self._admit(fault, now, book.admitted):
                    plan.greeting, plan.greeting_reply, plan.turned_away = "tempfail", replies.TOO_BUSY, True
                    book.turned_away += 1
                    break
            elif isinstance(fault, SlowFault):
                stages = list(Stage) if fault.stage == "all" else [Stage(fault.stage)]
                for stage in stages:
                    if stage not in (Stage.CONNECT, Stage.QUIT):
                        plan.latency[stage] = plan.latency.get(stage, 0.0) + fault.latency
        return Admission(plan, tuple(reached))

    @staticmethod
    def _admit(fault: CapacityFault, now: float, admitted: deque[float]) -> bool:
        window = max(fault.session_time, 60.0 if fault.per_minute else 0.0)
        while admitted and admitted[0] <= now - window:
            admitted.popleft()
        # *admitted* is kept in time order: binary searches, not a walk through a busy minute's sessions
        busy = len(admitted) - bisect_right(admitted, now - fault.session_time)
        last_minute = len(admitted) - bisect_right(admitted, now - 60.0)
        if (fault.sessions is not None and busy >= fault.sessions) or (
            fault.per_minute is not None and last_minute >= fault.per_minute
        ):
            return False
        if admitted and admitted[-1] > now:
            insort(admitted, now)  # a clock that stepped back (a live run's wall clock): keep the order
        else:
            admitted.append(now)
        return True

    def count_attempt(self, key: str, book: SessionBook | None = None) -> int:
        """One more session for *key* (a message, or what identifies it so far); returns its number."""
        return (self.book if book is None else book).count_attempt(key)

    def decide(
        self,
        faults: Sequence[FaultSpec],
        ctx: SessionContext,
        attempt: int,
        stages: Collection[Stage],
        book: SessionBook | None = None,
    ) -> SessionPlan:
        """The envelope decisions of *faults* that answer at *stages*, for session *attempt* of *ctx*.

        Returns a plan holding only ``replies`` and ``drop_after_commit``;
        the first fault (in the order they were switched on) wins a stage.
        Greylisting remembers a sender/recipient pair the first time it is
        decided, in *book* (the engine's by default).
        """
        book = self.book if book is None else book
        now = self._now()
        out = SessionPlan()
        for fault in faults:
            stage = _stage_of(fault)
            if stage is None or stage not in stages:
                continue
            if isinstance(fault, DropFault):
                if (
                    fault.fraction >= 1
                    or chance(self.seed, self.name, ctx.message_id, attempt, "drop") < fault.fraction
                ):
                    out.drop_after_commit = True
                continue
            reply = self._reply(fault, ctx, attempt, now, book.greylist)
            if reply is not None:
                out.replies.setdefault(stage, reply)
        return out

    def _reply(
        self, fault: FaultSpec, ctx: SessionContext, attempt: int, now: float, greylist: dict[tuple[str, str], float]
    ) -> str | None:
        if isinstance(fault, ReplyFault):
            if fault.recipients is not None and ctx.rcpt_to.lower() not in {r.lower() for r in fault.recipients}:
                return None
            if fault.recipients_fraction is not None and not (
                ctx.rcpt_to and affects_address(fault.recipients_fraction, self.seed, ctx.rcpt_to)
            ):
                return None
            if fault.fraction < 1 and chance(self.seed, self.name, ctx.message_id, attempt, "reply") >= fault.fraction:
                return None
            return f"{fault.code} {fault.text or default_text(fault.code)}"
        if isinstance(fault, DiskFullFault):
            return replies.DISK_FULL
        if isinstance(fault, GreylistFault):
            first = greylist.setdefault((ctx.mail_from.lower(), ctx.rcpt_to.lower()), now)
            return replies.GREYLISTED if now - first < fault.delay else None
        if isinstance(fault, FailFirstFault) and attempt <= fault.attempts:
            return f"{fault.code} {default_text(fault.code)}"
        return None

    # ------------------------------------------------------------------ state
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

    def data(self, content: bytes, recipient: str = "", known: str | None = None) -> str:
        """Commit the message to the current disk (through the delivery queue, for *recipient*) and return the reply to the final dot.

        *known*: the id the sending side knows the message by (in memory
        mode); when the text says the same, the disk keeps that one string
        rather than a copy of its own (a million messages: 56 MB).
        """
        message_id = message_id_of(content)
        if message_id is None:
            return replies.MESSAGE_ID_REQUIRED
        if message_id == known:
            message_id = known
        now = self._now()
        if not self._stores.has_disk(self.name):
            return replies.SERVICE_UNAVAILABLE
        disk = self._stores.accept(self.name, message_id, now, recipient)
        self._on_commit(message_id, self.name, now)
        return replies.OK_QUEUED.format(queue_id=f"{disk}/{message_id}")

    def keep_apart(self, content: bytes, session: ForeignSession) -> str:
        """The final dot of a foreign session: the reply ``data`` would give, the message counted
        in ``foreign`` instead of committed to a disk (it never reaches ``on_commit``)."""
        message_id = message_id_of(content)
        if message_id is None:
            return replies.MESSAGE_ID_REQUIRED
        if not self._stores.has_disk(self.name):
            return replies.SERVICE_UNAVAILABLE
        message_id = message_id[:_FOREIGN_ID_MAX]
        self.foreign.keep(session, message_id)
        return replies.OK_QUEUED.format(queue_id=f"foreign/{message_id}")


class ServerSession:
    """One SMTP session as the server acts it out: one method per step of the dialogue.

    Made per connection from a ``ReceivingServer`` and the ``SessionPlan``
    the engine announced for it; with no plan (a foreign connection) the
    server admits the connection now and makes each envelope decision at
    the step that needs it (see the module notes), from the foreign
    ``SessionBook``; ``foreign`` records what the session does, and its
    mail is kept apart. ``end()`` says the connection is over.
    Each method returns the ``Step`` the server takes; the caller sends it
    (the wire) or reads the outcome from it (the in-memory transport).
    """

    __slots__ = ("_attempts", "_faults", "_helo", "_mail_from", "_recipients", "announced", "foreign", "plan", "server")

    def __init__(self, server: ReceivingServer, plan: SessionPlan | None = None, peer: str = "") -> None:
        self.server = server
        self.announced = plan is not None
        self.foreign: ForeignSession | None = None
        if plan is None:
            self.foreign = server.foreign.open(peer, server._now())
            admission = server.connect(self._book())
            plan, self._faults = admission.plan, admission.faults
            self.foreign.turned_away = plan.turned_away
        else:
            self._faults = ()
        self.plan = plan
        self._helo = ""
        self._mail_from = ""
        self._recipients: list[str] = []
        self._attempts: dict[str, int] = {}

    def greeting(self) -> Step:
        """On connect: the 220 greeting, silence, or a 421 and close."""
        plan = self.plan
        if plan.greeting == "silent" or plan.stall is Stage.GREETING:
            return self._noted(Stage.GREETING, _SILENT)
        if plan.greeting == "tempfail":
            return self._noted(Stage.GREETING, Step(Act.CLOSE, plan.greeting_reply))
        return Step.say(replies.GREETING.format(hostname=self.server.hostname))

    def ehlo(self, hostname: str) -> Step:
        """EHLO (or HELO) *hostname*: a new transaction state and the server's hello, or a refusal."""
        self.reset()
        self._helo = hostname
        if self.plan.stall is Stage.EHLO:
            return _SILENT
        reply = self._fault_reply(Stage.EHLO)
        if reply is None:
            return Step.say(replies.EHLO_OK.format(hostname=self.server.hostname))
        return self._noted(Stage.EHLO, Step.say(reply))

    def mail(self, address: str) -> Step:
        """MAIL FROM *address*."""
        self.reset()
        self._mail_from = address
        if self.plan.stall is Stage.MAIL:
            return _SILENT
        reply = self._fault_reply(Stage.MAIL)
        return _SENDER_OK if reply is None else self._noted(Stage.MAIL, Step.say(reply))

    def rcpt(self, address: str) -> Step:
        """RCPT TO *address*: a fault's reply, a domain not served here, or accepted."""
        if self.plan.stall is Stage.RCPT:
            return _SILENT
        reply = self._fault_reply(Stage.RCPT, address) or self.server.rcpt(address)
        if reply is not None:
            return self._noted(Stage.RCPT, Step.say(reply), rcpt=address)
        self._recipients.append(address)
        return _RECIPIENT_OK

    def data(self) -> Step:
        """DATA (with at least one recipient accepted): 354, or a fault's reply."""
        if self.plan.stall is Stage.DATA:
            return _SILENT
        reply = self._fault_reply(Stage.DATA)
        return _START_DATA if reply is None else self._noted(Stage.DATA, Step.say(reply))

    def dot(self, content: bytes, known: str | None = None) -> Step:
        """The final dot: commit *content* through the server and return its reply (*known*: see ``data``).

        ``Act.DROP`` (with the 250 that is never sent) when the plan drops
        the connection after the commit.
        """
        if self.plan.stall is Stage.DOT:
            return _SILENT
        if self.announced:
            reply, drop = self.plan.reply_at(Stage.DOT), self.plan.drop_after_commit
        else:
            decided = self._decide(Stage.DOT, self._context(Stage.DOT))
            reply, drop = decided.reply_at(Stage.DOT), decided.drop_after_commit
        recipient = self._recipients[0] if self._recipients else ""
        if reply is None:
            if self.foreign is None or self.server.watch is not None:  # a watched server stores outside mail
                reply = self.server.data(content, recipient, known)
            else:
                reply = self.server.keep_apart(content, self.foreign)
        step = Step(Act.DROP, reply) if drop and reply_code(reply) == 250 else Step.say(reply)
        if self.foreign is not None:
            self._noted(Stage.DOT, step, message_id=message_id_of(content))
        self.reset()
        return step

    def rset(self) -> Step:
        """RSET: forget the transaction."""
        self.reset()
        return _RESET_OK

    def end(self, how: str = "closed") -> None:
        """The connection is over; a foreign session is recorded as ended *how*."""
        if self.foreign is not None:
            self.server.foreign.close(self.foreign, how)

    def reset(self) -> None:
        """Forget the envelope of the current transaction (RSET, EHLO, a new MAIL, after the dot)."""
        self._mail_from = ""
        self._recipients = []

    # ------------------------------------------------------------- decisions
    def _fault_reply(self, stage: Stage, rcpt: str = "") -> str | None:
        if self.announced:
            return self.plan.reply_at(stage)
        return self._decide(stage, self._context(stage, rcpt)).reply_at(stage)

    def _book(self) -> SessionBook:
        """Whose history this session's decisions use: the engine's, or the foreign clients' own.

        On a watched server (a live run) every client shares the engine's, as at a real server.
        """
        server = self.server
        return server.book if self.foreign is None or server.watch is not None else server.foreign.book

    def _noted(self, stage: Stage, step: Step, *, rcpt: str = "", message_id: str | None = None) -> Step:
        """Tell the server's watcher, if any, what a foreign connection met; return *step*."""
        watch = self.server.watch
        if watch is not None and self.foreign is not None:
            watch(
                SessionNote(
                    server=self.server.name,
                    peer=self.foreign.peer,
                    stage=stage,
                    step=step,
                    helo=self._helo,
                    mail_from=self._mail_from,
                    rcpt=(rcpt,) if rcpt else tuple(self._recipients),
                    message_id=message_id,
                    turned_away=self.plan.turned_away,
                )
            )
        return step

    def _decide(self, stage: Stage, ctx: SessionContext) -> SessionPlan:
        book = self._book()
        attempt = self._attempts.get(ctx.message_id)
        if attempt is None:  # the first time this session meets the key
            attempt = self._attempts[ctx.message_id] = self.server.count_attempt(ctx.message_id, book)
        return self.server.decide(self._faults, ctx, attempt, (stage,), book)

    def _context(self, stage: Stage, rcpt: str = "") -> SessionContext:
        """What the client has said by *stage*, as a context for decisions."""
        sender = self._mail_from
        if stage is Stage.EHLO:
            return SessionContext(f"helo {self._helo}", "", "")
        if stage is Stage.MAIL:
            return SessionContext(f"<{sender}>", sender, "")
        recipient = rcpt if stage is Stage.RCPT else (self._recipients[0] if self._recipients else "")
        return SessionContext(f"<{sender}> <{recipient}>", sender, recipient)
