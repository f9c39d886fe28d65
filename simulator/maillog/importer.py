"""From a receiving server's log to the arrivals a scenario replays, grouped by sending organisation.

``import_log(paths, options)`` reads the records (``simulator.maillog.reader``)
and keeps, for every message that arrived over SMTP from another server, its
arrival time, the organisation that sent it (``organisations``), the sending
host (each host is one MTA of its group) and its first recipient, made
pseudonymous. Mail submitted locally, by logged-in users, or handed back by a
content filter on loopback is counted and left out: it is not traffic a
sending MTA would retry.

It also collects what points at an outage (restarts, stops, fatal and panic
lines, a full disk) as ``Signal`` runs; ``simulator.maillog.outages`` turns
them and the gaps in arrivals into proposed outage windows.

Memory: the parser streams; the import keeps one small row per message to
sort and split them, plus the messages still queued.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from ..errors import Problem, ScenarioError
from .organisations import Match, Organisations, load_organisations
from .pseudonym import Pseudonyms, key_from_log
from .reader import LogFormat, LogReader
from .records import (
    Accepted,
    BadLine,
    DaemonStart,
    DaemonStop,
    Delivery,
    Fatal,
    NoSpace,
    Panic,
    Removed,
)

__all__ = ["ImportOptions", "LogImport", "Row", "Group", "Signal", "import_log", "OTHER", "BAD_EXAMPLES"]

OTHER = "other"
"""The group of clients no organisation matched."""
BAD_EXAMPLES = 5
"""Bad lines shown with their line numbers; the rest are counted."""
_SIGNAL_RUN = 600.0  # signals of one kind closer than this (seconds) are one run
_MAX_PENDING = 200_000


@dataclass(frozen=True)
class ImportOptions:
    """What ``import_log`` is asked to do (the CLI's options)."""

    format: LogFormat
    year: int | None = None
    zone: tzinfo | None = None
    start: datetime | None = None  #: keep arrivals at or after this time (the log's clock)
    end: datetime | None = None  #: keep arrivals before this time
    default_policy: str = "postfix"
    organisations: Path | None = None  #: a user's organisation table, read before the built-in one
    key: bytes | None = None  #: the pseudonym key (default: derived from the log)
    raw_addresses: bool = False
    hide_domains: bool = False
    max_mtas: int = 200  #: sending hosts per group beyond this share MTAs (index modulo max_mtas)


class Row:
    """One arrival: when, which group and MTA, to whom (local part, pseudonymous unless raw)."""

    __slots__ = ("at", "domain", "group", "moved_from", "mta", "rcpt")

    def __init__(self, at: datetime, group: str, mta: int) -> None:
        self.at = at
        self.group = group
        self.mta = mta
        self.rcpt = ""
        self.domain = ""
        self.moved_from: datetime | None = None  #: the logged time, when the backlog was moved into an outage


@dataclass
class Group:
    """A sending organisation (or ``other``) as seen in the log."""

    name: str
    match: Match | None
    hosts: dict[str, int] = field(default_factory=dict)  #: sending host -> MTA index, in order of first arrival
    messages: int = 0
    sender_domains: Counter[str] = field(default_factory=Counter)
    recipient_domains: Counter[str] = field(default_factory=Counter)

    @property
    def preset(self) -> str | None:
        """The organisation's preset, ``None`` when it has none (``--default-policy`` applies)."""
        return self.match.organisation.preset if self.match is not None else None


@dataclass
class Signal:
    """A run of lines of one kind that point at an outage: ``start``, ``stop``, ``fatal``, ``panic``, ``no-space``."""

    kind: str
    first: datetime
    last: datetime
    count: int
    where: str  #: file:line of the first
    text: str  #: the first line's text
    before: datetime | None = None  #: for a start: the time of the line before it (the last sign of life)


@dataclass
class LogImport:
    """What was read from the log: arrivals by group, what was left out, what points at outages."""

    options: ImportOptions
    reader: LogReader
    rows: list[Row] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    bad_examples: list[BadLine] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    recipient_domains: Counter[str] = field(default_factory=Counter)
    recipients: int = 0
    first_at: datetime | None = None  #: the first and last time of any Postfix/Exim line
    last_at: datetime | None = None
    host: str = ""  #: the log's host (the syslog host field), "" for Exim

    @property
    def bad(self) -> int:
        """How many lines could not be read."""
        return self.reader.bad


def import_log(paths: list[Path], options: ImportOptions) -> LogImport:
    """Read *paths* (one server's log files) into a ``LogImport``; raises ``ScenarioError`` for bad input.

    A log with no line of the MTA, or with no message from another server in
    the chosen time, is bad input.
    """
    if options.max_mtas < 1:
        raise ScenarioError([Problem("--max-mtas", None, "", "must be at least 1")])
    reader = LogReader(paths, options.format, options.year, options.zone)
    organisations = load_organisations(options.organisations)
    key = options.key if options.key is not None else key_from_log(reader.paths[0])
    names = Pseudonyms(key, domains=options.hide_domains, raw=options.raw_addresses)
    result = LogImport(options, reader)
    _read(result, organisations, names)
    other = len(result.reader.files)
    if result.reader.mail_lines == 0:
        kind = "Postfix" if options.format == "postfix" else "Exim"
        hint = "exim" if options.format == "postfix" else "postfix"
        raise ScenarioError(
            [
                Problem(
                    ", ".join(result.reader.files),
                    None,
                    "",
                    f"no {kind} log lines in {result.reader.lines} line(s) of {other} file(s): is it another log, "
                    f"or another MTA's (try --format {hint})?",
                )
            ]
        )
    if not result.rows:
        left = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items())) or "none at all"
        raise ScenarioError(
            [
                Problem(
                    ", ".join(result.reader.files),
                    None,
                    "",
                    f"no message arrived from another server in the time asked for (left out: {left}); "
                    "check --from and --to, or that this is the receiving server's log",
                )
            ]
        )
    result.rows.sort(key=lambda r: r.at)
    return result


def _read(result: LogImport, organisations: Organisations, names: Pseudonyms) -> None:
    options = result.options
    start, end = options.start, options.end
    pending: dict[str, tuple[Row, set[str]]] = {}
    groups = result.groups
    skipped = result.skipped
    last_at: datetime | None = None
    for record in result.reader.records():
        if isinstance(record, BadLine):
            if len(result.bad_examples) < BAD_EXAMPLES:
                result.bad_examples.append(record)
            continue
        if result.first_at is None:
            result.first_at = record.at
        if isinstance(record, Delivery):
            _delivered(result, pending, record, names)
        elif isinstance(record, Accepted):
            why = _left_out(record, start, end)
            if why:
                skipped[why] += 1
            else:
                row = _arrived(result, record, organisations, names, groups)
                if len(pending) >= _MAX_PENDING:
                    pending.pop(next(iter(pending)))
                pending[record.queue_id] = (row, set())
        elif isinstance(record, Removed):
            pending.pop(record.queue_id, None)
        elif isinstance(record, (DaemonStart, DaemonStop, Fatal, Panic, NoSpace)):
            _signal(result, record, last_at, names)
        last_at = record.at
    result.last_at = last_at
    hosts = result.reader.hosts
    result.host = max(hosts, key=lambda h: hosts[h]) if hosts else ""


def _left_out(record: Accepted, start: datetime | None, end: datetime | None) -> str:
    if record.client is None:
        return "submitted locally or generated by the server (bounces)"
    if record.authenticated:
        return "submitted by logged-in users"
    if record.client.loopback:
        return "handed back by a local content filter (loopback)"
    if start is not None and record.at < start:
        return "before --from"
    if end is not None and record.at >= end:
        return "after --to"
    return ""


def _arrived(
    result: LogImport, record: Accepted, organisations: Organisations, names: Pseudonyms, groups: dict[str, Group]
) -> Row:
    client = record.client
    assert client is not None
    match = organisations.match(client, record.helo)
    name = match.organisation.name if match is not None else OTHER
    group = groups.get(name)
    if group is None:
        group = groups[name] = Group(name, match)
    host = client.name if client.known else client.ip
    mta = group.hosts.get(host)
    if mta is None:
        mta = group.hosts[host] = len(group.hosts) % result.options.max_mtas
    group.messages += 1
    sender_domain = record.sender.rpartition("@")[2] if "@" in record.sender else "<>"
    group.sender_domains[names.domain(sender_domain) if sender_domain != "<>" else sender_domain] += 1
    row = Row(record.at, name, mta)
    result.rows.append(row)
    return row


def _delivered(
    result: LogImport, pending: dict[str, tuple[Row, set[str]]], record: Delivery, names: Pseudonyms
) -> None:
    found = pending.get(record.queue_id)
    if found is None:
        return
    row, seen = found
    recipient = record.recipient.lower()
    if recipient in seen:
        return  # a deferred recipient tried again
    seen.add(recipient)
    local, at, domain = recipient.rpartition("@")
    if not at:
        return  # a local delivery that does not show the address
    shown_domain = names.domain(domain)
    result.recipients += 1
    result.recipient_domains[shown_domain] += 1
    result.groups[row.group].recipient_domains[shown_domain] += 1
    if not row.rcpt:
        row.rcpt = _local_part(names, recipient, local)
        row.domain = shown_domain


def _local_part(names: Pseudonyms, address: str, local: str) -> str:
    """The recipient's local part for the traffic CSV: a token, or the real one when raw and usable."""
    if names.raw:
        ok = (
            local
            and len(local) <= 64
            and all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-/=?^_`{|}~.") for c in local)
        )
        if ok and not local.startswith(".") and not local.endswith(".") and ".." not in local:
            return local
        return names.token(address)
    return names.address(address).partition("@")[0]


def _signal(
    result: LogImport,
    record: DaemonStart | DaemonStop | Fatal | Panic | NoSpace,
    before: datetime | None,
    names: Pseudonyms,
) -> None:
    kind = {DaemonStart: "start", DaemonStop: "stop", Fatal: "fatal", Panic: "panic", NoSpace: "no-space"}[type(record)]
    signals = result.signals
    for previous in reversed(signals[-5:]):
        if (
            previous.kind == kind
            and (record.at - previous.last).total_seconds() <= _SIGNAL_RUN
            and kind not in ("start", "stop")
        ):
            previous.last = record.at
            previous.count += 1
            return
    signals.append(
        Signal(
            kind,
            record.at,
            record.at,
            1,
            f"{record.source}:{record.line}",
            names.scrub(record.text),
            before if kind == "start" else None,
        )
    )
