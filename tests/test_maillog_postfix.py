"""Postfix log lines to records: every line type, each field checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from simulator.maillog import (
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
    Rejected,
    Removed,
    parse_lines,
)

GOOGLE = Client("mail-wr1-f54.google.com", "209.85.221.54")


def records(text: str, **kwargs):
    lines = [line + "\n" for line in text.strip("\n").split("\n")]
    return list(parse_lines(lines, "postfix", year=kwargs.pop("year", 2024), source="maillog", **kwargs))


def test_a_message_over_smtp_is_joined_into_one_accepted_record():
    found = records("""
Mar  5 10:00:01 mx1 postfix/smtpd[1234]: connect from mail-wr1-f54.google.com[209.85.221.54]
Mar  5 10:00:01 mx1 postfix/smtpd[1234]: warning: header Subject: hi from mail-wr1-f54.google.com[209.85.221.54]; from=<a@gmail.com> to=<bob@example.org> proto=ESMTP helo=<mail-wr1-f54.google.com>
Mar  5 10:00:01 mx1 postfix/smtpd[1234]: 4ABC123DEF: client=mail-wr1-f54.google.com[209.85.221.54]
Mar  5 10:00:01 mx1 postfix/cleanup[1240]: 4ABC123DEF: message-id=<CAF123@mail.gmail.com>
Mar  5 10:00:02 mx1 postfix/qmgr[900]: 4ABC123DEF: from=<a@gmail.com>, size=5123, nrcpt=2 (queue active)
Mar  5 10:00:02 mx1 postfix/smtpd[1234]: disconnect from mail-wr1-f54.google.com[209.85.221.54] ehlo=2 starttls=1 mail=1 rcpt=2 data=1 quit=1 commands=8
""")
    at1, at2 = datetime(2024, 3, 5, 10, 0, 1), datetime(2024, 3, 5, 10, 0, 2)
    assert found == [
        Connect(at1, "maillog", 1, GOOGLE, "1234"),
        Accepted(
            at2,
            "maillog",
            5,
            "4ABC123DEF",
            GOOGLE,
            "mail-wr1-f54.google.com",
            "a@gmail.com",
            5123,
            2,
            "CAF123@mail.gmail.com",
            False,
        ),
        Disconnect(at2, "maillog", 6, GOOGLE, "1234", "ehlo=2 starttls=1 mail=1 rcpt=2 data=1 quit=1 commands=8"),
    ]


def test_a_retried_message_is_accepted_once_and_its_deliveries_and_removal_follow():
    found = records("""
Mar  5 10:00:01 mx1 postfix/smtpd[1]: 4ABC123DEF: client=unknown[192.0.2.7]:41234
Mar  5 10:00:01 mx1 postfix/qmgr[9]: 4ABC123DEF: from=<>, size=900, nrcpt=1 (queue active)
Mar  5 10:00:02 mx1 postfix/lmtp[7]: 4ABC123DEF: to=<bob@example.org>, orig_to=<info@example.org>, relay=mx1[private/dovecot-lmtp], delay=1.2, delays=0.1/0/0/1.1, dsn=4.2.0, status=deferred (host mx1[private/dovecot-lmtp] said: 451 4.2.0 Mailbox is locked)
Mar  5 10:05:02 mx1 postfix/qmgr[9]: 4ABC123DEF: from=<>, size=900, nrcpt=1 (queue active)
Mar  5 10:05:03 mx1 postfix/local[8]: 4ABC123DEF: to=<bob@example.org>, relay=local, delay=302, delays=301/0.01/0/0.2, dsn=2.0.0, status=sent (delivered to mailbox)
Mar  5 10:05:03 mx1 postfix/qmgr[9]: 4ABC123DEF: removed
""")
    t = datetime(2024, 3, 5, 10, 0, 1)
    assert [type(r) for r in found] == [Accepted, Delivery, Delivery, Removed]
    accepted = found[0]
    assert accepted.client == Client("unknown", "192.0.2.7") and not accepted.client.known
    assert (accepted.sender, accepted.size, accepted.nrcpt, accepted.helo, accepted.message_id) == (
        "",
        900,
        1,
        None,
        None,
    )
    assert found[1] == Delivery(
        t + timedelta(seconds=1),
        "maillog",
        3,
        "4ABC123DEF",
        "info@example.org",
        "mx1[private/dovecot-lmtp]",
        "deferred",
        "4.2.0",
        "host mx1[private/dovecot-lmtp] said: 451 4.2.0 Mailbox is locked",
        "lmtp",
    )
    assert found[2][4:9] == ("bob@example.org", "local", "sent", "2.0.0", "delivered to mailbox")
    assert found[3] == Removed(datetime(2024, 3, 5, 10, 5, 3), "maillog", 6, "4ABC123DEF")


def test_local_and_authenticated_submissions_are_marked():
    found = records("""
Mar  5 10:00:01 mx1 postfix/pickup[5]: 1111111111: uid=0 from=<root>
Mar  5 10:00:01 mx1 postfix/qmgr[9]: 1111111111: from=<root@mx1.example.org>, size=400, nrcpt=1 (queue active)
Mar  5 10:00:02 mx1 postfix/submission/smtpd[6]: 2222222222: client=laptop.example.org[10.1.2.3], sasl_method=PLAIN, sasl_username=bob
Mar  5 10:00:02 mx1 postfix/qmgr[9]: 2222222222: from=<bob@example.org>, size=500, nrcpt=1 (queue active)
""")
    local, submitted = found
    assert local.client is None and not local.authenticated
    assert submitted.client == Client("laptop.example.org", "10.1.2.3") and submitted.authenticated


def test_rejects_keep_code_text_sender_recipient_and_helo():
    (found,) = records(
        "Mar  5 10:00:03 mx1 postfix/smtpd[1235]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: 450 4.7.1 "
        "Client host rejected: cannot find your hostname, [203.0.113.9]; from=<x@y.example> to=<bob@example.org> "
        "proto=ESMTP helo=<spam.example>"
    )
    assert found == Rejected(
        datetime(2024, 3, 5, 10, 0, 3),
        "maillog",
        1,
        Client("unknown", "203.0.113.9"),
        "spam.example",
        "RCPT",
        450,
        "4.7.1 Client host rejected: cannot find your hostname, [203.0.113.9]",
        "x@y.example",
        "bob@example.org",
    )


def test_daemon_and_failure_lines():
    found = records("""
Mar  5 02:00:05 mx1 postfix/master[800]: terminating on signal 15
Mar  5 02:00:41 mx1 postfix/master[801]: daemon started -- version 3.7.11, configuration /etc/postfix
Mar  5 02:01:00 mx1 postfix/smtpd[1]: fatal: open database /etc/postfix/x.db: No such file or directory
Mar  5 02:02:00 mx1 postfix/qmgr[2]: panic: myfree: corrupt or unallocated memory block
Mar  5 02:03:00 mx1 postfix/cleanup[3]: warning: 4ABC: write queue file: No space left on device
Mar  5 02:04:00 mx1 postfix/smtpd[4]: NOQUEUE: reject: MAIL from a[192.0.2.1]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<a>
Mar  5 02:05:00 mx1 postfix/smtpd[4]: warning: hostname a does not resolve to address 192.0.2.1
""")
    assert [type(r) for r in found] == [DaemonStop, DaemonStart, Fatal, Panic, NoSpace, NoSpace]
    assert found[2] == Fatal(
        datetime(2024, 3, 5, 2, 1),
        "maillog",
        3,
        "postfix/smtpd",
        "open database /etc/postfix/x.db: No such file or directory",
    )
    assert found[3].text == "myfree: corrupt or unallocated memory block"
    assert found[4].program == "postfix/cleanup"


def test_expired_message():
    (found,) = records(
        "Mar  5 12:00:00 mx1 postfix/qmgr[9]: 3ABCDEF012: from=<a@example.org>, status=expired, returned to sender"
    )
    assert found == Expired(datetime(2024, 3, 5, 12), "maillog", 1, "3ABCDEF012", "a@example.org")


def test_bad_lines_are_records_other_programs_are_skipped_and_nul_bytes_are_dropped():
    found = records("""
Mar  5 13:52:07 mx1 postfix/sm
Mar  5 13:52:07 mx1 dovecot: lmtp(bob@example.org): saved mail to INBOX
this is not a log line
\x00\x00\x00Mar  5 15:26:31 mx1 postfix/master[777]: daemon started -- version 3.7.11, configuration /etc/postfix
Mar  5 15:26:40 mx1 last message repeated 3 times
""")
    assert [type(r) for r in found] == [BadLine, BadLine, DaemonStart]
    assert (found[0].line, found[0].text) == (1, "Mar  5 13:52:07 mx1 postfix/sm")
    assert found[1].line == 3
    assert found[2].at == datetime(2024, 3, 5, 15, 26, 31)


def test_iso_timestamps_without_a_zone_keep_the_first_offset():
    found = records("""
2024-03-30T23:59:59.500000+01:00 mx1 postfix/master[1]: daemon started -- version 3.7.11
2024-03-31T03:00:01+02:00 mx1 postfix/master[1]: terminating on signal 15
""")
    # the second line is 01:00:01 UTC: 02:00:01 in the first line's +01:00
    assert [r.at for r in found] == [datetime(2024, 3, 30, 23, 59, 59, 500000), datetime(2024, 3, 31, 2, 0, 1)]


def test_a_stated_zone_makes_times_aware_in_it():
    berlin = ZoneInfo("Europe/Berlin")
    found = records(
        """
Mar 31 01:59:59 mx1 postfix/master[1]: daemon started -- version 3.7.11
2024-03-31T01:00:01Z mx1 postfix/master[1]: terminating on signal 15
""",
        zone=berlin,
    )
    assert found[0].at == datetime(2024, 3, 31, 1, 59, 59, tzinfo=berlin)
    assert found[1].at == datetime(2024, 3, 31, 3, 0, 1, tzinfo=berlin)  # summer time began at 02:00
    assert found[1].at.utcoffset() == timedelta(hours=2)
    assert found[1].at.astimezone(UTC).hour == 1


def test_ipv6_clients_long_queue_ids_and_other_syslog_names():
    found = records("""
Mar  5 10:00:01 mx1 postfix-in/smtpd[1]: 4Vd3Lk1QvXz3ZW1: client=mail-ej1-x62f.google.com[2a00:1450:4864:20::62f]
Mar  5 10:00:01 mx1 postfix-in/qmgr[2]: 4Vd3Lk1QvXz3ZW1: from=<a@gmail.com>, size=10, nrcpt=1 (queue active)
""")
    assert found[0].client == Client("mail-ej1-x62f.google.com", "2a00:1450:4864:20::62f")
    assert found[0].queue_id == "4Vd3Lk1QvXz3ZW1"


def test_loopback_clients_are_recognised():
    assert Client("localhost", "127.0.0.1").loopback
    assert Client("localhost", "::1").loopback
    assert not Client("mx", "192.0.2.1").loopback
