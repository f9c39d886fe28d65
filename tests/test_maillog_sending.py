"""The sending side of a Postfix maillog: attempts connected or suspended, and how each message ended."""

from __future__ import annotations

from datetime import datetime

from simulator.maillog import parse_lines, sending_history

LOG = """\
Dec 01 23:43:12 probe postfix/pickup[9962]: 5CEFA20C120: uid=0 from=<a@example.org>
Dec 01 23:43:12 probe postfix/cleanup[10125]: 5CEFA20C120: message-id=<20261201234312.5CEFA20C120@probe.localdomain>
Dec 01 23:43:12 probe postfix/qmgr[9963]: 5CEFA20C120: from=<a@example.org>, size=268, nrcpt=2 (queue active)
Dec 01 23:43:12 probe postfix/smtp[10128]: connect to 127.0.0.1[127.0.0.1]:2599: Connection refused
Dec 01 23:43:12 probe postfix/smtp[10128]: 5CEFA20C120: to=<b0@example.net>, relay=none, delay=0.06, delays=0.05/0.01/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:2599: Connection refused)
Dec 01 23:43:12 probe postfix/smtp[10128]: 5CEFA20C120: to=<c0@example.net>, relay=none, delay=0.06, delays=0.05/0.01/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:2599: Connection refused)
Dec 01 23:43:12 probe postfix/pickup[9962]: 6ACA020C125: uid=0 from=<a@example.org>
Dec 01 23:43:12 probe postfix/qmgr[9963]: 6ACA020C125: from=<a@example.org>, size=268, nrcpt=1 (queue active)
Dec 01 23:43:12 probe postfix/smtp[10128]: 6ACA020C125: to=<b1@example.net>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:2599: Connection refused)
Dec 01 23:43:18 probe postfix/qmgr[9963]: 5CEFA20C120: from=<a@example.org>, size=268, nrcpt=2 (queue active)
Dec 01 23:43:18 probe postfix/qmgr[9963]: 6ACA020C125: from=<a@example.org>, size=268, nrcpt=1 (queue active)
Dec 01 23:43:18 probe postfix/error[10290]: 6ACA020C125: to=<b1@example.net>, relay=none, delay=6.4, delays=6.3/0.05/0/0, dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]:2599: Connection refused)
Dec 01 23:43:18 probe postfix/smtp[10285]: 5CEFA20C120: to=<b0@example.net>, relay=127.0.0.1[127.0.0.1]:2599, delay=6.4, delays=6.4/0/0/0, dsn=4.3.2, status=deferred (host 127.0.0.1[127.0.0.1] refused to talk to me: 421 4.3.2 Service not available)
Dec 01 23:43:26 probe postfix/smtp[10285]: 5CEFA20C120: to=<b0@example.net>, relay=127.0.0.1[127.0.0.1]:2599, delay=14, delays=14/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as mx-disk1/x)
Dec 01 23:45:19 probe postfix/qmgr[9963]: 6ACA020C125: from=<a@example.org>, status=expired, returned to sender
Dec 01 23:45:19 probe postfix/pickup[9962]: 7250120C138: uid=0 from=<>
Dec 01 23:45:19 probe postfix/qmgr[9963]: 7250120C138: from=<>, size=2000, nrcpt=1 (queue active)
"""


def test_each_message_with_its_attempts_and_its_end() -> None:
    first, second, bounce = sending_history(parse_lines(LOG.splitlines(keepends=True), "postfix", year=2026))
    # Two recipients refused in one delivery are one attempt; retries of the queue manager are not new mail.
    assert (first.queue_id, first.arrived, first.sender) == (
        "5CEFA20C120",
        datetime(2026, 12, 1, 23, 43, 12),
        "a@example.org",
    )
    assert first.message_id == "20261201234312.5CEFA20C120@probe.localdomain"
    assert [(t.at.second, t.connected, t.status) for t in first.tries] == [
        (12, True, "deferred"),
        (18, True, "deferred"),
        (26, True, "sent"),
    ]
    assert (first.final, first.final_at) == ("sent", datetime(2026, 12, 1, 23, 43, 26))
    assert first.connections == 3
    # The error agent's "delivery temporarily suspended": an attempt without a connection.
    assert [(t.at.second, t.connected) for t in second.tries] == [(12, True), (18, False)]
    assert (second.final, second.final_at) == ("expired", datetime(2026, 12, 1, 23, 45, 19))
    assert second.connections == 1
    # The MTA's own bounce (null sender) is a message of the log too; it has not been tried.
    assert (bounce.sender, bounce.tries, bounce.final) == ("", [], "queued")


def test_deliveries_say_which_agent_logged_them() -> None:
    records = [
        r for r in parse_lines(LOG.splitlines(keepends=True), "postfix", year=2026) if type(r).__name__ == "Delivery"
    ]
    assert [(r.agent, r.suspended) for r in records] == [
        ("smtp", False),
        ("smtp", False),
        ("smtp", False),
        ("error", True),
        ("smtp", False),
        ("smtp", False),
    ]
