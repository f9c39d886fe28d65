"""The report as one self-contained HTML page: figures inlined as data URIs, no scripts from elsewhere.

A tiny inline script marks the page for automated checks: ``data-images``
on ``<body>`` says how many images decoded (``"5/5"``), and any script or
resource error is written into ``#report-errors``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from .. import metrics
from ..ledger import STATES
from .data import ReportData
from .figures import STATE_COLORS
from .tables import QShape, SenderRow, WindowRow, duration, pct

__all__ = ["render"]

STATE_MEANING = {
    "delivered": "in a mailbox on a server whose disk is live at the end",
    "stranded": "accepted with a 250, but the only copy is on a failed disk; the sender believes it was delivered",
    "lost": "accepted, and every copy destroyed",
    "bounced": "the sender gave up; its originator got a non-delivery report",
    "queued": "still in a sender's queue when the run ends",
}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#212121;margin:0;background:#fafafa}
main{max-width:1320px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:34px 0 8px;border-bottom:2px solid #eee;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
p.lede{color:#555;margin:4px 0 16px;max-width:70em}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border-radius:8px;padding:8px 14px;background:#f5f5f5;min-width:120px}
.card b{display:block;font-size:22px}.card span{font-size:13px;color:#555}
figure{margin:10px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#555}
table{border-collapse:collapse;margin:8px 0 14px;font-size:14px}
th,td{border-bottom:1px solid #e6e6e6;padding:5px 9px;text-align:right;vertical-align:top}
th{background:#f3f3f3;font-weight:600}
td.l,th.l{text-align:left}
td.sentence{text-align:left;max-width:34em;font-size:13.5px;color:#333}
tr:nth-child(even) td{background:#fcfcfc}
.st{font-weight:600}.zero{color:#bbb}
td.mix{font-size:13px;white-space:nowrap;line-height:1.3}
.legend span{display:inline-block;margin-right:14px;font-size:13px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.ok{color:#2e7d32;font-weight:700}.fail{color:#c62828;font-weight:700}
.qshape td,.qshape th{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;padding:2px 7px}
#report-errors:empty{display:none}#report-errors{color:#b71c1c;border:2px solid #b71c1c;padding:6px 24px}
footer{margin-top:30px;font-size:12.5px;color:#666}
"""

_SCRIPT_HEAD = """
(function () {
  function note(text) {
    var box = document.getElementById('report-errors');
    if (!box) { (window.__reportErrors = window.__reportErrors || []).push(text); return; }
    var li = document.createElement('li'); li.textContent = text; box.appendChild(li);
  }
  window.addEventListener('error', function (e) {
    var t = e.target && e.target !== window && (e.target.src || e.target.href);
    note(t ? 'failed to load ' + String(t).slice(0, 80) : 'script error: ' + e.message);
  }, true);
  window.addEventListener('load', function () {
    (window.__reportErrors || []).forEach(note);
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
    document.body.setAttribute('data-images', ok + '/' + imgs.length);
    document.body.setAttribute('data-ready', ok === imgs.length ? 'yes' : 'no');
  });
})();
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" data-file="{escape(path.name)}">'


def _figure(path: Path, alt: str, caption: str) -> str:
    return f"<figure>{_img(path, alt)}<figcaption>{escape(caption)} (<code>{escape(path.name)}</code>)</figcaption></figure>"


def _cell(n: int, total: int, state: str) -> str:
    if not n:
        return '<td class="zero">0</td>'
    return f'<td class="st" style="color:{STATE_COLORS[state]}">{n} <small>({pct(n, total)})</small></td>'


def _legend() -> str:
    items = "".join(
        f'<span title="{escape(STATE_MEANING[s])}"><i class="sw" style="background:{STATE_COLORS[s]}"></i>{s}: {escape(STATE_MEANING[s])}</span><br>'
        for s in STATES
    )
    return f'<p class="legend">{items}</p>'


def _cards(data: ReportData) -> str:
    counts = data.summary.get("counts", {})
    total = int(data.summary.get("messages", len(data.records)))
    cards = [f'<div class="card"><b>{total}</b><span>messages submitted</span></div>']
    for s in STATES:
        n = int(counts.get(s, 0))
        cards.append(f'<div class="card" style="border-left:6px solid {STATE_COLORS[s]}"><b>{n}</b><span>{s} {pct(n, total)}</span></div>')
    attempts = data.summary.get("attempts")
    if attempts is not None:
        cards.append(f'<div class="card"><b>{attempts}</b><span>delivery attempts</span></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _taken(data: ReportData, iso: str | None) -> str:
    """A backup's time as the rest of the page writes times."""
    if not iso:
        return "latest"
    try:
        return data.short((datetime.fromisoformat(iso) - data.start).total_seconds())
    except (TypeError, ValueError):
        return iso


def _marks_table(data: ReportData) -> str:
    names = {"server": "server state", "crash": "crash", "backup": "backup", "restore": "restore", "disk_recovered": "disk recovered", "disk_lost": "disk lost"}
    rows = []
    for m in data.marks:
        what = names.get(m["type"], m["type"])
        if m["type"] == "backup":
            what = "backup ok" if m.get("ok") else "backup failed"
        elif m["type"] == "server":
            what = "up" if m.get("state") == "up" else f"down ({m.get('state')})"
        elif m["type"] == "crash":
            what = f"crash ({m.get('messages_on_disk', '?')} messages on the disk)"
        elif m["type"] == "restore":
            what = f"restore from the {_taken(data, m.get('backup_taken_at'))} backup ({m.get('messages', '?')} messages)"
        elif m["type"] in ("disk_recovered", "disk_lost"):
            what = f"{what} ({m.get('messages', '?')} messages)"
        rows.append(f'<tr><td class="l">{escape(data.short(m["t"]))}</td><td class="l">{escape(m["server"])}</td><td class="l">{escape(what)}</td><td class="l">{escape(m.get("note") or "")}</td></tr>')
    if not rows:
        return "<p>The timeline has no events: every server stays as it started.</p>"
    return '<table id="timeline-events"><tr><th class="l">when</th><th class="l">server</th><th class="l">event</th><th class="l">note</th></tr>' + "".join(rows) + "</table>"


def _windows_table(rows: list[WindowRow], declared: bool) -> str:
    head = "".join(f"<th>{s}</th>" for s in STATES)
    body = []
    for w in rows:
        cells = "".join(_cell(w.counts[s], w.total, s) for s in STATES)
        body.append(f'<tr><td>{w.number}</td><td class="l">{escape(w.label)}</td><td>{w.total}</td>{cells}<td class="sentence">{escape(w.sentence)}</td></tr>')
    origin = "the scenario's windows" if declared else "windows derived from the timeline: failures, recoveries, and the last good backup before each crash"
    return (
        f'<table id="windows-table"><caption style="text-align:left;font-size:13px;color:#555">By when the mail was sent ({escape(origin)})</caption>'
        f'<tr><th>#</th><th class="l">sent</th><th>messages</th>{head}<th class="l">what that means</th></tr>{"".join(body)}</table>'
    )


def _window_by_sender(data: ReportData, rows: list[WindowRow], groups: list[str]) -> str:
    head = "".join(f'<th title="{escape(w.label)}">{w.number}</th>' for w in rows)
    body = []
    for g in groups:
        cells = []
        for w in rows:
            counts = w.by_group.get(g)
            total = sum(counts.values()) if counts else 0
            if not total:
                cells.append('<td class="zero">–</td>')
                continue
            lines = "".join(
                f'<div style="color:{STATE_COLORS[s]}"><b>{counts[s]}</b> {s} <small>{pct(counts[s], total)}</small></div>'
                for s in STATES if counts[s]
            )
            cells.append(f'<td class="mix">{lines}</td>')
        gives_up = data.gives_up(g)
        note = f"<br><small>gives up after {duration(gives_up)}</small>" if gives_up else ""
        body.append(f'<tr><td class="l">{escape(g)}{note}</td>{"".join(cells)}</tr>')
    return f'<table id="windows-by-sender"><tr><th class="l">sender group</th>{head}</tr>{"".join(body)}</table>'


def _senders_table(rows: list[SenderRow]) -> str:
    head = "".join(f"<th>{s}</th>" for s in STATES)
    body = []
    for r in rows:
        cells = "".join(_cell(r.counts[s], r.total, s) for s in STATES)
        d = r.delays
        body.append(
            f'<tr><td class="l">{escape(r.group)}</td><td class="l">{escape(r.policy)}</td><td>{duration(r.gives_up)}</td><td>{r.total}</td>{cells}'
            f"<td>{duration(d.get('med'))}</td><td>{duration(d.get('p95'))}</td><td>{duration(d.get('max'))}</td></tr>"
        )
    return (
        '<table id="senders-table"><tr><th class="l">sender group</th><th class="l">policy</th><th>gives up after</th><th>messages</th>'
        f"{head}<th>median delay</th><th>p95 delay</th><th>max delay</th></tr>{''.join(body)}</table>"
    )


def _qshape_tables(tables: list[QShape]) -> str:
    if not tables:
        return "<p>No mail waited in a sender queue long enough to show.</p>"
    out = []
    for q in tables:
        head = "<th>T</th>" + "".join(f"<th>{b}</th>" for b in q.buckets) + f"<th>{q.buckets[-1]}+</th>"
        body = "".join(
            f'<tr><td class="l">{escape(name)}</td>' + "".join(f'<td class="{"zero" if not n else ""}">{n}</td>' for n in row) + "</tr>"
            for name, row in q.rows.items()
        )
        out.append(f'<h3>{escape(q.title)}</h3><table class="qshape"><tr><th class="l">sender</th>{head}</tr>{body}</table>')
    return "".join(out)


def _storms_table(data: ReportData, storms: list[metrics.Storm]) -> str:
    body = "".join(
        f'<tr><td class="l">{escape(s.server)}</td><td class="l">{escape(data.short(s.at))}</td><td>{s.backlog}</td>'
        f"<td>{s.peak_per_minute}</td><td>{escape(data.short(s.peak_at))}</td><td>{s.first_hour}</td>"
        f"<td>{duration(s.drained_90) if s.drained_90 is not None else 'not before the next outage'}</td>"
        f"<td>{duration(s.drained) if s.drained is not None else 'not before the next outage'}</td></tr>"
        for s in storms
    )
    return (
        '<table id="storms-table"><tr><th class="l">server</th><th class="l">back at</th><th>backlog</th><th>peak sessions/min</th>'
        f"<th>peak at</th><th>sessions, first hour</th><th>90% drained after</th><th>all drained after</th></tr>{body}</table>"
    )


def _thresholds(outcomes: list[dict[str, Any]] | None) -> str:
    if not outcomes:
        return ""
    body = "".join(
        f'<tr><td class="{"ok" if o["ok"] else "fail"}">{"✓" if o["ok"] else "✗"}</td><td class="l"><code>{escape(o["metric"])}</code></td>'
        f'<td class="l"><code>{escape(o["expression"])}</code></td><td>{escape(o["shown"])}</td><td class="l">{escape(o["where"])}</td></tr>'
        for o in outcomes
    )
    failed = sum(1 for o in outcomes if not o["ok"])
    verdict = f"{failed} of {len(outcomes)} thresholds failed" if failed else f"all {len(outcomes)} thresholds passed"
    return (
        f'<section id="thresholds"><h2>Thresholds: {verdict}</h2><table><tr><th></th><th class="l">metric</th><th class="l">threshold</th>'
        f'<th>observed</th><th class="l">declared at</th></tr>{body}</table></section>'
    )


def render(
    data: ReportData,
    figures: dict[str, Path],
    windows: list[WindowRow],
    senders: list[SenderRow],
    qshapes: list[QShape],
    storms: list[metrics.Storm],
) -> str:
    """The whole page."""
    s = data.summary
    title = f"{data.name}: what happened to the mail?"
    description = data.timeline.get("description") or ""
    intro = (
        f"Seed {s.get('seed')}, simulated {data.when(0):%Y-%m-%d %H:%M} to {data.when(data.end):%Y-%m-%d %H:%M}, "
        f"{s.get('messages')} messages from {len(senders)} sender group(s) to {len(data.servers)} server(s)."
    )
    sections = [
        f"<h1>{escape(title)}</h1><p class=\"lede\">{escape(description)} {intro}</p>",
        f'<section id="summary">{_cards(data)}{_legend()}</section>',
        f'<section id="timeline"><h2>Incident timeline</h2>{_figure(figures["timeline"], "incident timeline", "Each server: accepting mail or down, and its disk; backups, crashes, restores and disk recoveries marked")}'
        f"{_marks_table(data)}</section>",
        f'<section id="what-happened"><h2>What happened to the mail?</h2>{_windows_table(windows, bool(data.timeline.get("windows_declared")))}'
        f"<h3>Per sender group and window</h3>{_window_by_sender(data, windows, [g for g in data.groups if any(g in w.by_group for w in windows)])}</section>",
        f'<section id="outcomes"><h2>Outcome by submission time</h2>{_figure(figures["outcomes"], "outcome by submission time", "Messages per time slot, coloured by final state")}</section>',
        f'<section id="senders"><h2>By sender group</h2>{_senders_table(senders)}</section>',
        f'<section id="queues"><h2>Queue depth</h2>{_figure(figures["queue"], "queue depth per sender group", "Messages waiting in sender queues")}'
        f"<p>Queue ages in minutes, like Postfix's <code>qshape</code>: each column counts messages at most that many minutes old; T is the total.</p>"
        f"{_qshape_tables(qshapes)}</section>",
        f'<section id="delays"><h2>Delivery delay</h2>{_figure(figures["delays"], "delivery delay distribution per sender group", "Cumulative share of each group’s messages accepted within a given delay")}</section>',
    ]
    if storms:
        sections.append(
            f'<section id="recovery"><h2>Recovery storms</h2>{_figure(figures["storms"], "load and backlog after each recovery", "SMTP sessions per simulated minute and the backlog after each recovery")}'
            f"{_storms_table(data, storms)}</section>"
        )
    sections.append(_thresholds(data.thresholds))
    files = ", ".join(sorted(p.name for p in data.folder.iterdir() if p.is_file() and p.suffix in (".csv", ".json", ".jsonl", ".mbox")))
    sections.append(f"<footer>Generated by smtp-outage from {escape(str(data.folder))}: {escape(files)}.</footer>")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
        f"<script>{_SCRIPT_HEAD}</script><style>{_CSS}</style></head>\n"
        f'<body><main><ul id="report-errors"></ul>\n' + "\n".join(sections) + "\n</main></body></html>\n"
    )
