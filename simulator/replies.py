"""Named SMTP replies used by the simulated receiving servers.

Tests and fault modes refer to these names instead of magic strings.
"""

from __future__ import annotations

__all__ = [
    "OK_QUEUED",
    "TEMPFAIL_GREETING",
    "SERVICE_UNAVAILABLE",
    "NO_SUCH_DOMAIN",
    "TOO_BUSY",
    "DISK_FULL",
    "GREYLISTED",
    "MESSAGE_ID_REQUIRED",
    "INTERNAL_ERROR",
    "SERVER_IDENT",
    "GREETING",
    "EHLO_OK",
    "SENDER_OK",
    "RECIPIENT_OK",
    "START_DATA",
    "RESET_OK",
    "reply_code",
]

OK_QUEUED = "250 2.0.0 Ok: queued as {queue_id}"
TEMPFAIL_GREETING = "421 4.3.2 Service not available, closing transmission channel"
SERVICE_UNAVAILABLE = "451 4.3.0 Local error in processing"
NO_SUCH_DOMAIN = "550 5.1.2 Relay access denied: domain not served here"
TOO_BUSY = "421 4.7.0 Too busy, try again later"
DISK_FULL = "452 4.3.1 Insufficient system storage"
GREYLISTED = "451 4.7.1 Greylisted, please try again later"
MESSAGE_ID_REQUIRED = "554 5.6.0 Message-ID header required"
INTERNAL_ERROR = "451 4.3.0 Internal error (recorded)"

SERVER_IDENT = "smtp-outage"
"""What the server calls itself after its host name in the greeting."""
GREETING = "220 {hostname} " + SERVER_IDENT
EHLO_OK = "250 {hostname}"
"""The first line of the EHLO reply (on the wire, aiosmtpd adds its extension lines)."""
SENDER_OK = "250 2.1.0 Ok"
RECIPIENT_OK = "250 2.1.5 Ok"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
RESET_OK = "250 2.0.0 Ok"


def reply_code(reply: str) -> int:
    """The three-digit code at the start of an SMTP reply string."""
    return int(reply[:3])
