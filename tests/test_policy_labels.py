"""Policy labels and the MTA quirks a policy answers for itself.

Expected values are worked out by hand from the presets' defaults and
retry-policies.md (sections 1-5 and 8).
"""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from simulator.policies import PRESETS, Failure, FailureKind, PolicySpec, Stage, build_policy
from simulator.policies.base import RetryPolicy
from simulator.policies.spec import EximSpec, ExponentialSpec, PresetSpec, ScheduleSpec

_SPEC = TypeAdapter[PresetSpec | ScheduleSpec | ExponentialSpec | EximSpec](PolicySpec)


def policy(spec: object) -> RetryPolicy:
    return build_policy(_SPEC.validate_python(spec))


HOST = "mx1.example"
REFUSED = Failure(FailureKind.REFUSED, Stage.CONNECT, HOST, text="Connection refused")
CONNECT_TIMEOUT = Failure(FailureKind.TIMEOUT, Stage.CONNECT, HOST)
GREETING_421 = Failure(FailureKind.TEMPFAIL, Stage.GREETING, HOST, 421, "4.3.2 try later")
GREETING_554 = Failure(FailureKind.PERMFAIL, Stage.GREETING, HOST, 554, "5.3.2 go away")
MAIL_451 = Failure(FailureKind.TEMPFAIL, Stage.MAIL, HOST, 451, "4.3.0 later")
RCPT_550 = Failure(FailureKind.PERMFAIL, Stage.RCPT, HOST, 550, "5.1.1 unknown")
DROPPED_DATA = Failure(FailureKind.DROPPED, Stage.DATA, HOST)
DROPPED_DOT = Failure(FailureKind.DROPPED, Stage.DOT, HOST)
SUSPENDED = Failure.suspended(HOST, "retry time not reached")
EXPIRED = Failure.expired(HOST, "message expired")


# -- labels --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_at_its_defaults_is_labelled_by_its_name(name: str) -> None:
    assert policy(name).label == name
    assert policy({"preset": name}).label == name


def test_an_override_equal_to_the_default_is_not_an_override() -> None:
    assert policy({"preset": "postfix", "maximal_queue_lifetime": "5d"}).label == "postfix"
    assert policy({"preset": "postfix", "maximal_queue_lifetime": 432000}).label == "postfix"
    assert policy({"preset": "exchange", "message_expiration_timeout": "48h"}).label == "exchange"


def test_overrides_are_sorted_by_key_with_formatted_durations() -> None:
    assert policy({"preset": "postfix", "maximal_queue_lifetime": "1d"}).label == "postfix(maximal_queue_lifetime=1d)"
    both = policy({"preset": "postfix", "maximal_queue_lifetime": "86400", "delay_warning_time": "240m"})
    assert both.label == "postfix(delay_warning_time=4h,maximal_queue_lifetime=1d)"
    assert policy({"preset": "postfix", "scan_phase": 150}).label == "postfix(scan_phase=2m30s)"


def test_other_kinds_of_setting_in_a_label() -> None:
    assert policy({"preset": "exim", "delay_after_cutoff": False}).label == "exim(delay_after_cutoff=false)"
    assert policy({"preset": "exim", "delay_warning": "4h:8h:24h"}).label == "exim(delay_warning=4h:8h:1d)"
    assert policy({"preset": "sendmail", "queue_phase": "random"}).label == "sendmail(queue_phase=random)"
    assert policy({"preset": "gmail", "delay_warnings": ""}).label == "gmail(delay_warnings=none)"
    assert policy({"preset": "gmail", "growth": 2}).label == "gmail(growth=2)"
    assert policy({"preset": "exchange", "transient_failure_retry_count": 3}).label == (
        "exchange(transient_failure_retry_count=3)"
    )


def test_exchange_edge_overrides_are_relative_to_the_edge_defaults() -> None:
    assert policy({"preset": "exchange-edge", "transient_failure_retry_interval": "10m"}).label == "exchange-edge"
    assert policy({"preset": "exchange-edge", "transient_failure_retry_interval": "5m"}).label == (
        "exchange-edge(transient_failure_retry_interval=5m)"
    )


def test_exim_rule_form() -> None:
    assert policy({"exim": "F,2h,15m; G,16h,1h,1.5; F,4d,6h"}).label == "exim"
    assert policy({"exim": "f,2h,15m;g,16h,60m,1.5;f,96h,6h"}).label == "exim"
    custom = policy({"exim": "F,1h,10m; F,2d,1h", "queue_runner": "15m"})
    assert custom.label == "exim(queue_runner=15m,retry_rule=F,1h,10m;F,2d,1h)"
    assert custom.label == policy({"preset": "exim", "retry_rule": "F,1h,10m;F,2d,1h", "queue_runner": 900}).label


def test_schedule_labels() -> None:
    assert policy({"retry": "5m,15m,1h", "lifetime": "30h"}).label == "retry(5m,15m,1h;lifetime=1d6h)"
    assert policy({"retry": [300, 900, 3600], "lifetime": 108000}).label == "retry(5m,15m,1h;lifetime=1d6h)"
    full = policy({"retry": "5m", "lifetime": "2d", "repeat_last": False, "warn_after": "4h", "connect_timeout": "1m"})
    assert full.label == "retry(5m;lifetime=2d,connect_timeout=1m,repeat_last=false,warn_after=4h)"
    assert policy({"retry": "5m", "lifetime": "2d", "connect_timeout": "30s"}).label == "retry(5m;lifetime=2d)"


def test_exponential_labels() -> None:
    spec = {"exponential": {"initial": "5m", "factor": 2, "cap": "4h"}, "lifetime": "3d"}
    assert policy(spec).label == "exponential(initial=5m,factor=2,cap=4h;lifetime=3d)"
    spec = {"exponential": {"initial": "5m", "factor": 1.5, "cap": "4h"}, "lifetime": "3d", "greeting_timeout": "1m"}
    assert policy(spec).label == "exponential(initial=5m,factor=1.5,cap=4h;lifetime=3d,greeting_timeout=1m)"


def test_different_settings_give_different_labels() -> None:
    specs: list[object] = [
        "postfix",
        {"preset": "postfix", "maximal_queue_lifetime": "1d"},
        {"preset": "postfix", "maximal_queue_lifetime": "2d"},
        {"preset": "postfix", "delay_warning_time": "1d"},
        "postfix-legacy",
        "exim",
        {"exim": "F,4d,1h"},
        {"retry": "5m", "lifetime": "1d"},
        {"retry": "5m", "lifetime": "1d", "repeat_last": False},
        {"retry": "5m,1h", "lifetime": "1d"},
        {"exponential": {"initial": "5m", "cap": "1h"}, "lifetime": "1d"},
        {"exponential": {"initial": "5m", "cap": "2h"}, "lifetime": "1d"},
    ]
    labels = [policy(spec).label for spec in specs]
    assert len(set(labels)) == len(labels)


def test_name_is_still_the_preset_or_kind() -> None:
    assert policy({"preset": "postfix", "maximal_queue_lifetime": "1d"}).name == "postfix"
    assert policy({"exim": "F,4d,1h"}).name == "exim"
    assert policy({"retry": "5m", "lifetime": "1d"}).name == "schedule"
    assert policy({"exponential": {"initial": "5m", "cap": "1h"}, "lifetime": "1d"}).name == "exponential"


# -- shares_host_failure ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shares_host_failure(name: str) -> None:
    assert policy(name).shares_host_failure is (name in {"exim", "sendmail", "exchange", "exchange-edge"})


def test_generic_policies_do_not_share_host_failures() -> None:
    assert policy({"retry": "5m", "lifetime": "1d"}).shares_host_failure is False
    assert policy({"exponential": {"initial": "5m", "cap": "1h"}, "lifetime": "1d"}).shares_host_failure is False


# -- next_mx_allowed ------------------------------------------------------------------------------

_ALL = (
    REFUSED,
    CONNECT_TIMEOUT,
    GREETING_421,
    GREETING_554,
    MAIL_451,
    RCPT_550,
    DROPPED_DATA,
    DROPPED_DOT,
    SUSPENDED,
    EXPIRED,
)
# Reference section 8, one row per policy, in the order of _ALL.
_Y, _N = True, False
_EXPECTED = {
    "postfix": (_Y, _Y, _Y, _Y, _Y, _N, _Y, _N, _N, _N),
    "postfix-legacy": (_Y, _Y, _Y, _Y, _Y, _N, _Y, _N, _N, _N),
    "exim": (_Y, _Y, _Y, _N, _Y, _N, _Y, _N, _Y, _N),
    "sendmail": (_Y, _Y, _Y, _N, _Y, _N, _Y, _N, _Y, _N),
    "qmail": (_Y, _Y, _N, _N, _N, _N, _N, _N, _N, _N),
    "exchange": (_Y, _Y, _Y, _N, _Y, _N, _Y, _N, _N, _N),
    "exchange-edge": (_Y, _Y, _Y, _N, _Y, _N, _Y, _N, _N, _N),
    "gmail": (_Y, _Y, _Y, _N, _Y, _N, _Y, _N, _N, _N),
    "rfc5321": (_Y, _Y, _Y, _N, _Y, _N, _Y, _N, _N, _N),
}


@pytest.mark.parametrize("name", sorted(_EXPECTED))
def test_next_mx_allowed(name: str) -> None:
    p = policy(name)
    assert tuple(p.next_mx_allowed(f) for f in _ALL) == _EXPECTED[name]


def test_next_mx_allowed_for_generic_policies() -> None:
    for p in (
        policy({"retry": "5m", "lifetime": "1d"}),
        policy({"exponential": {"initial": "5m", "cap": "1h"}, "lifetime": "1d"}),
    ):
        assert tuple(p.next_mx_allowed(f) for f in _ALL) == _EXPECTED["rfc5321"]


def test_a_timeout_waiting_for_the_greeting_moves_on_even_for_qmail() -> None:
    greeting_timeout = Failure(FailureKind.TIMEOUT, Stage.GREETING, HOST)
    assert policy("qmail").next_mx_allowed(greeting_timeout)
    assert policy("postfix").next_mx_allowed(greeting_timeout)
    # a timeout after MAIL moves on for everyone but qmail
    mail_timeout = Failure(FailureKind.TIMEOUT, Stage.MAIL, HOST)
    assert not policy("qmail").next_mx_allowed(mail_timeout)
    assert policy("exim").next_mx_allowed(mail_timeout)


def test_exchange_moves_on_only_from_a_host_skipped_in_the_same_round() -> None:
    skipped = Failure.suspended(HOST, "failed in this connection round", host_only=True)
    assert policy("exchange").next_mx_allowed(skipped)
    assert not policy("exchange").next_mx_allowed(SUSPENDED)
    # per-host skipping is Exchange's only; Postfix's dead destination is the whole domain
    assert not policy("postfix").next_mx_allowed(skipped)


# -- gives_up_after --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "seconds"),
    [
        # Postfix: attempts at 4800 + 4200k; the first at or after 5 d = 432000 s is
        # k = 102: 433200 s (reference 1.4).
        ("postfix", 433200.0),
        # Exim -q30m: "retry timeout exceeded" at the first queue run past 4 d: 96.5 h
        # (the reference's 100.5 h waits for the host's next retry time; the real Exim does not).
        ("exim", 347400.0),
        # Sendmail: the first queue run at or after 5 d returns it.
        ("sendmail", 432000.0),
        # qmail: (20 * 39)^2 = 608400 s, the first attempt after 7 d.
        ("qmail", 608400.0),
        # Exchange: NDR at exactly MessageExpirationTimeout.
        ("exchange", 172800.0),
        ("mailgun", 28800.0),
        ({"preset": "exchange", "message_expiration_timeout": "1d"}, 86400.0),
        # 5m, 15m, then hourly: 0, 300, 1200, 4800, ... 1200 + 3600k >= 108000 at k = 30: 109200.
        ({"retry": "5m,15m,1h", "lifetime": "30h"}, 109200.0),
    ],
)
def test_gives_up_after(spec: object, seconds: float) -> None:
    assert policy(spec).gives_up_after == seconds


def test_gives_up_after_is_none_beyond_thirty_days() -> None:
    assert policy({"retry": "1h", "lifetime": "40d"}).gives_up_after is None
    assert policy({"preset": "postfix", "maximal_queue_lifetime": "31d"}).gives_up_after is None


def test_gives_up_after_is_computed_once_per_policy() -> None:
    p = policy({"preset": "postfix", "maximal_queue_lifetime": "1d"})
    first = p.gives_up_after
    assert first is not None and 86400 <= first < 86400 + 4200
    assert p.__dict__["gives_up_after"] == first  # cached on the object
