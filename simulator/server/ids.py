"""The ledger key of a raw message: its Message-ID, as a server reads it from the message's text."""

from __future__ import annotations

import re

__all__ = ["OWN_DOMAIN", "message_id_of"]

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)

OWN_DOMAIN = "smtp-outage.invalid"
"""The domain of the Message-IDs the engine's own senders write (``<m000001@smtp-outage.invalid>``)."""


def message_id_of(content: bytes) -> str | None:
    """The ledger key of a raw message: the Message-ID without its brackets.

    The engine's own messages (``@smtp-outage.invalid``) are keyed by the part
    before ``@``; any other client's Message-ID is kept whole.
    """
    match = _MESSAGE_ID.search(content)
    if match is None:
        return None
    found = match.group(1).decode("ascii", "replace")
    local, _, domain = found.partition("@")
    return local if domain.lower() == OWN_DOMAIN else found
