"""``smtp-outage fidelity`` on a recorded real run (no Postfix needed).

``tests/data/fidelity`` holds what the command reads of one real run: the
maillog of a private Postfix 3.7.11 (timers 4 s / 32 s / 4 s, lifetime 2
min) that relayed ten messages to ``serve scenarios/live/short-outage.yaml
--speed 10`` (refused for 12 s, 421 for 12 s, then up), and that run's
``summary.json``, ``timeline.json`` and timeline events. The log was written
in UTC in 2026.

Worked out by hand from the log: the messages arrived at 3 s (3) and 4 s
(7) after simulated second 0 (its whole second, 00:38:44); the first retries
fell at 7 s, so the scan grid is 3 + 4k; retries at 7, 11, 19 (refused,
refused, 421) and 35 (up since 24 s): delivered.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from simulator.cli import app
from simulator.live.fidelity import compare_log, parse_preset

DATA = Path(__file__).parent / "data" / "fidelity"
PRESET = "{preset: postfix, queue_run_delay: 4s, minimal_backoff_time: 4s, maximal_backoff_time: 32s, maximal_queue_lifetime: 2m, smtp_connect_timeout: 2s}"
runner = CliRunner()


def _fidelity(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["fidelity", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_recorded_real_postfix_agrees_with_the_preset() -> None:
    from datetime import UTC

    found = compare_log(DATA / "maillog", parse_preset(PRESET), DATA, year=2026, zone=UTC)
    assert (found.phase, found.server, found.speed) == (3.0, "mx", 10.0)
    assert [m.arrived for m in found.messages] == [3.0] * 3 + [4.0] * 7
    for message in found.messages:
        assert [t for t, _ in message.real] == [message.arrived, 7, 11, 19, 35]
        assert message.real == [(t, c) for t, c in message.real]
        assert [t for t, _ in message.model] == [message.arrived, 7, 11, 19, 35]
        assert (message.real_final, message.real_final_at, message.model_final, message.model_final_at) == (
            "sent",
            35.0,
            "delivered",
            35.0,
        )
        assert message.verdict == "agrees"
    # The first round: all ten connect (new mail); then four per round until the server is up.
    assert [(r.at, r.real_connected, r.real_suspended, r.model_connected, r.model_suspended) for r in found.rounds] == [
        (3.0, 3, 0, 3, 0),
        (4.0, 7, 0, 7, 0),
        (7.0, 4, 6, 4, 6),
        (11.0, 4, 6, 4, 6),
        (19.0, 4, 6, 4, 6),
        (35.0, 10, 0, 10, 0),
    ]
    totals = found.totals()
    assert (totals["agree"], totals["real_connections"], totals["model_connections"]) == (10, 32, 32)
    assert (totals["timing_error_max"], totals["rounds_within_one"]) == (0.0, 6)


def test_the_command_prints_the_table_and_exits_0_when_all_agree() -> None:
    code, out, err = _fidelity(
        str(DATA / "maillog"), "--results", str(DATA), "--preset", PRESET, "--year", "2026", "--timezone", "UTC"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert "scan phase 3s (from the retries in the log: 40 of 40 fell on it)" in lines[0]
    assert " ".join(lines[2].split()) == "9A53520C324 3 3 7 11 19 35 3 7 11 19 35 0s sent 35 / delivered 35 agrees"
    assert "totals: 10 of 10 agree; attempts real 50, model 50; connections real 32, model 32" in out
    assert out.rstrip().endswith("6 of 6 rounds within one connection of the model")


def test_a_preset_that_does_not_match_exits_99() -> None:
    # Twice the backoff: the retries come at 3 + 8-ish, not at 7, 11, 19.
    slower = PRESET.replace("minimal_backoff_time: 4s", "minimal_backoff_time: 8s")
    code, out, _ = _fidelity(
        str(DATA / "maillog"), "--results", str(DATA), "--preset", slower, "--year", "2026", "--timezone", "UTC"
    )
    assert code == 99
    assert "differs:" in out and "totals: 0 of 10 agree" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    args = ["--year", "2026", "--timezone", "UTC"]
    code, _, err = _fidelity(str(DATA / "maillog"), "--results", str(DATA), "--preset", "{preset: postfixx}", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("--preset: unknown retry policy preset 'postfixx'")
    replay = tmp_path / "replay"
    shutil.copytree(DATA, replay)
    summary = (replay / "summary.json").read_text().replace('"live"', '"not_live"')
    (replay / "summary.json").write_text(summary)
    code, _, err = _fidelity(str(DATA / "maillog"), "--results", str(replay), "--preset", PRESET, *args)
    assert (code, err.strip()) == (2, f"{replay / 'summary.json'}: not a live run: written by run, not serve")
    code, _, err = _fidelity(str(tmp_path / "nothing.log"), "--results", str(DATA), "--preset", PRESET, *args)
    assert (code, err.strip()) == (2, f"{tmp_path / 'nothing.log'}: no such log file")
