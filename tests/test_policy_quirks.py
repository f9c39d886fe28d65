"""MX fallback as each MTA does it, at the PolicyState level (no sockets).

Two MX hosts, mx1 preferred. The expected times are worked out by hand from
the presets' defaults (retry-policies.md sections 2, 3, 5 and 8):

* Exchange (Mailbox): glitch retries every 60 s (4), then every 5 min (6),
  then every 10 min; the queue is per next hop, and a round tries its hosts
  in turn before the queue goes to Retry.
* Exim: default rule ``F,2h,15m; ...``, queue runner every 30 min from 0;
  retry records per host, a host in retry wait is skipped.
* Sendmail: queue runs every 30 min from 0; host status kept for one run.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from simulator.policies import PRESETS, Decision, Failure, FailureKind, MessageView, Stage
from simulator.policies.base import PolicyState, RetryPolicy

DEST = "example.net"
MX1, MX2, MX3 = "mx1.example.net", "mx2.example.net", "mx3.example.net"


def preset(name: str, **settings: object) -> RetryPolicy:
    p = PRESETS[name]
    return p.build(p.params.model_validate(settings))


def refused(host: str) -> Failure:
    return Failure(FailureKind.REFUSED, Stage.CONNECT, host, text="Connection refused")


def connect_timeout(host: str) -> Failure:
    return Failure(FailureKind.TIMEOUT, Stage.CONNECT, host, text="connect timed out")


def msg(mid: str, arrival: float = 0.0, attempts: int = 1) -> MessageView:
    return MessageView(mid, arrival, attempts, 0, DEST)


def mx_round(
    policy: RetryPolicy,
    state: PolicyState,
    view: MessageView,
    now: float,
    outcome: Callable[[str], Failure | None],
    hosts: tuple[str, ...] = (MX1, MX2),
) -> tuple[list[tuple[str, str]], Decision | None]:
    """One delivery attempt over the MX list, as the engine walks it (no attempt cost).

    Returns what happened at each host ("connect" or the suspension text) and
    the last decision (``None`` when the message was accepted).
    """
    log: list[tuple[str, str]] = []
    decision: Decision | None = None
    for n, host in enumerate(hosts):
        failure = state.before_connect(view, host, now)
        if failure is None:
            log.append((host, "connect"))
            failure = outcome(host)
            if failure is None:
                state.after_success(view, host, now)
                return log, None
        else:
            log.append((host, failure.text))
        decision = state.after_failure(view, failure, now)
        if decision.bounce is not None or failure.expiry or n == len(hosts) - 1:
            break
        if not policy.next_mx_allowed(failure):
            break
    return log, decision


def primary_down(host: str) -> Failure | None:
    return refused(host) if host == MX1 else None


def all_down(host: str) -> Failure | None:
    return refused(host)


# -- Exchange: failover inside a connection round ----------------------------------------------


def test_exchange_tries_the_backup_host_in_the_same_round() -> None:
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    a, b = msg("a"), msg("b")
    assert st.before_connect(a, MX1, 0) is None
    failed = refused(MX1)
    assert st.after_failure(a, failed, 0).retry_at == 60  # the queue is in Retry: first glitch retry
    assert policy.next_mx_allowed(failed)
    assert st.before_connect(a, MX2, 0) is None  # mx2 has not failed in this round
    # a second message of the queue at the same instant does not connect to mx1 again ...
    held = st.before_connect(b, MX1, 0)
    assert held is not None and held.kind is FailureKind.SUSPENDED and held.host_only
    assert not held.expiry
    assert policy.next_mx_allowed(held)  # ... but moves on to mx2
    assert st.after_failure(b, held, 0).retry_at == 60
    assert st.before_connect(b, MX2, 0) is None


def test_exchange_a_later_instant_before_the_retry_time_is_suspended_for_every_host() -> None:
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    a = msg("a")
    st.before_connect(a, MX1, 0)
    st.after_failure(a, refused(MX1), 0)
    c = msg("c", arrival=30)
    assert st.on_arrival(c, 30).retry_at == 60
    for host in (MX1, MX2):
        held = st.before_connect(c, host, 30)
        assert held is not None and held.kind is FailureKind.SUSPENDED
        assert held.text == "queue is in Retry" and not held.host_only
        assert not policy.next_mx_allowed(held)
    assert st.before_connect(c, MX1, 60) is None  # the queue's retry time


def test_exchange_primary_refuses_backup_accepts_everything_goes_through_the_backup() -> None:
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    log_a, decision_a = mx_round(policy, st, msg("a"), 0, primary_down)
    assert log_a == [(MX1, "connect"), (MX2, "connect")] and decision_a is None
    # the success took the queue out of Retry: the next message tries mx1 first again
    log_b, decision_b = mx_round(policy, st, msg("b", 10), 10, primary_down)
    assert log_b == [(MX1, "connect"), (MX2, "connect")] and decision_b is None


def test_exchange_second_message_in_the_failed_round_skips_mx1_and_uses_mx2() -> None:
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    a, b = msg("a"), msg("b")
    st.before_connect(a, MX1, 0)
    st.after_failure(a, refused(MX1), 0)  # a is now on its way to mx2
    log, decision = mx_round(policy, st, b, 0, primary_down)
    assert log == [(MX1, "host already failed in this connection attempt"), (MX2, "connect")]
    assert decision is None


def test_exchange_one_round_over_two_failing_hosts_advances_the_queue_once() -> None:
    # Both hosts refuse: the queue follows the one-host schedule of reference section 5
    # (0, 60, 120, 180, 240, then 5 min: 540), with both hosts tried in each round.
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    a = msg("a")
    times = []
    now = 0.0
    for n in range(6):
        a = msg("a", attempts=n + 1)
        log, decision = mx_round(policy, st, a, now, all_down)
        assert log == [(MX1, "connect"), (MX2, "connect")]
        assert decision is not None and decision.retry_at is not None
        times.append(now)
        now = decision.retry_at
    assert times == [0, 60, 120, 180, 240, 540]
    assert now == 840


def test_exchange_failover_after_a_connect_timeout_is_the_same_round() -> None:
    # mx1 times out after 30 s: round at 30, queue retry at 30 + 60 = 90. mx2 is tried
    # at 30 and times out at 60: the same round, so the retry stays at 90, and a third
    # host may still be tried at 60 while mx1 and mx2 are skipped by other messages.
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    a, b = msg("a"), msg("b")
    assert st.before_connect(a, MX1, 0) is None
    assert st.after_failure(a, connect_timeout(MX1), 30).retry_at == 90
    assert st.before_connect(a, MX2, 30) is None
    assert st.after_failure(a, connect_timeout(MX2), 60).retry_at == 90
    assert st.before_connect(a, MX3, 60) is None
    for host in (MX1, MX2):
        held = st.before_connect(b, host, 60)
        assert held is not None and held.host_only
    assert st.after_failure(a, connect_timeout(MX3), 90).retry_at == 90 + 60  # a new round at 90


def test_exchange_expiry_never_moves_on() -> None:
    policy = preset("exchange")
    st = policy.start(random.Random(0))
    held = st.before_connect(msg("a"), MX1, 172800)
    assert held is not None and held.expiry
    assert not policy.next_mx_allowed(held)
    assert st.after_failure(msg("a"), held, 172800).bounce is not None


# -- Exim: hosts in retry wait are skipped -------------------------------------------------------


def _exim_with_mx1_waiting() -> tuple[RetryPolicy, PolicyState]:
    """mx1 refused a at 0 (host retry time 0 + 15 min = 900); a was then delivered by mx2."""
    policy = preset("exim")
    st = policy.start(random.Random(0))
    log, decision = mx_round(policy, st, msg("a"), 0, primary_down)
    assert log == [(MX1, "connect"), (MX2, "connect")] and decision is None
    return policy, st


def test_exim_skips_a_host_in_retry_wait_and_tries_the_backup() -> None:
    policy, st = _exim_with_mx1_waiting()
    b = msg("b", arrival=600)
    assert st.on_arrival(b, 600).retry_at == 600  # mx2 has no retry record: deliver at once
    held = st.before_connect(b, MX1, 600)
    assert held is not None and held.kind is FailureKind.SUSPENDED
    assert held.text == "retry time not reached"  # not "for any host": mx2 is free
    assert policy.next_mx_allowed(held)
    decision = st.after_failure(b, held, 600)
    assert decision.bounce is None and decision.retry_at == 1800  # the next queue run, if it came to that
    assert st.before_connect(b, MX2, 600) is None


def test_exim_waits_only_when_every_host_waits() -> None:
    policy = preset("exim")
    st = policy.start(random.Random(0))
    log, decision = mx_round(policy, st, msg("a"), 0, all_down)
    assert log == [(MX1, "connect"), (MX2, "connect")]
    assert decision is not None and decision.retry_at == 1800  # both hosts retry at 900: next run 1800
    b = msg("b", arrival=600)
    assert st.on_arrival(b, 600).retry_at == 1800
    held = st.before_connect(b, MX1, 600)
    assert held is not None and held.text == "retry time not reached for any host"
    assert policy.next_mx_allowed(held)
    log, decision = mx_round(policy, st, b, 600, all_down)
    assert log == [(MX1, "retry time not reached for any host"), (MX2, "retry time not reached for any host")]
    assert decision is not None and decision.retry_at == 1800


def test_exim_the_earliest_host_retry_time_decides_when_the_message_waits() -> None:
    # Queue runs every 5 min. mx1 fails at 0 (host retry time 900); mx2 is known and has
    # no record. A message skipping mx1 at 100 waits for the next run (300), not for
    # mx1's retry time (the run after 900).
    policy = preset("exim", queue_runner="5m")
    st = policy.start(random.Random(0))
    st.before_connect(msg("a"), MX1, 0)
    st.after_failure(msg("a"), refused(MX1), 0)
    st.before_connect(msg("z"), MX2, 0)
    st.after_success(msg("z"), MX2, 0)
    b = msg("b", arrival=100)
    held = st.before_connect(b, MX1, 100)
    assert held is not None
    assert st.after_failure(b, held, 100).retry_at == 300
    # with mx2 waiting too (until 100 + 900 = 1000), the earliest host retry time is mx1's 900
    st.before_connect(b, MX2, 100)
    assert st.after_failure(b, refused(MX2), 100).retry_at == 900


def test_exim_host_past_its_cutoff_does_not_bounce_while_the_backup_is_free() -> None:
    # Rule F,1h,15m: mx1 fails at 0, 1800, 3600 (next try 4500), and at 5400 the failing
    # interval 5400 s is past the 1 h cutoff: the record expires, next try 5400 + 900 = 6300.
    policy = preset("exim", retry_rule="F,1h,15m")
    st = policy.start(random.Random(0))
    a = msg("a")
    for n, now in enumerate((0, 1800, 3600, 5400)):
        a = msg("a", attempts=n + 1)
        assert st.before_connect(a, MX1, now) is None
        decision = st.after_failure(a, refused(MX1), now)
    assert decision.bounce == "retry timeout exceeded"  # mx1 was a's only known host
    st.before_connect(msg("z", 5400), MX2, 5400)
    st.after_success(msg("z", 5400), MX2, 5400)  # mx2 delivers
    c = msg("c", arrival=6000)
    assert st.on_arrival(c, 6000).retry_at == 6000
    held = st.before_connect(c, MX1, 6000)
    assert held is not None and held.kind is FailureKind.SUSPENDED
    assert held.text == "retry time not reached (host past its retry cutoff)"
    assert policy.next_mx_allowed(held)
    decision = st.after_failure(c, held, 6000)
    assert decision.bounce is None and decision.retry_at == 7200
    assert st.before_connect(c, MX2, 6000) is None


def test_exim_bounces_without_an_attempt_when_every_host_is_past_its_cutoff() -> None:
    policy = preset("exim", retry_rule="F,1h,15m")
    st = policy.start(random.Random(0))
    decision = None
    for n, now in enumerate((0, 1800, 3600, 5400)):
        _, decision = mx_round(policy, st, msg("a", attempts=n + 1), now, all_down)
    assert decision is not None and decision.bounce == "retry timeout exceeded"
    c = msg("c", arrival=6000)
    late = st.on_arrival(c, 6000)
    assert late.bounce == "retry time not reached for any host after a long failure period"
    held = st.before_connect(c, MX1, 6000)
    assert held is not None
    assert held.text == "retry time not reached for any host after a long failure period"
    assert st.after_failure(c, held, 6000).bounce == late.bounce


# -- Sendmail: host status for one queue run -------------------------------------------------------


def test_sendmail_skips_a_host_down_in_this_queue_run_and_tries_the_backup() -> None:
    policy = preset("sendmail")
    st = policy.start(random.Random(0))
    a, b = msg("a"), msg("b")
    assert st.before_connect(a, MX1, 1800) is None
    st.after_failure(a, refused(MX1), 1800)  # mx1 is down for the rest of the 1800 run
    held = st.before_connect(b, MX1, 1800)
    assert held is not None and held.kind is FailureKind.SUSPENDED
    assert policy.next_mx_allowed(held)
    decision = st.after_failure(b, held, 1800)
    assert decision.bounce is None and decision.retry_at == 3600
    assert st.before_connect(b, MX2, 1800) is None
    log, last = mx_round(policy, st, msg("c"), 1800, primary_down)
    assert log == [(MX1, "Deferred: host status cached in this queue run"), (MX2, "connect")]
    assert last is None


# -- Postfix and per-message policies: no per-host skipping ----------------------------------------


def test_postfix_dead_destination_holds_every_mx_host() -> None:
    policy = preset("postfix")
    st = policy.start(random.Random(0))
    for i in range(2):
        log, _ = mx_round(policy, st, msg(f"m{i}"), 0, all_down)  # new mail: isolated, no count
        assert log == [(MX1, "connect"), (MX2, "connect")]
    # The retry round at 300, one message at a time: four refusals (two per message, one
    # per host) add 1/5 + 1/4 + 1/3 + 1/2 >= 1 failed cohorts: the destination is dead.
    for i in range(2):
        log, _ = mx_round(policy, st, msg(f"m{i}", attempts=3), 300, all_down)
        assert log == [(MX1, "connect"), (MX2, "connect")]
    log, decision = mx_round(policy, st, msg("late", 310), 310, primary_down)
    assert len(log) == 1 and log[0][1].startswith("delivery temporarily suspended")
    assert decision is not None and decision.retry_at == 900  # 310 + 300 - 1 -> the scan at 900


def test_suspensions_of_per_message_policies_do_not_move_on() -> None:
    held = Failure.suspended(MX1, "held")
    for name in ("postfix", "postfix-legacy", "qmail", "gmail", "rfc5321", "exchange"):
        assert not preset(name).next_mx_allowed(held), name
    for name in ("exim", "sendmail"):
        assert preset(name).next_mx_allowed(held), name
        assert not preset(name).next_mx_allowed(Failure.expired(MX1, "expired")), name
