"""Report sections for an incident replayed from public reports: its sources, and mail readable late.

``sources_section`` lists the reports the scenario encodes (title, address,
date, where the text was read, the sentences taken from it), so every report
of an incident names what it rests on. ``mailbox_section`` shows, when a
server's delivery into the mailboxes was not immediate, how much mail was
readable late: accepted with a 250 at once, in a mailbox only later.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..analysis import Analysis
from ..durations import format_duration
from .tables import pct

__all__ = ["sources_section", "mailbox_section", "description_html", "paragraphs"]


def paragraphs(text: str) -> list[str]:
    """A description's paragraphs: split at blank lines when it has some (a literal block), else at line
    breaks (a folded ``>`` block, where a blank line in the file becomes one line break)."""
    text = text.strip()
    parts = text.split("\n\n") if "\n\n" in text else text.split("\n")
    return [" ".join(p.split()) for p in parts if p.strip()]


def description_html(text: str) -> str:
    """The scenario's description as paragraphs."""
    return "".join(f'<p class="lede">{escape(p)}</p>' for p in paragraphs(text))


def _link(url: str) -> str:
    shown = escape(url)
    if url.startswith(("http://", "https://")):
        return f'<a href="{shown}" rel="noreferrer">{shown}</a>'
    return shown


def _source(source: dict[str, Any]) -> str:
    title = escape(str(source.get("title", "")))
    published = source.get("published")
    head = f"<b>{title}</b>" + (f", {escape(str(published))}" if published else "")
    head += f"<br>{_link(str(source.get('url', '')))}"
    via = source.get("via")
    if via:
        head += f"<br>read at {_link(str(via))}"
    quotes = "".join(f"<blockquote>{escape(str(q))}</blockquote>" for q in source.get("quotes", []))
    return f"<li>{head}{quotes}</li>"


def sources_section(a: Analysis) -> str:
    """``Sources``: the public reports the scenario encodes, or nothing when it names none."""
    sources = a.facts.sources
    if not sources:
        return ""
    items = "".join(_source(s) for s in sources)
    return (
        '<section id="sources"><h2>Sources</h2><p>The incident as these reports tell it; '
        "what they leave open is marked ASSUMPTION in the scenario file.</p>"
        f'<ol class="sources">{items}</ol></section>'
    )


def _share(n: int, total: int) -> str:
    return f"{n} ({pct(n, total)})" if n else '<span class="zero">0</span>'


def mailbox_section(a: Analysis) -> str:
    """``Readable in the mailbox``: mail delayed beyond each mark, per sender group (only when delivery was slowed)."""
    if not a.delivery_queues:
        return ""
    rows = a.mailbox_delays
    marks = list(next(iter(rows.values()))["delayed"]) if rows else []
    head = "".join(f"<th>later than {format_duration(m)}</th>" for m in marks)
    body = []
    for label, row in rows.items():
        total = row["messages"]
        cells = "".join(f"<td>{_share(row['delayed'][m], total)}</td>" for m in marks)
        body.append(
            f'<tr><td class="l">{escape(label)}</td><td>{total}</td><td>{row["accepted"]}</td>{cells}'
            f"<td>{_share(row['queued'], total)}</td></tr>"
        )
    return (
        '<section id="mailbox"><h2>Readable in the mailbox</h2>'
        "<p>A 250 is not a mailbox: these servers accepted mail at once and delivered it into the mailboxes "
        "through a queue of their own. Counted here: messages readable more than each delay after they were "
        "sent (the time in senders' queues and in the server's delivery queue together), and mail still queued "
        "anywhere when the run ends.</p>"
        f'<table><tr><th class="l">sender group</th><th>messages</th><th>accepted</th>{head}<th>queued at the end</th></tr>'
        f"{''.join(body)}</table></section>"
    )
