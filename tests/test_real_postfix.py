"""A real Postfix against a live server, held to the ``postfix`` preset (under a minute of real time).

A private Postfix 3.7 (``simulator.live.postfix``: a temp dir, no listener,
/etc/postfix untouched, timers of 4 s / 32 s / 4 s) relays ten messages to
``serve_scenario`` on 127.0.0.1 port 0 while the server refuses, then greets
with 421, then comes up. Its maillog is read back and compared with the
preset on the same timeline (``smtp-outage fidelity``): every real attempt
within 1 s of the prediction once the scan phase is taken from the first
retry, the same ends, each retry round's connections within one of the
model's. Every process the test starts is stopped by PID, pass or fail.

`.ci/run` installs Debian's postfix and sets SMTP_OUTAGE_REQUIRE_POSTFIX=1,
so in CI this test fails rather than skips without it; elsewhere (no root,
no package) it is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from simulator import Scenario
from simulator.live.fidelity import compare_log, parse_preset
from simulator.live.postfix import SCALED_TIMERS, relay_through_postfix, unavailable
from simulator.loader import load_scenario

pytestmark = [pytest.mark.wire, pytest.mark.asyncio]

SPEED = 10  # simulated seconds per real second
PRESET = (
    "{preset: postfix, "
    + ", ".join(f"{k}: {v}" for k, v in SCALED_TIMERS.items() if k != "bounce_queue_lifetime")
    + "}"
)


def _require_postfix() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("SMTP_OUTAGE_REQUIRE_POSTFIX") == "1":
        pytest.fail(f"a real Postfix is needed here: {reason} (.ci/run installs it)")
    pytest.skip(reason)


def _scenario() -> Scenario:
    """Real seconds at SPEED: refused 0-12, 421 at the greeting 12-24, up from 24; served for 45."""
    return load_scenario(Path(__file__).parents[1] / "scenarios" / "live" / "short-outage.yaml")


async def test_a_real_postfix_agrees_with_the_preset_through_an_outage(tmp_path: Path) -> None:
    _require_postfix()
    live, log = await relay_through_postfix(_scenario(), speed=SPEED, messages=10, out=tmp_path)
    results = tmp_path / "served"
    assert live.stopped_at is None
    fidelity = await asyncio.to_thread(compare_log, log, parse_preset(PRESET), results)
    report = "\n".join(fidelity.lines())
    assert fidelity.phase is not None, report  # taken from the first retry
    assert len(fidelity.messages) == 10, report
    for message in fidelity.messages:
        assert len(message.real) == len(message.model), report
        assert all(error <= 1.0 for error in message.errors), report
        assert message.same_final and message.real_final == "sent", report
    assert fidelity.rounds and all(r.ok for r in fidelity.rounds), report
    # The outage held the mail back: refused, then 421, delivered only after the server came up.
    assert all(len(m.real) >= 4 for m in fidelity.messages), report
    assert all(m.real_final_at is not None and m.real_final_at >= 24 for m in fidelity.messages), report
