"""Real aiosmtpd servers on 127.0.0.1 that follow the incident timeline.

Each ``WireServer`` listens with ``loop.create_server(..., "127.0.0.1", 0)``
(aiosmtpd's ``Controller`` cannot restart and runs a thread). "Refuse" closes
the listening socket, so clients get connection refused; "up" listens again
on the same port.

Everything else is the server's own decision, through one ``ServerSession``
per connection (``simulator.receiver``): this module only puts its steps on
the socket. When the engine submits an attempt, the server makes a
``SessionPlan`` and the client hands it over under its own (already bound)
port; the session found by that port acts it out. A connection nobody
announced (a real MTA, a test client, a hostile local process) is foreign:
the server decides it as it goes (admitted or turned away under capacity
limits when it connects, greylisted or refused when its envelope arrives)
from a history of its own, keeps the mail it accepts apart from the run's
mail stores, and records the session (``simulator.server.foreign``).

aiosmtpd logs what clients send (unknown commands at WARNING level) to the
``mail.log`` logger; a server that starts while that logger is unconfigured
sets it to ERROR, so a client's bytes never reach the run's stderr while
real errors still do.

Loopback cannot drop a TCP handshake, so an *unreachable* host is a silent
listener on the wire too; the engine charges the sender's connect timeout
for it instead of the greeting timeout.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from . import replies
from .errors import RunError
from .faults import SessionPlan
from .receiver import Act, ReceivingServer, ServerSession, Step

__all__ = ["WireServer", "ServerHandler", "LOOPBACK"]

LOOPBACK = "127.0.0.1"
_BACKLOG = 1024
_STALL_SECONDS = 30.0  # a stalled server waits this long at most; the client hangs up long before
_AIOSMTPD_LOG = "mail.log"

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")
"""``<local@domain>`` with a dot-atom local part, an LDH domain and nothing else."""


class _Session(SMTP):
    """aiosmtpd's protocol putting one ``ServerSession``'s steps on the socket.

    The 220 greeting and the EHLO extension lines are aiosmtpd's own (its
    ident is ``replies.SERVER_IDENT``, so the greeting reads as the
    session's). It also has a fast path for plain MAIL FROM / RCPT TO
    paths: aiosmtpd parses every path with ``email``'s header parser (about
    50 us each). A path that is exactly ``<dot-atom@ldh.domain>`` parses to
    itself with nothing after it, so it is returned as is; anything else
    (options, quoting, source routes, ``<>``, non-ASCII) goes to aiosmtpd's
    parser.
    """

    dialogue: ServerSession | None = None
    hung_up = False  #: the server hung up on purpose: nothing more goes out
    stalled = False  #: the server went silent; the client has gone or will go
    received = 0  #: bytes the client sent
    plan: SessionPlan | None = None
    peer = ""

    def __init__(self, owner: WireServer, handler: ServerHandler) -> None:
        super().__init__(
            handler,
            hostname=owner.logic.hostname,
            ident=replies.SERVER_IDENT,
            loop=asyncio.get_running_loop(),
            timeout=30,
        )
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The announced plan is taken before aiosmtpd starts the session (and reads anything).
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
            self.plan = self.owner.take_plan(peer[1])
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.end("closed")

    def end(self, how: str) -> None:
        """The connection is over: a foreign session is recorded with what it sent."""
        dialogue = self.dialogue
        if dialogue is not None and dialogue.foreign is not None:
            dialogue.foreign.received = self.received
            dialogue.end(how)

    async def handle_exception(self, error: Exception) -> str:
        # What a foreign client's input makes go wrong is recorded with its session; it
        # cannot abort the run. In the engine's own sessions it is a bug: the run aborts.
        foreign = self.dialogue.foreign if self.dialogue is not None else None
        if foreign is None:
            return str(await super().handle_exception(error))
        foreign.error = f"{type(error).__name__}: {error}"[:200]
        return replies.INTERNAL_ERROR

    async def _handle_client(self) -> None:
        logic = self.owner.logic
        try:
            self.dialogue = logic.session(self.plan, peer=self.peer)
            step = self.dialogue.greeting()
        except Exception as error:  # a bug in the server logic: recorded, the engine aborts the run
            logic.errors.append(error)
            self.hang_up()
            return
        if step.act is Act.REPLY:
            await super()._handle_client()  # greets with the same 220 line, then serves commands
        else:
            await self.push(await self.act(step))

    async def act(self, step: Step) -> str:
        """Carry out *step*; returns the status line aiosmtpd is to send ("" for none)."""
        if step.act is Act.REPLY:
            return step.reply
        if step.act is Act.CLOSE:
            await self.push(step.reply)
            self.hang_up()
        elif step.act is Act.DROP:
            self.hang_up(abort=True)
        else:
            self.stalled = True
            await asyncio.sleep(_STALL_SECONDS)
            self.hang_up()
        return ""

    def hang_up(self, abort: bool = False) -> None:
        """Close the connection from the server's side; later pushes are dropped."""
        self.hung_up = True
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and abort:
            transport.abort()
        elif transport is not None:
            transport.close()

    async def push(self, status: AnyStr) -> None:
        if self.hung_up or not status:
            return
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        # Ask the session only where aiosmtpd would go ahead (it says 503 without a recipient).
        if self.dialogue is not None and self.envelope is not None and self.envelope.rcpt_tos and not arg:
            step = self.dialogue.data()
            if not step.positive:  # 354 goes on to aiosmtpd's DATA
                await self.push(await self.act(step))
                return
        await super().smtp_DATA(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None or self.local_part_limit:
            return super()._getaddr(arg)
        return match.group(1), ""


def _dialogue(server: _Session) -> ServerSession:
    assert server.dialogue is not None  # made before the greeting, so before any command
    return server.dialogue


class ServerHandler:
    """aiosmtpd handler hooks: each asks the connection's ``ServerSession`` and puts its step on the wire."""

    def __init__(self, logic: ReceivingServer) -> None:
        self.logic = logic

    async def handle_EHLO(
        self, server: _Session, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """aiosmtpd's EHLO reply (with its extensions), or the session's refusal."""
        step = _dialogue(server).ehlo(hostname)
        if step.positive:
            session.host_name = hostname
            return responses
        return [await server.act(step)]

    async def handle_HELO(self, server: _Session, session: Session, envelope: Envelope, hostname: str) -> str:
        """HELO is decided as EHLO is."""
        step = _dialogue(server).ehlo(hostname)
        if step.positive:
            session.host_name = hostname
        return await server.act(step)

    async def handle_MAIL(
        self, server: _Session, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        """Take the envelope sender, or the session's refusal."""
        step = _dialogue(server).mail(address)
        if step.positive:
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return await server.act(step)

    async def handle_RCPT(
        self, server: _Session, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept or refuse one recipient."""
        step = _dialogue(server).rcpt(address)
        if step.positive:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return await server.act(step)

    async def handle_RSET(self, server: _Session, session: Session, envelope: Envelope) -> str:
        """Forget the transaction."""
        return await server.act(_dialogue(server).rset())

    async def handle_DATA(self, server: _Session, session: Session, envelope: Envelope) -> str:
        """The final dot: the session commits the message (or not) and gives the reply."""
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        return await server.act(_dialogue(server).dot(content))

    async def handle_exception(self, error: Exception) -> str:
        """A bug in the server logic is recorded so the engine aborts the run."""
        self.logic.errors.append(error)
        return replies.INTERNAL_ERROR


class WireServer:
    """One aiosmtpd server whose listener follows its ``ReceivingServer``'s mode."""

    def __init__(self, logic: ReceivingServer, port: int = 0) -> None:
        self.logic = logic
        self.handler = ServerHandler(logic)
        self.port = port  #: 0 until started: any free port
        self._server: asyncio.Server | None = None
        self._placeholder: socket.socket | None = None
        self._plans: dict[int, SessionPlan] = {}
        self._sessions: set[_Session] = set()

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return (LOOPBACK, self.port)

    def expect(self, client_port: int, plan: SessionPlan) -> None:
        """The next connection from *client_port* acts out *plan*."""
        self._plans[client_port] = plan

    def forget(self, client_port: int) -> None:
        """The announced connection never came (refused)."""
        self._plans.pop(client_port, None)

    def take_plan(self, client_port: int) -> SessionPlan | None:
        """The plan announced for *client_port*, or None: nobody announced it, the server decides."""
        return self._plans.pop(client_port, None)

    def _protocol(self) -> asyncio.BaseProtocol:
        session = _Session(self, self.handler)
        self._sessions.add(session)
        return session

    async def _listen(self) -> None:
        # Bind and listen synchronously, releasing the placeholder first:
        # nothing else in this loop can take the port in between.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: multi-line replies (EHLO) must not wait for delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        try:
            sock.bind((LOOPBACK, self.port))
            sock.listen(_BACKLOG)
            sock.setblocking(False)
            self._server = await asyncio.get_running_loop().create_server(self._protocol, sock=sock)
        except OSError as exc:
            sock.close()
            raise RunError(f"server {self.logic.name}: cannot listen on {LOOPBACK}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]

    def _hold_port(self) -> None:
        """Stop listening but keep the port bound: connections are refused, and no
        client socket of this process can be given the port meanwhile."""
        assert self._server is not None
        self._server.close()
        self._server = None
        hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.bind((LOOPBACK, self.port))
        self._placeholder = hold

    async def start(self) -> None:
        """Bind a port (always, so it is known), then follow the mode."""
        quiet_aiosmtpd()
        await self._listen()
        await self.reconcile()

    def _close_idle(self) -> None:
        """Hang up sessions left open by silent or stalled plans (their clients have gone)."""
        for session in list(self._sessions):
            if session.transport is None:
                self._sessions.discard(session)
            elif session.stalled:
                session.transport.close()
                self._sessions.discard(session)

    async def reconcile(self) -> None:
        """Open or close the listener to match the mode; hang up silent sessions."""
        self._close_idle()
        listening = self._server is not None
        if self.logic.listening and not listening:
            await self._listen()
        elif not self.logic.listening and listening:
            self._hold_port()

    async def stop(self) -> None:
        """Close the listener and every session (foreign ones still open are recorded so), and wait for it."""
        for session in list(self._sessions):
            if session.transport is not None:
                session.end("closed" if session.transport.is_closing() else "open at the end of the run")
                session.transport.close()
        self._sessions.clear()
        self._plans.clear()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def quiet_aiosmtpd() -> None:
    """Keep aiosmtpd's per-command logging (clients' raw bytes) off stderr; errors still show.

    Only an unconfigured ``mail.log`` logger is changed: an application that
    set its level keeps it.
    """
    logger = logging.getLogger(_AIOSMTPD_LOG)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
