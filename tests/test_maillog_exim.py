"""Exim mainlog lines to records: every line type, each field checked by hand."""

from __future__ import annotations

from datetime import datetime

from simulator.maillog import (
    Accepted,
    BadLine,
    Client,
    Connect,
    DaemonStart,
    Delivery,
    Disconnect,
    NoSpace,
    Panic,
    Rejected,
    Removed,
    parse_lines,
)
from simulator.maillog.exim import EximParser
from simulator.maillog.timestamps import Stamps


def records(text: str):
    lines = [line + "\n" for line in text.strip("\n").split("\n")]
    return list(parse_lines(lines, "exim", source="mainlog"))


T = datetime(2024, 3, 5, 10, 0, 1)


def test_arrival_delivery_and_completion():
    found = records("""
2024-03-05 10:00:01 1rg3Hh-0001Ab-2C <= alice@gmail.com H=mail-wr1-f54.google.com (mail-wr1-f54.google.com) [209.85.221.54]:43210 P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S=5123 id=CAF.abc@mail.gmail.com
2024-03-05 10:00:01 1rg3Hh-0001Ab-2C => bob <bob@example.org> R=local_user T=mail_spool
2024-03-05 10:00:01 1rg3Hh-0001Ab-2C -> carol@example.org R=local_user T=mail_spool
2024-03-05 10:00:01 1rg3Hh-0001Ab-2C Completed
""")
    google = Client("mail-wr1-f54.google.com", "209.85.221.54")
    assert found == [
        Accepted(
            T,
            "mainlog",
            1,
            "1rg3Hh-0001Ab-2C",
            google,
            "mail-wr1-f54.google.com",
            "alice@gmail.com",
            5123,
            None,
            "CAF.abc@mail.gmail.com",
            False,
        ),
        Delivery(T, "mainlog", 2, "1rg3Hh-0001Ab-2C", "bob@example.org", "mail_spool", "sent", "", ""),
        Delivery(T, "mainlog", 3, "1rg3Hh-0001Ab-2C", "carol@example.org", "mail_spool", "sent", "", ""),
        Removed(T, "mainlog", 4, "1rg3Hh-0001Ab-2C"),
    ]


def test_host_forms_local_and_authenticated_arrivals():
    found = records("""
2024-03-05 10:00:01 1aaaaa-000001-AA <= a@x.example H=(helo.x.example) [192.0.2.1] P=esmtp S=10 for b@example.org c@example.org
2024-03-05 10:00:01 1aaaaa-000002-AA <= a@x.example H=mx.x.example [192.0.2.2] P=esmtp S=11
2024-03-05 10:00:01 1aaaaa-000003-AA <= root@mx1.example.org U=root P=local S=12
2024-03-05 10:00:01 1aaaaa-000004-AA <= bob@example.org H=laptop (laptop) [10.0.0.5] P=esmtpsa X=TLS1.3 A=plain:bob S=13
2024-03-05 10:00:01 1aaaaa-000005-AA <= <> R=1aaaaa-000001-AA U=Debian-exim P=local S=14
""")
    helo_only, named, local, authenticated, bounce = found
    assert (helo_only.client, helo_only.helo, helo_only.nrcpt) == (Client("", "192.0.2.1"), "helo.x.example", 2)
    assert (named.client, named.helo) == (Client("mx.x.example", "192.0.2.2"), "mx.x.example")
    assert local.client is None and local.size == 12
    assert authenticated.authenticated and authenticated.client == Client("laptop", "10.0.0.5")
    assert bounce.client is None and bounce.sender == ""


def test_deferral_and_bounce():
    found = records("""
2024-03-05 10:00:05 1aaaaa-000001-AA == bob@example.org R=dnslookup T=remote_smtp defer (-44) H=mx.example.org [192.0.2.5]: SMTP error from remote mail server after RCPT TO:<bob@example.org>: 451 4.3.0 try later
2024-03-05 10:00:06 1aaaaa-000001-AA ** nobody@example.org R=local_user: Unrouteable address
""")
    assert found[0][4:9] == (
        "bob@example.org",
        "remote_smtp",
        "deferred",
        "",
        "SMTP error from remote mail server after RCPT TO:<bob@example.org>: 451 4.3.0 try later",
    )
    assert found[1][4:7] == ("nobody@example.org", "", "bounced")
    assert found[1].text == "Unrouteable address"


def test_daemon_connections_rejects_and_full_spool():
    found = records("""
2024-03-05 10:00:03 exim 4.96 daemon started: pid=1234, -q30m, listening for SMTP on port 25 (IPv6 and IPv4)
2024-03-05 10:00:04 SMTP connection from [192.0.2.9]:1234 (TCP/IP connection count = 1)
2024-03-05 10:00:04 H=(spammer.example) [192.0.2.9] F=<a@b.example> rejected RCPT <c@example.org>: relay not permitted
2024-03-05 10:00:04 SMTP connection from (spammer.example) [192.0.2.9]:1234 closed by QUIT
2024-03-05 10:00:05 spool directory space check failed: space=1000 inodes=100
2024-03-05 10:00:06 Failed to create spool file /var/spool/exim4/input//1x-D: No space left on device
""")
    spammer = Client("", "192.0.2.9")
    at = datetime(2024, 3, 5, 10, 0, 4)
    assert [type(r) for r in found] == [DaemonStart, Connect, Rejected, Disconnect, NoSpace, NoSpace]
    assert found[1] == Connect(at, "mainlog", 2, spammer, "")
    assert found[2] == Rejected(
        at,
        "mainlog",
        3,
        spammer,
        "spammer.example",
        "RCPT",
        0,
        "rejected: relay not permitted",
        "a@b.example",
        "c@example.org",
    )
    assert found[3] == Disconnect(at, "mainlog", 4, spammer, "", "closed by QUIT")


def test_log_selector_fraction_zone_and_pid():
    (found,) = records("2024-03-05 10:00:02.123 +0100 [2233] 1aaaaa-000001-AA Completed")
    assert found.at == datetime(2024, 3, 5, 10, 0, 2, 123000)
    (found,) = records("2024-03-05 10:00:02 [2233] 1aaaaa-000001-AA Completed")
    assert found.at == datetime(2024, 3, 5, 10, 0, 2) and found.queue_id == "1aaaaa-000001-AA"


def test_bad_lines_and_the_paniclog():
    found = records("""
2024-03-05 13:5
2024-13-45 10:00:00 1aaaaa-000001-AA Completed
""")
    assert [type(r) for r in found] == [BadLine, BadLine]
    parser = EximParser(Stamps(), "paniclog", panic_log=True)
    assert parser.parse("2024-03-05 10:00:00 failed to open /var/spool/exim4/db/retry\n", 1) == Panic(
        datetime(2024, 3, 5, 10), "paniclog", 1, "exim", "failed to open /var/spool/exim4/db/retry"
    )
