"""Retry state shared between messages, at the PolicyState level (no sockets).

``Sender`` below calls a policy state the way the replay engine does: all
attempts due at one instant call ``before_connect`` first, then their
results are applied in order with ``after_failure`` / ``after_success``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from simulator.policies import PRESETS, Decision, Failure, FailureKind, MessageView, Stage
from simulator.policies.simulate import all_attempts_fail

HOST = "mx.atnex.example"
DEST = "atnex.example"
REFUSED = Failure(FailureKind.REFUSED, Stage.CONNECT, HOST, text="Connection refused")


def state(name: str, seed: int = 0, **settings: object):
    """A fresh PolicyState of preset *name*."""
    preset = PRESETS[name]
    return preset.build(preset.params.model_validate(settings)).start(random.Random(seed))


@dataclass
class Msg:
    """One message as the engine tracks it."""

    id: str
    arrival: float
    attempts: int = 0
    warnings: int = 0
    log: list[tuple[float, str]] = field(default_factory=list)

    def view(self) -> MessageView:
        return MessageView(self.id, self.arrival, self.attempts, self.warnings, DEST)


class Sender:
    """Drives several messages through one PolicyState against one host."""

    def __init__(self, st) -> None:
        self.st = st
        self.due: dict[str, float] = {}
        self.msgs: dict[str, Msg] = {}
        self.bounced: dict[str, tuple[float, str]] = {}

    def submit(self, mid: str, now: float) -> Decision:
        msg = self.msgs[mid] = Msg(mid, now)
        decision = self.st.on_arrival(msg.view(), now)
        self._apply(msg, decision, now)
        return decision

    def _apply(self, msg: Msg, decision: Decision, now: float) -> None:
        if decision.warn:
            msg.warnings += 1
        if decision.bounce is not None:
            self.bounced[msg.id] = (now, decision.bounce)
            self.due.pop(msg.id, None)
        else:
            self.due[msg.id] = decision.retry_at

    def step(self, outcome: Failure | None = REFUSED) -> float:
        """Run every attempt due at the earliest time; *outcome* None means accepted."""
        now = min(self.due.values())
        batch = [mid for mid, t in self.due.items() if t == now]
        held: dict[str, Failure | None] = {}
        for mid in batch:
            msg = self.msgs[mid]
            msg.attempts += 1
            held[mid] = self.st.before_connect(msg.view(), HOST, now)
        for mid in batch:
            msg = self.msgs[mid]
            failure = held[mid] or outcome
            msg.log.append((now, "suspended" if held[mid] else "connect"))
            if failure is None:
                self.st.after_success(msg.view(), HOST, now)
                del self.due[mid]
                continue
            self._apply(msg, self.st.after_failure(msg.view(), failure, now), now)
        return now

    def run_until(self, end: float, outcome: Failure | None = REFUSED) -> None:
        while self.due and min(self.due.values()) <= end:
            self.step(outcome)


# -- Exim: host retry records shared by all messages -----------------------


def test_exim_new_message_to_a_host_in_retry_wait_is_not_tried_on_arrival():
    s = Sender(state("exim"))
    s.submit("a", 0)
    s.step()  # a fails at 0: host retry time 15 min, next queue run 30 min
    decision = s.submit("b", 600)
    assert decision.retry_at == 1800
    s.step()
    assert s.msgs["a"].log[-1] == (1800, "connect") and s.msgs["b"].log == [(1800, "connect")]
    # Both failed at 1800; the host record was updated once, so both wait for 3600.
    assert s.due == {"a": 3600, "b": 3600}


def test_exim_messages_share_the_host_schedule_and_cutoff():
    s = Sender(state("exim"))
    s.submit("a", 0)
    s.run_until(10 * 3600)
    s.submit("b", 10 * 3600 + 60)
    assert s.due["b"] == s.due["a"]
    s.run_until(6 * 86400)
    # The cutoff counts from the host's first failure, so b, queued 10 h later,
    # bounces at the same moment as a: less than 4 days after its own arrival.
    assert s.bounced["a"] == (361800, "retry timeout exceeded")
    assert s.bounced["b"][0] == 361800
    assert s.bounced["b"][0] - s.msgs["b"].arrival < 4 * 86400


def test_exim_bounces_new_mail_at_once_after_the_cutoff_then_tries_once():
    s = Sender(state("exim"))
    s.submit("a", 0)
    s.run_until(6 * 86400)
    assert s.bounced["a"][0] == 361800
    late = s.submit("c", 361800 + 100)
    assert late.bounce is not None and "long failure period" in late.bounce
    # After the post-cutoff retry time (the last rule's 6 h) one attempt is made.
    again = s.submit("d", 361800 + 6 * 3600)
    assert again.retry_at == 361800 + 6 * 3600
    s.step()
    assert s.bounced["d"] == (361800 + 6 * 3600, "retry timeout exceeded")


def test_exim_without_delay_after_cutoff_tries_new_mail_after_the_cutoff():
    s = Sender(state("exim", delay_after_cutoff=False))
    s.submit("a", 0)
    s.run_until(6 * 86400)
    late = s.submit("c", 361800 + 100)
    assert late.retry_at == 361800 + 100


def test_exim_success_clears_the_host_record():
    s = Sender(state("exim"))
    s.submit("a", 0)
    s.step()
    s.step(outcome=None)  # accepted at 1800
    assert s.submit("b", 2000).retry_at == 2000


def test_exim_message_errors_do_not_hold_other_messages():
    s = Sender(state("exim"))
    s.submit("a", 0)
    s.step(Failure(FailureKind.TEMPFAIL, Stage.MAIL, HOST, 451, "4.3.0 try later"))
    assert s.due["a"] == 1800
    assert s.submit("b", 60).retry_at == 60


def test_exim_skips_a_host_whose_retry_time_has_not_come():
    st = state("exim")
    a = MessageView("a", 0, 1, 0, DEST)
    assert st.before_connect(a, HOST, 0) is None
    st.after_failure(a, REFUSED, 0)
    b = MessageView("b", 100, 1, 0, DEST)
    held = st.before_connect(b, HOST, 100)
    assert held is not None and held.kind is FailureKind.SUSPENDED
    assert held.text == "retry time not reached for any host"
    assert st.after_failure(b, held, 100).retry_at == 1800


def test_exim_queue_runs_are_counted_from_the_start_not_from_arrival():
    st = state("exim")
    msg = MessageView("a", 100, 1, 0, DEST)
    st.before_connect(msg, HOST, 100)
    assert st.after_failure(msg, REFUSED, 100).retry_at == 1800


# -- Postfix: the dead-destination hold ------------------------------------


def test_postfix_destination_dies_after_concurrent_failures_and_holds_for_minimal_backoff():
    s = Sender(state("postfix"))
    for i in range(5):
        s.submit(f"m{i}", 0)
    s.step()  # five concurrent deliveries, all refused
    assert all(m.log == [(0, "connect")] for m in s.msgs.values())
    late = s.submit("late", 10)
    assert late.retry_at == 10
    s.step()
    assert s.msgs["late"].log == [(10, "suspended")]
    assert s.due["late"] == 600  # still scheduled by the age rule (10 + 300 - 1 -> scan at 600)
    st = s.st
    probe = MessageView("probe", 200, 1, 0, DEST)
    held = st.before_connect(probe, HOST, 200)
    assert held is not None and held.text.startswith("delivery temporarily suspended: ")
    assert "Connection refused" in held.text
    assert st.before_connect(probe, HOST, 300) is None  # minimal_backoff_time later


def test_postfix_single_message_never_kills_its_destination():
    s = Sender(state("postfix"))
    s.submit("a", 0)
    s.run_until(86400)
    assert all(kind == "connect" for _, kind in s.msgs["a"].log)


def test_postfix_message_level_failures_do_not_kill_the_destination():
    s = Sender(state("postfix"))
    for i in range(5):
        s.submit(f"m{i}", 0)
    s.step(Failure(FailureKind.TEMPFAIL, Stage.MAIL, HOST, 452, "4.3.1 insufficient storage"))
    assert s.st.before_connect(MessageView("x", 5, 1, 0, DEST), HOST, 5) is None


def test_postfix_legacy_dies_when_the_window_reaches_zero():
    s = Sender(state("postfix-legacy"))
    for i in range(4):
        s.submit(f"m{i}", 0)
    s.step()
    assert s.st.before_connect(MessageView("x", 5, 1, 0, DEST), HOST, 5) is None
    s2 = Sender(state("postfix-legacy"))
    for i in range(5):
        s2.submit(f"m{i}", 0)
    s2.step()
    held = s2.st.before_connect(MessageView("x", 5, 1, 0, DEST), HOST, 5)
    assert held is not None and held.kind is FailureKind.SUSPENDED


def test_postfix_scan_grid_is_counted_from_the_start():
    st = state("postfix")
    msg = MessageView("a", 1000, 1, 0, DEST)
    assert st.on_arrival(msg, 1000).retry_at == 1000
    st.before_connect(msg, HOST, 1000)
    assert st.after_failure(msg, REFUSED, 1000).retry_at == 1500


def test_postfix_random_scan_phase_is_reproducible_per_seed():
    first = [state("postfix", seed=7, scan_phase="random") for _ in range(2)]
    times = []
    for st in first:
        msg = MessageView("a", 0, 1, 0, DEST)
        st.before_connect(msg, HOST, 0)
        times.append(st.after_failure(msg, REFUSED, 0).retry_at)
    assert times[0] == times[1]
    assert 299 <= times[0] < 600


# -- Failure matrix (reference section 8) -----------------------------------


def _decide(name: str, failure: Failure) -> Decision:
    st = state(name)
    msg = MessageView("a", 0, 1, 0, DEST)
    st.before_connect(msg, HOST, 0)
    return st.after_failure(msg, failure, 0)


def test_a_5xx_greeting_defers_for_postfix_and_qmail_but_bounces_for_exim():
    greeting = Failure(FailureKind.PERMFAIL, Stage.GREETING, HOST, 554, "5.3.2 no service")
    assert _decide("postfix", greeting).bounce is None
    assert _decide("qmail", greeting).bounce is None
    assert _decide("exim", greeting).bounce is not None
    assert _decide("postfix", greeting.__class__(FailureKind.PERMFAIL, Stage.MAIL, HOST, 550, "no")).bounce


def test_postfix_bounces_a_5xx_greeting_when_told_not_to_skip_it():
    greeting = Failure(FailureKind.PERMFAIL, Stage.GREETING, HOST, 554, "5.3.2 no service")
    st = state("postfix", smtp_skip_5xx_greeting=False)
    msg = MessageView("a", 0, 1, 0, DEST)
    st.before_connect(msg, HOST, 0)
    assert st.after_failure(msg, greeting, 0).status == "5.3.2"  # the reply's own enhanced status


def test_a_lost_connection_after_the_dot_is_a_retry_everywhere():
    dropped = Failure(FailureKind.DROPPED, Stage.DOT, HOST, text="lost connection after end of data")
    for name in ("postfix", "exim", "qmail", "sendmail", "exchange", "rfc5321"):
        assert _decide(name, dropped).retry_at is not None


# -- Exchange: one retry schedule per delivery queue -------------------------


def test_exchange_messages_wait_on_the_queue_and_advance_it_once():
    s = Sender(state("exchange"))
    s.submit("a", 0)
    s.step()
    assert s.submit("b", 30).retry_at == 60
    s.step()
    assert s.due == {"a": 120, "b": 120}


def test_exchange_message_level_4xx_uses_the_message_retry_interval():
    d = _decide("exchange", Failure(FailureKind.TEMPFAIL, Stage.RCPT, HOST, 452, "4.2.2 mailbox full"))
    assert d.retry_at == 900


# -- qmail: the TCP timeout table ---------------------------------------------


def test_qmail_skips_a_host_that_timed_out_twice():
    preset = PRESETS["qmail"]
    outcome = all_attempts_fail(preset.build(preset.params()), hours=5, failure=FailureKind.TIMEOUT, attempt_cost=60)
    assert outcome.attempts[:3] == (0, 400, 6400)
    assert outcome.suspended[:2] == (1600, 3600)


# -- Sendmail: host status within one queue run ------------------------------


def test_sendmail_defers_later_messages_to_a_failed_host_within_a_queue_run():
    st = state("sendmail")
    a, b = MessageView("a", 0, 1, 0, DEST), MessageView("b", 10, 1, 0, DEST)
    assert st.before_connect(a, HOST, 1800) is None
    st.after_failure(a, REFUSED, 1800)
    held = st.before_connect(b, HOST, 1800)
    assert held is not None and held.kind is FailureKind.SUSPENDED
    assert st.before_connect(b, HOST, 3600) is None


def test_a_5xx_without_an_enhanced_status_bounces_with_one_made_from_its_code():
    st = state("postfix", smtp_skip_5xx_greeting=False)
    msg = MessageView("a", 0, 1, 0, DEST)
    st.before_connect(msg, HOST, 0)
    plain = Failure(FailureKind.PERMFAIL, Stage.GREETING, HOST, 554, "no service here")
    assert st.after_failure(msg, plain, 0).status == "5.5.4"
    other_class = Failure(FailureKind.PERMFAIL, Stage.GREETING, HOST, 554, "4.3.2 odd")  # a 4.x.x on a 5xx: not trusted
    assert st.after_failure(msg, other_class, 0).status == "5.5.4"
