"""Real aiosmtpd servers on 127.0.0.1 that follow the incident timeline.

Each ``WireServer`` listens with ``loop.create_server(..., "127.0.0.1", 0)``
(aiosmtpd's ``Controller`` cannot restart and runs a thread). "Refuse" closes
the listening socket, so clients get connection refused; "up" listens again
on the same port. Other modes are decided per connection by the
``ReceivingServer``: serve a full aiosmtpd session, stay silent (blackhole),
or greet with 421 and close.

Loopback cannot drop a TCP handshake, so an *unreachable* host is a silent
listener on the wire too; the engine charges the sender's connect timeout
for it instead of the greeting timeout.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from .errors import RunError
from .receiver import Greeting, ReceivingServer

__all__ = ["WireServer", "ServerHandler", "LOOPBACK"]

LOOPBACK = "127.0.0.1"
_BACKLOG = 1024

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")
"""``<local@domain>`` with a dot-atom local part, an LDH domain and nothing else."""


class _SMTP(SMTP):
    """aiosmtpd's protocol with a fast path for plain MAIL FROM / RCPT TO paths.

    aiosmtpd parses every path with ``email``'s header parser (about 50 us
    each). A path that is exactly ``<dot-atom@ldh.domain>`` parses to itself
    with nothing after it, so it is returned as is; anything else (options,
    quoting, source routes, ``<>``, non-ASCII) goes to aiosmtpd's parser.
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None or self.local_part_limit:
            return super()._getaddr(arg)
        return match.group(1), ""


class ServerHandler:
    """aiosmtpd handler hooks that delegate every decision to a ``ReceivingServer``."""

    def __init__(self, logic: ReceivingServer) -> None:
        self.logic = logic

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept or refuse one recipient."""
        refusal = self.logic.rcpt(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Commit the message (or not) and return the reply to the final dot."""
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        return self.logic.data(content)

    async def handle_exception(self, error: Exception) -> str:
        """A bug in the server logic is recorded so the engine aborts the run."""
        self.logic.errors.append(error)
        return "451 4.3.0 Internal error (recorded)"


class _Silent(asyncio.Protocol):
    """Accepts TCP and never says a word (blackhole / unreachable)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:  # pragma: no cover - clients never get that far
        pass


class _GreetAndClose(asyncio.Protocol):
    """Sends one reply line (e.g. ``421 ...``) and closes the connection."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.reply.encode("ascii") + b"\r\n")
        transport.close()


class WireServer:
    """One aiosmtpd server whose listener follows its ``ReceivingServer``'s mode."""

    def __init__(self, logic: ReceivingServer) -> None:
        self.logic = logic
        self.handler = ServerHandler(logic)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._silent: list[asyncio.BaseTransport] = []

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return (LOOPBACK, self.port)

    def _protocol(self) -> asyncio.BaseProtocol:
        greeting = self.logic.greeting()
        if greeting is Greeting.SERVE:
            return _SMTP(
                self.handler,
                hostname=self.logic.hostname,
                ident="smtp-outage",
                loop=asyncio.get_running_loop(),
                timeout=30,
            )
        if greeting is Greeting.TEMPFAIL:
            return _GreetAndClose(self.logic.tempfail_reply)
        silent = _Silent()
        self._silent.append(silent)  # type: ignore[arg-type]
        return silent

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol, LOOPBACK, self.port, backlog=_BACKLOG, reuse_address=True
            )
        except OSError as exc:
            raise RunError(f"server {self.logic.name}: cannot listen on {LOOPBACK}:{self.port}: {exc}") from exc
        sock: socket.socket = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def start(self) -> None:
        """Bind a port (always, so it is known), then follow the mode."""
        await self._listen()
        await self.reconcile()

    async def reconcile(self) -> None:
        """Open or close the listener to match the mode; drop silent connections."""
        for silent in self._silent:
            transport: Any = getattr(silent, "transport", None)
            if transport is not None:
                transport.close()
        self._silent.clear()
        listening = self._server is not None
        if self.logic.listening and not listening:
            await self._listen()
        elif not self.logic.listening and listening:
            assert self._server is not None
            self._server.close()
            self._server = None

    async def stop(self) -> None:
        """Close the listener and wait for it."""
        for silent in self._silent:
            transport: Any = getattr(silent, "transport", None)
            if transport is not None:
                transport.close()
        self._silent.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
