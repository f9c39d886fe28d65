"""Presets reproduce the reference retry schedules exactly (every attempt fails).

The expected offsets are copied from retry-schedules-computed.txt (the
reference beside retry-policies.md); the reference assumes the scan or
queue-runner grid is aligned with the message's arrival, i.e. arrival 0.
"""

from __future__ import annotations

import pytest

from simulator.policies import PRESETS, FailureKind, Timeouts, preset_names
from simulator.policies.simulate import all_attempts_fail


def policy(name: str, **settings: object):
    """Build preset *name* with *settings* overriding its defaults."""
    preset = PRESETS[name]
    return preset.build(preset.params.model_validate(settings))


# fmt: off
# Postfix defaults (300/300/4000), scan grid aligned with arrival, 72 h: 66 attempts
POSTFIX = (
    0, 300, 600, 1200, 2400, 4800, 9000, 13200, 17400, 21600, 25800, 30000, 34200, 38400, 42600,
    46800, 51000, 55200, 59400, 63600, 67800, 72000, 76200, 80400, 84600, 88800, 93000, 97200,
    101400, 105600, 109800, 114000, 118200, 122400, 126600, 130800, 135000, 139200, 143400,
    147600, 151800, 156000, 160200, 164400, 168600, 172800, 177000, 181200, 185400, 189600,
    193800, 198000, 202200, 206400, 210600, 214800, 219000, 223200, 227400, 231600, 235800,
    240000, 244200, 248400, 252600, 256800,
)
# Postfix defaults, deferred-scan phase 150 s
POSTFIX_PHASE_150 = (
    0, 450, 1050, 2250, 4650, 8850, 13050, 17250, 21450, 25650, 29850, 34050, 38250, 42450,
    46650, 50850, 55050, 59250, 63450, 67650, 71850, 76050, 80250, 84450, 88650, 92850, 97050,
    101250, 105450, 109650, 113850, 118050, 122250, 126450, 130650, 134850, 139050, 143250,
    147450, 151650, 155850, 160050, 164250, 168450, 172650, 176850, 181050, 185250, 189450,
    193650, 197850, 202050, 206250, 210450, 214650, 218850, 223050, 227250, 231450, 235650,
    239850, 244050, 248250, 252450, 256650,
)
# Postfix defaults, with smtp_connect_timeout-like 30 s attempt cost, phase 0
POSTFIX_COST_30 = (
    0, 600, 1500, 3300, 6900, 11100, 15300, 19500, 23700, 27900, 32100, 36300, 40500, 44700,
    48900, 53100, 57300, 61500, 65700, 69900, 74100, 78300, 82500, 86700, 90900, 95100, 99300,
    103500, 107700, 111900, 116100, 120300, 124500, 128700, 132900, 137100, 141300, 145500,
    149700, 153900, 158100, 162300, 166500, 170700, 174900, 179100, 183300, 187500, 191700,
    195900, 200100, 204300, 208500, 212700, 216900, 221100, 225300, 229500, 233700, 237900,
    242100, 246300, 250500, 254700, 258900,
)
# Postfix, beyond 72h: when does it bounce? (horizon 6 d)
POSTFIX_6D = (
    0, 300, 600, 1200, 2400, 4800, 9000, 13200, 17400, 21600, 25800, 30000, 34200, 38400, 42600,
    46800, 51000, 55200, 59400, 63600, 67800, 72000, 76200, 80400, 84600, 88800, 93000, 97200,
    101400, 105600, 109800, 114000, 118200, 122400, 126600, 130800, 135000, 139200, 143400,
    147600, 151800, 156000, 160200, 164400, 168600, 172800, 177000, 181200, 185400, 189600,
    193800, 198000, 202200, 206400, 210600, 214800, 219000, 223200, 227400, 231600, 235800,
    240000, 244200, 248400, 252600, 256800, 261000, 265200, 269400, 273600, 277800, 282000,
    286200, 290400, 294600, 298800, 303000, 307200, 311400, 315600, 319800, 324000, 328200,
    332400, 336600, 340800, 345000, 349200, 353400, 357600, 361800, 366000, 370200, 374400,
    378600, 382800, 387000, 391200, 395400, 399600, 403800, 408000, 412200, 416400, 420600,
    424800, 429000, 433200,
)
# Postfix <= 2.3 defaults (queue_run_delay=1000, min_backoff=1000, max_backoff=4000)
POSTFIX_LEGACY = (
    0, 1000, 2000, 4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000, 36000, 40000, 44000,
    48000, 52000, 56000, 60000, 64000, 68000, 72000, 76000, 80000, 84000, 88000, 92000, 96000,
    100000, 104000, 108000, 112000, 116000, 120000, 124000, 128000, 132000, 136000, 140000,
    144000, 148000, 152000, 156000, 160000, 164000, 168000, 172000, 176000, 180000, 184000,
    188000, 192000, 196000, 200000, 204000, 208000, 212000, 216000, 220000, 224000, 228000,
    232000, 236000, 240000, 244000, 248000, 252000, 256000,
)
# Exim default rule with Debian's -q30m (runs at 0, 30m, 60m, ...), 72 h
EXIM_Q30 = (
    0, 1800, 3600, 5400, 7200, 9000, 12600, 18000, 27000, 39600, 59400, 81000, 102600, 124200,
    145800, 167400, 189000, 210600, 232200, 253800,
)
# Exim default rule, queue runner every 15 min
EXIM_Q15 = (
    0, 900, 1800, 2700, 3600, 4500, 5400, 6300, 7200, 8100, 11700, 17100, 25200, 37800, 56700,
    84600, 106200, 127800, 149400, 171000, 192600, 214200, 235800, 257400,
)
# Exim default rule, 'ideal' (queue runner every 60 s) = pure rule times
EXIM_Q1 = (
    0, 900, 1800, 2700, 3600, 4500, 5400, 6300, 7200, 8100, 11700, 17100, 25200, 37380, 55620,
    82980, 104580, 126180, 147780, 169380, 190980, 212580, 234180, 255780,
)
# Exim default rule, -q30m, beyond 72h (horizon 5 d): bounce time
EXIM_Q30_5D = (
    0, 1800, 3600, 5400, 7200, 9000, 12600, 18000, 27000, 39600, 59400, 81000, 102600, 124200,
    145800, 167400, 189000, 210600, 232200, 253800, 275400, 297000, 318600, 340200,
    # 4 d (345600 s) is on the grid, not past it: the first queue run past the final cutoff is
    # 347400, which tries the message although the host waits until 361800, and bounces it.
    347400,
)
# qmail remote channel (chanskip 20), first attempt at 0
QMAIL = (
    0, 400, 1600, 3600, 6400, 10000, 14400, 19600, 25600, 32400, 40000, 48400, 57600, 67600,
    78400, 90000, 102400, 115600, 129600, 144400, 160000, 176400, 193600, 211600, 230400, 250000,
)
# qmail remote channel, beyond 72h (horizon 8 d): bounce time
QMAIL_8D = (
    0, 400, 1600, 3600, 6400, 10000, 14400, 19600, 25600, 32400, 40000, 48400, 57600, 67600,
    78400, 90000, 102400, 115600, 129600, 144400, 160000, 176400, 193600, 211600, 230400,
    250000, 270400, 291600, 313600, 336400, 360000, 384400, 409600, 435600, 462400, 490000,
    518400, 547600, 577600, 608400,
)
# qmail local channel (chanskip 10)
QMAIL_LOCAL = (
    0, 100, 400, 900, 1600, 2500, 3600, 4900, 6400, 8100, 10000, 12100, 14400, 16900, 19600,
    22500, 25600, 28900, 32400, 36100, 40000,
)
# Exchange 2016/2019 Mailbox server transport defaults (inferred sequencing)
EXCHANGE = (
    0, 60, 120, 180, 240, 540, 840, 1140, 1440, 1740, 2040, 2640, 3240, 3840, 4440, 5040, 5640,
    6240, 6840, 7440, 8040, 8640, 9240, 9840, 10440, 11040, 11640, 12240, 12840, 13440, 14040,
    14640, 15240, 15840, 16440, 17040, 17640, 18240, 18840, 19440, 20040, 20640, 21240, 21840,
    22440, 23040, 23640, 24240, 24840, 25440, 26040, 26640, 27240, 27840, 28440, 29040, 29640,
    30240, 30840, 31440, 32040, 32640, 33240, 33840, 34440, 35040, 35640, 36240, 36840, 37440,
    38040, 38640, 39240, 39840, 40440, 41040, 41640, 42240, 42840, 43440, 44040, 44640, 45240,
    45840, 46440, 47040, 47640, 48240, 48840, 49440, 50040, 50640, 51240, 51840, 52440, 53040,
    53640, 54240, 54840, 55440, 56040, 56640, 57240, 57840, 58440, 59040, 59640, 60240, 60840,
    61440, 62040, 62640, 63240, 63840, 64440, 65040, 65640, 66240, 66840, 67440, 68040, 68640,
    69240, 69840, 70440, 71040, 71640, 72240, 72840, 73440, 74040, 74640, 75240, 75840, 76440,
    77040, 77640, 78240, 78840, 79440, 80040, 80640, 81240, 81840, 82440, 83040, 83640, 84240,
    84840, 85440, 86040, 86640, 87240, 87840, 88440, 89040, 89640, 90240, 90840, 91440, 92040,
    92640, 93240, 93840, 94440, 95040, 95640, 96240, 96840, 97440, 98040, 98640, 99240, 99840,
    100440, 101040, 101640, 102240, 102840, 103440, 104040, 104640, 105240, 105840, 106440,
    107040, 107640, 108240, 108840, 109440, 110040, 110640, 111240, 111840, 112440, 113040,
    113640, 114240, 114840, 115440, 116040, 116640, 117240, 117840, 118440, 119040, 119640,
    120240, 120840, 121440, 122040, 122640, 123240, 123840, 124440, 125040, 125640, 126240,
    126840, 127440, 128040, 128640, 129240, 129840, 130440, 131040, 131640, 132240, 132840,
    133440, 134040, 134640, 135240, 135840, 136440, 137040, 137640, 138240, 138840, 139440,
    140040, 140640, 141240, 141840, 142440, 143040, 143640, 144240, 144840, 145440, 146040,
    146640, 147240, 147840, 148440, 149040, 149640, 150240, 150840, 151440, 152040, 152640,
    153240, 153840, 154440, 155040, 155640, 156240, 156840, 157440, 158040, 158640, 159240,
    159840, 160440, 161040, 161640, 162240, 162840, 163440, 164040, 164640, 165240, 165840,
    166440, 167040, 167640, 168240, 168840, 169440, 170040, 170640, 171240, 171840, 172440,
)
# Exchange Edge Transport defaults (transient 10 min, outbound 30 min)
EXCHANGE_EDGE = (
    0, 60, 120, 180, 240, 840, 1440, 2040, 2640, 3240, 3840, 5640, 7440, 9240, 11040, 12840,
    14640, 16440, 18240, 20040, 21840, 23640, 25440, 27240, 29040, 30840, 32640, 34440, 36240,
    38040, 39840, 41640, 43440, 45240, 47040, 48840, 50640, 52440, 54240, 56040, 57840, 59640,
    61440, 63240, 65040, 66840, 68640, 70440, 72240, 74040, 75840, 77640, 79440, 81240, 83040,
    84840, 86640, 88440, 90240, 92040, 93840, 95640, 97440, 99240, 101040, 102840, 104640,
    106440, 108240, 110040, 111840, 113640, 115440, 117240, 119040, 120840, 122640, 124440,
    126240, 128040, 129840, 131640, 133440, 135240, 137040, 138840, 140640, 142440, 144240,
    146040, 147840, 149640, 151440, 153240, 155040, 156840, 158640, 160440, 162240, 164040,
    165840, 167640, 169440, 171240,
)
# Sendmail, -q30m, defaults (every queue run retries)
SENDMAIL_12H = (
    0, 1800, 3600, 5400, 7200, 9000, 10800, 12600, 14400, 16200, 18000, 19800, 21600, 23400,
    25200, 27000, 28800, 30600, 32400, 34200, 36000, 37800, 39600, 41400, 43200,
)
# Sendmail, -q30m, to bounce (horizon 6 d)
SENDMAIL_6D = (
    0, 1800, 3600, 5400, 7200, 9000, 10800, 12600, 14400, 16200, 18000, 19800, 21600, 23400,
    25200, 27000, 28800, 30600, 32400, 34200, 36000, 37800, 39600, 41400, 43200, 45000, 46800,
    48600, 50400, 52200, 54000, 55800, 57600, 59400, 61200, 63000, 64800, 66600, 68400, 70200,
    72000, 73800, 75600, 77400, 79200, 81000, 82800, 84600, 86400, 88200, 90000, 91800, 93600,
    95400, 97200, 99000, 100800, 102600, 104400, 106200, 108000, 109800, 111600, 113400, 115200,
    117000, 118800, 120600, 122400, 124200, 126000, 127800, 129600, 131400, 133200, 135000,
    136800, 138600, 140400, 142200, 144000, 145800, 147600, 149400, 151200, 153000, 154800,
    156600, 158400, 160200, 162000, 163800, 165600, 167400, 169200, 171000, 172800, 174600,
    176400, 178200, 180000, 181800, 183600, 185400, 187200, 189000, 190800, 192600, 194400,
    196200, 198000, 199800, 201600, 203400, 205200, 207000, 208800, 210600, 212400, 214200,
    216000, 217800, 219600, 221400, 223200, 225000, 226800, 228600, 230400, 232200, 234000,
    235800, 237600, 239400, 241200, 243000, 244800, 246600, 248400, 250200, 252000, 253800,
    255600, 257400, 259200, 261000, 262800, 264600, 266400, 268200, 270000, 271800, 273600,
    275400, 277200, 279000, 280800, 282600, 284400, 286200, 288000, 289800, 291600, 293400,
    295200, 297000, 298800, 300600, 302400, 304200, 306000, 307800, 309600, 311400, 313200,
    315000, 316800, 318600, 320400, 322200, 324000, 325800, 327600, 329400, 331200, 333000,
    334800, 336600, 338400, 340200, 342000, 343800, 345600, 347400, 349200, 351000, 352800,
    354600, 356400, 358200, 360000, 361800, 363600, 365400, 367200, 369000, 370800, 372600,
    374400, 376200, 378000, 379800, 381600, 383400, 385200, 387000, 388800, 390600, 392400,
    394200, 396000, 397800, 399600, 401400, 403200, 405000, 406800, 408600, 410400, 412200,
    414000, 415800, 417600, 419400, 421200, 423000, 424800, 426600, 428400, 430200,
)
# fmt: on


PRESET_NAMES = {
    "postfix",
    "postfix-legacy",
    "exim",
    "sendmail",
    "qmail",
    "exchange",
    "exchange-edge",
    "gmail",
    "microsoft365",
    "mailgun",
    "sendgrid",
    "ses",
    "rfc5321",
}


def test_every_required_preset_is_registered():
    assert set(preset_names()) >= PRESET_NAMES


@pytest.mark.parametrize("name", sorted(PRESET_NAMES))
def test_every_preset_cites_its_source(name):
    preset = PRESETS[name]
    built = policy(name)
    assert built.name == name
    assert len(built.source) > 40
    assert isinstance(built.timeouts, Timeouts)
    assert preset.summary and preset.params.__doc__


@pytest.mark.parametrize(
    ("name", "settings", "hours", "cost", "expected"),
    [
        ("postfix", {}, 72, 0, POSTFIX),
        ("postfix", {"scan_phase": "150s"}, 72, 0, POSTFIX_PHASE_150),
        ("postfix", {}, 72, 30, POSTFIX_COST_30),
        ("postfix-legacy", {}, 72, 0, POSTFIX_LEGACY),
        ("exim", {}, 72, 0, EXIM_Q30),
        ("exim", {"queue_runner": "15m"}, 72, 0, EXIM_Q15),
        ("exim", {"queue_runner": "60s"}, 72, 0, EXIM_Q1),
        ("qmail", {}, 72, 0, QMAIL),
        ("qmail", {"chanskip": 10}, 12, 0, QMAIL_LOCAL),
        ("exchange", {}, 72, 0, EXCHANGE),
        ("exchange-edge", {}, 72, 0, EXCHANGE_EDGE),
        ("sendmail", {}, 12, 0, SENDMAIL_12H),
    ],
    ids=[
        "postfix",
        "postfix-phase150",
        "postfix-cost30",
        "postfix-legacy",
        "exim-q30m",
        "exim-q15m",
        "exim-q60s",
        "qmail",
        "qmail-local",
        "exchange",
        "exchange-edge",
        "sendmail-q30m",
    ],
)
def test_offsets_match_the_reference(name, settings, hours, cost, expected):
    outcome = all_attempts_fail(policy(name, **settings), hours=hours, attempt_cost=cost)
    assert outcome.attempts == tuple(float(t) for t in expected)
    assert outcome.suspended == ()


def test_postfix_bounces_at_the_first_attempt_after_five_days():
    outcome = all_attempts_fail(policy("postfix"), hours=144)
    assert outcome.attempts == tuple(float(t) for t in POSTFIX_6D)
    assert outcome.bounce_at == 433200
    assert outcome.bounce_status == "4.4.7"
    assert "expired" in outcome.bounce_reason
    assert outcome.warnings == ()


def test_postfix_delay_warning_goes_with_the_first_attempt_after_four_hours():
    outcome = all_attempts_fail(policy("postfix", delay_warning_time="4h"), hours=72)
    assert outcome.warnings == (17400.0,)


def test_exim_bounces_after_four_days_of_host_failure_with_warnings_every_day():
    outcome = all_attempts_fail(policy("exim"), hours=120)
    assert outcome.attempts == tuple(float(t) for t in EXIM_Q30_5D)
    assert outcome.warnings == (102600.0, 189000.0, 275400.0)
    assert outcome.bounce_at == 347400  # 96.5 h, not the host's next retry time (100.5 h)
    assert outcome.bounce_reason == "retry timeout exceeded"


@pytest.mark.parametrize(
    ("runner", "warnings"),
    [("30m", (102600.0, 189000.0)), ("15m", (106200.0, 192600.0)), ("60s", (104580.0, 190980.0))],
)
def test_exim_delay_warnings_match_the_reference(runner, warnings):
    outcome = all_attempts_fail(policy("exim", queue_runner=runner), hours=72)
    assert outcome.warnings == warnings


def test_exim_queue_runner_phase():
    outcome = all_attempts_fail(policy("exim", queue_runner_phase="15m"), hours=120)
    assert outcome.attempts[:12] == (0, 900, 2700, 4500, 6300, 8100, 11700, 17100, 26100, 38700, 58500, 80100)
    # Runs at 900 + 1800k: the first past 4 d (345600 s) is 346500 (the host would wait until 360900).
    assert outcome.bounce_at == 346500


def test_exim_bounces_at_the_first_queue_run_past_the_cutoff_as_the_real_exim_did():
    # real-mtas.md: Exim 4.96, rule F,40s,4s; G,2m,8s,2, exim -q4s, the server refusing: it
    # connects at the host's retry times and bounces at the first queue run after the final
    # cutoff (121 s), not at the host's next retry time (161 s).
    exim = policy("exim", retry_rule="F,40s,4s; G,2m,8s,2", queue_runner="4s", queue_runner_phase="1s", delay_warning=0)
    outcome = all_attempts_fail(exim, hours=1)
    # F: every 4 s on the runs at 1 + 4k until 40 s of failure; G: gaps 8, 16, 32 (then 64).
    assert outcome.attempts == (0, *range(5, 42, 4), 49, 65, 97, 121)
    assert outcome.bounce_at == 121
    assert outcome.bounce_reason == "retry timeout exceeded"


def test_qmail_bounces_at_its_first_attempt_after_the_queue_lifetime():
    outcome = all_attempts_fail(policy("qmail"), hours=192)
    assert outcome.attempts == tuple(float(t) for t in QMAIL_8D)
    assert outcome.bounce_at == 608400
    assert outcome.warnings == ()


@pytest.mark.parametrize("name", ["exchange", "exchange-edge"])
def test_exchange_returns_the_message_at_two_days_without_connecting(name):
    outcome = all_attempts_fail(policy(name), hours=72)
    assert outcome.bounce_at == 172800
    assert outcome.bounce_status == "4.4.7"
    assert max(outcome.attempts) < 172800
    # The delay DSN goes with the first failure at or after 4 h (14400 s).
    assert len(outcome.warnings) == 1 and 14400 <= outcome.warnings[0] < 14400 + 1800


def test_sendmail_warns_at_four_hours_and_returns_at_five_days():
    outcome = all_attempts_fail(policy("sendmail"), hours=144)
    assert outcome.attempts == tuple(float(t) for t in SENDMAIL_6D)
    assert outcome.warnings == (14400.0,)
    assert outcome.bounce_at == 432000


def test_mailgun_follows_its_published_schedule():
    outcome = all_attempts_fail(policy("mailgun"), hours=72)
    assert outcome.attempts == (0, 600, 1500, 3300, 6900, 14100, 28500)
    assert outcome.bounce_at == 28800


@pytest.mark.parametrize(
    ("name", "window"),
    [("gmail", 172800), ("microsoft365", 86400), ("ses", 43200), ("sendgrid", 259200), ("mailgun", 28800)],
)
def test_providers_give_up_when_their_window_closes(name, window):
    outcome = all_attempts_fail(policy(name), hours=96)
    assert outcome.bounce_at == window
    assert all(t < window for t in outcome.attempts)


def test_gmail_starts_with_the_measured_retry_times():
    outcome = all_attempts_fail(policy("gmail"), hours=72)
    assert outcome.attempts[:6] == (0, 362, 1742, 3396, 5924, 9723)
    assert outcome.warnings[0] >= 3600


def test_rfc5321_retries_after_30_minutes_then_every_two_hours_for_five_days():
    outcome = all_attempts_fail(policy("rfc5321"), hours=144)
    assert outcome.attempts[:4] == (0, 1800, 9000, 16200)
    assert min(outcome.gaps) >= 1800
    assert outcome.bounce_at is not None and 432000 <= outcome.bounce_at < 432000 + 7200


@pytest.mark.parametrize("name", sorted(PRESET_NAMES))
def test_a_5xx_to_rcpt_bounces_at_once(name):
    outcome = all_attempts_fail(policy(name), failure=FailureKind.PERMFAIL)
    assert outcome.attempts == (0,)
    assert outcome.bounce_at == 0
    assert outcome.bounce_status == "5.1.1"  # the reply's own enhanced status: "550 5.1.1 User unknown"
