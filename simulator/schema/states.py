"""The five final states of a message, in the order every table shows them, and what each means."""

from __future__ import annotations

__all__ = ["STATES", "STATE_MEANING", "BAD_STATES"]

STATES = ("delivered", "stranded", "lost", "bounced", "queued")
"""Every message ends in exactly one of these."""

STATE_MEANING = {
    "delivered": "in a mailbox on a server whose disk is live at the end",
    "stranded": "accepted with a 250, but the only copy is on a failed disk; the sender believes it was delivered",
    "lost": "accepted, and every copy destroyed",
    "bounced": "the sender gave up; its originator got a non-delivery report",
    "queued": "still in a sender's queue (or a backup MX's) when the run ends",
}

BAD_STATES = ("stranded", "lost", "bounced")
"""States in which the mail did not reach its reader."""
