"""Postfix maillog lines to records.

A line is a syslog header and Postfix's own text::

    Mar  1 10:00:01 mx1 postfix/smtpd[1234]: 4ABC123DEF: client=mail-wr1-f54.google.com[209.85.221.54]
    2024-03-01T10:00:01.123456+01:00 mx1 postfix/qmgr[900]: 4ABC123DEF: from=<a@example.com>, size=5123, nrcpt=1 (queue active)

The header is a BSD syslog timestamp (no year) or an ISO 8601 one (rsyslog's
high-precision format, ``journalctl -o short-iso``), the host, the program
(``postfix/smtpd``, ``postfix/submission/smtpd``, ``postfix-in/qmgr``: any
program whose first part starts with ``postfix``) and the pid. Lines of other
programs in the same file (dovecot, amavis, ...) are skipped, not bad.

A message that arrives over SMTP is spread over several lines: ``smtpd``
logs ``client=`` when the queue file is created, ``cleanup`` the
``message-id=``, and the queue manager ``from=<..>, size=N, nrcpt=N (queue
active)`` once the message is safely queued. ``PostfixParser`` joins them and
emits one ``Accepted`` at the queue manager's first such line (it repeats
the line each time a deferred message is retried; those are not new mail).
The HELO name is only in some smtpd lines (``helo=<..>`` in reject and
warning lines); the parser keeps it per smtpd process until the session ends.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from .records import (
    Accepted,
    BadLine,
    Client,
    Connect,
    DaemonStart,
    DaemonStop,
    Delivery,
    Disconnect,
    Expired,
    Fatal,
    NoSpace,
    Panic,
    Record,
    Rejected,
    Removed,
)
from .timestamps import Stamps

__all__ = ["PostfixParser", "NO_SPACE_PHRASES"]

_HEADER = re.compile(
    r"(?:([A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.[0-9]+)?"
    r"|([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?))"
    r" (\S+) ([^\s\[:]+)(?:\[([0-9]+)\])?: (.*)"
)
_QUEUE_ID = re.compile(r"[0-9A-F]{6,12}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,20}")
_QMGR_FROM = re.compile(r"from=<(.*?)>, size=([0-9]+), nrcpt=([0-9]+)")
_EXPIRED = re.compile(r"from=<(.*?)>, status=expired")
_HELO = re.compile(r"helo=<([^>]*)>")
_REJECT = re.compile(r"(?:NOQUEUE|[0-9A-Za-z]+): (?:milter-)?reject: ([A-Z-]+) from (\S+?): (.*)")
_CODE = re.compile(r"([245][0-9]{2}) ")
_TO = re.compile(r" to=<(.*?)>")

NO_SPACE_PHRASES = (
    "No space left on device",
    "Insufficient system storage",
    "not enough free space in mail queue",
    "Disk quota exceeded",
)
"""Text that means the queue's file system (or the log's) was full."""

_MAX_OPEN = 200_000  # queue ids and sessions remembered at once: bounded memory on any log
_NONE = Client("", "")


def _client(text: str) -> Client:
    """``name[address]`` (``:port`` may follow); an empty client when it is not that."""
    bracket = text.find("[")
    end = text.find("]", bracket)
    if bracket <= 0 or end < 0:
        return _NONE
    return Client(text[:bracket], text[bracket + 1 : end])


def _delivery(text: str) -> tuple[str, str, str, str, str] | None:
    """(recipient, relay, status, dsn, reply) of ``to=<a>, [orig_to=<b>,] relay=R, ..., dsn=D, status=S (reply)``."""
    end = text.find(">, ", 4)
    if end < 0:
        return None
    recipient = text[4:end]
    at = end + 3
    if text.startswith("orig_to=<", at):
        end = text.find(">, ", at)
        if end < 0:
            return None
        recipient = text[at + 9 : end]
        at = end + 3
    if not text.startswith("relay=", at):
        return None
    relay_end = text.find(", ", at)
    dsn = text.find(", dsn=", relay_end)
    status = text.find(", status=", dsn)
    if relay_end < 0 or dsn < 0 or status < 0:
        return None
    word_end = text.find(" ", status + 9)
    if word_end < 0:
        return recipient, text[at + 6 : relay_end], text[status + 9 :], text[dsn + 6 : status], ""
    reply = text[word_end + 2 : -1] if text.endswith(")") else text[word_end + 1 :]
    return recipient, text[at + 6 : relay_end], text[status + 9 : word_end], text[dsn + 6 : status], reply


class _Queued:
    """What the lines before the queue manager's said about one queue id."""

    __slots__ = ("accepted", "authenticated", "client", "helo", "message_id")

    def __init__(self, client: Client | None, helo: str | None, authenticated: bool) -> None:
        self.client = client
        self.helo = helo
        self.message_id: str | None = None
        self.authenticated = authenticated
        self.accepted = False


class PostfixParser:
    """Turns Postfix log lines into records, joining a message's lines into one ``Accepted``.

    Feed it the lines of one log in order (``parse``), or entries whose
    header was read elsewhere (``entry``, for a log a live run stamps
    itself). ``lines``, ``mail_lines`` and ``hosts`` count what was read.
    """

    def __init__(self, stamps: Stamps, source: str = "") -> None:
        self.stamps = stamps
        self.source = source
        self.lines = 0
        self.mail_lines = 0  #: lines written by Postfix
        self.hosts: Counter[str] = Counter()  #: syslog host names of Postfix lines
        self._queued: dict[str, _Queued] = {}
        self._helo: dict[str, str] = {}  # smtpd pid -> HELO name seen in this session
        self._host = ""
        self._stamp = ""
        self._at = datetime.min

    def parse(self, text: str, line: int) -> Record | None:
        """The record of one line (``None`` for lines that say nothing the records carry)."""
        self.lines += 1
        if text[:1] == "\x00":  # a crash leaves NUL bytes in front of the next line written
            text = text.lstrip("\x00")
        # The common case, a BSD syslog header, read by position: "Mar  1 10:00:01 host program[pid]: text".
        # This is the hot loop of every import: it avoids calls and regular expressions where it can.
        host_end = text.find(" ", 16) if text[15:16] == " " and text[:1].isupper() else -1
        colon = text.find(": ", host_end) if host_end > 16 else -1
        if colon > 0:
            tag = text[host_end + 1 : colon]
            if not tag.startswith("postfix"):
                return None
            stamp = text[:15]
            if stamp == self._stamp:
                at = self._at
            else:
                try:
                    at = self.stamps.bsd(stamp)
                except ValueError as exc:
                    return BadLine(None, self.source, line, text.rstrip("\r\n"), str(exc))
                self._stamp, self._at = stamp, at
            host = text[16:host_end]
            rest = text[colon + 2 :]
        else:
            header = self._header(text, line)
            if header is None or isinstance(header, BadLine):
                return header
            at, host, tag, rest = header
        self.mail_lines += 1
        if host != self._host:
            self._host = host
            self.hosts[host] += 1  # runs of lines per host: enough to tell which host the log is of
        if tag[-1:] == "]":
            bracket = tag.find("[")
            program, pid = tag[:bracket], tag[bracket + 1 : -1]
        else:
            program, pid = tag, ""
        if rest[-1:] == "\n":
            rest = rest.rstrip("\r\n")
        colon = rest.find(": ")
        if 5 < colon < 21 and _QUEUE_ID.fullmatch(rest, 0, colon) is not None:
            return self._queue_line(at, program[program.rfind("/") + 1 :], pid, rest[:colon], rest[colon + 2 :], line)
        return self._other_line(at, program[program.rfind("/") + 1 :], program, pid, rest, line)

    def _header(self, text: str, line: int) -> tuple[datetime, str, str, str] | BadLine | None:
        """Any other header (ISO 8601 timestamps, fractions of a second): (time, host, program[pid], text)."""
        m = _HEADER.match(text)
        if m is None:
            text = text.rstrip("\r\n")
            if not text.strip() or " message repeated " in text or "last message repeated" in text:
                return None
            return BadLine(None, self.source, line, text, "not a syslog line (MMM DD HH:MM:SS host program[pid]: text)")
        bsd, iso, host, program, pid, rest = m.groups()
        if not program.startswith("postfix"):
            return None
        try:
            at = self.stamps.bsd(bsd) if bsd is not None else self.stamps.iso(iso)
        except ValueError as exc:
            return BadLine(None, self.source, line, text.rstrip("\r\n"), str(exc))
        return at, host, f"{program}[{pid}]" if pid else program, rest

    def entry(self, at: datetime, program: str, pid: str, text: str, line: int = 0) -> Record | None:
        """The record of one Postfix log entry: *program* such as ``postfix/qmgr``, *text* after ``: ``.

        For a log whose lines were stamped elsewhere (a live run tails
        Postfix's ``maillog_file`` and stamps lines as they come).
        """
        daemon = program[program.rfind("/") + 1 :]
        colon = text.find(": ")
        if 5 < colon < 21 and _QUEUE_ID.fullmatch(text, 0, colon) is not None:
            return self._queue_line(at, daemon, pid, text[:colon], text[colon + 2 :], line)
        return self._other_line(at, daemon, program, pid, text, line)

    def _queue_line(self, at: datetime, daemon: str, pid: str, qid: str, text: str, line: int) -> Record | None:
        source = self.source
        if text.startswith("to="):
            d = _delivery(text)
            if d is None:
                return BadLine(at, source, line, text, "a delivery line without to=<..>, relay=, dsn= and status=")
            recipient, relay, status, dsn, reply = d
            return Delivery(at, source, line, qid, recipient, relay, status, dsn, reply, daemon)
        if daemon == "qmgr":
            if text.startswith("from="):
                f = _QMGR_FROM.match(text)
                if f is None:
                    e = _EXPIRED.match(text)
                    if e is not None:
                        return Expired(at, source, line, qid, e.group(1))
                    return BadLine(at, source, line, text, "a queue manager line without from=<..>, size=N, nrcpt=N")
                queued = self._queued.get(qid)
                if queued is None:
                    queued = self._remember(qid, _Queued(None, None, False))
                if queued.accepted:
                    return None  # the message re-enters the active queue for a retry
                queued.accepted = True
                return Accepted(
                    at,
                    source,
                    line,
                    qid,
                    queued.client,
                    queued.helo,
                    f.group(1),
                    int(f.group(2)),
                    int(f.group(3)),
                    queued.message_id,
                    queued.authenticated,
                )
            if text == "removed":
                self._queued.pop(qid, None)
                return Removed(at, source, line, qid)
            return None
        if text.startswith("client="):
            client = _client(text[7:])
            if not client.ip:
                return BadLine(at, source, line, text, "client= without NAME[ADDRESS]")
            helo = self._helo.get(pid)
            self._remember(qid, _Queued(client, helo, "sasl_username=" in text))
            return None
        if text.startswith("message-id="):
            queued = self._queued.get(qid)
            if queued is not None:
                queued.message_id = text[11:].strip("<>")
            return None
        if text.startswith("uid="):  # pickup: a local submission
            self._remember(qid, _Queued(None, None, False))
            return None
        if "reject:" in text[:20]:
            self._queued.pop(qid, None)  # cleanup or smtpd refused it after all: never queued
            return self._reject(at, pid, text, line)
        return None

    def _other_line(self, at: datetime, daemon: str, program: str, pid: str, text: str, line: int) -> Record | None:
        source = self.source
        if daemon in ("smtpd", "postscreen"):
            if text.startswith("connect from "):
                self._helo.pop(pid, None)
                return Connect(at, source, line, _client(text[13:]), pid)
            if text.startswith("disconnect from "):
                self._helo.pop(pid, None)
                client_text, _, how = text[16:].partition(" ")
                return Disconnect(at, source, line, _client(client_text), pid, how)
            if text.startswith(("lost connection after ", "timeout after ")):
                how, _, client_text = text.partition(" from ")
                return Disconnect(at, source, line, _client(client_text), pid, how)
            if text.startswith("NOQUEUE: "):
                return self._reject(at, pid, text, line)
        if text.startswith(("warning: ", "fatal: ", "panic: ", "error: ")):
            kind, _, what = text.partition(": ")
            if any(phrase in what for phrase in NO_SPACE_PHRASES):
                return NoSpace(at, source, line, program, what)
            if kind == "fatal":
                return Fatal(at, source, line, program, what)
            if kind == "panic":
                return Panic(at, source, line, program, what)
            if daemon == "smtpd":
                helo = _HELO.search(text)
                if helo is not None:
                    self._helo[pid] = helo.group(1)
            return None
        if daemon == "master":
            if text.startswith("daemon started"):
                return DaemonStart(at, source, line, text)
            if text.startswith("terminating on signal"):
                return DaemonStop(at, source, line, text)
        return None

    def _reject(self, at: datetime, pid: str, text: str, line: int) -> Record:
        source = self.source
        if any(phrase in text for phrase in NO_SPACE_PHRASES):
            return NoSpace(at, source, line, "postfix/smtpd", text)
        r = _REJECT.match(text)
        if r is None:
            return BadLine(at, source, line, text, "a reject line without 'STAGE from NAME[ADDRESS]: text'")
        stage, client_text, rest = r.groups()
        why, _, tail = rest.partition("; from=<")
        code = _CODE.match(why)
        sender = tail.partition(">")[0] if tail else None
        to = _TO.search(tail)
        helo_match = _HELO.search(tail)
        helo = helo_match.group(1) if helo_match else None
        if helo is not None:
            if len(self._helo) >= _MAX_OPEN:
                self._helo.pop(next(iter(self._helo)))
            self._helo[pid] = helo
        return Rejected(
            at,
            source,
            line,
            _client(client_text),
            helo,
            stage,
            int(code.group(1)) if code else 0,
            why[code.end() :] if code else why,
            sender,
            to.group(1) if to else None,
        )

    def _remember(self, qid: str, queued: _Queued) -> _Queued:
        table = self._queued
        if len(table) >= _MAX_OPEN:  # a log that never says "removed": forget the oldest
            table.pop(next(iter(table)))
        table[qid] = queued
        return queued
