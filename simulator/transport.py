"""The seam between the sending side and I/O: one attempt in, one outcome out.

``SmtpTransport`` runs a real SMTP session with aiosmtplib against an
aiosmtpd server on loopback. ``MemoryTransport`` steps through the same
``ServerSession`` the aiosmtpd handler acts out, without sockets (like
httpx's MockTransport), for unit tests and quick what-ifs. Both return an
``Outcome``; neither decides a reply.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

import aiosmtplib

from .faults import SessionPlan
from .policies import Failure, FailureKind, Stage
from .receiver import Act, ReceivingServer, ServerSession, Step
from .replies import reply_code

if TYPE_CHECKING:
    from .wire import WireServer

__all__ = ["Attempt", "Outcome", "Transport", "SmtpTransport", "MemoryTransport"]


class Attempt(NamedTuple):
    """One delivery attempt of one message to one server."""

    message_id: str
    server: str
    address: tuple[str, int]
    helo: str
    mail_from: str
    rcpt_to: str
    content: bytes | Callable[[], bytes]  #: the message, or what makes it when a session gets that far
    plan: SessionPlan | None = None  #: the server's plan for this session (None: unannounced)

    def body(self) -> bytes:
        """The message's bytes."""
        content = self.content
        return content if isinstance(content, bytes) else content()


class Outcome(NamedTuple):
    """What the client saw: accepted (with the reply text) or a ``Failure``."""

    accepted: bool
    reply: str = ""
    failure: Failure | None = None

    @classmethod
    def ok(cls, reply: str) -> Outcome:
        """The server said 250 to the final dot."""
        return cls(accepted=True, reply=reply)

    @classmethod
    def failed(cls, kind: FailureKind, stage: Stage, server: str, code: int | None = None, text: str = "") -> Outcome:
        """The attempt failed at *stage*."""
        return cls(accepted=False, failure=Failure(kind, stage, server, code, text))


class Transport(Protocol):
    """Runs attempts; implementations must never raise for an SMTP outcome."""

    async def attempt(self, attempt: Attempt) -> Outcome:
        """Run one attempt to its end."""


# Failure texts are fixed strings, not exception messages, so that the ledger
# never carries port numbers or other run-to-run noise.
REFUSED_TEXT = "connection refused"
CONNECT_TIMEOUT_TEXT = "connect timed out"
NO_GREETING_TEXT = "no greeting (timed out)"
LOST_TEXT = "connection lost"
TIMEOUT_TEXT = "timed out waiting for a reply"
ANSWER_TIMEOUT = 30.0
"""Real seconds to wait for a server whose plan is to answer (only a broken machine waits this long)."""


def _reply_failure(stage: Stage, server: str, code: int, text: str) -> Outcome:
    kind = FailureKind.PERMFAIL if 500 <= code < 600 else FailureKind.TEMPFAIL
    return Outcome.failed(kind, stage, server, code, text)


class SmtpTransport:
    """Real SMTP over loopback with aiosmtplib.

    *wire_timeout* is real seconds: how long to wait for a greeting that
    never comes (the simulated timeout is charged by the engine). The client
    socket is bound before it connects, so the session's plan can be handed
    to the server under the client's port (*servers* maps names to wire
    servers). A refused connection is told from the socket's own error
    right after the non-blocking connect, without building an SMTP client.
    """

    def __init__(self, wire_timeout: float = 0.05, servers: dict[str, WireServer] | None = None) -> None:
        self.wire_timeout = wire_timeout
        self.servers = servers or {}

    async def _connect(self, attempt: Attempt) -> socket.socket | None:
        """A connected socket, or None when the connection was refused."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small SMTP lines
        try:
            sock.bind((attempt.address[0], 0))
            port = sock.getsockname()[1]
            wire = self.servers.get(attempt.server)
            if wire is not None and attempt.plan is not None:
                wire.expect(port, attempt.plan)
            code = sock.connect_ex(attempt.address)
            if code == errno.EINPROGRESS:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EINPROGRESS
            if code == errno.ECONNREFUSED:
                if wire is not None:
                    wire.forget(port)
                sock.close()
                return None
            if code == errno.EINPROGRESS:
                await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, attempt.address), 10.0)
            elif code != 0:
                raise OSError(code, errno.errorcode.get(code, "connect failed"))
        except ConnectionRefusedError:
            sock.close()
            return None
        except BaseException:
            sock.close()
            raise
        return sock

    async def attempt(self, attempt: Attempt) -> Outcome:
        """One SMTP session: connect, EHLO, MAIL, RCPT, DATA, QUIT."""
        server = attempt.server
        sock = await self._connect(attempt)
        if sock is None:
            return Outcome.failed(FailureKind.REFUSED, Stage.CONNECT, server, text=REFUSED_TEXT)
        # The short wire timeout stands in for the sender's (simulated) timeout
        # only where the server's plan is to stay silent; a server that will
        # answer gets a generous real timeout, so a busy machine cannot turn
        # a slow real reply into a different simulated outcome.
        plan = attempt.plan
        stall = plan.stall if plan is not None else None
        silent = plan is not None and (plan.greeting == "silent" or stall is Stage.GREETING)

        def wait(stage: Stage) -> float:
            return self.wire_timeout if stall is stage else ANSWER_TIMEOUT

        smtp = aiosmtplib.SMTP(
            sock=sock,
            local_hostname=attempt.helo,
            timeout=self.wire_timeout if silent else ANSWER_TIMEOUT,
            start_tls=False,
            use_tls=False,
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPConnectTimeoutError:
            smtp.close()
            return Outcome.failed(FailureKind.TIMEOUT, Stage.GREETING, server, text=NO_GREETING_TEXT)
        except aiosmtplib.SMTPConnectResponseError as exc:
            smtp.close()
            return _reply_failure(Stage.GREETING, server, exc.code, exc.message)
        except aiosmtplib.SMTPServerDisconnected:
            smtp.close()
            return Outcome.failed(FailureKind.DROPPED, Stage.GREETING, server, text=LOST_TEXT)
        stage = Stage.EHLO
        try:
            await smtp.ehlo(timeout=wait(Stage.EHLO))
            stage = Stage.MAIL
            await smtp.mail(attempt.mail_from, timeout=wait(Stage.MAIL))
            stage = Stage.RCPT
            await smtp.rcpt(attempt.rcpt_to, timeout=wait(Stage.RCPT))
            stage = Stage.DATA
            response = await smtp.execute_command(b"DATA", timeout=wait(Stage.DATA))
            if response.code != 354:
                await _close(smtp)
                return _reply_failure(stage, server, response.code, response.message)
            stage = Stage.DOT
            # The content is ours: CRLF line endings, no line starting with a
            # dot. DATA is sent as its own command so that a failure to DATA
            # and a failure to the final dot are told apart.
            protocol = smtp.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost after DATA")
            protocol.write(attempt.body() + b".\r\n")
            response = await protocol.read_response(timeout=wait(Stage.DOT))
        except aiosmtplib.SMTPResponseException as exc:
            await _close(smtp)
            return _reply_failure(stage, server, exc.code, exc.message)
        except aiosmtplib.SMTPServerDisconnected:
            smtp.close()
            return Outcome.failed(FailureKind.DROPPED, stage, server, text=LOST_TEXT)
        except aiosmtplib.SMTPTimeoutError:
            smtp.close()
            return Outcome.failed(FailureKind.TIMEOUT, stage, server, text=TIMEOUT_TEXT)
        if response.code != 250:
            await _close(smtp)
            return _reply_failure(stage, server, response.code, response.message)
        await _close(smtp, quit=True)
        return Outcome.ok(f"{response.code} {response.message}")


async def _close(smtp: aiosmtplib.SMTP, quit: bool = False) -> None:
    if quit:
        try:
            await smtp.quit()
            return
        except aiosmtplib.SMTPException:
            pass
    smtp.close()


_CARRIES_ON = {
    Stage.GREETING: (220,),
    Stage.EHLO: (250,),
    Stage.MAIL: (250,),
    Stage.RCPT: (250, 251),
    Stage.DATA: (354,),
    Stage.DOT: (250,),
}
"""The reply codes after which a client goes on with the dialogue (as aiosmtplib checks them)."""


def _as_seen(stage: Stage, step: Step, server: str) -> Outcome | None:
    """What the client makes of the server's *step*: None to go on, else the failed ``Outcome``."""
    if step.act is Act.SILENT:
        return Outcome.failed(
            FailureKind.TIMEOUT, stage, server, text=NO_GREETING_TEXT if stage is Stage.GREETING else TIMEOUT_TEXT
        )
    if step.act is Act.DROP:
        return Outcome.failed(FailureKind.DROPPED, stage, server, text=LOST_TEXT)
    code = reply_code(step.reply)
    if code not in _CARRIES_ON[stage]:
        return _reply_failure(stage, server, code, step.reply[4:])
    return None


class MemoryTransport:
    """No sockets: the server's own ``ServerSession`` for each attempt, stepped through directly.

    An attempt without a plan is a connection nobody announced, as on the
    wire: a foreign session, decided from its own history, its mail kept apart.
    """

    def __init__(self, servers: dict[str, ReceivingServer]) -> None:
        self._servers = servers
        self._refused = {
            name: Outcome.failed(FailureKind.REFUSED, Stage.CONNECT, name, text=REFUSED_TEXT) for name in servers
        }

    async def attempt(self, attempt: Attempt) -> Outcome:
        """Walk the dialogue as a client on the wire would, translating each ``Step``."""
        return self.attempt_now(attempt)

    def attempt_now(self, attempt: Attempt) -> Outcome:
        """``attempt`` without an event loop: nothing here waits."""
        server = self._servers[attempt.server]
        if not server.listening:
            return self._refused[server.name]  # outcomes are immutable: one per server will do
        session = server.session(attempt.plan, peer="memory")
        try:
            return self._dialogue(session, attempt, server.name)
        finally:
            session.end()

    @staticmethod
    def _dialogue(session: ServerSession, attempt: Attempt, name: str) -> Outcome:
        if (failed := _as_seen(Stage.GREETING, session.greeting(), name)) is not None:
            return failed
        if (failed := _as_seen(Stage.EHLO, session.ehlo(attempt.helo), name)) is not None:
            return failed
        if (failed := _as_seen(Stage.MAIL, session.mail(attempt.mail_from), name)) is not None:
            return failed
        if (failed := _as_seen(Stage.RCPT, session.rcpt(attempt.rcpt_to), name)) is not None:
            return failed
        if (failed := _as_seen(Stage.DATA, session.data(), name)) is not None:
            return failed
        step = session.dot(attempt.body(), attempt.message_id)
        if (failed := _as_seen(Stage.DOT, step, name)) is not None:
            return failed
        return Outcome.ok(step.reply)
