"""Where mail for a domain goes: the MX records a scenario publishes, and their changes.

One model serves the engine and the analysis alike. The engine routes with
it (``simulator.routing.Dns`` publishes the timeline's ``dns`` changes into
an ``MxTable``; each sender caches answers for their TTL); the analysis of a
finished run rebuilds the same table from the run's servers and its logged
``dns`` events to say which server a message was meant for.

Equal preferences are ordered by server name (RFC 5321 section 5.1 leaves the
order to chance; a replay must be deterministic). A backup MX (a server with
a ``relay``) stores and forwards: mail *for* a domain is meant for the most
preferred MX host that is not a relay, its *primary*.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scenario import ServerSpec

__all__ = ["MxHost", "MxTable", "MxHistory"]


@dataclass(frozen=True, slots=True)
class MxHost:
    """A receiving server as DNS sees it: its name, its domains, its MX preference, and whether it relays."""

    name: str
    domains: tuple[str, ...]
    preference: int = 10
    relay: bool = False


class MxTable:
    """The current MX list of every served domain, most preferred first."""

    def __init__(self, hosts: Iterable[MxHost]) -> None:
        hosts = list(hosts)
        self.relays = frozenset(h.name for h in hosts if h.relay)
        by_domain: dict[str, list[MxHost]] = {}
        for host in hosts:
            for domain in host.domains:
                by_domain.setdefault(domain.lower(), []).append(host)
        self._mx = {
            domain: tuple(h.name for h in sorted(found, key=lambda h: (h.preference, h.name)))
            for domain, found in by_domain.items()
        }

    @staticmethod
    def hosts_of(servers: Iterable[ServerSpec]) -> list[MxHost]:
        """The MX hosts a scenario's ``servers:`` publish."""
        return [MxHost(s.name, tuple(s.domains), s.preference, s.relay is not None) for s in servers]

    def set(self, domain: str, mx: Iterable[str]) -> None:
        """Publish new MX records for *domain* (a timeline ``dns`` entry)."""
        self._mx[domain.lower()] = tuple(mx)

    def mx(self, domain: str) -> tuple[str, ...]:
        """The MX hosts of *domain*, most preferred first (empty for a domain nobody serves)."""
        return self._mx.get(domain.lower(), ())

    def primary(self, domain: str) -> str | None:
        """The most preferred MX host of *domain* that is not a backup relay."""
        return next((name for name in self.mx(domain) if name not in self.relays), None)

    @property
    def domains(self) -> list[str]:
        """Served domains, sorted."""
        return sorted(self._mx)


class MxHistory:
    """The MX table over simulated time: the initial table and each ``dns`` change, in time order."""

    def __init__(self, hosts: Iterable[MxHost], changes: Iterable[tuple[float, str, Iterable[str]]] = ()) -> None:
        hosts = list(hosts)
        self._initial = MxTable(hosts)
        self.relays = self._initial.relays
        self._changes: dict[str, tuple[list[float], list[tuple[str, ...]]]] = {}
        for t, domain, mx in sorted(changes, key=lambda c: c[0]):
            times, lists = self._changes.setdefault(domain.lower(), ([], []))
            times.append(t)
            lists.append(tuple(mx))

    def mx(self, domain: str, t: float) -> tuple[str, ...]:
        """The authoritative MX list of *domain* at simulated time *t* (a change at *t* applies)."""
        found = self._changes.get(domain.lower())
        if found is not None:
            i = bisect_right(found[0], t)
            if i:
                return found[1][i - 1]
        return self._initial.mx(domain)

    def primary(self, domain: str, t: float) -> str | None:
        """The server mail for *domain* is meant for at *t*: its most preferred MX host that is not a relay."""
        return next((name for name in self.mx(domain, t) if name not in self.relays), None)
