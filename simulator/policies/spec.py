"""Retry policies as written in scenario files, validated with pydantic.

Accepted forms (all under a sender's ``policy:`` key)::

    policy: postfix                                 # a preset by name
    policy: {preset: postfix, maximal_queue_lifetime: 2d}   # a preset with overrides
    policy: {retry: "5m,15m,1h", lifetime: 30h}     # explicit gaps, the last repeats
    policy: {exponential: {initial: 5m, factor: 2, cap: 4h}, lifetime: 3d}

Each form is a frozen model; ``build()`` turns it into a runtime policy.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..durations import Duration, parse_duration_list
from .base import RetryPolicy, Timeouts
from .registry import PRESETS, preset_names
from .simple import Exponential, Schedule

__all__ = ["PolicySpec", "ScheduleSpec", "ExponentialSpec", "PresetSpec", "build_policy"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TimeoutFields(_Spec):
    connect_timeout: Duration = Field(30.0, description="simulated seconds charged for an unreachable host")
    greeting_timeout: Duration = Field(300.0, description="simulated seconds charged for a host that never greets")

    def _timeouts(self) -> Timeouts:
        return Timeouts(connect=self.connect_timeout, greeting=self.greeting_timeout)


class ScheduleSpec(_TimeoutFields):
    """``{retry: "5m,15m,1h", lifetime: 30h}``: explicit gaps between attempts."""

    retry: Annotated[tuple[float, ...], BeforeValidator(parse_duration_list)]
    lifetime: Duration
    repeat_last: bool = True
    warn_after: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> ScheduleSpec:
        if any(gap <= 0 for gap in self.retry):
            raise PydanticCustomError("bad_retry", "every retry gap must be greater than 0s")
        if self.lifetime <= 0:
            raise PydanticCustomError("bad_lifetime", "lifetime must be greater than 0s, e.g. 5d")
        return self

    def build(self, name: str = "schedule") -> RetryPolicy:
        """The runtime policy."""
        return Schedule(
            intervals=self.retry,
            lifetime=self.lifetime,
            repeat_last=self.repeat_last,
            warn_after=self.warn_after,
            name=name,
            timeouts=self._timeouts(),
        )


class _ExponentialParams(_Spec):
    initial: Duration
    factor: float = 2.0
    cap: Duration

    @model_validator(mode="after")
    def _sane(self) -> _ExponentialParams:
        if self.initial <= 0:
            raise PydanticCustomError("bad_initial", "initial must be greater than 0s, e.g. 5m")
        if self.factor < 1:
            raise PydanticCustomError("bad_factor", "factor must be at least 1 (2 doubles each gap)")
        if self.cap < self.initial:
            raise PydanticCustomError("bad_cap", "cap must be at least initial")
        return self


class ExponentialSpec(_TimeoutFields):
    """``{exponential: {initial: 5m, factor: 2, cap: 4h}, lifetime: 3d}``."""

    exponential: _ExponentialParams
    lifetime: Duration
    warn_after: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> ExponentialSpec:
        if self.lifetime <= 0:
            raise PydanticCustomError("bad_lifetime", "lifetime must be greater than 0s, e.g. 5d")
        return self

    def build(self, name: str = "exponential") -> RetryPolicy:
        """The runtime policy."""
        p = self.exponential
        return Exponential(
            initial=p.initial,
            factor=p.factor,
            cap=p.cap,
            lifetime=self.lifetime,
            warn_after=self.warn_after,
            name=name,
            timeouts=self._timeouts(),
        )


class PresetSpec(BaseModel):
    """``{preset: postfix, maximal_queue_lifetime: 2d}``: a named MTA with overrides."""

    model_config = ConfigDict(extra="allow", frozen=True)

    preset: str
    params: Any = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"preset": data}
        if not isinstance(data, dict):
            return data
        name = data.get("preset")
        if name not in PRESETS:
            raise PydanticCustomError(
                "unknown_preset",
                "unknown retry policy preset '{name}'; choose one of: {choices}",
                {"name": name, "choices": ", ".join(preset_names()) or "(none installed)"},
            )
        overrides = {k: v for k, v in data.items() if k != "preset"}
        try:
            params = PRESETS[name].params.model_validate(overrides)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PydanticCustomError(
                "bad_override",
                "preset {name}: {where}: {msg}",
                {"name": name, "where": where or "(overrides)", "msg": first["msg"]},
            ) from None
        return {"preset": name, "params": params}

    def build(self, name: str | None = None) -> RetryPolicy:
        """The runtime policy of the preset, with overrides applied."""
        return PRESETS[self.preset].build(self.params)


def _which(value: Any) -> str | None:
    if isinstance(value, str):
        return "preset"
    if isinstance(value, dict):
        for key in ("preset", "retry", "exponential"):
            if key in value:
                return key
        return None
    if isinstance(value, BaseModel):
        return {PresetSpec: "preset", ScheduleSpec: "retry", ExponentialSpec: "exponential"}.get(type(value))
    return None


PolicySpec = Annotated[
    Union[
        Annotated[PresetSpec, Tag("preset")],
        Annotated[ScheduleSpec, Tag("retry")],
        Annotated[ExponentialSpec, Tag("exponential")],
    ],
    Discriminator(
        _which,
        custom_error_type="policy_form",
        custom_error_message=(
            "a policy is a preset name (e.g. postfix), {preset: NAME, ...overrides}, "
            "{retry: \"5m,15m,1h\", lifetime: 5d} or {exponential: {initial, factor, cap}, lifetime}"
        ),
    ),
]
"""Any accepted policy form; validated by the discriminator on its leading key."""


def build_policy(spec: PresetSpec | ScheduleSpec | ExponentialSpec) -> RetryPolicy:
    """Turn a validated spec into a runtime policy."""
    return spec.build()
