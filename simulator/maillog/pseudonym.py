"""Pseudonymous addresses, so that what is made from a log can be shared.

``Pseudonyms(key)`` replaces an address's local part with a keyed hash
(HMAC-SHA256 of the whole address, lower-cased): the same address always
gives the same token under one key, a different key gives different tokens,
and without the key the tokens cannot be matched against guessed addresses.
Domains are kept unless ``domains=True``, when they become
``d<hash>.invalid`` (RFC 2606) too.

``key_from_log`` derives a key from the first 64 KiB of the log itself:
outputs are reproducible for whoever holds the log, and secret from whoever
holds only the outputs. A stated key keeps tokens stable across imports.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

__all__ = ["Pseudonyms", "key_from_log", "TOKEN_LENGTH"]

_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

TOKEN_LENGTH = 12
"""Hex digits in a token: 48 bits, no collisions to expect below millions of addresses."""


class Pseudonyms:
    """Maps addresses to stable tokens under a secret key (``raw=True``: addresses unchanged)."""

    def __init__(self, key: bytes, *, domains: bool = False, raw: bool = False) -> None:
        self._key = key
        self.domains = domains
        self.raw = raw
        self._cache: dict[str, str] = {}

    def token(self, text: str, prefix: str = "u") -> str:
        """The token of *text*: *prefix* and 12 hex digits."""
        digest = hmac.new(self._key, text.lower().encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
        return f"{prefix}{digest[:TOKEN_LENGTH]}"

    def domain(self, domain: str) -> str:
        """*domain* as it is shown: unchanged, or ``d<hash>.invalid`` when domains are hidden."""
        domain = domain.lower()
        if self.raw or not self.domains or not domain:
            return domain
        return f"{self.token(domain, 'd')}.invalid"

    def address(self, address: str) -> str:
        """*address* as it is shown: ``u<hash>@domain`` (or unchanged when raw)."""
        if self.raw or not address:
            return address
        found = self._cache.get(address)
        if found is None:
            domain = address.rpartition("@")[2] if "@" in address else ""
            token = self.token(address)
            found = f"{token}@{self.domain(domain)}" if domain else token
            if len(self._cache) < 100_000:
                self._cache[address] = found
        return found

    def scrub(self, text: str) -> str:
        """*text* with every address in it made pseudonymous (log lines quoted in what is written)."""
        if self.raw or "@" not in text:
            return text
        return _ADDRESS.sub(lambda m: self.address(m.group(0)), text)


def key_from_log(path: Path, size: int = 65536) -> bytes:
    """A key derived from the first *size* bytes of *path* (decompressed): secret as long as the log is."""
    from .reader import open_text

    with open_text(path) as f:
        head = f.read(size)
    return hashlib.sha256(b"smtp-outage pseudonym key\x00" + head.encode("utf-8", "surrogateescape")).digest()
