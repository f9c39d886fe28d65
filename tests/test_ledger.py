"""The ledger: one final state per message, and a run that loses count fails."""

from __future__ import annotations

import pytest

from simulator import ConservationError, RunError
from simulator.cli import exit_code
from simulator.errors import Problem, ScenarioError
from simulator.ledger import MessageRecord, finalize
from simulator.store import MailStores


def record(message_id: str, **kw) -> MessageRecord:
    return MessageRecord(message_id, "s-01", "s", "schedule", "a@s.example", "b@atnex.example", 0.0, **kw)


def test_each_message_gets_exactly_one_state_by_precedence():
    stores = MailStores(["mx"])
    stores.accept("mx", "m1", 10.0)
    stores.accept("mx", "m2", 20.0)
    stores.backup("mx", 30.0)
    stores.accept("mx", "m3", 40.0)
    stores.crash("mx", 50.0)
    stores.restore("mx", stores.latest_backup("mx"), 60.0)
    records = [
        record("m1", accepted_at=10.0),
        record("m2", accepted_at=20.0, bounced_at=5.0),  # a copy exists: delivered wins over the bounce
        record("m3", accepted_at=40.0),
        record("m4", bounced_at=70.0),
        record("m5"),
    ]
    counts = finalize(records, stores.holdings(), 5)
    assert [r.final_state for r in records] == ["delivered", "delivered", "stranded", "bounced", "queued"]
    assert [r.final_at for r in records] == [60.0, 60.0, 50.0, 70.0, None]
    assert dict(counts) == {"delivered": 2, "stranded": 1, "lost": 0, "bounced": 1, "queued": 1}


def test_a_store_holding_an_unknown_message_fails_the_run():
    stores = MailStores(["mx"])
    stores.accept("mx", "ghost", 1.0)
    with pytest.raises(ConservationError, match="unknown message"):
        finalize([record("m1")], stores.holdings(), 1)


def test_a_250_without_a_stored_copy_fails_the_run():
    with pytest.raises(ConservationError, match="no store ever held it"):
        finalize([record("m1", accepted_at=5.0, accepted_by="mx")], MailStores(["mx"]).holdings(), 1)


def test_counts_that_do_not_add_up_fail_the_run():
    with pytest.raises(ConservationError, match="add up to 1 for 2 messages"):
        finalize([record("m1")], {}, 2)


def test_exit_codes_map_outcomes():
    assert exit_code(None) == 0
    assert exit_code(ScenarioError([Problem("f.yaml", 3, "x", "bad")])) == 2
    assert exit_code(RunError("boom")) == 1
    assert exit_code(ConservationError("lost count")) == 1
    assert exit_code(None, thresholds_failed=True) == 99
