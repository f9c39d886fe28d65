"""Reading a mail log from its files: rotated, compressed, in order, with the year of syslog lines.

``read_log(paths, "postfix")`` yields the records of every line of every
file, oldest file first: files are ordered by their rotation suffix
(``maillog.2.gz``, ``maillog.1``, ``maillog``; ``maillog-20240301`` before
``maillog``), so ``import /var/log/maillog*`` reads them in time order
whatever order the shell gives. Files are plain text, gzip, bzip2 or xz
(recognised by their first bytes, not their names). Bytes that are not UTF-8
are replaced, never fatal.

Syslog timestamps have no year. Unless it is stated, the year of the first
line comes from the oldest file's modification time (when its last line was
written): that year, or the one before when the first line's date falls
after the file's date. ``LogReader.year_note`` says which it was.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import IO, Literal

from ..errors import Problem, ScenarioError
from .exim import EximParser
from .postfix import PostfixParser
from .records import BadLine, Record
from .timestamps import MONTHS, Stamps

__all__ = ["LogFormat", "FORMATS", "LogReader", "read_log", "parse_lines", "rotation_order", "open_text"]

LogFormat = Literal["postfix", "exim"]
FORMATS: tuple[LogFormat, ...] = ("postfix", "exim")

_ROTATED = re.compile(r"(.*?)(?:\.([0-9]+))?(?:\.(?:gz|bz2|xz))?$")
_DATED = re.compile(r"(.*?)[-.]([0-9]{8})(?:\.(?:gz|bz2|xz))?$")
_BSD_DATE = re.compile(r"\x00*([A-Z][a-z]{2}) ([ 0-9][0-9]) ")


def rotation_order(paths: Iterable[Path]) -> list[Path]:
    """*paths* oldest first: by base name, then dated suffixes, numbered ones (highest first), the live file."""

    def key(path: Path) -> tuple[str, int, str, int]:
        dated = _DATED.match(path.name)
        if dated:
            return dated.group(1), 0, dated.group(2), 0
        m = _ROTATED.match(path.name)
        assert m is not None  # the pattern matches any name
        base, number = m.group(1), m.group(2)
        if number is None:
            return base, 2, "", 0
        return base, 1, "", -int(number)

    return sorted(paths, key=lambda p: (*key(p), str(p)))


def open_text(path: Path) -> IO[str]:
    """*path* as text lines, decompressing gzip, bzip2 and xz; undecodable bytes are replaced."""
    with path.open("rb") as probe:
        magic = probe.read(6)
    raw: io.BufferedIOBase
    if magic[:2] == b"\x1f\x8b":
        raw = gzip.open(path, "rb")  # noqa: SIM115  (closed with the wrapper returned)
    elif magic[:3] == b"BZh":
        raw = bz2.open(path, "rb")  # noqa: SIM115
    elif magic[:6] == b"\xfd7zXZ\x00":
        raw = lzma.open(path, "rb")  # noqa: SIM115
    else:
        raw = path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _first_date(path: Path) -> tuple[int, int] | None:
    """(month, day) of the first syslog-stamped line among the first thousand, if any."""
    try:
        with open_text(path) as f:
            for n, text in enumerate(f):
                m = _BSD_DATE.match(text)
                if m and m.group(1) in MONTHS:
                    return MONTHS[m.group(1)], int(m.group(2))
                if n > 1000:
                    break
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return None
    return None


@dataclass
class LogReader:
    """Reads one server's log files in order and yields records; counts what it read.

    *year* is the year of the first line of the oldest file (syslog
    timestamps have none); ``None`` infers it from that file's modification
    time. *zone* is the log's time zone when known.
    """

    paths: list[Path]
    format: LogFormat
    year: int | None = None
    zone: tzinfo | None = None
    files: list[str] = field(default_factory=list)  #: the files as shown, in the order read
    lines: int = 0
    mail_lines: int = 0  #: lines the MTA wrote (others are skipped)
    bad: int = 0
    year_note: str = ""  #: where the year of syslog timestamps came from ("" when the log has years)
    rollovers: list[datetime] = field(default_factory=list)
    hosts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        for path in self.paths:
            if not path.is_file():
                why = "no such file" if not path.exists() else "not a file"
                problems.append(Problem(_shown(path), None, "", f"cannot read the log: {why}"))
        if problems:
            raise ScenarioError(problems)
        self.paths = rotation_order(self.paths)

    def records(self) -> Iterator[Record]:
        """Every record of every file, oldest file first; bad lines are ``BadLine`` records."""
        stamps = Stamps(self._year(), self.zone)
        parser: PostfixParser | EximParser
        parser = PostfixParser(stamps) if self.format == "postfix" else EximParser(stamps)
        for path in self.paths:
            shown = _shown(path)
            self.files.append(shown)
            parser.source = shown
            if isinstance(parser, EximParser):
                parser.panic_log = "paniclog" in path.name
            parse = parser.parse
            n = 0
            try:
                with open_text(path) as f:
                    for n, text in enumerate(f, 1):
                        record = parse(text, n)
                        if record is not None:
                            if type(record) is BadLine:
                                self.bad += 1
                            yield record
            except (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, OSError) as exc:
                self.bad += 1
                yield BadLine(None, shown, n + 1, "", f"the file cannot be read on from here ({exc})")
        self.lines = parser.lines
        self.mail_lines = parser.mail_lines
        self.hosts = dict(parser.hosts)
        self.rollovers = list(stamps.rollovers)

    def _year(self) -> int | None:
        if self.format != "postfix" or not self.paths:
            return self.year
        oldest = self.paths[0]
        first = _first_date(oldest)
        if first is None:
            return self.year
        if self.year is not None:
            self.year_note = f"{self.year}, as stated (--year), for the first line of {_shown(oldest)}"
            return self.year
        mtime = datetime.fromtimestamp(oldest.stat().st_mtime)
        year = mtime.year if first <= (mtime.month, mtime.day) else mtime.year - 1
        self.year_note = (
            f"{year}, inferred from the modification time of {_shown(oldest)} ({mtime:%Y-%m-%d}): "
            "if the file was copied without keeping it, state the year of its first line with --year"
        )
        return year


def read_log(
    paths: Iterable[str | Path], format: LogFormat, *, year: int | None = None, zone: tzinfo | None = None
) -> Iterator[Record]:
    """The records of a server's log files (see ``LogReader`` for the counts and the year)."""
    return LogReader([Path(p) for p in paths], format, year, zone).records()


def parse_lines(
    lines: Iterable[str], format: LogFormat, *, year: int | None = None, zone: tzinfo | None = None, source: str = ""
) -> Iterator[Record]:
    """The records of log *lines* in order (syslog lines need the *year* of the first one)."""
    stamps = Stamps(year, zone)
    parser = PostfixParser(stamps, source) if format == "postfix" else EximParser(stamps, source)
    for n, text in enumerate(lines, 1):
        record = parser.parse(text, n)
        if record is not None:
            yield record
