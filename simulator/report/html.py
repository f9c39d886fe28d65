"""The report as one self-contained HTML page: figures inlined as data URIs, no scripts from elsewhere.

A tiny inline script marks the page for automated checks: ``data-images``
on ``<body>`` says how many images decoded (``"5/5"``), and any script or
resource error is written into ``#report-errors``.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from .. import metrics
from ..ledger import STATES
from .data import ReportData
from .figures import STATE_COLORS
from .sources import description_html, mailbox_section, sources_section
from .tables import BounceRow, IncidentRow, QShape, SenderRow, WindowRow, duplicates_sentence, duration, pct

__all__ = ["render"]

STATE_MEANING = {
    "delivered": "in a mailbox on a server whose disk is live at the end",
    "stranded": "accepted with a 250, but the only copy is on a failed disk; the sender believes it was delivered",
    "lost": "accepted, and every copy destroyed",
    "bounced": "the sender gave up; its originator got a non-delivery report",
    "queued": "still in a sender's queue (or a server's delivery queue) when the run ends",
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
ol.sources li{margin:0 0 10px}blockquote{margin:4px 0 4px 18px;padding-left:10px;border-left:3px solid #ddd;color:#444;font-size:14px}
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
    var u = String(t || ''); if (u.length > 120) { u = '...' + u.slice(-117); }
    note(t ? 'failed to load ' + u : 'script error: ' + e.message);
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


def _card(n: int, label: str, title: str = "", border: str = "") -> str:
    style = f' style="border-left:6px solid {border}"' if border else ""
    hint = f' title="{escape(title)}"' if title else ""
    return f'<div class="card"{style}{hint}><b>{n}</b><span>{escape(label)}</span></div>'


def _cards(data: ReportData) -> str:
    a = data.analysis
    total = a.messages
    cards = [_card(total, "messages submitted")]
    cards += [_card(a.counts[s], f"{s} {pct(a.counts[s], total)}", STATE_MEANING[s], STATE_COLORS[s]) for s in STATES]
    cards.append(_card(a.attempts, "delivery attempts"))
    cards.append(
        f'<div class="card" id="duplicates-card" title="accepted more than once"><b>{a.duplicates}</b>'
        f"<span>accepted more than once</span></div>"
    )
    turned_away = sum(a.turned_away.values())
    if turned_away:
        cards.append(_card(turned_away, "sessions turned away (421 at a capacity limit)"))
    if a.delay_warnings:
        cards.append(_card(a.delay_warnings, "delay warnings to originators"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _incident_table(data: ReportData, rows: list[IncidentRow]) -> str:
    if not rows:
        return "<p>The timeline has no events: every server stays as it started.</p>"
    body = "".join(
        f'<tr><td class="l">{escape(data.short(r.t))}</td><td class="l">{escape(r.server)}</td><td class="l">{escape(r.what)}</td>'
        f'<td class="l">{escape(r.until)}</td><td class="l">{escape(r.note)}</td></tr>'
        for r in rows
    )
    return (
        '<table id="timeline-events"><tr><th class="l">when</th><th class="l">server</th><th class="l">event</th>'
        f'<th class="l">until</th><th class="l">note</th></tr>{body}</table>'
    )


def _windows_table(rows: list[WindowRow], declared: bool) -> str:
    head = "".join(f"<th>{s}</th>" for s in STATES)
    body = []
    for w in rows:
        cells = "".join(_cell(w.counts[s], w.total, s) for s in STATES)
        body.append(
            f'<tr><td>{w.number}</td><td class="l">{escape(w.label)}</td><td>{w.total}</td>{cells}<td class="sentence">{escape(w.sentence)}</td></tr>'
        )
    origin = (
        "the scenario's windows"
        if declared
        else "windows derived from the timeline: failures, recoveries, and the last good backup before each crash"
    )
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
            counts = w.by_group.get(g, {})
            total = sum(counts.values()) if counts else 0
            if not total:
                cells.append('<td class="zero">–</td>')
                continue
            lines = "".join(
                f'<div style="color:{STATE_COLORS[s]}"><b>{counts[s]}</b> {s} <small>{pct(counts[s], total)}</small></div>'
                for s in STATES
                if counts[s]
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
            f"<td>{duration(d.get('p50'))}</td><td>{duration(d.get('p95'))}</td><td>{duration(d.get('max'))}</td></tr>"
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
            f'<tr><td class="l">{escape(name)}</td>'
            + "".join(f'<td class="{"zero" if not n else ""}">{n}</td>' for n in row)
            + "</tr>"
            for name, row in q.rows.items()
        )
        out.append(
            f'<h3>{escape(q.title)}</h3><table class="qshape"><tr><th class="l">sender</th>{head}</tr>{body}</table>'
        )
    return "".join(out)


def _drain(seconds: float | None) -> str:
    if seconds is None:
        return '<td data-seconds="">not before the next outage</td>'
    return f'<td data-seconds="{seconds:g}">{duration(seconds)}</td>'


def _storms_table(data: ReportData, storms: list[metrics.Storm]) -> str:
    a = data.analysis
    body = "".join(
        f'<tr><td class="l">{escape(s.server)}</td><td class="l">{escape(data.short(s.at))}</td><td>{s.backlog}</td>'
        f"<td>{s.backlog_senders}</td><td>{s.backlog_relays}</td>"
        f"<td>{s.peak_per_minute}</td><td>{escape(data.short(s.peak_at))}</td><td>{s.first_hour}</td>"
        f"{_drain(s.drained_90)}{_drain(s.drained)}<td>{a.turned_away_between(s.server, s.at, s.until)}</td></tr>"
        for s in storms
    )
    return (
        '<table id="storms-table"><tr><th class="l">server</th><th class="l">back at</th><th>backlog</th>'
        "<th>in senders' queues</th><th>on backup MX</th><th>peak sessions/min</th><th>peak at</th>"
        "<th>sessions, first hour</th><th>90% drained after</th><th>all drained after</th>"
        f'<th title="sessions refused with 421 at a capacity limit while the backlog drained">turned away</th></tr>{body}</table>'
    )


def _bounces(data: ReportData, rows: list[BounceRow]) -> str:
    bounced = data.analysis.counts["bounced"]
    if rows:
        body = "".join(
            f'<tr><td class="l"><code>{escape(r.status)}</code></td><td class="l">{escape(r.reason)}</td><td>{r.count}</td>'
            f'<td>{pct(r.count, bounced)}</td><td class="sentence">{escape(r.meaning)}</td></tr>'
            for r in rows
        )
        table = (
            '<table id="bounces-table"><tr><th class="l">status</th><th class="l">reason</th><th>messages</th>'
            f'<th>of the bounces</th><th class="l">what it means</th></tr>{body}</table>'
        )
    else:
        table = "<p>No message bounced.</p>"
    return (
        f'<section id="bounces"><h2>Bounces and duplicates</h2><h3>Why mail bounced</h3>{table}'
        f'<h3>Mail accepted more than once</h3><p id="duplicates">{escape(duplicates_sentence(data))}</p></section>'
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
    incidents: list[IncidentRow],
    bounces: list[BounceRow],
) -> str:
    """The whole page."""
    a = data.analysis
    title = f"{data.name}: what happened to the mail?"
    description = a.facts.description.strip()
    intro = (
        f"Seed {a.facts.seed}, simulated {data.when(0):%Y-%m-%d %H:%M} to {data.when(data.end):%Y-%m-%d %H:%M}, "
        f"{a.messages} messages from {len(senders)} sender group(s) to {len(data.servers)} server(s)."
    )
    sections = [
        f'<h1>{escape(title)}</h1>{description_html(description)}<p class="lede">{intro}</p>',
        f'<section id="summary">{_cards(data)}{_legend()}</section>',
        sources_section(a),
        f'<section id="timeline"><h2>Incident timeline</h2>{_figure(figures["timeline"], "incident timeline", "Each server: accepting mail or down, its disk, and its faults; backups, crashes, restores and disk recoveries marked")}'
        f"{_incident_table(data, incidents)}</section>",
        f'<section id="what-happened"><h2>What happened to the mail?</h2>{_windows_table(windows, a.facts.windows_declared)}'
        f"<h3>Per sender group and window</h3>{_window_by_sender(data, windows, [g for g in data.groups if any(g in w.by_group for w in windows)])}</section>",
        _bounces(data, bounces),
        f'<section id="outcomes"><h2>Outcome by submission time</h2>{_figure(figures["outcomes"], "outcome by submission time", "Messages per time slot, coloured by final state")}</section>',
        f'<section id="senders"><h2>By sender group</h2>{_senders_table(senders)}</section>',
        f'<section id="queues"><h2>Queue depth</h2>{_figure(figures["queue"], "queue depth per sender group", "Messages waiting in sender queues")}'
        f"<p>Queue ages in minutes, like Postfix's <code>qshape</code>: each column counts messages at most that many minutes old; T is the total.</p>"
        f"{_qshape_tables(qshapes)}</section>",
        mailbox_section(a),
        f'<section id="delays"><h2>Delivery delay</h2>{_figure(figures["delays"], "delivery delay distribution per sender group", "Cumulative share of each group’s messages accepted within a given delay")}</section>',
    ]
    if storms:
        sections.append(
            f'<section id="recovery"><h2>Recovery storms</h2>{_figure(figures["storms"], "load and backlog after each recovery", "SMTP sessions per simulated minute and the backlog after each recovery")}'
            f"{_storms_table(data, storms)}</section>"
        )
    sections.append(_thresholds(data.thresholds))
    files = ", ".join(
        sorted(
            p.name for p in data.folder.iterdir() if p.is_file() and p.suffix in (".csv", ".json", ".jsonl", ".mbox")
        )
    )
    sections.append(f"<footer>Generated by smtp-outage from {escape(str(data.folder))}: {escape(files)}.</footer>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<script>{_SCRIPT_HEAD}</script><style>{_CSS}</style></head>\n"
        f'<body><main><ul id="report-errors"></ul>\n' + "\n".join(sections) + "\n</main></body></html>\n"
    )
