"""Out-of-range or inconsistent fault parameters: one line each, with file, line and what to change."""

from __future__ import annotations

import csv
import io
import textwrap

import pytest

from simulator import ScenarioError, load_scenario, run_scenario

HEAD = """\
name: f
clock: {start: 2011-10-26 00:00, end: 2011-10-28 00:00}
servers:
  - {name: mx1, domains: [a.example]}
  - {name: mx2, domains: [a.example], preference: 20}
senders:
  - {name: s, policy: {retry: 10m, lifetime: 1d}, traffic: {at: [2011-10-26 01:00]}}
timeline:
"""


def problems(tmp_path, timeline: str) -> list[str]:
    path = tmp_path / "f.yaml"
    path.write_text(HEAD + textwrap.dedent(timeline))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p).replace(str(path), "f.yaml") for p in info.value.problems]


def test_window_that_ends_before_it_starts(tmp_path):
    found = problems(
        tmp_path,
        """\
      - at: 2011-10-26 05:00
        server: mx1
        event: fault
        until: 2011-10-26 04:00
        fault: {kind: disk-full}
    """,
    )
    assert found == [
        "f.yaml:12: timeline.0.until: the window ends (2011-10-26 04:00:00) before it starts (2011-10-26 05:00:00); until must be after at"
    ]


def test_capacity_zero_and_no_limit(tmp_path):
    found = problems(
        tmp_path,
        """\
      - {at: 2011-10-26 05:00, server: mx1, event: fault, fault: {kind: capacity, sessions: 0}}
      - {at: 2011-10-26 06:00, server: mx1, event: fault, fault: {kind: capacity}}
    """,
    )
    assert found[0] == "f.yaml:9: timeline.0.fault.sessions: must be at least 1, got 0"
    assert found[1].startswith("f.yaml:10: timeline.1.fault: give sessions (concurrent) and/or per_minute")


def test_fraction_above_one_and_codes_out_of_range(tmp_path):
    found = problems(
        tmp_path,
        """\
      - {at: 2011-10-26 05:00, server: mx1, event: fault, fault: {kind: reply, stage: rcpt, code: 451, fraction: 1.5}}
      - {at: 2011-10-26 06:00, server: mx1, event: fault, fault: {kind: reply, stage: rcpt, code: 250}}
      - {at: 2011-10-26 07:00, server: mx1, event: fault, fault: {kind: slow, latency: 0s}}
    """,
    )
    assert found[0] == "f.yaml:9: timeline.0.fault.fraction: must be at most 1, got 1.5"
    assert found[1] == "f.yaml:10: timeline.1.fault.code: must be at least 400, got 250"
    assert found[2].startswith("f.yaml:11: timeline.2.fault: latency must be greater than 0s")


def test_unknown_kind_stage_and_key_name_what_is_allowed(tmp_path):
    found = problems(
        tmp_path,
        """\
      - {at: 2011-10-26 05:00, server: mx1, event: fault, fault: {kind: slwo, latency: 5s}}
      - {at: 2011-10-26 06:00, server: mx1, event: fault, fault: {kind: reply, stage: rcp, code: 451}}
      - {at: 2011-10-26 07:00, server: mx1, event: fault, fault: {kind: slow, latency: 5s, stag: rcpt}}
      - {at: 2011-10-26 08:00, server: mx1, event: fault, fault: {stage: rcpt}}
    """,
    )
    kinds = "reply, accept-then-drop, slow, disk-full, greylist, capacity, fail-first, delivery-queue"
    assert found == [
        f"f.yaml:9: timeline.0.fault.kind: unknown value 'slwo' (did you mean 'slow'?); use one of: {kinds}",
        "f.yaml:10: timeline.1.fault.stage: unknown value 'rcp' (did you mean 'rcpt'?); use one of: ehlo, mail, rcpt, data, dot",
        "f.yaml:11: timeline.2.fault.stag: unknown key 'stag' (did you mean 'stage'?); the keys here are: kind, latency, stage",
        f"f.yaml:12: timeline.3.fault.kind: required key is missing; use one of: {kinds}",
    ]


def test_relay_without_a_more_preferred_mx_and_dns_to_unknown_server(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text(
        HEAD.replace(
            "{name: mx1, domains: [a.example]}",
            "{name: mx1, domains: [a.example], preference: 5, relay: {policy: postfix}}",
        )
        + "  - {at: 2011-10-26 05:00, event: dns, domain: a.example, mx: [mx3]}\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    found = [str(p).replace(str(path), "f.yaml") for p in info.value.problems]
    assert found[0].startswith("f.yaml:4: servers.0.relay: mx1 relays to more preferred MX hosts")
    assert found[1] == "f.yaml:9: timeline.0.mx.0: no server named 'mx3'; servers are: mx1, mx2"


def test_ledger_columns_show_duplicates_late_recovery_and_mx_fallback(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text(
        HEAD.replace(
            "{name: mx1, domains: [a.example]}", "{name: mx1, domains: [a.example], initially: refuse}"
        ).replace("traffic: {at: [2011-10-26 01:00]}", "traffic: {at: [2011-10-26 01:00, 2011-10-26 03:00]}")
        + textwrap.dedent("""\
      - {at: 2011-10-26 00:00, server: mx2, event: fault, until: 2011-10-26 01:05, fault: {kind: accept-then-drop}}
      - {at: 2011-10-26 02:00, server: mx2, event: backup}
      - {at: 2011-10-26 04:00, server: mx2, event: crash}
      - {at: 2011-10-26 06:00, server: mx2, event: recover-disk}
    """)
    )
    result = run_scenario(path, transport="memory", out=tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "messages.csv").read_text())))
    first, second = rows
    assert (first["accepted_by"], first["copies"], first["final_state"]) == (
        "mx2",
        "2",
        "delivered",
    )  # next MX, duplicate
    assert (second["accepted_by"], second["final_state"], second["final_at"]) == (
        "mx2",
        "delivered",
        "2011-10-26T06:00:00",
    )  # late
    assert result.summary()["duplicates"] == 1
