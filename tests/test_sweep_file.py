"""Sweep files: readable paths, values, and every mistake reported at the sweep file's line (no runs here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from simulator.errors import ScenarioError
from simulator.sweep import load_sweep
from simulator.sweep.paths import PathError, fresh, parse_target
from simulator.sweep.spec import run_key

DATA = Path(__file__).parent / "data" / "sweeps"
STORM = DATA / "storm.yaml"
ROOT = Path(__file__).parent.parent


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"scenario: {STORM}\n" + textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_sweep(path)
    return [str(p) for p in caught.value.problems]


# ---------------------------------------------------------------- paths
def test_paths_name_list_entries_by_name_event_at_server_and_note():
    data = yaml.safe_load(STORM.read_text())
    assert parse_target("servers.mx.preference", data).locations == (("servers", 0, "preference"),)
    assert parse_target("senders.slow.traffic.rate", data).locations == (("senders", 1, "traffic", "rate"),)
    assert parse_target("senders.*.count", data).locations == (("senders", 0, "count"), ("senders", 1, "count"))
    assert parse_target("timeline.fault@mx.fault.per_minute", data).locations == (
        ("timeline", 2, "fault", "per_minute"),
    )
    assert parse_target('timeline."back".at', data).locations == (("timeline", 1, "at"),)
    assert parse_target("timeline.1.at", data).locations == (("timeline", 1, "at"),)


def test_unknown_entries_say_what_exists():
    data = yaml.safe_load(STORM.read_text())
    with pytest.raises(PathError, match=r"no server 'mx2'.*servers are: mx"):
        parse_target("servers.mx2.preference", data)
    with pytest.raises(PathError, match=r"no timeline entry crash@mx; entries are: 0 down@mx, 1 up@mx, 2 fault@mx"):
        parse_target("timeline.crash@mx.at", data)
    with pytest.raises(PathError, match=r"outage\(\) starts at a down or crash entry; timeline\.1 is up"):
        parse_target("outage(up@mx)", data)


def test_a_preset_override_turns_a_preset_name_into_a_mapping_and_anchors_are_not_shared():
    text = (ROOT / "scenarios" / "recovery-storm-undersized.yaml").read_text()
    data = yaml.safe_load(text)
    # the four groups share one traffic mapping through a YAML anchor
    assert data["senders"][0]["traffic"] is data["senders"][1]["traffic"]
    variant = fresh(data)
    parse_target("senders.postfix.traffic.rate", variant).apply(variant, "9/h")
    parse_target("senders.gmail.policy.lifetime", variant).apply(variant, "2h")
    assert [g["traffic"]["rate"] for g in variant["senders"]] == ["9/h", "3/h", "3/h", "3/h"]
    assert variant["senders"][3]["policy"] == {"preset": "gmail", "lifetime": "2h"}
    assert data["senders"][3]["policy"] == "gmail"  # the base is untouched


def test_an_outage_length_moves_its_end_and_everything_after_it():
    data = yaml.safe_load(STORM.read_text())
    target = parse_target("outage(down@mx)", data)
    variant = fresh(data)
    target.apply(variant, "2h30m")
    # down at 06:00, up 2h30m later; the capacity fault that starts with the recovery moves with it
    assert [str(e["at"]) for e in variant["timeline"]] == [
        "2024-03-04 06:00",
        "2024-03-04 08:30:00",
        "2024-03-04 08:30:00",
    ]


# ---------------------------------------------------------------- file errors
def test_an_unknown_path_is_reported_at_its_line(tmp_path):
    path = write(
        tmp_path,
        """\
        seeds: 2
        axes:
          - {path: timeline.fault@mx.fault.per_minute, values: [2, 4]}
          - {path: servers.mx2.preference, values: [10, 20]}
        metrics: [stranded]
        """,
    )
    assert problems(path) == [
        f"{path}:5: axes.1.path: servers.mx2.preference: no server 'mx2' in servers; servers are: mx"
    ]


def test_a_bad_range_is_reported_at_its_line(tmp_path):
    path = write(
        tmp_path,
        """\
        axes:
          - path: timeline.fault@mx.fault.per_minute
            range: {from: 50, to: 5, step: 5}
          - path: outage(down@mx)
            range: {from: 1h, to: 2h}
        metrics: [stranded]
        """,
    )
    assert problems(path) == [f"{path}:6: axes.1.range: give step (e.g. step: 5) or count (e.g. count: 10), not both"]
    path.write_text(path.read_text().replace("to: 2h}", "to: 2h, count: 3}"))
    assert problems(path) == [
        f"{path}:3: axes.0.range: the range runs backwards: from 50 to 5; put the smaller value first"
    ]
    path.write_text(path.read_text().replace("from: 50, to: 5", "from: 5, to: 50"))
    sweep = load_sweep(path)
    assert [p.columns() for p in sweep.points][:4] == [
        {"per_minute": 5, "outage": 3600.0},
        {"per_minute": 5, "outage": 5400.0},
        {"per_minute": 5, "outage": 7200.0},
        {"per_minute": 10, "outage": 3600.0},
    ]
    assert len(sweep.points) == 10 * 3


def test_a_variant_the_scenario_rejects_is_reported_at_the_axis_line(tmp_path):
    path = write(
        tmp_path,
        """\
        axes:
          - {path: timeline.fault@mx.fault.per_minute, values: [4, -1]}
          - {path: outage(down@mx), values: [2h, 2d]}
        metrics: [stranded]
        """,
    )
    clock = "is outside the clock (2024-03-04 00:00:00 to 2024-03-06 00:00:00)"
    assert problems(path) == [
        # the fault's own rule, told at the line of the axis that set it
        f"{path}:3: axes.0: with per_minute=-1 the scenario is invalid: timeline.2.fault.per_minute: "
        f"must be at least 1, got -1 ({STORM})",
        # a two-day outage pushes the recovery (and the fault starting with it) past the clock's end
        f"{path}:4: axes.1: with outage=2d the scenario is invalid: timeline.1.at: 2024-03-06 06:00:00 {clock} ({STORM})",
        f"{path}:4: axes.1: with outage=2d the scenario is invalid: timeline.2.at: 2024-03-06 06:00:00 {clock} ({STORM})",
    ]


def test_metric_and_key_mistakes(tmp_path):
    path = write(
        tmp_path,
        """\
        seeds: 0
        axes:
          - zip:
              - {path: senders.fast.count, values: [1, 2, 3]}
              - {path: senders.slow.count, values: [1, 2]}
        metrics:
          - strandd
          - recovery_drain_time
          - delivery_delay{sender:nobody}: max
        axis: []
        """,
    )
    assert problems(path) == [
        f"{path}:2: seeds: seeds is a number of seeds from 1 to 10000, or a list of seeds",
        f"{path}:11: axis: unknown key 'axis' (did you mean 'axes'?); the keys here are: "
        "name, description, scenario, seeds, transport, axes, metrics, find, keep",
    ]
    # the schema's mistakes come first; the rest once they are fixed
    path.write_text(path.read_text().replace("axis: []\n", "").replace("seeds: 0\n", ""))
    assert problems(path) == [
        f"{path}:3: axes.0.zip: zipped axes need as many values each; got count 3, count 2",
        f"{path}:5: axes.0.zip.1: two axes are called 'count'; give one a name: (name: ...)",
        f"{path}:7: metrics.0: unknown metric 'strandd'; did you mean 'stranded'? metrics are: "
        + ", ".join(__import__("simulator.schema.thresholds", fromlist=["METRICS"]).METRICS),
        f"{path}:8: metrics.1: recovery_drain_time is a trend: say how to aggregate it, e.g. "
        "{recovery_drain_time: max} (avg, min, max, med or p(N))",
        f"{path}:9: metrics.2: no sender 'nobody'; senders are: fast, slow",
    ]


def test_goal_mistakes(tmp_path):
    path = write(
        tmp_path,
        """\
        find:
          axis: timeline.fault@mx.fault.per_minute
          range: [60, 1]
          metric: recovery_drain_time
          target: "max<=1h"
        """,
    )
    assert problems(path) == [f"{path}:4: find.range: the range runs backwards or is empty: [60, 1]; write [low, high]"]
    path.write_text(path.read_text().replace("[60, 1]", "[1, 60]").replace("max<=1h", "count<=1h"))
    assert problems(path) == [
        f"{path}:6: find: 'count' does not apply to recovery_drain_time (a trend); use avg, min, max, med, p(N), e.g. p(95)<2h"
    ]


def test_the_cli_prints_one_line_per_problem_and_exits_2(tmp_path):
    from typer.testing import CliRunner

    from simulator.cli import app

    path = write(tmp_path, "axes:\n  - {path: servers.mx2.preference, values: [1]}\nmetrics: [stranded]\n")
    result = CliRunner().invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"{path}:3: axes.0.path: servers.mx2.preference: no server 'mx2' in servers; servers are: mx"
    ]


# ---------------------------------------------------------------- points and keys
def test_product_zip_and_seeds_make_the_points(tmp_path):
    sweep = load_sweep(DATA / "grid.yaml")
    assert [p.label() for p in sweep.points] == [
        "per_minute=2, outage=3h, slow_retry=30m",
        "per_minute=2, outage=6h, slow_retry=50m",
        "per_minute=8, outage=3h, slow_retry=30m",
        "per_minute=8, outage=6h, slow_retry=50m",
    ]
    assert sweep.seeds == [3, 4]  # the scenario's seed and the next
    assert [m.column for m in sweep.metrics] == [
        "stranded",
        "delivered_ratio",
        "recovery_drain_time.max",
        "delivery_delay{sender:fast}.p(95)",
    ]
    path = write(
        tmp_path,
        "axes:\n  - {path: timeline.fault@mx.fault.per_minute, range: {from: 2, to: 10, step: 4}}\nmetrics: [stranded]\n",
    )
    assert [p.columns() for p in load_sweep(path).points] == [{"per_minute": 2}, {"per_minute": 6}, {"per_minute": 10}]


def test_the_run_key_changes_with_the_variant_seed_and_version_only():
    sweep = load_sweep(DATA / "grid.yaml")
    a, b = (sweep.variant(p.values) for p in sweep.points[:2])
    again = load_sweep(DATA / "grid.yaml").variant(sweep.points[0].values)
    assert run_key(a, 3, "memory", "1") == run_key(again, 3, "memory", "1")
    keys = {
        run_key(a, 3, "memory", "1"),
        run_key(b, 3, "memory", "1"),
        run_key(a, 4, "memory", "1"),
        run_key(a, 3, "memory", "2"),
    }
    assert len(keys) == 4
