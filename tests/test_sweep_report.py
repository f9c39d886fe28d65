"""The sweep report: drawn for each shape of sweep, and opened in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.report.sweep import write_sweep_report
from simulator.sweep.tables import point_table, write_table

from .test_report_browser import body, browse

DATA = Path(__file__).parent / "data" / "sweeps"


def fabricate(folder: Path, axes: list[dict], runs: list[dict], goal: list[dict] | None = None) -> Path:
    """A sweep results folder as ``simulator.sweep`` writes it, from hand-made runs."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = [
        {"column": "stranded", "metric": "stranded", "unit": "count", "kind": "counter"},
        {"column": "recovery_drain_time.max", "metric": "recovery_drain_time", "unit": "duration", "kind": "trend"},
    ]
    names = [a["name"] for a in axes]
    columns = [m["column"] for m in metrics]
    write_table(runs, ["point", *names, "seed", *columns], folder / "runs")
    points = point_table(runs, names, columns)
    stats = [f"{c}.{k}" for c in columns for k in ("mean", "ci_low", "ci_high", "min", "max")]
    write_table(points, ["point", *names, "runs", *stats], folder / "points")
    seeds = sorted({r["seed"] for r in runs})
    doc = {
        "sweep": "fabricated",
        "description": "",
        "file": "x.yaml",
        "scenario": "s",
        "scenario_file": "s.yaml",
        "seeds": seeds,
        "transport": "memory",
        "axes": axes,
        "metrics": metrics,
        "goal": goal or [],
        "runs": len(runs),
        "points": len(points),
        "ran": len(runs),
        "interrupted": False,
        "kept": {},
        "version": "0",
    }
    (folder / "sweep.json").write_text(json.dumps(doc))
    return write_sweep_report(folder)


def images(page: Path) -> int:
    return page.read_text().count('src="data:image/png;base64,')


def test_seed_spread_two_axes_and_text_axes_each_get_a_figure(tmp_path):
    spread = [
        {"point": 0, "seed": s, "stranded": float(s % 7), "recovery_drain_time.max": 600.0 * s} for s in range(1, 21)
    ]
    page = fabricate(tmp_path / "spread", [], spread)
    assert images(page) == 2
    assert "over 20 seeds" not in page.read_text()  # titles are inside the figures, not the page
    heat = [
        {
            "point": i * 3 + j,
            "a": a,
            "b": b,
            "seed": 1,
            "stranded": float(a * b),
            "recovery_drain_time.max": 60.0 * (a + b),
        }
        for i, a in enumerate((1, 2))
        for j, b in enumerate((10, 20, 30))
    ]
    axes = [
        {"name": "a", "path": "x", "unit": "number", "values": [1, 2]},
        {"name": "b", "path": "y", "unit": "number", "values": [10, 20, 30]},
    ]
    assert images(fabricate(tmp_path / "heat", axes, heat)) == 2
    text = [
        {"point": i, "policy": p, "seed": s, "stranded": float(i + s), "recovery_drain_time.max": float("inf")}
        for i, p in enumerate(("postfix", "exim"))
        for s in (1, 2)
    ]
    page = fabricate(
        tmp_path / "text", [{"name": "policy", "path": "z", "unit": "text", "values": ["postfix", "exim"]}], text
    )
    assert images(page) == 1  # a drain time that is never reached has nothing to draw
    assert "Nothing to draw: no run has a finite value" in page.read_text()


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A real goal-seeking sweep's results (the sawtooth scenario, in memory, one worker)."""
    from simulator.sweep import run_sweep
    from simulator.sweep.run import local_pool

    pool = local_pool(1)
    try:
        folder = tmp_path_factory.mktemp("sweep") / "out"
        run_sweep(DATA / "sawtooth-find.yaml", out=folder, pool=pool)
    finally:
        pool.close()
    return folder


def test_the_sweep_report_renders_in_a_browser_without_errors(sweep_folder, tmp_path):
    dom = browse(sweep_folder / "report.html", tmp_path, "--dump-dom").stdout
    figures = int(re.search(r'data-figures="(\d+)"', dom).group(1))
    assert figures == 2  # the goal's search and the one metric
    assert f'data-images="{figures}/{figures}"' in body(dom)
    assert 'data-ready="yes"' in body(dom)
    assert re.search(r'<ul id="report-errors">\s*</ul>', dom)
    for section in ("goal", "metrics", "points"):
        assert f'<section id="{section}">' in dom
    assert "The smallest outage in [30m, 3h55m] that meets recovery_drain_time max&lt;=10m is" in dom
    assert "Not monotone on the values visited" in dom
    assert "http://" not in dom.replace("http://www.w3.org", "") and "https://" not in dom
