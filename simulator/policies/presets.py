"""Registers the named presets of real MTAs and providers.

Importing this module (``simulator.policies`` does) fills the registry once.
Each preset's settings model carries the MTA's own defaults; each runtime
policy carries a ``source`` line citing where its figures come from, with
inferred figures marked [I].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

from . import exchange, exim, postfix, qmail, rfc5321, sendmail
from ._gaps import build_gap_policy
from .base import RetryPolicy
from .providers import PROVIDERS, build_provider
from .registry import PRESETS, Preset, register

__all__ = ["PRESET_NAMES", "register_presets"]

PRESET_NAMES = (
    "postfix",
    "postfix-legacy",
    "exim",
    "sendmail",
    "qmail",
    "exchange",
    "exchange-edge",
    "gmail",
    "microsoft365",
    "mailgun",
    "sendgrid",
    "ses",
    "rfc5321",
)
"""Every preset this module registers."""


P = TypeVar("P", bound=BaseModel)


def _preset(name: str, summary: str, params: type[P], build: Callable[[P], RetryPolicy]) -> Preset[Any]:
    """A registry entry; *build* must accept *params* (checked here, where the types are known)."""
    return Preset(name, summary, params, build)


def _presets() -> list[Preset[Any]]:
    out = [
        _preset(
            "postfix",
            "Postfix >= 2.4: age-clamped backoff on 300 s scans, 5 d",
            postfix.PostfixParams,
            postfix.build_postfix,
        ),
        _preset(
            "postfix-legacy",
            "Postfix <= 2.3: 1000 s scans and minimal backoff",
            postfix.PostfixLegacyParams,
            postfix.build_postfix_legacy,
        ),
        _preset(
            "exim",
            "Exim 4: F,2h,15m; G,16h,1h,1.5; F,4d,6h per host, queue runner 30m",
            exim.EximParams,
            exim.build_exim,
        ),
        _preset(
            "sendmail",
            "Sendmail 8: every queue run (-q30m), warn 4 h, return 5 d",
            sendmail.SendmailParams,
            sendmail.build_sendmail,
        ),
        _preset("qmail", "qmail 1.03: attempts at 400*k^2 s, 7 d lifetime", qmail.QmailParams, qmail.build_qmail),
        _preset(
            "exchange",
            "Exchange 2016/2019 Mailbox: 4x1m, 6x5m, then 10m per queue; 2 d",
            exchange.ExchangeParams,
            exchange.build_exchange,
        ),
        _preset(
            "exchange-edge",
            "Exchange 2016/2019 Edge: 4x1m, 6x10m, then 30m per queue; 2 d",
            exchange.ExchangeEdgeParams,
            exchange.build_exchange_edge,
        ),
    ]
    for name, summary, params, source in PROVIDERS:
        out.append(_preset(name, summary, params, partial(build_provider, name, source)))
    out.append(
        _preset(
            "rfc5321",
            "RFC 5321 minimums: 30 min, then every 2 h, give up after 5 d",
            rfc5321.Rfc5321Params,
            partial(build_gap_policy, "rfc5321", rfc5321.SOURCE),
        )
    )
    return out


def register_presets() -> None:
    """Register every preset not yet in the registry (safe to call twice)."""
    for preset in _presets():
        if preset.name not in PRESETS:
            register(preset)


register_presets()
