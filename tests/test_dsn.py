"""RFC 3464 delay warnings and bounces, parsed back with the email package."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from simulator.dsn import bounce, delay_warning

T0 = datetime(2011, 10, 27, 11, 0, tzinfo=UTC)
ORIGINAL = (
    b"From: Alice <alice@sender.example>\r\n"
    b"To: bob@atnex.example\r\n"
    b"Subject: quarterly report\r\n"
    b"Message-ID: <q3@sender.example>\r\n"
    b"\r\n"
    b"The body must not be returned.\r\n"
)


def warning(**extra):
    args = {
        "originator": "alice@sender.example",
        "recipients": "bob@atnex.example",
        "reporting_mta": "mx.sender.example",
        "arrival": T0,
        "last_attempt": T0 + timedelta(hours=4, minutes=50),
        "will_retry_until": T0 + timedelta(days=5),
        "diagnostic": "421 4.3.2 Service not available, closing transmission channel",
        "remote_mta": "mail.atnex.example",
    }
    args.update(extra)
    return delay_warning(ORIGINAL, **args)


def parse(notification):
    return message_from_bytes(notification.as_bytes(), policy=policy.default)


def test_delay_warning_is_a_delivery_status_report():
    note = warning()
    assert note.mail_from == ""
    assert note.rcpt == "alice@sender.example"
    msg = parse(note)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"] == "alice@sender.example"
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert msg["Auto-Submitted"] == "auto-replied"
    human, status, headers = msg.get_payload()
    assert human.get_content_type() == "text/plain"
    assert "WARNING ONLY" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"


def test_delay_warning_fields():
    per_message, per_recipient = parse(warning()).get_payload()[1].get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.sender.example"
    assert per_message["Arrival-Date"] == "Thu, 27 Oct 2011 11:00:00 +0000"
    assert per_recipient["Final-Recipient"] == "rfc822; bob@atnex.example"
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Status"] == "4.4.1"
    assert per_recipient["Remote-MTA"] == "dns; mail.atnex.example"
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 421 4.3.2")
    assert per_recipient["Last-Attempt-Date"] == "Thu, 27 Oct 2011 15:50:00 +0000"
    assert per_recipient["Will-Retry-Until"] == "Tue, 01 Nov 2011 11:00:00 +0000"


def test_original_headers_without_the_body():
    text = parse(warning()).get_payload()[2].get_payload()
    assert "Subject: quarterly report" in text
    assert "Message-ID: <q3@sender.example>" in text
    assert "must not be returned" not in text


def test_bounce_fields():
    note = bounce(
        ORIGINAL,
        originator="alice@sender.example",
        recipients=["bob@atnex.example", "carol@atnex.example"],
        reporting_mta="mx.sender.example",
        arrival=T0,
        last_attempt=T0 + timedelta(seconds=433200),
        diagnostic="refused at connect: Connection refused",
        status="4.4.7",
        reason="message expired: status=expired, returned to sender",
    )
    msg = parse(note)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert "message expired" in msg.get_payload()[0].get_content()
    blocks = msg.get_payload()[1].get_payload()
    assert len(blocks) == 3
    for block, rcpt in zip(blocks[1:], ["bob@atnex.example", "carol@atnex.example"], strict=True):
        assert block["Final-Recipient"] == f"rfc822; {rcpt}"
        assert block["Action"] == "failed"
        assert block["Status"] == "4.4.7"
        assert block["Diagnostic-Code"] == "X-smtp-outage; refused at connect: Connection refused"
        assert block["Will-Retry-Until"] is None
    assert msg.get_payload()[2]["Content-Description"] == "Undelivered Message Headers"


def test_same_inputs_same_bytes():
    assert warning().as_bytes() == warning().as_bytes()
    assert warning().as_bytes() != warning(last_attempt=T0 + timedelta(hours=5)).as_bytes()
    assert b"\r\n" in warning().as_bytes()


def test_no_notification_about_a_notification():
    assert warning(originator="") is None
    assert (
        bounce(
            ORIGINAL,
            originator="",
            recipients="b@x.example",
            reporting_mta="m",
            arrival=T0,
            last_attempt=T0,
            diagnostic="550 5.1.1 no such user",
        )
        is None
    )


def test_status_must_fit_the_action():
    with pytest.raises(ValueError, match="Action: delayed"):
        warning(status="5.4.7")
    with pytest.raises(ValueError, match="RFC 3463"):
        bounce(
            ORIGINAL,
            originator="a@x",
            recipients="b@y",
            reporting_mta="m",
            arrival=T0,
            last_attempt=T0,
            diagnostic="x",
            status="expired",
        )
