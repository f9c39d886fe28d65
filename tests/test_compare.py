"""What-if variants compared message by message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from simulator import run_scenario
from simulator.compare import compare

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def test_atnex_mitigations_save_stranded_and_bounced_mail():
    original = run_scenario(SCENARIOS / "atnex-2011.yaml", transport="memory")
    mitigated = run_scenario(SCENARIOS / "atnex-2011-mitigated.yaml", transport="memory")
    result = compare(original, mitigated)
    assert result.same_messages
    assert original.counts["stranded"] > 50 and original.counts["bounced"] > 200
    # A backup MX queues what the dead primary cannot take, so nobody bounces;
    # hourly backups leave at most an hour of mail on the failed disk.
    assert mitigated.counts["bounced"] == 0
    assert mitigated.counts["stranded"] < 15
    assert result.saved == result.moves.get(("bounced", "delivered"), 0) + result.moves.get(
        ("stranded", "delivered"), 0
    )
    assert result.saved >= original.counts["bounced"] + original.counts["stranded"] - mitigated.counts["stranded"] - 5
    assert result.worse == 0
    # The backup MX really took mail during the outages and relayed it on.
    assert any(r.accepted_by == "backup-mx" for r in mitigated.records)
    assert any(e.type == "relayed" for e in mitigated.events)


SMALL = """\
name: {name}
seed: 3
clock: {{start: 2024-03-04 00:00, end: 2024-03-06 00:00}}
servers: [{{name: mx, domains: [example.com]}}]
timeline:
  - {{at: 2024-03-04 06:00, server: mx, event: backup}}
  - {{at: 2024-03-04 12:00, server: mx, event: crash}}
  - {{at: 2024-03-04 {restore}, server: mx, event: restore}}
senders:
  - {{name: s, count: 2, policy: {{retry: 30m, lifetime: 6h}}, traffic: {{rate: 4/h, until: 2024-03-05 00:00}}}}
"""


def test_cli_compare_names_what_the_variant_saves(tmp_path):
    slow = tmp_path / "slow.yaml"
    fast = tmp_path / "fast.yaml"
    slow.write_text(SMALL.format(name="slow", restore="20:00"))
    fast.write_text(SMALL.format(name="fast", restore="13:00"))
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "compare", str(slow), str(fast), "--memory"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fast: " in proc.stdout and "would have been delivered" in proc.stdout
    assert "bounced -> delivered" in proc.stdout
