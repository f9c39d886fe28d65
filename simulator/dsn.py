"""RFC 3464 delivery status notifications: delay warnings and bounces.

``delay_warning()`` and ``bounce()`` build a ``multipart/report;
report-type=delivery-status`` message, written out as bytes directly
(the ``email`` package only reads them back):

1. a ``text/plain`` part for people;
2. a ``message/delivery-status`` part: per-message fields
   (``Reporting-MTA``, ``Arrival-Date``, optionally ``Original-Envelope-Id``)
   and one block of per-recipient fields per recipient (``Final-Recipient``,
   ``Action: delayed`` or ``failed``, ``Status``, ``Remote-MTA``,
   ``Diagnostic-Code``, ``Last-Attempt-Date``, and ``Will-Retry-Until`` for
   delays);
3. a ``text/rfc822-headers`` part with the original message's headers.

Notifications go out with a null reverse-path (``MAIL FROM:<>``) to the
original envelope sender (RFC 5321 §4.5.5, §6.1); none is made for a message
whose own reverse-path was null, so both functions then return ``None``.
Wording follows Postfix's templates ("Delayed Mail (still being retried)",
"Undelivered Mail Returned to Sender"). The output is deterministic: the
Message-ID and MIME boundary derive from the inputs, so the same run gives
the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import format_datetime

__all__ = ["Notification", "bounce", "delay_warning"]

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_SMTP_REPLY = re.compile(r"^[245]\d\d(?:[ -]|$)")


@dataclass(frozen=True, slots=True)
class Notification:
    """A DSN ready to send: its SMTP envelope and the message as bytes (CRLF line ends)."""

    mail_from: str  #: always "" (the null reverse-path)
    rcpt: str  #: the original message's envelope sender
    data: bytes  #: the whole message, as sent over SMTP
    date: str  #: its ``Date:`` field

    def as_bytes(self) -> bytes:
        """The message with CRLF line ends, as sent over SMTP."""
        return self.data

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the ``email`` package (for reading it, not for making it)."""
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _headers_of(original: Message | bytes | str) -> str:
    """The original's header block, one field per line (LF), without its body."""
    if isinstance(original, Message):
        return "".join(f"{name}: {value}\n" for name, value in original.items())
    text = original.decode("ascii", "replace") if isinstance(original, bytes) else original
    text = text.replace("\r\n", "\n")
    head, _, _ = text.partition("\n\n")
    return head + "\n" if head else ""


def _fields(pairs: Sequence[tuple[str, str | None]]) -> str:
    return "".join(f"{name}: {value}\n" for name, value in pairs if value is not None)


def _diagnostic(text: str) -> str:
    kind = "smtp" if _SMTP_REPLY.match(text) else "X-smtp-outage"
    return f"{kind}; {text}"


def _check(status: str, allowed: str, action: str) -> None:
    if not _STATUS.match(status) or status[0] not in allowed:
        raise ValueError(
            f"status {status!r} is not an RFC 3463 code for Action: {action}; "
            f"use a {' or '.join(c + '.x.x' for c in allowed)} code such as {allowed[0]}.4.7"
        )


def _build(
    *,
    action: str,
    subject: str,
    body: str,
    original: Message | bytes | str,
    originator: str,
    recipients: Sequence[str],
    reporting_mta: str,
    arrival: datetime,
    last_attempt: datetime,
    status: str,
    diagnostic: str,
    remote_mta: str | None,
    will_retry_until: datetime | None,
    date: datetime,
    envelope_id: str | None,
) -> Notification:
    """The notification's text, written directly (no ``email`` objects: at scale, its parser is a top cost)."""
    report = _fields(
        [
            ("Reporting-MTA", f"dns; {reporting_mta}"),
            ("Original-Envelope-Id", envelope_id),
            ("Arrival-Date", format_datetime(arrival)),
        ]
    )
    for rcpt in recipients:
        report += "\n" + _fields(
            [
                ("Final-Recipient", f"rfc822; {rcpt}"),
                ("Action", action),
                ("Status", status),
                ("Remote-MTA", f"dns; {remote_mta}" if remote_mta else None),
                ("Diagnostic-Code", _diagnostic(diagnostic)),
                ("Last-Attempt-Date", format_datetime(last_attempt)),
                ("Will-Retry-Until", format_datetime(will_retry_until) if will_retry_until else None),
            ]
        )
    seed = "|".join([action, originator, reporting_mta, arrival.isoformat(), date.isoformat(), *recipients])
    digest = hashlib.sha256(seed.encode()).hexdigest()
    boundary = f"=_dsn_{digest[24:48]}"
    sent = format_datetime(date)
    described = "Undelivered Message Headers" if action == "failed" else "Message Headers"
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>\n"
        f"To: {originator}\n"
        f"Subject: {subject}\n"
        f"Date: {sent}\n"
        f"Message-ID: <{digest[:24]}.{action}@{reporting_mta}>\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type="delivery-status"; boundary="{boundary}"\n'
        "\n"
        f"--{boundary}\n"
        'Content-Type: text/plain; charset="us-ascii"\n'
        "Content-Description: Notification\n\n"
        f"{body}\n"
        f"--{boundary}\n"
        "Content-Type: message/delivery-status\n"
        "Content-Description: Delivery report\n\n"
        f"{report}\n"
        f"--{boundary}\n"
        "Content-Type: text/rfc822-headers\n"
        f"Content-Description: {described}\n\n"
        f"{_headers_of(original)}\n"
        f"--{boundary}--\n"
    )
    data = text.replace("\n", "\r\n").encode("utf-8")
    return Notification(mail_from="", rcpt=originator, data=data, date=sent)


def _as_list(recipients: str | Sequence[str]) -> list[str]:
    items = [recipients] if isinstance(recipients, str) else list(recipients)
    if not items:
        raise ValueError("a delivery status notification needs at least one recipient")
    return items


def delay_warning(
    original: Message | bytes | str,
    *,
    originator: str,
    recipients: str | Sequence[str],
    reporting_mta: str,
    arrival: datetime,
    last_attempt: datetime,
    will_retry_until: datetime,
    diagnostic: str,
    status: str = "4.4.1",
    remote_mta: str | None = None,
    date: datetime | None = None,
    envelope_id: str | None = None,
) -> Notification | None:
    """A "still being retried" notice (``Action: delayed``) to *originator*.

    *diagnostic* is the last failure as one line (``Failure.describe()``):
    an SMTP reply such as ``421 4.3.2 try later`` becomes ``smtp; ...``.
    Returns ``None`` when *originator* is empty (never notify about a
    notification).
    """
    _check(status, "4", "delayed")
    if not originator:
        return None
    rcpts = _as_list(recipients)
    when = date or last_attempt
    body = (
        f"This is the mail system at host {reporting_mta}.\n\n"
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n\n"
        "Your message could not be delivered yet. The mail system will keep trying\n"
        f"until {format_datetime(will_retry_until)}.\n\n" + "".join(f"<{r}>: {diagnostic}\n" for r in rcpts)
    )
    return _build(
        action="delayed",
        subject="Delayed Mail (still being retried)",
        body=body,
        original=original,
        originator=originator,
        recipients=rcpts,
        reporting_mta=reporting_mta,
        arrival=arrival,
        last_attempt=last_attempt,
        status=status,
        diagnostic=diagnostic,
        remote_mta=remote_mta,
        will_retry_until=will_retry_until,
        date=when,
        envelope_id=envelope_id,
    )


def bounce(
    original: Message | bytes | str,
    *,
    originator: str,
    recipients: str | Sequence[str],
    reporting_mta: str,
    arrival: datetime,
    last_attempt: datetime,
    diagnostic: str,
    status: str = "5.4.7",
    reason: str = "",
    remote_mta: str | None = None,
    date: datetime | None = None,
    envelope_id: str | None = None,
) -> Notification | None:
    """A non-delivery report (``Action: failed``) to *originator*.

    *status* is the policy's ``Decision.status`` (``4.4.7`` for an expired
    message, as Postfix and Exchange report it, or the 5xx reply's class);
    *reason* is the policy's ``Decision.bounce`` text, shown to people.
    Returns ``None`` when *originator* is empty.
    """
    _check(status, "45", "failed")
    if not originator:
        return None
    rcpts = _as_list(recipients)
    when = date or last_attempt
    why = f"Reason: {reason}\n\n" if reason else ""
    body = (
        f"This is the mail system at host {reporting_mta}.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n" + why + "".join(f"<{r}>: {diagnostic}\n" for r in rcpts)
    )
    return _build(
        action="failed",
        subject="Undelivered Mail Returned to Sender",
        body=body,
        original=original,
        originator=originator,
        recipients=rcpts,
        reporting_mta=reporting_mta,
        arrival=arrival,
        last_attempt=last_attempt,
        status=status,
        diagnostic=diagnostic,
        remote_mta=remote_mta,
        will_retry_until=None,
        date=when,
        envelope_id=envelope_id,
    )
