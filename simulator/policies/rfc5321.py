"""RFC 5321's recommended minimums as a sender policy.

Source: RFC 5321 §4.5.4.1 (sending strategy), §4.5.3.2 (client timeouts)
and §4.2.1 (reply classes); retry-policies.md section 7.

* "The sender MUST delay retrying a particular destination after one
  attempt has failed. In general, the retry interval SHOULD be at least 30
  minutes" and experience favours "two connection attempts in the first hour
  ..., and then backing off to one every two or three hours": attempts at
  0 and 30 min, then every 2 h.
* "the give-up time generally needs to be at least 4-5 days": 5 days, the
  message bouncing at the first failed attempt at or after that age.
* Timeouts: initial 220 5 min, MAIL 5 min, DATA termination 10 min. The RFC
  sets no connect timeout; 30 s is assumed [I].
* A 5yz reply is a permanent negative completion (§4.2.1) at every stage.
* Not modelled: the list of unreachable hosts the RFC says a client SHOULD
  keep; retry state is per message.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from ..durations import Duration, parse_duration_list
from ._gaps import GapParams
from .base import Stage

__all__ = ["SOURCE", "Rfc5321Params"]

SOURCE = (
    "RFC 5321 section 4.5.4.1 (retry interval at least 30 min, two attempts in the first hour then every "
    "2-3 h, give up after at least 4-5 days), 4.5.3.2 (timeouts), 4.2.1 (5yz permanent). Connect timeout "
    "30 s assumed [I]. retry-policies.md section 7."
)


class Rfc5321Params(GapParams):
    """RFC 5321's recommended minimums: 30 min, then every 2 h, give up after 5 days."""

    give_up: ClassVar[Literal["at_lifetime", "after_attempt"]] = "after_attempt"
    soft_5xx_stages: ClassVar[frozenset[Stage]] = frozenset()

    retry: Annotated[tuple[float, ...], BeforeValidator(parse_duration_list)] = Field(
        (1800.0, 7200.0), description="30 min, then every 2 h (the RFC says 2-3 h)"
    )
    max_interval: Duration = Field(10800.0, description="largest gap (3 h)")
    lifetime: Duration = Field(432000.0, description="give-up time, at least 4-5 days")
