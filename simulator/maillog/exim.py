"""Exim mainlog (and paniclog) lines to records.

An Exim log line is a timestamp with the year (``log_selector`` may add
``+millisec``'s fraction, ``log_timezone``'s offset and ``+pid``'s ``[pid]``),
then, for a message, its id and a flag::

    2024-03-01 10:00:01 1rg3Hh-0001Ab-2C <= alice@example.com H=mail-wr1-f54.google.com (mail-wr1-f54.google.com) [209.85.221.54] P=esmtps X=TLS1.3:... S=5123 id=CAF...@mail.gmail.com
    2024-03-01 10:00:01 1rg3Hh-0001Ab-2C => bob <bob@example.org> R=local_user T=mail_spool
    2024-03-01 10:00:01 1rg3Hh-0001Ab-2C Completed

``<=`` is the arrival (one line: ``Accepted``), ``=>`` and ``->`` deliveries,
``==`` a deferral, ``**`` a bounce, ``Completed`` the end. The client is
``H=name (helo) [ip]:port``, where Exim drops the name without a verified
reverse DNS entry and the ``(helo)`` when it equals the name. Exim writes
panics to the paniclog, so every line of a file whose name contains
``paniclog`` is a ``Panic``. Exim does not log a daemon stop; a ``daemon
started`` with no stop before it is a restart.
"""

from __future__ import annotations

import re
from datetime import datetime

from .records import (
    Accepted,
    BadLine,
    Client,
    Connect,
    DaemonStart,
    Delivery,
    Disconnect,
    Fatal,
    NoSpace,
    Panic,
    Record,
    Rejected,
    Removed,
)
from .timestamps import Stamps

__all__ = ["EximParser"]

_HEADER = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,6})?(?: ([+-][0-9]{4}))?(?: \[[0-9]+\])? (.*)"
)
_MESSAGE = re.compile(
    r"([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) (<=|\(=|=>|->|>>|\*>|==|\*\*|Completed)(.*)"
)
_HOST = re.compile(r"(?:([^\s(\[]+) )?(?:\(([^)]*)\) )?\[([0-9A-Fa-f:.]+)\]")
_FOR = re.compile(r" for (.+)$")
_ADDRESS = re.compile(r"(\S+)(?: <([^>]*)>)?")
_ROUTED = re.compile(r" (?:T=(\S+)|H=(\S+ \S*\[[^\]]*\]\S*))")
_REJECTED = re.compile(
    r"(?:.* )?F=<([^>]*)> (temporarily )?rejected (RCPT|MAIL|after DATA|DATA)(?: <([^>]*)>)?:? ?(.*)"
)
_NO_SPACE = ("No space left on device", "space check failed", "Space shortage", "Disk quota exceeded")
_STATUS = {"=>": "sent", "->": "sent", ">>": "sent", "*>": "sent", "==": "deferred", "**": "bounced"}


def _host(text: str, start: int = 0) -> tuple[Client, str | None, int] | None:
    """The client of ``name (helo) [ip]:port`` at *start*: the client, its HELO name, where it ends."""
    m = _HOST.match(text, start)
    if m is None:
        return None
    name, helo, ip = m.groups()
    end = m.end()
    if text.startswith(":", end):  # +incoming_port
        while end + 1 < len(text) and text[end + 1].isdigit():
            end += 1
        end += 1
    return Client(name or "", ip), helo if helo is not None else name, end


def _field(text: str, name: str) -> str:
    """The value of the ``name=value`` field of *text* (*name* with its leading space), or ""."""
    at = text.find(name)
    if at < 0:
        return ""
    start = at + len(name)
    end = text.find(" ", start)
    return text[start:] if end < 0 else text[start:end]


def _h_field(text: str) -> tuple[Client, str | None, int] | None:
    """The client of the `` H=`` field of *text*, if it has one."""
    at = text.find(" H=")
    if at < 0:
        return None if not text.startswith("H=") else _host(text, 2)
    return _host(text, at + 3)


class EximParser:
    """Turns Exim mainlog lines into records (``parse``), counting ``lines`` and ``mail_lines``."""

    def __init__(self, stamps: Stamps, source: str = "", panic_log: bool = False) -> None:
        self.stamps = stamps
        self.source = source
        self.panic_log = panic_log  #: every line is a panic (Exim's paniclog)
        self.lines = 0
        self.mail_lines = 0
        self.hosts: dict[str, int] = {}  #: Exim's lines do not name the host
        self._stamp = ""
        self._at = datetime.min

    def parse(self, text: str, line: int) -> Record | None:
        """The record of one line (``None`` for lines that say nothing the records carry)."""
        self.lines += 1
        if text[:1] == "\x00":
            text = text.lstrip("\x00")
        # The common case read by position: "2024-03-01 10:00:01 " with neither fraction nor zone.
        if text[19:20] == " " and text[4:5] == "-" and text[13:14] == ":":
            seconds = text[:19]
            if seconds == self._stamp:
                at = self._at
            else:
                try:
                    at = self.stamps.exim(seconds, None, None)
                except ValueError as exc:
                    return BadLine(None, self.source, line, text.rstrip("\r\n"), str(exc))
                self._stamp, self._at = seconds, at
            rest = text[20:]
            if rest[:1] == "[":  # +pid
                rest = rest[rest.find("] ") + 2 :]
        else:
            m = _HEADER.match(text)
            if m is None:
                text = text.rstrip("\r\n")
                if not text.strip():
                    return None
                return BadLine(None, self.source, line, text, "not an Exim log line (YYYY-MM-DD HH:MM:SS text)")
            seconds, fraction, offset, rest = m.groups()
            try:
                at = self.stamps.exim(seconds, fraction, offset)
            except ValueError as exc:
                return BadLine(None, self.source, line, text.rstrip("\r\n"), str(exc))
        self.mail_lines += 1
        if rest[-1:] == "\n":
            rest = rest.rstrip("\r\n")
        if self.panic_log:
            return Panic(at, self.source, line, "exim", rest)
        msg = _MESSAGE.match(rest)
        if msg is not None:
            return self._message(at, msg.group(1), msg.group(2), msg.group(3), line)
        return self._other(at, rest, line)

    def _message(self, at: datetime, qid: str, flag: str, text: str, line: int) -> Record | None:
        source = self.source
        if flag == "<=":
            sender, _, fields = text.lstrip().partition(" ")
            host = _h_field(fields)
            size = _field(fields, " S=")
            protocol = _field(fields, " P=")
            msgid = _field(fields, " id=") or _field(fields, " id*=")
            recipients = _FOR.search(fields) if " for " in fields else None
            authenticated = " A=" in fields or protocol.endswith("a")
            client = host[0] if host is not None else None  # None: local, or a bounce Exim made
            return Accepted(
                at,
                source,
                line,
                qid,
                client,
                host[1] if host else None,
                "" if sender == "<>" else sender,
                int(size) if size.isdigit() else None,
                len(recipients.group(1).split()) if recipients else None,
                msgid or None,
                authenticated,
            )
        if flag == "Completed":
            return Removed(at, source, line, qid)
        if flag == "(=":
            return None  # a fake reception (fakereject): the sender was told it failed
        a = _ADDRESS.match(text.lstrip())
        if a is None:
            return BadLine(at, source, line, text, f"a {flag} line without an address")
        address, parent = a.groups()
        routed = _ROUTED.search(text)
        relay = (routed.group(2) or routed.group(1)) if routed else ""
        reason = text.partition(": ")[2] if flag in ("==", "**") else ""
        return Delivery(at, source, line, qid, parent or address, relay, _STATUS[flag], "", reason)

    def _other(self, at: datetime, text: str, line: int) -> Record | None:
        source = self.source
        if any(phrase in text for phrase in _NO_SPACE):
            return NoSpace(at, source, line, "exim", text)
        if text.startswith("exim ") and " daemon started" in text:
            return DaemonStart(at, source, line, text)
        if text.startswith("SMTP connection from "):
            host = _host(text, 21)
            if host is None:
                return None
            if "connection count" in text:
                return Connect(at, source, line, host[0], "")
            return Disconnect(at, source, line, host[0], "", text[host[2] :].strip())
        if "rejected " in text and " F=<" in text:
            host = _h_field(text)
            r = _REJECTED.match(text)
            if host is None or r is None:
                return None
            sender, temporary, stage, recipient, why = r.groups()
            stage = "DATA" if "DATA" in stage else stage
            return Rejected(
                at,
                source,
                line,
                host[0],
                host[1],
                stage,
                0,
                f"{'temporarily ' if temporary else ''}rejected: {why}",
                sender,
                recipient,
            )
        if "configuration error" in text or text.startswith("Exim configuration error"):
            return Fatal(at, source, line, "exim", text)
        return None
