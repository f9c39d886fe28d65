"""The sweep report: one self-contained HTML page from a sweep's results folder.

It reads ``sweep.json``, ``points.parquet`` and ``runs.parquet`` (written by
``simulator.sweep``) and nothing else. Per metric: a line with its 95%
confidence band over a numeric axis, bars with error bars over a text axis,
a heatmap over two axes, or the spread of the seeds when nothing varies; the
goal's search with the target and the answer in a sentence; the table of
points; and links to the runs whose results were kept. Figures are inlined
as data URIs; the same inline script as the run report marks the page for
automated checks (``data-images``, ``#report-errors``).
"""

from __future__ import annotations

import base64
import io
import json
import math
from html import escape
from pathlib import Path
from typing import Any, TypeGuard

import pyarrow.parquet as pq
from matplotlib.figure import Figure

from ..durations import format_duration
from ..errors import Problem, ScenarioError
from .html import _CSS, _SCRIPT_HEAD

__all__ = ["write_sweep_report", "is_sweep_folder"]

DPI = 100
BAND = "#90caf9"
LINE = "#1565c0"


def is_sweep_folder(folder: Path) -> bool:
    """Whether *folder* holds a sweep's results (``sweep.json``)."""
    return (Path(folder) / "sweep.json").is_file()


def _fmt(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, str):
        if value in ("inf", "-inf"):
            return "never" if unit == "duration" else value
        return value
    if math.isinf(value):
        return "never" if unit == "duration" else "inf"
    if unit == "duration":
        return format_duration(60 * round(value / 60)) if value >= 60 else format_duration(round(value))
    if unit == "ratio":
        return f"{100 * value:.1f}%"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"


def _scale(unit: str) -> tuple[float, str]:
    """How to plot a unit: durations in hours, ratios in percent."""
    if unit == "duration":
        return 3600.0, " (hours)"
    if unit == "ratio":
        return 0.01, " (%)"
    return 1.0, ""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _figure(
    metric: dict[str, Any], axes: list[dict[str, Any]], points: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> str | None:
    col, unit = metric["column"], metric["unit"]
    scale, suffix = _scale(unit)
    varying = [a for a in axes if len({p.get(a["name"]) for p in points}) > 1]
    fig = Figure(figsize=(7.2, 3.6))
    ax = fig.add_subplot()
    ylabel = col + suffix
    if varying and not any(_finite(p.get(f"{col}.mean")) for p in points):
        return None
    if not varying:
        values = [r[col] / scale for r in runs if _finite(r.get(col))]
        never_runs = sum(1 for r in runs if isinstance(r.get(col), float) and math.isinf(r[col]))
        if not values:
            return None
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color=BAND, edgecolor=LINE)
        mean = points[0].get(f"{col}.mean")
        if _finite(mean):
            ax.axvline(mean / scale, color=LINE, lw=2, label="mean")
            lo, hi = points[0].get(f"{col}.ci_low"), points[0].get(f"{col}.ci_high")
            if _finite(lo) and _finite(hi):
                ax.axvspan(lo / scale, hi / scale, color=LINE, alpha=0.15, label="95% CI of the mean")
            ax.legend(fontsize=8)
        ax.set_xlabel(ylabel)
        ax.set_ylabel("runs (seeds)")
        ax.set_title(f"{col} over {len(runs)} seeds" + (f" ({never_runs} never)" if never_runs else ""), fontsize=10)
    elif len(varying) == 1 or any(a["unit"] == "text" for a in varying[:2]):
        a = varying[0]
        xscale, xsuffix = _scale(a["unit"]) if a["unit"] == "duration" else (1.0, "")
        rows = sorted(points, key=lambda p: (str(type(p.get(a["name"]))), p.get(a["name"])))
        others = [o for o in varying if o is not a]
        groups: dict[str, list[dict[str, Any]]] = {}
        for p in rows:
            label = ", ".join(f"{o['name']}={_fmt(p.get(o['name']), o['unit'])}" for o in others)
            groups.setdefault(label, []).append(p)
        text = a["unit"] == "text"
        for i, (label, group) in enumerate(groups.items()):
            xs = [p[a["name"]] for p in group]
            xv = list(range(len(xs))) if text else [x / xscale for x in xs]
            mean = [p.get(f"{col}.mean") for p in group]
            y = [m / scale if _finite(m) else math.nan for m in mean]
            lo = [p.get(f"{col}.ci_low") for p in group]
            hi = [p.get(f"{col}.ci_high") for p in group]
            if text:
                width = 0.8 / len(groups)
                pos = [x - 0.4 + width * (i + 0.5) for x in xv]
                err = [
                    [(m - lo_) / scale if _finite(lo_) and _finite(m) else 0 for m, lo_ in zip(mean, lo, strict=True)],
                    [(hi_ - m) / scale if _finite(hi_) and _finite(m) else 0 for m, hi_ in zip(mean, hi, strict=True)],
                ]
                ax.bar(pos, y, width=width, yerr=err, capsize=3, label=label or None)
                ax.set_xticks(xv, [str(x) for x in xs])
            else:
                line = ax.plot(xv, y, marker="o", lw=1.8, label=label or "mean")[0]
                band = [
                    (x, lo_ / scale, hi_ / scale)
                    for x, lo_, hi_ in zip(xv, lo, hi, strict=True)
                    if _finite(lo_) and _finite(hi_)
                ]
                if band:
                    ax.fill_between(
                        [b[0] for b in band],
                        [b[1] for b in band],
                        [b[2] for b in band],
                        color=line.get_color(),
                        alpha=0.18,
                        label="95% CI" if i == 0 else None,
                    )
                never = [x for x, m in zip(xv, mean, strict=True) if isinstance(m, float) and math.isinf(m)]
                if never:
                    top = max([v for v in y if math.isfinite(v)], default=1.0)
                    ax.plot(never, [top * 1.05] * len(never), "x", color="#c62828", label="never (some seed)")
        ax.set_xlabel(a["name"] + xsuffix)
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    else:
        a, b = varying[0], varying[1]
        xs = sorted({p[a["name"]] for p in points})
        ys = sorted({p[b["name"]] for p in points})
        grid = [[math.nan] * len(xs) for _ in ys]
        counts = [[0] * len(xs) for _ in ys]
        for p in points:
            m = p.get(f"{col}.mean")
            i, j = ys.index(p[b["name"]]), xs.index(p[a["name"]])
            if _finite(m):
                grid[i][j] = (0 if math.isnan(grid[i][j]) else grid[i][j]) + m / scale
                counts[i][j] += 1
        grid = [
            [g / c if c else math.nan for g, c in zip(row, crow, strict=True)]
            for row, crow in zip(grid, counts, strict=True)
        ]
        image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis")
        ax.set_xticks(range(len(xs)), [_fmt(x, a["unit"]) for x in xs], fontsize=8)
        ax.set_yticks(range(len(ys)), [_fmt(y, b["unit"]) for y in ys], fontsize=8)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    "never" if math.isnan(v) else _fmt(v * scale, unit),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w",
                )
        fig.colorbar(image, ax=ax, label=ylabel)
        ax.set_xlabel(a["name"])
        ax.set_ylabel(b["name"])
        # an axis zipped with a shown one moves with it; only one that varies within a cell is averaged over
        averaged = [
            o["name"]
            for o in varying[2:]
            if any(
                len({q.get(o["name"]) for q in points if q[a["name"]] == p[a["name"]] and q[b["name"]] == p[b["name"]]})
                > 1
                for p in points
            )
        ]
        if averaged:
            ax.set_title("averaged over " + ", ".join(averaged), fontsize=9)
    return _png(fig)


def _goal_figure(goal: dict[str, Any], unit: str, axis_unit: str) -> str:
    scale, suffix = _scale(unit)
    xscale, xsuffix = _scale(axis_unit) if axis_unit == "duration" else (1.0, "")
    fig = Figure(figsize=(7.2, 3.4))
    ax = fig.add_subplot()
    finite = [v / scale for visit in goal["visits"] for v in visit["values"] if _finite(v)]
    top = max(finite, default=1.0) * 1.08 or 1.0
    for visit in goal["visits"]:
        x = visit["x"] / xscale
        for v in visit["values"]:
            if _finite(v):
                ax.plot([x], [v / scale], "o", ms=4, color="#2e7d32" if visit["ok"] else "#c62828", alpha=0.7)
            else:
                ax.plot([x], [top], "x", color="#c62828")
    visits = sorted(goal["visits"], key=lambda v: v["x"])
    ax.plot(
        [v["x"] / xscale for v in visits],
        [v["mean"] / scale if _finite(v["mean"]) else math.nan for v in visits],
        "-",
        color=LINE,
        lw=1.2,
        label="mean over seeds",
    )
    target = goal.get("target_value")
    if _finite(target):
        ax.axhline(target / scale, color="#6a1b9a", ls="--", lw=1.2, label=f"target {goal['target']}")
    if goal["found"] is not None:
        ax.axvline(goal["found"] / xscale, color="#2e7d32", lw=1.5, label=f"answer {goal['found_shown']}")
    ax.set_xlabel(goal["axis"] + xsuffix)
    ax.set_ylabel(goal["metric"] + suffix)
    ax.set_title("values visited (green: meets the target, red: does not, x: never)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _points_table(doc: dict[str, Any], points: list[dict[str, Any]], kept: dict[str, list[str]]) -> str:
    axes = doc["axes"]
    metrics = doc["metrics"]
    head = "".join(f'<th class="l">{escape(a["name"])}</th>' for a in axes) + "<th>runs</th>"
    head += "".join(f"<th>{escape(m['column'])}<br><small>mean [95% CI]</small></th>" for m in metrics)
    if kept:
        head += '<th class="l">kept results</th>'
    rows = []
    for p in points:
        cells = "".join(f'<td class="l">{escape(_fmt(p.get(a["name"]), a["unit"]))}</td>' for a in axes)
        cells += f"<td>{p['runs']}</td>"
        for m in metrics:
            c, u = m["column"], m["unit"]
            mean, lo, hi = p.get(f"{c}.mean"), p.get(f"{c}.ci_low"), p.get(f"{c}.ci_high")
            ci = f" [{_fmt(lo, u)}, {_fmt(hi, u)}]" if _finite(lo) and _finite(hi) else ""
            cells += f"<td>{escape(_fmt(mean, u) + ci)}</td>"
        if kept:
            links = " ".join(
                f'<a href="{escape(path)}/report.html">{escape(Path(path).name)}</a>'
                for path in kept.get(str(p["point"]), [])
            )
            cells += f'<td class="l">{links}</td>'
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_sweep_report(folder: str | Path) -> Path:
    """Write ``report.html`` for the sweep results in *folder*; returns its path."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
        points = pq.read_table(folder / "points.parquet").to_pylist()
        runs = pq.read_table(folder / "runs.parquet").to_pylist()
    except (OSError, ValueError) as exc:
        raise ScenarioError([Problem(str(folder), None, "", f"not a sweep results folder: {exc}")]) from None
    title = f"Sweep {doc['sweep']}"
    units = {m["column"]: m["unit"] for m in doc["metrics"]}
    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="lede">{escape(doc.get("description") or "")} Scenario {escape(doc["scenario"])} '
        f"({escape(doc['scenario_file'])}), {len(doc['seeds'])} seed(s) per point, {doc['points']} point(s), "
        f"{doc['runs']} run(s), transport {escape(doc['transport'])}, smtp-outage {escape(doc['version'])}.</p>",
    ]
    if doc.get("interrupted"):
        sections.append('<p class="fail">The sweep was interrupted: only the runs that finished are shown.</p>')
    images = 0
    if doc["goal"]:
        parts = ['<section id="goal"><h2>Goal</h2>']
        for goal in doc["goal"]:
            heading = goal["point"] if goal["point"] != "base" else ""
            if heading:
                parts.append(f"<h3>{escape(heading)}</h3>")
            parts += [f'<p class="answer">{escape(s)}</p>' for s in goal["sentences"]]
            axis_unit = next((a["unit"] for a in doc["axes"] if a["name"] == goal["axis"]), "number")
            png = _goal_figure(goal, units.get(goal["metric"], "number"), axis_unit)
            images += 1
            parts.append(
                f'<figure><img alt="goal search for {escape(goal["axis"])}" src="data:image/png;base64,{png}"></figure>'
            )
        parts.append("</section>")
        sections.append("\n".join(parts))
    metric_parts = ['<section id="metrics"><h2>Metrics</h2>']
    axes = doc["axes"]
    for m in doc["metrics"]:
        figure = _figure(m, axes, points, runs)
        metric_parts.append(f"<h3>{escape(m['column'])}</h3>")
        if figure is None:
            metric_parts.append("<p>Nothing to draw: no run has a finite value (never reached, or no data).</p>")
            continue
        images += 1
        metric_parts.append(f'<figure><img alt="{escape(m["column"])}" src="data:image/png;base64,{figure}"></figure>')
    metric_parts.append("</section>")
    sections.append("\n".join(metric_parts))
    sections.append(
        '<section id="points"><h2>Points</h2><p>Mean over the seeds and its 95% confidence interval '
        "(Student's t); <code>points.csv</code> and <code>points.parquet</code> hold the same, "
        "<code>runs.csv</code> and <code>runs.parquet</code> every run.</p>"
        + _points_table(doc, points, doc.get("kept") or {})
        + "</section>"
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        f"<script>{_SCRIPT_HEAD}</script><style>{_CSS}p.answer{{font-size:16px;max-width:60em}}</style></head>\n"
        f'<body data-figures="{images}"><main><ul id="report-errors"></ul>\n'
        + "\n".join(sections)
        + "\n</main></body></html>\n"
    )
    page = folder / "report.html"
    page.write_text(html, encoding="utf-8")
    return page
