"""Writing what an import found: a traffic CSV, or a scenario skeleton with one CSV per sender group.

The traffic CSV is the one ``simulator.schema.inputs`` reads (``at,mta,rcpt``):
``at`` in the log's clock (with its UTC offset when a zone was stated),
``mta`` the sending host's number, ``rcpt`` the first recipient's local part
(a pseudonym unless raw addresses were asked for).

The scenario skeleton is YAML written as text, so that it can carry
comments: where every figure came from, the rule that recognised each
sending organisation, and the proposed outage windows as a commented
timeline stub (active entries when the backlog was moved into them).
"""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ..policies import PRESETS
from .importer import OTHER, Group, LogImport, Row
from .outages import Outages, Proposal

__all__ = ["write_traffic_csv", "write_scenario", "scenario_name", "traffic_folder", "PHASES"]

PHASES = {
    "postfix": "scan_phase",
    "postfix-legacy": "scan_phase",
    "exim": "queue_runner_phase",
    "sendmail": "queue_phase",
}
"""Presets whose independent MTAs should not scan their queues in step: the setting that staggers them."""
_NAME = re.compile(r"[^a-z0-9._-]+")
_DISK = (
    "If the disk was lost too, say `crash` instead of `down` (mail accepted since the last good `backup` then "
    "exists only on the failed disk) and bring the server back with `restore` or `recover-disk` before `up`."
)
_DAY = 86400.0


def _at(when: datetime) -> str:
    return when.isoformat(sep=" ", timespec="seconds")


def scenario_name(path: Path) -> str:
    """A scenario name from a file name: lowercase letters, digits, '.', '_' and '-'."""
    name = _NAME.sub("-", path.stem.lower()).strip("-._")
    return name or "imported"


def traffic_folder(path: Path) -> Path:
    """Where the group CSVs of scenario *path* go: ``NAME-traffic/`` beside it."""
    return path.with_name(f"{path.stem}-traffic")


def write_traffic_csv(path: Path, rows: list[Row], mta_of: dict[tuple[str, int], int] | None = None) -> int:
    """Write *rows* as a traffic CSV; *mta_of* renumbers (group, mta) pairs. Returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(("at", "mta", "rcpt"))
        for row in rows:
            mta = mta_of[(row.group, row.mta)] if mta_of is not None else row.mta
            out.writerow((_at(row.at), mta, row.rcpt))
    return len(rows)


def one_csv_numbering(rows: list[Row]) -> dict[tuple[str, int], int]:
    """MTA numbers across groups for a single CSV: each (group, host) in order of its first arrival."""
    numbering: dict[tuple[str, int], int] = {}
    for row in rows:
        numbering.setdefault((row.group, row.mta), len(numbering))
    return numbering


def _lifetime(preset: str) -> float:
    p = PRESETS[preset]
    gives_up = p.build(p.params()).gives_up_after
    return 7 * _DAY if gives_up is None else float(gives_up)


def _policy(preset: str, count: int) -> str:
    phase = PHASES.get(preset)
    return f"{{preset: {preset}, {phase}: random}}" if phase and count > 1 else preset


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(text)


def _comment(text: str, indent: str = "  ", width: int = 100) -> list[str]:
    """*text* as comment lines; a text starting with "- " hangs its continuation lines under the first."""
    words, line = text.split(), ""
    lines: list[str] = []
    hang = "  " if text.startswith("- ") else ""
    for word in words:
        lead = f"{indent}# {hang if lines else ''}"
        if line and len(lead) + len(line) + 1 + len(word) > width:
            lines.append(f"{lead}{line}")
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(f"{indent}# {hang if lines else ''}{line}")
    return lines


def write_scenario(path: Path, imp: LogImport, outages: Outages, *, server: str, active: bool) -> list[Path]:
    """Write the scenario skeleton *path* and its group CSVs; returns the files written.

    *active*: the proposed outage windows are timeline entries (the backlog
    was moved into them); otherwise they are a commented stub.
    """
    name = scenario_name(path)
    folder = traffic_folder(path)
    groups = sorted(imp.groups.values(), key=lambda g: (g.name == OTHER, -g.messages, g.name))
    domains = _domains(imp)
    written: list[Path] = []
    by_group: dict[str, list[Row]] = {g.name: [] for g in groups}
    for row in imp.rows:
        by_group[row.group].append(row)
    for g in groups:
        target = folder / f"{g.name}.csv"
        write_traffic_csv(target, by_group[g.name])
        written.append(target)
    presets = {g.name: g.preset or imp.options.default_policy for g in groups}
    longest = max(_lifetime(p) for p in presets.values())
    starts = [imp.rows[0].at, *(p.start for p in outages.proposals)]
    ends = [imp.rows[-1].at, *(p.end for p in outages.proposals)]
    start = (imp.options.start or min(starts)).replace(minute=0, second=0, microsecond=0)
    start = min(start, min(starts).replace(minute=0, second=0, microsecond=0))
    end = max(ends) + timedelta(seconds=longest + 3600)
    end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    named = "." in imp.host and not imp.options.hide_domains
    hostname = imp.host.lower() if named else f"{server}.{domains[0]}"
    lines = _header(imp, name, server)
    lines += [
        "clock:",
        f"  start: {_q(_at(start.replace(tzinfo=None)))}",
        f"  end: {_q(_at(end.replace(tzinfo=None)))}",
        *_comment(
            f"the end is the last arrival plus the longest retry lifetime of the groups below ({_lifetime_text(longest)}) "
            "and an hour, so that every sender's queue drains or bounces"
        ),
    ]
    zone = imp.options.zone
    if isinstance(zone, ZoneInfo):
        lines.append(f"  timezone: {zone.key}")
    else:
        lines += _comment("no timezone: times are the log's own local time, as it wrote them")
    lines += ["", "servers:", f"  - name: {server}", f"    domains: [{', '.join(_q(d) for d in domains)}]"]
    lines += [f"    hostname: {_q(hostname)}", ""]
    lines += _timeline(outages, server, active)
    lines += ["", "senders:"]
    lines += _comment(
        "one group per sending organisation, recognised from the client's reverse DNS or HELO name; each "
        "sending host is one MTA (numbered in order of its first message) and its arrivals are replayed from the log"
        + (
            f". The log's mail went to {len(domains)} domains of this one server; each group sends to its main one "
            "(the same server receives them all)"
            if len(domains) > 1
            else ""
        )
    )
    for g in groups:
        lines += _group(g, presets[g.name], folder.name, domains, imp)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    written.insert(0, path)
    return written


def _lifetime_text(seconds: float) -> str:
    from ..durations import format_duration

    return format_duration(seconds)


def _domains(imp: LogImport) -> list[str]:
    domains = [d for d, _ in imp.recipient_domains.most_common(50)]
    if domains:
        return domains
    host = imp.host.lower()
    return [host.partition(".")[2]] if host.count(".") >= 2 else ["example.invalid"]


def _header(imp: LogImport, name: str, server: str) -> list[str]:
    r = imp.reader
    kind = "Postfix maillog" if imp.options.format == "postfix" else "Exim mainlog"
    names = (
        "raw addresses (--raw-addresses)"
        if imp.options.raw_addresses
        else (
            "pseudonymous recipients (a keyed hash"
            + (", domains hidden too)" if imp.options.hide_domains else " of each address, domains kept)")
        )
    )
    zone = imp.options.zone
    zone_text = f"times in {zone}" if zone is not None else "times in the log's local time (no zone stated)"
    moved = sum(1 for row in imp.rows if row.moved_from is not None)
    out = [f"# Imported by `smtp-outage import` from the {kind} of {server}: {', '.join(r.files)}."]
    out += _comment(
        f"{r.lines} lines, {r.mail_lines} of them the MTA's, {r.bad} unreadable; {len(imp.rows)} messages from other "
        f"servers between {_at(imp.rows[0].at)} and {_at(imp.rows[-1].at)}"
        + (f" ({moved} moved into outages, see the timeline)" if moved else "")
        + f"; {zone_text}; {names}.",
        indent="",
    )
    if r.year_note:
        out += _comment(f"Syslog lines have no year: {r.year_note}.", indent="")
    for why, n in sorted(imp.skipped.items()):
        out += _comment(f"Left out: {n} message(s) {why}.", indent="")
    out += _comment(
        "Arrival times are when the server accepted each message, not when its sender sent it: mail sent "
        "while the server was down arrives after it comes back, when its senders retry.",
        indent="",
    )
    out += [
        f"name: {name}",
        f"description: {_q(f'Mail received by {server}, replayed from its log ({len(imp.rows)} messages).')}",
        "seed: 1",
        "",
    ]
    return out


def _timeline(outages: Outages, server: str, active: bool) -> list[str]:
    lines = ["timeline:"]
    if not outages.proposals:
        lines += _comment("the log shows no restart, fatal or panic line, full disk or long gap in arrivals")
    elif active:
        lines += _comment(
            "proposed from the log and applied (--backfill): the arrivals after each outage beyond the usual rate "
            f"(its backlog) were moved into it. {_DISK}"
        )
    else:
        lines += _comment(
            "proposed outage windows, from the log: uncomment what was an outage and remove the [] at the end. "
            f"{_DISK} Mail sent during an outage arrived after it: `smtp-outage import --backfill` moves it back "
            "into the outage and applies these entries."
        )
    for i, p in enumerate(outages.proposals, 1):
        lines.append("")
        lines += _comment(f"{i}. {p.title}, {_at(p.start)} to {_at(p.end)}.")
        for reason in p.reasons:
            lines += _comment(f"- {reason}")
        if p.backfill_note:
            lines += _comment(f"- backlog: {p.backfill_note}; {p.moved} moved into the outage")
        prefix = "  " if p.applied else "  # "
        lines += [f"{prefix}{e}" for e in _entries(p, server)]
    if outages.notes:
        lines.append("")
        lines += _comment("Also seen, not proposed:")
        for note in outages.notes:
            lines += _comment(f"- {note}")
    if not any(p.applied for p in outages.proposals):
        lines.append("  []")
    return lines


def _entries(p: Proposal, server: str) -> list[str]:
    start, end = _q(_at(p.start.replace(tzinfo=None))), _q(_at(p.end.replace(tzinfo=None)))
    if p.event == "fault":
        return [
            f"- {{at: {start}, server: {server}, event: fault, until: {end}, fault: {{kind: disk-full, stage: rcpt}}, "
            f"note: {_q(p.title)}}}"
        ]
    return [
        f"- {{at: {start}, server: {server}, event: down, mode: refuse, note: {_q(p.title)}}}",
        f"- {{at: {end}, server: {server}, event: up, note: {_q('back: mail arrives again')}}}",
    ]


def _group(g: Group, preset: str, folder: str, domains: list[str], imp: LogImport) -> list[str]:
    count = len(g.hosts) if len(g.hosts) < imp.options.max_mtas else imp.options.max_mtas
    lines = [f"  - name: {g.name}"]
    if g.match is not None:
        org = g.match.organisation
        how = f"{g.messages} messages from {len(g.hosts)} host(s), recognised by {g.match.rule} ({g.match.table})"
        lines += _comment(how, indent="    ")
        lines += _comment(f"source: {org.source}", indent="    ")
        if org.preset is None:
            lines += _comment(f"no preset of its own: --default-policy {preset}", indent="    ")
    else:
        lines += _comment(
            f"{g.messages} messages from {len(g.hosts)} host(s) no organisation matched: --default-policy {preset}",
            indent="    ",
        )
    if len(g.hosts) > imp.options.max_mtas:
        lines += _comment(f"{len(g.hosts)} hosts share {count} MTAs (--max-mtas)", indent="    ")
    top = ", ".join(f"{d} {n}" for d, n in g.sender_domains.most_common(3))
    lines += _comment(f"envelope sender domains: {top}", indent="    ")
    lines += [f"    count: {count}", f"    policy: {_policy(preset, count)}"]
    traffic = f"    traffic: {{csv: {_q(f'{folder}/{g.name}.csv')}"
    if len(domains) > 1:
        to = next((d for d, _ in g.recipient_domains.most_common(1) if d in domains), domains[0])
        traffic += f", to: {_q(to)}"
    lines.append(traffic + "}")
    return lines
