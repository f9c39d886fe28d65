"""Per-message retry with listed gaps, then growth to a cap: the shape of provider presets.

Big providers publish at most a window and a few intervals, so their
presets share one machine: the gaps in ``retry`` are used in order, after
the list each gap is the previous one times ``growth``, capped at
``max_interval``. The message gives up either exactly at ``lifetime``
(a queue timer: the message is returned without another connection) or at
the first failed attempt at or after ``lifetime``, per the preset's
``give_up`` class setting. Delay warnings go out once per age in
``delay_warnings``, with the first failure at or after it.
"""

from __future__ import annotations

import random
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from ..durations import Duration, parse_duration_list
from ._common import PresetParams, PresetPolicy, bounces_at_once, shows_durations
from .base import Decision, Failure, MessageView, Stage, Timeouts
from .simple import permanent_decision

__all__ = ["GapParams", "GapState", "build_gap_policy", "optional_duration_list"]


@shows_durations
def optional_duration_list(value: object) -> tuple[float, ...]:
    """Like ``parse_duration_list`` but an empty string or list means none."""
    if value in ("", None, [], ()):
        return ()
    return parse_duration_list(value)


class GapParams(PresetParams):
    """Settings of a gap-list retry policy. Subclasses set the defaults and ``give_up``."""

    give_up: ClassVar[Literal["at_lifetime", "after_attempt"]] = "at_lifetime"
    soft_5xx_stages: ClassVar[frozenset[Stage]] = frozenset({Stage.GREETING})

    retry: Annotated[tuple[float, ...], BeforeValidator(parse_duration_list)] = Field(
        description="gaps after the 1st, 2nd, ... failure"
    )
    growth: float = Field(1.0, ge=1.0, description="factor applied to the gap after the list ends")
    max_interval: Duration = Field(description="largest gap")
    lifetime: Duration = Field(description="give up at this age")
    delay_warnings: Annotated[tuple[float, ...], BeforeValidator(optional_duration_list)] = Field(
        (), description="ages at which a delay warning goes out (once each)"
    )
    connect_timeout: Duration = Field(30.0, description="charged for an unreachable host [I]")
    greeting_timeout: Duration = Field(300.0, description="charged for a host that never greets")
    command_timeout: Duration = Field(300.0, description="charged for a stalled command reply")
    data_done_timeout: Duration = Field(600.0, description="charged for a stalled reply to the final dot")

    @model_validator(mode="after")
    def _sane(self) -> GapParams:
        if any(gap <= 0 for gap in self.retry):
            raise PydanticCustomError("gap_positive", "every retry gap must be greater than 0s")
        if self.max_interval <= 0:
            raise PydanticCustomError("gap_max", "max_interval must be greater than 0s")
        if self.lifetime <= 0:
            raise PydanticCustomError("gap_lifetime", "lifetime must be greater than 0s")
        return self


class GapState:
    """Per-message state: no memory shared between messages."""

    def __init__(self, policy: PresetPolicy[GapParams], rng: random.Random) -> None:
        self._p = policy.params

    def _gap(self, failures: int) -> float:
        retry, n = self._p.retry, max(failures, 1)
        if n <= len(retry):
            gap = retry[n - 1]
        elif self._p.growth == 1.0:
            gap = retry[-1]
        else:
            steps = min(n - len(retry), 64)
            gap = float(int(retry[-1] * self._p.growth**steps))  # whole seconds
        return min(gap, self._p.max_interval)

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """Tried at once."""
        return Decision.retry(now)

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """Return the message at its lifetime when the preset gives up on a timer."""
        if self._p.give_up == "at_lifetime" and now - msg.arrival >= self._p.lifetime:
            return Failure.expired(host, "message expired: delivery time exceeded")
        return None

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Bounce on 5xx or at the end of the window; otherwise the next gap."""
        if failure.expiry:
            return Decision.give_up(failure.text, "4.4.7")
        if bounces_at_once(failure, soft_stages=self._p.soft_5xx_stages):
            return permanent_decision(failure)
        expires = msg.arrival + self._p.lifetime
        if self._p.give_up == "after_attempt" and now >= expires:
            return Decision.give_up("retry lifetime exceeded", "4.4.7")
        age = now - msg.arrival
        times = self._p.delay_warnings
        warn = msg.warnings < len(times) and age >= times[msg.warnings]
        at = now + self._gap(msg.attempts)
        if self._p.give_up == "at_lifetime":
            at = min(at, expires)
        return Decision.retry(at, warn=warn)

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """Nothing is shared between messages."""
        return


def build_gap_policy(name: str, source: str, params: GapParams) -> PresetPolicy[GapParams]:
    """A runtime policy for a gap-list preset."""
    timeouts = Timeouts(
        connect=params.connect_timeout,
        greeting=params.greeting_timeout,
        command=params.command_timeout,
        data_done=params.data_done_timeout,
    )
    return PresetPolicy(name, source, params, GapState, timeouts)
