"""Log files: rotation order, compression, syslog years and their rollover, unreadable input."""

from __future__ import annotations

import bz2
import gzip
import os
from datetime import datetime
from pathlib import Path

import pytest

from simulator.errors import ScenarioError
from simulator.maillog import Accepted, BadLine, DaemonStart, LogReader, parse_lines
from simulator.maillog.reader import rotation_order

LINE = "{stamp} mx1 postfix/master[1]: daemon started -- version 3.7.11, configuration /etc/postfix\n"


def starts(records):
    return [r.at for r in records if isinstance(r, DaemonStart)]


def write(path: Path, stamps: list[str], opener=open) -> Path:
    with opener(path, "wt") as f:
        for stamp in stamps:
            f.write(LINE.format(stamp=stamp))
    return path


def test_rotated_files_are_read_oldest_first_whatever_the_order_given():
    names = [
        "maillog",
        "maillog.1",
        "maillog.10.gz",
        "maillog.2.gz",
        "mail.log-20240301.gz",
        "mail.log-20240229",
        "mail.log",
    ]
    ordered = [p.name for p in rotation_order(Path(n) for n in names)]
    assert ordered == [
        "mail.log-20240229",
        "mail.log-20240301.gz",
        "mail.log",
        "maillog.10.gz",
        "maillog.2.gz",
        "maillog.1",
        "maillog",
    ]


def test_plain_rotated_gzip_and_bzip2_files_read_as_one_log(tmp_path):
    write(tmp_path / "maillog.3.bz2", ["Mar  1 10:00:00"], bz2.open)
    write(tmp_path / "maillog.2.gz", ["Mar  2 10:00:00"], gzip.open)
    write(tmp_path / "maillog.1", ["Mar  3 10:00:00"])
    write(tmp_path / "maillog", ["Mar  4 10:00:00"])
    reader = LogReader(sorted(tmp_path.iterdir()), "postfix", year=2024)
    found = list(reader.records())
    assert starts(found) == [datetime(2024, 3, d, 10) for d in (1, 2, 3, 4)]
    assert [Path(f).name for f in reader.files] == ["maillog.3.bz2", "maillog.2.gz", "maillog.1", "maillog"]
    assert (reader.lines, reader.mail_lines, reader.bad) == (4, 4, 0)
    assert [Path(r.source).name for r in found] == ["maillog.3.bz2", "maillog.2.gz", "maillog.1", "maillog"]


def test_the_year_rolls_over_from_december_to_january_across_files(tmp_path):
    write(tmp_path / "maillog.1.gz", ["Dec 31 23:59:58", "Dec 31 23:59:59"], gzip.open)
    # a line logged a second late, out of order, after the first January line stays in December
    write(tmp_path / "maillog", ["Jan  1 00:00:01", "Dec 31 23:59:59", "Jan  2 08:00:00"])
    reader = LogReader([tmp_path / "maillog", tmp_path / "maillog.1.gz"], "postfix", year=2023)
    found = list(reader.records())
    assert starts(found) == [
        datetime(2023, 12, 31, 23, 59, 58),
        datetime(2023, 12, 31, 23, 59, 59),
        datetime(2024, 1, 1, 0, 0, 1),
        datetime(2023, 12, 31, 23, 59, 59),
        datetime(2024, 1, 2, 8),
    ]
    assert reader.rollovers == [datetime(2024, 1, 1, 0, 0, 1)]
    assert "as stated" in reader.year_note


def test_the_year_comes_from_the_oldest_files_modification_time(tmp_path):
    old = write(tmp_path / "maillog.1", ["Dec 30 10:00:00", "Jan  3 09:00:00"])
    new = write(tmp_path / "maillog", ["Jan  4 10:00:00"])
    os.utime(old, (datetime(2025, 1, 3, 9, 0).timestamp(),) * 2)  # written last on 2025-01-03
    os.utime(new, (datetime(2025, 1, 4, 10, 0).timestamp(),) * 2)
    reader = LogReader([old, new], "postfix")
    # the first line's Dec 30 falls after the file's Jan 3: it is from the year before
    assert starts(reader.records()) == [datetime(2024, 12, 30, 10), datetime(2025, 1, 3, 9), datetime(2025, 1, 4, 10)]
    assert reader.year_note.startswith("2024, inferred from the modification time of")
    os.utime(old, (datetime(2024, 12, 31, 9, 0).timestamp(),) * 2)
    assert starts(LogReader([old], "postfix").records())[0] == datetime(2024, 12, 30, 10)


def test_february_29_in_a_common_year_is_a_bad_line_that_says_what_to_do():
    (bad,) = parse_lines([LINE.format(stamp="Feb 29 10:00:00")], "postfix", year=2023)
    assert (
        isinstance(bad, BadLine)
        and bad.why == "Feb 29 in 2023, which is not a leap year: state the log's year (--year)"
    )
    (ok,) = parse_lines([LINE.format(stamp="Feb 29 10:00:00")], "postfix", year=2024)
    assert ok.at == datetime(2024, 2, 29, 10)


def test_a_truncated_gzip_file_is_a_bad_line_not_an_error(tmp_path):
    whole = write(tmp_path / "whole.gz", [f"Mar  1 10:{m:02d}:00" for m in range(60)] * 200, gzip.open)
    cut = tmp_path / "maillog.1.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    write(tmp_path / "maillog", ["Mar  2 10:00:00"])
    reader = LogReader([cut, tmp_path / "maillog"], "postfix", year=2024)
    found = list(reader.records())
    bad = [r for r in found if isinstance(r, BadLine)]
    assert len(bad) == 1 and "cannot be read on from here" in bad[0].why and bad[0].source.endswith("maillog.1.gz")
    assert starts(found)[-1] == datetime(2024, 3, 2, 10)  # the next file is still read
    assert reader.bad == 1


def test_missing_files_are_bad_input(tmp_path):
    with pytest.raises(ScenarioError) as caught:
        LogReader([tmp_path / "nope", tmp_path], "postfix")
    assert [p.message for p in caught.value.problems] == [
        "cannot read the log: no such file",
        "cannot read the log: not a file",
    ]


def test_bytes_that_are_not_utf8_do_not_stop_the_reader(tmp_path):
    path = tmp_path / "maillog"
    path.write_bytes(
        b"Mar  1 10:00:00 mx1 postfix/smtpd[1]: 4ABC123DEF: client=caf\xe9.example[192.0.2.1]\n"
        b"Mar  1 10:00:00 mx1 postfix/qmgr[2]: 4ABC123DEF: from=<a@caf\xe9.example>, size=1, nrcpt=1 (queue active)\n"
    )
    (found,) = LogReader([path], "postfix", year=2024).records()
    assert isinstance(found, Accepted) and found.client is not None and found.client.name == "caf\ufffd.example"
