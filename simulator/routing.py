"""Where a sender's mail goes: the published MX records, each sender's DNS cache, and the hosts it tries.

``Dns`` publishes the scenario's MX records (``simulator.schema.mx.MxTable``,
the same model the analysis reads) and the timeline's ``dns`` changes. Each
sending MTA has a ``Resolver`` that caches an answer for its TTL, so a
changed MX reaches a sender only when its cached answer expires (RFC 5321
section 5.1). ``hosts_to_try`` is the router: the MX hosts one delivery
attempt walks, in order.
"""

from __future__ import annotations

from collections.abc import Iterable

from .scenario import ServerSpec
from .schema.mx import MxTable

__all__ = ["Dns", "Resolver", "hosts_to_try", "MX_ADDRESS_LIMIT"]

MX_ADDRESS_LIMIT = 5
"""MX hosts tried per delivery (Postfix ``smtp_mx_address_limit``, Exim ``hosts_max_try``)."""


class Dns:
    """Authoritative MX records for every served domain, with a TTL per domain."""

    def __init__(self, servers: Iterable[ServerSpec], ttl: float = 3600.0) -> None:
        self.table = MxTable(MxTable.hosts_of(servers))
        self._ttl = dict.fromkeys(self.table.domains, ttl)

    def set(self, domain: str, mx: list[str], ttl: float) -> None:
        """Publish new MX records for *domain*."""
        self.table.set(domain, mx)
        self._ttl[domain.lower()] = ttl

    def lookup(self, domain: str) -> tuple[tuple[str, ...], float]:
        """The current MX list and its TTL."""
        return self.table.mx(domain), self._ttl[domain.lower()]

    @property
    def domains(self) -> list[str]:
        """Served domains, sorted."""
        return self.table.domains


class Resolver:
    """One MTA's DNS cache."""

    def __init__(self, dns: Dns) -> None:
        self._dns = dns
        self._cache: dict[str, tuple[tuple[str, ...], float]] = {}

    def mx(self, domain: str, now: float) -> tuple[str, ...]:
        """MX hosts for *domain*, from the cache while its TTL lasts."""
        cached = self._cache.get(domain)
        if cached is not None and now < cached[1]:
            return cached[0]
        hosts, ttl = self._dns.lookup(domain)
        self._cache[domain] = (hosts, now + ttl)
        return hosts


def hosts_to_try(resolver: Resolver, domain: str, now: float, relay_for: str | None = None) -> tuple[str, ...]:
    """The MX hosts a delivery attempt walks, most preferred first, at most ``MX_ADDRESS_LIMIT``.

    A backup MX (*relay_for*) discards its own record and those of equal or
    lower preference (RFC 5321 section 5.1).
    """
    hosts = resolver.mx(domain, now)
    if relay_for is not None:
        hosts = hosts[: hosts.index(relay_for)] if relay_for in hosts else hosts
    return hosts[:MX_ADDRESS_LIMIT]
