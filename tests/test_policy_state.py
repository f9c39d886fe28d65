"""Retry state shared between messages, at the PolicyState level (no sockets).

``Sender`` below calls a policy state the way the replay engine does: all
attempts due at one instant call ``before_connect`` first, then their
results are applied in order with ``after_failure`` / ``after_success``;
for a policy with ``serial_rounds`` (Postfix) the retry round goes out one
message at a time, each after the outcome of the one before, and then the
new mail of that instant, the same way.
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

    def __init__(self, st, serial: bool = False) -> None:
        self.st = st
        self.serial = serial
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
        if not self.serial:
            self._round(batch, now, outcome)
            return now
        retries = [mid for mid in batch if self.msgs[mid].attempts]
        for mid in retries + [mid for mid in batch if mid not in retries]:
            self._round([mid], now, outcome)
        return now

    def _round(self, batch: list[str], now: float, outcome: Failure | None) -> None:
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
    # a is tried at the first queue run past the final cutoff (4 d = 345600 s is on the
    # grid, so 347400), although the host waits until 361800, and bounces. The cutoff
    # counts from the host's first failure, so b, queued 10 h later, finds the host
    # expired at the next queue run and bounces without an attempt: less than 4 days
    # after its own arrival.
    assert s.bounced["a"] == (347400, "retry timeout exceeded")
    assert s.bounced["b"] == (349200, "retry time not reached for any host after a long failure period")
    assert s.msgs["b"].log[-1] == (349200, "suspended")
    assert s.bounced["b"][0] - s.msgs["b"].arrival < 4 * 86400


def test_exim_bounces_new_mail_at_once_after_the_cutoff_then_tries_once():
    s = Sender(state("exim"))
    s.submit("a", 0)
    s.run_until(6 * 86400)
    assert s.bounced["a"][0] == 347400
    late = s.submit("c", 347400 + 100)
    assert late.bounce is not None and "long failure period" in late.bounce
    # After the post-cutoff retry time (the last rule's 6 h) one attempt is made.
    again = s.submit("d", 347400 + 6 * 3600)
    assert again.retry_at == 347400 + 6 * 3600
    s.step()
    assert s.bounced["d"] == (347400 + 6 * 3600, "retry timeout exceeded")


def test_exim_without_delay_after_cutoff_tries_new_mail_after_the_cutoff():
    s = Sender(state("exim", delay_after_cutoff=False))
    s.submit("a", 0)
    s.run_until(6 * 86400)
    late = s.submit("c", 347400 + 100)
    assert late.retry_at == 347400 + 100


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


def test_postfix_retry_round_goes_out_one_message_at_a_time_and_four_failures_kill_it():
    s = Sender(state("postfix"), serial=True)
    for i in range(10):
        s.submit(f"m{i}", 0)
    s.step()  # new mail: each first delivery is isolated, all ten connect
    assert [m.log for m in s.msgs.values()] == [[(0, "connect")]] * 10
    assert set(s.due.values()) == {300}  # 0 + 300 - 1 -> the scan at 300
    s.step()
    # The scan hands the messages out one at a time: 1/5 + 1/4 + 1/3 + 1/2 >= 1 after the
    # fourth refusal, so the destination is dead and the other six are not tried.
    assert [m.log[-1][1] for m in s.msgs.values()] == ["connect"] * 4 + ["suspended"] * 6
    assert set(s.due.values()) == {600}  # suspended or not, the age rule: 300 + 300 - 1 -> 600
    s.step()  # dead for minimal_backoff_time (300 s): alive again at 600, the same again
    assert [m.log[-1] for m in s.msgs.values()] == [(600, "connect")] * 4 + [(600, "suspended")] * 6


def test_postfix_dead_destination_suspends_new_mail_for_minimal_backoff():
    s = Sender(state("postfix"), serial=True)
    for i in range(5):
        s.submit(f"m{i}", 0)
    s.step()
    s.step()  # the retry round at 300 kills the destination at its fourth failure
    late = s.submit("late", 310)
    assert late.retry_at == 310
    s.step()
    assert s.msgs["late"].log == [(310, "suspended")]
    assert s.due["late"] == 900  # still scheduled by the age rule (310 + 300 - 1 -> scan at 900)
    st = s.st
    probe = MessageView("probe", 500, 1, 0, DEST)
    held = st.before_connect(probe, HOST, 500)
    assert held is not None and held.text.startswith("delivery temporarily suspended: ")
    assert "Connection refused" in held.text
    assert st.before_connect(probe, HOST, 600) is None  # minimal_backoff_time after 300


def test_postfix_new_mail_a_second_after_others_failed_on_arrival_connects():
    # The real Postfix 3.7.11: six messages refused with 421 on arrival, four more a second
    # later; the four connected (real-mtas.md). First deliveries never mark the destination dead.
    s = Sender(state("postfix"), serial=True)
    greeting = Failure(FailureKind.TEMPFAIL, Stage.GREETING, HOST, 421, "4.3.2 Service shutting down")
    for i in range(6):
        s.submit(f"a{i}", 0)
    s.step(greeting)
    for i in range(4):
        s.submit(f"b{i}", 1)
    s.step(greeting)
    assert [s.msgs[f"b{i}"].log for i in range(4)] == [[(1, "connect")]] * 4


def test_postfix_tells_how_many_failures_in_flight_cannot_change_its_answer():
    st = state("postfix")
    # Window 5: 1/5 + 1/4 + 1/3 < 1 <= ... + 1/2, so three failures cannot kill a destination, four can.
    assert [st.decides_alike(DEST, n, 300) for n in range(6)] == [True, True, True, True, False, False]
    legacy = state("postfix-legacy")  # dead when the window reaches 0: five failures
    assert [legacy.decides_alike(DEST, n, 300) for n in range(7)] == [True] * 5 + [False, False]
    s = Sender(st, serial=True)
    for i in range(5):
        s.submit(f"m{i}", 0)
    s.step()
    s.step()  # the round at 300 kills the destination: from then on nothing can change the answer
    assert st.decides_alike(DEST, 10, 310)


def test_postfix_single_message_never_kills_its_destination():
    s = Sender(state("postfix"), serial=True)
    s.submit("a", 0)
    s.run_until(86400)
    assert all(kind == "connect" for _, kind in s.msgs["a"].log)


def test_postfix_message_level_failures_do_not_kill_the_destination():
    s = Sender(state("postfix"), serial=True)
    for i in range(10):
        s.submit(f"m{i}", 0)
    s.step()
    s.step(Failure(FailureKind.TEMPFAIL, Stage.MAIL, HOST, 452, "4.3.1 insufficient storage"))
    assert [m.log[-1] for m in s.msgs.values()] == [(300, "connect")] * 10


def test_postfix_legacy_dies_when_the_window_reaches_zero():
    s = Sender(state("postfix-legacy"), serial=True)
    for i in range(6):
        s.submit(f"m{i}", 0)
    s.step()
    s.step()  # the round at 1000: the window goes 5 -> 0 in five failures, the sixth waits
    assert [m.log[-1][1] for m in s.msgs.values()] == ["connect"] * 5 + ["suspended"]
    s2 = Sender(state("postfix-legacy"), serial=True)
    for i in range(4):
        s2.submit(f"m{i}", 0)
    s2.step()
    s2.step()
    assert s2.st.before_connect(MessageView("x", 1005, 1, 0, DEST), HOST, 1005) is None


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
