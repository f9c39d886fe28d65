"""``smtp-outage policies list|show`` through Typer's test runner (no sockets)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from simulator.policies_cli import policies_app

runner = CliRunner()


def app() -> typer.Typer:
    """The sub-app mounted the way the main CLI mounts it."""
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Root."""

    root.add_typer(policies_app, name="policies")
    return root


def test_list_shows_every_preset():
    result = runner.invoke(app(), ["policies", "list"])
    assert result.exit_code == 0, result.output
    for name in ("postfix", "postfix-legacy", "exim", "qmail", "exchange-edge", "rfc5321", "mailgun"):
        assert name in result.stdout


def test_list_json():
    result = runner.invoke(app(), ["policies", "list", "--json"])
    rows = json.loads(result.stdout)
    assert {row["name"] for row in rows} >= {"postfix", "sendmail", "ses"}
    assert all(row["source"] for row in rows)


def test_show_prints_attempts_and_bounce():
    result = runner.invoke(app(), ["policies", "show", "postfix", "--hours", "144"])
    assert result.exit_code == 0, result.output
    assert "108 attempts" in result.stdout
    assert "433200" in result.stdout
    assert "maximal_queue_lifetime" in result.stdout


def test_show_json_matches_the_reference():
    result = runner.invoke(app(), ["policies", "show", "exim", "--hours", "120", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["attempts"][:7] == [0, 1800, 3600, 5400, 7200, 9000, 12600]
    assert data["warnings"] == [102600, 189000, 275400]
    # The first queue run past the final cutoff (4 d = 345600 s, on the grid) tries and bounces it.
    assert data["bounce"] == {"at": 347400, "reason": "retry timeout exceeded", "status": "4.4.7"}
    assert data["settings"]["queue_runner"] == "30m"
    assert "retry.c" in data["source"]


def test_show_with_overrides_and_attempt_cost():
    result = runner.invoke(
        app(), ["policies", "show", "postfix", "--json", "--cost", "30", "--set", "maximal_queue_lifetime=1d"]
    )
    data = json.loads(result.stdout)
    assert data["attempts"][:6] == [0, 600, 1500, 3300, 6900, 11100]
    assert 86400 <= data["bounce"]["at"] < 86400 + 4200


def test_unknown_preset_is_one_line_on_stderr_with_exit_code_2():
    result = runner.invoke(app(), ["policies", "show", "postfx"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unknown preset 'postfx'; choose one of:")
    assert "Traceback" not in result.output


def test_bad_override_is_a_clear_error():
    result = runner.invoke(app(), ["policies", "show", "exim", "--set", "retry_rule=F,2h"])
    assert result.exit_code == 2
    assert "must have the form F,<cutoff>,<interval>" in result.stderr
    result = runner.invoke(app(), ["policies", "show", "exim", "--set", "queue_runner"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.stderr
