"""Scenario-file policy forms, Exim rule parsing, and rejection messages that say what to change."""

from __future__ import annotations

import random

import pytest
from pydantic import TypeAdapter, ValidationError

from simulator.policies import PolicySpec, build_policy
from simulator.policies.exim_rules import DEFAULT_RULES, RetryRule, next_gap, parse_retry_rules
from simulator.policies.simulate import all_attempts_fail

SPEC = TypeAdapter(PolicySpec)


def message(value: object) -> str:
    with pytest.raises(ValidationError) as info:
        SPEC.validate_python(value)
    return info.value.errors()[0]["msg"]


def test_exim_form_with_queue_runner():
    spec = SPEC.validate_python({"exim": "F,2h,15m; G,16h,1h,1.5; F,4d,6h", "queue_runner": "15m"})
    policy = build_policy(spec)
    assert policy.name == "exim"
    assert all_attempts_fail(policy, hours=3).attempts == (0, 900, 1800, 2700, 3600, 4500, 5400, 6300, 7200, 8100)


def test_exim_form_takes_its_own_rule():
    spec = SPEC.validate_python({"exim": "F,1d,1h"})
    outcome = all_attempts_fail(build_policy(spec), hours=48)
    assert outcome.attempts[:3] == (0, 3600, 7200)
    # The attempt at 86400 is still within the 1 d cutoff (next try 90000); the first queue run
    # past the cutoff (88200) tries the message anyway and bounces it.
    assert outcome.bounce_at == 88200


def test_preset_overrides_route_through_the_params_model():
    spec = SPEC.validate_python({"preset": "postfix", "maximal_queue_lifetime": "2d"})
    assert all_attempts_fail(build_policy(spec), hours=72).bounce_at == 172800
    assert build_policy(SPEC.validate_python("qmail")).name == "qmail"


def test_existing_forms_still_work():
    assert build_policy(SPEC.validate_python({"retry": "5m,15m,1h", "lifetime": "30h"})).name == "schedule"
    spec = SPEC.validate_python({"exponential": {"initial": "5m", "cap": "4h"}, "lifetime": "3d"})
    assert build_policy(spec).name == "exponential"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"exim": "F,2h"}, "must have the form F,<cutoff>,<interval>"),
        ({"exim": "X,2h,15m"}, "must start with F (fixed), G (geometric) or H"),
        ({"exim": "G,16h,1h"}, "G,<cutoff>,<interval>,<multiplier>"),
        ({"exim": "G,16h,1h,fast"}, "the multiplier 'fast' is not a number such as 1.5"),
        ({"exim": "F,2h,-15m"}, "the interval cannot be negative"),
        ({"exim": "F,2h,0s"}, "the interval must be greater than 0s"),
        ({"exim": "F,4d,6h; F,2h,15m"}, "cutoffs must increase"),
        ({"exim": "F,2h,15m", "queue_runner": "-30m"}, "queue_runner: a duration cannot be negative"),
        ({"exim": "F,2h,15m", "queue_runner": 0}, "queue_runner must be greater than 0s"),
        ({"exim": "F,2h,15m", "retry_interval_max": "2d"}, "at most 24h"),
        ({"exim": "F,2h,15m", "retry_rule": "F,1h,5m"}, "give the Exim retry rule once"),
        ({"exim": "F,2h,15m", "queue_runer": "15m"}, "queue_runer: Extra inputs are not permitted"),
        (
            {"preset": "postfix", "maximal_queue_lifetime": "-2d"},
            "maximal_queue_lifetime: a duration cannot be negative",
        ),
        ({"preset": "postfix", "minimal_backoff_time": "2h"}, "larger than maximal_backoff_time"),
        ({"preset": "postfix", "queue_run_delay": 0}, "queue_run_delay must be at least 1s"),
        ({"preset": "exim", "retry_rule": "F,,15m"}, "the cutoff '' is not a duration"),
        ({"preset": "ses", "lifetime": "1d"}, "between 5m and 14h"),
        ({"preset": "microsoft365", "lifetime": "2h"}, "between 12h and 24h"),
        ({"preset": "exchange", "transient_failure_retry_count": 20}, "transient_failure_retry_count"),
        ({"preset": "postfx"}, "unknown retry policy preset 'postfx'; choose one of: exchange"),
        ("sendmial", "unknown retry policy preset 'sendmial'"),
        ({"preset": "postfix", "maximal_queue_lifetim": "2d"}, "maximal_queue_lifetim: Extra inputs"),
        ({"lifetime": "2d"}, "a policy is a preset name"),
    ],
)
def test_invalid_policies_say_what_to_change(value, fragment):
    assert fragment in message(value)


def test_default_rule_parses_to_the_exim_default():
    rules = parse_retry_rules(DEFAULT_RULES)
    assert rules == (
        RetryRule("F", 7200, 900),
        RetryRule("G", 57600, 3600, 1500),
        RetryRule("F", 345600, 21600),
    )
    assert "; ".join(map(str, rules)) == "F,2h,15m; G,16h,1h,1.5; F,4d,6h"
    assert parse_retry_rules("f, 2h, 15m ;g,16h,1h,1.5") == rules[:2]
    assert parse_retry_rules("") == ()


def test_geometric_gap_uses_the_smaller_of_predicted_and_actual_gap():
    rule = RetryRule("G", 57600, 3600, 1500)
    rng = random.Random(0)
    assert next_gap(rule, 900, 1800, rng) == 3600  # last gap below the interval
    assert next_gap(rule, 8100, 9000, rng) == 12150  # 8100 * 1.5, not 9000 * 1.5
    assert next_gap(rule, 18225, 18240, rng) == 27337  # whole seconds, as Exim


def test_randomised_geometric_rule_stays_within_half_and_all_of_the_growth():
    rule = RetryRule("H", 57600, 3600, 2000)
    rng = random.Random(3)
    gaps = {next_gap(rule, 7200, 7200, rng) for _ in range(200)}
    # grown gap 14400: Exim adds (14400-3600)/2 plus a random half of it to the 3600 base.
    assert min(gaps) >= 3600 + 5400 and max(gaps) < 3600 + 10800
    assert len(gaps) > 50


def test_exim_with_h_rule_is_reproducible_per_seed():
    spec = SPEC.validate_python({"exim": "F,2h,15m; H,16h,1h,1.5; F,4d,6h"})
    first = all_attempts_fail(build_policy(spec), seed=1)
    again = all_attempts_fail(build_policy(spec), seed=1)
    assert first.attempts == again.attempts
