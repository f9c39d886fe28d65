"""Real aiosmtpd servers on 127.0.0.1 that follow the incident timeline.

Each ``WireServer`` listens with ``loop.create_server(..., "127.0.0.1", 0)``
(aiosmtpd's ``Controller`` cannot restart and runs a thread). "Refuse" closes
the listening socket, so clients get connection refused; "up" listens again
on the same port.

Everything else is decided per session by the ``ReceivingServer``: when the
engine submits an attempt, the server makes a ``SessionPlan`` and the client
hands it over under its own (already bound) port; the session found by that
port then acts it out on the socket: silence (blackhole), a 421 greeting and
close, a reply code at a command, a stall, or a dropped connection after the
message is committed. A connection nobody announced (a test poking the port)
gets the plan of the server's current mode.

Loopback cannot drop a TCP handshake, so an *unreachable* host is a silent
listener on the wire too; the engine charges the sender's connect timeout
for it instead of the greeting timeout.
"""

from __future__ import annotations

import asyncio
import re
import socket

from aiosmtpd.smtp import SMTP, Envelope, Session

from .errors import RunError
from .faults import SessionPlan
from .policies import Stage
from .receiver import ReceivingServer

__all__ = ["WireServer", "ServerHandler", "LOOPBACK"]

LOOPBACK = "127.0.0.1"
_BACKLOG = 1024
_STALL_SECONDS = 30.0  # a stalled server waits this long at most; the client hangs up long before

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")
"""``<local@domain>`` with a dot-atom local part, an LDH domain and nothing else."""


class _Session(SMTP):
    """aiosmtpd's protocol acting out one ``SessionPlan``.

    It also has a fast path for plain MAIL FROM / RCPT TO paths: aiosmtpd
    parses every path with ``email``'s header parser (about 50 us each). A
    path that is exactly ``<dot-atom@ldh.domain>`` parses to itself with
    nothing after it, so it is returned as is; anything else (options,
    quoting, source routes, ``<>``, non-ASCII) goes to aiosmtpd's parser.
    """

    plan: SessionPlan
    dropped = False

    def __init__(self, owner: WireServer, handler: ServerHandler) -> None:
        super().__init__(
            handler,
            hostname=owner.logic.hostname,
            ident="smtp-outage",
            loop=asyncio.get_running_loop(),
            timeout=30,
        )
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.plan = self.owner.take_plan(peer[1] if peer else 0)
        super().connection_made(transport)

    async def _handle_client(self) -> None:
        plan = self.plan
        if plan.greeting == "silent" or plan.stall is Stage.GREETING:
            return  # never greet; the client gives up (or aiosmtpd's idle timeout closes)
        if plan.greeting == "tempfail":
            await self.push(plan.greeting_reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    async def push(self, status: str | bytes) -> None:  # type: ignore[override]
        if self.dropped:
            return  # the connection was dropped on purpose: nothing more goes out
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        reply = self.plan.reply_at(Stage.DATA)
        if self.plan.stall is Stage.DATA:
            await asyncio.sleep(_STALL_SECONDS)
        if reply is not None and self.envelope is not None and self.envelope.rcpt_tos:
            await self.push(reply)
            return
        await super().smtp_DATA(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None or self.local_part_limit:
            return super()._getaddr(arg)
        return match.group(1), ""


async def _stall_or_reply(server: _Session, stage: Stage) -> str | None:
    if server.plan.stall is stage:
        await asyncio.sleep(_STALL_SECONDS)
    return server.plan.reply_at(stage)


class ServerHandler:
    """aiosmtpd handler hooks that delegate every decision to a ``ReceivingServer`` and the plan."""

    def __init__(self, logic: ReceivingServer) -> None:
        self.logic = logic

    async def handle_EHLO(
        self, server: _Session, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """The EHLO reply, or the plan's refusal."""
        reply = await _stall_or_reply(server, Stage.EHLO)
        if reply is not None:
            return [reply]
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: _Session, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        """Take the envelope sender, or the plan's refusal."""
        reply = await _stall_or_reply(server, Stage.MAIL)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: _Session, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept or refuse one recipient."""
        reply = await _stall_or_reply(server, Stage.RCPT)
        if reply is None:
            reply = self.logic.rcpt(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: _Session, session: Session, envelope: Envelope) -> str:
        """Commit the message (or not) and return the reply to the final dot."""
        reply = await _stall_or_reply(server, Stage.DOT)
        if reply is not None:
            return reply
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        reply = self.logic.data(content)
        if server.plan.drop_after_commit and reply.startswith("250"):
            server.dropped = True
            assert server.transport is not None
            server.transport.abort()
        return reply

    async def handle_exception(self, error: Exception) -> str:
        """A bug in the server logic is recorded so the engine aborts the run."""
        self.logic.errors.append(error)
        return "451 4.3.0 Internal error (recorded)"


class WireServer:
    """One aiosmtpd server whose listener follows its ``ReceivingServer``'s mode."""

    def __init__(self, logic: ReceivingServer) -> None:
        self.logic = logic
        self.handler = ServerHandler(logic)
        self.port = 0
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

    def take_plan(self, client_port: int) -> SessionPlan:
        """The plan announced for *client_port*, or the current mode's default."""
        plan = self._plans.pop(client_port, None)
        if plan is None:
            plan = SessionPlan(greeting=self.logic.greeting().value, greeting_reply=self.logic.tempfail_reply)
        return plan

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
        await self._listen()
        await self.reconcile()

    def _close_idle(self) -> None:
        """Hang up sessions left open by silent or stalled plans (their clients have gone)."""
        for session in list(self._sessions):
            if session.transport is None:
                self._sessions.discard(session)
            elif session.plan.greeting == "silent" or session.plan.stall is not None:
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
        """Close the listener and every session, and wait for it."""
        for session in list(self._sessions):
            if session.transport is not None:
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
