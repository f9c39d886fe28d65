"""What an import read and made, in lines a person reads (``smtp-outage import`` prints them)."""

from __future__ import annotations

from datetime import datetime

from .importer import BAD_EXAMPLES, OTHER, LogImport
from .outages import Outages

__all__ = ["describe"]


def _t(when: datetime) -> str:
    return when.strftime("%m/%d %H:%M:%S")


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def describe(imp: LogImport, outages: Outages, default_policy: str) -> list[str]:
    """The import's report: the files, the year and zone, bad lines, groups with their rules, outages."""
    r = imp.reader
    kind = "Postfix" if imp.options.format == "postfix" else "Exim"
    host = f", host {imp.host}" if imp.host else ""
    lines = [
        f"{', '.join(r.files)} ({kind}{host}): {r.lines} lines, {r.mail_lines} written by {kind}, {r.bad} unreadable"
    ]
    if r.year_note:
        lines.append(f"  year: {r.year_note}")
    for when in r.rollovers:
        lines.append(f"  the year turns at {when:%Y-%m-%d %H:%M:%S}")
    zone = imp.options.zone
    if zone is not None:
        lines.append(f"  times: local time in {zone} (--timezone)")
    else:
        lines.append("  times: the log's own local time; its zone is not stated (--timezone ZONE states it)")
    if imp.bad_examples:
        lines.append(f"  unreadable lines (the first {min(r.bad, BAD_EXAMPLES)} of {r.bad}, not fatal):")
        for bad in imp.bad_examples:
            lines.append(f"    {bad.source}:{bad.line}: {_short(repr(bad.text))}: {bad.why}")
    rows = imp.rows
    moved = sum(1 for row in rows if row.moved_from is not None)
    domains = ", ".join(f"{d} {n}" for d, n in imp.recipient_domains.most_common(5))
    lines.append(
        f"messages from other servers: {len(rows)}, {_t(rows[0].at)} to {_t(rows[-1].at)}"
        + (f"; {imp.recipients} recipients: {domains}" if imp.recipients else "; no recipient addresses logged")
    )
    if moved:
        lines.append(f"  {moved} of them moved from after an outage into it (--backfill)")
    for why, n in sorted(imp.skipped.items()):
        lines.append(f"  left out: {n} {why}")
    lines.append("sender groups (group, messages, sending hosts, policy, recognised by):")
    groups = sorted(imp.groups.values(), key=lambda g: (g.name == OTHER, -g.messages, g.name))
    width = max(len(g.name) for g in groups)
    for g in groups:
        policy = g.preset or default_policy
        if g.match is None:
            how = "no organisation matched: --default-policy"
        else:
            how = f"{g.match.rule} ({g.match.table})"
            if g.preset is None:
                how += "; no preset of its own: --default-policy"
        lines.append(f"  {g.name:<{width}} {g.messages:>7} {len(g.hosts):>5}  {policy:<13} {how}")
    if outages.proposals:
        lines.append("proposed outage windows:")
        for i, p in enumerate(outages.proposals, 1):
            lines.append(f"  {i}. {_t(p.start)} to {_t(p.end)}  {p.title}")
            for reason in p.reasons:
                lines.append(f"       {_short(reason, 140)}")
            if p.backfill_note:
                lines.append(f"       backlog: {p.backfill_note}; {p.moved} moved into the outage")
    else:
        lines.append("no outage window proposed: no restart, fatal or panic line, full disk or long gap in arrivals")
    for note in outages.notes:
        lines.append(f"  also seen: {_short(note, 140)}")
    return lines
