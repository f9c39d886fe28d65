"""Big mail providers as senders: Gmail, Microsoft 365, Amazon SES, SendGrid, Mailgun.

Providers publish little: a retry window at most, intervals rarely. Each
preset below says which of its figures are published [V] and which are
inferred or assumed [I]; see retry-policies.md section 6 and its greylisting
addendum. All keep retry state per message and return the message when its
window closes, without another connection.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from ..durations import Duration, parse_duration_list
from ._common import PresetPolicy
from ._gaps import GapParams, build_gap_policy, optional_duration_list

__all__ = [
    "PROVIDERS",
    "GmailParams",
    "MailgunParams",
    "Microsoft365Params",
    "SendgridParams",
    "SesParams",
    "build_provider",
]

_Gaps = Annotated[tuple[float, ...], BeforeValidator(parse_duration_list)]
_Times = Annotated[tuple[float, ...], BeforeValidator(optional_duration_list)]

GMAIL_SOURCE = (
    "[I] No published schedule. First five gaps measured by Pagani et al., 'Measuring the Role of "
    "Greylisting and Nolisting in Fighting Spam' (DSN 2016): retries at 6:02, 29:02, 56:36, 98:44, "
    "162:03 min:s; growth x1.5 after that (the last measured ratio) capped at 4h (assumed). ~48 h window "
    "and warnings near 1 h and 25 h inferred from real Gmail delay DSNs ('will retry for N more hours'). "
    "retry-policies.md section 6."
)
M365_SOURCE = (
    "[I] Microsoft 365 message center MC441064 (as reproduced by third parties): message expiration "
    "24 h by default, settable 12-24 h; first retry after ~30 min then hourly (office365itpros.com, "
    "secondary). retry-policies.md section 6."
)
SES_SOURCE = (
    "[V] SES API v2 DeliveryOptions.MaxDeliverySeconds: 300-50400 s (5 min - 14 h). [I] Default window "
    "12 h (third party, MailBluster); retry intervals unpublished: 5 min doubling to 1 h is an assumption. "
    "retry-policies.md section 6."
)
SENDGRID_SOURCE = (
    "[V] SendGrid support article 360041316874 and Twilio docs 'Deferrals': retries for up to 72 hours "
    "from the first deferral, then expired. [I] Retry intervals unpublished: 5 min doubling to 1 h is "
    "an assumption. retry-policies.md section 6."
)
MAILGUN_SOURCE = (
    "[V] Mailgun help 'Will Mailgun retry my failed messages': retries after 10 min, then 15 min, 30 min, "
    "1 h, 2 h, 4 h, for at most 8 h, then dropped as 'Too old'. [I] DSN code 602. "
    "retry-policies.md section 6."
)


class GmailParams(GapParams):
    """Gmail / Google Workspace outbound [I]: measured first gaps, then x1.5 to 4 h, 48 h window."""

    retry: _Gaps = Field((362.0, 1380.0, 1654.0, 2528.0, 3799.0), description="measured gaps [I]")
    growth: float = Field(1.5, ge=1.0, description="gap growth after the measured ones [I]")
    max_interval: Duration = Field(14400.0, description="largest gap (assumed) [I]")
    lifetime: Duration = Field(172800.0, description="retry window, ~48 h [I]")
    delay_warnings: _Times = Field((3600.0, 90000.0), description="delay DSN ages, ~1 h and ~25 h [I]")


class Microsoft365Params(GapParams):
    """Exchange Online outbound [I]: 30 min, then hourly, 24 h expiration (12-24 h settable)."""

    retry: _Gaps = Field((1800.0, 3600.0), description="first retry ~30 min, then hourly [I]")
    max_interval: Duration = Field(3600.0, description="largest gap [I]")
    lifetime: Duration = Field(86400.0, description="message expiration, 12h to 24h [I]")

    @field_validator("lifetime")
    @classmethod
    def _window(cls, value: float) -> float:
        if not 43200 <= value <= 86400:
            raise PydanticCustomError(
                "m365_lifetime", "lifetime must be between 12h and 24h (the range a tenant can set)"
            )
        return value


class SesParams(GapParams):
    """Amazon SES [V window limits, I default and intervals]: 12 h window, at most 14 h."""

    retry: _Gaps = Field((300.0,), description="first gap (assumed) [I]")
    growth: float = Field(2.0, ge=1.0, description="gap growth (assumed) [I]")
    max_interval: Duration = Field(3600.0, description="largest gap (assumed) [I]")
    lifetime: Duration = Field(43200.0, description="MaxDeliverySeconds, 5m to 14h; default 12h [I]")

    @field_validator("lifetime")
    @classmethod
    def _window(cls, value: float) -> float:
        if not 300 <= value <= 50400:
            raise PydanticCustomError(
                "ses_lifetime", "lifetime is SES's MaxDeliverySeconds and must be between 5m and 14h"
            )
        return value


class SendgridParams(GapParams):
    """Twilio SendGrid [V window, I intervals]: deferred mail is retried for up to 72 h."""

    retry: _Gaps = Field((300.0,), description="first gap (assumed) [I]")
    growth: float = Field(2.0, ge=1.0, description="gap growth (assumed) [I]")
    max_interval: Duration = Field(3600.0, description="largest gap (assumed) [I]")
    lifetime: Duration = Field(259200.0, description="72 h from the first deferral [V]")


class MailgunParams(GapParams):
    """Mailgun [V]: 10 m, 15 m, 30 m, 1 h, 2 h, 4 h; dropped as 'Too old' at 8 h."""

    retry: _Gaps = Field((600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0), description="published gaps [V]")
    max_interval: Duration = Field(14400.0, description="largest gap [V]")
    lifetime: Duration = Field(28800.0, description="8 h, then 'Too old' [V]")


PROVIDERS: tuple[tuple[str, str, type[GapParams], str], ...] = (
    ("gmail", "Gmail / Google Workspace outbound (inferred)", GmailParams, GMAIL_SOURCE),
    ("microsoft365", "Exchange Online / Microsoft 365 outbound (inferred)", Microsoft365Params, M365_SOURCE),
    ("ses", "Amazon SES (window published, intervals assumed)", SesParams, SES_SOURCE),
    ("sendgrid", "Twilio SendGrid (72 h published, intervals assumed)", SendgridParams, SENDGRID_SOURCE),
    ("mailgun", "Mailgun (published schedule, 8 h)", MailgunParams, MAILGUN_SOURCE),
)
"""(name, summary, params model, source) of every provider preset."""


def build_provider(name: str, source: str, params: GapParams) -> PresetPolicy[GapParams]:
    """The runtime policy of a provider preset."""
    return build_gap_policy(name, source, params)
