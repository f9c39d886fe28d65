"""Compare runs of scenario variants message by message (what a mitigation would have saved).

Variants that keep the same senders, traffic and seed submit the same
messages under the same ids, so each message's fate can be compared across
them: "412 messages stranded in the original would have been delivered".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .ledger import STATES
from .results import RunResult

__all__ = ["Comparison", "compare"]

BAD = ("stranded", "lost", "bounced")


@dataclass(frozen=True)
class Comparison:
    """How a variant's ledger differs from the baseline's."""

    baseline: str
    variant: str
    counts: dict[str, tuple[int, int]]  #: state -> (baseline, variant)
    same_messages: bool
    moves: dict[tuple[str, str], int]  #: (baseline state, variant state) -> messages

    @property
    def saved(self) -> int:
        """Messages stranded, lost or bounced in the baseline but delivered in the variant."""
        return sum(n for (a, b), n in self.moves.items() if a in BAD and b == "delivered")

    @property
    def worse(self) -> int:
        """Messages delivered in the baseline but stranded, lost or bounced in the variant."""
        return sum(n for (a, b), n in self.moves.items() if a == "delivered" and b in BAD)


def compare(baseline: RunResult, variant: RunResult) -> Comparison:
    """Compare two runs; per-message moves only when both submitted the same messages."""
    counts = {s: (baseline.counts[s], variant.counts[s]) for s in STATES}
    a = {r.message_id: (r.submitted_at, r.recipient, r.final_state) for r in baseline.records}
    b = {r.message_id: (r.submitted_at, r.recipient, r.final_state) for r in variant.records}
    same = a.keys() == b.keys() and all(a[k][:2] == b[k][:2] for k in a)
    moves: Counter[tuple[str, str]] = Counter()
    if same:
        for key, (_, _, state) in a.items():
            if state != b[key][2]:
                moves[(state, b[key][2])] += 1
    return Comparison(baseline.scenario.name, variant.scenario.name, counts, same, dict(moves))
