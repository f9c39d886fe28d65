"""Runtime message records and the final ledger.

Every submitted message ends in exactly one of five states:

``delivered``  in the mail store of a server whose disk is live at the end
``stranded``   the sender got a 250, but the only copy is on a failed disk
``lost``       accepted, and every copy is destroyed
``bounced``    the sender gave up (retry lifetime exceeded, or a 5xx)
``queued``     still in a sender's queue when the run ends (a backup MX's queue included, and a
               receiving server's delivery queue: accepted, not yet readable in a mailbox)

``finalize`` assigns the states and checks conservation; a run whose states
do not add up fails with ``ConservationError``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .errors import ConservationError
from .schema.states import STATES
from .store import Holding

__all__ = ["STATES", "MessageRecord", "finalize"]


@dataclass(slots=True)
class MessageRecord:
    """One message's life, filled in by the engine as it happens."""

    message_id: str
    sender: str  #: the sending MTA, e.g. "postfix-03"
    group: str  #: the sender group's name
    policy: str  #: the retry policy's name
    originator: str
    recipient: str
    submitted_at: float
    attempts: int = 0
    connections: int = 0
    delay_warnings: int = 0
    accepted_at: float | None = None
    accepted_by: str = ""
    copies: int = (
        0  #: accepted copies its reader gets; a backup MX's copy counts until it is passed on (>1: duplicates)
    )
    bounced_at: float | None = None
    bounce_status: str = ""
    bounce_reason: str = ""
    last_error: str = ""
    final_state: str = ""
    final_at: float | None = None


def finalize(records: list[MessageRecord], holdings: dict[str, Holding], submitted: int) -> Counter[str]:
    """Assign each record its final state; check that nothing is lost or double-counted."""
    known = {r.message_id for r in records}
    strangers = sorted(set(holdings) - known)
    if strangers:
        raise ConservationError(f"mail stores hold {len(strangers)} unknown message(s), e.g. {strangers[0]}")
    for r in records:
        held = holdings.get(r.message_id)
        if r.accepted_at is not None and held is None and r.bounced_at is None:
            # (a backup MX that accepted a message and then gave up on it holds no copy: it bounced)
            raise ConservationError(f"{r.message_id} got a 250 from {r.accepted_by} but no store ever held it")
        if held is not None:
            r.final_state, r.final_at = held.state, (None if held.state == "queued" else held.since)
        elif r.bounced_at is not None:
            r.final_state, r.final_at = "bounced", r.bounced_at
        else:
            r.final_state, r.final_at = "queued", None
    counts = Counter(dict.fromkeys(STATES, 0))
    counts.update(r.final_state for r in records)
    if len(known) != len(records) or sum(counts.values()) != submitted or len(counts) != len(STATES):
        raise ConservationError(
            f"final states add up to {sum(counts.values())} for {submitted} messages submitted ({dict(counts)})"
        )
    return counts
