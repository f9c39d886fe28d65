"""The seam between the sending side and I/O: one attempt in, one outcome out.

``SmtpTransport`` runs a real SMTP session with aiosmtplib against an
aiosmtpd server on loopback. ``MemoryTransport`` asks the same
``ReceivingServer`` decisions without sockets (like httpx's MockTransport),
for unit tests and quick what-ifs. Both return an ``Outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from .policies import Failure, FailureKind, Stage
from .receiver import Greeting, ReceivingServer
from .replies import reply_code

__all__ = ["Attempt", "Outcome", "Transport", "SmtpTransport", "MemoryTransport"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of one message to one server."""

    message_id: str
    server: str
    address: tuple[str, int]
    helo: str
    mail_from: str
    rcpt_to: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
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


def _reply_failure(stage: Stage, server: str, code: int, text: str) -> Outcome:
    kind = FailureKind.PERMFAIL if 500 <= code < 600 else FailureKind.TEMPFAIL
    return Outcome.failed(kind, stage, server, code, text)


class SmtpTransport:
    """Real SMTP over loopback with aiosmtplib.

    *wire_timeout* is real seconds: how long to wait for a greeting that
    never comes (the simulated timeout is charged by the engine).
    """

    def __init__(self, wire_timeout: float = 0.05) -> None:
        self.wire_timeout = wire_timeout

    async def attempt(self, attempt: Attempt) -> Outcome:
        """One SMTP session: connect, EHLO, MAIL, RCPT, DATA, QUIT."""
        host, port = attempt.address
        server = attempt.server
        smtp = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            local_hostname=attempt.helo,
            timeout=self.wire_timeout,
            start_tls=False,
            use_tls=False,
        )
        try:
            await smtp.connect()
        except aiosmtplib.SMTPConnectTimeoutError:
            return Outcome.failed(FailureKind.TIMEOUT, Stage.GREETING, server, text=NO_GREETING_TEXT)
        except aiosmtplib.SMTPConnectResponseError as exc:
            return _reply_failure(Stage.GREETING, server, exc.code, exc.message)
        except aiosmtplib.SMTPServerDisconnected:
            return Outcome.failed(FailureKind.DROPPED, Stage.GREETING, server, text=LOST_TEXT)
        except aiosmtplib.SMTPConnectError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                return Outcome.failed(FailureKind.TIMEOUT, Stage.CONNECT, server, text=CONNECT_TIMEOUT_TEXT)
            return Outcome.failed(FailureKind.REFUSED, Stage.CONNECT, server, text=REFUSED_TEXT)
        # Once connected, the server answers promptly: the wire timeout only
        # stands in for silence, so commands get a generous real timeout.
        smtp.timeout = max(self.wire_timeout, 10.0)
        stage = Stage.EHLO
        try:
            await smtp.ehlo()
            stage = Stage.MAIL
            await smtp.mail(attempt.mail_from)
            stage = Stage.RCPT
            await smtp.rcpt(attempt.rcpt_to)
            stage = Stage.DATA
            response = await smtp.execute_command(b"DATA")
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
            protocol.write(attempt.content + b".\r\n")
            response = await protocol.read_response(timeout=smtp.timeout)
        except aiosmtplib.SMTPResponseException as exc:
            await _close(smtp)
            return _reply_failure(stage, server, exc.code, exc.message)
        except aiosmtplib.SMTPServerDisconnected:
            return Outcome.failed(FailureKind.DROPPED, stage, server, text=LOST_TEXT)
        except aiosmtplib.SMTPTimeoutError:
            await _close(smtp)
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


class MemoryTransport:
    """No sockets: the same ``ReceivingServer`` decisions, called directly."""

    def __init__(self, servers: dict[str, ReceivingServer]) -> None:
        self._servers = servers

    async def attempt(self, attempt: Attempt) -> Outcome:
        """Walk the dialogue against the server's decision logic."""
        server = self._servers[attempt.server]
        if not server.listening:
            return Outcome.failed(FailureKind.REFUSED, Stage.CONNECT, server.name, text=REFUSED_TEXT)
        greeting = server.greeting()
        if greeting is Greeting.SILENT:
            return Outcome.failed(FailureKind.TIMEOUT, Stage.GREETING, server.name, text=NO_GREETING_TEXT)
        if greeting is Greeting.TEMPFAIL:
            reply = server.tempfail_reply
            return _reply_failure(Stage.GREETING, server.name, reply_code(reply), reply[4:])
        refusal = server.rcpt(attempt.rcpt_to)
        if refusal is not None:
            return _reply_failure(Stage.RCPT, server.name, reply_code(refusal), refusal[4:])
        reply = server.data(attempt.content)
        code = reply_code(reply)
        if code != 250:
            return _reply_failure(Stage.DOT, server.name, code, reply[4:])
        return Outcome.ok(reply)
