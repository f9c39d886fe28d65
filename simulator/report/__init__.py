"""Post-mortem reports of a results folder: ``report.html`` and its figures as PNG files.

``write_report(folder)`` reads only the files ``smtp-outage run`` wrote there
(``simulator.report.data``) and adds ``report.html``, self-contained with its
figures inlined, next to ``timeline.png``, ``outcomes.png``, ``queue.png``,
``delays.png`` and, when a server came back, ``recovery.png``.
"""

from __future__ import annotations

from pathlib import Path

from .data import ReportData, load_results

__all__ = ["write_report", "load_results", "ReportData", "FIGURES"]

FIGURES = ("timeline.png", "outcomes.png", "queue.png", "delays.png", "recovery.png")


def write_report(folder: str | Path) -> Path:
    """Draw the figures and write ``report.html`` into the results *folder*; return the page's path.

    The folder must hold a complete run (``ScenarioError`` otherwise).
    """
    from . import figures, html, tables  # matplotlib: imported only to draw

    data = load_results(folder)
    out = data.folder
    storms = tables.storms(data)
    drawn = {
        "timeline": figures.timeline_png(data, out / "timeline.png"),
        "outcomes": figures.outcomes_png(data, out / "outcomes.png"),
        "queue": figures.queue_png(data, out / "queue.png"),
        "delays": figures.delays_png(data, out / "delays.png"),
    }
    stale = out / "recovery.png"
    if storms:
        drawn["storms"] = figures.storms_png(data, storms, stale)
    elif stale.exists():
        stale.unlink()
    page = html.render(
        data,
        drawn,
        tables.window_rows(data),
        tables.sender_rows(data),
        tables.qshape_tables(data),
        storms,
        tables.incident_rows(data),
        tables.bounce_rows(data),
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
