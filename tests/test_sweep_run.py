"""Sweeps that run: values worked out by hand, determinism, the Dask path, resume and Ctrl-C, goal seeking.

The scenarios are tiny (tests/data/sweeps/): ``sawtooth.yaml`` has one
message submitted at 06:00 while its only MX is down (since 05:59); its
sender retries every hour on the hour, so after an outage of length L the
backlog drains at the first full hour after 05:59 + L.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from simulator.sweep import run_sweep
from simulator.sweep.run import local_pool
from simulator.sweep.tables import mean_ci

DATA = Path(__file__).parent / "data" / "sweeps"


@pytest.fixture(scope="module")
def pool():
    """Two local worker processes shared by the tests of this module."""
    shared = local_pool(2)
    yield shared
    shared.close()


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without what differs between two runs of one sweep (wall time)."""
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "kept")} for r in rows]


SAWTOOTH_GRID = f"""\
    name: sawtooth-grid
    scenario: {DATA / "sawtooth.yaml"}
    axes:
      - {{path: outage(down@mx), values: [1h31m, 2h, 2h11m]}}
    metrics:
      - delivered
      - recovery_drain_time: max
      - delivery_delay: max
    """


@pytest.fixture(scope="module")
def sawtooth(pool, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sawtooth")
    sweep = write(folder, SAWTOOTH_GRID)
    return run_sweep(sweep, out=folder / "out", pool=pool)


def test_drain_times_worked_out_by_hand(sawtooth):
    # up at 07:30, 07:59 and 08:10: the hourly retry comes at 08:00, 08:00 and 09:00
    rows = pq.read_table(sawtooth.out / "runs.parquet").to_pylist()
    assert [(r["outage"], r["recovery_drain_time.max"], r["delivery_delay.max"], r["delivered"]) for r in rows] == [
        (5460.0, 30 * 60.0, 2 * 3600.0, 1),
        (7200.0, 1 * 60.0, 2 * 3600.0, 1),
        (7860.0, 50 * 60.0, 3 * 3600.0, 1),
    ]
    csv = pacsv.read_csv(sawtooth.out / "points.csv").to_pylist()
    assert [p["recovery_drain_time.max.mean"] for p in csv] == [1800.0, 60.0, 3000.0]
    assert [p["runs"] for p in csv] == [1, 1, 1]
    assert csv[0]["recovery_drain_time.max.ci_low"] is None  # one seed: no interval


def test_kept_runs_have_their_own_results_and_the_report_links_them(pool, tmp_path):
    text = SAWTOOTH_GRID.replace("axes:", "keep: true\n    axes:").replace("[1h31m, 2h, 2h11m]", "[2h]")
    result = run_sweep(write(tmp_path, text), out=tmp_path / "out", pool=pool)
    kept = result.out / "runs" / "0000-seed1"
    assert (kept / "messages.csv").read_text().count("\n") == 2  # header and the one message
    assert (kept / "report.html").is_file()
    page = (result.out / "report.html").read_text()
    assert '<a href="runs/0000-seed1/report.html">0000-seed1</a>' in page


GRID = f"""\
    name: small-grid
    scenario: {DATA / "storm.yaml"}
    seeds: 2
    axes:
      - {{path: timeline.fault@mx.fault.per_minute, values: [2, 8]}}
    metrics: [delivered, turned_away, {{recovery_drain_time: max}}]
    """


@pytest.fixture(scope="module")
def grid(pool, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid")
    return run_sweep(write(folder, GRID), out=folder / "out", pool=pool)


def test_same_sweep_same_rows(grid, pool, tmp_path):
    again = run_sweep(write(tmp_path, GRID), out=tmp_path / "out", pool=pool)
    assert len(grid.runs) == 4
    assert plain(again.runs) == plain(grid.runs)
    # more capacity turns fewer sessions away and drains sooner, in every seed
    by = {(r["per_minute"], r["seed"]): r for r in grid.runs}
    for seed in (3, 4):
        assert by[(8, seed)]["turned_away"] < by[(2, seed)]["turned_away"]
        assert by[(8, seed)]["recovery_drain_time.max"] < by[(2, seed)]["recovery_drain_time.max"]


def test_a_dask_local_cluster_gives_the_rows_of_the_process_pool(grid, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        on_dask = run_sweep(write(tmp_path, GRID), out=tmp_path / "out", scheduler=cluster.scheduler_address)
        assert plain(on_dask.runs) == plain(grid.runs)

        def interrupt(done: int, running: int, total: int) -> None:
            if done >= 1:
                raise KeyboardInterrupt

        stopped = run_sweep(
            write(tmp_path, GRID), out=tmp_path / "again", scheduler=cluster.scheduler_address, progress=interrupt
        )
        assert stopped.interrupted and 1 <= len(stopped.runs) < 4


def test_ctrl_c_keeps_what_finished_and_resume_runs_the_rest(grid, pool, tmp_path):
    path = write(tmp_path, GRID)

    def interrupt(done: int, running: int, total: int) -> None:
        if done >= 1:
            raise KeyboardInterrupt

    stopped = run_sweep(path, out=tmp_path / "out", pool=pool, progress=interrupt)
    assert stopped.interrupted
    kept = (tmp_path / "out" / "runs.jsonl").read_text().splitlines()
    assert 1 <= len(kept) < 4
    assert stopped.ran == len(stopped.runs) == len(kept)
    assert len(pq.read_table(tmp_path / "out" / "runs.parquet").to_pylist()) == len(kept)
    resumed = run_sweep(path, out=tmp_path / "out", pool=pool, resume=True)
    assert not resumed.interrupted
    assert resumed.ran == 4 - len(kept)
    assert plain(resumed.runs) == plain(grid.runs)
    # once more: nothing left to run
    assert run_sweep(path, out=tmp_path / "out", pool=pool, resume=True).ran == 0


def test_goal_on_a_monotone_axis_worked_out_by_hand(pool, tmp_path):
    # for outages from 1h31m to 2h the recovery comes between 07:30 and 07:59, the retry at 08:00:
    # drain = 2h1m - L, so drain <= 10m from L = 1h51m on
    path = write(
        tmp_path,
        f"""\
        scenario: {DATA / "sawtooth.yaml"}
        find:
          axis: outage(down@mx)
          range: [1h31m, 2h]
          resolution: 1m
          metric: recovery_drain_time
          target: "max<=10m"
        """,
    )
    ((_label, answer),) = run_sweep(path, out=tmp_path / "out", pool=pool).answers
    assert answer.found == 6660.0
    assert answer.monotone
    assert answer.sentences == [
        "The smallest outage in [1h31m, 2h] that meets recovery_drain_time max<=10m is 1h51m (10m); 1h50m does not (11m)."
    ]


def test_goal_on_a_non_monotone_axis_says_so(pool, tmp_path):
    result = run_sweep(DATA / "sawtooth-find.yaml", out=tmp_path / "out", pool=pool)
    ((_label, answer),) = result.answers
    assert not answer.monotone
    assert answer.sentences[-1].startswith(
        "Not monotone on the values visited: recovery_drain_time.max goes up and down"
    )
    # the search found a boundary, but not the smallest outage that meets the target (50m to 1h do)
    assert answer.found is not None and answer.found > 3600


def test_no_capacity_meets_the_target_and_the_retry_schedule_sets_the_floor(pool, tmp_path):
    result = run_sweep(DATA / "floor.yaml", out=tmp_path / "out", pool=pool)
    ((_label, answer),) = result.answers
    assert answer.found is None
    assert answer.sentences[0].startswith("No per_minute in [1, 60] meets recovery_drain_time max<=20m in all 2 seeds")
    assert answer.floor is not None
    assert answer.floor.startswith(
        "What sets the floor: the senders' retry intervals. The last backlog message (slow, "
    )
    # the slow group retries every 50 minutes: its next try after the recovery is at most 50m away
    minutes = int(answer.floor.split("was next tried ")[1].split("m after")[0])
    assert 20 < minutes <= 50
    assert [v.x for v in answer.visits] == [1.0, 60.0]  # both ends fail: nothing in between is run


def test_mean_and_interval_worked_out_by_hand():
    # mean 12, sd 2, t(0.975, 2) = 4.302653: half-width 4.302653 * 2 / sqrt(3) = 4.968275
    found = mean_ci([10.0, 12.0, 14.0, None])
    assert found["n"] == 3 and found["mean"] == 12.0 and found["min"] == 10.0 and found["max"] == 14.0
    assert found["ci_low"] == pytest.approx(12 - 4.968275, abs=1e-6)
    assert found["ci_high"] == pytest.approx(12 + 4.968275, abs=1e-6)
    assert mean_ci([0.0, 0.0, 3.0])["ci_low"] == 0.0  # never below what a count can be
    assert mean_ci([0.9, 1.0], upper=1.0)["ci_high"] == 1.0
    assert mean_ci([60.0, math.inf])["mean"] == math.inf and mean_ci([60.0, math.inf])["ci_low"] is None
    assert mean_ci([5.0])["ci_low"] is None


def test_the_cli_prints_the_points_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from simulator.cli import app

    path = write(tmp_path, SAWTOOTH_GRID)
    runner = CliRunner()
    first = runner.invoke(app, ["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "out")])
    assert first.exit_code == 0, first.output
    assert "3 run(s) (3 now, 0 from the journal)" in first.output
    assert "│ 1h31m  │ 1 [1, 1]" not in first.output  # one seed: no interval is printed
    lines = [line for line in first.output.splitlines() if line.startswith("│ 2h ")]
    assert lines and "1m" in lines[0]
    second = runner.invoke(app, ["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "out"), "--resume"])
    assert second.exit_code == 0, second.output
    assert "3 run(s) (0 now, 3 from the journal)" in second.output
