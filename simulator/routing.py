"""Where mail for a domain goes: MX records, DNS TTL caching, and MX fallback rules.

``Dns`` holds the authoritative MX list of each domain (most preferred
first), changed by the timeline's ``dns`` entries. Each sending MTA has a
``Resolver`` that caches an answer for its TTL, so a changed MX reaches a
sender only when its cached answer expires (RFC 5321 section 5.1; equal
preferences are ordered by server name, deterministically).
"""

from __future__ import annotations

from dataclasses import dataclass

from .policies import Failure, FailureKind, Stage
from .scenario import ServerSpec

__all__ = ["Dns", "Resolver", "next_mx_allowed", "MX_ADDRESS_LIMIT"]

MX_ADDRESS_LIMIT = 5
"""MX hosts tried per delivery (Postfix ``smtp_mx_address_limit``, Exim ``hosts_max_try``)."""


@dataclass(frozen=True, slots=True)
class _Record:
    mx: tuple[str, ...]
    ttl: float


class Dns:
    """Authoritative MX records for every served domain."""

    def __init__(self, servers: list[ServerSpec], ttl: float = 3600.0) -> None:
        by_domain: dict[str, list[ServerSpec]] = {}
        for spec in servers:
            for domain in spec.domains:
                by_domain.setdefault(domain.lower(), []).append(spec)
        self._records = {
            domain: _Record(tuple(s.name for s in sorted(specs, key=lambda s: (s.preference, s.name))), ttl)
            for domain, specs in by_domain.items()
        }

    def set(self, domain: str, mx: list[str], ttl: float) -> None:
        """Publish new MX records for *domain*."""
        self._records[domain.lower()] = _Record(tuple(mx), ttl)

    def lookup(self, domain: str) -> tuple[tuple[str, ...], float]:
        """The current MX list and its TTL."""
        record = self._records[domain.lower()]
        return record.mx, record.ttl

    @property
    def domains(self) -> list[str]:
        """Served domains, sorted."""
        return sorted(self._records)


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


def next_mx_allowed(policy_name: str, failure: Failure) -> bool:
    """Whether the sending MTA tries the next MX host after *failure* (retry-policies.md section 8).

    Connection failures move on everywhere. qmail never falls back once
    connected. Postfix and Exim (and the default) also move on after a 4xx
    greeting, a 4xx to MAIL/RCPT/DATA/dot, or a connection lost before the
    dot. A 5xx never moves on (Postfix rewrites a 5xx greeting to 4xx).
    """
    if failure.kind in (FailureKind.REFUSED, FailureKind.TIMEOUT) and failure.stage in (Stage.CONNECT, Stage.GREETING):
        return True
    if policy_name.startswith("qmail"):
        return False
    if failure.kind is FailureKind.PERMFAIL:
        return policy_name.startswith("postfix") and failure.stage is Stage.GREETING
    if failure.kind is FailureKind.DROPPED:
        return failure.stage is not Stage.DOT
    return failure.kind in (FailureKind.TEMPFAIL, FailureKind.TIMEOUT)
