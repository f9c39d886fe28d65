"""Retry policies as written in scenario files, validated with pydantic.

Accepted forms (all under a sender's ``policy:`` key)::

    policy: postfix                                 # a preset by name
    policy: {preset: postfix, maximal_queue_lifetime: 2d}   # a preset with overrides
    policy: {retry: "5m,15m,1h", lifetime: 30h}     # explicit gaps, the last repeats
    policy: {exponential: {initial: 5m, factor: 2, cap: 4h}, lifetime: 3d}
    policy: {exim: "F,2h,15m; G,16h,1h,1.5; F,4d,6h", queue_runner: 30m}   # Exim's own rule syntax

Each form is a frozen model; ``build()`` turns it into a runtime policy.
"""

from __future__ import annotations

from typing import Annotated, Any

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
from .exim import EximParams, build_exim
from .registry import PRESETS, preset_names
from .simple import Exponential, Schedule

__all__ = ["EximSpec", "ExponentialSpec", "PolicySpec", "PresetSpec", "ScheduleSpec", "build_policy"]


def _first_error(exc: ValidationError, rename: dict[str, str] | None = None) -> tuple[str, str]:
    """Where and what of the first error, without pydantic's "Value error, " prefix."""
    first = exc.errors()[0]
    where = ".".join((rename or {}).get(str(p), str(p)) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return where, msg


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
            where, msg = _first_error(exc)
            raise PydanticCustomError(
                "bad_override",
                "preset {name}: {where}: {msg}",
                {"name": name, "where": where or "(overrides)", "msg": msg},
            ) from None
        return {"preset": name, "params": params}

    def build(self, name: str | None = None) -> RetryPolicy:
        """The runtime policy of the preset, with overrides applied."""
        return PRESETS[self.preset].build(self.params)


class EximSpec(BaseModel):
    """``{exim: "F,2h,15m; G,16h,1h,1.5; F,4d,6h", queue_runner: 30m}``: Exim with a retry rule.

    The other keys are the ``exim`` preset's settings (``queue_runner``,
    ``retry_interval_max``, ``delay_warning``, ``delay_after_cutoff``, ...).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    exim: str
    params: Any = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        overrides = {k: v for k, v in data.items() if k != "exim"}
        if "retry_rule" in overrides:
            raise PydanticCustomError(
                "exim_rule_twice", 'give the Exim retry rule once, as exim: "...", not also as retry_rule'
            )
        try:
            params = EximParams.model_validate({"retry_rule": data.get("exim"), **overrides})
        except ValidationError as exc:
            where, msg = _first_error(exc, {"retry_rule": "exim"})
            label = "exim" if where == "exim" else f"exim policy, {where or 'settings'}"
            raise PydanticCustomError("bad_exim", "{label}: {msg}", {"label": label, "msg": msg}) from None
        return {"exim": params.retry_rule, "params": params}

    def build(self, name: str | None = None) -> RetryPolicy:
        """The ``exim`` preset's runtime policy with this rule and settings."""
        return build_exim(self.params)


def _which(value: Any) -> str | None:
    if isinstance(value, str):
        return "preset"
    if isinstance(value, dict):
        for key in ("preset", "retry", "exponential", "exim"):
            if key in value:
                return key
        return None
    if isinstance(value, BaseModel):
        return {PresetSpec: "preset", ScheduleSpec: "retry", ExponentialSpec: "exponential", EximSpec: "exim"}.get(
            type(value)
        )
    return None


PolicySpec = Annotated[
    Annotated[PresetSpec, Tag("preset")]
    | Annotated[ScheduleSpec, Tag("retry")]
    | Annotated[ExponentialSpec, Tag("exponential")]
    | Annotated[EximSpec, Tag("exim")],
    Discriminator(
        _which,
        custom_error_type="policy_form",
        custom_error_message=(
            "a policy is a preset name (e.g. postfix), {preset: NAME, ...overrides}, "
            '{retry: "5m,15m,1h", lifetime: 5d}, {exponential: {initial, factor, cap}, lifetime} '
            'or {exim: "F,2h,15m; G,16h,1h,1.5; F,4d,6h", queue_runner: 30m}'
        ),
    ),
]
"""Any accepted policy form; validated by the discriminator on its leading key."""


def build_policy(spec: PresetSpec | ScheduleSpec | ExponentialSpec | EximSpec) -> RetryPolicy:
    """Turn a validated spec into a runtime policy."""
    return spec.build()
