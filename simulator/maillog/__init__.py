"""Mail logs of a real server (Postfix maillog, Exim mainlog) read into typed records, and imported as traffic.

The parser (the part a live run reuses to read a real Postfix's log back)::

    from simulator.maillog import read_log, parse_lines, Accepted

    for record in read_log(["/var/log/maillog.1.gz", "/var/log/maillog"], "postfix", year=2024):
        if isinstance(record, Accepted):
            print(record.at, record.queue_id, record.client, record.sender, record.size, record.nrcpt)

Records (``simulator.maillog.records``): ``Connect``, ``Accepted`` (queue id,
client, HELO, sender, size, nrcpt), ``Delivery`` (one recipient: sent,
deferred or bounced), ``Removed``, ``Expired``, ``Disconnect``, ``Rejected``,
``DaemonStart``, ``DaemonStop``, ``Fatal``, ``Panic``, ``NoSpace`` and
``BadLine`` (counted, never fatal). ``PostfixParser`` and ``EximParser`` take
one line at a time; ``PostfixParser.entry`` takes a line whose syslog header
was read elsewhere.

The sending side (``simulator.maillog.sending``): ``sending_history`` turns
a sending MTA's records into its messages with their attempts (connected or
suspended) and how each ended, for ``smtp-outage fidelity``.

The import (``smtp-outage import``): ``import_files`` reads a receiving
server's log, groups its arrivals by sending organisation, proposes outage
windows and writes a traffic CSV or a scenario skeleton.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..errors import Problem, RunError, ScenarioError
from .exim import EximParser
from .importer import ImportOptions, LogImport, import_log
from .organisations import Organisations, load_organisations
from .outages import Outages, backfill, propose
from .postfix import PostfixParser
from .pseudonym import Pseudonyms
from .reader import FORMATS, LogFormat, LogReader, parse_lines, read_log
from .records import (
    Accepted,
    BadLine,
    Client,
    Connect,
    DaemonStart,
    DaemonStop,
    Delivery,
    Disconnect,
    Expired,
    Fatal,
    NoSpace,
    Panic,
    Record,
    Rejected,
    Removed,
)
from .sending import SentMessage, Try, sending_history
from .skeleton import one_csv_numbering, write_scenario, write_traffic_csv
from .summary import describe
from .timestamps import Stamps

__all__ = [
    "sending_history",
    "SentMessage",
    "Try",
    "read_log",
    "parse_lines",
    "LogReader",
    "LogFormat",
    "FORMATS",
    "PostfixParser",
    "EximParser",
    "Stamps",
    "Record",
    "Client",
    "Connect",
    "Accepted",
    "Delivery",
    "Removed",
    "Expired",
    "Disconnect",
    "Rejected",
    "DaemonStart",
    "DaemonStop",
    "Fatal",
    "Panic",
    "NoSpace",
    "BadLine",
    "ImportOptions",
    "LogImport",
    "Imported",
    "import_log",
    "import_files",
    "Outages",
    "Organisations",
    "load_organisations",
    "Pseudonyms",
]


@dataclass
class Imported:
    """An import done: what was read, the outages proposed, the files written and what they say."""

    log: LogImport
    outages: Outages
    written: list[Path] = field(default_factory=list)
    mtas: int = 0  #: for a single CSV: the sender group count it needs (one MTA per sending host)

    def lines(self) -> list[str]:
        """The report ``smtp-outage import`` prints."""
        return describe(self.log, self.outages, self.log.options.default_policy)


def import_files(
    paths: list[Path],
    options: ImportOptions,
    *,
    out: Path | None = None,
    scenario: Path | None = None,
    server: str | None = None,
    min_gap: timedelta = timedelta(minutes=30),
    move_backlog: bool = False,
) -> Imported:
    """Import *paths* and write a traffic CSV (*out*) or a scenario skeleton (*scenario*) with its CSVs.

    The skeleton is loaded back and validated before this returns. Raises
    ``ScenarioError`` for bad input and ``RunError`` when what was written
    does not validate (a bug, not the log's fault).
    """
    if (out is None) == (scenario is None):
        raise ScenarioError([Problem("import", None, "", "give either --out traffic.csv or --scenario NEW.yaml")])
    imp = import_log(paths, options)
    outages = propose(imp, min_gap)
    if move_backlog:
        backfill(imp, outages.proposals)
    result = Imported(imp, outages)
    if out is not None:
        numbering = one_csv_numbering(imp.rows)
        write_traffic_csv(out, imp.rows, numbering)
        result.written = [out]
        result.mtas = len(set(numbering.values()))
        return result
    assert scenario is not None
    name = server or _server_name(imp.host)
    result.written = write_scenario(scenario, imp, outages, server=name, active=move_backlog)
    from ..loader import load_scenario

    try:
        load_scenario(scenario)
    except ScenarioError as exc:
        raise RunError(f"the scenario written to {scenario} does not validate: {exc}") from None
    return result


def _server_name(host: str) -> str:
    import re

    name = re.sub(r"[^a-z0-9._-]+", "-", host.lower().partition(".")[0]).strip("-._")
    return name or "mx"
